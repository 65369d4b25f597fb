"""The whole double: supply output gates the MCU; `serve()` as the process the plugin runs."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import pyvisa
import serial

from rig.double import runner
from rig.double.errors import DoubleError
from rig.double.mcu import IDLE, OFF
from rig.double.runner import Double
from rig.double.spec import EmulatedBoardSpec
from tests.unit.helpers import open_visa, wait_until

REPO = Path(__file__).resolve().parents[3]
BANNER_END = b"ready\r\n"


@pytest.fixture
def double() -> Iterator[Double]:
    specs = [
        EmulatedBoardSpec("alpha"),
        EmulatedBoardSpec("bravo", model="rigol-dp832", channel=2, firmware_version="2.4.1"),
    ]
    with Double(specs) as running:
        yield running


def test_info_describes_each_board(double: Double) -> None:
    alpha, bravo = double.info()
    assert {k: alpha[k] for k in ("board", "model", "channel")} == {
        "board": "alpha", "model": "generic", "channel": 1,
    }  # fmt: skip
    assert {k: bravo[k] for k in ("board", "model", "channel")} == {
        "board": "bravo", "model": "rigol-dp832", "channel": 2,
    }  # fmt: skip
    for info in (alpha, bravo):
        assert re.fullmatch(r"TCPIP0::127\.0\.0\.1::\d+::SOCKET", str(info["power"]))
        assert re.fullmatch(r"/dev/pts/\d+", str(info["console"]))
    assert alpha["power"] != bravo["power"] and alpha["console"] != bravo["console"]


def test_rigol_board_boots_only_from_its_own_channel(
    double: Double, rm: pyvisa.ResourceManager
) -> None:
    info = double.boards["bravo"].info()
    mcu = double.boards["bravo"].mcu
    supply = open_visa(rm, str(info["power"]))
    with serial.Serial(str(info["console"]), 115200, timeout=0.3) as console:
        supply.write(":OUTP CH1,ON")
        assert supply.query(":OUTP? CH1") == "ON"
        assert console.read(100) == b"", "channel 1 does not power this board"
        assert mcu.state == OFF
        supply.write(":OUTP CH2,ON")
        console.timeout = 2
        banner = console.read_until(BANNER_END)
        assert b"board: bravo" in banner and b"firmware version: 2.4.1\r\n" in banner
        console.write(b"version\r\n")
        assert console.readline() == b"firmware version: 2.4.1\r\n"
        amps = float(supply.query(":MEAS:CURR? CH2"))
        assert 0.0115 <= amps <= 0.0125, "the supply must measure the idle board's draw"
        assert supply.query(":MEAS:CURR? CH1") == "0.0000"
        assert supply.query(":OUTP CH2,OFF;*OPC?") == "1"  # *OPC?: the write has been applied
        assert mcu.state == OFF
        assert supply.query(":MEAS:CURR? CH2") == "0.0000"
    supply.close()


def test_generic_board_browns_out_when_voltage_drops(
    double: Double, rm: pyvisa.ResourceManager
) -> None:
    info = double.boards["alpha"].info()
    mcu = double.boards["alpha"].mcu
    supply = open_visa(rm, str(info["power"]))
    supply.write("INST:NSEL 1")
    supply.write("VOLT 2.5")
    assert supply.query("OUTP ON;*OPC?") == "1"
    assert mcu.state == OFF, "2.5 V is below min_volts"
    with serial.Serial(str(info["console"]), 115200, timeout=2) as console:
        assert supply.query("VOLT 3.3;*OPC?") == "1"
        assert console.read_until(BANNER_END).endswith(b"firmware version: 1.0.0\r\nready\r\n")
        assert mcu.state == IDLE
        assert supply.query("VOLT 2.9;*OPC?") == "1"
        assert mcu.state == OFF
        assert abs(float(supply.query("MEAS:CURR?"))) < 0.0001
    supply.close()


def test_close_leaves_no_threads() -> None:
    before = set(threading.enumerate())
    with Double([EmulatedBoardSpec("one"), EmulatedBoardSpec("two", channel=3)]):
        started = set(threading.enumerate()) - before
        # one reactor serves every board's sockets and ptys; one control channel; no worker yet
        assert len(started) == 2, [t.name for t in started]
    assert set(threading.enumerate()) - before == set()


def test_a_board_whose_part_cannot_start_fails_the_start_with_the_reason() -> None:
    before = set(threading.enumerate())
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        specs = [EmulatedBoardSpec("fine"), EmulatedBoardSpec("clash", scpi_port=port)]
        with pytest.raises(DoubleError, match=rf"'clash'.*SCPI port {port}.*in use"):
            Double(specs)
    assert set(threading.enumerate()) - before == set(), "a failed start left threads"


def test_a_dead_reactor_is_reported_not_hidden() -> None:
    def die() -> None:
        raise SystemExit("simulated crash")  # not an Exception: the loop itself goes

    with Double([EmulatedBoardSpec("one")]) as double:
        double.check()
        assert double.reactor is not None
        double.reactor.call_soon(die)
        wait_until(lambda: not double.reactor.alive(), what="the reactor to die")
        with pytest.raises(DoubleError, match=r"reactor thread is not running.*simulated crash"):
            double.check()


def test_too_few_descriptors_is_said_with_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner.resource, "getrlimit", lambda _: (256, 512))
    with pytest.raises(DoubleError, match=r"100 emulated boards need about \d+ open files.*512"):
        Double([EmulatedBoardSpec(f"b{i}") for i in range(100)])


def test_bad_specs_are_rejected_with_a_rig_error() -> None:
    with pytest.raises(DoubleError, match="unique: twin"):
        Double([EmulatedBoardSpec("twin"), EmulatedBoardSpec("twin")])
    with pytest.raises(DoubleError, match="not emulated"):
        EmulatedBoardSpec("x", model="keysight-e36312a")
    with pytest.raises(DoubleError, match="channel 4"):
        EmulatedBoardSpec("x", channel=4)
    with pytest.raises(DoubleError, match="scpi_port 70000"):
        EmulatedBoardSpec("x", scpi_port=70000)


# -- serve() in its own process, as `rig double --json` runs ------------------------------------

SERVE = """
import os, signal, sys, threading
from rig.double import runner
from rig.double.spec import EmulatedBoardSpec

