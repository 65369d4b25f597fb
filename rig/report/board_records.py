"""What a run learnt per board, as `boards/<name>.json`: what the nightly summary shows.

Firmware before and after the run, boot time, median OTA throughput, and why a board was lost.
Each write replaces the file atomically, so a reader (the nightly summary, a second worker)
never sees half a record.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
from pathlib import Path
from typing import Any

from rig.lab.board import Board
from rig.lab.inventory import BoardConfig
from rig.report.measure import Measurement


class BoardRecords:
    """Where this run's records go, and what it learnt per board."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.boards: dict[str, dict[str, Any]] = {}
        self.throughputs: dict[str, list[float]] = {}

    def board_seen(self, board: Board) -> None:
        """The first test on a board: its identity and the firmware it ran before the run."""
        if board.name not in self.boards:
            self._new(board.name, board.config, firmware=board.firmware, boot=board.last_boot_s)

    def board_lost(self, name: str, config: BoardConfig, reason: str) -> None:
        """A board taken out of the run: its record says why (the summary's note)."""
        if name not in self.boards:
            self._new(name, config)
        self.boards[name]["broken"] = reason.splitlines()[0]
        self.write_board(name)

    def _new(self, name: str, config: BoardConfig, firmware: str | None = None,
             boot: float | None = None) -> None:  # fmt: skip
        self.boards[name] = {
            "board": name,
            "kind": config.kind,
            "device_type": config.device_type,
            "host": config.host or socket.gethostname(),
            "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
            "firmware_before": firmware,
            "firmware_after": None,
            "boot_time_s": boot,
            "ota_throughput_Bps": None,
            "broken": None,
        }
        self.write_board(name)

    def measured(self, board: str | None, item: Measurement) -> None:
        if board and item.name == "handoff_throughput" and item.unit == "KiB/s":
            self.throughputs.setdefault(board, []).append(item.value * 1024)

    def write_board(self, name: str) -> None:
        data = self.boards[name]
        if self.throughputs.get(name):
            data["ota_throughput_Bps"] = statistics.median(self.throughputs[name])
        folder = self.folder / "boards"
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f"{name}.json.tmp"
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(folder / f"{name}.json")
