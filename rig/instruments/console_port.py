"""A console's port kept open and read: opened before the board powers up, read by a reader
thread whenever no expect reads it, and reopened when the adapter itself vanishes.

The reader thread owns the port while nobody waits: it timestamps every line into the board's
log file and hands the bytes to the console's queue (`_deliver`), so nothing printed between
two `expect` calls is lost and the log is complete even when no test is looking. The port stays
open across the board's power cycles; if the adapter vanishes (a USB serial adapter powered
from the board), the reader thread waits for it to come back and reopens it.

`ConsolePort` is the base of `Console`, which shares its state with the expect's fast path:
an expect that reads the port itself holds `_reading`, so the reader thread leaves it alone.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Self

import serial

from rig.instruments.console_errors import cannot_open
from rig.instruments.console_io import PortWatch, nonblocking_fd, reader_read
from rig.instruments.console_log import ConsoleLog

REOPEN_POLL_S = 0.2
PUMP_POLL_S = 1.0  # the reader thread's longest sleep in select (close() wakes it at once)


class ConsolePort:
    """The port of one board's console, its log and the thread that reads it; what it reads
    goes to `_deliver`, and close() wakes those waiting for it with `_wake_waiters`."""

    def __init__(self, url: str, *, baud: int, log_path: Path | None, name: str) -> None:
        self.url = url
        self.baud = baud
        self.name = name
        self._port: serial.SerialBase | None = None
        self._fd: int | None = None  # the port's fd when an expect may read it directly
        self._watch: PortWatch | None = None  # what the reader thread waits on for that fd
        self._log = ConsoleLog(log_path)  # every byte received, and rig's own notes
        # Who reads a local port: the reader thread, or a waiting expect (which then holds it).
        self._reading = threading.Lock()
        self._closing = threading.Event()
        self._wake_r, self._wake_w = os.pipe()  # written once by close(): wakes every select
        self._thread: threading.Thread | None = None
        self.reopened = 0  # how many times the port came back after vanishing

    @property
    def log_path(self) -> Path | None:
        return self._log.path

    def mark(self, text: str) -> None:
        """Write a note of rig's own into the log (power events, test boundaries)."""
        self._log.mark(text)

    def _deliver(self, data: bytes) -> None:
        """What the reader thread read (logging and queueing it is the console's)."""
        raise NotImplementedError

    def _wake_waiters(self) -> None:
        """close() has closed the port: wake whoever waits for what the reader thread reads."""
        raise NotImplementedError

    # -- lifecycle -----------------------------------------------------------------------------

    def open(self) -> Self:
        """Open the port now (before the board is powered, so no boot output is lost)."""
        self._log.open()
        try:
            self._adopt(self._open_port())
        except (serial.SerialException, OSError, ValueError) as exc:
            raise cannot_open(self.name, self.url, exc) from None
        self.mark(f"console opened: {self.url} at {self.baud} baud")
        self._thread = threading.Thread(target=self._pump, name=f"console-{self.name}", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if not self._closing.is_set():
            self._closing.set()
            os.write(self._wake_w, b"x")
        port = self._port
        if port is not None:
            with contextlib.suppress(Exception):
                port.cancel_read()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._reading:  # an expect reading the port has seen the wake-up and let go
            if self._port is not None:
                with contextlib.suppress(Exception):
                    self._port.close()
            if self._watch is not None:
                self._watch.close()
                self._watch = None
        self._wake_waiters()
        self.mark("console closed")
        self._log.close()

    def __del__(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open_port(self) -> serial.SerialBase:
        return serial.serial_for_url(self.url, baudrate=self.baud, timeout=0.1)

    def _adopt(self, port: serial.SerialBase | None) -> None:
        """Take `port` (None: the port is gone); by the reader thread, or before it starts."""
        if self._watch is not None:
            self._watch.close()
        self._port, self._fd = port, nonblocking_fd(port)
        self._watch = None if self._fd is None else PortWatch(self._fd, self._wake_r)

    # -- reader thread -------------------------------------------------------------------------

    def _pump(self) -> None:
        while not self._closing.is_set():
            port, fd, watch = self._port, self._fd, self._watch
            if port is None:
                self._wait_for_port()
                continue
            try:
                if fd is None:  # a URL handler: pyserial reads it (blocking, cancelled by close)
                    data = port.read(max(1, port.in_waiting))
                    if data:
                        self._deliver(data)
                    continue
                assert watch is not None
                if not watch.wait(PUMP_POLL_S) or self._closing.is_set():
                    continue
                with self._reading:  # woken before an expect took and muted the port: wait
                    if self._port is port:
                        self._deliver(reader_read(port, fd))
            except (serial.SerialException, OSError, TypeError, AttributeError, ValueError) as exc:
                if self._closing.is_set():
                    return
                self._lost(exc)

    def _lost(self, exc: Exception) -> None:
        self.mark(f"console port lost ({exc}); waiting for it to come back")
        with self._reading:
            port = self._port
            self._adopt(None)
            with contextlib.suppress(Exception):
                port.close()

    def _wait_for_port(self) -> None:
        """Poll until the adapter is back (a USB serial device re-enumerating), then reopen."""
        while not self._closing.wait(REOPEN_POLL_S):
            if "://" not in self.url and not os.path.exists(self.url):
                continue
            try:
                port = self._open_port()
            except (serial.SerialException, OSError):
                continue
            with self._reading:
                self._adopt(port)
            self.reopened += 1
            self.mark(f"console port reopened: {self.url}")
            return
