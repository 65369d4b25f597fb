"""`rig nightly`: the regression suite across the lab's boards, in parallel, with its reports.

rig's plugin already does the hard parts (one board per xdist worker, board locks, logs), so
this runs pytest once with `-n N` and turns what it wrote into a dated report folder a lab
engineer can open in the morning: JUnit XML, Allure results and HTML, logs, and a per-board
summary. Everything that can be wrong with the request is checked before a board is touched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from rig.errors import RigError
from rig.lab import inventory
from rig.nightly.summary import (
    Counts,
    build_rows,
    parse_junit,
    read_board_records,
    read_sign_ins,
    sign_in_text,
    write_summary,
)

INSTALL_ALLURE = "npm install -g allure"
PYTEST_EXITS = {
    0: "all tests passed",
    1: "some tests failed",
    2: "interrupted",
    3: "internal error",
    4: "usage error",
    5: "no tests collected",  # a nightly that ran nothing failed
}


class NightlyUsageError(RigError):
    """The request itself is wrong (board, suite, workers, allure): nothing was started."""


@dataclass
class NightlyOptions:
    """What `rig nightly` was asked to do, as given on the command line."""

    boards_file: str | None = None
    board: str = "all"
    workers: int | None = None
    output: Path = Path("reports")
    suite: Path = Path("tests/hil")
    allure: str = "auto"
    extra: list[str] = field(default_factory=list)


@dataclass
class Plan:
    """The checked request: everything needed to start, nothing started yet."""

    inventory: inventory.Inventory
    boards: list[str]
    workers: int
    allure: str | None
    allure_missing: str  # why no HTML report will be built, when `allure` is None


def find_allure(choice: str, environ: Mapping[str, str]) -> tuple[str | None, str]:
    """The Allure command to use, or None with the reason shown in place of the HTML report."""
    if choice == "off":
        return None, "not built: --allure off"
    if choice != "auto":
        found = shutil.which(choice)
        if not found:
            raise NightlyUsageError(
                f"--allure {choice}: no such executable (install the Allure CLI: {INSTALL_ALLURE})"
            )
        return found, ""
    if environ.get("RIG_ALLURE"):
        found = shutil.which(environ["RIG_ALLURE"])
        if not found:
            return None, f"not built: RIG_ALLURE={environ['RIG_ALLURE']} is not an executable"
        return found, ""
    found = shutil.which("allure", path=environ.get("PATH"))
    return found, "" if found else f"not built: allure command not found — {INSTALL_ALLURE}"


def plan(options: NightlyOptions, environ: Mapping[str, str]) -> Plan:
    """Check inventory, selection, suite, workers and Allure; raise before anything starts."""
    inv = inventory.load(inventory.find_boards_file(options.boards_file))
    try:
        boards = inv.select(options.board)
    except inventory.InventoryError as exc:
        raise NightlyUsageError(str(exc)) from None
    if not options.suite.exists():
        raise NightlyUsageError(
            f"no test suite at {options.suite}: run from the repository root, or pass --suite PATH"
        )
    if options.workers is not None and options.workers < 1:
        raise NightlyUsageError(f"--workers {options.workers}: give 1 or more")
    workers = options.workers or max(1, min(len(boards), os.cpu_count() or 1))
    allure, missing = find_allure(options.allure, environ)
    return Plan(inv, boards, workers, allure, missing)


def make_run_dir(output: Path, now: datetime) -> Path:
    """A new `OUT/<YYYY-MM-DD_HHMMSS>` folder; `-2`, `-3`… when two runs start the same second."""
    output.mkdir(parents=True, exist_ok=True)
    stamp = now.strftime("%Y-%m-%d_%H%M%S")
    for n in range(1, 1000):
        folder = output / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise RigError(f"cannot make a report folder for {stamp} under {output}: 999 already exist")


def update_latest(output: Path, folder: Path) -> bool:
    """Point `OUT/latest` at the folder (relative, replaced atomically); best effort only."""
    temp = output / f".latest-{os.getpid()}"
    try:
        temp.unlink(missing_ok=True)
        temp.symlink_to(folder.name, target_is_directory=True)
        os.replace(temp, output / "latest")
        return True
    except OSError:
        temp.unlink(missing_ok=True)
        return False


def build_command(
    suite: Path,
    selector: str,
    boards_file: Path,
    workers: int,
    folder: Path,
    extra: Sequence[str] = (),
    python: str = sys.executable,
) -> list[str]:
    """The one pytest run; `-n` only with two or more workers (a single worker needs no xdist)."""
    options = {
        "--board": selector,
        "--boards-file": boards_file,
        "--junitxml": folder / "junit.xml",
        "--alluredir": folder / "allure-results",
        "--rig-log-dir": folder / "logs",
        "--rig-report-dir": folder / "rig",
    }
    # --option=value, one word each: pytest picks its rootdir and ini file from the command
    # line's paths before rig's options are known, so a separate value (a boards.yaml or an
    # output folder elsewhere) would count as a path to test and move the rootdir with it.
    command = [python, "-m", "pytest", str(suite)]
    command += [f"{option}={value}" for option, value in options.items()]
    if workers > 1:
        command += ["-n", str(workers)]
    return [*command, "-p", "no:cacheprovider", *extra]


def tee(
    command: Sequence[str], log: Path, env: Mapping[str, str], out: BinaryIO | None = None
) -> int:
    """Run the command, streaming its output live to the terminal and into the log file.

    Ctrl-C reaches pytest too (same process group); pytest then writes its reports and exits,
    so the output is drained to the end. A second Ctrl-C stops it.
    """
    out = out or sys.stdout.buffer
    interrupts = 0
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=dict(env)
        )
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                sink.write(chunk)
                out.write(chunk)
                out.flush()
            except KeyboardInterrupt:
                interrupts += 1
                if interrupts > 1:
                    proc.terminate()
        proc.stdout.close()
        return proc.wait()


def build_allure(allure: str, results: Path, report: Path, name: str) -> str | None:
    """Generate the HTML report; why it failed (shown as a warning), else None.

    One self-contained index.html (it opens from a file share, no web server needed), its tree
    grouped by board (rig's parentSuite label), then by test module."""
    config = report.parent / "allurerc.json"
    config.write_text(json.dumps({
        "name": name,
        "plugins": {"awesome": {"options": {"singleFile": True,
                                            "groupBy": ["parentSuite", "suite"]}}},
    }, indent=2))  # fmt: skip
    command = [allure, "generate", str(results), "--output", str(report), "--report-name", name,
               "--config", str(config)]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"allure generate could not run: {exc}"
    if done.returncode != 0 or not (report / "index.html").is_file():
        said = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        return f"allure generate failed (exit {done.returncode}): {said}"
    return None


def exit_code(pytest_rc: int, counts: Mapping[str, Counts]) -> int:
    """pytest's code when it is not 0 (5, no tests, included); else 1 if anything failed."""
    if pytest_rc != 0:
        return pytest_rc
    return 1 if any(c.not_passed for c in counts.values()) else 0


def _say(text: str) -> None:
    try:
        print(text, flush=True)
    except UnicodeEncodeError:  # a terminal that cannot show → or —
        print(text.replace("→", "->").replace("—", "-").replace("…", "..."), flush=True)


def run_nightly(options: NightlyOptions, environ: Mapping[str, str] | None = None) -> int:
    """The whole run: check, run pytest, build reports, print and store the summary."""
    environ = dict(os.environ if environ is None else environ)
    checked = plan(options, environ)
    started = datetime.now()
    folder = make_run_dir(options.output, started).resolve()
    update_latest(options.output, folder)
    command = build_command(
        options.suite, options.board, checked.inventory.path, checked.workers, folder, options.extra
    )
    _say(
        f"rig nightly: {len(checked.boards)} board(s) ({', '.join(checked.boards)}) on "
        f"{checked.workers} worker(s); reports in {folder}"
    )
    env = {**environ, "PYTHONUNBUFFERED": "1"}
    began = time.monotonic()
    pytest_rc = tee(command, folder / "pytest.log", env)
    junit = folder / "junit.xml"
    counts = parse_junit(junit, checked.inventory.boards) if junit.is_file() else {}
    rows = build_rows(checked.boards, counts, read_board_records(folder / "rig"))
    results, html = folder / "allure-results", folder / "allure-report"
    warning, html_text = None, checked.allure_missing
    if checked.allure and not any(results.glob("*-result.json")):
        html_text = "not built: no Allure results were written"
    elif checked.allure:
        warning = build_allure(checked.allure, results, html, f"rig nightly {folder.name}")
        html_text = f"not built: {warning}" if warning else str(html / "index.html")
    code = exit_code(pytest_rc, counts)
    said = PYTEST_EXITS.get(pytest_rc, "see pytest output")
    sign_ins, sign_in_s = read_sign_ins(folder / "rig")
    paths = {
        "pytest": f"exit {pytest_rc} ({said})",
        "OTA sign-in": sign_in_text(sign_ins, sign_in_s),
        "report folder": str(folder),
        "JUnit": str(junit) if junit.is_file() else "not written (see pytest.log)",
        "Allure results": str(results),
        "Allure HTML": html_text,
        "logs": str(folder / "logs"),
        "pytest output": str(folder / "pytest.log"),
    }
    meta = {
        "started": started.isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - began, 1),
        "boards": checked.boards,
        "workers": checked.workers,
        "command": command,
        "pytest_exit_code": pytest_rc,
        "exit_code": code,
        "ota_sign_ins": sign_ins,
        "ota_sign_in_s": round(sign_in_s, 4),
    }
    text = write_summary(folder, rows, paths, meta)
    if warning:
        _say(f"warning: {warning}")
    _say("\n" + text.rstrip())
    return code
