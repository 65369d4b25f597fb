"""The handoff timeline for a report: the decoded ASR⇆MCU transcript as text and as a picture.

The transcript is what crossed the wire; a deployment's history is what the OTA service believed
meanwhile. Both use wall-clock time (sniffer events `time.time()`, history `timestamp` in ms), so
side by side they show where a handoff stalled: chunks re-sent while the service still says
TRANSFERRING, a VERIFY that never came, an APPLY with no version report after it.

Drawn with Figure + FigureCanvasAgg (no pyplot): safe from any thread, no display needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # matplotlib loads when a picture is drawn (only for an Allure report)
    from matplotlib.figure import Figure

from rig.ota import states as ds
from rig.protocol import aflib
from rig.protocol.aflib.describe import describe_value
from rig.protocol.decoder import ASR_TO_MCU, MCU_TO_ASR
from rig.protocol.transcript import Chunk, Transcript
from rig.report.power_trace import LABEL_BOX, history_label, save_png

ARROWS = {ASR_TO_MCU: "asr→mcu", MCU_TO_ASR: "mcu→asr"}
SHORT = {"TRANSFER_BEGIN": "BEGIN", "TRANSFER_END": "END", "VERIFY_SIGNATURE": "VERIFY"}
STEP_COLOURS = {ASR_TO_MCU: "tab:green", MCU_TO_ASR: "tab:purple", "service": "tab:orange"}
FAILED = frozenset(ds.FAILURES) - ds.RETRYABLE  # INTERRUPTED gets a colour of its own
PATH_COLOURS = ("#c6dbef", "#9ecae1", "#bcbddc", "#dadaeb", "#c7eae5", "#80cdc1", "#e0ecf4")

History = Sequence[dict[str, Any]]


@dataclass(frozen=True)
class Step:
    """One line of the merged timeline: wall time, who ('service', 'asr→mcu', …), what."""

    t: float
    source: str
    what: str


def split_chunks(chunks: Sequence[Chunk]) -> tuple[list[Chunk], list[Chunk]]:
    """First sendings, and re-sendings of an offset sent before (what `retries` counts)."""
    seen: set[int] = set()
    first: list[Chunk] = []
    again: list[Chunk] = []
    for chunk in chunks:
        (again if chunk.offset in seen else first).append(chunk)
        seen.add(chunk.offset)
    return first, again


def resent(transcript: Transcript) -> list[Chunk]:
    """The chunks whose offset had been sent before."""
    return split_chunks(transcript.chunks)[1]


def steps(transcript: Transcript, history: History | None = None) -> list[Step]:
    """Service states, OTA info values, re-sent chunks and the MCU's STOP, in time order.

    Ties keep the service first, then wire order (each sniffer port stamps its own reads)."""
    found = [Step(h["timestamp"] / 1000, "service", history_label(h)) for h in history or ()]
    for event, _ in transcript.ota_infos():
        what = describe_value(aflib.AF_MCU_OTA_INFO, event.message.value)
        found.append(Step(event.t, ARROWS[event.direction], f"OTA {what}"))
    for chunk in resent(transcript):
        what = f"chunk offset {chunk.offset} +{len(chunk.data)} bytes re-sent"
        found.append(Step(chunk.t, ARROWS[ASR_TO_MCU], what))
    for event in transcript.messages:
        m = event.message
        if (event.direction == MCU_TO_ASR and m.attr_id == aflib.AF_MCU_OTA_TRANSFER
                and m.value == aflib.encode_offset(aflib.STOP_TRANSFER_OFFSET)):  # fmt: skip
            found.append(Step(event.t, ARROWS[MCU_TO_ASR], "next offset STOP (all bytes in)"))
    return sorted(found, key=lambda step: step.t)


def start_time(transcript: Transcript, history: History | None = None) -> float | None:
    """The earliest event of the transcript and the history: zero on the timeline's axis."""
    times = [e.t for e in transcript.events] + [h["timestamp"] / 1000 for h in history or ()]
    return min(times, default=None)


def timeline_text(transcript: Transcript, history: History | None = None) -> str:
    """A summary, the merged steps in time order, then the full transcript."""
    start = start_time(transcript, history)
    if start is None:
        return "handoff timeline: the sniffer saw nothing, no deployment history given"

    def at(t: float) -> str:
        return f"+{t - start:.3f}s"

    chunks, again = transcript.chunks, resent(transcript)
    wall = datetime.fromtimestamp(start, UTC).isoformat(timespec="milliseconds")
    lines = [f"handoff timeline (+0.000s = {wall})"]
    if chunks:
        sent = sum(len(c.data) for c in chunks)
        lines.append(f"  chunks      {len(chunks)} sent, {sent} bytes "
                     f"({at(chunks[0].t)} … {at(chunks[-1].t)})")  # fmt: skip
    else:
        lines.append("  chunks      none on the wire")
    where = ", ".join(f"offset {c.offset} at {at(c.t)}" for c in again)
    lines.append(f"  re-sent     {len(again)}" + (f": {where}" if where else ""))
    lines.append(f"  throughput  {transcript.throughput / 1024:.2f} KiB/s")
    infos = [f"{i.state.name} {at(e.t)} ({ARROWS[e.direction]})" for e, i in transcript.ota_infos()]
    lines.append("  OTA info    " + (", ".join(infos) or "none on the wire"))
    if transcript.skipped:
        lines.append(f"  skipped     {len(transcript.skipped)} undecodable stretches")
    lines += ["", "steps in time order"]
    width = max(len(ARROWS[ASR_TO_MCU]), len("service"))
    lines += [f"  {at(s.t)}  {s.source:<{width}}  {s.what}" for s in steps(transcript, history)]
    lines += ["", "transcript (times from its first event)", transcript.text()]
    return "\n".join(lines)


