"""What one emulated board looks like, as plain data.

The double builds a power supply, an SCPI server and an MCU console from each spec. Keeping the
description frozen and separate from the running parts lets the inventory, the CLI and the tests
describe a board without starting anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rig.errors import RigError

#: Power-supply dialects the double can speak; the names match `power.model` in boards.yaml.
MODELS = ("generic", "rigol-dp832")
CHANNELS = (1, 2, 3)


class DoubleError(RigError):
    """The board double cannot be built or started as asked."""


@dataclass(frozen=True)
class EmulatedBoardSpec:
    """One emulated board: its power-supply dialect and channel, and how its MCU behaves."""

    name: str
    model: str = "generic"  # which SCPI dialect the emulated power supply speaks
    channel: int = 1  # which PSU channel powers the board (1..3)
    firmware_version: str = "1.0.0"
    device_type: str = "blinky"
    min_volts: float = 3.0  # below this the board browns out (does not boot)
    idle_amps: float = 0.012  # draw when booted and idle
    boot_amps: float = 0.045  # draw during boot
    boot_s: float = 0.05  # power-on -> banner
    state_dir: Path | None = None  # where the MCU's flash and the link capture live
    link_baud: int = 115200  # the ASR⇆MCU UART, as the profile configures it
    link_speed: str = "fast"  # "fast": unpaced (CI); "paced": bytes take the UART's time
    slot_bytes: int = 64 * 1024  # the MCU's flash slot (rig.image.MCU_SLOT_BYTES)

    def __post_init__(self) -> None:
        where = f"emulated board {self.name!r}"
        if not self.name or any(c.isspace() for c in self.name):
            raise DoubleError(f"emulated board name {self.name!r} must be non-empty, no spaces")
        if self.model not in MODELS:
            raise DoubleError(
                f"{where}: power model {self.model!r} is not emulated; use one of {MODELS}"
            )
        if self.channel not in CHANNELS:
            raise DoubleError(f"{where}: channel {self.channel} is not one of {CHANNELS}")
        if self.link_speed not in ("fast", "paced"):
            raise DoubleError(f"{where}: link speed {self.link_speed!r} is not fast or paced")
        for field in ("min_volts", "idle_amps", "boot_amps", "boot_s"):
            if getattr(self, field) < 0:
                raise DoubleError(f"{where}: {field} must not be negative")
