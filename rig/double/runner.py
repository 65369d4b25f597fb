"""Run emulated boards: for each, a supply model behind an SCPI server, wired to an MCU console.

`serve()` is what `rig double --json` runs in its own process: it announces where each board's
power supply and console are, then waits for SIGTERM/SIGINT and takes everything down, leaving no
thread behind. Signals only poke a pipe, so a second Ctrl-C during shutdown is harmless.

Every board's sockets and ptys are served by one reactor thread (rig.double.reactor), so a board
costs no thread until it is powered and a double holds 100 boards. A board that cannot start
fails the whole start with the reason; if the reactor dies later, `serve()` says so on stderr and
exits 1 instead of leaving announced boards that no longer answer.

The control channel (rig.double.control) takes, per board: `ota` (the ASR's service and
identity), `link` (fast/paced, baud), `fault` (arm one of rig.double.faults), `clear_faults`
(back to the boards.yaml baseline), `timeouts` (the ASR's stage timeouts) and `status` (power,
versions, staged bytes, faults, the ASR's job: what tests wait on).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import selectors
import signal
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TextIO

from rig.double.board_ota import BoardOta
from rig.double.catalogue import parse_fault
from rig.double.control import ControlServer
from rig.double.errors import DoubleError
from rig.double.mcu import IDLE, EmulatedMcu
from rig.double.psu import PsuModel
from rig.double.reactor import Reactor
from rig.double.scpi_server import ScpiServer
from rig.double.spec import EmulatedBoardSpec

# Descriptors one board may hold at its busiest: console pty (2), tap ptys (4) and capture file,
# SCPI listener and clients, the ASR's HTTP connection, flash files being rewritten.
FDS_PER_BOARD = 16
FDS_SPARE = 64  # the reactor, the control channel and its clients, the Python runtime


@dataclass(frozen=True)
class EmulatedBoard:
    """The running parts of one emulated board (tests may poke the models directly)."""

    spec: EmulatedBoardSpec
    psu: PsuModel
    server: ScpiServer
    mcu: EmulatedMcu
    ota: BoardOta

    def info(self) -> dict[str, object]:
        return {
            "board": self.spec.name,
            "power": self.server.resource,
            "console": self.mcu.port,
            "model": self.spec.model,
            "channel": self.spec.channel,
            "tap": self.ota.info(),
        }

    def close(self) -> None:
        self.server.close()  # first: no client can switch the MCU on while it is closing
        self.mcu.close()
        self.ota.close()


def _start_board(spec: EmulatedBoardSpec, state_root: Path, reactor: Reactor) -> EmulatedBoard:
    state_dir = spec.state_dir or state_root / spec.name
    ota = BoardOta(spec, state_dir, baud=spec.link_baud, paced=spec.link_speed == "paced")
    try:
        mcu = EmulatedMcu(spec, firmware=ota.running_version, on_power=ota.power,
                          on_boot=ota.booted, reactor=reactor)  # fmt: skip
    except BaseException:
        ota.close()
        raise
    ota.mcu = mcu

    def on_output(channel: int, on: bool, volts: float, amps_limit: float) -> None:
        if channel == spec.channel:
            mcu.power(on, volts, amps_limit)

    def draw(channel: int) -> float:
        if channel != spec.channel:
            return 0.0
        amps = mcu.draw()
        if mcu.state == IDLE and ota.receiving():  # writing flash: a power trace shows it
            amps += spec.flash_write_amps
        return amps

    psu = PsuModel(spec.model, on_output=on_output, draw=draw)
    try:
        server = ScpiServer(psu, port=spec.scpi_port, reactor=reactor)
    except BaseException as exc:
        mcu.close()
        ota.close()
        if isinstance(exc, OSError) and spec.scpi_port:
            raise DoubleError(f"emulated board {spec.name!r}: its supply's SCPI port "
                              f"{spec.scpi_port} cannot be opened: {exc.strerror or exc} (another "
                              "double or program holds it?)") from None  # fmt: skip
        raise
    return EmulatedBoard(spec, psu, server, mcu, ota)


def ensure_descriptors(boards: int) -> int:
    """Raise this process's open-file limit so `boards` boards fit; the soft limit it ends at.

    The soft limit is often 1024 while the hard limit is far higher: a double may raise it
    itself. DoubleError, naming the limit, when even the hard limit is too low."""
    need = boards * FDS_PER_BOARD + FDS_SPARE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft >= need:
        return soft
    if hard != resource.RLIM_INFINITY and hard < need:
        raise DoubleError(
            f"{boards} emulated boards need about {need} open files, but this process may open "
            f"at most {hard} (RLIMIT_NOFILE hard limit, `ulimit -Hn`): raise it (ulimit -Hn, "
            "limits.conf or the container's nofile setting) or split the boards over doubles"
        )
    target = hard if hard != resource.RLIM_INFINITY else max(need, soft)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


class Double:
    """All emulated boards of one run; started on construction, stopped by `close()`."""

    def __init__(self, specs: Iterable[EmulatedBoardSpec], state_root: Path | None = None) -> None:
        specs = list(specs)
        names = [spec.name for spec in specs]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise DoubleError(f"emulated board names must be unique: {', '.join(duplicates)}")
        self.boards: dict[str, EmulatedBoard] = {}
        self._scratch = None if state_root else tempfile.TemporaryDirectory(prefix="rig-double-")
        self._state_root = Path(state_root or self._scratch.name)
        self.control: ControlServer | None = None
        self.reactor: Reactor | None = None
        try:
            ensure_descriptors(len(specs))
            self.reactor = Reactor(name="double")
            for spec in specs:
                self.boards[spec.name] = _start_board(spec, self._state_root, self.reactor)
        except OSError as exc:
            self.close()
            raise DoubleError(
                f"could not start the board double for {spec.name!r}: {exc} "
                "(out of pseudo-terminals or local ports?)"
            ) from exc
        except BaseException:
            self.close()
            raise

        self.control = ControlServer({
            "ota": self._connect_ota, "link": self._set_link, "fault": self._add_fault,
            "clear_faults": self._clear_faults, "timeouts": self._set_timeouts,
            "status": self._status,
        })  # fmt: skip
        try:
            self.check()
        except DoubleError:
            self.close()
            raise

    def check(self) -> None:
        """DoubleError unless every board is still served (the reactor thread is alive)."""
        reactor = self.reactor
        if reactor is None or not reactor.alive():
            why = reactor.failed if reactor is not None else "closed"
            raise DoubleError(f"the board double's reactor thread is not running ({why!r}): "
                              f"its {len(self.boards)} boards no longer answer")  # fmt: skip

    def _connect_ota(self, request: dict) -> dict:
        """Control op `ota`: tell a board's ASR its OTA service URL, device id and secret."""
        board = self._board(request["board"])
        board.ota.connect(request["url"], request["device_id"], request["secret"])
        return {}

    def _set_link(self, request: dict) -> dict:
        """Control op `link`: speed fast/paced and baud, taking effect at the next power-on."""
        board = self._board(request["board"])
        speed = request.get("speed", "fast")
        if speed not in ("fast", "paced"):
            raise DoubleError(f"link speed {speed!r} is not fast or paced")
        board.ota.paced = speed == "paced"
        board.ota.baud = int(request.get("baud", board.ota.baud))
        board.ota.radio_bps = request.get("radio_bps", board.ota.radio_bps)
        return {"speed": speed, "baud": board.ota.baud}

    def _add_fault(self, request: dict) -> dict:
        """Control op `fault`: `{"board", "name", **params}` arms one (rig.double.faults)."""
        board = self._board(request["board"])
        fault = parse_fault({k: v for k, v in request.items() if k not in ("op", "board")})
        board.ota.add_fault(fault)
        return {"faults": board.ota.faults.active()}

    def _clear_faults(self, request: dict) -> dict:
        """Control op `clear_faults`: back to the faults boards.yaml gives the board."""
        board = self._board(request["board"])
        board.ota.clear_faults()
        return {"faults": board.ota.faults.active()}

    def _set_timeouts(self, request: dict) -> dict:
        """Control op `timeouts`: `{"board", "offer"?, "chunk"?, "verify"?, "version"?}` in s."""
        board = self._board(request["board"])
        board.ota.timeouts.update({k: v for k, v in request.items() if k not in ("op", "board")})
        return {"timeouts": board.ota.timeouts.as_dict()}

    def _status(self, request: dict) -> dict:
        """Control op `status`: power, running version, staged bytes, active faults, ..."""
        board = self._board(request["board"])
        return {"board": board.spec.name, **board.ota.status()}

    def _board(self, name: str) -> EmulatedBoard:
        if name not in self.boards:
            raise DoubleError(f"no emulated board {name!r} in this double")
        return self.boards[name]

    def info(self) -> list[dict[str, object]]:
        """Where each board is: {"board", "power" (VISA resource), "console", "tap", ...}."""
        control = self.control.port if self.control else None
        return [{**board.info(), "control": control} for board in self.boards.values()]

    def close(self) -> None:
        """Stop every board and join all their threads. Safe to call twice."""
        if self.control is not None:
            self.control.close()
            self.control = None
        while self.boards:
            _, board = self.boards.popitem()
            board.close()
        if self.reactor is not None:
            self.reactor.close()
            self.reactor = None
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    def __enter__(self) -> Double:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StopSignals:
    """SIGTERM/SIGINT -> a byte in a pipe; `wait()` returns once one has arrived."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __enter__(self) -> StopSignals:
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        self._previous = {sig: signal.signal(sig, self._on_signal) for sig in self.SIGNALS}
        return self

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(OSError):  # pipe full after many signals: one byte is enough
            os.write(self._write, b"\0")

    def fileno(self) -> int:
        """Readable once a signal arrived: a parent double selects on it with its children."""
        return self._read

    def poke(self) -> None:
        """Wake `wait()` from another thread (the reactor died)."""
        self._on_signal(0, None)

    def wait(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._read, selectors.EVENT_READ)
            selector.select()  # PEP 475: retried after each handler runs

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        os.close(self._read)
        os.close(self._write)


def ready_table(rows: list[dict[str, object]]) -> str:
    """The human announcement: one row per board, then how to stop the double."""
    header = ("BOARD", "MODEL", "CH", "POWER", "CONSOLE")
    cells = [header] + [
        (str(r["board"]), str(r["model"]), str(r["channel"]), str(r["power"]), str(r["console"]))
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in cells]  # fmt: skip
    return "\n".join(lines) + "\n\nboard double ready; stop it with Ctrl-C or SIGTERM\n"


def serve(specs: Iterable[EmulatedBoardSpec], *, as_json: bool, out: TextIO | None = None) -> int:
    """Run the double until SIGTERM or SIGINT; announce the boards on `out` (default stdout).

    With `as_json`, one JSON object per board per line, so a parent process can read them as they
    come. Must run in the main thread (it installs signal handlers). Returns the exit code: 0,
    or 1 if the double broke while running (said on stderr).
    """
    out = out if out is not None else sys.stdout
    with StopSignals() as stop, Double(specs) as double:
        assert double.reactor is not None
        double.reactor.on_failure.append(lambda exc: stop.poke())
        try:
            double.check()  # it may have died before the hook was in place
            rows = double.info()
            if as_json:
                out.write("".join(json.dumps(row) + "\n" for row in rows))
            else:
                out.write(ready_table(rows))
            out.flush()
            stop.wait()
            double.check()
        except DoubleError as exc:
            print(f"rig double: {exc}", file=sys.stderr)
            return 1
    return 0
