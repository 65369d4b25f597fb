"""A board's serial console: any pyserial URL, read continuously, logged, searched for patterns.

A reader thread owns the port while nobody waits: it timestamps every line into the board's log
file and queues the bytes, so nothing printed between two `expect` calls is lost and the log is
complete even when no test is looking. While an `expect` waits on a local port, the waiting
thread reads the port itself (after what the reader queued), logs it the same way and searches
it: no hand-over between threads on the way from the wire to the match, and the reader thread
(the port muted in what it waits on) sleeps through it instead of waking with each answer. The
port stays open across the board's power cycles; if the adapter itself vanishes (a USB serial
adapter powered from the board), the reader thread waits for it to come back and reopens it.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import select
import threading
import time
from pathlib import Path

import serial

from rig.errors import RigError
from rig.instruments.console_io import (
    READ_CHUNK,
    PortWatch,
    nonblocking_fd,
    read_burst,
    reader_read,
)
from rig.instruments.console_log import ConsoleLog
from rig.instruments.console_text import Received, Search

UNREAD_LIMIT = 64 * 1024 * 1024  # unread bytes kept for expect; the log keeps everything
REOPEN_POLL_S = 0.2
PUMP_POLL_S = 1.0  # the reader thread's longest sleep in select (close() wakes it at once)


class ConsoleError(RigError):
    """The console port could not be opened, or was closed under a waiting expect."""


class ConsoleTimeout(ConsoleError):
    """An expected pattern did not appear in time; carries what did, so callers that know
    where the pattern came from (boards.yaml) can say so with the evidence."""

    def __init__(
        self,
        message: str,
        *,
        pattern: str = "",
        timeout_s: float = 0.0,
        tail: tuple[str, ...] = (),
        log_path: Path | None = None,
    ) -> None:
        super().__init__(message)
        self.pattern = pattern  # the regular expression (or literal) waited for
        self.timeout_s = timeout_s
        self.tail = tail  # the last lines received since the previous match, oldest first
        self.log_path = log_path


class _Timeout(Exception):
    pass


class _Closed(Exception):
    pass


class Console:
    """The console of one board."""

    def __init__(
        self, url: str, *, baud: int = 115200, log_path: Path | None = None, name: str = "board"
    ) -> None:
        self.url = url
        self.baud = baud
        self.name = name
        self.newline = "\r\n"
        self._port: serial.SerialBase | None = None
        self._fd: int | None = None  # the port's fd when an expect may read it directly
        self._watch: PortWatch | None = None  # what the reader thread waits on for that fd
        self._log = ConsoleLog(log_path)  # every byte received, and rig's own notes
        self._chunks: collections.deque[bytes] = collections.deque()
        self._unread = 0
        self._cond = threading.Condition()
        # Who reads a local port: the reader thread, or a waiting expect (which then holds it).
        self._reading = threading.Lock()
        self._closing = threading.Event()
        self._wake_r, self._wake_w = os.pipe()  # written once by close(): wakes every select
        self._write_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._received = Received()
        self.reopened = 0  # how many times the port came back after vanishing

    @property
    def log_path(self) -> Path | None:
        return self._log.path

    # -- lifecycle -----------------------------------------------------------------------------

    def open(self) -> Console:
        """Open the port now (before the board is powered, so no boot output is lost)."""
        self._log.open()
        try:
            self._adopt(self._open_port())
        except (serial.SerialException, OSError, ValueError) as exc:
            missing = "://" not in self.url and not os.path.exists(self.url)
            raise ConsoleError(
                f"{self.name}: console {self.url}: cannot open it: "
                f"{'it does not exist' if missing else exc}. Check the adapter is "
                f"plugged in, boards.{self.name}.console.port, and that no other program "
                "(screen, minicom, another run) holds the port."
            ) from None
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
        with self._cond:
            self._cond.notify_all()
        self.mark("console closed")
        self._log.close()

    def __del__(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> Console:
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

    def _deliver(self, data: bytes) -> None:
        """Log what the reader thread read and queue it for the next expect."""
        if not data:
            return
        self._log.received(data)
        with self._cond:
            self._chunks.append(data)
            self._unread += len(data)
            while self._unread > UNREAD_LIMIT:
                self._unread -= len(self._chunks.popleft())
            self._cond.notify()

    # -- what tests use ------------------------------------------------------------------------

    def mark(self, text: str) -> None:
        """Write a note of rig's own into the log (power events, test boundaries)."""
        self._log.mark(text)

    def write(self, data: bytes) -> int:
        port = self._port
        if port is None:
            raise ConsoleError(f"{self.name}: console {self.url} is not connected right now")
        with self._write_lock:
            try:
                return port.write(data) or 0
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                # the reader found the port gone and closed it under us
                raise ConsoleError(
                    f"{self.name}: console {self.url} went away while writing "
                    f"({exc}); it is reopened when it comes back"
                ) from None

    def discard(self) -> None:
        """Forget what was received but not yet matched (it stays in the log): the next expect
        sees only what arrives from now on, e.g. the banner of the boot about to happen."""
        with self._cond:
            self._chunks.clear()
            self._unread = 0
        self._received.clear()
        self.mark("earlier unread output discarded")

    def sendline(self, text: str = "") -> None:
        self.mark(f">> {text}")
        self.write((text + self.newline).encode())

    @property
    def before(self) -> str:
        """The text received between the previous match and the last one."""
        return self._received.before

    def expect(self, pattern: str | re.Pattern[str], timeout: float = 10.0) -> re.Match[str]:
        """Wait for a regular expression; returns the match. A str without regex syntax is
        looked for as plain text (faster; the same match)."""
        self._wait(Search(pattern), timeout)
        match = self._received.match
        assert match is not None
        return match

    def expect_exact(self, text: str, timeout: float = 10.0) -> str:
        """Wait for a literal string (no escaping needed)."""
        self._wait(Search(text, exact=True), timeout)
        return text

    # -- waiting -------------------------------------------------------------------------------

    def _wait(self, search: Search, timeout: float) -> None:
        try:
            if self._received.search(search):
                return
            deadline = time.monotonic() + timeout
            if self._fd is not None:
                with self._reading:
                    if self._read_until(search, deadline):
                        return
            # a URL handler, or a local port in trouble: what the reader thread hands over
            while not self._received.feed(self._take(deadline), search):
                pass
        except _Timeout:
            tail = self._tail()
            pattern = search.pattern
            raise ConsoleTimeout(
                self._timeout_message(pattern, timeout, tail),
                pattern=pattern.pattern if isinstance(pattern, re.Pattern) else str(pattern),
                timeout_s=timeout, tail=tail, log_path=self.log_path,
            ) from None  # fmt: skip
        except _Closed:
            raise ConsoleError(
                f"{self.name}: console {self.url} was closed while waiting for "
                f"{_shown(search.pattern)}"
            ) from None

    def _read_until(self, search: Search, deadline: float) -> bool:
        """Holding `_reading`: what the reader queued, then the port itself, until a match;
        False if the port is in trouble (the reader thread then finds out what happened)."""
        fd, watch = self._fd, self._watch
        if fd is None or watch is None:
            return False
        watch.mute()  # the reader thread sleeps on until this expect lets go of the port
        try:
            return self._read_port(fd, search, deadline)
        finally:
            watch.unmute()

    def _read_port(self, fd: int, search: Search, deadline: float) -> bool:
        """False also when the port floods (a whole READ_CHUNK at once): for the rest of the
        wait the reader thread reads and logs while this thread searches, their system calls
        overlapping its search, instead of all three one after the other here."""
        received = self._received
        poller = self._poller(fd)
        while True:
            flood = False
            data = self._take_queued()
            if not data:
                if self._closing.is_set():
                    raise _Closed
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _Timeout
                if not poller.poll(left * 1000 + 1):
                    continue
                if self._closing.is_set():
                    raise _Closed
                try:
                    data = read_burst(fd)
                except OSError:
                    return False
                if data is None:
                    continue
                if not data:
                    return False
                self._log.received(data)
                flood = len(data) >= READ_CHUNK
            if received.feed(data, search):
                return True
            if flood:
                return False

    def _poller(self, fd: int) -> select.poll:
        """A poll of the port and of close()'s wake-up (poll: select() fails on fds >= 1024)."""
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        return poller

    def _take_queued(self) -> bytes:
        """The oldest chunk the reader thread queued (one search step), or b"" if none."""
        if not self._chunks:
            return b""
        with self._cond:
            return self._pop()

    def _take(self, deadline: float) -> bytes:
        """The oldest queued chunk, waiting for the reader thread until `deadline`."""
        with self._cond:
            if not self._cond.wait_for(
                lambda: self._chunks or self._closing.is_set(), deadline - time.monotonic()
            ):
                raise _Timeout
            if not self._chunks:
                raise _Closed
            return self._pop()

    def _pop(self) -> bytes:
        chunk = self._chunks.popleft() if self._chunks else b""
        if len(chunk) > READ_CHUNK:
            chunk, rest = chunk[:READ_CHUNK], chunk[READ_CHUNK:]
            self._chunks.appendleft(rest)
        self._unread -= len(chunk)
        return chunk

    def _tail(self) -> tuple[str, ...]:
        """The last lines received since the previous match (what a timeout has to show)."""
        return tuple(self._received.tail(1500).splitlines()[-15:])

    def _timeout_message(self, pattern: object, timeout: float, tail: tuple[str, ...]) -> str:
        shown_tail = "\n".join(f"    | {line}" for line in tail) or "    (nothing received)"
        return (
            f"{self.name}: console {self.url}: {_shown(pattern)} did not appear within "
            f"{timeout:g} s.\n  last lines received since the previous match:\n{shown_tail}\n"
            f"  full log: {self.log_path or '(no log file)'}"
        )


def _shown(pattern: object) -> str:
    return repr(pattern.pattern if isinstance(pattern, re.Pattern) else pattern)
