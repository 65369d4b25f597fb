"""The pytest plugin, run for real on inner pytest sessions against emulated boards."""

import re
import textwrap

import pytest

from rig.lab import inventory
from rig.lab.lock import BoardLock
from rig.lab.setup import Lab

TWO_BOARDS = """
boards:
  alpha:
    kind: emulated
    device_type: blinky
    power: {off_s: 0.05}
    double: {firmware_version: 1.1.0}
    tags: [ci]
  bravo:
    kind: emulated
    device_type: kettle
    power: {model: rigol-dp832, channel: 2, off_s: 0.05}
    double: {firmware_version: 2.0.3}
    tags: [ci, nightly]
"""

BOARD_TESTS = """
import pytest

def test_boots(board):
    assert board.boot(timeout_s=5) == board.config.double.firmware_version

@pytest.mark.requires("power", "console")
def test_draws_current(board):
    board.boot(timeout_s=5)
    assert board.power.measure_current() > 0.001

@pytest.mark.requires("teleporter")
def test_needs_what_no_board_has(board):
    raise AssertionError("must be skipped before the board is touched")

def test_without_board():
    pass
"""


@pytest.fixture
def inner_lab(pytester, rig_env):
    pytester.makefile(".yaml", boards=TWO_BOARDS)
    pytester.makepyfile(test_boards=BOARD_TESTS)
    return pytester


def test_each_selected_board_runs_each_board_test(inner_lab):
    result = inner_lab.runpytest("--board", "alpha,bravo", "-v", "-rs")
    result.assert_outcomes(passed=5, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "rig: boards alpha (emulated, blinky), bravo (emulated, kettle) from *boards.yaml",
            "*test_boots?alpha? PASSED*",
            "*test_boots?bravo? PASSED*",
            "SKIPPED * board 'alpha' lacks teleporter",
        ]
    )


def test_tag_selector(inner_lab):
    result = inner_lab.runpytest("--board", "tag:nightly", "-v", "-k", "boots")
    result.assert_outcomes(passed=1, deselected=3)
    result.stdout.fnmatch_lines(["*test_boots?bravo? PASSED*"])


def test_misspelt_board_is_a_usage_error_not_a_traceback(inner_lab):
    result = inner_lab.runpytest("--board", "alhpa")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = result.stderr.str()
    assert "no board named 'alhpa'" in text and "did you mean 'alpha'?" in text
    assert "Traceback" not in text + result.stdout.str()


def test_broken_inventory_is_reported_with_file_and_line(inner_lab):
    broken = "boards:\n  alpha:\n    kind: emulated\n    devise_type: x\n"
    inner_lab.makefile(".yaml", boards=broken)
    result = inner_lab.runpytest("--board", "alpha")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*boards.yaml:4: boards.alpha.devise_type: unknown key 'devise_type'*did you mean*"]
    )


def test_tests_without_a_board_need_no_inventory(pytester, monkeypatch):
    monkeypatch.delenv("RIG_BOARDS_FILE", raising=False)
    pytester.makepyfile("def test_plain():\n    assert True\n")
    result = pytester.runpytest("--board", "nonesuch")
    result.assert_outcomes(passed=1)


def test_a_held_board_makes_the_second_run_wait_then_name_the_holder(inner_lab, tmp_path):
    inv = inventory.load(inner_lab.path / "boards.yaml")
    key = Lab(inv, log_dir=tmp_path, state_dir=tmp_path).lock_key("alpha")
    held = BoardLock(key, board="alpha", lock_dir=tmp_path / "locks")
    held.acquire(1)
    try:
        result = inner_lab.runpytest("--board", "alpha", "--lock-timeout", "0.3", "-k", "boots")
    finally:
        held.release()
    result.assert_outcomes(errors=1)
    text = result.stdout.str()
    assert "board 'alpha' could not be set up: board 'alpha' is in use by pid" in text
    assert "waited 0.3 s" in text
    assert "Traceback" not in text


