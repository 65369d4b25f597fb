"""boards.yaml `console:`: the MCU's debug UART and the words a test reads and types on it."""

from __future__ import annotations

import re

from pydantic import (
    Field,
    field_validator,
)

from rig.lab.strict import Strict

DEFAULT_BANNER = r"firmware version: (?P<version>\S+)\r?\n"  # to the line end: never half a version
# The double answers `version` with the same line its banner shows; a real board says its own.
DEFAULT_VERSION_COMMAND = "version"
DEFAULT_VERSION_PATTERN = DEFAULT_BANNER
UART_BAUDS = (4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)
LINK_BAUDS = (4800, 9600, 38400, 115200)  # what an Afero profile's UART config allows


class ConsoleConfig(Strict):
    """The MCU debug UART (any pyserial URL: device path, socket://, rfc2217://) and the words
    its firmware uses. Tests read and type only these, so a real board with its own wording runs
    the same suite; the defaults are the double's."""

    port: str | None = None
    baud: int = 115200
    banner: str = DEFAULT_BANNER  # a finished boot; a `version` group names the firmware
    boot_timeout_s: float = Field(10.0, gt=0, le=600)
    version_command: str = DEFAULT_VERSION_COMMAND  # typed to ask the running firmware
    version_pattern: str = DEFAULT_VERSION_PATTERN  # its answer, with a `version` group
    reply_timeout_s: float = Field(5.0, gt=0, le=600)  # how long an answer may take

    @field_validator("baud")
    @classmethod
    def _standard_baud(cls, value: int) -> int:
        if value not in UART_BAUDS:
            raise ValueError(
                f"{value} is not a standard baud rate ({', '.join(map(str, UART_BAUDS))})"
            )
        return value

    @field_validator("banner")
    @classmethod
    def _banner_compiles(cls, value: str) -> str:
        _console_pattern("banner", value, group=None)
        return value

    @field_validator("version_pattern")
    @classmethod
    def _version_pattern_has_version(cls, value: str) -> str:
        _console_pattern("version_pattern", value, group="version")
        return value

    @field_validator("version_command")
    @classmethod
    def _one_line_command(cls, value: str) -> str:
        if not value.strip() or any(c in value for c in "\r\n"):
            raise ValueError(
                f"{value!r} must be one non-empty line, e.g. 'version': rig ends it with \\r\\n"
            )
        return value


def _console_pattern(key: str, value: str, group: str | None) -> None:
    """A console pattern must compile, must not match before anything arrived, and must have
    the named group its reader takes the answer from."""
    try:
        compiled = re.compile(value)
    except re.error as exc:
        raise ValueError(f"{key} is not a valid regular expression: {exc}") from None
    if compiled.fullmatch(""):
        raise ValueError(
            f"'{value}' matches empty text, so it would match before the board printed "
            "anything: make it match a line the firmware prints"
        )
    if group is not None and group not in compiled.groupindex:
        raise ValueError(
            f"'{value}' has no (?P<{group}>...) group: wrap the part that is the "
            f"{group} in one, e.g. 'App v(?P<{group}>\\S+)\\r?\\n'"
        )
