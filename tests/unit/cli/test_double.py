"""`rig double` as a user runs it: a process that announces its boards and stops cleanly."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import pyvisa
import serial

from rig.double.reference_mcu import GenericMcu
from tests.unit.helpers import open_visa

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def double_process(tmp_path):
    boards = tmp_path / "boards.yaml"
    boards.write_text(
        "boards:\n"
        "  one: {kind: emulated, device_type: blinky, double: {firmware_version: 3.1.4}}\n"
        "  two: {kind: emulated, device_type: kettle, power: {model: rigol-dp832, channel: 3}}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "rig", "double", "--json", "-f", str(boards)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


def read_boards(proc) -> dict[str, dict]:
    return {row["board"]: row for row in (json.loads(proc.stdout.readline()) for _ in range(2))}


def test_announces_every_board_and_they_are_real(double_process):
    boards = read_boards(double_process)
    assert set(boards) == {"one", "two"}
    assert boards["two"]["power"].startswith("TCPIP0::127.0.0.1::")
    assert boards["two"]["power"].endswith("::SOCKET")
    assert os.path.exists(boards["one"]["console"])
    rm = pyvisa.ResourceManager("@py")
    psu = rm.open_resource(boards["one"]["power"], read_termination="\n", write_termination="\n")
    psu.timeout = 2000
    port = serial.Serial(boards["one"]["console"], 115200, timeout=3)
    try:
        assert psu.query("*IDN?").startswith("RIG,DOUBLE-PSU")
        psu.write("OUTP ON")
        banner = b""
        while b"ready" not in banner:
            chunk = port.read(64)
            assert chunk, f"no banner; got {banner!r}"
            banner += chunk
        assert b"firmware version: 3.1.4" in banner
    finally:
        port.close()
        psu.close()  # not rm.close(): the manager is shared by every session in this process


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_stops_cleanly_on_signal(double_process, stop):
    read_boards(double_process)
    double_process.send_signal(stop)
    assert double_process.wait(timeout=10) == 0
    assert "Traceback" not in double_process.stderr.read()


def test_refuses_real_boards(tmp_path):
    boards = tmp_path / "boards.yaml"
    boards.write_text(
        "boards:\n"
        "  bench: {device_type: b, console: {port: /dev/x},"
        " power: {resource: 'TCPIP0::h::5025::SOCKET'}}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "rig", "double", "-f", str(boards), "--board", "bench"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert "emulates only boards with kind: emulated" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_board_whose_asr_is_emulated_drives_afero_s_reference_mcu(tmp_path, generic_mcu, rm):
    """boards.yaml `asr: {uart: pty}`: `rig double` names the MCU's UART; Afero's generic_mcu
    started on it goes through the emulated ASR's boot handshake once the supply is on."""
    boards = tmp_path / "boards.yaml"
    boards.write_text(
        "boards:\n  ext: {kind: emulated, device_type: blinky, asr: {emulated: true, uart: pty}}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "rig", "double", "--json", "-f", str(boards)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    mcu = None
    try:
        row = json.loads(proc.stdout.readline())
        uart = row["tap"]["mcu_uart"]
        assert os.path.exists(uart)
        (tmp_path / "mcu").mkdir()
        mcu = GenericMcu(generic_mcu, uart, tmp_path / "mcu")
        supply = open_visa(rm, row["power"])
        assert supply.query("OUTP ON;*OPC?").strip() == "1"
        mcu.wait_for(r"ASR state: Initialized")
        mcu.wait_for(r"ASR capability AF_ASR_CAPABILITY_MCU_OTA, supported 1")
        supply.close()
    finally:
        if mcu is not None:
            mcu.stop()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
