"""How the console reads a local serial port: straight from its fd, in bursts while it floods.

pyserial's read costs an ioctl and a select per call; the console reads a local port with plain
os.read calls on the fd pyserial keeps non-blocking, and leaves pyserial the rest (URL handlers,
and telling a vanished adapter from a quiet one).
"""

from __future__ import annotations

import os

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
