"""The one object that holds a run's state for every part of the plugin.

Fixtures reach it as `rig_session`, hooks with `session_of(config)`; nothing else in the plugin
keeps run state of its own. The inventory is read, and the lab opened, only when a test needs
them, so a run of tests without boards never touches boards.yaml; the modules behind them load
then too, so loading the plugin costs a run without boards next to nothing.

It owns what outlives the tests: the lab (boards, doubles) and the local OTA service, started
early for the first test (`warm_up`) and stopped in order at the very end (`close`).
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from rig.errors import RigError
from rig.pytestplugin.record import board_param
from rig.pytestplugin.services import (
    Background,
    FirstBoot,
    LocalOta,
    OtaEndpoint,
    first_boot,
    start_local_ota,
)

if TYPE_CHECKING:
    from rig.lab.inventory import Inventory, OtaConfig
    from rig.lab.setup import Lab
    from rig.ota.client import OtaClient
    from rig.ota.service.process import ServiceProcess
    from rig.report.board_records import BoardRecords

DEFAULT_BOARD = "emulated"
#: How long closing waits for a start still under way (a board lock, a slow double) to end.
SETTLE_S = 90.0


class RigSession:
    """What the plugin knows about this run: the inventory, the chosen boards, the lab, where
    records go."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.selector: str = config.getoption("rig_board") or DEFAULT_BOARD
        # as the run started (a test's monkeypatch must not change it), looked for when needed
        self._boards_file = config.getoption("rig_boards_file") or os.environ.get("RIG_BOARDS_FILE")
        self._inventory: Inventory | None = None
        self._names: list[str] | None = None
        self._records: BoardRecords | None = None
        self.problem: str | None = None  # why no board could be selected, said once collected
        self.lab: Lab | None = None
        self._lab_lock = threading.Lock()
        self._boots: dict[str, Background[FirstBoot]] = {}  # started early, not yet taken
        self._ota: Background[LocalOta] | None = None
        self._early: threading.Thread | None = None  # warm_up_early's, until warm_up joins it
        self._inventory_lock = threading.Lock()  # read by collection and the early warm-up

    @property
    def boards_file(self) -> Path:
        from rig.lab.inventory import find_boards_file

        return find_boards_file(self._boards_file, Path(str(self.config.rootpath)))

    def inventory(self) -> Inventory:
        with self._inventory_lock:
            if self._inventory is None:
                from rig.lab.inventory import load

                self._inventory = load(self.boards_file)
            return self._inventory

    def ota_config(self) -> tuple[OtaConfig, Path | None]:
        """boards.yaml's `ota:` section and the file's path; without a boards.yaml, a local
        service with the defaults (tests without boards still get one)."""
        from rig.lab.inventory import OtaConfig

        try:
            inv = self.inventory()
        except RigError:
            return OtaConfig(), None
        return inv.ota, inv.path

    def names(self) -> list[str]:
        """The selected boards; empty, with `problem` set, when the selection cannot be made."""
        if self._names is None:
            try:
                self._names = self.inventory().select(self.selector)
            except RigError as exc:
                self._names, self.problem = [], str(exc)
        return self._names

    def open_lab(self) -> Lab:
        with self._lab_lock:  # the warm-up may open it from its thread
            return self._open_lab()

    def _open_lab(self) -> Lab:
        if self.lab is None:
            from rig.lab.setup import Lab

            worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
            self.lab = Lab(
                self.inventory(),
                log_dir=self.log_dir,
                state_dir=Path(tempfile.mkdtemp(prefix=f"rig-state-{worker}-")),
                lock_timeout_s=self.config.getoption("rig_lock_timeout"),
            )
        return self.lab

    @property
    def log_dir(self) -> Path:
        """Where console, double and service logs go (`--rig-log-dir`, else a dated folder)."""
        chosen = self.config.getoption("rig_log_dir")
        root = Path(str(self.config.rootpath))
        return Path(chosen) if chosen else root / ".rig" / "logs" / run_stamp()

    @property
    def records(self) -> BoardRecords:
        """Where per-test and per-board records go (`--rig-report-dir`, else a dated folder)."""
        if self._records is None:
            chosen = self.config.getoption("rig_report_dir", None)
            root = Path(str(self.config.rootpath))
            folder = Path(chosen) if chosen else root / ".rig" / "reports" / run_stamp()
            from rig.report.board_records import BoardRecords

            self._records = BoardRecords(folder)
        return self._records

    @property
    def allure(self) -> bool:
        """Allure results are written (--alluredir): pictures are worth their ~70 ms each."""
        return bool(self.config.getoption("allure_report_dir", None))

    def warm_up_early(self) -> None:
        """As collection starts: a run that names its board (`--board`) will want that board
        and, when boards.yaml says `service: local`, the OTA service. Both start now, beside
        collection (seconds in a large suite), in one daemon thread. Emulated boards only: a
        real board is switched on when a collected test needs it. What the collected tests
        turn out not to need is given back by `warm_up`."""
        explicit = self.config.getoption("rig_board")
        if explicit and not self._xdist() and not self.config.option.collectonly:
            self._early = threading.Thread(target=self._speculate, name="rig-warm-up", daemon=True)
            self._early.start()

    def _speculate(self) -> None:
        from rig.ota.service.process import ServiceProcess

        # The longest to start: before all else, even before boards.yaml says whether the run
        # has a local service.
        service = ServiceProcess(self._ota_folder(), log_path=self._ota_log())
        service.launch()
        names = self.names()
        if self.ota_config()[0].service == "local":
            self._start_ota(service)
        else:
            service.stop()
        if names and self.inventory().boards[names[0]].kind == "emulated":
            board = names[0]
            self._boots[board] = Background(f"rig-boot-{board}", lambda: self._boot(board))

    def _xdist(self) -> bool:
        """An xdist worker (which does not know which board's tests it gets, and a board it
        started early would hold its lock) or controller (which runs no test)."""
        option = self.config.option
        return hasattr(self.config, "workerinput") or bool(getattr(option, "numprocesses", 0))

    def warm_up(self, items: list[pytest.Item]) -> None:
        """Start what the first test needs, side by side, before it asks: its board (double and
        first boot) and the local OTA service. Only the first test's: what later tests need
        starts when they ask, and no test is running meanwhile. A board started early that no
        collected test uses is given back at once (its lock may be wanted by another run)."""
        if self._early is not None:
            self._early.join()  # quick: it only launches
            self._early = None
        if self._xdist():
            return
        wanted = {board_param(i) for i in items if "board" in getattr(i, "fixturenames", ())}
        for name in [n for n in self._boots if n not in wanted]:
            self._boots.pop(name).settle(SETTLE_S)
            if self.lab is not None:
                self.lab.release(name)
        if not items:
            return
        first = items[0]
        if first.get_closest_marker("skip") is not None:
            return
        names = getattr(first, "fixturenames", ())
        board = board_param(first)
        if board is not None and "board" in names and board not in self._boots:
            self._boots[board] = Background(f"rig-boot-{board}", lambda: self._boot(board))
        if "ota_endpoint" in names and self.ota_config()[0].service == "local":
            self._start_ota()

    def _boot(self, name: str) -> FirstBoot:
        return first_boot(self.open_lab(), name)

    def boot_waiting(self, name: str) -> bool:
        """The warm-up set this board up and no test has taken the result yet: whatever went
        wrong belongs to the first test that asks, as an error, not as a skip."""
        return name in self._boots

    def first_boot(self, name: str) -> FirstBoot:
        """The board set up and booted once: taken from the warm-up, else done now."""
        early = self._boots.pop(name, None)
        return early.result() if early else self._boot(name)

    def local_ota(self) -> OtaEndpoint:
        """The run's local OTA service (started now unless the warm-up did); it runs until
        `close`, after the last board, whose ASR polls it to the end."""
        return self._start_ota().result().endpoint

    def take_ota_client(self, endpoint: OtaEndpoint) -> OtaClient | None:
        """The client the warm-up signed in to the local service, once (then None)."""
        if self._ota is None or not self._ota.done():
            return None
        local = self._ota.result()
        client, local.client = local.client, None
        return client if local.endpoint == endpoint else None

    def _start_ota(self, launched: ServiceProcess | None = None) -> Background[LocalOta]:
        if self._ota is None:
            ota = self.ota_config()[0]
            folder = launched.data_dir if launched else self._ota_folder()
            log = self._ota_log()
            work = lambda: start_local_ota(folder, ota, launched, log)  # noqa: E731
            self._ota = Background("rig-ota-service", work)
        return self._ota

    def _ota_log(self) -> Path:
        """The service's log beside the boards' (one per xdist worker: each runs its own)."""
        worker = getattr(self.config, "workerinput", {}).get("workerid")
        return self.log_dir / (f"ota-service-{worker}.log" if worker else "ota-service.log")

    def _ota_folder(self) -> Path:
        """A fresh folder in pytest's temporary tree (kept for a few runs, for a post-mortem)."""
        factory = getattr(self.config, "_tmp_path_factory", None)
        if factory is not None:
            return factory.mktemp("ota-service")
        return Path(tempfile.mkdtemp(prefix="rig-ota-service-"))

    def close(self) -> None:
        """Boards and doubles first, then the OTA service (their ASRs talk to it to the end)."""
        if self._early is not None:  # collection failed before warm_up joined it
            self._early.join(SETTLE_S)
        for early in self._boots.values():
            early.settle(SETTLE_S)
        if self.lab is not None:
            self.lab.close()
        if self._ota is not None:
            self._ota.settle(SETTLE_S)
            try:
                local = self._ota.result()
            except BaseException:  # it never started: the fixture that asked said why
                return
            if local.client is not None:  # nobody took it
                local.client.close()
            local.service.stop()


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
