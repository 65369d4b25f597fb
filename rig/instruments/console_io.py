"""How the console reads a local serial port: straight from its fd, in bursts while it floods.

pyserial's read costs an ioctl and a select per call; the console reads a local port with plain
os.read calls on the fd pyserial keeps non-blocking, and leaves pyserial the rest (URL handlers,
and telling a vanished adapter from a quiet one).

The reader thread waits for a local port in a `PortWatch`. An expect that reads the port itself
mutes the port there: otherwise every answer would wake both threads, and the reader's wasted
turn at the GIL costs the expect as much again as pexpect's whole round trip on 2 cores.
"""

from __future__ import annotations

import os
import select

import serial

READ_CHUNK = 64 * 1024  # the most one read takes, and one search step
FLOOD_BYTES = 2048  # a read this big means the port floods: read again before searching


def nonblocking_fd(port: serial.SerialBase | None) -> int | None:
    """The fd of a local POSIX port, which pyserial keeps non-blocking; None for anything else."""
    if type(port) is not serial.Serial:  # a URL handler, or a subclass that reads differently
        return None
    fd = getattr(port, "fd", None)
    try:
        return fd if isinstance(fd, int) and not os.get_blocking(fd) else None
    except OSError:
        return None


def read_burst(fd: int) -> bytes | None:
    """What a readable local port has, up to READ_CHUNK: while it floods, one search step per
    READ_CHUNK rather than per read. None: nothing after all; b"": end of file (adapter gone)."""
    chunks: list[bytes] = []
    total = 0
    while total < READ_CHUNK:
        try:
            chunk = os.read(fd, READ_CHUNK - total)
        except BlockingIOError:
            if not chunks:
                return None
            break
        except OSError:
            if chunks:
                break  # hand over what came; the next read tells the trouble
            raise
        if not chunk:
            if not chunks:
                return b""
            break
        chunks.append(chunk)
        total += len(chunk)
        if len(chunk) < FLOOD_BYTES:
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def reader_read(port: serial.SerialBase, fd: int) -> bytes:
    """The reader thread's read of a readable local port; b"" if an expect took it first.
    Nothing from a readable port is a vanished adapter or a hang-up: pyserial tells which."""
    data = read_burst(fd)
    if data is None:
        return b""
    return data or port.read(max(1, port.in_waiting))


class PortWatch:
    """What the reader thread sleeps on: a local port readable, or `wake_fd` (close()).

    `mute()` takes the port out of the watch without waking a thread sleeping on it; `unmute()`
    puts it back, waking the sleeper at once if the port has something to read. With epoll
    (Linux) only; elsewhere both do nothing: the reader wakes with the expect and waits its turn.
    """

    def __init__(self, fd: int, wake_fd: int) -> None:
        self._fd = fd
        self.muted = False
        self._epoll = select.epoll(2) if hasattr(select, "epoll") else None
        self._poll = None if self._epoll is not None else select.poll()
        for watched in (fd, wake_fd):
            if self._epoll is not None:
                self._epoll.register(watched, select.EPOLLIN)
            else:
                self._poll.register(watched, select.POLLIN)

    def wait(self, timeout_s: float) -> bool:
        """Whether the port (or the wake-up) became readable within `timeout_s`."""
        if self._epoll is not None:
            return bool(self._epoll.poll(timeout_s))
        return bool(self._poll.poll(timeout_s * 1000))

    def mute(self) -> None:
        if self._epoll is not None:
            self._epoll.modify(self._fd, 0)  # a hang-up still wakes: the reader then finds out
        self.muted = True

    def unmute(self) -> None:
        self.muted = False
        if self._epoll is not None:
            self._epoll.modify(self._fd, select.EPOLLIN)

    def close(self) -> None:
        if self._epoll is not None:
            self._epoll.close()
