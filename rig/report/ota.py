"""What one OTA tells the report: stage durations, throughput, current, the pictures.

The pipeline emits an `OtaOutcome` for every push; the pytest plugin hands it to
`report_outcome`, which records the measurements and attaches the pictures (`rig.steps`). Times
come from the service's
history (ms since the epoch), the sniffer (wall clock) and the power trace (wall clock), so the
three line up on one axis without any clock translation.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rig import steps
from rig.ota import states as ds
from rig.protocol.transcript import Transcript
from rig.report.power_trace import PowerTrace, marks_from_history
from rig.report.timeline import plot_timeline, timeline_text

if TYPE_CHECKING:
    from rig.ota.pipeline import OtaOutcome

Record = Callable[..., object]  # Measurements.record: (name, value, *, unit, source, ...)


def state_times(history: list[dict[str, Any]]) -> dict[str, float]:
    """When each state was first entered in the last attempt, in seconds since the epoch."""
    last = max((h.get("attempt") or 1 for h in history), default=1)
    times: dict[str, float] = {}
    for entry in history:
        if (entry.get("attempt") or 1) == last:
            times.setdefault(entry["state"], entry["timestamp"] / 1000)
    return times


def stage_durations(history: list[dict[str, Any]]) -> dict[str, float]:
    """Seconds in each state of the path during the last attempt, and the whole deployment's.

    A state lasts until the next state entered; states skipped have no duration."""
    entered = sorted(state_times(history).items(), key=lambda kv: kv[1])
    durations = {
        state: max(0.0, entered[i + 1][1] - t)
        for i, (state, t) in enumerate(entered[:-1])
        if state in ds.PATH
    }
    if len(history) > 1:
        durations["total"] = (history[-1]["timestamp"] - history[0]["timestamp"]) / 1000
    return durations


def since(transcript: Transcript, history: list[dict[str, Any]]) -> Transcript:
    """The part of a test's transcript from this deployment's push on (a test may push twice)."""
    if not history:
        return transcript
    start = history[0]["timestamp"] / 1000 - 0.01  # the service stamps whole milliseconds
    return Transcript(events=[e for e in transcript.events if e.t >= start])


def record_ota(
    record: Record,
    deployment: dict[str, Any],
    *,
    image_size: int,
    transcript: Transcript | None = None,
    trace: PowerTrace | None = None,
) -> None:
    """Record the built-in OTA measurements the deployment (and wire, and supply) allow."""
    history = deployment.get("history", [])
    for stage, seconds in stage_durations(history).items():
        record(f"ota_{stage.lower()}_s", seconds, unit="s", source="ota")
    times = state_times(history)
    if transcript is not None and transcript.throughput > 0:
        record("handoff_throughput", transcript.throughput / 1024, unit="KiB/s", source="wire")
    elif ds.TRANSFERRING in times and ds.TRANSFERRED in times:
        seconds = times[ds.TRANSFERRED] - times[ds.TRANSFERRING]
        if seconds > 0:
            record("handoff_throughput", image_size / seconds / 1024, unit="KiB/s",
                   source="service")  # fmt: skip
    if trace is None:
        return
    # Idle: before the device first took the offer (the MCU may be taking the image well before
    # the service hears ACCEPTED, when the line is slow or noisy; and a retry's window would
    # hold the first attempt's transfer); the transfer: the last attempt's, as the stage
    # durations are.
    # A sample is stamped at the middle of its read, so with the device offered within a
    # millisecond of the push, a slow read stamped before OFFERED can hold the transfer's draw,
    # and the samples just after the previous deployment its reboot's: when the trace knows
    # which samples show the board at rest before the push, only those count.
    busy = (ds.OFFERED, ds.ACCEPTED, ds.TRANSFERRING)
    first_busy = min((h["timestamp"] / 1000 for h in history if h["state"] in busy), default=None)
    idle = trace.quiet_mean() if trace.quiet else trace.mean(None, first_busy)
    if idle is not None:
        record("idle_current", idle * 1000, unit="mA", source="power")
    # The transfer: while the chunks crossed the wire, when the sniffer saw them. The service's
    # TRANSFERRING and TRANSFERRED are when it heard of them, a report's round trip after each
    # end: on a fast link the window they make is mostly idle time around a ~20 ms transfer.
    chunks = transcript.chunks if transcript is not None else []
    windows = [(chunks[0].t, chunks[-1].t)] if chunks else []
    if ds.TRANSFERRING in times:
        windows.append((times[ds.TRANSFERRING], times.get(ds.TRANSFERRED)))
    for t0, t1 in windows:
        during = trace.mean(t0, t1)
        if during is not None:
            record("transfer_current", during * 1000, unit="mA", source="power")
            break


def attach_power_trace(
    trace: PowerTrace, board: str, deployment: dict[str, Any] | None = None, label: str = ""
) -> None:
    """The supply current as a picture (the deployment's states marked) and the samples as CSV."""
    marks = marks_from_history(deployment.get("history", [])) if deployment else []
    title = (f"supply current during OTA {deployment.get('id', '')} on {board}" if deployment
             else f"supply current on {board}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="rig-trace-") as tmp:
        png = trace.plot(Path(tmp) / "trace.png", marks, title=title)
        csv = trace.write_csv(Path(tmp) / "trace.csv")
        steps.attach_file(f"power trace {board}{label}", png, "png")
        steps.attach_file(f"power samples {board}{label}", csv, "csv")
    if trace.error:
        steps.attach(f"power trace {board}{label}: sampling stopped", trace.error)


def attach_timeline(transcript: Transcript, deployment: dict[str, Any], board: str) -> None:
    """The decoded handoff as text and as a picture, with the service's states beside it."""
    history = deployment.get("history", [])
    steps.attach(f"handoff timeline {board}", timeline_text(transcript, history))
    with tempfile.TemporaryDirectory(prefix="rig-timeline-") as tmp:
        png = plot_timeline(
            transcript,
            Path(tmp) / "timeline.png",
            history,
            title=f"handoff of deployment {deployment.get('id', '')} on {board}",
        )
        steps.attach_file(f"handoff timeline {board}", png, "png")


def report_outcome(outcome: OtaOutcome, record: Record, *, pictures: bool) -> None:
    """One push, for the test's report: its measurements, and its pictures when `pictures`
    (they cost ~70 ms each, worth it only when a report is written)."""
    if not outcome.waited:
        return
    history = outcome.deployment.get("history", [])
    # this deployment's part of the wire, not the whole test's
    transcript = since(outcome.wire, history) if outcome.wire is not None else None
    record_ota(record, outcome.deployment, image_size=outcome.image_size, transcript=transcript,
               trace=outcome.trace)  # fmt: skip
    if outcome.trace is not None and pictures:
        attach_power_trace(outcome.trace, outcome.board, outcome.deployment)
    if transcript is not None and pictures:
        attach_timeline(transcript, outcome.deployment, outcome.board)
