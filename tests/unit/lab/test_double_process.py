"""The plugin's board double child (`DoubleProcess`): its boards come up with their supply never
switched on, and it never outlives the process that launched it, even one killed with SIGKILL."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from rig.lab.inventory import load
from rig.lab.setup import Lab
from tests.unit.helpers import process_gone, wait_until

BOARDS = """
boards:
  alpha:
    kind: emulated
    device_type: blinky
    power: {off_s: 30}
"""
LAUNCHER = """
import json, signal, sys
from pathlib import Path
from rig.lab.double_process import DoubleProcess

double = DoubleProcess(Path(sys.argv[1]), ["alpha"], state_dir=Path(sys.argv[2]),
                       log_path=Path(sys.argv[2]) / "double.log")
double.start()
print(json.dumps({"pid": double.pid}), flush=True)
signal.pause()  # until killed
"""


def test_the_double_stops_when_its_launcher_is_killed(tmp_path: Path) -> None:
    boards = tmp_path / "boards.yaml"
    boards.write_text(BOARDS)
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(boards), str(tmp_path)], stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert launcher.stdout is not None
        pid = json.loads(launcher.stdout.readline())["pid"]
        assert not process_gone(pid)
    finally:
        launcher.send_signal(signal.SIGKILL)
        launcher.wait(10)
    wait_until(lambda: process_gone(pid), timeout=20, what="the orphaned double to stop")


def test_a_new_double_board_boots_without_waiting_its_off_time(tmp_path: Path, rig_env) -> None:
    """Its supply has never been on, so there is nothing to drain: the first boot does not
    wait boards.yaml's 30 s off time; a later power-off does."""
    boards = tmp_path / "boards.yaml"
    boards.write_text(BOARDS)
    with Lab(load(boards), log_dir=tmp_path / "logs", state_dir=tmp_path / "state") as lab:
        board = lab.board("alpha")
        assert board.power.drain_remaining_s() == 0.0
        board.boot()
        board.power.off()
        assert board.power.drain_remaining_s() > 29.0
    # the lab stopped it (and waited) while its lifeline still watched stdin: a clean end
    log = next((tmp_path / "logs").glob("*double*.log")).read_text()
    assert "Fatal Python error" not in log and "Traceback" not in log, log
