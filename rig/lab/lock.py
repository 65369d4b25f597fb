"""One run per board: an OS file lock per board, with a note of who holds it.

The lock is `flock`-based (filelock), so the kernel releases it when its holder dies: there is
no stale lock to clean up by hand. Beside it a small JSON note says who holds the board, so a
run that cannot get it can say whom it is waiting for.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import filelock

from rig.errors import RigError


class LockError(RigError):
    """The board is held by another run for longer than we were willing to wait."""


def default_lock_dir() -> Path:
    """Shared by every user of the host, so two people never drive one board at once."""
    return Path(os.environ.get("RIG_LOCK_DIR") or Path(tempfile.gettempdir()) / "rig-locks")


class BoardLock:
    """Exclusive use of one board by this process."""

    def __init__(self, key: str, *, board: str | None = None, lock_dir: Path | None = None) -> None:
        self.key = key
        self.board = board or key
        self.dir = lock_dir or default_lock_dir()
        self.path = self.dir / f"{key}.lock"
        self.note = self.dir / f"{key}.holder.json"
        self._lock: filelock.BaseFileLock | None = None

    def acquire(self, timeout_s: float) -> None:
        """Take the board, waiting up to `timeout_s`; raises LockError naming the holder."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            self.dir.chmod(0o1777)
        lock = filelock.FileLock(self.path, mode=0o666, thread_local=False)
        try:
            lock.acquire(timeout=timeout_s, poll_interval=0.05)
        except filelock.Timeout:
            raise LockError(
                f"board {self.board!r} is in use by {self.holder()}; waited {timeout_s:g} s. "
                "Wait for that run to finish, pick another board with --board, or wait longer "
                "with --lock-timeout SECONDS."
            ) from None
        self._lock = lock
        self.note.write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "user": getpass.getuser(),
                    "host": socket.gethostname(),
                    "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                    "command": " ".join(sys.argv)[:200],
                    "worker": os.environ.get("PYTEST_XDIST_WORKER", ""),
                }
            )
        )

    def holder(self) -> str:
        """Who holds the board, as far as the note tells."""
        try:
            info = json.loads(self.note.read_text())
        except (OSError, ValueError):
            return "another process (no holder note)"
        worker = f", xdist worker {info['worker']}" if info.get("worker") else ""
        return (
            f"pid {info.get('pid')} ({info.get('user')}@{info.get('host')}{worker}, "
            f"since {info.get('since')}, command: {info.get('command')})"
        )

    def release(self) -> None:
        if self._lock is not None:
            with contextlib.suppress(OSError):
                self.note.unlink()
            self._lock.release()
            self._lock = None

    @property
    def held(self) -> bool:
        return self._lock is not None and self._lock.is_locked
