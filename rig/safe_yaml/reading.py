"""A YAML file's bytes read with a size cap and checked as text YAML allows, before any parsing.

A wrong file (a binary, a Latin-1 export, a paste with a NUL, a folder, a serial port) must be
refused here with its line and what to do, not reach PyYAML, which reports bad bytes as Python
exceptions. The size cap is passed in by the package, which reads its `MAX_BYTES` at each call.
"""

from __future__ import annotations

import codecs
import os
import re
import stat

from rig.safe_yaml.messages import YamlFileError

#: What YAML allows in a stream (YAML 1.1 §5.1, as both PyYAML and libyaml check it).
_NOT_PRINTABLE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
_CONTROL_NAMES = {0: "NUL", 7: "BEL", 8: "BS", 0x0B: "VT", 0x0C: "FF", 0x1B: "ESC", 0x7F: "DEL"}


def read_bounded(path: str | os.PathLike[str], shown: str, *, max_bytes: int) -> str:
    """The file's text: a regular file of at most `max_bytes`, valid UTF-8, no control
    characters; `shown` names the file in messages.

    Anything else named as the file (a folder, a serial port, a FIFO) is refused before it is
    opened: opening a port can reset a board and a FIFO can block forever."""
    try:
        kind = _kind(os.stat(path).st_mode)
        if kind is None:
            flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
            fd = os.open(path, flags)
            with os.fdopen(fd, "rb") as file:
                kind = _kind(os.fstat(fd).st_mode)  # swapped since the stat: still refused
                data = b"" if kind else file.read(max_bytes + 1)
    except FileNotFoundError:
        raise YamlFileError(shown, None, "no such file: check the path", reason="missing") from None
    except PermissionError:
        raise YamlFileError(
            shown,
            None,
            "cannot be read: permission denied: check its owner and mode",
            reason="unreadable",
        ) from None
    except OSError as exc:
        raise YamlFileError(
            shown,
            None,
            f"cannot be read: {exc.strerror or exc}: check the path",
            reason="unreadable",
        ) from None
    if kind is not None:
        raise YamlFileError(
            shown, None, f"is {kind}, not a file: name the YAML file itself", reason="not-a-file"
        )
    if len(data) > max_bytes:
        raise YamlFileError(
            shown,
            None,
            f"larger than {_size(max_bytes)}, the most rig reads from a YAML file: rig's "
            "YAML files (boards.yaml, profiles, instrument definitions) are a few KB of text; "
            "check this is the right file",
            reason="too-big",
        )
    return decode(data, shown)


def decode(data: bytes, name: str) -> str:
    """`data` as UTF-8 text; a byte that is not UTF-8 is named with its line and offset."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # before UTF-32 (same start)
        raise YamlFileError(
            name,
            1,
            "the file is UTF-16 (it starts with a UTF-16 byte-order mark): save it as "
            "UTF-8, which is what rig reads",
            reason="encoding",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise YamlFileError(
            name,
            line,
            f"byte 0x{data[exc.start]:02X} at byte offset {exc.start} (column {column}) is not "
            "UTF-8: save the file as UTF-8 (was it written as Latin-1 or Windows-1252?), or "
            "check this is a text file at all",
            reason="encoding",
        ) from None
    return check_text(text, name)


def check_text(text: str, name: str) -> str:
    """`text` itself if YAML allows every character in it, else the first one it does not."""
    bad = _NOT_PRINTABLE.search(text)
    if bad is None:
        return text
    code = ord(bad.group())
    line = text.count("\n", 0, bad.start()) + 1
    column = bad.start() - (text.rfind("\n", 0, bad.start()) + 1) + 1
    label = f" ({_CONTROL_NAMES[code]})" if code in _CONTROL_NAMES else ""
    kind = "control character" if code < 0xA0 else "character"  # else a surrogate or U+FFFE/F
    escape = f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    raise YamlFileError(
        name,
        line,
        f"column {column} holds the {kind} U+{code:04X}{label}, which YAML does not allow: "
        "delete it (is this a binary file, or a paste from a terminal?); inside a "
        f'double-quoted string it may be written as "{escape}"',
        reason="control",
    )


def _size(count: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count % scale == 0:
            return f"{count // scale} {unit}"
    return f"{count:,} bytes"


def _kind(mode: int) -> str | None:
    """What a path is when it is not a regular file (None when it is)."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device (a serial port, a terminal, /dev/zero…)"
    if stat.S_ISBLK(mode):
        return "a block device (a disk)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"