if "--second-signal" in sys.argv:  # a second Ctrl-C arrives while the double is shutting down
    close = runner.Double.close
    def close_with_interrupt(self):
        os.kill(os.getpid(), signal.SIGINT)
        close(self)
    runner.Double.close = close_with_interrupt

if "--reactor-dies" in sys.argv:  # the loop serving every board dies after the announcement
    def die():
        raise SystemExit("simulated crash")
    serve_check = runner.Double.check
    def check_then_die(self):
        serve_check(self)
        self.reactor.call_soon(die)
    runner.Double.check = check_then_die

specs = [EmulatedBoardSpec("alpha"), EmulatedBoardSpec("bravo", model="rigol-dp832", channel=2)]
code = runner.serve(specs, as_json="--json" in sys.argv)
print("threads left:", threading.active_count(), file=sys.stderr)
sys.exit(code)
"""


def start_serve(*flags: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", SERVE, *flags],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def read_until_ready(proc: subprocess.Popen[bytes], marker: bytes, timeout: float = 10) -> bytes:
    """stdout up to and including the line holding `marker`, with a deadline."""
    assert proc.stdout is not None
    data = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while marker not in data or not data.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"double not ready; stdout so far: {data!r}"
            if selector.select(remaining):
                chunk = os.read(proc.stdout.fileno(), 65536)
                assert chunk, f"double exited early: {data!r} {proc.stderr.read()!r}"
                data += chunk
    return data


def stop(proc: subprocess.Popen[bytes], sig: signal.Signals) -> tuple[int, float, str]:
    started = time.monotonic()
    proc.send_signal(sig)
    try:
        _, stderr = proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, time.monotonic() - started, stderr.decode()


def test_serve_prints_json_lines_and_stops_on_sigterm(rm: pyvisa.ResourceManager) -> None:
    proc = start_serve("--json")
    lines = read_until_ready(proc, b'"bravo"').decode().splitlines()
    boards = [json.loads(line) for line in lines]
    assert [b["board"] for b in boards] == ["alpha", "bravo"]
    assert [(b["model"], b["channel"]) for b in boards] == [("generic", 1), ("rigol-dp832", 2)]
    supply = open_visa(rm, boards[1]["power"])  # the announced addresses really answer
    assert supply.query("*IDN?").startswith("RIGOL TECHNOLOGIES,DP832")
    with serial.Serial(boards[1]["console"], 115200, timeout=2) as console:
        supply.write(":OUTP CH2,ON")
        assert console.read_until(BANNER_END).endswith(b"ready\r\n")
    supply.close()
    code, elapsed, stderr = stop(proc, signal.SIGTERM)
    assert code == 0, stderr
    assert elapsed < 3, "the double must stop promptly on SIGTERM"
    assert "threads left: 1" in stderr
    assert "Traceback" not in stderr


def test_serve_stops_on_sigint_even_when_interrupted_again() -> None:
    proc = start_serve("--json", "--second-signal")
    read_until_ready(proc, b'"bravo"')
    code, _, stderr = stop(proc, signal.SIGINT)
    assert code == 0, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert "threads left: 1" in stderr


def test_serve_prints_a_table_for_people() -> None:
    proc = start_serve()
    table = read_until_ready(proc, b"ready").decode()
    header, alpha, bravo = table.splitlines()[:3]
    assert header.split() == ["BOARD", "MODEL", "CH", "POWER", "CONSOLE"]
    assert alpha.split()[:3] == ["alpha", "generic", "1"]
    assert bravo.split()[:3] == ["bravo", "rigol-dp832", "2"]
    assert re.search(r"TCPIP0::127\.0\.0\.1::\d+::SOCKET\s+/dev/pts/\d+", bravo)
    code, _, stderr = stop(proc, signal.SIGTERM)
    assert code == 0, stderr


def test_serve_exits_1_saying_why_when_its_reactor_dies() -> None:
    proc = start_serve("--json", "--reactor-dies")
    try:
        _, stderr = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, stderr
    assert b"rig double: the board double's reactor thread is not running" in stderr
    assert b"simulated crash" in stderr
