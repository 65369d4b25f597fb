"""SCPI syntax for the emulated supply: headers, long/short keywords, arguments, error entries.

Kept apart from the supply model so the model reads as behaviour ("what does OUTP do") while
this module owns the grammar ("is `:OUTPut:STATe` the same as `outp`"). Only the keywords the
double understands are known; anything else is an undefined header, as on a real instrument.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

# Keywords in SCPI notation: the upper-case part is the short form, the whole word the long one.
KEYWORDS = (
    *("INSTrument", "NSELect", "SELect", "SOURce", "VOLTage", "CURRent", "OUTPut", "STATe"),
    *("MEASure", "DC", "ALL", "SYSTem", "ERRor", "NEXT", "VERSion", "DIAGnostic", "DELay"),
    *("LEVel", "IMMediate", "AMPLitude"),
)


def _spellings() -> dict[str, str]:
    table: dict[str, str] = {}
    for keyword in KEYWORDS:
        short = "".join(c for c in keyword if c.isupper())
        table[short] = table[keyword.upper()] = short
    return table


_SPELLINGS = _spellings()
_HEADER = re.compile(r"(\S+)\s*(.*)", re.DOTALL)
_NODE = re.compile(r"([A-Za-z]+)(\d*)")
_BOOLS = {"ON": True, "1": True, "OFF": False, "0": False}


class ScpiError(Exception):
    """A failed command; its `entry` goes to the error queue, never to the client directly."""

    def __init__(self, code: int, message: str) -> None:
        self.entry = f'{code},"{message}"'
        super().__init__(self.entry)


def undefined_header() -> ScpiError:
    return ScpiError(-113, "Undefined header")


def out_of_range() -> ScpiError:
    return ScpiError(-222, "Data out of range")


def data_type_error() -> ScpiError:
    return ScpiError(-104, "Data type error")


def not_allowed() -> ScpiError:
    return ScpiError(-108, "Parameter not allowed")


@dataclass(frozen=True)
class Command:
    """One parsed command: canonical short keywords, numeric suffixes, query flag, arguments."""

    nodes: tuple[str, ...]  # e.g. ("OUTP", "STAT"); common commands are ("*IDN",)
    suffixes: tuple[int | None, ...]  # e.g. (2, None) for SOUR2:VOLT
    query: bool
    args: tuple[str, ...]


def parse(text: str) -> Command:
    """Parse one command (no ';'); long/short forms in any case, optional leading colon."""
    match = _HEADER.match(text.strip())
    if match is None:
        raise undefined_header()
    header, rest = match.groups()
    args = tuple(a.strip() for a in rest.split(",")) if rest.strip() else ()
    query = header.endswith("?")
    header = header.removesuffix("?")
    if header.startswith("*"):
        return Command((header.upper(),), (None,), query, args)
    nodes: list[str] = []
    suffixes: list[int | None] = []
    for raw in header.removeprefix(":").split(":"):
        node = _NODE.fullmatch(raw)
        name = _SPELLINGS.get(node.group(1).upper()) if node else None
        if node is None or name is None:
            raise undefined_header()
        nodes.append(name)
        suffixes.append(int(node.group(2)) if node.group(2) else None)
    return Command(tuple(nodes), tuple(suffixes), query, args)


def one_arg(args: tuple[str, ...]) -> str:
    """Exactly one argument, or the SCPI error a real instrument would queue."""
    if not args:
        raise ScpiError(-109, "Missing parameter")
    if len(args) > 1:
        raise not_allowed()
    return args[0]


def number_arg(args: tuple[str, ...], high: float) -> float:
    """One decimal argument in 0..high."""
    try:
        value = float(one_arg(args))
    except ValueError:
        raise data_type_error() from None
    if not math.isfinite(value) or not 0.0 <= value <= high:
        raise out_of_range()
    return value


def bool_arg(args: tuple[str, ...]) -> bool:
    """ON|OFF|1|0, any case."""
    value = _BOOLS.get(one_arg(args).upper())
    if value is None:
        raise data_type_error()
    return value
