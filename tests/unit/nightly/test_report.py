"""The Allure HTML report of `rig nightly`, built by the real Allure CLI and looked at in Chromium.

Both tools are optional on a developer machine: each test says exactly what to install when one
is missing. rig builds the report as one self-contained index.html, so it is opened from
file://, as a lab engineer opens it from a share.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.helpers import CHROMIUM_HINT, find_chromium

SUITE = """
def test_console_answers(board):
    assert board.boot(timeout_s=10)

def test_reports_a_failure(board):
    raise AssertionError("fails on purpose")
"""

LAB = """
boards:
  emulated:
    kind: emulated
    device_type: blinky
    power: {off_s: 0.05}
"""


def allure_cli() -> str | None:
    return shutil.which(os.environ.get("RIG_ALLURE") or "allure")


@pytest.fixture(scope="module")
def nightly(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path]:
    """One real `rig nightly` with the Allure CLI: its result and its report folder."""
    allure = allure_cli()
    if allure is None:
        pytest.skip("Allure CLI not found: npm install -g allure")
    work = tmp_path_factory.mktemp("nightly-report")
    (work / "boards.yaml").write_text(LAB)
    (work / "suite").mkdir()
    (work / "suite" / "test_sample.py").write_text(SUITE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RIG_", "PYTEST_"))}
    env["RIG_LOCK_DIR"] = str(work / "locks")
    command = [sys.executable, "-m", "rig.cli.main", "nightly", "--boards-file", "boards.yaml",
               "--suite", "suite", "--output", "out", "--allure", allure]  # fmt: skip
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=300)
    return done, (work / "out" / "latest").resolve()


def test_nightly_builds_the_allure_report(nightly):
    done, folder = nightly
    assert done.returncode == 1, done.stdout + done.stderr  # one test fails on purpose
    index = folder / "allure-report" / "index.html"
    assert index.is_file(), done.stdout + done.stderr
    assert f"Allure HTML:    {index}" in done.stdout
    assert "warning:" not in done.stdout
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["paths"]["Allure HTML"] == str(index)


def test_the_report_shows_the_run_in_a_browser(nightly, tmp_path):
    browser = find_chromium()
    if browser is None:
        pytest.skip(CHROMIUM_HINT)
    _, folder = nightly
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=10000", "--dump-dom",
         (folder / "allure-report" / "index.html").as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    # what a person sees: the page without its scripts and styles, tags stripped
    page = re.sub(r"<(script|style)\b.*?</\1>", "", done.stdout, flags=re.S)
    text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    assert f"rig nightly {folder.name}" in text  # the report name rig gave it
    assert "board emulated" in text  # the tree is grouped by board
    assert "test_console_answers[emulated]" in text
    assert "test_reports_a_failure[emulated]" in text
    assert re.search(r"Failed 1 Passed 1\b", text), text[:2000]
