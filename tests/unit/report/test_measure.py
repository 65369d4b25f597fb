"""Measurements and flaky-step retries as plain objects (the plugin's use is in test_reports)."""

import math

import pytest

from rig.errors import RigError
from rig.flaky import FlakyStepError, hardware_flaky, recording, retry_flaky
from rig.report.measure import Limit, MeasurementError, Measurements
from rig.report.ota import stage_durations


def test_every_value_is_kept_and_the_verdict_lists_every_failure():
    m = Measurements()
    m("boot_current", 41.5, low=10, high=60, unit="mA")
    m("boot_time", 3.2, high=2.0, unit="s")
    m("idle_current", 0.5, low=1.0, unit="mA")
    assert [x.passed for x in m.items] == [True, False, False]
    verdict = m.verdict()
    assert verdict is not None
    assert verdict.splitlines() == [
        "2 measurement(s) out of limits:",
        "  boot_time = 3.2 s, limits ≤ 2",
        "  idle_current = 0.5 mA, limits ≥ 1",
    ]


def test_limits_are_inclusive_and_nan_never_passes():
    m = Measurements()
    assert m("edge_low", 1.0, low=1.0).passed
    assert m("edge_high", 2.0, high=2.0).passed
    assert not m("nan", math.nan, low=0).passed
    assert m("unlimited", -5.0).limits == "-"
    assert m.as_list()[2]["value"] == "nan"  # JSON has no NaN


def test_board_limits_fill_in_only_the_sides_the_call_leaves_open():
    m = Measurements(limits={"boot_time": Limit(low=0.01, high=2.0)})
    assert m("boot_time", 1.0, unit="s").limits == "0.01 .. 2"
    assert m("boot_time", 1.0, high=0.5, unit="s").limits == "0.01 .. 0.5"
    assert not m.items[-1].passed


@pytest.mark.parametrize("value", ["12", None, True])
def test_a_value_that_is_not_a_number_is_refused_by_name(value):
    with pytest.raises(MeasurementError, match=r"measurement 'x': value .* is not a number"):
        Measurements()("x", value)


def test_crossed_limits_are_refused():
    with pytest.raises(MeasurementError, match="low limit 5 is above the high limit 1"):
        Measurements()("x", 3, low=5, high=1)


def test_table_shows_every_measurement_with_its_verdict():
    m = Measurements()
    m("a", 1, high=2, unit="V")
    m("b", 3, high=2, unit="V", source="board")
    lines = m.table().splitlines()
    assert lines[0].split() == ["NAME", "VALUE", "LIMITS", "RESULT", "SOURCE"]
    assert lines[1].split() == ["a", "1", "V", "≤", "2", "PASS", "test"]
    assert lines[2].split() == ["b", "3", "V", "≤", "2", "FAIL", "board"]


def _flaky(failures: int, exc: type[BaseException] = RigError):
    calls = []

    def step():
        calls.append(1)
        if len(calls) <= failures:
            raise exc(f"adapter gone (call {len(calls)})")
        return "ok"

    return step, calls


def test_a_flaky_step_is_retried_and_every_attempt_recorded():
    step, calls = _flaky(failures=1)
    seen = []
    with recording(seen.append):
        assert retry_flaky("boot", step, attempts=3) == "ok"
    assert len(calls) == 2
    assert [(a.number, a.of, a.error) for a in seen] == [
        (1, 3, "adapter gone (call 1)"),
        (2, 3, None),
    ]


def test_a_flaky_step_gives_up_after_its_bound_naming_each_attempt():
    step, calls = _flaky(failures=5)
    with pytest.raises(FlakyStepError) as caught:
        retry_flaky("boot", step, attempts=2)
    assert len(calls) == 2
    assert "boot failed on all 2 attempts" in str(caught.value)
    assert "attempt 2: adapter gone (call 2)" in str(caught.value)


def test_only_the_named_errors_are_retried():
    step, calls = _flaky(failures=1, exc=AssertionError)
    with pytest.raises(AssertionError):
        retry_flaky("check", step, attempts=3)
    assert len(calls) == 1  # a firmware assertion is not hardware flakiness


def test_the_bound_is_bounded():
    with pytest.raises(FlakyStepError, match=r"attempts=9 must be 1\.\.5"):
        retry_flaky("boot", lambda: None, attempts=9)


def test_decorated_step_keeps_its_name_and_retries():
    step, _ = _flaky(failures=1)

    @hardware_flaky(attempts=2)
    def power_up():
        return step()

    seen = []
    with recording(seen.append):
        assert power_up() == "ok"
    assert [a.step for a in seen] == ["power_up", "power_up"]


def test_stage_durations_follow_the_last_attempt():
    ms = 1_000_000_000_000
    history = [
        {"state": "QUEUED", "timestamp": ms, "attempt": 1},
        {"state": "OFFERED", "timestamp": ms + 100, "attempt": 1},
        {"state": "TRANSFERRING", "timestamp": ms + 200, "attempt": 1},
        {"state": "INTERRUPTED", "timestamp": ms + 700, "attempt": 1},
        {"state": "ACCEPTED", "timestamp": ms + 1000, "attempt": 2},
        {"state": "TRANSFERRING", "timestamp": ms + 1100, "attempt": 2},
        {"state": "TRANSFERRED", "timestamp": ms + 1600, "attempt": 2},
        {"state": "SUCCEEDED", "timestamp": ms + 1700, "attempt": 2},
    ]
    durations = stage_durations(history)
    assert durations == pytest.approx(
        {"ACCEPTED": 0.1, "TRANSFERRING": 0.5, "TRANSFERRED": 0.1, "total": 1.7}
    )
