"""The walking skeleton on any board: power it through VISA, read it on its console."""

import re

import pytest

from rig import ConsoleTimeout


@pytest.mark.requires("power", "console")
def test_power_cycle_shows_banner_with_version(board):
    version = board.boot(timeout_s=5)
    assert "version" in board.banner.groupindex, (
        f"boards.{board.name}.console.banner has no (?P<version>...) group: "
        "the banner names no firmware version"
    )
    assert re.fullmatch(r"[\w.+-]+", version), version  # a whole version, not a fragment


@pytest.mark.requires("power", "current")
def test_current_follows_the_output(board):
    board.boot(timeout_s=5)
    on_amps = board.power.measure_current()
    board.power.off()
    off_amps = board.power.measure_current()
    assert board.power.is_on() is False
    assert on_amps > 0.001, f"{on_amps * 1000:.2f} mA drawn with the output on"
    assert off_amps < 0.0005, f"{off_amps * 1000:.3f} mA drawn with the output off"
    assert on_amps > 10 * max(off_amps, 1e-6)


@pytest.mark.requires("power", "console")
def test_board_is_silent_when_off(board):
    board.boot(timeout_s=5)
    board.power.off()
    with pytest.raises(ConsoleTimeout):
        board.query_version(timeout_s=0.5)


@pytest.mark.requires("console")
def test_version_command_round_trip(board):
    banner_version = board.boot(timeout_s=5)
    assert board.query_version(timeout_s=3) == banner_version
