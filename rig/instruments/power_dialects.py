"""SCPI dialects of the power supplies rig can drive, as data.

A dialect is the handful of command templates that differ between vendors; the driver in
`rig.instruments.power` fills them in. Keeping them here as plain strings lets the inventory
validate a board's `power.model` without importing any driver, and lets a new vendor be added in
one place. Templates take `{ch}` (the channel number) and `{value}`."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Dialect:
    """Command templates for one family of supplies."""

    select: str | None  # sent before channel-less commands; None when every command names it
    output: str  # takes {ch} and {value} ON/OFF
    output_query: str
    volts: str
    volts_query: str
    amps: str
    amps_query: str
    measure_volts: str
    measure_amps: str
    on_reply: tuple[str, ...] = ("1", "ON")


GENERIC = Dialect(
    select="INST:NSEL {ch}",
    output="OUTP {value}",
    output_query="OUTP?",
    volts="VOLT {value:.3f}",
    volts_query="VOLT?",
    amps="CURR {value:.4f}",
    amps_query="CURR?",
    measure_volts="MEAS:VOLT?",
    measure_amps="MEAS:CURR?",
)

RIGOL_DP800 = Dialect(
    select=None,
    output=":OUTP CH{ch},{value}",
    output_query=":OUTP? CH{ch}",
    volts=":SOUR{ch}:VOLT {value:.3f}",
    volts_query=":SOUR{ch}:VOLT?",
    amps=":SOUR{ch}:CURR {value:.4f}",
    amps_query=":SOUR{ch}:CURR?",
    measure_volts=":MEAS:VOLT? CH{ch}",
    measure_amps=":MEAS:CURR? CH{ch}",
)

DIALECTS: dict[str, Dialect] = {
    "generic": GENERIC,
    "rigol-dp832": RIGOL_DP800,
    "rigol-dp831": RIGOL_DP800,
    "rigol-dp821": RIGOL_DP800,
}
