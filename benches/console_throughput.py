"""Console throughput under load, through a real pseudo-terminal. A benchmark, not a test.

    .venv/bin/python benches/console_throughput.py [--mib 10] [--lines 5000] [--runs 5]

The console opens the slave side of an `os.openpty()` pair by path through pyserial, exactly as
in production, with a log file in a temporary directory; a writer thread writes to the master.
Every case is compared with its limit: the same writer read by a plain `os.read` loop on the
slave (burst), or the same lines found with `str.index` / `re.search` in a string that already
holds them all (line by line). Cases run round-robin; each figure is the best of `--runs` runs,
and the last column is the ratio of the medians. Every run also checks that expect saw every
byte before its match and that the log holds every byte received.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import re
import statistics
import struct
import sys
import tempfile
import termios
import threading
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rig import Console

WRITE_CHUNK = 64 * 1024
LOG_STAMP = re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} ")
TIMEOUT_S = 120.0


# -- the pseudo-terminal and its writer ---------------------------------------------------------


class Pty:
    """A pty pair; the slave is raw, like a serial adapter's tty."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)

    def pending(self) -> int:
        """Bytes written to the master that nobody has read from the slave yet."""
        raw = fcntl.ioctl(self.slave, termios.FIONREAD, struct.pack("i", 0))
        return struct.unpack("i", raw)[0]

    def close(self) -> None:
        os.close(self.master)
        os.close(self.slave)


def start_writer(fd: int, data: bytes) -> threading.Thread:
    """Write `data` to `fd` from a thread; writes block while the pty is full."""

    def run() -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view[:WRITE_CHUNK]) :]

    thread = threading.Thread(target=run, name="pty-writer", daemon=True)
    thread.start()
    return thread


def raw_read_until(fd: int, marker: bytes) -> bytes:
    """The limit: read the slave with plain os.read until `marker` has been seen."""
    chunks: list[bytes] = []
    tail = b""
    keep = len(marker) - 1
    while True:
        chunk = os.read(fd, 64 * 1024)
        chunks.append(chunk)
        window = tail + chunk
        if marker in window:
            return b"".join(chunks)
        tail = window[-keep:]


# -- the stream ---------------------------------------------------------------------------------

LOREM = "lorem ipsum dolor sit amet, consectetur adipiscing"


def burst_stream(mib: float) -> tuple[bytes, str]:
    """~`mib` MiB of boot-log lines (60-80 bytes each), then one marker line."""
    target = int(mib * 1024 * 1024)
    lines: list[str] = []
    size = 0
    i = 0
    while size < target:
        i += 1
        line = f"[{i * 0.000731:12.6f}] boot: line {i:06d} {LOREM[: 25 + i % 21]}\r\n"
        lines.append(line)
        size += len(line)
    marker = f"=== burst complete: {i} lines ==="
    lines.append(marker + "\r\n")
    return "".join(lines).encode(), marker


def numbered_lines(count: int) -> bytes:
    return "".join(
        f"[{i * 0.0123:12.6f}] app: line {i:05d} {LOREM[: 10 + i % 30]}\r\n"
        for i in range(1, count + 1)
    ).encode()


# -- a console on a pty -------------------------------------------------------------------------


class Rig:
    """A fresh pty, and a Console logging to a temporary directory, for one run."""

    def __enter__(self) -> Rig:
        self.tmp = tempfile.TemporaryDirectory(prefix="rig-bench-")
        self.pty = Pty()
        self.log_path = Path(self.tmp.name) / "console.log"
        self.console = Console(self.pty.path, baud=115200, log_path=self.log_path, name="bench")
        self.console.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.console.close()
        self.pty.close()
        self.tmp.cleanup()

    def wait_drained(self, writer: threading.Thread) -> None:
        """Until the console's reader thread has taken everything the writer wrote."""
        writer.join(TIMEOUT_S)
        deadline = time.monotonic() + TIMEOUT_S
        while self.pty.pending() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # the last read is handed over and logged

    def logged_stream(self) -> bytes:
        """The log without its timestamps and rig's own notes: must be the bytes received."""
        out = []
        for line in self.log_path.read_bytes().splitlines(keepends=True):
            stamp = LOG_STAMP.match(line)
            if stamp is None:
                raise AssertionError(f"log line without a timestamp: {line[:80]!r}")
            if not line.startswith(b"[rig] ", stamp.end()):
                out.append(line[stamp.end() :])
        return b"".join(out)


# -- the cases ----------------------------------------------------------------------------------


@dataclass
class Figure:
    """One case: the time of each run; `per` expects per run (0: a burst); `raw`: its limit."""

    case: str
    nbytes: int
    run: Callable[[], float]
    per: int = 0
    raw: Figure | None = None
    times: list[float] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return min(self.times)

    def rate(self) -> str:
        if self.per:
            return f"{self.seconds / self.per * 1e6:.2f} µs/expect"
        return f"{self.nbytes / self.seconds / 1e6:.1f} MB/s"

    def ratio(self) -> str:
        if self.raw is None:
            return "1.00 (limit)"
        return f"{self.seconds / self.raw.seconds:.2f}"

    def median_ratio(self) -> str:
        if self.raw is None:
            return ""
        return f"{statistics.median(self.times) / statistics.median(self.raw.times):.2f}"


def burst_raw(data: bytes, marker: str) -> float:
    pty = Pty()
    try:
        start = time.perf_counter()
        writer = start_writer(pty.master, data)
        got = raw_read_until(pty.slave, marker.encode())
        seconds = time.perf_counter() - start
        writer.join(TIMEOUT_S)
        assert got == data, "the raw loop lost bytes"
        return seconds
    finally:
        pty.close()


