"""A board's serial console: any pyserial URL, read continuously, logged, searched for patterns.

The port, its log and the reader thread that reads it while nobody waits (queueing the bytes
here, so nothing printed between two `expect` calls is lost) are `ConsolePort`'s
(console_port.py); the errors and what they tell are console_errors.py's. While an `expect`
waits on a local port, the waiting thread reads the port itself (after what the reader queued),
logs it the same way and searches it: no hand-over between threads on the way from the wire to
the match, and the reader thread (the port muted in what it waits on) sleeps through it instead
of waking with each answer.
"""

from __future__ import annotations

import collections
import re
import select
import threading
import time
from pathlib import Path

import serial

from rig.instruments.console_errors import ConsoleError as ConsoleError  # re-exported
from rig.instruments.console_errors import ConsoleTimeout as ConsoleTimeout  # re-exported
from rig.instruments.console_errors import (
    closed_while_waiting,
    gone_while_writing,
    not_connected,
    timed_out,
)
from rig.instruments.console_io import READ_CHUNK, read_burst
from rig.instruments.console_port import ConsolePort
from rig.instruments.console_text import Received, Search

UNREAD_LIMIT = 64 * 1024 * 1024  # unread bytes kept for expect; the log keeps everything


class _Timeout(Exception):
    pass


class _Closed(Exception):
    pass


class Console(ConsolePort):
    """The console of one board."""

    def __init__(
        self, url: str, *, baud: int = 115200, log_path: Path | None = None, name: str = "board"
    ) -> None:
        super().__init__(url, baud=baud, log_path=log_path, name=name)
        self.newline = "\r\n"
        self._chunks: collections.deque[bytes] = collections.deque()
        self._unread = 0
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()
        self._received = Received()

    # -- what the reader thread reads ----------------------------------------------------------

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

    def _wake_waiters(self) -> None:
        with self._cond:
            self._cond.notify_all()

    # -- what tests use ------------------------------------------------------------------------

    def write(self, data: bytes) -> int:
        port = self._port
        if port is None:
            raise not_connected(self.name, self.url)
        with self._write_lock:
            try:
                return port.write(data) or 0
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                # the reader found the port gone and closed it under us
                raise gone_while_writing(self.name, self.url, exc) from None

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
            raise timed_out(
                self.name,
                self.url,
                pattern=search.pattern,
                timeout_s=timeout,
                received=self._received,
                log_path=self.log_path,
            ) from None
        except _Closed:
            raise closed_while_waiting(self.name, self.url, search.pattern) from None

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
