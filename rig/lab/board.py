"""A board as tests see it: its name, its inventory entry, and the drivers for its parts."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rig.instruments.console import Console, ConsoleTimeout
from rig.lab.console_errors import banner_timeout, reply_timeout
from rig.lab.inventory import BoardConfig

if TYPE_CHECKING:  # pyvisa beneath it costs ~0.1 s: loaded by the Lab, beside the double
    from rig.instruments.power import PowerSupply


@dataclass
class Board:
    """One board in use by this run; built by `rig.lab.setup.Lab`, given to tests as `board`."""

    name: str
    config: BoardConfig
    power: PowerSupply
    console: Console
    tap: dict[str, str] | None = None  # sniffer ports {asr_to_mcu, mcu_to_asr[, capture]}
    control_port: int | None = None  # the double's control channel (emulated boards only)
    # Where built-in measurements go, as measure(name, value, unit=..., source=...): the plugin
    # points it at the running test's measurements; None outside a test.
    record: Callable[..., object] | None = field(default=None, repr=False)
    firmware: str | None = None  # the version it last showed (banner or version query)
    last_boot_s: float | None = None  # power on -> banner, at the last boot()
    boards_file: Path | None = None  # where `config` was read: errors name its keys' lines

    @property
    def device_id(self) -> str:
        """The board's id at the OTA service (boards.yaml device_id, else its name)."""
        return self.config.device_id or self.name

    @property
    def capabilities(self) -> frozenset[str]:
        return self.config.capabilities

    @property
    def banner(self) -> re.Pattern[str]:
        """What marks a finished boot (boards.yaml `console.banner`)."""
        return re.compile(self.config.console.banner)

    @property
    def version_pattern(self) -> re.Pattern[str]:
        """The answer to the version command (boards.yaml `console.version_pattern`)."""
        return re.compile(self.config.console.version_pattern)

    def boot(self, off_s: float | None = None, timeout_s: float | None = None) -> str:
        """Power-cycle and wait for the boot banner; returns the firmware version it prints."""
        self.power.off()
        self.power.drain(off_s)  # let the rails drain (counted from when they went off)
        self.console.discard()  # a banner still unread from before must not pass for this boot
        started = time.monotonic()
        self.power.on()
        version = self.wait_for_banner(timeout_s)
        self.last_boot_s = time.monotonic() - started
        if self.record is not None:
            self.record("boot_time", self.last_boot_s, unit="s", source="board")
        return version

    def wait_for_banner(self, timeout_s: float | None = None) -> str:
        """Wait for the banner; returns its `version` group (else the whole match). A banner that
        never comes is reported at its boards.yaml line with the lines that did."""
        timeout = timeout_s or self.config.console.boot_timeout_s
        try:
            match = self.console.expect(self.banner, timeout=timeout)
        except ConsoleTimeout as exc:
            raise banner_timeout(self.name, self.config.console, self.boards_file, exc) from None
        groups = match.groupdict()
        self.firmware = groups.get("version") or self.firmware
        return groups.get("version") or match.group(0)

    def query_version(self, timeout_s: float | None = None) -> str:
        """Ask the running firmware its version in the board's own words (boards.yaml
        `console.version_command` / `version_pattern`), so tests never spell the double's."""
        console = self.config.console
        self.console.discard()  # an earlier banner or answer must not answer for the firmware now
        self.console.sendline(console.version_command)
        try:
            match = self.console.expect(
                self.version_pattern, timeout=timeout_s or console.reply_timeout_s
            )
        except ConsoleTimeout as exc:
            raise reply_timeout(self.name, console, self.boards_file, exc) from None
        self.firmware = match.group("version")
        return self.firmware
