"""A board's console words come from boards.yaml: the banner, the version query and its answer.

Run against the board double through a real Lab (pty console, SCPI supply): the double's own
wording stands in for a real board's, reached only through the configured keys.
"""

from pathlib import Path

import pytest

from rig.instruments.console import ConsoleTimeout
from rig.lab import inventory
from rig.lab.console_errors import BannerTimeout, ReplyTimeout
from rig.lab.setup import Lab

# Each board reads the double's console in other words than the defaults.
BOARDS = r"""boards:
  own-words:
    kind: emulated
    device_type: blinky
    power: {off_s: 0.05}
    double: {firmware_version: 2.4.1}
    console:
      banner: 'board: (?P<version>\S+)  device_type'
      version_command: status
      version_pattern: 'uptime_ms: (?P<version>\d+)\r?\n'
  wrong-banner:
    kind: emulated
    device_type: blinky
    power: {off_s: 0.05}
    double: {firmware_version: 1.1.0}
    console:
      boot_timeout_s: 0.5
      banner: 'App v(?P<version>\S+)\r?\n'
      version_command: versoin
  silent:
    kind: emulated
    device_type: blinky
    power: {off_s: 0.05}
    double: {min_volts: 5.0}
"""


def line_of(text: str, words: str, after: str = "") -> int:
    """The 1-based line of `words` in `text` (after the line holding `after`), so the tests say
    which line, not a number."""
    start = line_of(text, after) if after else 0
    lines = enumerate(text.splitlines(), 1)
    return next(n for n, line in lines if n > start and words in line)


@pytest.fixture
def temp_lab(tmp_path):
    path = tmp_path / "boards.yaml"
    path.write_text(BOARDS)
    with Lab(
        inventory.load(path),
        log_dir=tmp_path / "logs",
        state_dir=tmp_path / "state",
        lock_dir=tmp_path / "locks",
    ) as temp_lab:
        yield temp_lab


def test_banner_and_version_query_use_the_configured_words(temp_lab):
    board = temp_lab.board("own-words")
    assert board.boot(timeout_s=5) == "own-words"  # the banner's group, as configured
    first = board.query_version()  # `status` answered with `uptime_ms: N`
    assert first.isdigit() and board.firmware == first
    assert int(board.query_version()) >= int(first)  # a fresh answer each time, not a stale one


def test_default_words_are_the_doubles(tmp_path):
    path = tmp_path / "boards.yaml"
    path.write_text("boards:\n  plain: {kind: emulated, device_type: blinky}\n")
    with Lab(inventory.load(path), log_dir=tmp_path / "logs", state_dir=tmp_path / "state",
             lock_dir=tmp_path / "locks") as temp_lab:  # fmt: skip
        board = temp_lab.board("plain")
        assert board.boot(timeout_s=5) == "1.0.0"
        assert board.query_version(timeout_s=3) == "1.0.0"


def test_banner_that_never_matches_names_its_key_line_and_the_lines_received(temp_lab):
    board = temp_lab.board("wrong-banner")
    with pytest.raises(BannerTimeout) as caught:
        board.boot()
    message = str(caught.value)
    path = board.boards_file
    assert isinstance(caught.value, ConsoleTimeout)  # tests catching ConsoleTimeout still do
    first = message.splitlines()[0]
    assert first.startswith(
        f"{path}:{line_of(BOARDS, 'App v')}: boards.wrong-banner.console.banner: "
    ), first
    assert (
        r"wrong-banner printed no line matching 'App v(?P<version>\S+)\r?\n' within 0.5 s" in first
    )
    assert "    | firmware version: 1.1.0" in message  # what did arrive
    assert (
        "what to do: if these lines are its boot, set boards.wrong-banner.console.banner" in message
    )
    assert "wrong-banner.console.log" in message
    assert caught.value.tail and caught.value.timeout_s == 0.5


def test_a_defaulted_banner_is_placed_at_the_board_and_nothing_received_says_so(temp_lab):
    board = temp_lab.board("silent")  # below its brown-out voltage: it never prints a thing
    with pytest.raises(BannerTimeout) as caught:
        board.wait_for_banner(timeout_s=0.3)
    message = str(caught.value)
    site = f"{board.boards_file}:{line_of(BOARDS, 'silent:')}: boards.silent.console.banner"
    assert message.startswith(f"{site} (not set: the default): silent printed no line"), message
    assert "(nothing received)" in message
    assert "nothing came at all: check the board is powered" in message


def test_an_unanswered_version_query_names_both_keys(temp_lab):
    board = temp_lab.board("wrong-banner")
    with pytest.raises(ConsoleTimeout):
        board.boot()
    board.console.expect(r"ready\r?\n", timeout=5)  # the double did boot, in its own words
    with pytest.raises(ReplyTimeout) as caught:
        board.query_version(timeout_s=0.5)
    message = str(caught.value)
    # the pattern is left to its default: placed at the board's console section
    console_line = line_of(BOARDS, "console:", after="wrong-banner:")
    assert message.startswith(
        f"{board.boards_file}:{console_line}: "
        "boards.wrong-banner.console.version_pattern (not set: the default): "
    ), message
    assert "wrong-banner answered 'versoin' with no line matching" in message
    assert "    | unknown command: versoin" in message
    command_line = line_of(BOARDS, "version_command: versoin")
    assert f"{board.boards_file}:{command_line}: boards.wrong-banner.console.version_command" in (
        message
    )


def test_the_boards_file_of_a_board_is_the_inventorys(temp_lab):
    assert temp_lab.board("own-words").boards_file == Path(temp_lab.inventory.path)
