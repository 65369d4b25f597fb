"""The emulated MCU console on a real pseudo-terminal, read with pyserial like a USB-UART."""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Iterator

import pytest
import serial

from rig.double.mcu import BOOTING, IDLE, OFF, EmulatedMcu
from rig.double.spec import EmulatedBoardSpec
from tests.unit.helpers import wait_until

BANNER = (
    b"=== rig emulated MCU ===\r\n"
    b"board: dut  device_type: blinky\r\n"
    b"firmware version: 1.0.0\r\n"
    b"ready\r\n"
)
QUIET_S = 0.3  # how long "nothing comes out" is watched for; several boot times


@pytest.fixture
def mcu() -> Iterator[EmulatedMcu]:
    with EmulatedMcu(EmulatedBoardSpec("dut", boot_s=0.05)) as emulated:
        yield emulated


@pytest.fixture
def port(mcu: EmulatedMcu) -> Iterator[serial.Serial]:
    with serial.Serial(mcu.port, 115200, timeout=2, write_timeout=5) as client:
        yield client


def boot(mcu: EmulatedMcu, port: serial.Serial) -> None:
    mcu.power(True, 3.3, 0.5)
    assert port.read_until(b"ready\r\n") == BANNER


def quiet(port: serial.Serial) -> bytes:
    """Whatever arrives within QUIET_S (expected: nothing)."""
    port.timeout = QUIET_S
    try:
        return port.read(4096)
    finally:
        port.timeout = 2


def ask(port: serial.Serial, command: bytes) -> bytes:
    port.write(command)
    return port.readline()


def test_console_is_a_pty(mcu: EmulatedMcu) -> None:
    assert mcu.port.startswith("/dev/pts/")
    assert stat.S_ISCHR(os.stat(mcu.port).st_mode)


def test_banner_only_after_power_on(mcu: EmulatedMcu, port: serial.Serial) -> None:
    assert quiet(port) == b"", "an unpowered board printed something"
    assert mcu.state == OFF
    boot(mcu, port)
    assert mcu.state == IDLE


def test_power_off_is_silent_at_once(mcu: EmulatedMcu, port: serial.Serial) -> None:
    boot(mcu, port)
    mcu.power(False, 3.3, 0.5)
    port.write(b"version\r\n")
    assert quiet(port) == b""
    assert mcu.state == OFF


def test_power_off_during_boot_cancels_banner() -> None:
    with EmulatedMcu(EmulatedBoardSpec("dut", boot_s=0.2)) as slow:
        client = serial.Serial(slow.port, 115200, timeout=2 * 0.2)
        slow.power(True, 3.3, 0.5)
        assert slow.state == BOOTING
        slow.power(False, 3.3, 0.5)
        assert client.read(4096) == b"", "a cancelled boot still printed"
        client.close()


@pytest.mark.parametrize(("volts", "amps"), [(2.9, 0.5), (3.3, 0.04)], ids=["volts", "amps"])
def test_brown_out_does_not_boot(
    mcu: EmulatedMcu, port: serial.Serial, volts: float, amps: float
) -> None:
    mcu.power(True, volts, amps)
    assert quiet(port) == b""
    assert mcu.state == OFF
    assert abs(mcu.draw()) <= 0.00005


def test_sag_below_min_volts_while_running_resets(mcu: EmulatedMcu, port: serial.Serial) -> None:
    boot(mcu, port)
    mcu.power(True, 3.4, 0.5)  # a setpoint change within range: the board does not notice
    assert mcu.state == IDLE
    mcu.power(True, 2.5, 0.5)
    assert mcu.state == OFF
    assert quiet(port) == b""
    boot(mcu, port)  # back above min_volts: a fresh power-on


def test_commands_answer_while_on(mcu: EmulatedMcu, port: serial.Serial) -> None:
    boot(mcu, port)
    assert ask(port, b"version\r\n") == b"firmware version: 1.0.0\r\n"
    assert ask(port, b"version\r") == b"firmware version: 1.0.0\r\n"
    assert ask(port, b"frobnicate now\n") == b"unknown command: frobnicate now\r\n"
    first = ask(port, b"status\n")
    assert first.startswith(b"state: idle uptime_ms: ") and first.endswith(b"\r\n")
    wait_until(lambda: int(ask(port, b"status\n").split()[-1]) > int(first.split()[-1]))


def test_reboot_prints_banner_again(mcu: EmulatedMcu, port: serial.Serial) -> None:
    boot(mcu, port)
    port.write(b"reboot\r\n")
    assert port.readline() == b"rebooting\r\n"
    assert port.read_until(b"ready\r\n") == BANNER
    uptime_ms = int(ask(port, b"status\r\n").split()[-1])
    assert uptime_ms < 1000, "uptime must restart at reboot"


def test_input_while_off_is_ignored(mcu: EmulatedMcu, port: serial.Serial) -> None:
    port.write(b"status\r\n")
    port.flush()
    wait_until(lambda: port.out_waiting == 0)
    boot(mcu, port)
    assert quiet(port) == b"", "a command typed while off was answered after boot"


def test_current_draw_follows_state() -> None:
    spec = EmulatedBoardSpec("dut", boot_s=60, boot_amps=0.045, idle_amps=0.012)
    with EmulatedMcu(spec) as mcu:
        assert abs(mcu.draw()) <= 0.00005
        mcu.power(True, 3.3, 0.5)
        assert mcu.draw() == 0.045
        mcu.power(False, 3.3, 0.5)
        assert abs(mcu.draw()) <= 0.00005
    with EmulatedMcu(EmulatedBoardSpec("dut", boot_s=0.0)) as mcu:
        mcu.power(True, 3.3, 0.5)
        wait_until(lambda: mcu.state == IDLE)
        draws = [mcu.draw() for _ in range(200)]
        assert all(0.012 * 0.98 <= amps <= 0.012 * 1.02 for amps in draws)
        assert len(set(draws)) > 1, "idle draw should carry a little noise"


def test_output_nobody_reads_is_dropped_not_blocking(mcu: EmulatedMcu, port: serial.Serial) -> None:
    boot(mcu, port)
    flood = 2000  # ~50 KB of replies, far more than a pty buffers
    port.write(b"version\r" * flood)  # write_timeout: fails if the MCU stopped reading input
    wait_until(lambda: mcu.commands_handled == flood, timeout=5)
    assert mcu.dropped_bytes > 0
    started = time.monotonic()
    mcu.power(False, 3.3, 0.5)  # the state lock is free: no write is stuck on a full buffer
    assert time.monotonic() - started < 0.5
    port.reset_input_buffer()
    boot(mcu, port)
    assert ask(port, b"version\r") == b"firmware version: 1.0.0\r\n"


def test_close_stops_threads_and_frees_the_pty() -> None:
    before = set(threading.enumerate())
    mcu = EmulatedMcu(EmulatedBoardSpec("closing", boot_s=60))
    mcu.power(True, 3.3, 0.5)  # a boot is pending while we close
    assert len(set(threading.enumerate()) - before) == 1  # its reactor: no thread per task
    mcu.close()
    mcu.close()  # idempotent
    assert set(threading.enumerate()) - before == set()
    assert not os.path.exists(mcu.port), "the pseudo-terminal outlived the double"
