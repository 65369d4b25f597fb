"""A double whose descriptors are all past 1024 (where select() gave up) still serves every board.

The double runs in a child that first fills its low descriptors, so the test process itself
(pyvisa, pyserial) keeps low ones; every board must answer *IDN? and open its console.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import serial

from tests.unit.double.test_runner import BANNER_END, read_until_ready, stop

REPO = Path(__file__).resolve().parents[3]
BOARDS = 40
HIGH_FD = 1100  # every descriptor the double opens comes after this one

CHILD = f"""
import os, resource, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
dummies = []
while not dummies or dummies[-1] < {HIGH_FD}:
    dummies.append(os.open(os.devnull, os.O_RDONLY))
from rig.double import runner
from rig.double.spec import EmulatedBoardSpec
sys.exit(runner.serve([EmulatedBoardSpec(f"b{{i}}") for i in range({BOARDS})], as_json=True))
"""


def ask(port: int, line: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(line + b"\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = sock.recv(4096)
            assert chunk, "the supply closed the connection instead of answering"
            reply += chunk
    return reply.strip()


@pytest.mark.skipif(
    resource.getrlimit(resource.RLIMIT_NOFILE)[1] < 2 * HIGH_FD, reason="hard open-file limit"
)
def test_every_board_answers_when_all_descriptors_are_past_1024() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD], cwd=REPO, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        out = read_until_ready(proc, f'"b{BOARDS - 1}"'.encode(), timeout=60)
        boards = [json.loads(line) for line in out.decode().splitlines()]
        assert len(boards) == BOARDS
        fds = [int(fd) for fd in os.listdir(f"/proc/{proc.pid}/fd")]
        assert min(fd for fd in fds if fd > 2) < HIGH_FD < max(fds)
        for board in boards:
            port = int(board["power"].split("::")[2])
            assert ask(port, b"*IDN?") == b"RIG,DOUBLE-PSU,0001,0.1", board["board"]
            with serial.Serial(board["console"], 115200, timeout=0):
                pass
        for board in (boards[0], boards[-1]):  # the console of a board past 1024 speaks too
            port = int(board["power"].split("::")[2])
            with serial.Serial(board["console"], 115200, timeout=5) as console:
                assert ask(port, b"OUTP ON;*OPC?") == b"1"
                assert console.read_until(BANNER_END).endswith(b"ready\r\n")
                console.write(b"version\r\n")
                assert console.readline() == b"firmware version: 1.0.0\r\n"
    finally:
        code, _, stderr = stop(proc, signal.SIGTERM)
    assert code == 0, stderr
    assert "Traceback" not in stderr and "out of range" not in stderr
