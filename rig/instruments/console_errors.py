"""What a console's failures tell a lab engineer: the errors, and each message they carry.

A timeout shows the pattern waited for, the last lines received since the previous match and
the log file holding everything; the other errors name the board, the port and what to check.
`rig.lab.console_errors` builds on `ConsoleTimeout` to point at the boards.yaml key behind a
pattern.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from rig.errors import RigError

if TYPE_CHECKING:
    from pathlib import Path

    from rig.instruments.console_text import Received

TAIL_CHARS = 1500  # how far back a timeout looks for the lines it shows
TAIL_LINES = 15


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


def cannot_open(name: str, url: str, exc: Exception) -> ConsoleError:
    missing = "://" not in url and not os.path.exists(url)
    return ConsoleError(
        f"{name}: console {url}: cannot open it: "
        f"{'it does not exist' if missing else exc}. Check the adapter is "
        f"plugged in, boards.{name}.console.port, and that no other program "
        "(screen, minicom, another run) holds the port."
    )


def not_connected(name: str, url: str) -> ConsoleError:
    return ConsoleError(f"{name}: console {url} is not connected right now")


def gone_while_writing(name: str, url: str, exc: Exception) -> ConsoleError:
    return ConsoleError(
        f"{name}: console {url} went away while writing ({exc}); it is reopened when it comes back"
    )


def closed_while_waiting(name: str, url: str, pattern: object) -> ConsoleError:
    return ConsoleError(f"{name}: console {url} was closed while waiting for {shown(pattern)}")


def timed_out(
    name: str,
    url: str,
    *,
    pattern: object,
    timeout_s: float,
    received: Received,
    log_path: Path | None,
) -> ConsoleTimeout:
    """`pattern` (a str or a compiled regex) did not appear within `timeout_s`; `received` is
    what came since the previous match."""
    tail = tuple(received.tail(TAIL_CHARS).splitlines()[-TAIL_LINES:])
    return ConsoleTimeout(
        _timeout_message(name, url, pattern, timeout_s, tail, log_path),
        pattern=pattern.pattern if isinstance(pattern, re.Pattern) else str(pattern),
        timeout_s=timeout_s,
        tail=tail,
        log_path=log_path,
    )


def _timeout_message(
    name: str,
    url: str,
    pattern: object,
    timeout_s: float,
    tail: tuple[str, ...],
    log_path: Path | None,
) -> str:
    shown_tail = "\n".join(f"    | {line}" for line in tail) or "    (nothing received)"
    return (
        f"{name}: console {url}: {shown(pattern)} did not appear within "
        f"{timeout_s:g} s.\n  last lines received since the previous match:\n{shown_tail}\n"
        f"  full log: {log_path or '(no log file)'}"
    )


def shown(pattern: object) -> str:
    """A pattern as a message quotes it: the regex's source, or the literal, in repr."""
    return repr(pattern.pattern if isinstance(pattern, re.Pattern) else pattern)
