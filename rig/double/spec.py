"""What one emulated board looks like, as plain data.

The double builds a power supply, an SCPI server and an MCU console from each spec. Keeping the
description frozen and separate from the running parts lets the inventory, the CLI and the tests
describe a board without starting anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rig.double.catalogue import parse_faults
from rig.double.errors import DoubleError

#: Power-supply dialects the double can speak; the names match `power.model` in boards.yaml.
MODELS = ("generic", "rigol-dp832")
CHANNELS = (1, 2, 3)


#: The stages of a handoff the ASR waits on, each with its own timeout.
STAGES = ("offer", "chunk", "verify", "version")


@dataclass
class AsrTimeouts:
    """Seconds each stage may take before the attempt ends as TIMED_OUT(stage).

    The defaults suit a real board on a 115200-baud UART. `version` is the exception to the
    rule: no version report after APPLY is an apply failure (DESIGN §3 step 6), so it ends as
    APPLY_FAILED ("no version report"). Mutable: the control channel changes them at run time
    and the running ASR reads them at each stage.
    """

    offer: float = 5.0  # BEGIN → the MCU's accept/decline
    chunk: float = 5.0  # one chunk (1302) → the MCU's next offset
    verify: float = 10.0  # last chunk → VERIFY_SIGNATURE
    version: float = 10.0  # APPLY → the version attribute
    checkin_s: float = 0.2  # least time between two check-ins (an idle ASR long-polls)

    def update(self, changes: Mapping[str, Any]) -> None:
        """Set some of them; DoubleError (and nothing changed) if any is unknown or not > 0."""
        known = (*STAGES, "checkin_s")
        for name, value in changes.items():
            if name not in known:
                raise DoubleError(f"no stage timeout {name!r}; the stages are {', '.join(known)}")
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise DoubleError(f"stage timeout {name} must be a number of seconds above 0, "
                                  f"got {value!r}")  # fmt: skip
        for name, value in changes.items():
            setattr(self, name, float(value))

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


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
    flash_write_amps: float = 0.018  # extra draw while the MCU receives an OTA image
    boot_s: float = 0.05  # power-on -> banner
    state_dir: Path | None = None  # where the MCU's flash and the link capture live
    link_baud: int = 115200  # the ASR⇆MCU UART, as the profile configures it
    link_speed: str = "fast"  # "fast": unpaced (CI); "paced": bytes take the UART's time
    slot_bytes: int = 64 * 1024  # the MCU's flash slot (rig.image.MCU_SLOT_BYTES)
    # The size of the MCU's 1302 attribute (its profile's otaAttributeSize): the largest chunk
    # it takes is 4 bytes less. 253 on the classic module; Modulo-2 defaults to 2046.
    ota_attribute_size: int = 253
    # Stage timeouts of its ASR that differ from AsrTimeouts' defaults, e.g. {"chunk": 1.0}.
    timeouts: Mapping[str, float] = field(default_factory=dict, hash=False)
    # Faults active from power-on (the baseline `clear_faults` returns to): rig.double.faults.
    faults: tuple[Mapping[str, Any], ...] = field(default=(), hash=False)
    # A real MCU on the ASR's UART instead of the emulated one: a serial device, a pyserial
    # URL, or "pty" (the double makes a pseudo-terminal and announces its other end).
    external_mcu: str | None = None
    # The TCP port its supply's SCPI server listens on; 0: any free one (announced).
    scpi_port: int = 0

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
        if not 0 <= self.scpi_port <= 65535:
            raise DoubleError(f"{where}: scpi_port {self.scpi_port} is not a TCP port (0: any)")
        for name in ("min_volts", "idle_amps", "boot_amps", "flash_write_amps", "boot_s"):
            if getattr(self, name) < 0:
                raise DoubleError(f"{where}: {name} must not be negative")
        try:
            AsrTimeouts().update(self.timeouts)
            parse_faults(self.faults)
        except DoubleError as exc:
            raise DoubleError(f"{where}: {exc}") from None
