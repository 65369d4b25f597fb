"""A console's log file: every byte received, each line stamped with the time it came, and rig's
own notes (power events, test boundaries, what was sent) between the lines.

Both the reader thread and a waiting expect write what they read here, so the log is complete
whoever read it; a lock keeps a note from landing inside a line.
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path


def _stamp() -> str:
    return datetime.now().isoformat(sep=" ", timespec="milliseconds")


class ConsoleLog:
    """The log of one console, appended to; with no path (or once closed) writes are dropped."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._file = None
        self._lock = threading.Lock()
        self._line_start = True  # whether the next byte received starts a line

    def open(self) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "ab")  # noqa: SIM115 - lives as long as the console

    def received(self, data: bytes) -> None:
        """Bytes from the port, each line stamped with the time it came."""
        with self._lock:
            if self._file is None:
                return
            prefix = _stamp().encode() + b" "
            body = data.replace(b"\n", b"\n" + prefix)
            if self._line_start:
                body = prefix + body
            self._line_start = data.endswith(b"\n")
            if self._line_start:
                body = body[: -len(prefix)]
            self._file.write(body)
            self._file.flush()

    def mark(self, text: str) -> None:
        """A note of rig's own, on a line of its own."""
        with self._lock:
            if self._file is None:
                return
            lead = b"" if self._line_start else b"\n"
            self._file.write(lead + f"{_stamp()} [rig] {text}\n".encode())
            self._file.flush()
            self._line_start = True

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
