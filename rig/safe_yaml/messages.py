"""How a refused YAML file is reported: the one error, and echoes of its values bounded in length.

Every other module of the package raises `YamlFileError` and quotes what it found through `clip`
and `shown`, so a hostile file (a megabyte-long key, a 5,000-digit number) still ends in a
message that fits a terminal.
"""

from __future__ import annotations

import reprlib
from typing import Any

from rig.errors import RigError


class YamlFileError(RigError):
    """A YAML file rig will not read; the message is `FILE[:LINE]: what, and what to do`.

    `line` is None when the problem is the file as a whole (missing, a folder, too big);
    `reason` says which kind of problem for callers that word some in their own terms:
    missing, unreadable, not-a-file, too-big, encoding, control, syntax, limit, value."""

    def __init__(self, file: str, line: int | None, problem: str, *, reason: str) -> None:
        self.file, self.line, self.problem, self.reason = file, line, problem, reason
        super().__init__(f"{file}:{line}: {problem}" if line is not None else f"{file}: {problem}")


def clip(text: str, limit: int = 80) -> str:
    """`text`, or its start and how long it was: an echoed value must never flood a terminal."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


_shortrepr = reprlib.Repr()
_shortrepr.maxlevel, _shortrepr.maxstring, _shortrepr.maxother = 3, 60, 60
_shortrepr.maxlist = _shortrepr.maxtuple = _shortrepr.maxdict = _shortrepr.maxset = 6
_shortrepr.maxlong = 40


def shown(value: Any, limit: int = 120) -> str:
    """`repr(value)` bounded in length and in the work to make it, whatever `value` holds."""
    try:
        text = _shortrepr.repr(value)
    except ValueError:  # an int too long to print (Python's 4,300-digit guard)
        text = f"<a number of {value.bit_length():,} bits>" if isinstance(value, int) else "<…>"
    return clip(text, limit)