def burst_console(data: bytes, marker: str, regex: bool) -> float:
    count = marker.split()[-3]
    with Rig() as rig:
        start = time.perf_counter()
        writer = start_writer(rig.pty.master, data)
        if regex:
            match = rig.console.expect(r"=== burst complete: (\d+) lines ===", timeout=TIMEOUT_S)
            assert match.group(1) == count, match.group(0)
        else:
            rig.console.expect_exact(marker, timeout=TIMEOUT_S)
        seconds = time.perf_counter() - start
        rig.wait_drained(writer)
        before = rig.console._feed.before
        assert before == data[: -len(marker) - 2].decode(), "expect lost bytes before the marker"
        rig.console.close()
        assert rig.logged_stream() == data, "the log lost bytes"
        return seconds


def line_patterns(count: int, how: str) -> list:
    """What a test waiting for `line 00001`, `line 00002`, ... in turn passes to the console."""
    if how == "exact":
        return [f"line {i:05d}" for i in range(1, count + 1)]
    if how == "regex":  # a new pattern each time: expect compiles it, as re.compile would
        return [rf"line {i:05d}\b" for i in range(1, count + 1)]
    return [re.compile(rf"line {i:05d}\b", re.DOTALL) for i in range(1, count + 1)]


def lines_raw(data: bytes, count: int, how: str) -> float:
    """The limit: the same lines found in turn in a buffer already holding all of them."""
    text = data.decode()
    patterns = line_patterns(count, how)
    pos = 0
    start = time.perf_counter()
    if how == "exact":
        for needle in patterns:
            pos = text.index(needle, pos) + len(needle)
    elif how == "regex":
        for pattern in patterns:
            pos = re.compile(pattern, re.DOTALL).search(text, pos).end()
    else:
        for pattern in patterns:
            pos = pattern.search(text, pos).end()
    seconds = time.perf_counter() - start
    assert text[pos - 10 : pos] == f"line {count:05d}"
    return seconds


def lines_console(data: bytes, count: int, how: str) -> float:
    """The same lines expected one by one, once the console has received all of them."""
    patterns = line_patterns(count, how)
    with Rig() as rig:
        rig.wait_drained(start_writer(rig.pty.master, data))
        console = rig.console
        found = []
        start = time.perf_counter()
        if how == "exact":
            for text in patterns:
                found.append(console.expect_exact(text, timeout=5))
        else:
            for pattern in patterns:
                found.append(console.expect(pattern, timeout=5))
        seconds = time.perf_counter() - start
        if how != "exact":
            found = [match.group(0) for match in found]
        assert found == [f"line {i:05d}" for i in range(1, count + 1)], "a wrong match"
        assert console._feed.before.endswith("] app: "), "not the text before the last line"
        console.close()
        assert rig.logged_stream() == data, "the log lost bytes"
        return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=float, default=10, help="size of the burst (MiB)")
    parser.add_argument("--lines", type=int, default=5000, help="line-by-line expects")
    parser.add_argument("--runs", type=int, default=5, help="runs per case; the best is shown")
    args = parser.parse_args(argv)

    data, marker = burst_stream(args.mib)
    lines = numbered_lines(args.lines)
    n, size = args.lines, len(lines)

    def burst(case: str, run: Callable[[], float], raw: Figure | None = None) -> Figure:
        return Figure(case, len(data), run, 0, raw)

    def by_line(case: str, run: Callable[[], float], raw: Figure | None = None) -> Figure:
        return Figure(case, size, run, n, raw)

    raw = burst("burst: os.read loop", lambda: burst_raw(data, marker))
    find = by_line("lines: str.index", lambda: lines_raw(lines, n, "exact"))
    compile_search = by_line("lines: re.compile+search", lambda: lines_raw(lines, n, "regex"))
    search = by_line("lines: re.search", lambda: lines_raw(lines, n, "compiled"))
    figures = [
        raw,
        burst("burst: expect_exact", lambda: burst_console(data, marker, False), raw),
        burst("burst: expect(regex)", lambda: burst_console(data, marker, True), raw),
        find,
        by_line("lines: expect_exact", lambda: lines_console(lines, n, "exact"), find),
        compile_search,
        by_line("lines: expect(str)", lambda: lines_console(lines, n, "regex"), compile_search),
        search,
        by_line("lines: expect(re.Pattern)", lambda: lines_console(lines, n, "compiled"), search),
    ]
    # Round-robin, so that whatever else the machine does weighs on every case alike.
    for _ in range(args.runs):
        for figure in figures:
            figure.times.append(figure.run())

    print(
        f"console throughput: best of {args.runs} runs, {os.cpu_count()} cores, "
        f"Python {sys.version.split()[0]}"
    )
    header = (
        f"{'case':<26} {'bytes':>10} {'seconds':>8} {'rate':>17} {'ratio to raw':>13} {'median':>7}"
    )
    print(header)
    print("-" * len(header))
    for f in figures:
        print(
            f"{f.case:<26} {f.nbytes:>10} {f.seconds:>8.4f} {f.rate():>17} {f.ratio():>13}"
            f" {f.median_ratio():>7}".rstrip()
        )
    print("targets: a burst within 1.5x the raw loop; at most 10 µs per line-by-line expect")
    return 0


if __name__ == "__main__":
    sys.exit(main())
