"""How long rig's pytest plugin makes a run wait before its first test, and what it adds per test.

    .venv/bin/python benches/session_start.py [--runs 5] [--tests 2000]

Every figure comes from `python -m pytest` child processes, as a user starts them, in a fresh
temporary folder (its own `pytest.ini`, board locks, log and report folders) so that other runs
on the machine neither share nor lock its board:

- **first line**: a one-test suite `def test_first(pipeline, ota_target)` against
  `--board emulated` (rig's own boards.yaml: the local OTA service, one board double). The test
  writes `time.time()` as its first line; the figure is that minus the wall clock just before
  the child was started. Median of `--runs`.
- **plugin import**: `import rig.pytestplugin` and the modules it loads (pytest itself already
  imported: any run pays for pytest), in a fresh interpreter. Median of `--runs`.
- **per test**: `--tests` trivial tests that use no board, run with the plugin and with
  `-p no:rig`; (with - without) / tests. Median of 3 pairs. Also shows how many per-test JSON
  records the plugin wrote for them.

Runs against whichever `rig` is on the import path (PYTHONPATH=/tmp/before13 for the old code).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import rig

REPO = Path(rig.__file__).resolve().parent.parent
FIRST = """
import time
from pathlib import Path

def test_first(pipeline, ota_target):
    Path("first-line").write_text(repr(time.time()))
"""
TRIVIAL = """
import pytest

@pytest.mark.parametrize("i", range({n}))
def test_trivial(i):
    pass
"""
PLUGIN_IMPORT = """
import time, pytest
t = time.perf_counter()
import rig.pytestplugin
for name in rig.pytestplugin.pytest_plugins:
    __import__(name)
print(time.perf_counter() - t)
"""


def child_env(folder: Path) -> dict[str, str]:
    env = dict(os.environ, RIG_LOCK_DIR=str(folder / "locks"))
    # Python may keep its bytecode cache, as on any bench: a user's second and later runs read
    # rig's modules from it (one uncounted run fills it first). Compiling them all again in
    # every run, as with PYTHONDONTWRITEBYTECODE=1 on a fresh clone, costs ~0.1-0.3 s more.
    for name in ("RIG_BOARD", "RIG_BOARDS_FILE", "RIG_RUN_STAMP", "PYTEST_ADDOPTS",
                 "PYTHONDONTWRITEBYTECODE"):  # fmt: skip
        env.pop(name, None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def pytest_run(folder: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    if "no:rig" not in args:  # rig's own options exist only with the plugin
        # Under .rig/ as by default: pytest does not walk dot-folders, which the early warm-up
        # fills with logs while pytest collects the suite's folder.
        command += [f"--rig-log-dir={folder / '.rig' / 'logs'}",
                    f"--rig-report-dir={folder / '.rig' / 'reports'}"]  # fmt: skip
    return subprocess.run(command, cwd=folder, env=child_env(folder), capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def suite(root: Path, name: str, text: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=root))
    (folder / "pytest.ini").write_text("[pytest]\n")
    (folder / f"test_{name}.py").write_text(text)
    return folder


def first_line(root: Path) -> float:
    folder = suite(root, "first", FIRST)
    started = time.time()
    # --option=value: pytest takes its rootdir from the command line's paths before rig's options
    # exist, and a separate boards.yaml path would make rig's repository the rootdir (its ini,
    # and a collection walk from there), as it would for a user who typed it so.
    done = pytest_run(folder, "--board=emulated", f"--boards-file={REPO / 'boards.yaml'}")
    if done.returncode != 0:
        sys.exit(f"the one-test suite failed:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    return float((folder / "first-line").read_text()) - started


def plugin_import() -> float:
    done = subprocess.run([sys.executable, "-c", PLUGIN_IMPORT], capture_output=True, text=True,
                          env=child_env(Path(tempfile.gettempdir())), check=True)  # fmt: skip
    return float(done.stdout.strip())


def trivial_run(folder: Path, *args: str) -> float:
    started = time.perf_counter()
    done = pytest_run(folder, *args)
    if done.returncode != 0:
        sys.exit(f"the trivial suite failed:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tests", type=int, default=2000)
    args = parser.parse_args()
    print(
        f"session start: rig from {REPO}, {os.cpu_count()} cores, Python {sys.version.split()[0]}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="rig-session-start-") as tmp:
        root = Path(tmp)
        first_line(root)  # uncounted: fills the bytecode cache, as any earlier run would have
        first = [first_line(root) for _ in range(args.runs)]
        imports = [plugin_import() for _ in range(args.runs)]
        folder = suite(root, "trivial", TRIVIAL.format(n=args.tests))
        with_rig, without = [], []
        for _ in range(3):  # interleaved, so background load weighs on both alike
            with_rig.append(trivial_run(folder))
            without.append(trivial_run(folder, "-p", "no:rig"))
        records = len(list((folder / ".rig" / "reports" / "tests").glob("*.json")))
    per_test = [(w - o) / args.tests * 1000 for w, o in zip(with_rig, without, strict=True)]
    print(f"{'figure':<42}{'median':>10}   runs")
    print("-" * 78)
    show = " ".join(f"{v:.3f}" for v in first)
    print(f"{'pytest start → first line (s)':<42}{statistics.median(first):>10.3f}   {show}")
    show = " ".join(f"{v * 1000:.0f}" for v in imports)
    print(f"{'plugin import, after pytest (ms)':<42}{statistics.median(imports) * 1000:>10.0f}"
          f"   {show}")  # fmt: skip
    show = " ".join(f"{v:.2f}" for v in with_rig)
    print(f"{f'{args.tests} trivial tests with rig (s)':<42}{statistics.median(with_rig):>10.2f}"
          f"   {show}")  # fmt: skip
    show = " ".join(f"{v:.2f}" for v in without)
    print(f"{f'{args.tests} trivial tests, -p no:rig (s)':<42}{statistics.median(without):>10.2f}"
          f"   {show}")  # fmt: skip
    show = " ".join(f"{v:.3f}" for v in per_test)
    print(f"{'plugin cost per test (ms)':<42}{statistics.median(per_test):>10.3f}   {show}")
    print(f"{'per-test JSON records (boardless tests)':<42}{records:>10}")


if __name__ == "__main__":
    main()
