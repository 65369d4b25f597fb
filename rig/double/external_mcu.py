"""An MCU that is not emulated: the emulated ASR's UART end, wired to a real serial device.

A firmware team tests its MCU's OTA handling with no Afero module and no cloud: the double runs
the ASR (boot handshake, OTA service, handoff, ASR-side faults) and this endpoint puts its bytes
on the MCU's UART, a USB-serial adapter wired to the MCU or a pseudo-terminal the double makes
(`"pty"`: it announces the other end, e.g. for Afero's reference MCU, generic_mcu). It stands in
the link where the emulated MCU's afPro transport would be: what the ASR sends is written to the
device, what the device sends comes back out of `outgoing()`; the link mirrors both to the tap.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import tty
from collections.abc import Callable

import serial

from rig.double.errors import DoubleError

READ_SIZE = 4096


class ExternalMcu:
    """The UART to a real MCU, read by its own thread so the link hears bytes at once."""

    def __init__(self, device: str, *, baud: int = 115200, name: str = "board") -> None:
        self.name = name
        self.wake: Callable[[], None] = lambda: None  # the link's: bytes have arrived
        self._rx = bytearray()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._port: serial.SerialBase | None = None
        self._master: int | None = None
        self.path = device
        self._poll: select.poll | None = None
        if device == "pty":
            self._master, slave = os.openpty()
            tty.setraw(slave)
            self.path = os.ttyname(slave)
            self._slave = slave  # kept open: the master reads no EIO while the MCU restarts
            self._poll = select.poll()  # not select(): descriptors past 1024 in a big double
            self._poll.register(self._master, select.POLLIN)
        else:
            try:
                self._port = serial.serial_for_url(device, baudrate=baud, timeout=0.05)
            except (serial.SerialException, OSError, ValueError) as exc:
                raise DoubleError(f"{name}: MCU UART {device}: cannot open it: {exc}") from None
        self._thread = threading.Thread(target=self._read, name=f"mcu-uart-{name}", daemon=True)
        self._thread.start()

    # -- the link's transport interface ------------------------------------------------------

    def send(self, message: bytes) -> None:
        """Nothing to send on the MCU's behalf: the real MCU speaks for itself."""

    def receive(self, data: bytes) -> list[bytes]:
        """Bytes from the ASR reach the MCU's UART; whole messages are the MCU's business."""
        self._write(data)
        return []

    def outgoing(self) -> bytes:
        with self._lock:
            out, self._rx = bytes(self._rx), bytearray()
        return out

    def poll(self, now: float) -> None:
        return None  # a real MCU resets the ASR on its own line, not through the double

    def deadline(self) -> None:
        return None  # no timeout of the MCU's runs here

    def reset(self) -> None:
        with self._lock:
            self._rx.clear()

    # -- the device ----------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        try:
            if self._master is not None:
                os.write(self._master, data)
            elif self._port is not None:
                self._port.write(data)
        except OSError:
            pass  # nobody on the other end yet: as on a UART, the bytes are lost

    def _read(self) -> None:
        while not self._closed.is_set():
            data = self._read_some()
            if data:
                with self._lock:
                    self._rx += data
                self.wake()

    def _read_some(self) -> bytes:
        try:
            if self._master is not None and self._poll is not None:
                ready = self._poll.poll(50)  # ms: how soon close() is noticed
                return os.read(self._master, READ_SIZE) if ready else b""
            assert self._port is not None
            return self._port.read(READ_SIZE)
        except (OSError, serial.SerialException):
            self._closed.wait(0.05)  # the device went away for a moment
            return b""

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=2)
        if self._port is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                self._port.close()
        if self._master is not None:
            for fd in (self._master, self._slave):
                with contextlib.suppress(OSError):
                    os.close(fd)
