"""Console throughput under load, through a real pseudo-terminal. A benchmark, not a test.

    .venv/bin/python benches/console_throughput.py [--mib 10] [--lines 5000] [--runs 5]
        [--trips 2000]

The console opens the slave side of an `os.openpty()` pair by path through pyserial, exactly as
in production, with a log file in a temporary directory; a writer thread writes to the master.
Every case is compared with its limit: the same writer read by a plain `os.read` loop on the
slave (burst), or the same lines found with `str.index` / `re.search` in a string that already
holds them all (line by line). Cases run round-robin; each figure is the best of `--runs` runs,
and the last column is the ratio of the medians. Every run also checks that expect saw every
byte before its match and that the log holds every byte received.

Single-threaded pexpect (`fdspawn` on the same slave, no reader thread, no log) is the other
yardstick: the same lines expected one by one, and a round trip (send `ping N`, expect `pong N`)
against an answering child process, timed one by one for p50/p99. The targets are printed last.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import re
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pexpect.fdpexpect

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
        before = before_of(rig.console)
        assert before == data[: -len(marker) - 2].decode(), "expect lost bytes before the marker"
        rig.console.close()
        assert rig.logged_stream() == data, "the log lost bytes"
        return seconds


def before_of(console: Console) -> str:
    """The text before the last match (`Console.before`; the code before it kept it in pexpect)."""
    if hasattr(type(console), "before"):
        return console.before
    return console._feed.before


def line_patterns(count: int, how: str) -> list:
    """What a test waiting for `line 00001`, `line 00002`, ... in turn passes to the console."""
    if how in ("exact", "literal"):
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
        if how != "exact":  # "literal" is expect() of plain text: it returns a match too
            found = [match.group(0) for match in found]
        assert found == [f"line {i:05d}" for i in range(1, count + 1)], "a wrong match"
        assert before_of(console).endswith("] app: "), "not the text before the last line"
        console.close()
        assert rig.logged_stream() == data, "the log lost bytes"
        return seconds


def lines_pexpect(data: bytes, count: int, how: str) -> float:
    """Single-threaded pexpect on the same slave: no reader thread, no log."""
    patterns = line_patterns(count, "exact")
    pty = Pty()
    child = fdspawn(pty.slave)
    try:
        writer = start_writer(pty.master, data)
        wait = child.expect_exact if how == "exact" else child.expect
        start = time.perf_counter()
        for text in patterns:
            wait(text, timeout=5)
        seconds = time.perf_counter() - start
        writer.join(TIMEOUT_S)
        return seconds
    finally:
        child.close()
        pty.close()


def fdspawn(fd: int) -> pexpect.fdpexpect.fdspawn:
    """pexpect at its fastest: no 100 µs sleep after each read, big reads."""
    child = pexpect.fdpexpect.fdspawn(os.dup(fd), encoding="utf-8", maxread=64 * 1024)
    child.delayafterread = None
    return child


# -- round trips --------------------------------------------------------------------------------

# The board: answers each `ping N` line with `pong N`, from its own process (no shared GIL).
RESPONDER = """
import os, sys
fd = int(sys.argv[1])
pending = b""
while True:
    data = os.read(fd, 4096)
    if not data:
        break
    pending += data
    *lines, pending = pending.split(b"\\n")
    for line in lines:
        os.write(fd, line.strip().replace(b"ping", b"pong") + b"\\r\\n")
"""


class Responder:
    """A pty whose master side is answered by a child process."""

    def __enter__(self) -> Responder:
        self.pty = Pty()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", RESPONDER, str(self.pty.master)], pass_fds=[self.pty.master]
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.kill()
        self.proc.wait()
        self.pty.close()


def trips_console(count: int) -> list[float]:
    """Seconds per round trip: sendline, then expect (plain text: the literal path) its answer."""
    times = []
    with Responder() as board, tempfile.TemporaryDirectory(prefix="rig-bench-") as tmp:
        log_path = Path(tmp) / "console.log"
        with Console(board.pty.path, baud=115200, log_path=log_path, name="bench") as console:
            console.sendline("ping warm-up")
            console.expect("pong warm-up", timeout=5)
            for i in range(count):
                start = time.perf_counter()
                console.sendline(f"ping {i:06d}")
                console.expect(f"pong {i:06d}", timeout=5)
                times.append(time.perf_counter() - start)
        assert f"pong {count - 1:06d}" in log_path.read_text(), "the log lost the last answer"
    return times


def trips_pexpect(count: int) -> list[float]:
    times = []
    with Responder() as board:
        child = fdspawn(board.pty.slave)
        try:
            child.send("ping warm-up\r\n")
            child.expect_exact("pong warm-up", timeout=5)
            for i in range(count):
                start = time.perf_counter()
                child.send(f"ping {i:06d}\r\n")
                child.expect_exact(f"pong {i:06d}", timeout=5)
                times.append(time.perf_counter() - start)
        finally:
            child.close()
    return times


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=float, default=10, help="size of the burst (MiB)")
    parser.add_argument("--lines", type=int, default=5000, help="line-by-line expects")
    parser.add_argument("--runs", type=int, default=5, help="runs per case; the best is shown")
    parser.add_argument("--trips", type=int, default=2000, help="round trips per run")
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
        by_line("lines: expect(literal)", lambda: lines_console(lines, n, "literal"), find),
        by_line("lines: pexpect exact", lambda: lines_pexpect(lines, n, "exact"), find),
        by_line("lines: pexpect(literal)", lambda: lines_pexpect(lines, n, "literal"), find),
        search,
        by_line("lines: expect(re.Pattern)", lambda: lines_console(lines, n, "compiled"), search),
    ]
    # Round-robin, so that whatever else the machine does weighs on every case alike.
    trips: dict[str, list[float]] = {"console": [], "pexpect": []}
    for _ in range(args.runs):
        for figure in figures:
            figure.times.append(figure.run())
        trips["console"] += trips_console(args.trips)
        trips["pexpect"] += trips_pexpect(args.trips)

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
    print()
    print(f"round trip (sendline + expect its answer), {args.runs} x {args.trips} trips")
    print(f"{'case':<26} {'p50 µs':>8} {'p99 µs':>8} {'p50 ratio':>10}")
    p50 = {case: percentile(times, 0.5) for case, times in trips.items()}
    for case, times in trips.items():
        ratio = p50[case] / p50["pexpect"]
        print(
            f"{'trip: ' + case:<26} {p50[case] * 1e6:>8.1f} "
            f"{percentile(times, 0.99) * 1e6:>8.1f} {ratio:>10.2f}"
        )

    by_case = {f.case: f for f in figures}

    def per_line(case: str) -> float:
        return by_case[case].seconds / n * 1e6

    pexpect_line = per_line("lines: pexpect exact")
    print()
    print("targets (best of runs; the ratio columns above use the same runs):")
    for case in ("lines: expect(literal)", "lines: expect_exact"):
        print(
            f"  {case[7:]:<16} {per_line(case):6.2f} µs/line (target <= 10), "
            f"{per_line(case) / pexpect_line:.2f}x pexpect expect_exact ({pexpect_line:.2f} µs)"
        )
    print(f"  round trip p50   {p50['console'] / p50['pexpect']:.2f}x pexpect (target <= 2)")
    for case in ("burst: expect_exact", "burst: expect(regex)"):
        print(f"  {case[7:]:<16} {by_case[case].ratio()}x the raw os.read loop (target <= 1.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
