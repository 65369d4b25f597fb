"""The faults an emulated board can be told to have: names, params and their checks.

This is the vocabulary both sides read: the inventory validates `double: {faults: [...]}` in
boards.yaml with it, the double's control channel parses run-time requests with it, and the
double's `Faults` (rig.double.faults) arms what it parsed. It holds no running state and imports
nothing of the double, so reading boards.yaml never loads the double. What each fault does, and
how the deployment ends, is in rig.double.faults.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rig.double.errors import FaultError


def _index(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"a chunk number from 0, got {value!r}")
    return value


def _fraction(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"a fraction of the image from 0 to 1, got {value!r}")
    return float(value)


def _fraction_before_end(value: Any) -> float:
    if _fraction(value) >= 1:
        raise ValueError(f"a fraction of the image from 0 to below 1, got {value!r}")
    return float(value)


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"a whole number of at least 1, got {value!r}")
    return value


def _seed(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"an integer, got {value!r}")
    return value


@dataclass(frozen=True)
class FaultKind:
    """What a fault takes: its params with their checks, which are required, and defaults."""

    params: Mapping[str, Callable[[Any], Any]]
    defaults: Mapping[str, Any]
    expect: str  # the deployment's expected outcome, for messages and docs


_CHUNK = {"index": _index}
KINDS: dict[str, FaultKind] = {
    "corrupt_chunk": FaultKind(_CHUNK, {}, "VERIFY_FAILED"),
    "drop_chunk": FaultKind(_CHUNK, {}, "SUCCEEDED after a re-request"),
    "duplicate_chunk": FaultKind(_CHUNK, {}, "SUCCEEDED after a repeat"),
    "reorder_chunks": FaultKind(_CHUNK, {}, "SUCCEEDED after a re-request"),
    "mcu_declines": FaultKind({}, {}, "DECLINED"),
    "mcu_stops_early": FaultKind({"at": _fraction_before_end}, {}, "ABORTED_BY_MCU"),
    "mcu_silent": FaultKind({"at": _fraction}, {}, "TIMED_OUT"),
    "asr_reboot": FaultKind(
        {"at": _fraction_before_end, "times": _count}, {"times": 1}, "SUCCEEDED in attempt 2"
    ),
    "line_noise": FaultKind({"rate": _fraction, "seed": _seed}, {"seed": 1}, "SUCCEEDED"),
    "no_ota_capability": FaultKind({}, {}, "DECLINED"),
    "asr_update_ready": FaultKind({}, {}, "the MCU asks the ASR to reboot (SET 65012)"),
}

#: Names a lab engineer may try that are not control-channel faults, and what to do instead.
ELSEWHERE = {
    "brownout": "a brown-out is real on the double: set the supply below the board's "
    "min_volts (e.g. VOLT 2.5) or its current limit below the board's draw, then back",
    "power_cut": "cut the supply itself (rig.ota.power_cut.cut_power_at, or OUTP OFF)",
    "power_loss": "cut the supply itself (rig.ota.power_cut.cut_power_at, or OUTP OFF)",
    "fails_to_boot": "push an image built to fail its boot "
    "(firmware_samples/blinky-app-1.2.0-crash.rigimg)",
}


@dataclass(frozen=True)
class Fault:
    """One parsed fault: its name and every param (defaults filled in)."""

    name: str
    params: tuple[tuple[str, Any], ...] = ()

    def get(self, param: str) -> Any:
        return dict(self.params)[param]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, **dict(self.params)}


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def parse_fault(spec: Mapping[str, Any]) -> Fault:
    """`{"name": ..., **params}` as a Fault; FaultError saying what is wrong and what is known."""
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise FaultError(f"a fault is a mapping with a name, e.g. "
                         f"{{name: corrupt_chunk, index: 3}}; got {spec!r}")  # fmt: skip
    name = str(spec["name"])
    if name in ELSEWHERE:
        raise FaultError(f"{name!r} is not a control-channel fault: {ELSEWHERE[name]}")
    kind = KINDS.get(name)
    if kind is None:
        raise FaultError(f"unknown fault {name!r}{_did_you_mean(name, KINDS)}; "
                         f"known: {', '.join(KINDS)}")  # fmt: skip
    given = {k: v for k, v in spec.items() if k != "name"}
    takes = ", ".join(kind.params) or "no params"
    for param in given:
        if param not in kind.params:
            raise FaultError(f"fault {name} has no param {param!r}"
                             f"{_did_you_mean(param, kind.params)}; it takes {takes}")  # fmt: skip
    values = {**kind.defaults, **given}
    missing = [p for p in kind.params if p not in values]
    if missing:
        example = ", ".join(f"{p}=..." for p in missing)
        raise FaultError(f"fault {name} needs {example} (it takes {takes})")
    checked = []
    for param, check in kind.params.items():
        try:
            checked.append((param, check(values[param])))
        except ValueError as exc:
            raise FaultError(f"fault {name}: {param} must be {exc}") from None
    return Fault(name, tuple(checked))


def parse_faults(specs: Iterable[Mapping[str, Any]]) -> tuple[Fault, ...]:
    return tuple(parse_fault(spec) for spec in specs)
