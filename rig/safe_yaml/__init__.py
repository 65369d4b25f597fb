"""Every YAML file rig reads, read one bounded way, so a wrong or hostile file ends in one message.

A lab's YAML files (boards.yaml, device profiles, instrument definitions) are a few KB of text a
person wrote. A wrong file (a binary, a Latin-1 export, a paste with a NUL, a folder) or a
hostile one (an alias bomb, 100,000 nested `[`) must end in well under a second with
`FILE:LINE: what, and what to do`, never a traceback or a hang. PyYAML alone gives none of that:
it expands aliases without bound, recurses once per nesting level, and reports bad bytes as
Python exceptions. So the bytes are read with a size cap and checked as UTF-8 text here, then
parsed event by event into nodes with every limit counted on the way (nothing is expanded to
count it), and only then built into plain data by PyYAML's safe constructor.

This module is the whole public API and holds the limits; each is read at every call and passed
down, so setting one here (as tests do) takes effect. The work is done in `reading` (bytes to
checked text), `composer` (events to bounded nodes), `constructor` (nodes to plain data) and
`messages` (the error and bounded echoes of values).

Only the standard library, PyYAML and `rig.errors`: every layer may use it.
"""

from __future__ import annotations

import os
from typing import Any

import yaml

from rig.safe_yaml import composer, constructor, reading
from rig.safe_yaml.messages import YamlFileError, clip, shown
from rig.safe_yaml.reading import check_text, decode

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


def load(path: str | os.PathLike[str], *, name: str | None = None) -> Any:
    """The plain data of the YAML file at `path` (None for an empty file); `name` is the file
    as the user wrote it, for messages (default: `path`)."""
    label = str(path) if name is None else name
    return construct(compose(read_text(path, name=label), label), label)


def loads(data: str | bytes, name: str = "<text>") -> Any:
    """The plain data of YAML given as text or bytes, with every check `load` makes."""
    text = decode(data, name) if isinstance(data, bytes) else check_text(data, name)
    return construct(compose(text, name), name)


def read_text(path: str | os.PathLike[str], *, name: str | None = None) -> str:
    """The file's text: a regular file of at most MAX_BYTES, valid UTF-8, no control characters.

    Anything else named as the file (a folder, a serial port, a FIFO) is refused before it is
    opened: opening a port can reset a board and a FIFO can block forever."""
    label = str(path) if name is None else name
    return reading.read_bounded(path, label, max_bytes=MAX_BYTES)


def compose(text: str, name: str) -> yaml.Node | None:
    """The document's root node (None for an empty one), with every limit checked as it grows."""
    return composer.compose(
        text, name, max_depth=MAX_DEPTH, max_aliases=MAX_ALIASES, max_nodes=MAX_NODES
    )


def construct(node: yaml.Node | None, name: str) -> Any:
    """The plain data of a composed document, with PyYAML's safe types."""
    return constructor.construct(node, name, max_number_chars=MAX_NUMBER_CHARS, max_depth=MAX_DEPTH)


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
