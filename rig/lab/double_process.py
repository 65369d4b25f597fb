"""Start and stop `rig double` as a child process, and learn where its boards are.

The plugin and the CLI run the double as a separate process (as a lab runs real boards: the
test process only ever sees a VISA resource and a serial port). This module turns inventory
entries into double specs and reads the double's one-JSON-line-per-board announcement. It lives
with the lab, not the double: it knows boards.yaml, and the double never does.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

from rig.double.errors import DoubleError
from rig.double.spec import EmulatedBoardSpec
from rig.lab.board_config import BoardConfig, DoubleConfig
from rig.lab.power_config import PowerConfig
from rig.lifeline import TiedChild


def spec_for(name: str, board: BoardConfig, state_dir: Path | None = None) -> EmulatedBoardSpec:
    """What the double needs to emulate one inventory board."""
    power = board.power or PowerConfig()
    double = board.double or DoubleConfig()
    return EmulatedBoardSpec(
        name=name,
        model=power.model,
        channel=power.channel,
        firmware_version=double.firmware_version,
        device_type=board.device_type,
        min_volts=double.min_volts,
        idle_amps=double.idle_amps,
        boot_amps=double.boot_amps,
        flash_write_amps=double.flash_write_amps,
        boot_s=double.boot_s,
        state_dir=state_dir / name if state_dir else None,
        link_baud=board.link.baud,
        link_speed=board.link.speed,
        timeouts=double.timeouts.model_dump(),
        faults=tuple(double.faults),
        external_mcu=board.asr.uart if board.asr else None,
    )


class DoubleProcess:
    """One `rig double` child emulating some boards of a boards file."""

    def __init__(
        self, boards_file: Path, names: list[str], *, state_dir: Path, log_path: Path
    ) -> None:
        self.boards_file = boards_file
        self.names = names
        self.state_dir = state_dir
        self.log_path = log_path
        self.boards: dict[str, dict] = {}
        command = [
            sys.executable, "-m", "rig", "double", "--json",
            "--boards-file", str(boards_file),
            "--board", ",".join(names),
            "--state-dir", str(state_dir),
            "--stop-on-stdin-eof",  # it stops when we do, even if we are killed
        ]  # fmt: skip
        self._child = TiedChild(command, log_path=log_path)

    def start(self, timeout_s: float = 30.0) -> dict[str, dict]:
        """Launch the double; returns {board: {"power": resource, "console": path, ...}}."""
        self.launch()
        return self.ready(timeout_s)

    def launch(self) -> None:
        """Start the child and return at once: it takes ~0.2 s to come up, which the caller
        may spend on its own work (loading its drivers) before it asks for `ready`."""
        self._child.launch()

    def ready(self, timeout_s: float = 30.0) -> dict[str, dict]:
        """Wait (at most `timeout_s` from the launch) until every board is announced."""
        for line in self._child.lines(self._child.launched + timeout_s):
            with contextlib.suppress(ValueError, KeyError, TypeError):
                info = json.loads(line)
                self.boards[info["board"]] = info
            if not set(self.names) - set(self.boards):
                return self.boards
        self.stop()
        raise DoubleError(
            f"the board double for {', '.join(self.names)} did not report ready "
            f"within {timeout_s:g} s; its log: {self.log_path}"
        )

    def stop(self, timeout_s: float = 10.0) -> None:
        """Close its stdin, then SIGTERM, then SIGKILL: never leave a double behind."""
        self._child.stop(timeout_s)

    @property
    def pid(self) -> int | None:
        return self._child.pid
