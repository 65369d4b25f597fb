"""A board's supply current sampled during an OTA, as a CSV and a picture for the report.

Samples carry wall-clock time (`time.time()`) on purpose: the OTA service's deployment history
(`timestamp`, ms since the epoch) and the sniffer's transcript events use the same clock, so
current, deployment states and wire traffic line up on one axis without conversion.

Pictures are drawn with matplotlib's object-oriented API (Figure + FigureCanvasAgg): no pyplot,
no global backend, so tests and xdist workers can draw from any thread without a display.
"""

from __future__ import annotations

import csv
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # matplotlib loads when a picture is drawn: sampling alone never pays for it
    from matplotlib.figure import Figure

Sample = tuple[float, float]  # (wall-clock seconds, amps)
Mark = tuple[float, str]  # (wall-clock seconds, label)

#: How long stop() waits for a read_amps call in flight (an instrument's VISA timeout, say).
STOP_TIMEOUT_S = 10.0
#: Behind a mark's label, so it stays readable where it crosses the data.
LABEL_BOX = {"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 0.5}


class PowerTrace:
    """Samples `read_amps()` every `interval_s` on a background thread, until stop().

    A failing instrument must not fail the test it watches nor go unnoticed: the first error
    is kept in `error`, sampling stops, and the report still gets its (shorter) picture.
    """

    def __init__(
        self, read_amps: Callable[[], float], *, interval_s: float = 0.02, name: str = "board"
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, not {interval_s}")
        self.read_amps = read_amps
        self.interval_s = interval_s
        self.name = name
        self.error: str | None = None
        #: Which samples show the board at rest, read start to finish before it was asked to do
        #: anything (set by whoever asks): its idle draw, with no read that overlapped the work.
        self.quiet: slice | None = None
        self._samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- recording ------------------------------------------------------------------------------

    def start(self) -> PowerTrace:
        """Start sampling; a trace records once (make a new one for another recording)."""
        if self._thread is not None:
            raise RuntimeError(f"power trace {self.name!r} was already started")
        self._thread = threading.Thread(
            target=self._run, name=f"power-trace-{self.name}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling and wait for the thread (promptly: it waits on an Event). Never raises."""
        self._stopping.set()
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return
        thread.join(STOP_TIMEOUT_S)
        if thread.is_alive() and self.error is None:
            self.error = (
                f"{self.name}: read_amps ({_callable_name(self.read_amps)}) had not returned "
                f"{STOP_TIMEOUT_S:g} s after stop(); sampling abandoned"
            )

    def __enter__(self) -> PowerTrace:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        # Fixed-rate schedule on the monotonic clock, so a slow instrument does not stretch the
        # period; a read that overruns skips the missed ticks instead of bursting to catch up.
        next_tick = time.monotonic()
        while not self._stopping.is_set():
            before = time.time()
            try:
                amps = float(self.read_amps())
            except Exception as err:  # any failure of the instrument: reported, never raised
                self.error = (
                    f"{self.name}: read_amps ({_callable_name(self.read_amps)}) raised "
                    f"{type(err).__name__}: {err} after {len(self._samples)} samples; "
                    "sampling stopped"
                )
                return
            t = (before + time.time()) / 2  # the middle of the measurement
            with self._lock:
                if self._stopping.is_set():
                    return  # samples are final once stop() was asked for
                self._samples.append((t, amps))
            now = time.monotonic()
            next_tick += self.interval_s
            if next_tick < now:
                next_tick = now + self.interval_s - (now - next_tick) % self.interval_s
            self._stopping.wait(next_tick - now)

    # -- reading --------------------------------------------------------------------------------

    @property
    def samples(self) -> list[Sample]:
        """A copy of the samples so far: (wall-clock seconds, amps)."""
        with self._lock:
            return list(self._samples)

    def window(self, t0: float | None = None, t1: float | None = None) -> list[float]:
        """The currents sampled between wall times t0 and t1 (both inclusive, None: open)."""
        return [
            amps for t, amps in self.samples if (t0 is None or t >= t0) and (t1 is None or t <= t1)
        ]

    def quiet_mean(self) -> float | None:
        """Mean of the samples that show the board at rest (`quiet`), or None."""
        if self.quiet is None:
            return None
        with self._lock:
            quiet = [amps for _, amps in self._samples[self.quiet]]
        return sum(quiet) / len(quiet) if quiet else None

    def settled(self, count: int = 3, spread: float = 0.1, span_s: float = 0.0) -> slice | None:
        """The last samples, at least `count` and reaching back `span_s` seconds, if they agree
        within `spread` (a fraction of their mean): the draw has stopped moving, else None.

        A boot can draw a steady current too: a span longer than the board's boot tells rest
        from a boot that happens to be flat."""
        with self._lock:
            total = len(self._samples)
            first = max(0, total - count)
            if total:
                since = self._samples[-1][0] - span_s
                while first > 0 and self._samples[first][0] > since:
                    first -= 1
            window = self._samples[first:]
        if len(window) < count or (span_s > 0 and window[-1][0] - window[0][0] < span_s):
            return None
        last = [amps for _, amps in window]
        mean = sum(last) / len(last)
        if max(last) - min(last) > spread * max(abs(mean), 1e-6):
            return None
        return slice(first, total)

    def mean(self, t0: float | None = None, t1: float | None = None) -> float | None:
        """Mean current over the window; None when no sample falls in it."""
        values = self.window(t0, t1)
        return sum(values) / len(values) if values else None

    def peak(self, t0: float | None = None, t1: float | None = None) -> float | None:
        """Highest current over the window; None when no sample falls in it."""
        values = self.window(t0, t1)
        return max(values) if values else None

    # -- report artifacts -----------------------------------------------------------------------

    def write_csv(self, path: str | Path) -> Path:
        """`t_s,amps`, t_s counted from the first sample (a spreadsheet wants small numbers)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        samples = self.samples
        start = samples[0][0] if samples else 0.0
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["t_s", "amps"])
            writer.writerows([f"{t - start:.4f}", f"{amps:.6f}"] for t, amps in samples)
        return path

    def figure(self, marks: Sequence[Mark] = (), title: str | None = None) -> Figure:
        return power_figure(
            self.samples, marks, title=title or f"supply current — {self.name}", error=self.error
        )

    def plot(self, path: str | Path, marks: Sequence[Mark] = (), title: str | None = None) -> Path:
        """The current as a PNG, with `marks` (e.g. marks_from_history(...)) as dashed lines."""
        return save_png(self.figure(marks, title), path)


def power_figure(
    samples: Sequence[Sample],
    marks: Sequence[Mark] = (),
    *,
    title: str = "supply current",
    error: str | None = None,
) -> Figure:
    """Current (mA) over seconds since the first sample, one dashed line per mark.

    Marks outside the sampled span are not drawn (clamped to an edge they would pile up and lie
    about their time); they are listed under the plot with their offset instead."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.5), layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_xlabel("time since first sample (s)")
    ax.set_ylabel("current (mA)")
    notes = [f"error: {error}"] if error else []
    if not samples:
        ax.text(0.5, 0.5, "no samples", transform=ax.transAxes, ha="center", va="center",
                fontsize=16, color="grey")  # fmt: skip
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        start, end = samples[0][0], samples[-1][0]
        ax.plot([t - start for t, _ in samples], [a * 1000 for _, a in samples],
                color="tab:blue", linewidth=1, label="current")  # fmt: skip
        outside = []
        for t, label in marks:
            if not start <= t <= end:
                outside.append(f"{label} {t - start:+.2f} s")
                continue
            ax.axvline(t - start, color="tab:red", linestyle="--", linewidth=0.8, label=label)
            ax.text(t - start, 0.98, f" {label}", transform=ax.get_xaxis_transform(), rotation=90,
                    ha="right", va="top", fontsize=8, color="tab:red", bbox=LABEL_BOX)  # fmt: skip
        if outside:
            notes.append("outside the trace: " + ", ".join(outside))
        ax.grid(True, alpha=0.3)
    if notes:  # under the x label; an axes' text counts in the constrained layout
        ax.annotate("\n".join(notes), (0, 0), xycoords="axes fraction", xytext=(0, -32),
                    textcoords="offset points", va="top", fontsize=7, color="dimgrey")  # fmt: skip
    return fig


def save_png(fig: Figure, path: str | Path) -> Path:
    """Render a Figure to a PNG through Agg (no pyplot, no backend switch)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig).print_png(str(path))
    return path


def marks_from_history(history: Sequence[dict[str, Any]]) -> list[Mark]:
    """A deployment's history entries (timestamp in ms) as plot marks, e.g. 'INTERRUPTED
    (TRANSFERRING) #2'."""
    return [(entry["timestamp"] / 1000, history_label(entry)) for entry in history]


def history_label(entry: dict[str, Any]) -> str:
    """The state, its reason in parentheses, and ' #n' from the second attempt on."""
    label = str(entry["state"])
    if entry.get("reason"):
        label += f" ({entry['reason']})"
    if (entry.get("attempt") or 1) > 1:
        label += f" #{entry['attempt']}"
    return label


def _callable_name(fn: Callable[..., Any]) -> str:
    """A function's name, or a callable object's class name (its repr may be long)."""
    return getattr(fn, "__qualname__", None) or type(fn).__qualname__
