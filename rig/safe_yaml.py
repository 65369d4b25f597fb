"""Every YAML file rig reads, read one bounded way, so a wrong or hostile file ends in one message.

A lab's YAML files (boards.yaml, device profiles, instrument definitions) are a few KB of text a
person wrote. A wrong file (a binary, a Latin-1 export, a paste with a NUL, a folder) or a
hostile one (an alias bomb, 100,000 nested `[`) must end in well under a second with
`FILE:LINE: what, and what to do`, never a traceback or a hang. PyYAML alone gives none of that:
it expands aliases without bound, recurses once per nesting level, and reports bad bytes as
Python exceptions. So the bytes are read with a size cap and checked as UTF-8 text here, then
parsed event by event into nodes with every limit counted on the way (nothing is expanded to
count it), and only then built into plain data by PyYAML's safe constructor.

Only the standard library, PyYAML and `rig.errors`: every layer may use it.
"""

from __future__ import annotations

import codecs
import os
import re
import reprlib
import stat
from collections.abc import Iterator
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from rig.errors import RigError

#: The largest file read. Real ones are 1-5 KB (boards.yaml, profiles, instrument definitions);
#: a lab of 1,000 boards written out in full is ~360 KB. A MiB of YAML parses in ~0.1 s.
MAX_BYTES = 1 << 20
#: Mappings and lists inside each other. Real files nest 4-7 deep; every walk over the data
#: (pydantic, line lookups) recurses per level, so this stays far below Python's stack limit.
MAX_DEPTH = 64
#: Alias references (`*name`). A lab shares a section between boards with one alias per board.
MAX_ALIASES = 10_000
#: Values (keys, scalars, lists, mappings) once every alias is expanded: what validation walks
#: and an error may echo. A board written out in full is ~45 values, so a lab of 1,000 boards
#: fits; an alias bomb holds billions. Reading this many takes ~0.2 s, validating them ~0.4 s.
MAX_NODES = 50_000
#: Characters of one number. Longer ones cost quadratic time to convert (`1:2:3:…` is base 60).
MAX_NUMBER_CHARS = 100

#: What YAML allows in a stream (YAML 1.1 §5.1, as both PyYAML and libyaml check it).
_NOT_PRINTABLE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
_PARSER: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built with it
_CONTROL_NAMES = {0: "NUL", 7: "BEL", 8: "BS", 0x0B: "VT", 0x0C: "FF", 0x1B: "ESC", 0x7F: "DEL"}


class YamlFileError(RigError):
    """A YAML file rig will not read; the message is `FILE[:LINE]: what, and what to do`.

    `line` is None when the problem is the file as a whole (missing, a folder, too big);
    `reason` says which kind of problem for callers that word some in their own terms:
    missing, unreadable, not-a-file, too-big, encoding, control, syntax, limit, value."""

    def __init__(self, file: str, line: int | None, problem: str, *, reason: str) -> None:
        self.file, self.line, self.problem, self.reason = file, line, problem, reason
        super().__init__(f"{file}:{line}: {problem}" if line is not None else f"{file}: {problem}")


def load(path: str | os.PathLike[str], *, name: str | None = None) -> Any:
    """The plain data of the YAML file at `path` (None for an empty file); `name` is the file
    as the user wrote it, for messages (default: `path`)."""
    shown = str(path) if name is None else name
    return construct(compose(read_text(path, name=shown), shown), shown)


def loads(data: str | bytes, name: str = "<text>") -> Any:
    """The plain data of YAML given as text or bytes, with every check `load` makes."""
    text = decode(data, name) if isinstance(data, bytes) else check_text(data, name)
    return construct(compose(text, name), name)


