"""Measurements with limits and units, in the spirit of OpenHTF's: recorded always, judged late.

A test (or the framework, for what it knows: boot time, OTA stages, throughput, current) calls
`measurements.record("boot_time", 0.42, high=2.0, unit="s")`. Nothing raises there: every value
is kept so the report shows all of them, and `verdict()` at the end of the test lists every
out-of-limit value at once. This module knows nothing of pytest; rig.pytestplugin.report wires it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from numbers import Real
from typing import Protocol

from rig.errors import RigError
from rig.report import text_table


class MeasurementError(RigError):
    """A measurement call that cannot be judged (a value that is not a number, low > high)."""


@dataclass(frozen=True)
class Measurement:
    name: str
    value: float
    unit: str = ""
    low: float | None = None
    high: float | None = None
    at: float = field(default_factory=time.time)  # wall clock, to line up with other records
    source: str = "test"  # "test", or the framework part that measured it (e.g. "board")

    @property
    def passed(self) -> bool:
        if math.isnan(self.value):
            return False
        return (self.low is None or self.value >= self.low) and (
            self.high is None or self.value <= self.high
        )

    @property
    def limits(self) -> str:
        """The accepted range as a lab engineer writes it: `0.5 .. 2`, `≤ 2`, `≥ 0.5`, `-`."""
        if self.low is not None and self.high is not None:
            return f"{self.low:g} .. {self.high:g}"
        if self.high is not None:
            return f"≤ {self.high:g}"
        if self.low is not None:
            return f"≥ {self.low:g}"
        return "-"

    @property
    def shown(self) -> str:
        """The value with its unit, e.g. `0.42 s`."""
        return f"{self.value:.4g} {self.unit}".rstrip()

    def describe(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return f"{self.name} = {self.shown} (limits {self.limits}) {verdict}"

    def as_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed, "value": _json_number(self.value)}


class Limits(Protocol):
    """An accepted range (boards.yaml's `limits:` entries are ones); either side may be open."""

    @property
    def low(self) -> float | None: ...
    @property
    def high(self) -> float | None: ...


@dataclass(frozen=True)
class Limit:
    low: float | None = None
    high: float | None = None


_OPEN = Limit()


class Measurements:
    """The measurements of one test, with the board's limits to fill in the open ones."""

    def __init__(
        self,
        limits: Mapping[str, Limits] | None = None,
        on_record: Callable[[Measurement], None] | None = None,
    ) -> None:
        self.limits = dict(limits or {})
        self.on_record = on_record  # e.g. the plugin's Allure parameter and JUnit property
        self.items: list[Measurement] = []

    def record(
        self,
        name: str,
        value: float,
        *,
        low: float | None = None,
        high: float | None = None,
        unit: str = "",
        source: str = "test",
    ) -> Measurement:
        """Keep one value; the call's limits win, the board's fill in the sides it leaves open."""
        if isinstance(value, bool) or not isinstance(value, Real):
            raise MeasurementError(
                f"measurement {name!r}: value {value!r} is not a number; pass a float "
                "(convert units first, e.g. amps * 1000 for mA)"
            )
        board = self.limits.get(name, _OPEN)
        low = board.low if low is None else low
        high = board.high if high is None else high
        if low is not None and high is not None and low > high:
            raise MeasurementError(
                f"measurement {name!r}: low limit {low:g} is above the high limit {high:g}"
            )
        item = Measurement(name, float(value), unit, low, high, source=source)
        self.items.append(item)
        if self.on_record is not None:
            self.on_record(item)
        return item

    __call__ = record

    @property
    def failures(self) -> list[Measurement]:
        return [m for m in self.items if not m.passed]

    def verdict(self) -> str | None:
        """None when every value is within its limits, else one line per out-of-limit value."""
        failed = self.failures
        if not failed:
            return None
        lines = [f"{len(failed)} measurement(s) out of limits:"]
        lines += [f"  {m.name} = {m.shown}, limits {m.limits}" for m in failed]
        return "\n".join(lines)

    def table(self) -> str:
        """All measurements as an aligned text table (for the report attachment)."""
        rows = [("NAME", "VALUE", "LIMITS", "RESULT", "SOURCE")]
        rows += [
            (m.name, m.shown, m.limits, "PASS" if m.passed else "FAIL", m.source)
            for m in self.items
        ]
        return text_table.render(rows)

    def as_list(self) -> list[dict]:
        return [m.as_dict() for m in self.items]


def _json_number(value: float) -> float | str:
    """JSON has no NaN or infinity: write them as strings rather than produce invalid JSON."""
    return value if math.isfinite(value) else str(value)
