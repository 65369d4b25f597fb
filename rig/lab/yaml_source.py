"""YAML loaded safely, with the line of every key kept, so errors can say FILE:LINE.

PyYAML's safe loader forgets positions and silently keeps the last of two duplicate keys. Here
the file is read and composed once into nodes by `rig.safe_yaml` (positions kept, size, nesting
and aliases bounded), duplicates are reported, and the plain data is built from the same nodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rig import safe_yaml


@dataclass(frozen=True)
class Problem:
    """One mistake in a file: where it is and what is wrong."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:  # clipped: a key or value in the file may be huge
        path, message = safe_yaml.clip(self.path, 200), safe_yaml.clip(self.message, 1000)
        return f"{self.file}:{self.line}: {path}: {message}"


class YamlSource:
    """A parsed YAML document that can answer 'which line holds this path?'."""

    def __init__(self, path: Path, text: str, name: str | None = None) -> None:
        self.path = path
        shown = str(path) if name is None else name
        self.root = safe_yaml.compose(safe_yaml.check_text(text, shown), shown)
        self.data: Any = safe_yaml.construct(self.root, shown)
        self._keys: dict[int, dict[Any, tuple[yaml.Node, yaml.Node]]] = {}

    @classmethod
    def read(cls, path: Path, name: str | None = None) -> YamlSource:
        """Parse `path` (`name`: as the user wrote it, for messages); raises
        safe_yaml.YamlFileError on a file rig will not read, with its line when it has one."""
        shown = str(path) if name is None else name
        return cls(path, safe_yaml.read_text(path, name=shown), shown)

    def _entry(self, node: yaml.MappingNode, key: Any) -> tuple[yaml.Node, yaml.Node] | None:
        """(key node, value node) of the first `key` in a mapping: indexed once per mapping, so
        placing every problem of a large file stays linear."""
        index = self._keys.get(id(node))
        if index is None:
            index = {}
            for key_node, value in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    index.setdefault(key_node.value, (key_node, value))
            self._keys[id(node)] = index
        return index.get(key)

    def line_of(self, loc: tuple[str | int, ...]) -> int:
        """Line (1-based) of the deepest node of `loc` that exists in the file."""
        node = self.root
        line = node.start_mark.line + 1 if node is not None else 1
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                entry = self._entry(node, part)
                if entry is None:
                    return line
                line, node = entry[0].start_mark.line + 1, entry[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                if part >= len(node.value):
                    return line
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                return line
        return line

    def sets(self, loc: tuple[str | int, ...]) -> bool:
        """Whether the file itself gives `loc` a value (False: it is left to its default)."""
        node = self.root
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                entry = self._entry(node, part)
                node = entry[1] if entry is not None else None
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                node = node.value[part] if part < len(node.value) else None
            else:
                node = None
            if node is None:
                return False
        return True

    def duplicate_keys(self) -> list[tuple[tuple[str | int, ...], int, int]]:
        """Every key defined twice in one mapping: (path, first line, repeated line)."""
        found: list[tuple[tuple[str | int, ...], int, int]] = []

        def walk(node: yaml.Node, loc: tuple[str | int, ...]) -> None:
            if isinstance(node, yaml.MappingNode):
                seen: dict[Any, int] = {}
                for key, value in node.value:
                    line = key.start_mark.line + 1
                    if key.value in seen:
                        found.append(((*loc, key.value), seen[key.value], line))
                    else:
                        seen[key.value] = line
                    walk(value, (*loc, key.value))
            elif isinstance(node, yaml.SequenceNode):
                for index, item in enumerate(node.value):
                    walk(item, (*loc, index))

        if self.root is not None:
            walk(self.root, ())
        return found


def dotted(loc: tuple[str | int, ...]) -> str:
    """`('boards', 'x', 'tags', 1)` → `boards.x.tags[1]`."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"
