"""YAML loaded safely, with the line of every key kept, so errors can say FILE:LINE.

PyYAML's safe loader forgets positions and silently keeps the last of two duplicate keys. Here
the file is composed once into nodes (positions kept), duplicates are reported, and the plain
data is built from the same nodes with the safe constructor.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class Problem:
    """One mistake in a file: where it is and what is wrong."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.path}: {self.message}"


class YamlSource:
    """A parsed YAML document that can answer 'which line holds this path?'."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.root = yaml.compose(text, Loader=yaml.SafeLoader)
        self.data: Any = (
            yaml.SafeLoader("").construct_document(self.root) if self.root is not None else None
        )

    @classmethod
    def read(cls, path: Path) -> YamlSource:
        """Parse `path`; raises yaml.MarkedYAMLError on a syntax error."""
        return cls(path, path.read_text(encoding="utf-8"))

    def line_of(self, loc: tuple[str | int, ...]) -> int:
        """Line (1-based) of the deepest node of `loc` that exists in the file."""
        node = self.root
        line = node.start_mark.line + 1 if node is not None else 1
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    if key.value == part:
                        line, node = key.start_mark.line + 1, value
                        break
                else:
                    return line
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
                node = next((value for key, value in node.value if key.value == part), None)
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
