"""The boards one run uses: locked, wired to their drivers, and always released.

The plugin and the CLI both go through a Lab, so a board is set up the same way at the bench,
in the nightly run and in CI. Setup is lazy (a run that selects three boards but only reaches
tests for one touches one) and a board that fails to set up keeps failing fast with the same
message instead of being retried by every test.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from pathlib import Path

from rig.errors import RigError
from rig.instruments.console import Console
from rig.lab.board import Board
from rig.lab.double_process import DoubleProcess
from rig.lab.inventory import BoardConfig, Inventory
from rig.lab.lock import BoardLock
from rig.lab.power_config import PowerConfig

log = logging.getLogger(__name__)


class BoardSetupError(RigError):
    """A board could not be made ready; the message says which part and why."""


def visa_library(inventory: Inventory, library: str) -> str:
    """`fixtures/x.yaml@sim` in boards.yaml is relative to the boards file."""
    path, at, backend = library.rpartition("@")
    if at and path and not Path(path).is_absolute():
        return f"{inventory.resolve(path)}@{backend}"
    return library


def lock_key(inventory: Inventory, name: str) -> str:
    """Real boards are locked by name; emulated ones per boards file (each run has its own)."""
    if inventory.boards[name].kind == "real":
        return name
    digest = hashlib.sha1(str(inventory.path).encode()).hexdigest()[:10]
    return f"{name}-emulated-{digest}"


class Lab:
    """Boards in use by this process."""

    def __init__(
        self,
        inventory: Inventory,
        *,
        log_dir: Path,
        state_dir: Path,
        lock_timeout_s: float = 60.0,
        lock_dir: Path | None = None,
    ) -> None:
        self.inventory = inventory
        self.log_dir = log_dir
        self.state_dir = state_dir
        self.lock_timeout_s = lock_timeout_s
        self.lock_dir = lock_dir
        self._boards: dict[str, Board] = {}
        self._broken: dict[str, str] = {}
        self._cleanups: dict[str, list] = {}
        self.dirty: set[str] = set()  # boards whose last test failed: rebooted before the next

    def broken(self, name: str) -> str | None:
        """Why the board cannot be used any more in this run, or None while it can."""
        return self._broken.get(name)

    def mark_broken(self, name: str, reason: str) -> None:
        """Take the board out of this run (its remaining tests are skipped with `reason`)."""
        self._broken.setdefault(name, reason)

    def ready(self) -> dict[str, Board]:
        """The boards set up so far and still usable."""
        return {n: b for n, b in self._boards.items() if n not in self._broken}

    def board(self, name: str) -> Board:
        """The ready board, setting it up on first use."""
        if name in self._broken:
            raise BoardSetupError(self._broken[name])
        if name not in self._boards:
            try:
                self._boards[name] = self._setup(name, self.inventory.boards[name])
            except RigError as exc:
                self._teardown(name)
                self._broken[name] = f"board {name!r} could not be set up: {exc}"
                raise BoardSetupError(self._broken[name]) from None
        return self._boards[name]

    def lock_key(self, name: str) -> str:
        """The key of the board's lock (see `lock_key`)."""
        return lock_key(self.inventory, name)

    def _setup(self, name: str, config: BoardConfig) -> Board:
        cleanups = self._cleanups.setdefault(name, [])
        lock = BoardLock(self.lock_key(name), board=name, lock_dir=self.lock_dir)
        lock.acquire(self.lock_timeout_s)
        cleanups.append(lock.release)

        power = config.power or PowerConfig()
        resource, port = power.resource, config.console.port
        tap = config.tap.model_dump(exclude={"baud"}) if config.tap else None
        control = None
        double = None
        if config.kind == "emulated":
            double = DoubleProcess(
                self.inventory.path, [name], state_dir=self.state_dir,
                log_path=self.log_dir / f"{name}.double.log",
            )  # fmt: skip
            cleanups.append(double.stop)
            double.launch()  # it takes ~0.2 s to come up: the drivers load meanwhile
        from rig.instruments.power import PowerSupply  # pyvisa, ~0.1 s

        if double is not None:
            info = double.ready()[name]
            resource, port = info["power"], info["console"]
            tap, control = info.get("tap"), info.get("control")
        assert resource is not None and port is not None  # the schema guarantees both

        console = Console(
            port, baud=config.console.baud, name=name,
            log_path=self.log_dir / f"{name}.console.log",
        )  # fmt: skip
        console.open()  # before any power change, so no boot output is lost
        cleanups.append(console.close)

        supply = PowerSupply(
            resource, model=power.model, dialect=power.supply_dialect(), channel=power.channel,
            visa_library=visa_library(self.inventory, power.visa_library),
            timeout_s=power.timeout_s, off_s=power.off_s, name=name, observer=console.mark,
            # a double just started: its output has never been on, there is nothing to drain
            off_since=float("-inf") if double is not None else None,
        )  # fmt: skip
        supply.open()
        cleanups.append(supply.close)
        cleanups.append(supply.off)  # runs first: leave the board unpowered, a known state
        supply.configure(power.volts, power.amps)
        console.mark(f"power supply: {supply.identity}")
        return Board(name=name, config=config, power=supply, console=console, tap=tap,
                     control_port=control, boards_file=self.inventory.path)  # fmt: skip

    def _teardown(self, name: str) -> None:
        for step in reversed(self._cleanups.pop(name, [])):
            try:
                step()
            except Exception as exc:  # teardown goes on: every later step still must run
                log.warning("rig: teardown of board %s: %s failed: %s", name, step, exc)

    def release(self, name: str) -> None:
        """Give one board back before the run ends: power off, ports closed, double stopped,
        unlocked (a board set up early that no test of the run turned out to use)."""
        self._boards.pop(name, None)
        self._teardown(name)

    def close(self) -> None:
        """Release every board: power off, close ports, stop doubles, unlock."""
        for name in list(self._cleanups):
            self._teardown(name)
        self._boards.clear()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.close()
