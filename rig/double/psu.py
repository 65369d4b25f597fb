"""A three-channel SCPI bench power supply as a pure model: lines in, replies out, no sockets.

The double's job is to exercise the real power driver, so the model answers the way the lab's
supplies do: the same two dialects, errors only visible through `SYST:ERR?`, no reply at all for a
failed query, and a debug hook (`DIAG:DELAY`) that makes a reply late on purpose. The board side
is reached only through two callbacks, so the model knows nothing about MCUs.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from rig.double import scpi
from rig.double.scpi import ScpiError
from rig.double.spec import CHANNELS, MODELS

IDN = {
    "generic": "RIG,DOUBLE-PSU,0001,0.1",
    "rigol-dp832": "RIGOL TECHNOLOGIES,DP832,DP8B000000001,00.01.16",
}
MAX_VOLTS = 30.0
MAX_AMPS = 3.0
DEFAULT_VOLTS = 3.3
DEFAULT_AMPS = 1.0
MAX_DELAY_S = 60.0
ERROR_QUEUE_LEN = 16
NO_ERROR = '0,"No error"'

OnOutput = Callable[[int, bool, float, float], None]
Draw = Callable[[int], float]
Args = tuple[str, ...]

_CHANNEL_ARG = re.compile(r"CH(\d+)", re.IGNORECASE)
# Nodes that may be left out: OUTPut[:STATe], MEASure:VOLTage[:DC]?, SYSTem:ERRor[:NEXT]?, and
# VOLTage[:LEVel][:IMMediate][:AMPLitude] (the last is handled in `_route`).
_OPTIONAL_LAST = {("OUTP", "STAT"), ("MEAS", "VOLT", "DC"), ("MEAS", "CURR", "DC")}
_OPTIONAL_LAST |= {("SYST", "ERR", "NEXT")}
_LEVEL_NODES = ("LEV", "IMM", "AMPL")


@dataclass
class _Channel:
    on: bool = False
    volts: float = DEFAULT_VOLTS
    amps: float = DEFAULT_AMPS


class PsuModel:
    """Thread-safe state of one supply; `handle` is its whole SCPI surface."""

    def __init__(
        self,
        model: str = "generic",
        *,
        on_output: OnOutput | None = None,
        draw: Draw | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if model not in MODELS:
            raise ValueError(f"unknown power model {model!r}; expected one of {MODELS}")
        self.model = model
        self._rigol = model == "rigol-dp832"
        self._on_output = on_output or (lambda channel, on, volts, amps: None)
        self._draw = draw or (lambda channel: 0.0)
        self._rng = rng or random.Random()
        self._lock = threading.RLock()
        self._channels = {number: _Channel() for number in CHANNELS}
        self._selected = 1
        self._errors: deque[str] = deque()
        self._pending_delay = 0.0

    def handle(self, line: str) -> str | None:
        """Run one line (commands may be joined by ';'); return the reply, or None if none."""
        reply, delay = self.handle_timed(line)
        if delay > 0:
            time.sleep(delay)
        return reply

    def handle_timed(self, line: str) -> tuple[str | None, float]:
        """Like `handle`, but return how long to hold the reply back instead of sleeping.

        The server waits on its own stop event, so a pending `DIAG:DELAY` never stalls shutdown.
        """
        with self._lock:
            return self._run_line(line)

    def try_handle_timed(self, line: str) -> tuple[str | None, float] | None:
        """`handle_timed` if the supply is free right now, else None (without waiting).

        The double's reactor answers queries itself this way; while another client's command
        is switching the board (and the lock is held), the query goes to a worker instead."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            return self._run_line(line)
        finally:
            self._lock.release()

    def _run_line(self, line: str) -> tuple[str | None, float]:
        """Under self._lock: every command of the line; the joined replies and their delay."""
        replies: list[str] = []
        for part in line.split(";"):
            if not part.strip():
                continue
            try:
                reply = self._execute(scpi.parse(part))
            except ScpiError as err:
                self._push_error(err.entry)
                continue
            if reply is not None:
                replies.append(reply)
        if not replies:
            return None, 0.0
        delay, self._pending_delay = self._pending_delay, 0.0
        return ";".join(replies), delay

    def output(self, channel: int) -> tuple[bool, float, float]:
        """(on, volts setpoint, current limit) of a channel, for tests and the runner."""
        with self._lock:
            ch = self._channels[channel]
            return ch.on, ch.volts, ch.amps

    # -- routing -------------------------------------------------------------------------------

    def _execute(self, cmd: scpi.Command) -> str | None:
        if cmd.nodes[0].startswith("*"):
            return self._common(cmd.nodes[0], cmd.query, cmd.args)
        nodes, source = self._route(cmd)
        handler = self._HANDLERS.get(nodes)
        if handler is None:
            raise scpi.undefined_header()
        return handler(self, cmd.query, cmd.args, source)

    def _route(self, cmd: scpi.Command) -> tuple[tuple[str, ...], int | None]:
        """Drop optional nodes; return the canonical path and a `SOURn` channel, if any."""
        nodes, suffixes = list(cmd.nodes), list(cmd.suffixes)
        source = None
        if nodes[0] == "SOUR":  # [SOURce[n]:]VOLTage|CURRent; the suffix is Rigol-only
            if nodes[1:2] not in (["VOLT"], ["CURR"]) or (suffixes[0] and not self._rigol):
                raise scpi.undefined_header()
            source = suffixes[0]
            if source is not None and source not in CHANNELS:
                raise ScpiError(-114, "Header suffix out of range")
            nodes, suffixes = nodes[1:], suffixes[1:]
        if any(s is not None for s in suffixes):
            raise scpi.undefined_header()
        if nodes[0] in ("VOLT", "CURR"):
            nodes = nodes[:1] + [n for n in nodes[1:] if n not in _LEVEL_NODES]
        if tuple(nodes) in _OPTIONAL_LAST:
            nodes = nodes[:-1]
        return tuple(nodes), source

    def _channel(self, args: Args, source: int | None, max_args: int) -> tuple[int, Args]:
        """The addressed channel: `SOURn`, else a leading Rigol `CHn` argument, else selected."""
        if self._rigol and args and (match := _CHANNEL_ARG.fullmatch(args[0])):
            if source is not None:
                raise scpi.not_allowed()
            source, args = int(match.group(1)), args[1:]
            if source not in CHANNELS:
                raise scpi.out_of_range()
        if len(args) > max_args:
            raise scpi.not_allowed()
        return (source or self._selected), args

    # -- commands ------------------------------------------------------------------------------

    def _common(self, header: str, query: bool, args: Args) -> str | None:
        if args:
            raise scpi.not_allowed()
        if header == "*IDN" and query:
            return IDN[self.model]
        if header == "*OPC":
            return "1" if query else None
        if header == "*CLS" and not query:
            self._errors.clear()
            return None
        if header == "*RST" and not query:
            self._selected = 1
            self._pending_delay = 0.0
            for number in CHANNELS:
                self._set(number, on=False, volts=DEFAULT_VOLTS, amps=DEFAULT_AMPS)
            return None
        raise scpi.undefined_header()

    def _inst_nsel(self, query: bool, args: Args, _source: int | None) -> str | None:
        if query:
            if args:
                raise scpi.not_allowed()
            return str(self._selected)
        try:
            number = int(scpi.one_arg(args))
        except ValueError:
            raise scpi.data_type_error() from None
        if number not in CHANNELS:
            raise scpi.out_of_range()
        self._selected = number
        return None

    def _inst_select(self, query: bool, args: Args, _source: int | None) -> str | None:
        """Rigol `:INST[:SEL] CHn` / `:INST?` -> `CHn`."""
        if not self._rigol:
            raise scpi.undefined_header()
        if query:
            if args:
                raise scpi.not_allowed()
            return f"CH{self._selected}"
        match = _CHANNEL_ARG.fullmatch(scpi.one_arg(args))
        if match is None:
            raise scpi.data_type_error()
        if int(match.group(1)) not in CHANNELS:
            raise scpi.out_of_range()
        self._selected = int(match.group(1))
        return None

    def _volt(self, query: bool, args: Args, source: int | None) -> str | None:
        number, args = self._channel(args, source, 0 if query else 1)
        if query:
            return f"{self._channels[number].volts:.3f}"
        self._set(number, volts=scpi.number_arg(args, MAX_VOLTS))
        return None

    def _curr(self, query: bool, args: Args, source: int | None) -> str | None:
        number, args = self._channel(args, source, 0 if query else 1)
        if query:
            return f"{self._channels[number].amps:.4f}"
        self._set(number, amps=scpi.number_arg(args, MAX_AMPS))
        return None

    def _outp(self, query: bool, args: Args, source: int | None) -> str | None:
        number, args = self._channel(args, source, 0 if query else 1)
        if query:
            on = self._channels[number].on
            return ("ON" if on else "OFF") if self._rigol else ("1" if on else "0")
        self._set(number, on=scpi.bool_arg(args))
        return None

    def _measure(self, query: bool, args: Args, source: int | None) -> tuple[float, float]:
        """(volts, amps) at the output terminals: the setpoint and the board's draw when on."""
        if not query:
            raise scpi.undefined_header()
        number, _ = self._channel(args, source, 0)
        ch = self._channels[number]
        if not ch.on:
            return 0.0, 0.0
        volts = max(0.0, ch.volts + self._rng.uniform(-0.0004, 0.0004))
        return volts, min(max(0.0, self._draw(number)), ch.amps)

    def _meas_volt(self, query: bool, args: Args, source: int | None) -> str:
        return f"{self._measure(query, args, source)[0]:.3f}"

    def _meas_curr(self, query: bool, args: Args, source: int | None) -> str:
        return f"{self._measure(query, args, source)[1]:.4f}"

    def _meas_rigol(self, query: bool, args: Args, source: int | None) -> str:
        """`:MEAS? CHn`: voltage is the default node on a DP800."""
        if not self._rigol:
            raise scpi.undefined_header()
        return self._meas_volt(query, args, source)

    def _meas_all(self, query: bool, args: Args, source: int | None) -> str:
        """`:MEAS:ALL? CHn` -> volts,amps,watts as a DP800 answers it."""
        if not self._rigol:
            raise scpi.undefined_header()
        volts, amps = self._measure(query, args, source)
        return f"{volts:.3f},{amps:.4f},{volts * amps:.3f}"

    def _syst_err(self, query: bool, args: Args, _source: int | None) -> str:
        if not query:
            raise scpi.undefined_header()
        if args:
            raise scpi.not_allowed()
        return self._errors.popleft() if self._errors else NO_ERROR

    def _syst_vers(self, query: bool, args: Args, _source: int | None) -> str:
        if not query or args:
            raise scpi.undefined_header()
        return "1999.0"

    def _diag_delay(self, query: bool, args: Args, _source: int | None) -> None:
        """Double-only: hold back the reply to the next query by the given seconds."""
        if query:
            raise scpi.undefined_header()
        self._pending_delay = scpi.number_arg(args, MAX_DELAY_S)

    _HANDLERS: dict[tuple[str, ...], Callable[..., str | None]] = {
        ("INST", "NSEL"): _inst_nsel,
        ("INST",): _inst_select,
        ("INST", "SEL"): _inst_select,
        ("VOLT",): _volt,
        ("CURR",): _curr,
        ("OUTP",): _outp,
        ("MEAS",): _meas_rigol,
        ("MEAS", "VOLT"): _meas_volt,
        ("MEAS", "CURR"): _meas_curr,
        ("MEAS", "ALL"): _meas_all,
        ("SYST", "ERR"): _syst_err,
        ("SYST", "VERS"): _syst_vers,
        ("DIAG", "DEL"): _diag_delay,
    }

    # -- state ---------------------------------------------------------------------------------

    def _set(self, number: int, **changes: float | bool) -> None:
        """Apply changes to a channel; tell the board side only when something really changed."""
        ch = self._channels[number]
        before = (ch.on, ch.volts, ch.amps)
        for key, value in changes.items():
            setattr(ch, key, value)
        if (ch.on, ch.volts, ch.amps) != before:
            # Called under the lock on purpose: when two clients race ON and OFF, the board must
            # see them in the order the supply applied them. Callbacks must not block.
            self._on_output(number, ch.on, ch.volts, ch.amps)

    def _push_error(self, entry: str) -> None:
        if len(self._errors) >= ERROR_QUEUE_LEN:
            self._errors[-1] = '-350,"Queue overflow"'
            return
        self._errors.append(entry)
