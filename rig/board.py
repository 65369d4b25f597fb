"""A board as tests see it: its name, its inventory entry, and the drivers for its parts."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from rig.console import Console
from rig.inventory import BoardConfig
from rig.power import PowerSupply


@dataclass
class Board:
    """One board in use by this run; built by `rig.lab.Lab`, given to tests as `board`."""

    name: str
    config: BoardConfig
    power: PowerSupply
    console: Console
    tap: dict[str, str] | None = None  # sniffer ports {asr_to_mcu, mcu_to_asr[, capture]}
    control_port: int | None = None  # the double's control channel (emulated boards only)

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
        self.power.on()
        return self.wait_for_banner(timeout_s)

    def wait_for_banner(self, timeout_s: float | None = None) -> str:
        timeout = timeout_s or self.config.console.boot_timeout_s
        match = self.console.expect(self.banner, timeout=timeout)
        groups = match.groupdict()
        return groups.get("version") or match.group(0)
