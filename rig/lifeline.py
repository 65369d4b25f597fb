"""A child process's tie to the process that launched it: its stdin.

The launcher keeps the write end of the child's stdin open and never writes to it (past any
start-up line). When the launcher stops the child it closes it; when the launcher dies by any
means, even SIGKILL, the kernel closes it. Either way the child reads end-of-file and stops as
on SIGTERM, so a killed pytest leaves no double or OTA service behind. (PR_SET_PDEATHSIG would
fire when the launching *thread* ends, and the plugin launches from short-lived threads.)
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading


def stop_when_stdin_closes() -> threading.Thread:
    """Watch stdin in a daemon thread; at its end, SIGTERM this process (its graceful stop)."""

    # os.read, not sys.stdin: a daemon thread blocked in the buffered reader holds its lock, and
    # the interpreter, flushing stdin at exit, aborts with "could not acquire lock".
    fd = sys.stdin.fileno()

    def watch() -> None:
        with contextlib.suppress(OSError):
            while os.read(fd, 4096):
                pass
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=watch, name="rig-lifeline", daemon=True)
    thread.start()
    return thread
