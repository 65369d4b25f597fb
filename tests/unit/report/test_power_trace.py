"""PowerTrace: real sampling threads over real callables, the CSV read back, the PNG opened back.

No test sleeps to synchronise: each waits for a condition with a deadline (conftest.wait_until).
Readers return multiples of 0.25 A, exact in binary, so means over windows compare exactly.
"""

from __future__ import annotations

import csv
import threading
import time
from pathlib import Path

import pytest
from matplotlib.image import imread

from rig.report.ota import record_ota
from rig.report.power_trace import PowerTrace, marks_from_history, power_figure
from tests.unit.helpers import wait_until

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Counter:
    """A read_amps whose value changes on every call: 0.0, 0.25, 0.5, …"""

    def __init__(self, fail_after: int | None = None) -> None:
        self.calls = 0
        self.fail_after = fail_after

    def __call__(self) -> float:
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise OSError("VISA timeout on MEAS:CURR? CH2")
        self.calls += 1
        return (self.calls - 1) * 0.25


def recorded(n: int, **kwargs) -> tuple[PowerTrace, Counter]:
    reader = Counter()
    trace = PowerTrace(reader, interval_s=0.001, **kwargs).start()
    wait_until(lambda: len(trace.samples) >= n, what=f"{n} samples")
    trace.stop()
    return trace, reader


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC
    pixels = imread(path)
    assert pixels.shape[0] > 0 and pixels.shape[1] > 0


def test_each_read_is_one_sample_in_order_on_the_wall_clock():
    before = time.time()
    trace, reader = recorded(5)
    samples = trace.samples
    assert len(samples) >= 5
    assert [amps for _, amps in samples] == [i * 0.25 for i in range(len(samples))]
    times = [t for t, _ in samples]
    assert times == sorted(times) and before <= times[0] and times[-1] <= time.time()
    # a read that was in flight when stop() came is not kept: samples are final after stop()
    assert reader.calls - len(samples) in (0, 1)
    assert trace.samples == samples and trace.error is None


def test_a_value_switched_by_an_event_shows_up_in_the_samples():
    high = threading.Event()
    trace = PowerTrace(lambda: 0.5 if high.is_set() else 0.25, interval_s=0.001, name="bench-3")
    with trace:
        wait_until(lambda: len(trace.samples) >= 3, what="samples before the switch")
        high.set()
        wait_until(lambda: any(a == 0.5 for _, a in trace.samples), what="a sample after it")
    values = [a for _, a in trace.samples]
    switch = values.index(0.5)
    assert set(values[:switch]) == {0.25} and set(values[switch:]) == {0.5}
    last_low, first_high = trace.samples[switch - 1][0], trace.samples[switch][0]
    assert trace.mean(t1=last_low) == 0.25 and trace.peak(t1=last_low) == 0.25
    assert trace.mean(t0=first_high) == 0.5 and trace.peak() == 0.5
    assert not [t for t in threading.enumerate() if t.name == "power-trace-bench-3"]


def test_mean_and_peak_over_windows_are_exact():
    trace, _ = recorded(6)
    times = [t for t, _ in trace.samples]
    # inclusive at both ends: samples 1, 2, 3 are 0.25, 0.5, 0.75
    assert trace.mean(times[1], times[3]) == 0.5
    assert trace.peak(times[1], times[3]) == 0.75
    # the same three samples from a window whose edges fall between samples
    between = ((times[0] + times[1]) / 2, (times[3] + times[4]) / 2)
    assert (trace.mean(*between), trace.peak(*between)) == (0.5, 0.75)
    gap = (times[1] + times[2]) / 2
    assert trace.mean(gap, gap) is None and trace.peak(gap, gap) is None
    values = [a for _, a in trace.samples]
    assert trace.mean() == sum(values) / len(values) and trace.peak() == values[-1]
    assert PowerTrace(Counter()).mean() is None and PowerTrace(Counter()).peak() is None


def test_settled_is_the_last_samples_once_they_agree():
    moving, _ = recorded(6)  # 0, 0.25, 0.5, …: never settled
    assert moving.settled() is None
    assert moving.quiet_mean() is None  # nobody said when the board was at rest
    values = iter([0.045, 0.045, 0.012, 0.0121, 0.0119, 0.012])  # a boot, then at rest
    trace = PowerTrace(lambda: next(values), interval_s=0.001).start()
    wait_until(lambda: trace.error is not None, what="the six values read")  # then it stops
    trace.stop()
    assert len(trace.samples) == 6
    assert trace.settled() == slice(3, 6)
    trace.quiet = trace.settled()
    assert trace.quiet_mean() == pytest.approx(0.012)
    assert trace.settled(count=5) is None  # the boot's 45 mA is among the last five


def test_a_flat_boot_shorter_than_the_span_is_not_rest():
    values = iter([0.045] * 6 + [0.012] * 4)  # a boot as steady as rest, then at rest
    trace = PowerTrace(lambda: next(values), interval_s=0.001).start()
    wait_until(lambda: trace.error is not None, what="the ten values read")
    trace.stop()
    times = [t for t, _ in trace.samples]
    assert trace.settled(count=3) == slice(7, 10)
    # over the whole boot's span the boot is in the window: not settled however flat it was
    assert trace.settled(span_s=times[-1] - times[4]) is None
    assert trace.settled(span_s=(times[-1] - times[6] + times[-1] - times[5]) / 2) is None
    assert trace.settled(span_s=times[-1] - times[6]) == slice(6, 10)  # rest alone, long enough
    trace.quiet = trace.settled(span_s=times[-1] - times[6])
    assert trace.quiet_mean() == pytest.approx(0.012)
    assert trace.settled(span_s=times[-1] - times[0] + 1) is None  # the trace is not that long