def test_board_that_cannot_be_set_up_fails_fast_with_one_message(pytester, monkeypatch, tmp_path):
    monkeypatch.setenv("RIG_LOCK_DIR", str(tmp_path / "locks"))
    pytester.makefile(
        ".yaml",
        boards=textwrap.dedent(
            f"""
            boards:
              bench-1:
                device_type: blinky
                console: {{port: {tmp_path}/ttyUSB-unplugged}}
                power: {{resource: "TCPIP0::127.0.0.1::1::SOCKET"}}
            """
        ),
    )
    pytester.makepyfile("def test_a(board): pass\ndef test_b(board): pass\n")
    result = pytester.runpytest("--board", "bench-1", "-rs")
    result.assert_outcomes(errors=1, skipped=1)  # the board is out of the run after the first
    text = result.stdout.str()
    assert "board 'bench-1' could not be set up: bench-1: console " in text
    result.stdout.fnmatch_lines(
        ["SKIPPED [[]1[]] *board 'bench-1' is out of this run: board 'bench-1' could not be*"]
    )
    assert "ttyUSB-unplugged: cannot open it: it does not exist" in text
    assert "During handling" not in text
    assert "boards.bench-1.console.port" in text
    assert "Traceback" not in text


def test_each_board_stays_on_one_xdist_worker(inner_lab):
    inner_lab.makepyfile(
        test_more="\n".join(
            f"def test_banner_{i}(board):\n    assert board.boot(timeout_s=5)\n" for i in range(4)
        )
    )
    result = inner_lab.runpytest_subprocess("--board", "alpha,bravo", "-n", "2", "-v")
    result.assert_outcomes(passed=13, skipped=2)
    workers: dict[str, set[str]] = {"alpha": set(), "bravo": set()}
    for line in result.stdout.lines:
        found = re.search(r"\[(gw\d)\].*(PASSED|SKIPPED).*\[(alpha|bravo)\]", line)
        if found:
            workers[found.group(3)].add(found.group(1))
    assert all(len(used) == 1 for used in workers.values()), workers


def test_a_failed_test_does_not_cascade_into_the_next(inner_lab):
    inner_lab.makepyfile(
        test_cascade="""
def test_breaks_the_board(board):
    board.power.off()
    raise AssertionError("left the board off")

def test_next_finds_it_running(board):
    assert board.power.is_on()
    board.console.sendline("version")
    board.console.expect(r"firmware version: \\S+\\r?\\n", timeout=3)
"""
    )
    result = inner_lab.runpytest("--board", "alpha", "test_cascade.py")
    result.assert_outcomes(passed=1, failed=1)
    log = next((inner_lab.path / ".rig" / "logs").glob("*/alpha.console.log")).read_text()
    assert "recovering after a failed test" in log


def test_a_banner_that_never_appears_at_setup_names_its_key_and_shows_what_came(inner_lab):
    words = "    console: {banner: 'Booted v(?P<version>\\S+)', boot_timeout_s: 0.3}\n"
    boards = TWO_BOARDS.replace("    double: {firmware_version: 1.1.0}\n",
                                "    double: {firmware_version: 1.1.0}\n" + words)  # fmt: skip
    written = inner_lab.makefile(".yaml", boards=boards).read_text().splitlines()
    line = written.index(words.rstrip("\n")) + 1
    result = inner_lab.runpytest("--board", "alpha", "-k", "boots")
    result.assert_outcomes(errors=1, deselected=3)
    text = result.stdout.str()
    assert "first boot of alpha failed on all 2 attempts" in text
    result.stdout.fnmatch_lines(
        [
            f"*attempt 2: *boards.yaml:{line}: boards.alpha.console.banner: alpha printed no line "
            r"matching 'Booted v(?P<version>\S+)' within 0.3 s",
            "*last lines received:",
            "*| firmware version: 1.1.0",
            "*what to do: if these lines are its boot, set boards.alpha.console.banner*",
        ]
    )
    assert "Traceback" not in text and "During handling" not in text
