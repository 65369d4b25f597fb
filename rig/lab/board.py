"""A board as tests see it: its name, its inventory entry, and the drivers for its parts."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rig.instruments.console import Console
from rig.instruments.power import PowerSupply
from rig.lab.inventory import BoardConfig


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
    firmware: str | None = None  # the version the last banner showed
    last_boot_s: float | None = None  # power on -> banner, at the last boot()

    @property
    def device_id(self) -> str:
        """The board's id at the OTA service (boards.yaml device_id, else its name)."""
        return self.config.device_id or self.name

    @property
    def capabilities(self) -> frozenset[str]:
        return self.config.capabilities

    @property
    def banner(self) -> re.Pattern[str]:
        return re.compile(self.config.console.banner)

    def boot(self, off_s: float | None = None, timeout_s: float | None = None) -> str:
        """Power-cycle and wait for the boot banner; returns the firmware version it prints."""
        self.power.off()
        time.sleep(self.power.off_s if off_s is None else off_s)  # let the rails drain
        self.console.discard()  # a banner still unread from before must not pass for this boot
        started = time.monotonic()
        self.power.on()
        version = self.wait_for_banner(timeout_s)
        self.last_boot_s = time.monotonic() - started
        if self.record is not None:
            self.record("boot_time", self.last_boot_s, unit="s", source="board")
        return version

    def wait_for_banner(self, timeout_s: float | None = None) -> str:
        timeout = timeout_s or self.config.console.boot_timeout_s
        match = self.console.expect(self.banner, timeout=timeout)
        groups = match.groupdict()
        self.firmware = groups.get("version") or self.firmware
        return groups.get("version") or match.group(0)
