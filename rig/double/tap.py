"""What a two-port sniffer on the ASR⇆MCU UART would show: one pseudo-terminal per direction,
plus a capture file of every byte with the time it crossed the wire.

The ptys are written without blocking: when nobody reads them their buffers fill and further
bytes are dropped (counted), so the link itself never stalls on an idle sniffer.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import tty
from pathlib import Path

DIRECTIONS = ("asr_to_mcu", "mcu_to_asr")


class _Port:
    """One direction's pty: the double holds the master, a sniffer client opens the slave."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)
        self.dropped = 0

    def write(self, data: bytes) -> None:
        try:
            written = os.write(self.master, data)
        except OSError:  # EAGAIN: nobody is reading; a sniffer that is not attached sees nothing
            written = 0
        self.dropped += len(data) - written

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
            self._capture.write(
                json.dumps({"t": stamp, "dir": direction, "hex": data.hex()}) + "\n"
            )

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


def read_capture(path: Path) -> list[tuple[float, str, bytes]]:
    """A capture file as (time, direction, bytes) records, for replaying into the decoder."""
    records = []
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        records.append((entry["t"], entry["dir"], bytes.fromhex(entry["hex"])))
    return records
