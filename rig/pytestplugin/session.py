"""The one object that holds a run's state for every part of the plugin.

Fixtures reach it as `rig_session`, hooks with `session_of(config)`; nothing else in the plugin
keeps run state of its own. The inventory is read, and the lab opened, only when a test needs
them, so a run of tests without boards never touches boards.yaml.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pytest

from rig.errors import RigError
from rig.lab import inventory
from rig.lab.setup import Lab
from rig.report.board_records import BoardRecords

DEFAULT_BOARD = "emulated"


class RigSession:
    """What the plugin knows about this run: the inventory, the chosen boards, the lab, where
    records go."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.selector: str = config.getoption("rig_board") or DEFAULT_BOARD
        self.boards_file = inventory.find_boards_file(
            config.getoption("rig_boards_file"), Path(str(config.rootpath))
        )
        self._inventory: inventory.Inventory | None = None
        self._names: list[str] | None = None
        self._records: BoardRecords | None = None
        self.problem: str | None = None  # why no board could be selected, said once collected
        self.lab: Lab | None = None

    def inventory(self) -> inventory.Inventory:
        if self._inventory is None:
            self._inventory = inventory.load(self.boards_file)
        return self._inventory

    def names(self) -> list[str]:
        """The selected boards; empty, with `problem` set, when the selection cannot be made."""
        if self._names is None:
            try:
                self._names = self.inventory().select(self.selector)
            except RigError as exc:
                self._names, self.problem = [], str(exc)
        return self._names

    def open_lab(self) -> Lab:
        if self.lab is None:
            worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
            log_dir = self.config.getoption("rig_log_dir")
            root = Path(str(self.config.rootpath))
            logs = Path(log_dir) if log_dir else root / ".rig" / "logs" / run_stamp()
            self.lab = Lab(
                self.inventory(),
                log_dir=logs,
                state_dir=Path(tempfile.mkdtemp(prefix=f"rig-state-{worker}-")),
                lock_timeout_s=self.config.getoption("rig_lock_timeout"),
            )
        return self.lab

    @property
    def records(self) -> BoardRecords:
        """Where per-test and per-board records go (`--rig-report-dir`, else a dated folder)."""
        if self._records is None:
            chosen = self.config.getoption("rig_report_dir", None)
            root = Path(str(self.config.rootpath))
            folder = Path(chosen) if chosen else root / ".rig" / "reports" / run_stamp()
            self._records = BoardRecords(folder)
        return self._records

    @property
    def allure(self) -> bool:
        """Allure results are written (--alluredir): pictures are worth their ~70 ms each."""
        return bool(self.config.getoption("allure_report_dir", None))

    def close(self) -> None:
        if self.lab is not None:
            self.lab.close()


_KEY = pytest.StashKey[RigSession]()


def start_session(config: pytest.Config) -> RigSession:
    config.stash[_KEY] = RigSession(config)
    return config.stash[_KEY]


def session_of(config: pytest.Config) -> RigSession:
    """This run's session (the plugin starts it in pytest_configure)."""
    return config.stash[_KEY]


def find_session(config: pytest.Config) -> RigSession | None:
    """This run's session, or None where configuration never got that far (teardown hooks)."""
    return config.stash.get(_KEY, None)


def run_stamp() -> str:
    """This run's name for its default log and report folders; xdist workers inherit it."""
    return os.environ.setdefault("RIG_RUN_STAMP", time.strftime("%Y%m%d-%H%M%S"))
