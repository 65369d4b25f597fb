"""What a two-port sniffer on the ASR⇆MCU UART would show: one pseudo-terminal per direction,
plus a capture file of every byte with the time it crossed the wire.

The ptys are written without blocking, so the link itself never stalls on a sniffer. What a
full pty cannot take waits in a backlog, written on the next mirror or `pump()`: the fast link
outruns a sniffer that is reading, and that sniffer must still see every byte. A backlog that
stops draining for `STALL_S` (nobody reads) or passes `MAX_BACKLOG` is dropped (counted).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import time
import tty
from pathlib import Path

DIRECTIONS = ("asr_to_mcu", "mcu_to_asr")
MAX_BACKLOG = 1024 * 1024  # bytes a pty may owe its reader
STALL_S = 0.5  # a backlog nobody has read from for this long: no sniffer is attached


class _Port:
    """One direction's pty: the double holds the master, a sniffer client opens the slave."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)
        self.dropped = 0
        self.backlog = bytearray()
        self._stalled_since: float | None = None

    def write(self, data: bytes) -> None:
        self.backlog += data
        self.pump()

    def pump(self) -> bool:
        """Write what the pty takes now; drop the backlog if nobody has read for a while.

        Returns whether the reader took anything."""
        if not self.backlog:
            return False
        try:
            written = os.write(self.master, self.backlog)
        except OSError:  # EAGAIN: the pty is full
            written = 0
        del self.backlog[:written]
        if written or not self.backlog:
            self._stalled_since = None
            if len(self.backlog) <= MAX_BACKLOG:
                return written > 0
        now = time.monotonic()
        if self._stalled_since is None:
            self._stalled_since = now
        if len(self.backlog) > MAX_BACKLOG or now - self._stalled_since >= STALL_S:
            self.dropped += len(self.backlog)  # a sniffer that is not attached sees nothing
            self.backlog.clear()
        return written > 0

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class Tap:
    """Mirror of one board's link: two ptys and a JSON-lines capture file."""

    def __init__(self, capture_path: Path) -> None:
        self.capture_path = capture_path
        capture_path.parent.mkdir(parents=True, exist_ok=True)
        self._capture = open(capture_path, "a", buffering=1)  # noqa: SIM115 - lives with the tap
        self._ports = {direction: _Port() for direction in DIRECTIONS}
        self._lock = threading.Lock()

    def mirror(self, direction: str, data: bytes, t: float | None = None) -> None:
        """Record bytes that just crossed the wire in `direction`."""
        stamp = time.time() if t is None else t
        with self._lock:
            self._ports[direction].write(data)
            self._capture.write(capture_line(stamp, direction, data))

    def mirror_many(self, pieces: list[tuple[str, bytes, float]]) -> None:
        """Record several (direction, bytes, time) pieces in order: the same capture records
        and pty bytes as one `mirror` each, in one write per port and one to the file."""
        lines = "".join([capture_line(t, direction, data) for direction, data, t in pieces])
        with self._lock:
            for direction, port in self._ports.items():
                data = b"".join([d for where, d, _ in pieces if where == direction])
                if data:
                    port.write(data)
            self._capture.write(lines)

    @property
    def pending(self) -> bool:
        """Whether a pty owes its reader bytes (call `pump()` again soon)."""
        return any(port.backlog for port in self._ports.values())

    def pump(self) -> bool:
        """Write what the ptys owe; returns whether a reader took anything."""
        with self._lock:
            return any([port.pump() for port in self._ports.values()])

    def info(self) -> dict[str, str]:
        return {
            "asr_to_mcu": self._ports["asr_to_mcu"].path,
            "mcu_to_asr": self._ports["mcu_to_asr"].path,
            "capture": str(self.capture_path),
        }

    def close(self) -> None:
        with self._lock:
            for port in self._ports.values():
                port.close()
            self._capture.close()


def capture_line(t: float, direction: str, data: bytes) -> str:
    """One capture record, as `json.dumps({"t": t, "dir": direction, "hex": data.hex()})`
    writes it. The common case (a finite float time, a known direction) is formatted directly:
    json.dumps cost the fast link about a tenth of its time per chunk."""
    if type(t) is float and direction in DIRECTIONS and math.isfinite(t):
        return f'{{"t": {t!r}, "dir": "{direction}", "hex": "{data.hex()}"}}\n'
    return json.dumps({"t": t, "dir": direction, "hex": data.hex()}) + "\n"


def read_capture(path: Path) -> list[tuple[float, str, bytes]]:
    """A capture file as (time, direction, bytes) records, for replaying into the decoder."""
    records = []
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        records.append((entry["t"], entry["dir"], bytes.fromhex(entry["hex"])))
    return records
