"""Hostile boards.yaml files: each ends `rig boards --check` quickly, in bounded memory, with one
clear message and exit 1 (issue 12).

Every case runs the command in a process of its own with a timeout and a memory cap, and reads
that process's wall time and peak RSS, so an alias bomb or a recursion shows up here as a
failure, not as a hung or swapping test run. The processes are forks of one that imported rig
once (a fresh interpreter per case costs 0.4 s of imports); one test runs the real command.
The bounds are generous (a clean check takes ~0.4 s and ~80 MB) and still far below what the
same files cost before: the 8-level alias bomb took 18 s and 946 MB, the 9-level one never ended.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import resource
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rig import safe_yaml
from rig.lab import inventory

ROOT = Path(__file__).resolve().parents[3]
VALID = (ROOT / "boards.yaml").read_bytes()
MAX_SECONDS = 2.0
MAX_PEAK_MB = 250
#: Everything printed, at most: no expanded value, no page-long key, no traceback.
MAX_OUTPUT = 12_000
#: Address space of each run: a broken loader fails with MemoryError, not by filling the machine.
MEMORY_CAP = 3 << 30
TIMEOUT_S = 15

#: Imports rig's CLI once, then runs each request (a JSON line: argv, cwd) in a fork of itself
#: and answers one JSON line: the fork's exit code, wall time, peak RSS and all it printed.
FORK_SERVER = r"""
import json, os, resource, signal, sys, tempfile, time, traceback
from rig.cli.main import main

for request in sys.stdin:
    job = json.loads(request)
    with tempfile.TemporaryFile() as output:
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            os.chdir(job["cwd"])
            os.dup2(output.fileno(), 1)
            os.dup2(output.fileno(), 2)
            resource.setrlimit(resource.RLIMIT_AS, (job["memory_cap"], job["memory_cap"]))
            signal.alarm(job["timeout"])  # a hang ends as SIGALRM, reported below
            try:
                code = main(job["argv"])
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                traceback.print_exc()
                code = 99
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        _, status, usage = os.wait4(pid, 0)
        seconds = time.monotonic() - start
        output.seek(0)
        text = output.read().decode("utf-8", "replace")
    code = os.waitstatus_to_exitcode(status)
    print(json.dumps({
        "code": code if code >= 0 else f"killed by signal {-code}",
        "seconds": seconds, "peak_mb": usage.ru_maxrss / 1024, "output": text,
    }), flush=True)
"""

#: Runs the command given as its arguments; reports what it cost as one JSON line.
RUNNER = """
import json, resource, subprocess, sys, time
start = time.monotonic()
try:
    done = subprocess.run(sys.argv[1:], capture_output=True, timeout=30)
    code, out, err = done.returncode, done.stdout, done.stderr
except subprocess.TimeoutExpired as exc:
    code, out, err = "timeout", exc.stdout or b"", exc.stderr or b""
print(json.dumps({
    "code": code, "seconds": time.monotonic() - start,
    "peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    "output": (out + err).decode("utf-8", "replace"),
}))
"""


@dataclass(frozen=True)
class Run:
    code: int | str
    seconds: float
    peak_mb: float
    output: str


class Checker:
    """`rig boards --check -f FILE`, each run in a fresh fork of a process that imported rig."""

    def __init__(self) -> None:
        self.server = subprocess.Popen(
            [sys.executable, "-c", FORK_SERVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )

    def __call__(self, path: Path, cwd: Path) -> Run:
        assert self.server.stdin is not None and self.server.stdout is not None
        job = {"argv": ["boards", "--check", "-f", str(path)], "cwd": str(cwd),
               "memory_cap": MEMORY_CAP, "timeout": TIMEOUT_S}  # fmt: skip
        self.server.stdin.write(json.dumps(job) + "\n")
        self.server.stdin.flush()
        return Run(**json.loads(self.server.stdout.readline()))

    def close(self) -> None:
        assert self.server.stdin is not None
        self.server.stdin.close()
        self.server.wait(timeout=10)


@pytest.fixture(scope="module")
def check() -> Iterator[Checker]:
    checker = Checker()
    yield checker
    checker.close()


def _capped() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def run_rig(path: Path, cwd: Path) -> Run:
    """The real command, `python -m rig.cli.main boards --check -f path`, in a new interpreter."""
    command = [sys.executable, "-m", "rig.cli.main", "boards", "--check", "-f", str(path)]
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, *command],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        preexec_fn=_capped,
        check=True,
    )
    return Run(**json.loads(done.stdout))


def bomb(levels: int, *, under_boards: bool = True) -> bytes:
    """The issue's alias bomb: anchors each a list of nine references to the one before."""
    names = "abcdefghijklmnop"
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for before, name in itertools.pairwise(names[:levels]):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{before}"] * 9) + "]")
    if under_boards:  # where the inventory walks it and, before, echoed it
        lines.append(f"boards: *{names[levels - 1]}")
    return ("\n".join(lines) + "\n").encode()


