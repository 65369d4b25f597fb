"""boards.yaml `boards.NAME:`: one board, assembled from its parts, and what it can do.

The parts with rules of their own have their own modules (`console_config`, `power_config`);
the smaller ones (sniffer tap, emulated ASR, link, the double's behaviour, limits) are here with
the board that holds them, and `rig.lab.inventory` gathers the boards into a lab.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from rig.double.catalogue import parse_fault
from rig.double.errors import FaultError
from rig.lab.console_config import ConsoleConfig
from rig.lab.power_config import PowerConfig
from rig.lab.strict import Name, Strict


class TapConfig(Strict):
    """The two ports of a sniffer on the ASR⇆MCU UART."""

    asr_to_mcu: str
    mcu_to_asr: str
    baud: int = 115200


class AsrConfig(Strict):
    """The ASR emulated by the double in front of the board's own MCU, with no Afero module:
    `uart` is the MCU's UART (a device, a pyserial URL, or `pty`: the double makes one and
    names it in `rig double --json`); the link's baud is `link.baud`."""

    emulated: Literal[True] = True
    uart: str = Field(min_length=1)


class LinkConfig(Strict):
    """The ASR⇆MCU UART as the profile configures it."""

    baud: Literal[4800, 9600, 38400, 115200] = 115200
    speed: Literal["fast", "paced"] = "fast"


class DoubleTimeouts(Strict):
    """Seconds each handoff stage may take on the emulated ASR (rig.double.spec.AsrTimeouts).

    A stage that runs out ends the attempt TIMED_OUT(stage); `version` (no version report after
    APPLY) ends it APPLY_FAILED, as DESIGN §3 says."""

    offer: float = Field(5.0, gt=0, le=3600)
    chunk: float = Field(5.0, gt=0, le=3600)
    verify: float = Field(10.0, gt=0, le=3600)
    version: float = Field(10.0, gt=0, le=3600)


def _known_fault(value: dict[str, Any]) -> dict[str, Any]:
    try:
        parse_fault(value)
    except FaultError as exc:
        raise ValueError(str(exc)) from None
    return value


class DoubleConfig(Strict):
    """How the board double behaves for an emulated board."""

    firmware_version: str = "1.0.0"
    min_volts: float = Field(3.0, gt=0)
    idle_amps: float = Field(0.012, ge=0)
    boot_amps: float = Field(0.045, ge=0)
    flash_write_amps: float = Field(0.018, ge=0)
    boot_s: float = Field(0.05, ge=0, le=30)
    timeouts: DoubleTimeouts = DoubleTimeouts()
    # Active from power-on, and what `clear_faults` returns to: [{name: line_noise, rate: 0.05}]
    faults: list[Annotated[dict[str, Any], AfterValidator(_known_fault)]] = []


class LimitConfig(Strict):
    """The accepted range of one measurement on this board (either side may be open)."""

    low: float | None = None
    high: float | None = None


class BoardConfig(Strict):
    """One board of the lab: where its parts are and what it is."""

    kind: Literal["real", "emulated"] = "real"
    host: str | None = None
    device_type: Name
    device_id: str | None = None
    profile: str | None = None
    console: ConsoleConfig = ConsoleConfig()
    tap: TapConfig | None = None
    power: PowerConfig | None = None
    link: LinkConfig = LinkConfig()
    double: DoubleConfig | None = None
    asr: AsrConfig | None = None
    tags: list[Name] = []
    # Limits of measurements on this board, e.g. {boot_time: {high: 2.0}}: they fill in the
    # limits a test's measure() call leaves open, and judge the built-in measurements.
    limits: dict[Name, LimitConfig] = {}

    def problems(self) -> list[tuple[tuple[str, ...], str]]:
        """Mistakes across fields: (field path within the board, what is wrong)."""
        found: list[tuple[tuple[str, ...], str]] = []
        resource = self.power.resource if self.power else None
        if self.kind == "real":
            if self.console.port is None:
                found.append(
                    (
                        ("console", "port"),
                        "required for a real board: a device path, "
                        "socket://host:port or rfc2217://host:port",
                    )
                )
            if resource is None:
                found.append(
                    (
                        ("power", "resource"),
                        "required for a real board, e.g. TCPIP0::psu-2.lab::5025::SOCKET",
                    )
                )
            if self.double is not None:
                found.append((("double",), "only applies to kind: emulated boards"))
            if self.asr is not None:
                why = "an emulated ASR runs in the double: use it on a kind: emulated board"
                found.append((("asr",), why))
        else:
            if self.console.port is not None:
                found.append(
                    (
                        ("console", "port"),
                        "an emulated board's console comes from the double: remove this line",
                    )
                )
            if resource is not None:
                found.append(
                    (
                        ("power", "resource"),
                        "an emulated board's supply comes from the double: remove this line",
                    )
                )
        return found

    @property
    def capabilities(self) -> frozenset[str]:
        """What tests may ask for with @pytest.mark.requires(...)."""
        caps = {"console"}
        if self.power is not None or self.kind == "emulated":
            caps |= {"power", "current"}
        if self.tap is not None or self.kind == "emulated":
            caps.add("tap")
        if self.kind == "emulated":
            caps |= {"emulated", "faults"}
        if self.asr is not None:  # the MCU is real: the double's console and MCU faults are not its
            caps.add("external_mcu")
            caps.discard("console")
        return frozenset(caps)
