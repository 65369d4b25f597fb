"""`rig boards --probe`: before a night run, is every part of each board there?

Each part is checked on its own with the real drivers, so one missing part never hides another:
the supply answers `*IDN?`, the console and the sniffer ports open, and (when asked) the banner
comes after a power cycle. Emulated boards are probed through a double started for the probe,
real boards where boards.yaml says they are; every wait is bounded by the board's own timeouts.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import serial

from rig.errors import RigError
from rig.instruments.console import Console
from rig.instruments.power import PowerSupply
from rig.lab.board import Board
from rig.lab.console_errors import BannerTimeout, key_site
from rig.lab.double_process import DoubleProcess
from rig.lab.inventory import BoardConfig, Inventory
from rig.lab.lock import BoardLock
from rig.lab.power_config import PowerConfig
from rig.lab.setup import lock_key, visa_library

OK, FAIL, NOT_PROBED = "ok", "FAIL", "-"


@dataclass
class Cell:
    """One part of one board: what the probe found (shown), and why it failed (note)."""

    shown: str = NOT_PROBED
    note: str = ""

    @property
    def failed(self) -> bool:
        return self.shown == FAIL


@dataclass
class BoardProbe:
    """What the probe found for one board; `ok` when nothing it looked at is missing."""

    name: str
    kind: str
    supply: Cell = field(default_factory=Cell)
    console: Cell = field(default_factory=Cell)
    tap: Cell = field(default_factory=Cell)
    boot: Cell = field(default_factory=Cell)
    firmware: str = NOT_PROBED
    problem: str = ""  # why the board could not be probed at all (in use, no double)

    @property
    def cells(self) -> list[Cell]:
        return [self.supply, self.console, self.tap, self.boot]

    @property
    def ok(self) -> bool:
        return not self.problem and not any(cell.failed for cell in self.cells)

    @property
    def note(self) -> str:
        notes = [self.problem] + [cell.note for cell in self.cells]
        return "; ".join(n for n in notes if n) or NOT_PROBED


def probe(inventory: Inventory, names: list[str], *, boot: bool, log_dir: Path) -> list[BoardProbe]:
    """Probe each named board of the inventory, in order; nothing raised for a missing part."""
    emulated = [n for n in names if inventory.boards[n].kind == "emulated"]
    state_dir = Path(tempfile.mkdtemp(prefix="rig-probe-"))
    double = DoubleProcess(
        inventory.path, emulated, state_dir=state_dir, log_path=log_dir / "double.log"
    )
    doubled: dict[str, dict] = {}
    double_problem = ""
    try:
        if emulated:
            try:
                doubled = double.start()
            except RigError as exc:  # its message names the double's log
                double_problem = str(exc).splitlines()[0]
        return [
            _probe_board(
                inventory, name, doubled.get(name), double_problem, boot=boot, log_dir=log_dir
            )
            for name in names
        ]
    finally:
        double.stop()
        shutil.rmtree(state_dir, ignore_errors=True)


def _probe_board(
    inventory: Inventory,
    name: str,
    doubled: dict | None,
    double_problem: str,
    *,
    boot: bool,
    log_dir: Path,
) -> BoardProbe:
    config = inventory.boards[name]
    found = BoardProbe(name, config.kind)
    if config.kind == "emulated" and doubled is None:
        found.problem = double_problem or "double: it did not announce this board"
        return found
    with contextlib.ExitStack() as cleanups:
        if config.kind == "real":
            lock = BoardLock(lock_key(inventory, name), board=name)
            try:
                lock.acquire(0)
            except RigError:
                found.problem = f"in use by {lock.holder()}"
                return found
            cleanups.callback(lock.release)
        resource, port, tap = _where(config, doubled)
        power = config.power or PowerConfig()
        supply = PowerSupply(
            resource, model=power.model, channel=power.channel,
            visa_library=visa_library(inventory, power.visa_library),
            timeout_s=power.timeout_s, off_s=power.off_s, name=name,
        )  # fmt: skip
        found.supply = _check(lambda: _identify(supply, power.channel), f"supply {resource}")
        cleanups.callback(supply.close)
        console = Console(
            port, baud=config.console.baud, name=name, log_path=log_dir / f"{name}.console.log"
        )
        found.console = _check(lambda: _open(console), f"console {port}")
        cleanups.callback(console.close)
        if tap is not None:
            found.tap = _tap(tap, config.tap.baud if config.tap else 115200)
        if boot and not (found.supply.failed or found.console.failed):
            board = Board(name=name, config=config, power=supply, console=console,
                          boards_file=inventory.path)  # fmt: skip
            cleanups.callback(_quietly_off, supply)  # leave it unpowered, as a run does
            found.boot, found.firmware = _boot(board, power, inventory.path)
    return found


def _where(config: BoardConfig, doubled: dict | None) -> tuple[str, str, dict[str, str] | None]:
    """The supply resource, console port and sniffer ports: boards.yaml's, or the double's."""
    if doubled is not None:
        return doubled["power"], doubled["console"], doubled.get("tap")
    assert config.power is not None and config.power.resource and config.console.port
    tap = config.tap.model_dump(exclude={"baud"}) if config.tap else None
    return config.power.resource, config.console.port, tap


def _check(step: Callable[[], str], what: str) -> Cell:
    """The step's answer as the cell, or FAIL with the reason in a few words."""
    try:
        return Cell(step())
    except RigError as exc:
        return Cell(FAIL, f"{what}: {_brief(exc)}")


def _identify(supply: PowerSupply, channel: int) -> str:
    """`*IDN?` → maker and model, e.g. 'RIGOL TECHNOLOGIES DP832 ch2'."""
    identity = supply.open()
    return f"{' '.join(identity.split(',')[:2]).strip()} ch{channel}"


def _open(console: Console) -> str:
    """The console port opens (and stays open for --boot to read the banner)."""
    console.open()
    return OK


def _tap(ports: dict[str, str], baud: int) -> Cell:
    """Both sniffer ports open (each said on its own: one may be missing, or both)."""
    missing = []
    for direction in ("asr_to_mcu", "mcu_to_asr"):
        url = ports[direction]
        try:
            serial.serial_for_url(url, baudrate=baud, timeout=0.05).close()
        except (serial.SerialException, OSError, ValueError) as exc:
            missing.append(f"tap.{direction} {url}: {_brief(exc)}")
    return Cell(FAIL, "; ".join(missing)) if missing else Cell(OK)


def _boot(board: Board, power: PowerConfig, boards_file: Path) -> tuple[Cell, str]:
    """Power-cycle to the banner: (boot time cell, firmware version)."""
    try:
        board.power.configure(power.volts, power.amps)
        version = board.boot()
    except BannerTimeout as exc:
        last = f"last line {exc.tail[-1]!r}" if exc.tail else "nothing received"
        where = key_site(boards_file, board.name, "banner")
        note = f"boot: no banner within {exc.timeout_s:g} s ({where}); {last}"
        return Cell(FAIL, note), NOT_PROBED
    except RigError as exc:
        return Cell(FAIL, f"boot: {_brief(exc)}"), NOT_PROBED
    return Cell(f"{board.last_boot_s:.2f}"), version


def _quietly_off(supply: PowerSupply) -> None:
    with contextlib.suppress(RigError):
        supply.off()


def _brief(exc: BaseException) -> str:
    """The root cause in a few words: the OS's reason when there is one ('connection refused',
    'no such file or directory'), else the message's reason without where and what to do."""
    cause: BaseException = exc
    while cause.__context__ is not None:
        cause = cause.__context__
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror.lower()
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return first.split(". ")[0].rsplit(": ", 1)[-1]
