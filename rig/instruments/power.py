"""Bench power supplies over SCPI, through pyvisa.

The driver keeps the VISA session honest: terminations are set explicitly, `*IDN?` proves the
instrument is there (and, where the dialect knows its vendor, that it is the supply boards.yaml
names), every setting is followed by the dialect's error query, and a query that times out
reopens the session so a late reply can never be taken as the answer to the next question.
What differs between vendors is data in `rig.instruments.power_dialects`.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable

import pyvisa
from pyvisa import constants, errors

from rig import safe_yaml
from rig.errors import RigError
from rig.instruments.power_dialects import DIALECTS, Dialect, model_for

MAX_QUEUED_ERRORS = 16


class PowerError(RigError):
    """The power supply could not be reached, did not answer, or refused a setting."""


def check_sim_definition(library: str) -> None:
    """A pyvisa-sim definition (`FILE.yaml@sim`) is YAML that pyvisa-sim parses with no bound
    on size, nesting or aliases: read it with rig's own limits first, so a wrong or hostile one
    is a FILE:LINE message, not a hang. Composed only: pyvisa-sim takes every value as text."""
    path, at, backend = library.rpartition("@")
    if at and path and backend == "sim":
        safe_yaml.compose(safe_yaml.read_text(path), path)


class PowerSupply:
    """One channel of a SCPI power supply (a `PowerProtocol`)."""

    def __init__(
        self,
        resource: str,
        *,
        model: str = "generic",
        dialect: Dialect | None = None,
        channel: int = 1,
        visa_library: str = "@py",
        timeout_s: float = 2.0,
        off_s: float = 1.0,
        name: str = "board",
        observer: Callable[[str], None] | None = None,
        off_since: float | None = None,
    ) -> None:
        if dialect is None and model not in DIALECTS:
            raise PowerError(f"{name}: unknown power model {model!r}; known: {', '.join(DIALECTS)}")
        self.resource = resource
        self.model = model  # a built-in's name, or the name boards.yaml gave its own dialect
        self.dialect: Dialect = dialect if dialect is not None else DIALECTS[model]
        self.channel = channel
        self.visa_library = visa_library
        self.timeout_s = timeout_s
        self.off_s = off_s
        # When (time.monotonic) the output went off, while rig knows it stayed off: rig switched
        # it off, or the caller knows (a double's supply starts off). None: not known to be off.
        self._off_since = off_since
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
                check_sim_definition(self.visa_library)
                self._manager = pyvisa.ResourceManager(self.visa_library)
            session = self._manager.open_resource(self.resource)
        except safe_yaml.YamlFileError as exc:
            raise PowerError(f"{where}: its simulated instrument definition: {exc}") from None
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
        if self.dialect.idn and not re.search(self.dialect.idn, self.identity):
            self.close()
            raise PowerError(f"{where}: {self._wrong_model(self.identity)}")
        return self.identity

    def _wrong_model(self, identity: str) -> str:
        """What to say when the instrument is not the supply `power.model` names."""
        guess = model_for(identity)
        hint = f"set it to {guess!r}" if guess else "describe its commands under power.dialect"
        return (
            f"it answers *IDN? with {identity!r}, which is not a {self.model} supply: "
            f"boards.{self.name}.power.model is wrong for it; {hint} (see README, boards.yaml)"
        )

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
                f"no reply to {command!r} within {self.timeout_s:g} s (a supply that does not know "
                f"the command stays silent: is boards.{self.name}.power.model, {self.model}, "
                "right for it?)"
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

    def _setting(self, templates: str | tuple[str, ...], value: object = None) -> None:
        """Send a setting (one or more commands) and make the instrument confirm it took it."""
        if isinstance(templates, str):
            templates = (templates,)
        commands = [self._fill(t, value) for t in templates]
        with self._lock:
            if self.dialect.select:
                self._io(self._fill(self.dialect.select), query=False)
            for command in commands:
                self._io(command, query=False)
            problems = self.errors()
        if problems:
            sent = " then ".join(map(repr, commands))
            hint = ""
            if any(re.match(r"\s*-1\d\d\b", p) for p in problems):  # SCPI command errors
                hint = (
                    f" (it does not understand the command: is boards.{self.name}.power.model,"
                    f" {self.model}, right for it?)"
                )
            raise PowerError(
                f"{self.name}: power supply {self.resource} refused {sent}: "
                f"{'; '.join(problems)}{hint}"
            )

    def errors(self) -> list[str]:
        """Drain the instrument's error queue (the dialect's error query, e.g. `SYST:ERR?`)."""
        found: list[str] = []
        query = self.dialect.error_query
        if query is None:
            return found
        with self._lock:
            for _ in range(MAX_QUEUED_ERRORS):
                reply = self._query(query)
                if self.dialect.no_error_in(reply):
                    break
                found.append(reply)
        return found

    # -- PowerProtocol -------------------------------------------------------------------------

    def on(self) -> None:
        self._tell(f"power on ({self.resource} ch{self.channel})")
        self._off_since = None  # from the first byte sent: a half-done switch-on is not "off"
        self._setting(self.dialect.output_on)

    def off(self) -> None:
        self._tell(f"power off ({self.resource} ch{self.channel})")
        self._setting(self.dialect.output_off)
        if self._off_since is None:  # already off: the rails have drained since then
            self._off_since = time.monotonic()

    def drain(self, off_s: float | None = None) -> None:
        """Wait until the output has been off `off_s` (default: the board's off time), counted
        from when it went off: a board that has been off a while is not kept waiting again."""
        remaining = self.drain_remaining_s(off_s)
        if remaining > 0:
            time.sleep(remaining)

    def drain_remaining_s(self, off_s: float | None = None) -> float:
        """How long `drain` would wait now: all of `off_s` unless the output is known off."""
        wanted = self.off_s if off_s is None else off_s
        if self._off_since is None:
            return wanted
        return max(0.0, self._off_since + wanted - time.monotonic())

    def _tell(self, event: str) -> None:
        if self.observer is not None:
            self.observer(event)

    def is_on(self) -> bool:
        """Whether the channel's output is on: every query of the dialect must say so."""
        if not self.dialect.output_query:
            raise PowerError(
                f"{self.name}: the {self.model} dialect has no query for the output state, so "
                "rig cannot tell whether it is on (add output_query to its dialect if the "
                "supply has one)"
            )
        states = []
        for template in self.dialect.output_query:
            reply = self._channel_query(template)
            state = self.dialect.read_state(reply, self.channel)
            if state is None:
                raise PowerError(
                    f"{self.name}: power supply {self.resource} answered {self._fill(template)!r} "
                    f"with {reply!r}, not an output state: is boards.{self.name}.power.model "
                    f"right ({self.model})?"
                )
            states.append(state)
        return all(states)

    def cycle(self, off_s: float | None = None) -> None:
        """Off, wait the off time (so the board's rails really drain), on."""
        self.off()
        self.drain(off_s)
        self.on()

    def set_volts(self, volts: float) -> None:
        self._setting(self.dialect.volts, volts)

    def set_current_limit(self, amps: float) -> None:
        self._setting(self.dialect.amps, amps)

    def configure(self, volts: float, amps: float) -> None:
        self.set_volts(volts)
        self.set_current_limit(amps)

    def volts_setting(self) -> float:
        """The voltage the channel is set to (not what it measures)."""
        return self._number(self.dialect.volts_query)

    def current_limit(self) -> float:
        """The current limit the channel is set to."""
        return self._number(self.dialect.amps_query)

    def measure_volts(self) -> float:
        return self._number(self.dialect.measure_volts)

    def measure_current(self) -> float:
        return self._number(self.dialect.measure_amps)

    def _number(self, template: str) -> float:
        reply = self._channel_query(template)
        number = self.dialect.read_number(reply)
        if number is None:
            raise PowerError(
                f"{self.name}: power supply {self.resource} answered {self._fill(template)!r} "
                f"with {reply!r}, not a number: is boards.{self.name}.power.model right "
                f"({self.model})?"
            )
        return number