def read_text(path: str | os.PathLike[str], *, name: str | None = None) -> str:
    """The file's text: a regular file of at most MAX_BYTES, valid UTF-8, no control characters.

    Anything else named as the file (a folder, a serial port, a FIFO) is refused before it is
    opened: opening a port can reset a board and a FIFO can block forever."""
    shown = str(path) if name is None else name
    try:
        kind = _kind(os.stat(path).st_mode)
        if kind is None:
            flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
            fd = os.open(path, flags)
            with os.fdopen(fd, "rb") as file:
                kind = _kind(os.fstat(fd).st_mode)  # swapped since the stat: still refused
                data = b"" if kind else file.read(MAX_BYTES + 1)
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
    if len(data) > MAX_BYTES:
        raise YamlFileError(
            shown,
            None,
            f"larger than {_size(MAX_BYTES)}, the most rig reads from a YAML file: rig's "
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


def compose(text: str, name: str) -> yaml.Node | None:
    """The document's root node (None for an empty one), with every limit checked as it grows."""
    try:
        return _Composer(name).run(_events(text))
    except yaml.YAMLError as exc:
        raise _syntax(name, text, exc) from None


def construct(node: yaml.Node | None, name: str) -> Any:
    """The plain data of a composed document, with PyYAML's safe types."""
    if node is None:
        return None
    try:
        return _Constructor().construct_document(node)
    except _ValueProblem as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 1
        raise YamlFileError(name, line, str(exc.problem), reason="value") from None
    except yaml.YAMLError as exc:
        raise _syntax(name, "", exc) from None
    except RecursionError:  # cannot happen within MAX_DEPTH; a clear message if it ever does
        line = node.start_mark.line + 1
        raise YamlFileError(name, line, "too deeply nested to read", reason="limit") from None


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


class _Open:
    """A list or mapping being composed: its node, its anchor, the count when it began."""

    __slots__ = ("anchor", "key", "node", "sequence", "total_before")

    def __init__(self, node: yaml.Node, anchor: str | None, total_before: int) -> None:
        self.node, self.anchor, self.total_before = node, anchor, total_before
        self.sequence = isinstance(node, yaml.SequenceNode)
        self.key: yaml.Node | None = None

    def add(self, child: yaml.Node) -> None:
        if self.sequence:
            self.node.value.append(child)
        elif self.key is None:
            self.key = child
        else:
            self.node.value.append((self.key, child))
            self.key = None


class _Composer:
    """Nodes from parser events, with an explicit stack instead of recursion.

    PyYAML's composer recurses once per level and never counts what an alias stands for. Here
    each alias counts at the expanded size of its anchor's value, known once that value closed,
    so the total is what any later walk of the data would visit, without expanding anything."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.resolver = Resolver()
        self.anchors: dict[str, yaml.Node] = {}
        self.sizes: dict[int, int] = {}  # id(anchored node) -> values in it, expanded
        self.open_anchors: set[str] = set()
        self.stack: list[_Open] = []
        self.total = self.aliases = self.documents = 0
        self.root: yaml.Node | None = None

    def run(self, events: Iterator[yaml.Event]) -> yaml.Node | None:
        handlers: dict[type, Any] = {
            yaml.DocumentStartEvent: self.document,
            yaml.AliasEvent: self.alias,
            yaml.ScalarEvent: self.scalar,
            yaml.SequenceStartEvent: self.start,
            yaml.MappingStartEvent: self.start,
            yaml.SequenceEndEvent: self.end,
            yaml.MappingEndEvent: self.end,
        }
        for event in events:
            handler = handlers.get(type(event))
            if handler is not None:  # stream start and end, document end: nothing to build
                handler(event)
        return self.root

    def document(self, event: yaml.DocumentStartEvent) -> None:
        self.documents += 1
        if self.documents > 1:
            raise self.error(
                event,
                "a second document (after ---): rig reads one document per file; remove the "
                "--- line or split the file",
            )

    def alias(self, event: yaml.AliasEvent) -> None:
        anchor = str(event.anchor)
        if anchor not in self.anchors:
            raise self.error(
                event,
                f"alias *{clip(anchor)} names no anchor above it: define &{clip(anchor)} first, "
                "or fix the name",
            )
        if anchor in self.open_anchors:
            raise self.error(
                event,
                f"alias *{clip(anchor)} is inside the value it names, which would make that "
                "value infinite: write the value out instead",
            )
        self.aliases += 1
        if self.aliases > MAX_ALIASES:
            raise self.error(
                event,
                f"more than {MAX_ALIASES:,} aliases (*name): write out the values they repeat",
            )
        target = self.anchors[anchor]
        self.add(target, self.sizes[id(target)], event)

    def scalar(self, event: yaml.ScalarEvent) -> None:
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.resolver.resolve(yaml.ScalarNode, event.value, event.implicit)
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        self.anchor(event, node)
        if event.anchor is not None:
            self.sizes[id(node)] = 1
        self.add(node, 1, event)

    def start(self, event: yaml.SequenceStartEvent | yaml.MappingStartEvent) -> None:
        if len(self.stack) >= MAX_DEPTH:
            raise self.error(event, _too_deep())
        kind = yaml.SequenceNode if isinstance(event, yaml.SequenceStartEvent) else yaml.MappingNode
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.resolver.resolve(kind, None, event.implicit)
        node = kind(tag, [], event.start_mark, None, flow_style=event.flow_style)
        self.anchor(event, node)
        if event.anchor is not None:
            self.open_anchors.add(event.anchor)
        self.total += 1
        self.stack.append(_Open(node, event.anchor, self.total))

    def end(self, event: yaml.SequenceEndEvent | yaml.MappingEndEvent) -> None:
        done = self.stack.pop()
        done.node.end_mark = event.end_mark
        size = self.total - done.total_before + 1
        if done.anchor is not None:
            self.open_anchors.discard(done.anchor)
            self.sizes[id(done.node)] = size
        self.total -= size  # counted as it grew; add() counts it again, whole
        self.add(done.node, size, event)

    def add(self, node: yaml.Node, size: int, event: yaml.Event) -> None:
        self.total += size
        if self.total > MAX_NODES:
            raise self.error(
                event,
                f"more than {MAX_NODES:,} values once its aliases are expanded (an alias "
                "bomb?): rig's YAML files hold a few thousand; write out what the aliases "
                "repeat, or repeat less",
            )
        if self.stack:
            self.stack[-1].add(node)
        else:
            self.root = node

    def anchor(self, event: yaml.NodeEvent, node: yaml.Node) -> None:
        if event.anchor is None:
            return
        if event.anchor in self.anchors:
            first = self.anchors[event.anchor].start_mark.line + 1
            raise self.error(
                event,
                f"anchor &{clip(event.anchor)} is defined twice (first at line {first}): give "
                "each anchor its own name",
            )
        self.anchors[event.anchor] = node

    def error(self, event: yaml.Event, problem: str) -> YamlFileError:
        return YamlFileError(self.name, event.start_mark.line + 1, problem, reason="limit")


class _ValueProblem(yaml.MarkedYAMLError):
    """A value the constructor refused; its problem is the whole message."""


class _Constructor(SafeConstructor):
    """PyYAML's safe constructor, with a number too long to convert refused at its line and any
    value it cannot build (`2001-02-30`, `!!int ''`) reported at its line, not as a traceback."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        if node.tag in _NUMBER_TAGS and len(node.value) > MAX_NUMBER_CHARS:
            raise _ValueProblem(
                problem=f"a number {len(node.value):,} characters long: rig's numbers are "
                "short; quote it if it is text",
                problem_mark=node.start_mark,
            )
        try:
            return super().construct_object(node, deep=deep)
        except (ArithmeticError, LookupError, ValueError, TypeError, AttributeError) as exc:
            raise _ValueProblem(
                problem=f"cannot read {shown(node.value, 60)} as {_tag_name(node.tag)}: "
                f"{clip(str(exc))}; quote it if it is text",
                problem_mark=node.start_mark,
            ) from None


def _events(text: str) -> Iterator[yaml.Event]:
    parser = _PARSER(text)
    try:
        while parser.check_event():
            yield parser.get_event()
    finally:
        parser.dispose()


def _syntax(name: str, text: str, exc: yaml.YAMLError) -> YamlFileError:
    """PyYAML's or libyaml's error as `FILE:LINE: not valid YAML: …`, bounded in length."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        if exc.problem == "exceeded maximum nesting depth":  # libyaml's own bound (1,000)
            return YamlFileError(name, line, _too_deep(), reason="limit")
        what = f"not valid YAML: {_one_line(exc.problem or exc.context or exc)}"
        if exc.context and exc.context_mark and exc.context_mark.line + 1 != line:
            what += f" ({exc.context} that starts at line {exc.context_mark.line + 1})"
        return YamlFileError(name, line, what, reason="syntax")
    position = getattr(exc, "position", 0)  # a ReaderError: a character neither check caught
    line = text.count("\n", 0, position) + 1
    return YamlFileError(name, line, f"not valid YAML: {_one_line(exc)}", reason="syntax")


def _one_line(what: object) -> str:
    return clip(" ".join(str(what).split()), 200)


def _size(count: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count % scale == 0:
            return f"{count // scale} {unit}"
    return f"{count:,} bytes"


def _too_deep() -> str:
    return (
        f"lists and mappings nested more than {MAX_DEPTH} deep: rig's YAML files nest fewer "
        "than 10; check the brackets and indentation from here"
    )


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


def _tag_name(tag: str) -> str:
    short = tag.rpartition(":")[2]
    return {"int": "a whole number", "float": "a number", "timestamp": "a date"}.get(short, short)


__all__ = [
    "MAX_ALIASES",
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_NUMBER_CHARS",
    "YamlFileError",
    "check_text",
    "clip",
    "compose",
    "construct",
    "decode",
    "load",
    "loads",
    "read_text",
    "shown",
]