def board_lines(count: int, extra: str = "colour: red") -> bytes:
    return b"boards:\n" + b"".join(
        f"  b{i}: {{kind: emulated, device_type: x, {extra}}}\n".encode() for i in range(count)
    )


@dataclass(frozen=True)
class Case:
    """A hostile file (bytes, or a function that makes the path) and what the message says."""

    make: bytes | Callable[[Path], Path]
    expected: str  # a regular expression the output must match
    line: int | None = None  # the FILE:LINE the message must start with; None: no line


def _directory(tmp: Path) -> Path:
    (tmp / "lab").mkdir()
    return tmp / "lab"


def _directory_with_boards(tmp: Path) -> Path:
    (tmp / "lab").mkdir()
    (tmp / "lab" / "boards.yaml").write_bytes(VALID)
    return tmp / "lab"


def _fifo(tmp: Path) -> Path:
    os.mkfifo(tmp / "boards.yaml")  # nobody writes: opening it to read would block forever
    return tmp / "boards.yaml"


def _symlink_loop(tmp: Path) -> Path:
    (tmp / "boards.yaml").symlink_to(tmp / "boards.yaml")
    return tmp / "boards.yaml"


def _over_the_size_limit(tmp: Path) -> Path:
    path = tmp / "boards.yaml"
    padding = b"# " + b"x" * 77 + b"\n"
    path.write_bytes(VALID + padding * (safe_yaml.MAX_BYTES // len(padding) + 1))
    return path


def _fifty_megabytes(tmp: Path) -> Path:
    path = tmp / "boards.yaml"
    with path.open("wb") as file:  # sparse: the first MiB is read, the rest is never touched
        file.write(VALID)
        file.truncate(50 * 1024 * 1024)
    return path


CASES = {
    # the cases
    "alias bomb, 9 levels (ran until killed)": Case(bomb(9), r"more than 50,000 values once", 5),
    "alias bomb, 8 levels (18 s, 946 MB, 312 MB printed)": Case(
        bomb(8), r"more than 50,000 values once its aliases are expanded \(an alias bomb\?\)", 5
    ),
    "alias bomb, 9 levels at the top (ran until killed)": Case(
        bomb(9, under_boards=False), r"alias bomb", 5
    ),
    "small alias bomb: its expanded value is echoed, clipped": Case(
        bomb(3),
        r":4: boards: expected a mapping of keys to values, got \[\[\['lol', .*\.\.\.",
        None,
    ),
    "binary garbage": Case(
        bytes(range(0x80, 0x100)) * 16, r"byte 0x80 at byte offset 0 \(column 1\) is not UTF-8", 1
    ),
    "a Latin-1 byte": Case(
        VALID.replace(b"partner: lab", b"partner: caf\xe9"),
        r"byte 0xE9 at byte offset \d+ \(column 15\) is not UTF-8: save the file as UTF-8",
        5,
    ),
    "a NUL byte": Case(
        VALID.replace(b"partner: lab", b"partner: l\x00ab"),
        r"column 13 holds the control character U\+0000 \(NUL\), which YAML does not allow",
        5,
    ),
    "100,000 nested [ (a 215 KB RecursionError)": Case(
        b"boards: " + b"[" * 100_000 + b"\n", r"nested more than 64 deep", 1
    ),
    "a directory": Case(_directory, r": is a directory, not a file"),
    "a 50 MB inventory (17 s, accepted)": Case(
        _fifty_megabytes, r"larger than 1 MiB, the most rig reads from a YAML file"
    ),
    # more of the same kinds
    "a directory holding boards.yaml": Case(
        _directory_with_boards, r"is a directory, not a file.*this one holds .*lab/boards.yaml"
    ),
    "a FIFO nobody writes to": Case(_fifo, r"is a FIFO \(named pipe\), not a file"),
    "a character device": Case(lambda tmp: Path("/dev/zero"), r"is a character device"),
    "a symlink to itself": Case(_symlink_loop, r"cannot be read: Too many levels of symbolic"),
    "one byte over the size limit": Case(_over_the_size_limit, r"larger than 1 MiB"),
    "UTF-16 from a Windows editor": Case(
        b"\xff\xfe" + VALID.decode().encode("utf-16-le"), r"the file is UTF-16", 1
    ),
    "an escape character pasted from a terminal": Case(
        VALID.replace(b"partner: lab", b"partner: \x1b[31mlab"), r"U\+001B \(ESC\)", 5
    ),
    "10,000 nested block lists": Case(b"boards:\n  " + b"- " * 10_000 + b"x\n", r"64 deep", 2),
    "mappings nested 20,000 deep": Case(
        b"boards: " + b"{a: " * 20_000 + b"}" * 20_000 + b"\n", r"64 deep", 1
    ),
    "an alias inside its own anchor": Case(
        b"boards: &a\n  x: *a\n", r"alias \*a is inside the value it names", 2
    ),
    "300,000 aliases of one scalar": Case(
        b"x: &a 1\ny: [" + b"*a," * 300_000 + b"*a]\n", r"more than 10,000 aliases", 2
    ),
    "a chain of merge keys": Case(
        b"a: &m0 {k: 1}\n"
        + b"".join(f"m{i}: &m{i} {{<<: *m{i - 1}, k{i}: {i}}}\n".encode() for i in range(1, 400)),
        r"more than 50,000 values",
        None,
    ),
    "an alias with no anchor": Case(b"boards: *nowhere\n", r"alias \*nowhere names no anchor", 1),
    "two documents": Case(
        VALID + b"---\n" + VALID, r"a second document \(after ---\)", VALID.count(b"\n") + 1
    ),
    "a date that is not one": Case(
        VALID.replace(b"partner: lab", b"partner: 2001-02-30"),
        r"cannot read '2001-02-30' as a date: day is out of range for month; quote it",
        5,
    ),
    "a 100,000-digit number": Case(
        VALID.replace(b"channel: 1,", b"channel: " + b"9" * 100_000 + b",", 1),
        r"a number 100,000 characters long",
        13,
    ),
    "a base-60 number of 200,000 parts (quadratic to convert)": Case(
        b"boards: 1" + b":1" * 200_000 + b"\n", r"a number 400,001 characters long", 1
    ),
    "a Python tag": Case(
        b'boards: !!python/object/apply:os.system ["echo pwned"]\n',
        r"could not determine a constructor for the tag",
        1,
    ),
    "a 500 KB board name": Case(
        b"boards:\n  ? k" + b"?" * 500_000 + b"\n  : {kind: emulated, device_type: x}\n",
        r"boards\.k\?{100}.*: 'k\?+\.\.\.\?+' may hold only letters, digits",
        2,
    ),
    "a 500 KB value where a word is expected": Case(
        VALID.replace(b"speed: fast", b"speed: " + b"w" * 500_000, 1),
        r"'wwwwwwwww.*' is not one of fast, paced",
        12,
    ),
    "6,000 boards each with a misspelt key": Case(
        board_lines(6_000), r"… and 5,900 more problems: fix these and check again", None
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_hostile_inventory_ends_quickly_with_one_clear_message(
    name: str, tmp_path: Path, check: Checker
):
    case = CASES[name]
    if callable(case.make):
        if name == "a character device" and not Path("/dev/zero").exists():
            pytest.skip("no /dev/zero here")
        path = case.make(tmp_path)
    else:
        path = tmp_path / "boards.yaml"
        path.write_bytes(case.make)
    if path.is_relative_to(tmp_path):  # as a user types it, and short: 100 problems fit
        path = path.relative_to(tmp_path)
    run = check(path, tmp_path)
    assert run.code == 1, run
    assert "Traceback" not in run.output, run.output[:2000]
    assert len(run.output) < MAX_OUTPUT, f"{len(run.output):,} characters: {run.output[:500]}"
    assert run.seconds < MAX_SECONDS, run
    assert run.peak_mb < MAX_PEAK_MB, run
    assert re.search(case.expected, run.output), run.output[:2000]
    first = run.output.splitlines()[0]
    assert str(path) in first, first  # the file is named first, whatever the problem
    if case.line is not None:
        assert first.startswith(f"{path}:{case.line}: "), first
    assert "no such file" not in run.output


def test_a_lab_of_a_thousand_boards_written_out_is_within_every_limit(
    tmp_path: Path, check: Checker
):
    """The limits leave room for a real lab far larger than any today: 1,000 full boards."""
    board = (
        "  b{i}:\n    kind: emulated\n    device_type: blinky\n"
        "    link: {{baud: 115200, speed: fast}}\n"
        "    power: {{model: generic, channel: 1, volts: 3.3, amps: 0.5, off_s: 0.2}}\n"
        "    double: {{firmware_version: 1.0.0}}\n"
        "    limits: {{boot_time: {{high: 2.0}}, idle_current: {{high: 20}}}}\n"
        "    tags: [ci, nightly]\n"
    )
    path = tmp_path / "boards.yaml"
    path.write_text("boards:\n" + "".join(board.format(i=i) for i in range(1000)))
    run = check(path, tmp_path)
    assert run.code == 0, run.output[:2000]
    assert run.seconds < MAX_SECONDS and run.peak_mb < MAX_PEAK_MB, run


def test_the_rig_command_itself_refuses_the_bomb_at_once(tmp_path: Path):
    """The installed entry point, not a fork: a new interpreter, exit code through sys.exit."""
    (tmp_path / "boards.yaml").write_bytes(bomb(9))
    run = run_rig(Path("boards.yaml"), tmp_path)
    assert run.code == 1, run
    assert run.output.startswith("boards.yaml:5: (yaml): more than 50,000 values once"), run
    assert len(run.output.splitlines()) == 1
    assert run.seconds < MAX_SECONDS + 1 and run.peak_mb < MAX_PEAK_MB, run


def test_a_board_shared_by_alias_loads_and_still_says_where_a_mistake_is(tmp_path: Path):
    """Aliases are fine within the limits: every board may share one power section."""
    path = tmp_path / "boards.yaml"
    path.write_text(
        "shared: &psu {model: generic, channel: 1, volts: 3.3, amps: 0.5}\n"
        "boards:\n"
        + "".join(f"  b{i}: {{kind: emulated, device_type: x, power: *psu}}\n" for i in range(200))
        + "  bad: {kind: emulated, device_type: x, power: *psu, colour: red}\n"
    )
    with pytest.raises(inventory.InventoryError) as caught:
        inventory.load(path)
    # 'shared' is not an inventory key; the misspelt one is on its own line
    assert [(p.line, p.path) for p in caught.value.problems] == [
        (1, "shared"),
        (203, "boards.bad.colour"),
    ]


def test_every_problem_is_kept_though_the_message_lists_the_first_hundred(tmp_path: Path):
    path = tmp_path / "boards.yaml"
    path.write_bytes(board_lines(150))
    with pytest.raises(inventory.InventoryError) as caught:
        inventory.load(path)
    assert len(caught.value.problems) == 150
    lines = str(caught.value).splitlines()
    assert len(lines) == inventory.MAX_LISTED + 1
    assert lines[-1] == "… and 50 more problems: fix these and check again"
