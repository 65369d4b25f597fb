"""The handoff timeline, from a real transcript: afLib-shaped frames fed to the sniffer's decoder.

The handoff is test_transcript's (OTA steps tunnelled through 1098/1099, APPLY echoed as IDLE,
the version SET), with chunk 249 sent twice (the MCU asked for it again), and a deployment
history around it on the same wall clock: OFFERED half a second before the wire.
"""

from __future__ import annotations

import re
from pathlib import Path

from matplotlib.image import imread

from rig.protocol.transcript import Transcript
from rig.report.timeline import plot_timeline, timeline_figure, timeline_text
from tests.unit.protocol.test_transcript import DT, T0, record, resent_chunk_steps

START = T0 - 0.5  # OFFERED: the earliest moment of all
HISTORY = [
    {"state": "OFFERED", "timestamp": 99500, "attempt": 1, "reason": None, "detail": None},
    {"state": "TRANSFERRING", "timestamp": 100025, "attempt": 1, "reason": None, "detail": None},
    {"state": "SUCCEEDED", "timestamp": 100200, "attempt": 1, "reason": None, "detail": None},
]


def with_a_resent_chunk() -> tuple[Transcript, int]:
    """The handoff with chunk 249 sent again; and the step index of the re-send."""
    steps, at = resent_chunk_steps()
    transcript = record(steps)
    assert [c.offset for c in transcript.chunks] == [0, 249, 249, 498, 747, 996]
    return transcript, at + 2


