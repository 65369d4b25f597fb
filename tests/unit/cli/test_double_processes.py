"""`rig double --processes N`: boards shared over child doubles, announced and stopped as one."""

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rig.double.errors import DoubleError
from rig.double.processes import share
from tests.unit.helpers import open_visa, wait_until

FOUR = (
    "boards:\n"
    "  a: {kind: emulated, device_type: blinky}\n"
    "  b: {kind: emulated, device_type: blinky}\n"
    "  c: {kind: emulated, device_type: kettle, power: {model: rigol-dp832, channel: 2}}\n"
    "  d: {kind: emulated, device_type: blinky}\n"
)


def start(boards: Path, *extra: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "rig", "double", "--json", "-f", str(boards), *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def read_rows(proc: subprocess.Popen[str], count: int, timeout: float = 30.0) -> list[dict]:
    """`count` announcement lines, failing with the double's stderr if they do not come."""
    assert proc.stdout is not None
    data = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while data.count(b"\n") < count:
            remaining = deadline - time.monotonic()
            chunk = os.read(proc.stdout.fileno(), 65536) if selector.select(remaining) else b""
            if not chunk:
                proc.kill()
                pytest.fail(f"announced {data!r}, not {count} boards; stderr: {proc.stderr.read()}")
            data += chunk
    return [json.loads(line) for line in data.decode().splitlines()]


def children(pid: int) -> list[int]:
    return [int(kid) for kid in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.fixture
def four(tmp_path):
    boards = tmp_path / "boards.yaml"
    boards.write_text(FOUR)
    proc = start(boards, "--processes", "2")
    yield proc
    if proc.poll() is None:
        proc.kill()  # its children get SIGTERM as it dies (PR_SET_PDEATHSIG)
        proc.wait(timeout=10)


def test_boards_are_shared_round_robin():
    assert share(["a", "b", "c", "d", "e"], 2) == [["a", "c", "e"], ["b", "d"]]
    assert share(["a", "b"], 4) == [["a"], ["b"]]  # never an empty child
    assert share(["a", "b"], 1) == [["a", "b"]]
    with pytest.raises(DoubleError, match="--processes 0"):
        share(["a"], 0)


def test_two_processes_announce_every_board_and_stop_on_sigterm(four, rm):
    rows = read_rows(four, 4)
    assert [row["board"] for row in rows] == ["a", "b", "c", "d"]  # as one double announces
    assert rows[2]["model"] == "rigol-dp832" and rows[2]["channel"] == 2
    kids = children(four.pid)
    assert len(kids) == 2
    # each board names the control port of the double serving it: a and c share one, b and d
    assert rows[0]["control"] == rows[2]["control"] != rows[1]["control"] == rows[3]["control"]
    for row in rows:
        supply = open_visa(rm, row["power"])
        try:
            maker = "RIGOL" if row["model"] == "rigol-dp832" else "RIG,DOUBLE-PSU"
            assert supply.query("*IDN?").startswith(maker)
        finally:
            supply.close()
    four.send_signal(signal.SIGTERM)
    code = four.wait(timeout=20)
    said = four.stderr.read()
    assert code == 0, said
    assert "Traceback" not in said
    wait_until(lambda: all(gone(kid) for kid in kids), 10, "the child doubles to exit")


def test_a_child_dying_ends_the_parent_naming_its_boards(four):
    read_rows(four, 4)
    kids = children(four.pid)
    os.kill(kids[1], signal.SIGKILL)  # the double serving b and d
    assert four.wait(timeout=20) == 1
    err = four.stderr.read()
    assert "died while serving" in err and "boards b, d no longer answer" in err
    wait_until(lambda: all(gone(kid) for kid in kids), 10, "the other child double to exit")


def test_a_child_that_cannot_start_fails_the_start_with_its_reason(tmp_path):
    boards = tmp_path / "boards.yaml"
    boards.write_text(
        "boards:\n"
        "  a: {kind: emulated, device_type: blinky}\n"
        "  b: {kind: emulated, device_type: blinky, asr: {emulated: true, uart: /dev/no-uart}}\n"
    )
    proc = start(boards, "--processes", "2")
    try:
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 1
    assert out == ""  # nothing announced: a board that cannot start is never announced
    assert "for boards b could not start" in err
    assert "/dev/no-uart" in err
    assert "Traceback" not in err