def timeline_figure(
    transcript: Transcript, history: History | None = None, title: str | None = None
) -> Figure:
    """Top: chunk offsets over time, re-sent ones marked, with OTA info and service steps as
    vertical lines. Bottom: the deployment's states as spans (each until the next)."""
    history = list(history or ())
    start = start_time(transcript, history) or 0.0
    times = [e.t for e in transcript.events] + [h["timestamp"] / 1000 for h in history]
    span = max(times, default=start) - start
    pad = max(span * 0.03, 0.01)
    right = span + pad

    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    fig = Figure(figsize=(11, 6), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [5, 1]})
    chunks = transcript.chunks
    first, again = split_chunks(chunks)
    kib_s = transcript.throughput / 1024
    summary = f"{len(chunks)} chunks, {len(again)} re-sent, {kib_s:.2f} KiB/s"
    top.set_title(f"{title or 'handoff timeline'} — {summary}")
    top.set_ylabel("chunk offset (KiB)")
    top.set_xlim(-pad, right)
    legend = []
    if not chunks:
        top.set_yticks([])
    if not times:
        top.set_xlim(0, 1)
        bottom.set_xticks([])
    if not transcript.events:
        top.text(0.5, 0.5, "the sniffer saw nothing", transform=top.transAxes, ha="center",
                 va="center", fontsize=16, color="grey")  # fmt: skip
    elif not chunks:
        top.text(0.5, 0.5, "no chunks on the wire", transform=top.transAxes, ha="center",
                 va="center", fontsize=14, color="grey")  # fmt: skip
    if first:
        legend += top.plot([c.t - start for c in first], [c.offset / 1024 for c in first], "o",
                           markersize=3, color="tab:blue", label="chunk")  # fmt: skip
    if again:
        legend += top.plot([c.t - start for c in again], [c.offset / 1024 for c in again], "x",
                           markersize=8, mew=2, color="tab:red", label="re-sent")  # fmt: skip
    drawn = set()
    for event, info in transcript.ota_infos():
        label = f"{SHORT.get(info.state.name, info.state.name)} {ARROWS[event.direction]}"
        _step_line(top, event.t - start, label, STEP_COLOURS[event.direction], "-", 0.98, "top")
        drawn.add(event.direction)
    for t, label in ((h["timestamp"] / 1000, history_label(h)) for h in history):
        _step_line(top, t - start, label, STEP_COLOURS["service"], "--", 0.02, "bottom")
        drawn.add("service")
    for source in (ASR_TO_MCU, MCU_TO_ASR, "service"):
        if source in drawn:
            name = "service state" if source == "service" else f"OTA info {ARROWS[source]}"
            style = "--" if source == "service" else "-"
            legend.append(Line2D([], [], color=STEP_COLOURS[source], linestyle=style, label=name))
    if legend:
        top.legend(handles=legend, loc="center left", fontsize=8)
    top.grid(True, alpha=0.3)

    bottom.set_yticks([])
    bottom.set_ylabel("service", rotation=0, ha="right", va="center")
    bottom.set_xlabel("time since the first event (s)")
    if not history:
        bottom.text(0.5, 0.5, "no deployment history", transform=bottom.transAxes, ha="center",
                    va="center", color="grey")  # fmt: skip
    path_states: list[str] = []
    for i, entry in enumerate(history):
        x0 = entry["timestamp"] / 1000 - start
        x1 = history[i + 1]["timestamp"] / 1000 - start if i + 1 < len(history) else right
        colour = _state_colour(str(entry["state"]), path_states)
        label = history_label(entry)
        bottom.axvspan(x0, x1, color=colour, label=label)
        bottom.text((x0 + x1) / 2, 0.5, label, transform=bottom.get_xaxis_transform(),
                    ha="center", va="center", fontsize=7, clip_on=True,
                    rotation=90 if x1 - x0 < span / 12 else 0)  # fmt: skip
    return fig


def plot_timeline(
    transcript: Transcript,
    path: str | Path,
    history: History | None = None,
    title: str | None = None,
) -> Path:
    """The timeline picture as a PNG (see timeline_figure)."""
    return save_png(timeline_figure(transcript, history, title), path)


def _step_line(ax: Any, x: float, label: str, colour: str, style: str, y: float, va: str) -> None:
    ax.axvline(x, color=colour, linestyle=style, linewidth=0.8, label=label)
    ax.text(x, y, f" {label} ", transform=ax.get_xaxis_transform(), rotation=90, ha="right",
            va=va, fontsize=7, color=colour, bbox=LABEL_BOX)  # fmt: skip


def _state_colour(state: str, path_states: list[str]) -> str:
    """Green for success, red for failures, orange for a retryable stop, blues along the path."""
    if state == ds.SUCCEEDED:
        return "#74c476"
    if state in FAILED:
        return "#fb6a4a"
    if state == ds.INTERRUPTED:
        return "#fdae6b"
    if state not in path_states:
        path_states.append(state)
    return PATH_COLOURS[path_states.index(state) % len(PATH_COLOURS)]
