"""A board's serial console: any pyserial URL, read continuously, logged, searched with pexpect.

A reader thread owns the port. It timestamps every line into the board's log file and hands the
bytes to pexpect, so nothing printed between two `expect` calls is lost and the log is complete
even when no test is looking. The port stays open across the board's power cycles; if the
adapter itself vanishes (a USB serial adapter powered from the board), the thread waits for it
to come back and reopens it.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import threading
from datetime import datetime
from pathlib import Path

import pexpect
import serial
from pexpect.spawnbase import SpawnBase

from rig.errors import RigError

READ_CHUNK = 64 * 1024  # pexpect takes this much at most per step (and the reader per read)
SEARCH_WINDOW = 256 * 1024  # how far back a regex is searched: keeps long logs linear
UNREAD_LIMIT = 64 * 1024 * 1024  # unread bytes kept for expect; the log keeps everything
REOPEN_POLL_S = 0.2
BATCH_WAIT_S = 0.001  # the longest a step waits for a bigger batch (see _Feed.read_nonblocking)
FLOOD_BYTES = 2048  # a step this big means the port floods (a 115200-baud UART gives a few bytes)
BIG_WINDOW = 64 * 1024  # unmatched text from which each regex step is worth batching

# pexpect searches only the last SEARCH_WINDOW characters of one step's data: a smaller window
# would miss a match early in a big step.
assert SEARCH_WINDOW >= READ_CHUNK


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


class _Text:
    """The part of io.StringIO that pexpect uses for its buffers, kept as a list of str.

    Once seeked and read, StringIO holds UCS-4: reading back a regex's 256 KiB search window after
    every step converted a megabyte each time. Here an append is a list append, a read one join.
    """

    __slots__ = ("_parts", "_pos", "_size")

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._size = self._pos = 0

    def getvalue(self) -> str:
        parts = self._parts
        if len(parts) > 1:
            parts[:] = ["".join(parts)]
        return parts[0] if parts else ""

    def write(self, s: str) -> int:
        if self._pos == self._size:
            self._parts.append(s)
            self._size += len(s)
        else:  # overwrite from the position, as StringIO does (pexpect only ever appends)
            text = self.getvalue()
            self._parts = [text[: self._pos] + s + text[self._pos + len(s) :]]
            self._size = max(self._size, self._pos + len(s))
        self._pos += len(s)
        return len(s)

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int) -> int:
        self._pos = pos
        return pos

    def read(self) -> str:
        text = self.getvalue()[self._pos :]
        self._pos = self._size
        return text


class _Feed(SpawnBase):
    """pexpect's matching engine, fed by the console's reader thread instead of a child fd."""

    def __init__(self, console: Console) -> None:
        super().__init__(
            timeout=10,
            maxread=READ_CHUNK,
            searchwindowsize=SEARCH_WINDOW,
            encoding="utf-8",
            codec_errors="replace",
        )
        self.delayafterread = None  # pexpect sleeps 100 µs per read by default
        self.buffer_type = _Text
        self._buffer, self._before = _Text(), _Text()
        self._console = console
        self._last_step = 0

    def read_nonblocking(self, size: int = 1, timeout: float | None = None) -> str:
        # Each step re-searches a regex's whole window (up to SEARCH_WINDOW), and wakes this thread
        # to take the GIL from the reader: while the port floods, or once the window is large,
        # wait up to BATCH_WAIT_S for a full step instead of stepping after every chunk.
        flooding = self._last_step >= FLOOD_BYTES or self._buffer.tell() >= BIG_WINDOW
        data = self._console._take(size, timeout, size if flooding else 1)
        self._last_step = len(data)
        return self._decoder.decode(data, final=False)

    def send(self, s: str | bytes) -> int:
        return self._console.write(s if isinstance(s, bytes) else s.encode())


class Console:
    """The console of one board."""

    def __init__(
        self, url: str, *, baud: int = 115200, log_path: Path | None = None, name: str = "board"
    ) -> None:
        self.url = url
        self.baud = baud
        self.name = name
        self.log_path = log_path
        self.newline = "\r\n"
        self._port: serial.SerialBase | None = None
        self._log = None
        self._line_start = True
        self._chunks: collections.deque[bytes] = collections.deque()
        self._unread = 0
        self._want = 1
        self._cond = threading.Condition()
        self._closing = threading.Event()
        self._write_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._feed = _Feed(self)
        self._compiled: dict[object, list] = {}
        self.reopened = 0  # how many times the port came back after vanishing

    # -- lifecycle -----------------------------------------------------------------------------

    def open(self) -> Console:
        """Open the port now (before the board is powered, so no boot output is lost)."""
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the console
        try:
            self._port = self._open_port()
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
        self._closing.set()
        port = self._port
        if port is not None:
            with contextlib.suppress(Exception):
                port.cancel_read()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._port is not None:
            with contextlib.suppress(Exception):
                self._port.close()
        with self._cond:
            self._cond.notify_all()
        if self._log is not None:
            self.mark("console closed")
            self._log.close()
            self._log = None

    def __enter__(self) -> Console:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open_port(self) -> serial.SerialBase:
        return serial.serial_for_url(self.url, baudrate=self.baud, timeout=0.1)

    # -- reader thread -------------------------------------------------------------------------

    def _pump(self) -> None:
        port, fd = None, None
        while not self._closing.is_set():
            if self._port is not port:
                port = self._port
                fd = _nonblocking_fd(port)
            if port is None:
                self._wait_for_port()
                continue
            try:
                data = _read(port, fd)
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                if self._closing.is_set():
                    return
                self._lost(exc)
                continue
            if data:
                self._deliver(data)

    def _lost(self, exc: Exception) -> None:
        self.mark(f"console port lost ({exc}); waiting for it to come back")
        port, self._port = self._port, None
        with contextlib.suppress(Exception):
            port.close()

    def _wait_for_port(self) -> None:
        """Poll until the adapter is back (a USB serial device re-enumerating), then reopen."""
        while not self._closing.wait(REOPEN_POLL_S):
            if "://" not in self.url and not os.path.exists(self.url):
                continue
            try:
                self._port = self._open_port()
            except (serial.SerialException, OSError):
                continue
            self.reopened += 1
            self.mark(f"console port reopened: {self.url}")
            return

    def _deliver(self, data: bytes) -> None:
        if self._log is not None:
            prefix = datetime.now().isoformat(sep=" ", timespec="milliseconds").encode() + b" "
            body = data.replace(b"\n", b"\n" + prefix)
            if self._line_start:
                body = prefix + body
            self._line_start = data.endswith(b"\n")
            if self._line_start:
                body = body[: -len(prefix)]
            self._log.write(body)
            self._log.flush()
        with self._cond:
            self._chunks.append(data)
            self._unread += len(data)
            while self._unread > UNREAD_LIMIT:
                self._unread -= len(self._chunks.popleft())
            if self._unread >= self._want:
                self._cond.notify()

    def _take(self, size: int, timeout: float | None, want: int = 1) -> bytes:
        """Called by pexpect: up to `size` unread bytes, waiting at most `timeout`."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._chunks or self._closing.is_set(), timeout):
                raise pexpect.TIMEOUT("console read timed out")
            if not self._chunks:
                raise pexpect.EOF("console closed")
            if want > self._unread:
                self._want = want
                self._cond.wait_for(
                    lambda: self._unread >= want or self._closing.is_set(), BATCH_WAIT_S
                )
                self._want = 1
            taken, total = [], 0
            while self._chunks and total < size:
                chunk = self._chunks.popleft()
                if total + len(chunk) > size:
                    chunk, rest = chunk[: size - total], chunk[size - total :]
                    self._chunks.appendleft(rest)
                taken.append(chunk)
                total += len(chunk)
            self._unread -= total
            return b"".join(taken)

    # -- what tests use ------------------------------------------------------------------------

    def mark(self, text: str) -> None:
        """Write a note of rig's own into the log (power events, test boundaries)."""
        if self._log is None:
            return
        stamp = datetime.now().isoformat(sep=" ", timespec="milliseconds")
        lead = b"" if self._line_start else b"\n"
        self._log.write(lead + f"{stamp} [rig] {text}\n".encode())
        self._log.flush()
        self._line_start = True

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
        self._feed._buffer = self._feed.buffer_type()
        self._feed._before = self._feed.buffer_type()
        self.mark("earlier unread output discarded")

    def sendline(self, text: str = "") -> None:
        self.mark(f">> {text}")
        self.write((text + self.newline).encode())

    def expect(self, pattern: str | re.Pattern[str], timeout: float = 10.0) -> re.Match[str]:
        """Wait for a regular expression; returns the match."""
        compiled = self._compiled.get(pattern)
        if compiled is None:
            compiled = self._compiled[pattern] = self._feed.compile_pattern_list(pattern)
        self._run(lambda: self._feed.expect_list(compiled, timeout=timeout), pattern, timeout)
        return self._feed.match

    def expect_exact(self, text: str, timeout: float = 10.0) -> str:
        """Wait for a literal string (faster than a pattern, no escaping needed)."""
        # No search window: pexpect then searches each step plus len(text) - 1 characters before
        # it, so a literal is looked for everywhere since the last match, each character once.
        self._run(
            lambda: self._feed.expect_exact(text, timeout=timeout, searchwindowsize=None),
            text,
            timeout,
        )
        return text

    def _run(self, step, pattern: object, timeout: float) -> None:
        try:
            step()
        except pexpect.TIMEOUT:
            tail = self._tail()
            raise ConsoleTimeout(
                self._timeout_message(pattern, timeout, tail),
                pattern=pattern.pattern if isinstance(pattern, re.Pattern) else str(pattern),
                timeout_s=timeout, tail=tail, log_path=self.log_path,
            ) from None  # fmt: skip
        except pexpect.EOF:
            raise ConsoleError(
                f"{self.name}: console {self.url} was closed while waiting for {_shown(pattern)}"
            ) from None

    def _tail(self) -> tuple[str, ...]:
        """The last lines received since the previous match (what a timeout has to show)."""
        before = self._feed.before or ""
        return tuple(before[-1500:].splitlines()[-15:])

    def _timeout_message(self, pattern: object, timeout: float, tail: tuple[str, ...]) -> str:
        shown_tail = "\n".join(f"    | {line}" for line in tail) or "    (nothing received)"
        return (
            f"{self.name}: console {self.url}: {_shown(pattern)} did not appear within "
            f"{timeout:g} s.\n  last lines received since the previous match:\n{shown_tail}\n"
            f"  full log: {self.log_path or '(no log file)'}"
        )


def _nonblocking_fd(port: serial.SerialBase | None) -> int | None:
    """The fd of a local POSIX port, which pyserial keeps non-blocking; None for anything else."""
    if type(port) is not serial.Serial:  # a URL handler, or a subclass that reads differently
        return None
    fd = getattr(port, "fd", None)
    try:
        return fd if isinstance(fd, int) and not os.get_blocking(fd) else None
    except OSError:
        return None


def _read(port: serial.SerialBase, fd: int | None) -> bytes:
    """What the port has; blocks (in pyserial, so close() can cancel it) only when it has nothing.

    While a local port floods, one os.read per chunk instead of pyserial's ioctl + select + read:
    the reader shares the GIL with expect, so its cost per chunk bounds the console's throughput.
    """
    if fd is not None:
        try:
            data = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            data = b""
        if data:  # empty is "nothing yet" (VMIN 0) or a vanished adapter: pyserial tells which
            return data
    return port.read(max(1, port.in_waiting))


def _shown(pattern: object) -> str:
    return repr(pattern.pattern if isinstance(pattern, re.Pattern) else pattern)
