"""pydantic's validation errors on boards.yaml, told in the words of the lab engineer who wrote it.

pydantic says `int_parsing` and `Input should be 'real' or 'emulated'`; the engineer needs "expected
a whole number, got 'fast'" and "(did you mean 'emulated'?)". `rig.lab.inventory` puts each
message at its key's FILE:LINE; this module only words it.
"""

from __future__ import annotations

import re
from typing import Any, get_args, get_origin

from pydantic import BaseModel

from rig import safe_yaml
from rig.lab.strict import did_you_mean


def _model_in(annotation: Any) -> Any:
    """The pydantic model inside `X | None` or `dict[str, X]`, else the annotation itself."""
    for arg in get_args(annotation) if get_origin(annotation) is not None else ():
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return annotation


def _fields_at(schema: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    """Names allowed at `loc` in the schema, for 'did you mean' on unknown keys."""
    model: Any = schema
    for part in loc:
        if get_origin(model) is dict:
            model = _model_in(model)
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        annotation = field.annotation
        model = annotation if get_origin(annotation) is dict else _model_in(annotation)
    if isinstance(model, type) and issubclass(model, BaseModel):
        # `path` is where the file was read from, set by the loader: never a key to write
        return [name for name in model.model_fields if name != "path"]
    return []


_PLAIN = {
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
    "float_type": "a number",
    "string_type": "text",
    "bool_parsing": "true or false",
    "list_type": "a list, e.g. [a, b]",
    "dict_type": "a mapping of keys to values",
    "model_type": "a mapping of keys to values",
}


def describe(error: dict[str, Any], schema: type[BaseModel]) -> str:
    """One pydantic error (an item of `ValidationError.errors()`) as a sentence for the file's
    author; `schema` is the model the whole file was validated against, for 'did you mean'."""
    kind, loc = error["type"], error["loc"]
    if kind == "missing":
        return f"required field '{loc[-1]}' is missing"
    if kind == "extra_forbidden":
        return f"unknown key '{loc[-1]}'{did_you_mean(loc[-1], _fields_at(schema, loc[:-1]))}"
    message = error["msg"].removeprefix("Value error, ")
    if kind in ("value_error", "assertion_error"):
        return message
    if kind in _PLAIN:
        return f"expected {_PLAIN[kind]}, got {safe_yaml.shown(error['input'])}"
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(error.get("ctx", {}).get("expected", "")))
        hint = did_you_mean(error["input"], choices)
        return f"{safe_yaml.shown(error['input'])} is not one of {', '.join(choices)}{hint}"
    if kind == "too_short" and loc == ("boards",):
        return "no boards: describe at least one board under 'boards:'"
    if kind == "string_pattern_mismatch":
        return f"{safe_yaml.shown(error['input'])} may hold only letters, digits, '_', '.' and '-'"
    return f"{message[0].lower()}{message[1:]}, got {safe_yaml.shown(error['input'])}"


def trim_loc(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """A pydantic error's location as keys in the file, for its line and dotted path."""
    # pydantic puts union branch names ("ConsoleConfig") and "[key]" markers into locations
    return tuple(p for p in loc if not (isinstance(p, str) and (p[:1].isupper() or "[" in p)))
