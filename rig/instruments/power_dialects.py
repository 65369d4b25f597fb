"""The command dialects of the bench supplies rig can drive, as data.

A dialect is what differs between vendors: the command templates (select a channel, switch it,
set and read back volts and amps, measure), how a reply is read (a number behind a prefix, a
state as 1/ON or as a bit of a status word) and how the supply reports a refused command. The
driver in `rig.instruments.power` only fills them in, so a new supply is data: a built-in here,
or a `power.dialect` written in boards.yaml (validated by `rig.lab.inventory` with the same
checks, `template_problem` and `Dialect.__post_init__`).

Templates take `{ch}` (the channel number); `volts` and `amps` also take `{value}`, a float that
may carry a format spec (`{value:.3f}`). Each built-in names the manual it was written from, and
tests/unit/instruments/test_power_dialects.py drives it against a pyvisa-sim definition of that
instrument in fixtures/instruments/.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, fields, replace

#: Placeholders each template may use. A template not listed takes none.
PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "select": ("ch",),
    "output_on": ("ch",),
    "output_off": ("ch",),
    "output_query": ("ch",),
    "volts": ("ch", "value"),
    "volts_query": ("ch",),
    "amps": ("ch", "value"),
    "amps_query": ("ch",),
    "measure_volts": ("ch",),
    "measure_amps": ("ch",),
    "error_query": (),
}
_MEANING = {"ch": "{ch} (the channel number)", "value": "{value} (the number to set)"}

#: The whole reply is the number, as SCPI supplies answer.
PLAIN_NUMBER = r"\s*(?P<value>\S+)\s*"
#: The first field of a SCPI `SYST:ERR?` reply (`0,"No error"`, `+0,...`, `0  No Error`) or
#: a bare error register of 0 means nothing went wrong.
NO_ERROR = r"\s*\+?0\b"


def template_problem(field: str, template: str) -> str | None:
    """What is wrong with `template` as the command `field`, or None if it can be filled in."""
    allowed = PLACEHOLDERS[field]
    may_use = " and ".join(_MEANING[name] for name in allowed) or "no placeholders"
    if not template.strip():
        return "the command is empty"
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        return f"{template!r} does not parse ({exc}); write a literal brace as {{{{ or }}}}"
    for name in names:
        if name not in allowed:
            shown = "{" + name + "}" if name else "{} (a placeholder needs a name)"
            return f"unknown placeholder {shown} in {template!r}: it may use {may_use}"
    if "value" in allowed and "value" not in names:
        return f"{template!r} lacks {{value}}, the number to set"
    try:
        template.format(ch=1, value=1.25)
    except (ValueError, TypeError) as exc:
        return f"{template!r} cannot be filled in: {exc}"
    return None


def pattern_problem(pattern: str, group: str | None = None) -> str | None:
    """What is wrong with a regular expression of a dialect, or None."""
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        return f"'{pattern}' is not a valid regular expression: {exc}"
    if group and group not in compiled.groupindex:
        return f"'{pattern}' needs a group (?P<{group}>...) around the number"
    return None


@dataclass(frozen=True)
class Dialect:
    """How to drive one family of supplies. Invalid data raises ValueError when built."""

    select: str | None  # sent before commands that do not name the channel; None if all do
    output_on: tuple[str, ...]  # sent in order to switch the channel on
    output_off: tuple[str, ...]
    output_query: tuple[str, ...]  # the output is on when every one answers on; () = cannot tell
    volts: str
    volts_query: str  # the set point, not a measurement
    amps: str  # the current limit
    amps_query: str
    measure_volts: str
    measure_amps: str
    on_reply: tuple[str, ...] = ("1", "ON")  # compared without case
    off_reply: tuple[str, ...] = ("0", "OFF")
    # When set, output_query answers a status word (decimal, or hex with 0x) and the output of
    # channel N is on when bit output_bits[N-1] is set.
    output_bits: tuple[int, ...] = ()
    number: str = PLAIN_NUMBER  # a regex matching a whole numeric reply; group `value` is read
    error_query: str | None = "SYST:ERR?"  # None: the supply cannot say it refused a command
    no_error: str = NO_ERROR  # a regex an error_query reply starts with when all is well
    idn: str | None = None  # a regex its *IDN? answer contains; None accepts any instrument
    channels: int = 4

    def __post_init__(self) -> None:
        problems = [
            (field, template_problem(field, template))
            for field in PLACEHOLDERS
            for template in _commands(getattr(self, field))
        ]
        problems += [(f, "give at least one command") for f in ("output_on", "output_off")
                     if not getattr(self, f)]  # fmt: skip
        problems += [("number", pattern_problem(self.number, group="value"))]
        problems += [(f, pattern_problem(getattr(self, f))) for f in ("no_error", "idn")
                     if getattr(self, f) is not None]  # fmt: skip
        if self.output_query and not self.output_bits and not self.on_reply:
            problems.append(("on_reply", "give the replies that mean the output is on"))
        if not 1 <= self.channels <= 4:
            problems.append(("channels", f"{self.channels} is not between 1 and 4"))
        if self.output_bits and len(self.output_bits) < self.channels:
            named = f"{list(self.output_bits)} names the bit of {len(self.output_bits)} channel(s)"
            problems.append(("output_bits", f"{named}, but there are {self.channels}"))
        if any(not 0 <= bit <= 63 for bit in self.output_bits):
            problems.append(("output_bits", f"{list(self.output_bits)}: bits are 0..63"))
        found = [f"{field}: {problem}" for field, problem in problems if problem]
        if found:
            raise ValueError("; ".join(found))

    def read_number(self, reply: str) -> float | None:
        """The number in a numeric reply, or None if the reply is not one."""
        found = re.fullmatch(self.number, reply)
        try:
            return float(found.group("value")) if found else None
        except ValueError:
            return None

    def read_state(self, reply: str, channel: int) -> bool | None:
        """Whether one output_query reply says on; None if it is no state reply at all."""
        if self.output_bits:
            try:
                word = int(reply.strip(), 0)
            except ValueError:
                return None
            return bool(word >> self.output_bits[channel - 1] & 1)
        said = reply.strip().upper()
        if said in (r.upper() for r in self.on_reply):
            return True
        if said in (r.upper() for r in self.off_reply):
            return False
        return None

    def no_error_in(self, reply: str) -> bool:
        """Whether an error_query reply says nothing went wrong."""
        return re.match(self.no_error, reply) is not None


#: Fields a boards.yaml dialect may set (all of them).
FIELDS = tuple(f.name for f in fields(Dialect))


def _commands(value: str | tuple[str, ...] | None) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value or ())


# A plain SCPI supply selecting its channel with INSTrument:NSELect (SCPI-99 vol. 2, INSTrument
# and OUTPut subsystems). It is what the board double and generic_psu.yaml speak.
GENERIC = Dialect(
    select="INST:NSEL {ch}",
    output_on=("OUTP ON",),
    output_off=("OUTP OFF",),
    output_query=("OUTP?",),
    volts="VOLT {value:.3f}",
    volts_query="VOLT?",
    amps="CURR {value:.4f}",
    amps_query="CURR?",
    measure_volts="MEAS:VOLT?",
    measure_amps="MEAS:CURR?",
)

# Rigol "DP800 Series Programming Guide": :OUTPut[:STATe] [CH<n>,]{ON|OFF}, :OUTPut[:STATe]?
# [CH<n>] (answers ON/OFF), :SOURce<n>:VOLTage / :CURRent, :MEASure:VOLTage? / :CURRent? CH<n>.
RIGOL_DP800 = Dialect(
    select=None,
    output_on=(":OUTP CH{ch},ON",),
    output_off=(":OUTP CH{ch},OFF",),
    output_query=(":OUTP? CH{ch}",),
    volts=":SOUR{ch}:VOLT {value:.3f}",
    volts_query=":SOUR{ch}:VOLT?",
    amps=":SOUR{ch}:CURR {value:.4f}",
    amps_query=":SOUR{ch}:CURR?",
    measure_volts=":MEAS:VOLT? CH{ch}",
    measure_amps=":MEAS:CURR? CH{ch}",
    idn=r"RIGOL TECHNOLOGIES,DP8",
    channels=3,
)

# Keysight "E36300 Series Programmable DC Power Supplies, Programming Guide" (SCPI command
# reference: OUTPut, SOURce VOLTage/CURRent, MEASure): every command takes a channel list
# `(@n)`, so nothing depends on a selected channel; booleans are sent as 1/0 and read as 0/1.
KEYSIGHT_E36300 = Dialect(
    select=None,
    output_on=("OUTP 1,(@{ch})",),
    output_off=("OUTP 0,(@{ch})",),
    output_query=("OUTP? (@{ch})",),
    volts="VOLT {value:.3f},(@{ch})",
    volts_query="VOLT? (@{ch})",
    amps="CURR {value:.4f},(@{ch})",
    amps_query="CURR? (@{ch})",
    measure_volts="MEAS:VOLT? (@{ch})",
    measure_amps="MEAS:CURR? (@{ch})",
    idn=r"(?i)(keysight|agilent) technologies,(EDU|E)363[01]",
    channels=3,
)

# Agilent "E3631A Triple Output DC Power Supply User's Guide", chapter 4 (Remote Interface
# Reference: INSTrument:NSELect 1|2|3 = P6V|P25V|N25V, OUTPut[:STATe] {OFF|ON}, VOLTage,
# CURRent, MEASure:VOLTage?/CURRent?). OUTPut switches all three outputs at once on this model,
# and output 3 (N25V) takes negative volts, which rig never sends: use outputs 1 and 2.
AGILENT_E3631A = replace(
    GENERIC, idn=r"(?i)(hewlett-packard|agilent technologies|keysight technologies),E3631A",
    channels=3,
)  # fmt: skip

# Siglent "SPD3303X/SPD3303X-E Quick Start", remote control chapter (command reference:
# [{CH1|CH2}:]VOLTage/CURRent, OUTPut {CH1|CH2},{ON|OFF}, MEASure:VOLTage?/CURRent? CH<n>,
# SYSTem:ERRor?, SYSTem:STATus?). Its quirk: no query of an output's state. SYSTem:STATus?
# answers a hex word (e.g. 0x0224) whose bit 4 is CH1's output and bit 5 CH2's; CH3 is fixed.
SIGLENT_SPD3303X = Dialect(
    select=None,
    output_on=("OUTP CH{ch},ON",),
    output_off=("OUTP CH{ch},OFF",),
    output_query=("SYST:STAT?",),
    output_bits=(4, 5),
    volts="CH{ch}:VOLT {value:.3f}",
    volts_query="CH{ch}:VOLT?",
    amps="CH{ch}:CURR {value:.3f}",
    amps_query="CH{ch}:CURR?",
    measure_volts="MEAS:VOLT? CH{ch}",
    measure_amps="MEAS:CURR? CH{ch}",
    idn=r"(?i)siglent.*,SPD3303",
    channels=2,
)

# Rohde & Schwarz "R&S HMC804x Power Supply SCPI Programmers Manual" (INSTrument:NSELect,
# OUTPut:CHANnel[:STATe], OUTPut:MASTer[:STATe], SOURce VOLTage/CURRent, MEASure). A channel
# delivers power when it is active and the master output is on; switching off leaves the master
# alone, so the other channels keep their power.
RS_HMC804X = Dialect(
    select="INST:NSEL {ch}",
    output_on=("OUTP:CHAN 1", "OUTP:MAST 1"),
    output_off=("OUTP:CHAN 0",),
    output_query=("OUTP:CHAN?", "OUTP:MAST?"),
    volts="VOLT {value:.3f}",
    volts_query="VOLT?",
    amps="CURR {value:.4f}",
    amps_query="CURR?",
    measure_volts="MEAS:VOLT?",
    measure_amps="MEAS:CURR?",
    idn=r"(?i)(rohde&schwarz|hameg),HMC804[123]",
    channels=3,
)

# Rohde & Schwarz "R&S NGE100B Power Supply Series User Manual", remote control commands
# (INSTrument:NSELect, OUTPut:SELect, OUTPut:GENeral, SOURce VOLTage/CURRent, MEASure): the same
# model as the HMC804x with other names for channel and master switches.
RS_NGE100 = replace(
    RS_HMC804X,
    output_on=("OUTP:SEL 1", "OUTP:GEN 1"),
    output_off=("OUTP:SEL 0",),
    output_query=("OUTP:SEL?", "OUTP:GEN?"),
    idn=r"(?i)rohde&schwarz,NGE10[0-3]",
)

# Aim-TTi "CPX400DP PowerFlex Dual DC Power Supply Instruction Manual", remote commands (the MX
# and QPX manuals list the same ones): V<n>/I<n> <nrf> set, V<n>?/I<n>? answer "V1 3.300",
# V<n>O?/I<n>O? answer "3.300V"/"0.012A", OP<n> 1|0 and OP<n>? (1/0). Not SCPI: a refused
# setting shows in the Execution Error Register, EER? (0: none).
AIM_TTI = Dialect(
    select=None,
    output_on=("OP{ch} 1",),
    output_off=("OP{ch} 0",),
    output_query=("OP{ch}?",),
    volts="V{ch} {value:.3f}",
    volts_query="V{ch}?",
    amps="I{ch} {value:.3f}",
    amps_query="I{ch}?",
    measure_volts="V{ch}O?",
    measure_amps="I{ch}O?",
    number=r"\s*(?:[VI]\d+\s+)?(?P<value>[-+]?[0-9.]+(?:[eE][-+]?\d+)?)\s*[VA]?\s*",
    error_query="EER?",
    idn=r"(?i)(thurlby|\btti\b)",
    channels=4,
)


def _family(name: str, dialect: Dialect, models: dict[str, int]) -> dict[str, Dialect]:
    """The family under its own name, and each model of it with its number of channels."""
    return {name: dialect, **{m: replace(dialect, channels=n) for m, n in models.items()}}


#: Every `power.model` rig knows: the families' own names first, then model aliases.
DIALECTS: dict[str, Dialect] = {
    "generic": GENERIC,
    **_family("rigol-dp800", RIGOL_DP800, {
        "rigol-dp832": 3, "rigol-dp832a": 3, "rigol-dp831": 3, "rigol-dp831a": 3,
        "rigol-dp821": 2, "rigol-dp821a": 2, "rigol-dp811": 1, "rigol-dp811a": 1,
    }),
    **_family("keysight-e36300", KEYSIGHT_E36300, {
        "keysight-e36311a": 3, "keysight-e36312a": 3, "keysight-e36313a": 3,
        "keysight-edu36311a": 3,
    }),
    **_family("agilent-e3631a", AGILENT_E3631A, {"keysight-e3631a": 3}),
    **_family("siglent-spd3303x", SIGLENT_SPD3303X, {"siglent-spd3303x-e": 2}),
    **_family("rs-hmc804x", RS_HMC804X, {"rs-hmc8041": 1, "rs-hmc8042": 2, "rs-hmc8043": 3}),
    **_family("rs-nge100", RS_NGE100, {"rs-nge102b": 2, "rs-nge103b": 3}),
    **_family("aim-tti", AIM_TTI, {
        "aim-tti-cpx400dp": 2, "aim-tti-cpx400sp": 1, "aim-tti-qpx600dp": 2,
        "aim-tti-mx100tp": 3, "aim-tti-mx180tp": 3,
    }),
}  # fmt: skip

#: The family names, one per built-in dialect.
FAMILIES = ("generic", "rigol-dp800", "keysight-e36300", "agilent-e3631a", "siglent-spd3303x",
            "rs-hmc804x", "rs-nge100", "aim-tti")  # fmt: skip


def model_for(identity: str) -> str | None:
    """The built-in model an `*IDN?` answer names (its family if no model fits); else None."""
    said = identity.upper()

    def named(model: str) -> int:  # how much of the model's own name the answer holds
        parts = model.upper().split("-")
        return max((len(s) for i in range(1, len(parts)) if (s := "-".join(parts[i:])) in said),
                   default=0)  # fmt: skip

    fitting = [n for n, d in DIALECTS.items() if d.idn and re.search(d.idn, identity)]
    return max(fitting, key=named, default=None)
