"""Start and stop `rig double` as a child process, and learn where its boards are.

The plugin and the CLI run the double as a separate process (as a lab runs real boards: the
test process only ever sees a VISA resource and a serial port). This module turns inventory
entries into double specs and reads the double's one-JSON-line-per-board announcement. It lives
with the lab, not the double: it knows boards.yaml, and the double never does.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

from rig.double.errors import DoubleError
from rig.double.spec import EmulatedBoardSpec
from rig.lab.board_config import BoardConfig, DoubleConfig
from rig.lab.power_config import PowerConfig


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
        self._proc: subprocess.Popen[bytes] | None = None
        self._launched = 0.0

    def start(self, timeout_s: float = 30.0) -> dict[str, dict]:
        """Launch the double; returns {board: {"power": resource, "console": path, ...}}."""
        self.launch()
        return self.ready(timeout_s)

    def launch(self) -> None:
        """Start the child and return at once: it takes ~0.2 s to come up, which the caller
        may spend on its own work (loading its drivers) before it asks for `ready`."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "rig", "double", "--json",
            "--boards-file", str(self.boards_file),
            "--board", ",".join(self.names),
            "--state-dir", str(self.state_dir),
            "--stop-on-stdin-eof",  # it stops when we do, even if we are killed
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.PIPE,
                start_new_session=True,  # Ctrl-C at the terminal reaches us, we stop it cleanly
            )  # fmt: skip
        self._launched = time.monotonic()

    def ready(self, timeout_s: float = 30.0) -> dict[str, dict]:
        """Wait (at most `timeout_s` from the launch) until every board is announced."""
        assert self._proc is not None and self._proc.stdout is not None, "launch() first"
        deadline = self._launched + timeout_s
        pending = b""
        with selectors.DefaultSelector() as selector:
            selector.register(self._proc.stdout, selectors.EVENT_READ)
            while set(self.names) - set(self.boards):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._proc.poll() is not None:
                    self.stop()
                    raise DoubleError(
                        f"the board double for {', '.join(self.names)} did not report ready "
                        f"within {timeout_s:g} s; its log: {self.log_path}"
                    )
                if not selector.select(timeout=min(remaining, 0.5)):
                    continue
                chunk = os.read(self._proc.stdout.fileno(), 65536)
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    with contextlib.suppress(ValueError):
                        info = json.loads(line)
                        self.boards[info["board"]] = info
        return self.boards

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, wait, then SIGKILL: never leave a double behind."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout_s)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None