def section(text: str, heading: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(heading) + 1
    end = lines.index("", start) if "" in lines[start:] else len(lines)
    return lines[start:end]


def test_the_text_summarises_chunks_and_retries_then_merges_steps_in_time_order():
    transcript, resend = with_a_resent_chunk()
    text = timeline_text(transcript, HISTORY)
    summary = section(text, text.splitlines()[0])
    assert text.splitlines()[0] == "handoff timeline (+0.000s = 1970-01-01T00:01:39.500+00:00)"
    assert summary[0].split(maxsplit=1)[1].startswith("6 sent, 1249 bytes (+0.520s … +0.620s)")
    assert summary[1] == f"  re-sent     1: offset 249 at +{T0 + resend * DT - START:.3f}s"
    assert summary[2] == f"  throughput  {1249 / (10 * DT) / 1024:.2f} KiB/s"
    assert summary[3].startswith("  OTA info    TRANSFER_BEGIN +0.500s (asr→mcu), TRANSFER_BEGIN")

    merged = section(text, "steps in time order")
    parsed = [re.fullmatch(r"  \+(\d+\.\d{3})s  (\S+)\s+(.*)", line) for line in merged]
    assert all(parsed), merged
    times = [float(m[1]) for m in parsed]
    assert times == sorted(times) and times[0] == 0.0
    assert [(m[2], " ".join(m[3].split()[:2])) for m in parsed] == [
        ("service", "OFFERED"),
        ("asr→mcu", "OTA TRANSFER_BEGIN"),
        ("mcu→asr", "OTA TRANSFER_BEGIN"),
        ("service", "TRANSFERRING"),
        ("asr→mcu", "chunk offset"),
        ("mcu→asr", "next offset"),
        ("mcu→asr", "OTA VERIFY_SIGNATURE"),
        ("asr→mcu", "OTA APPLY"),
        ("mcu→asr", "OTA IDLE"),  # the MCU's echo of APPLY
        ("service", "SUCCEEDED"),
    ]
    assert merged[1] == "  +0.500s  asr→mcu  OTA TRANSFER_BEGIN type=101 size=1000 version=7"
    assert merged[3] == "  +0.525s  service  TRANSFERRING"
    assert merged[5] == f"  +{times[5]:.3f}s  mcu→asr  next offset STOP (all bytes in)"
    assert merged[7] == f"  +{times[7]:.3f}s  asr→mcu  OTA APPLY version=7"
    assert merged[8] == f"  +{times[8]:.3f}s  mcu→asr  OTA IDLE version=7"
    assert merged[4] == f"  +{times[4]:.3f}s  asr→mcu  chunk offset 249 +249 bytes re-sent"
    assert times[4] == round(T0 + resend * DT - START, 3)

    assert text.endswith("transcript (times from its first event)\n" + transcript.text())


def test_the_text_without_history_counts_from_the_first_sniffed_event():
    transcript, _ = with_a_resent_chunk()
    merged = section(timeline_text(transcript), "steps in time order")
    assert merged[0].startswith("  +0.000s  asr→mcu  OTA TRANSFER_BEGIN")
    assert not [line for line in merged if "service" in line]
    assert timeline_text(Transcript()).startswith("handoff timeline: the sniffer saw nothing")


def test_the_figure_marks_resent_chunks_steps_and_state_spans():
    transcript, resend = with_a_resent_chunk()
    fig = timeline_figure(transcript, HISTORY, title="bench-3 OTA")
    top, bottom = fig.axes
    assert top.get_title() == "bench-3 OTA — 6 chunks, 1 re-sent, 12.20 KiB/s"  # 1249 B in 10 DT
    assert [t.get_text() for t in top.get_legend().get_texts()] == [
        "chunk", "re-sent", "OTA info asr→mcu", "OTA info mcu→asr", "service state"
    ]  # fmt: skip
    lines = {line.get_label(): line for line in top.lines}
    chunks, again = lines["chunk"], lines["re-sent"]
    assert [round(y * 1024) for y in chunks.get_ydata()] == [0, 249, 498, 747, 996]
    assert list(again.get_ydata()) == [249 / 1024]
    assert list(again.get_xdata()) == [T0 + resend * DT - START]
    assert again.get_marker() != chunks.get_marker() and again.get_color() != chunks.get_color()
    wire = ("BEGIN asr→mcu", "BEGIN mcu→asr", "VERIFY mcu→asr", "APPLY asr→mcu", "IDLE mcu→asr")
    for label in (*wire, "OFFERED", "TRANSFERRING", "SUCCEEDED"):
        assert label in lines, label
        assert label in [t.get_text().strip() for t in top.texts], label
    assert lines["TRANSFERRING"].get_xdata()[0] == 100.025 - START
    assert lines["VERIFY mcu→asr"].get_xdata()[0] == T0 + (resend + 8) * DT - START

    spans = [(p.get_label(), p.get_x(), p.get_x() + p.get_width()) for p in bottom.patches]
    assert [label for label, *_ in spans] == ["OFFERED", "TRANSFERRING", "SUCCEEDED"]
    assert spans[0][1:] == (0.0, 100.025 - START)
    assert spans[1][1:] == (100.025 - START, 100.2 - START)
    assert spans[2][2] == bottom.get_xlim()[1]  # the last state lasts to the end of the picture
    assert [t.get_text() for t in bottom.texts] == ["OFFERED", "TRANSFERRING", "SUCCEEDED"]


def test_plot_timeline_writes_a_png(tmp_path: Path):
    transcript, _ = with_a_resent_chunk()
    path = plot_timeline(transcript, tmp_path / "report" / "timeline.png", HISTORY)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert min(imread(path).shape[:2]) > 0


def test_an_empty_transcript_still_makes_a_picture(tmp_path: Path):
    fig = timeline_figure(Transcript(), HISTORY)
    top, bottom = fig.axes
    assert "the sniffer saw nothing" in [t.get_text() for t in top.texts]
    assert [p.get_label() for p in bottom.patches] == ["OFFERED", "TRANSFERRING", "SUCCEEDED"]
    assert top.get_legend().get_texts()[0].get_text() == "service state"

    bare = timeline_figure(Transcript())
    assert "the sniffer saw nothing" in [t.get_text() for t in bare.axes[0].texts]
    assert "no deployment history" in [t.get_text() for t in bare.axes[1].texts]
    path = plot_timeline(Transcript(), tmp_path / "empty.png")
    assert path.read_bytes()[:4] == b"\x89PNG" and min(imread(path).shape[:2]) > 0
