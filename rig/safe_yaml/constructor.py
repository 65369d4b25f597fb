"""Plain data built from composed nodes by PyYAML's safe constructor, every refusal at its line.

The composer bounds the shape of a document; what is left to refuse is a value: a number too
long to convert in reasonable time (`1:2:3:…` is base 60, quadratic) or one PyYAML cannot build
(`2001-02-30`, `!!int ''`), which it would report as a traceback. The limits are passed in by the
package, which reads its `MAX_*` values at each call.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from rig.safe_yaml.composer import syntax_error
from rig.safe_yaml.messages import YamlFileError, clip, shown

_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")


def construct(node: yaml.Node | None, name: str, *, max_number_chars: int, max_depth: int) -> Any:
    """The plain data of a composed document, with PyYAML's safe types."""
    if node is None:
        return None
    try:
        return _Constructor(max_number_chars).construct_document(node)
    except _ValueProblem as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 1
        raise YamlFileError(name, line, str(exc.problem), reason="value") from None
    except yaml.YAMLError as exc:
        raise syntax_error(name, "", exc, max_depth=max_depth) from None
    except RecursionError:  # cannot happen within MAX_DEPTH; a clear message if it ever does
        line = node.start_mark.line + 1
        raise YamlFileError(name, line, "too deeply nested to read", reason="limit") from None


class _ValueProblem(yaml.MarkedYAMLError):
    """A value the constructor refused; its problem is the whole message."""


class _Constructor(SafeConstructor):
    """PyYAML's safe constructor, with a number too long to convert refused at its line and any
    value it cannot build (`2001-02-30`, `!!int ''`) reported at its line, not as a traceback."""

    def __init__(self, max_number_chars: int) -> None:
        super().__init__()
        self.max_number_chars = max_number_chars

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        if node.tag in _NUMBER_TAGS and len(node.value) > self.max_number_chars:
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


def _tag_name(tag: str) -> str:
    short = tag.rpartition(":")[2]
    return {"int": "a whole number", "float": "a number", "timestamp": "a date"}.get(short, short)
