"""The emulated MCU: a debug console on a pseudo-terminal, alive only while it has power.

Tests reach it with pyserial exactly as they reach a USB-UART, so the console code under test is
the real one. The double keeps the slave end open itself (no EIO on the master when no client is
attached) and never blocks on output: like a UART with nobody listening, bytes nobody reads are
lost. Every write happens under the state lock after a state check, so once `power()` returns
with the board off, not one more byte comes out.

Reset reason: the board knows why it last booted (`ResetReason`): power-on after the supply was
off, brown-out when the supply was on but below `min_volts` or limited below the board's draw,
software after a `reboot` or an OTA apply. A power-on or a brown-out takes the ASR down too, so
the ASR's reboot reason (attribute 65019, the string afLib hands the MCU and the service gets)
carries the same code; the values are the codes of that string. After a brown-out the console
also prints `reset reason: brownout` after the banner (a normal boot's banner is unchanged).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import threading
import time
import tty
from collections.abc import Callable
from enum import IntEnum

from rig.double.reactor import Reactor
from rig.double.spec import EmulatedBoardSpec

OFF, BOOTING, IDLE = "off", "booting", "idle"
MAX_INPUT_LINE = 256  # the firmware's line buffer; longer input is discarded
_LINE_END = re.compile(rb"[\r\n]")


class ResetReason(IntEnum):
    """Why the MCU last booted, as the code of a reboot-reason string (aflib.RebootCode)."""

    POWER_ON = 0  # the supply came on after being off
    SOFTWARE = 2  # the firmware reset itself: `reboot`, or booting an applied OTA image
    BROWNOUT = 5  # the supply was on but too low (volts or current limit): held in reset

    @property
    def label(self) -> str:
        """As the console and the logs say it: power-on, brownout, software."""
        return self.name.lower().replace("_", "-")


class EmulatedMcu:
    """Boot timing, console commands and current draw of one emulated board."""

    def __init__(
        self,
        spec: EmulatedBoardSpec,
        *,
        rng: random.Random | None = None,
        firmware: Callable[[], str] | None = None,
        on_power: Callable[[bool], None] | None = None,
        on_boot: Callable[[], None] | None = None,
        reactor: Reactor | None = None,
    ) -> None:
        self.spec = spec
        self._firmware = firmware or (lambda: spec.firmware_version)  # what the flash runs
        self._on_power = on_power  # the rest of the board (ASR, link) follows the MCU's power
        self._on_boot = on_boot  # called once the banner is out: the firmware is running
        self._rng = rng or random.Random()
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no CR/LF translation until a client configures it
        os.set_blocking(self._master, False)
        self.port = os.ttyname(self._slave)
        self._own_reactor = reactor is None  # alone (a unit test): its own reactor
        self._reactor = reactor or Reactor(name=f"mcu-{spec.name}")
        self._cond = threading.Condition()
        self._state = OFF
        self._closed = False
        self._boots = 0  # counts boots: a banner timer of an earlier boot does nothing
        self._boot_at = 0.0  # when power came on (or the last reboot): uptime counts from here
        self._banner_at: float | None = None
        self._input = b""
        self.reset_reason = ResetReason.POWER_ON  # why the current (or next) boot happens
        self._down_because = ResetReason.POWER_ON  # what the next power-up will report
        self.dropped_bytes = 0  # output lost because nobody read the console
        self.commands_handled = 0
        try:
            self._reactor.add_reader(self._master, self._on_input)
        except BaseException:
            self._close_fds()
            raise

    @property
    def state(self) -> str:
        """One of OFF, BOOTING, IDLE."""
        with self._cond:
            return self._state

    def power(self, on: bool, volts: float, amps_limit: float) -> None:
        """The supply output changed. Too little voltage or current is a brown-out: no boot."""
        spec = self.spec
        powered = on and volts >= spec.min_volts and amps_limit >= spec.boot_amps
        with self._cond:
            if self._closed:
                return
            if not powered:  # output on but too weak: the brown-out detector holds it in reset
                self._down_because = ResetReason.BROWNOUT if on else ResetReason.POWER_ON
            if powered == (self._state != OFF):
                return  # e.g. 3.3 V -> 3.4 V while running: the board does not notice
            if powered:
                self._start_boot(self._down_because)
            else:
                self._state, self._banner_at, self._input = OFF, None, b""
            self._cond.notify_all()
        if self._on_power is not None:
            self._on_power(powered)

    def draw(self) -> float:
        """Current the board takes right now, in amps."""
        with self._cond:
            state = self._state
        if state == BOOTING:
            return self.spec.boot_amps
        if state == IDLE:
            return self.spec.idle_amps * (1 + self._rng.uniform(-0.02, 0.02))
        return self._rng.uniform(-0.00005, 0.00005)

    def close(self) -> None:
        """Stop reading the console and close the terminal. Safe to call twice."""
        with self._cond:
            if self._closed:
                return
            self._closed, self._state = True, OFF
            self._cond.notify_all()
        with contextlib.suppress(RuntimeError):  # the reactor is gone: nothing reads the pty
            self._reactor.remove(self._master)
        self._close_fds()

    def _close_fds(self) -> None:
        for fd in (self._master, self._slave):
            os.close(fd)
        if self._own_reactor:
            self._reactor.close()

    def __enter__(self) -> EmulatedMcu:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log_line(self, text: str) -> None:
        """A line the firmware prints (OTA progress), if it is running."""
        with self._cond:
            if self._state != OFF:
                self._write_lines(text)

    def reboot(self) -> None:
        """A software reset (after an OTA apply): the banner comes again after the boot time."""
        with self._cond:
            if self._state != OFF:
                self._write_lines("rebooting")
                self._start_boot(ResetReason.SOFTWARE)

    # -- under self._cond ----------------------------------------------------------------------

    def _start_boot(self, reason: ResetReason) -> None:
        self.reset_reason = reason
        now = time.monotonic()
        self._state, self._boot_at, self._banner_at = BOOTING, now, now + self.spec.boot_s
        self._input = b""
        self._boots += 1
        boot = self._boots
        self._reactor.call_at(self._banner_at, lambda: self._booted(boot))
        self._cond.notify_all()

    def _write_lines(self, *lines: str) -> None:
        """Non-blocking: whatever the terminal cannot take now is lost, as on a real UART."""
        data = "".join(f"{line}\r\n" for line in lines).encode()
        try:
            written = os.write(self._master, data)
        except OSError:  # EAGAIN: the buffer is full because nobody reads
            written = 0
        self.dropped_bytes += len(data) - written

    def _banner(self) -> None:
        spec = self.spec
        self._write_lines(
            "=== rig emulated MCU ===",
            f"board: {spec.name}  device_type: {spec.device_type}",
            f"firmware version: {self._firmware()}",
            "ready",
        )
        if self.reset_reason == ResetReason.BROWNOUT:
            self._write_lines(f"reset reason: {self.reset_reason.label}")

    def _answer(self, command: str) -> None:
        self.commands_handled += 1
        if command == "version":
            self._write_lines(f"firmware version: {self._firmware()}")
        elif command == "status":
            uptime_ms = int((time.monotonic() - self._boot_at) * 1000)
            self._write_lines(f"state: idle uptime_ms: {uptime_ms}")
        elif command == "reboot":
            self._write_lines("rebooting")
            self._start_boot(ResetReason.SOFTWARE)
        else:
            self._write_lines(f"unknown command: {command}")

    # -- in the reactor thread ----------------------------------------------------------------

    def _booted(self, boot: int) -> None:
        """The boot time is up: BOOTING becomes IDLE, the banner comes, the firmware runs."""
        with self._cond:
            if self._closed or boot != self._boots or self._state != BOOTING:
                return  # powered off, or rebooted since: a later timer is due
            self._state, self._banner_at = IDLE, None
            self._banner()
            self._cond.notify_all()
        if self._on_boot is not None:  # talks to the link (board locks): on a worker
            self._reactor.submit(self._on_boot)

    def _on_input(self) -> None:
        """Take what the client typed; answer whole lines while the firmware is running."""
        try:
            data = os.read(self._master, 4096)
        except BlockingIOError:
            return
        except OSError:  # cannot happen while we hold the slave open; do not spin if it does
            self._reactor.remove(self._master)
            return
        with self._cond:
            if self._state != IDLE:
                return  # off or booting: nothing is listening on the UART
            *lines, self._input = _LINE_END.split(self._input + data)
            if len(self._input) > MAX_INPUT_LINE:
                self._input = b""
            for raw in lines:
                command = raw.decode("ascii", "replace").strip()
                if command and self._state == IDLE:  # `reboot` stops the rest of the chunk
                    self._answer(command)
            if self._state != IDLE:
                self._input = b""
