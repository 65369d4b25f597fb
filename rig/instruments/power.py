"""Bench power supplies over SCPI, through pyvisa.

The driver keeps the VISA session honest: terminations are set explicitly, `*IDN?` proves the
instrument is there, every setting is followed by `SYST:ERR?`, and a query that times out
reopens the session so a late reply can never be taken as the answer to the next question.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

import pyvisa
from pyvisa import constants, errors

from rig.errors import RigError
from rig.instruments.power_dialects import DIALECTS, Dialect

MAX_QUEUED_ERRORS = 16


class PowerError(RigError):
    """The power supply could not be reached, did not answer, or refused a setting."""


class PowerSupply:
    """One channel of a SCPI power supply (a `PowerProtocol`)."""

    def __init__(
        self,
        resource: str,
        *,
        model: str = "generic",
        channel: int = 1,
        visa_library: str = "@py",
        timeout_s: float = 2.0,
        off_s: float = 1.0,
        name: str = "board",
        observer: Callable[[str], None] | None = None,
    ) -> None:
        if model not in DIALECTS:
            raise PowerError(f"{name}: unknown power model {model!r}; known: {', '.join(DIALECTS)}")
        self.resource = resource
        self.model = model
        self.dialect: Dialect = DIALECTS[model]
        self.channel = channel
        self.visa_library = visa_library
        self.timeout_s = timeout_s
        self.off_s = off_s
        self.name = name
        self.observer = observer  # told of every output change, e.g. to mark the console log
        self.identity = ""
        self._manager: pyvisa.ResourceManager | None = None
        self._session: pyvisa.resources.MessageBasedResource | None = None
        # One exchange at a time: a power trace samples MEAS:CURR? from its own thread while
        # the test switches the output, and a channel select must stay next to its command.
        self._lock = threading.RLock()

    # -- session -------------------------------------------------------------------------------

    def open(self) -> str:
        """Connect and identify the instrument; returns its `*IDN?` answer."""
        where = f"{self.name}: power supply {self.resource} (VISA library {self.visa_library})"
        try:
            if self._manager is None:
                self._manager = pyvisa.ResourceManager(self.visa_library)
            session = self._manager.open_resource(self.resource)
        except (errors.Error, OSError, ValueError) as exc:
            raise PowerError(
                f"{where}: cannot open it: {exc}. Check the instrument is on and reachable, and "
                f"the resource in boards.yaml (boards.{self.name}.power.resource)."
            ) from None
        session.read_termination = "\n"
        session.write_termination = "\n"
        session.timeout = int(self.timeout_s * 1000)
        self._session = session
        try:
            self.identity = self._query("*IDN?")
        except PowerError:
            self.close()
            raise PowerError(
                f"{where}: nothing answered *IDN? within {self.timeout_s:g} s. Check it is "
                "powered and reachable, that the port is its SCPI port and uses \\n "
                f"terminations, and boards.{self.name}.power.resource in boards.yaml."
            ) from None
        return self.identity

    def close(self) -> None:
        if self._session is not None:
            with contextlib.suppress(Exception):
                self._session.close()
            self._session = None

    def __enter__(self) -> PowerSupply:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _reopen(self) -> None:
        """Drop a session whose reply stream can no longer be trusted and start a fresh one."""
        self.close()
        self.open()

    def _io(self, command: str, query: bool) -> str:
        with self._lock:
            return self._io_locked(command, query)

    def _io_locked(self, command: str, query: bool) -> str:
        if self._session is None:
            self._reopen()
        assert self._session is not None
        try:
            try:
                return self._exchange(command, query)
            except errors.InvalidSession:
                # Someone closed the shared ResourceManager under us: start afresh, once.
                self._session = self._manager = None
                self._reopen()
                return self._exchange(command, query)
        except errors.VisaIOError as exc:
            timed_out = exc.error_code == constants.StatusCode.error_timeout
            self.close()  # a late reply must never answer the next query
            what = (
                f"no reply to {command!r} within {self.timeout_s:g} s"
                if timed_out
                else f"{command!r} failed: {exc.description}"
            )
            raise PowerError(f"{self.name}: power supply {self.resource}: {what}") from None
        except OSError as exc:
            self.close()
            raise PowerError(
                f"{self.name}: power supply {self.resource}: connection lost during {command!r}"
                f" ({exc}); it will be reopened on the next command"
            ) from None

    def _exchange(self, command: str, query: bool) -> str:
        assert self._session is not None
        if query:
            return self._session.query(command).strip()
        self._session.write(command)
        return ""

    def _query(self, command: str) -> str:
        return self._io(command, query=True)

    def _fill(self, template: str, value: object = None) -> str:
        return template.format(ch=self.channel, value=value)

    def _channel_query(self, template: str) -> str:
        with self._lock:
            if self.dialect.select:
                self._io(self._fill(self.dialect.select), query=False)
            return self._query(self._fill(template))

    def _setting(self, template: str, value: object) -> None:
        """Send one setting and make the instrument confirm it took it."""
        command = self._fill(template, value)
        with self._lock:
            if self.dialect.select:
                self._io(self._fill(self.dialect.select), query=False)
            self._io(command, query=False)
            problems = self.errors()
        if problems:
            raise PowerError(
                f"{self.name}: power supply {self.resource} refused {command!r}: "
                f"{'; '.join(problems)}"
            )

    def errors(self) -> list[str]:
        """Drain the instrument's error queue (`SYST:ERR?`)."""
        found: list[str] = []
        with self._lock:
            for _ in range(MAX_QUEUED_ERRORS):
                reply = self._query("SYST:ERR?")
                code = reply.split(",", 1)[0].strip()
                if code in ("0", "+0"):
                    break
                found.append(reply)
        return found

    # -- PowerProtocol -------------------------------------------------------------------------

    def on(self) -> None:
        self._tell(f"power on ({self.resource} ch{self.channel})")
        self._setting(self.dialect.output, "ON")

    def off(self) -> None:
        self._tell(f"power off ({self.resource} ch{self.channel})")
        self._setting(self.dialect.output, "OFF")

    def _tell(self, event: str) -> None:
        if self.observer is not None:
            self.observer(event)

    def is_on(self) -> bool:
        return self._channel_query(self.dialect.output_query).upper() in self.dialect.on_reply

    def cycle(self, off_s: float | None = None) -> None:
        """Off, wait the off time (so the board's rails really drain), on."""
        self.off()
        time.sleep(self.off_s if off_s is None else off_s)
        self.on()

    def set_volts(self, volts: float) -> None:
        self._setting(self.dialect.volts, volts)

    def set_current_limit(self, amps: float) -> None:
        self._setting(self.dialect.amps, amps)

    def configure(self, volts: float, amps: float) -> None:
        self.set_volts(volts)
        self.set_current_limit(amps)

    def measure_volts(self) -> float:
        return self._number(self.dialect.measure_volts)

    def measure_current(self) -> float:
        return self._number(self.dialect.measure_amps)

    def _number(self, template: str) -> float:
        reply = self._channel_query(template)
        try:
            return float(reply)
        except ValueError:
            raise PowerError(
                f"{self.name}: power supply {self.resource} answered {template!r} with "
                f"{reply!r}, not a number: is boards.{self.name}.power.model right "
                f"({self.model})?"
            ) from None
