"""`rig boards --probe`: each board's parts checked for real, one table, exit 1 if one is missing.

Emulated boards are probed through the double the probe starts; the "real" bench points at a
console that does not exist and a supply port nobody listens on, as an unplugged bench would.
"""

import re
import socket

import pytest

from rig.cli.main import main as rig_main
from rig.lab.lock import BoardLock

EMULATED = """\
boards:
  alpha:
    kind: emulated
    device_type: blinky
    power: {off_s: 0.05}
    double: {firmware_version: 1.1.0}
  bravo:
    kind: emulated
    device_type: kettle
    power: {model: rigol-dp832, channel: 2, off_s: 0.05}
    double: {firmware_version: 2.0.3}
"""


def closed_port() -> int:
    """A loopback TCP port nobody listens on: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unplugged_bench(tmp_path) -> str:
    return f"""\
  bench-1:
    device_type: blinky
    console: {{port: {tmp_path}/ttyUSB99, baud: 115200}}
    tap: {{asr_to_mcu: {tmp_path}/ttyUSB97, mcu_to_asr: {tmp_path}/ttyUSB98}}
    power: {{resource: "TCPIP0::127.0.0.1::{closed_port()}::SOCKET", timeout_s: 0.5}}
"""


def probe(capsys, path, *args: str) -> tuple[int, dict[str, list[str]], str]:
    """Run the probe; returns its exit code, the table's rows by board (cells split on the
    header's columns) and the whole output."""
    code = rig_main(["boards", "--probe", "-f", str(path), *args])
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = lines[0]
    starts = [m.start() for m in re.finditer(r"\S+(?: \S+)*", header)]  # two spaces apart
    rows = {}
    for line in lines[1:]:
        if not line or line.startswith("missing parts"):
            continue
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        rows[cells[0]] = cells
    return code, rows, out


@pytest.fixture
def boards_file(tmp_path, rig_env):
    path = tmp_path / "boards.yaml"
    path.write_text(EMULATED)
    return path


def test_every_part_of_every_emulated_board_answers(boards_file, capsys):
    code, rows, out = probe(capsys, boards_file)
    assert code == 0, out
    assert out.splitlines()[0].split() == ["BOARD", "KIND", "SUPPLY", "CONSOLE", "TAP", "NOTE"]
    assert rows["alpha"] == ["alpha", "emulated", "RIG DOUBLE-PSU ch1", "ok", "ok", "-"]
    assert rows["bravo"][2] == "RIGOL TECHNOLOGIES DP832 ch2"  # its own supply's *IDN?
    assert rows["bravo"][3:] == ["ok", "ok", "-"]


def test_a_missing_console_and_a_refusing_supply_fail_that_row_only(boards_file, tmp_path, capsys):
    boards_file.write_text(EMULATED + unplugged_bench(tmp_path))
    code, rows, out = probe(capsys, boards_file)
    assert code == 1, out
    assert rows["alpha"][2:] == ["RIG DOUBLE-PSU ch1", "ok", "ok", "-"]
    bench = rows["bench-1"]
    assert bench[1:5] == ["real", "FAIL", "FAIL", "FAIL"], out
    note = bench[5]
    assert f"console {tmp_path}/ttyUSB99: no such file or directory" in note
    assert "supply TCPIP0::127.0.0.1::" in note and "connection refused" in note
    assert f"tap.asr_to_mcu {tmp_path}/ttyUSB97: no such file or directory" in note
    assert f"tap.mcu_to_asr {tmp_path}/ttyUSB98: no such file or directory" in note
    assert "missing parts on bench-1" in out


def test_boot_times_the_banner_and_names_a_banner_that_never_comes(boards_file, capsys):
    mute = (
        "  mute:\n    kind: emulated\n    device_type: blinky\n"
        "    console: {banner: 'Booted v(?P<version>\\S+)', boot_timeout_s: 0.3}\n"
    )
    boards_file.write_text(EMULATED + mute)
    code, rows, out = probe(capsys, boards_file, "--boot")
    assert code == 1, out
    assert re.split(r"  +", out.splitlines()[0])[5:] == ["BOOT s", "FIRMWARE", "NOTE"]
    alpha = rows["alpha"]
    assert 0 < float(alpha[5]) < 2 and alpha[6:] == ["1.1.0", "-"], out
    assert rows["bravo"][6] == "2.0.3"
    line = boards_file.read_text().splitlines().index(mute.splitlines()[3]) + 1
    assert rows["mute"][2:6] == ["RIG DOUBLE-PSU ch1", "ok", "ok", "FAIL"]
    assert (
        f"boot: no banner within 0.3 s ({boards_file}:{line}: boards.mute.console.banner); "
        "last line 'ready'"
    ) in rows["mute"][7]


def test_a_real_board_in_use_is_not_touched(boards_file, tmp_path, capsys):
    boards_file.write_text(EMULATED + unplugged_bench(tmp_path))
    held = BoardLock("bench-1", board="bench-1")
    held.acquire(1)
    try:
        code, rows, _ = probe(capsys, boards_file, "--board", "bench-1", "--boot")
    finally:
        held.release()
    assert code == 1
    assert rows["bench-1"][2:7] == ["-", "-", "-", "-", "-"]
    assert rows["bench-1"][7].startswith("in use by pid ")