def test_idle_current_counts_only_the_quiet_samples():
    trace, _ = recorded(6)  # 0, 250, 500, 750, 1000, 1250 mA
    times = [t for t, _ in trace.samples]
    # OFFERED stamped after sample 4: the time window alone would take 0..1000 mA
    history = [{"state": "OFFERED", "timestamp": (times[4] + 0.0001) * 1000}]
    got: dict[str, float] = {}

    def record(name: str, value: float, **_: object) -> None:
        got[name] = value

    record_ota(record, {"history": history}, image_size=0, trace=trace)
    assert got["idle_current"] == 500.0
    trace.quiet = slice(0, 2)  # at rest for the first two whole reads
    record_ota(record, {"history": history}, image_size=0, trace=trace)
    assert got["idle_current"] == 125.0


def test_a_failing_instrument_is_named_in_error_and_stop_still_returns():
    reader = Counter(fail_after=3)
    trace = PowerTrace(reader, interval_s=0.001, name="bench-3").start()
    wait_until(lambda: trace.error, what="the reader's error")
    trace.stop()
    trace.stop()  # idempotent
    assert "bench-3" in trace.error and "Counter" in trace.error
    assert "OSError" in trace.error and "VISA timeout on MEAS:CURR? CH2" in trace.error
    assert [a for _, a in trace.samples] == [0.0, 0.25, 0.5]  # sampling stopped at the error


def test_stop_is_prompt_even_with_a_long_interval():
    trace = PowerTrace(Counter(), interval_s=60).start()
    wait_until(lambda: trace.samples, what="the first sample")
    began = time.monotonic()
    trace.stop()
    assert time.monotonic() - began < 1.0
    assert len(trace.samples) == 1


def test_stop_before_start_is_harmless_and_a_trace_records_once():
    trace = PowerTrace(Counter())
    trace.stop()
    assert trace.samples == [] and trace.error is None
    started = PowerTrace(Counter(), interval_s=0.001).start()
    with pytest.raises(RuntimeError, match="already started"):
        started.start()
    started.stop()
    with pytest.raises(ValueError, match="interval_s"):
        PowerTrace(Counter(), interval_s=0)


def test_csv_rows_are_the_samples(tmp_path: Path):
    trace, _ = recorded(5)
    path = trace.write_csv(tmp_path / "out" / "power.csv")
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["t_s", "amps"]
    samples = trace.samples
    assert len(rows) - 1 == len(samples)
    assert rows[1][0] == "0.0000"
    for (t_s, amps), (t, expected) in zip(rows[1:], samples, strict=True):
        assert float(t_s) == pytest.approx(t - samples[0][0], abs=5e-5)
        assert len(t_s.split(".")[1]) == 4
        assert float(amps) == expected


def test_plot_draws_the_marks_inside_the_trace_and_lists_the_others(tmp_path: Path):
    trace, _ = recorded(5, name="bench-3")
    samples = trace.samples
    start, end = samples[0][0], samples[-1][0]
    marks = [(start - 0.25, "QUEUED"), (samples[2][0], "TRANSFERRING"), (end + 2, "SUCCEEDED")]
    fig = trace.figure(marks)
    (ax,) = fig.axes
    assert ax.get_title() == "supply current — bench-3"
    (current,) = [line for line in ax.lines if line.get_label() == "current"]
    assert list(current.get_ydata()) == [a * 1000 for _, a in samples]  # mA
    assert list(current.get_xdata()) == [t - start for t, _ in samples]
    (mark,) = [line for line in ax.lines if line.get_label() == "TRANSFERRING"]
    assert list(mark.get_xdata()) == [samples[2][0] - start] * 2
    assert mark.get_linestyle() == "--"
    texts = [t.get_text().strip() for t in ax.texts]
    assert "TRANSFERRING" in texts and "QUEUED" not in texts and "SUCCEEDED" not in texts
    assert "outside the trace: QUEUED -0.25 s, SUCCEEDED +" in texts[-1]

    path = trace.plot(tmp_path / "power.png", marks, title="OTA 1.1.0")
    assert path == tmp_path / "power.png"
    assert_png(path)


def test_a_trace_without_samples_still_makes_its_picture(tmp_path: Path):
    trace = PowerTrace(Counter(fail_after=0), interval_s=0.001, name="bench-3").start()
    wait_until(lambda: trace.error, what="the reader's error")
    trace.stop()
    fig = power_figure(trace.samples, [(time.time(), "OFFERED")], error=trace.error)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "no samples" in texts and any("VISA timeout" in t for t in texts)
    assert_png(trace.plot(tmp_path / "empty.png", [(time.time(), "OFFERED")]))


def test_marks_from_history_label_state_reason_and_attempt():
    history = [
        {"state": "TRANSFERRING", "timestamp": 1764200000123, "attempt": 1, "reason": None},
        {"state": "INTERRUPTED", "timestamp": 1764200001500, "attempt": 1,
         "reason": "ASR_REBOOT", "detail": None},
        {"state": "ACCEPTED", "timestamp": 1764200002000, "attempt": 2, "reason": None},
        {"state": "TIMED_OUT", "timestamp": 1764200009000, "attempt": 3, "reason": "VERIFYING"},
    ]  # fmt: skip
    assert marks_from_history(history) == [
        (1764200000.123, "TRANSFERRING"),
        (1764200001.5, "INTERRUPTED (ASR_REBOOT)"),
        (1764200002.0, "ACCEPTED #2"),
        (1764200009.0, "TIMED_OUT (VERIFYING) #3"),
    ]
