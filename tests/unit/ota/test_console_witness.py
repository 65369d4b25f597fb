"""The console witness of an OTA reads the board's own banner (boards.yaml `console.banner`),
and its `version` group must be the expected version, not merely contain it."""

import pytest

from rig.lab import inventory
from rig.lab.setup import Lab
from rig.ota.witnesses import WitnessError, cross_check

BOARDS = r"""boards:
  plain:
    kind: emulated
    device_type: blinky
    power: {off_s: 0.05}
    double: {firmware_version: 1.1.0}
  own-words:
    kind: emulated
    device_type: blinky
    power: {off_s: 0.05}
    double: {firmware_version: 1.1.0}
    console: {banner: 'board: (?P<version>\S+)  device_type'}
  external:
    kind: emulated
    device_type: blinky
    power: {off_s: 0.05}
    asr: {emulated: true, uart: pty}
"""
SUCCEEDED = {
    "id": "d-1",
    "state": "SUCCEEDED",
    "versionNumber": "7",
    "history": [{"state": "APPLYING"}, {"state": "SUCCEEDED"}],
}


@pytest.fixture
def temp_lab(tmp_path):
    path = tmp_path / "boards.yaml"
    path.write_text(BOARDS)
    with Lab(inventory.load(path), log_dir=tmp_path / "logs", state_dir=tmp_path / "state",
             lock_dir=tmp_path / "locks") as temp_lab:  # fmt: skip
        yield temp_lab


def rebooted(temp_lab, name):
    """The board, power-cycled with its banner left unread for the witness."""
    board = temp_lab.board(name)
    board.power.off()
    board.console.discard()
    board.power.on()
    return board


def witness(board, expected: str):
    return cross_check(SUCCEEDED, {2101: "7"}, image_type=101, expected_version=expected,
                       board=board, console_timeout_s=3)  # fmt: skip


def test_the_banner_showing_the_version_agrees(temp_lab):
    views = witness(rebooted(temp_lab, "plain"), "1.1.0")
    assert views.console == "banner with version 1.1.0: True"


def test_a_version_the_banner_only_contains_is_a_disagreement(temp_lab):
    with pytest.raises(WitnessError) as caught:
        witness(rebooted(temp_lab, "plain"), "1.1")  # the banner says 1.1.0
    assert "console: banner with version 1.1: False" in str(caught.value)


def test_the_board_s_own_banner_is_the_one_waited_for(temp_lab):
    # its banner's `version` group is the board line's name: proof the configured words are read
    views = witness(rebooted(temp_lab, "own-words"), "own-words")
    assert views.console == "banner with version own-words: True"


def test_a_board_whose_mcu_is_external_has_no_console_witness(temp_lab):
    """The double's console belongs to its emulated MCU, not to the real one behind asr.uart."""
    views = witness(temp_lab.board("external"), "9.9.9")  # no banner shows it: not asked
    assert views.console == "not checked: the board has no console of its MCU"
