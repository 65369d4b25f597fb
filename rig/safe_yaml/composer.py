"""A YAML document's nodes built from parser events, with nesting, aliases and values counted.

PyYAML alone expands aliases without bound and recurses once per nesting level, so an alias
bomb or 100,000 nested `[` would hang or crash it. Here the events are turned into nodes with an
explicit stack and every limit is checked as the document grows, nothing expanded to count it;
PyYAML's and libyaml's own errors become `FILE:LINE: not valid YAML: …`. The limits are passed in
by the package, which reads its `MAX_*` values at each call.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml
from yaml.resolver import Resolver

from rig.safe_yaml.messages import YamlFileError, clip

_PARSER: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built with it


def compose(
    text: str, name: str, *, max_depth: int, max_aliases: int, max_nodes: int
) -> yaml.Node | None:
    """The document's root node (None for an empty one), with every limit checked as it grows."""
    try:
        return _Composer(
            name, max_depth=max_depth, max_aliases=max_aliases, max_nodes=max_nodes
        ).run(_events(text))
    except yaml.YAMLError as exc:
        raise syntax_error(name, text, exc, max_depth=max_depth) from None


def syntax_error(name: str, text: str, exc: yaml.YAMLError, *, max_depth: int) -> YamlFileError:
    """PyYAML's or libyaml's error as `FILE:LINE: not valid YAML: …`, bounded in length."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        if exc.problem == "exceeded maximum nesting depth":  # libyaml's own bound (1,000)
            return YamlFileError(name, line, _too_deep(max_depth), reason="limit")
        what = f"not valid YAML: {_one_line(exc.problem or exc.context or exc)}"
        if exc.context and exc.context_mark and exc.context_mark.line + 1 != line:
            what += f" ({exc.context} that starts at line {exc.context_mark.line + 1})"
        return YamlFileError(name, line, what, reason="syntax")
    position = getattr(exc, "position", 0)  # a ReaderError: a character neither check caught
    line = text.count("\n", 0, position) + 1
    return YamlFileError(name, line, f"not valid YAML: {_one_line(exc)}", reason="syntax")


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

    def __init__(self, name: str, *, max_depth: int, max_aliases: int, max_nodes: int) -> None:
        self.name = name
        self.max_depth, self.max_aliases, self.max_nodes = max_depth, max_aliases, max_nodes
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
        if self.aliases > self.max_aliases:
            raise self.error(
                event,
                f"more than {self.max_aliases:,} aliases (*name): write out the values they repeat",
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
        if len(self.stack) >= self.max_depth:
            raise self.error(event, _too_deep(self.max_depth))
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
        if self.total > self.max_nodes:
            raise self.error(
                event,
                f"more than {self.max_nodes:,} values once its aliases are expanded (an alias "
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


def _events(text: str) -> Iterator[yaml.Event]:
    parser = _PARSER(text)
    try:
        while parser.check_event():
            yield parser.get_event()
    finally:
        parser.dispose()


def _one_line(what: object) -> str:
    return clip(" ".join(str(what).split()), 200)


def _too_deep(max_depth: int) -> str:
    return (
        f"lists and mappings nested more than {max_depth} deep: rig's YAML files nest fewer "
        "than 10; check the brackets and indentation from here"
    )
