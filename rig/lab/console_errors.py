"""Console waits that failed on a pattern from boards.yaml, told with the key's FILE:LINE.

On a new bench a banner or version answer that never comes is most often a pattern that does not
fit the firmware's wording, so the message names the key and its line, shows the pattern and the
lines that did arrive, and says which of the two to fix.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

from rig import safe_yaml
from rig.instruments.console import ConsoleTimeout
from rig.lab.console_config import ConsoleConfig
from rig.lab.yaml_source import YamlSource, dotted

E = TypeVar("E", bound=ConsoleTimeout)


class BannerTimeout(ConsoleTimeout):
    """The boot banner (`console.banner`) did not appear in time."""


class ReplyTimeout(ConsoleTimeout):
    """The answer to a console command (`console.version_pattern`) did not appear in time."""


def key_site(boards_file: Path | None, board: str, key: str) -> str:
    """`boards.yaml:14: boards.bench-3.console.banner`; a key left to its default is placed at
    the board (or its console section) and says so."""
    loc = ("boards", board, "console", key)
    name = dotted(loc)
    if boards_file is None:
        return name
    try:
        source = YamlSource.read(boards_file)
    except safe_yaml.YamlFileError:  # changed or gone since it was loaded: no line to give
        return f"{_shown(boards_file)}: {name}"
    default = "" if source.sets(loc) else " (not set: the default)"
    return f"{_shown(boards_file)}:{source.line_of(loc)}: {name}{default}"


def banner_timeout(
    board: str, console: ConsoleConfig, boards_file: Path | None, waited: ConsoleTimeout
) -> BannerTimeout:
    """The error for a boot banner that never came."""
    key = f"boards.{board}.console"
    if waited.tail:
        todo = (
            f"if these lines are its boot, set {key}.banner to a regular expression that "
            "matches one of them, with (?P<version>...) around the firmware version; a slower "
            f"boot needs a longer {key}.boot_timeout_s"
        )
    elif console.port is None:  # the double's console: only its power can keep it silent
        todo = f"nothing came at all: check the board is powered (boards.{board}.power, .double)"
    else:
        todo = (
            f"nothing came at all: check the board is powered and {key}.port and {key}.baud "
            f"({console.baud}) are its console's"
        )
    return _located(
        BannerTimeout,
        waited,
        f"{key_site(boards_file, board, 'banner')}: {board} printed no line matching "
        f"'{waited.pattern}' within {waited.timeout_s:g} s",
        todo,
    )


def reply_timeout(
    board: str, console: ConsoleConfig, boards_file: Path | None, waited: ConsoleTimeout
) -> ReplyTimeout:
    """The error for a version query nobody answered in the configured words."""
    key = f"boards.{board}.console"
    command = key_site(boards_file, board, "version_command")
    if waited.tail:
        todo = (
            f"if one of these lines is the answer, set {key}.version_pattern to a regular "
            "expression that matches it, with (?P<version>...) around the version; if they "
            f"say the command is unknown, set {key}.version_command ({command})"
        )
    else:
        todo = (
            f"nothing came at all: is the board on and running, and is "
            f"{console.version_command!r} a command its firmware knows ({command})?"
        )
    return _located(
        ReplyTimeout,
        waited,
        f"{key_site(boards_file, board, 'version_pattern')}: {board} answered "
        f"{console.version_command!r} with no line matching '{waited.pattern}' within "
        f"{waited.timeout_s:g} s",
        todo,
    )


def _located(kind: type[E], waited: ConsoleTimeout, headline: str, todo: str) -> E:
    lines = "\n".join(f"    | {line}" for line in waited.tail) or "    (nothing received)"
    message = (
        f"{headline}\n  last lines received:\n{lines}\n  what to do: {todo}\n"
        f"  full log: {waited.log_path or '(no log file)'}"
    )
    return kind(
        message,
        pattern=waited.pattern,
        timeout_s=waited.timeout_s,
        tail=waited.tail,
        log_path=waited.log_path,
    )


def _shown(path: Path) -> str:
    """The boards file as a user would type it: relative when it is under the working folder."""
    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative
