"""Each built-in power dialect drives a pyvisa-sim definition of its instrument.

The definitions in fixtures/instruments/ are written from the manuals' command syntax, not from
the dialects: a template that strays from its manual finds no command there, and these fail.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from rig.instruments.power import PowerError, PowerSupply
from rig.instruments.power_dialects import (
    DIALECTS,
    FAMILIES,
    GENERIC,
    RIGOL_DP800,
    Dialect,
    model_for,
    template_problem,
)

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "instruments"


@dataclass(frozen=True)
class Sim:
    """A simulated instrument and what it answers."""

    model: str
    file: str
    resource: str
    identity: str
    measured: dict[int, tuple[float, float]]  # channel -> (volts, amps) it reads
    shared_output: bool = False  # one output switch for all channels


SIMS = [
    Sim("rigol-dp832", "rigol_dp832.yaml", "TCPIP0::sim-dp832::5555::SOCKET",
        "RIGOL TECHNOLOGIES,DP832,", {1: (3.301, 0.0121), 2: (5.002, 0.0242)}),
    Sim("keysight-e36312a", "keysight_e36312a.yaml", "TCPIP0::sim-e36312a::5025::SOCKET",
        "Keysight Technologies,E36312A,", {1: (3.301, 0.0121), 2: (5.002, 0.0242)}),
    Sim("agilent-e3631a", "agilent_e3631a.yaml", "GPIB0::5::INSTR",
        "HEWLETT-PACKARD,E3631A,", {1: (3.301, 0.0121), 2: (3.301, 0.0121)}, shared_output=True),
    Sim("siglent-spd3303x-e", "siglent_spd3303x.yaml", "TCPIP0::sim-spd3303x::5025::SOCKET",
        "Siglent Technologies,SPD3303X-E,", {1: (3.301, 0.012), 2: (5.002, 0.024)}),
    Sim("rs-hmc8043", "rs_hmc8043.yaml", "TCPIP0::sim-hmc8043::5025::SOCKET",
        "Rohde&Schwarz,HMC8043,", {1: (3.301, 0.0121), 2: (3.301, 0.0121)}),
    Sim("rs-nge103b", "rs_nge103b.yaml", "TCPIP0::sim-nge103b::5025::SOCKET",
        "Rohde&Schwarz,NGE103B,", {1: (3.301, 0.0121), 2: (3.301, 0.0121)}),
    Sim("aim-tti-cpx400dp", "aim_tti_cpx400dp.yaml", "TCPIP0::sim-cpx400dp::9221::SOCKET",
        "THURLBY THANDAR,CPX400DP,", {1: (3.301, 0.012), 2: (5.002, 0.024)}),
]  # fmt: skip
BY_MODEL = {sim.model: sim for sim in SIMS}
SIGLENT = BY_MODEL["siglent-spd3303x-e"]


@pytest.fixture
def open_supply(tmp_path):
    """Open a supply on a fresh copy of a simulated instrument.

    pyvisa keeps one simulated instrument per definition file in a process, so each test copies
    the file: state left by one test can never make another pass."""
    opened: list[PowerSupply] = []

    def open_(sim: Sim, channel: int = 1, **options: object) -> PowerSupply:
        copy = tmp_path / sim.file
        if not copy.exists():
            shutil.copy(FIXTURES / sim.file, copy)
        options = {"model": sim.model, **options}
        psu = PowerSupply(sim.resource, channel=channel, visa_library=f"{copy}@sim",
                          timeout_s=0.3, name="bench-1", **options)  # type: ignore[arg-type]  # fmt: skip
        opened.append(psu)
        psu.open()
        return psu

    yield open_
    for psu in opened:
        psu.close()


def test_every_built_in_family_has_a_simulated_instrument():
    simulated = {replace(DIALECTS[sim.model], channels=1) for sim in SIMS}
    for family in FAMILIES:
        if family != "generic":  # generic_psu.yaml and the board double: test_power.py
            assert replace(DIALECTS[family], channels=1) in simulated, family
    for sim in SIMS:
        assert (FIXTURES / sim.file).is_file()


@pytest.mark.parametrize("sim", SIMS, ids=lambda s: s.model)
def test_identity_is_checked_and_names_the_model(sim, open_supply):
    psu = open_supply(sim)
    assert psu.identity.startswith(sim.identity)
    assert model_for(psu.identity) == sim.model


@pytest.mark.parametrize("sim", SIMS, ids=lambda s: s.model)
def test_set_points_round_trip_on_their_own_channel(sim, open_supply):
    first, second = open_supply(sim, channel=1), open_supply(sim, channel=2)
    first.configure(3.3, 0.25)
    second.configure(5.0, 0.5)
    assert first.volts_setting() == pytest.approx(3.3)
    assert first.current_limit() == pytest.approx(0.25)
    assert second.volts_setting() == pytest.approx(5.0)
    assert second.current_limit() == pytest.approx(0.5)


@pytest.mark.parametrize("sim", [s for s in SIMS if s is not SIGLENT], ids=lambda s: s.model)
def test_output_switches_and_reads_back(sim, open_supply):
    first, second = open_supply(sim, channel=1), open_supply(sim, channel=2)
    assert not first.is_on()
    first.on()
    assert first.is_on()
    assert second.is_on() == sim.shared_output
    first.off()
    assert not first.is_on()
    assert not second.is_on()


def test_siglent_state_is_read_from_its_status_word(open_supply):
    """The SPD3303X cannot be asked whether an output is on; rig decodes SYSTem:STATus?. The
    simulated word is fixed at the manual's example, 0x0224: CH1 (bit 4) off, CH2 (bit 5) on."""
    first, second = open_supply(SIGLENT, channel=1), open_supply(SIGLENT, channel=2)
    first.on()  # accepted: no error queued
    second.off()
    assert first.is_on() is False
    assert second.is_on() is True


@pytest.mark.parametrize("sim", SIMS, ids=lambda s: s.model)
def test_measurements_come_from_the_right_channel(sim, open_supply):
    for channel, (volts, amps) in sim.measured.items():
        psu = open_supply(sim, channel=channel)
        assert psu.measure_volts() == pytest.approx(volts)
        assert psu.measure_current() == pytest.approx(amps)


@pytest.mark.parametrize("sim", SIMS, ids=lambda s: s.model)
def test_a_refused_setting_is_reported_and_the_queue_drained(sim, open_supply):
    psu = open_supply(sim)
    with pytest.raises(PowerError, match=r"refused .*99\.000") as caught:
        psu.set_volts(99)
    assert str(caught.value).startswith("bench-1: power supply ")
    assert psu.errors() == []
    psu.set_volts(3.3)  # the next setting starts clean


@pytest.mark.parametrize("sim", SIMS, ids=lambda s: s.model)
def test_the_wrong_model_for_a_supply_is_named_when_it_opens(sim, open_supply):
    other = SIMS[SIMS.index(sim) - 1]  # another vendor's, or another model of the family
    with pytest.raises(PowerError) as caught:
        open_supply(sim, model=other.model)
    message = str(caught.value)
    assert f"which is not a {other.model} supply" in message
    assert "boards.bench-1.power.model is wrong for it" in message
    assert f"set it to {sim.model!r}" in message


def test_wrong_templates_fail_with_a_clear_error_not_a_hang(open_supply):
    """A dialect that does not check the identity, pointed at the wrong supply."""
    rigol_anywhere = replace(RIGOL_DP800, idn=None)
    psu = open_supply(SIGLENT, model="bench-psu", dialect=rigol_anywhere)
    with pytest.raises(PowerError, match=r"refused ':SOUR1:VOLT 3\.300': -113") as refused:
        psu.set_volts(3.3)
    assert "is boards.bench-1.power.model, bench-psu, right for it?" in str(refused.value)
    started = time.monotonic()
    with pytest.raises(PowerError, match=r"no reply to ':MEAS:VOLT\? CH1' within 0\.3 s"):
        psu.measure_volts()
    assert time.monotonic() - started < 5
    assert psu._query("*IDN?").startswith(SIGLENT.identity)  # reopened, and in step again


def test_a_supply_without_a_state_query_says_so(open_supply):
    blind = replace(GENERIC, output_query=())
    psu = open_supply(BY_MODEL["agilent-e3631a"], model="e3631a-blind", dialect=blind)
    psu.on()
    with pytest.raises(PowerError, match="e3631a-blind dialect has no query for the output"):
        psu.is_on()


def test_a_reply_that_is_no_state_is_not_taken_for_off(open_supply):
    confused = replace(GENERIC, output_query=("VOLT?",))
    psu = open_supply(BY_MODEL["agilent-e3631a"], model="confused", dialect=confused)
    with pytest.raises(PowerError, match=r"answered 'VOLT\?' with '\+0\.0+E\+00', not an output"):
        psu.is_on()


# -- the dialect data itself ---------------------------------------------------------------------


def test_replies_with_headers_and_units_are_read():
    tti = DIALECTS["aim-tti"]
    assert tti.read_number("V1 3.300") == 3.3
    assert tti.read_number("3.301V") == 3.301
    assert tti.read_number("I2 0.500") == 0.5
    assert tti.read_number("0.012A\r") == 0.012
    assert tti.read_number("V1 high") is None
    assert GENERIC.read_number("+3.30000000E+00") == 3.3
    assert GENERIC.read_number("3.300V") is None


def test_states_are_read_as_replies_or_status_bits():
    assert GENERIC.read_state("ON", 1) and GENERIC.read_state("1", 1)
    assert GENERIC.read_state("off", 1) is False
    assert GENERIC.read_state("3.3", 1) is None
    siglent = DIALECTS["siglent-spd3303x"]
    assert siglent.read_state("0x0010", 1) and not siglent.read_state("0x0010", 2)
    assert siglent.read_state("0x0224", 2) and not siglent.read_state("0x0224", 1)
    assert siglent.read_state("on", 1) is None


def test_no_error_replies_of_each_convention():
    for reply in ('0,"No error"', '+0,"No error"', "0  No Error", "0"):
        assert GENERIC.no_error_in(reply), reply
    for reply in ('-113,"Undefined header"', "100", '-222,"Data out of range"'):
        assert not GENERIC.no_error_in(reply), reply


@pytest.mark.parametrize(
    ("field", "template", "words"),
    [
        ("volts", "VOLT {chan}", "unknown placeholder {chan} in 'VOLT {chan}': it may use {ch}"),
        ("volts", "VOLT 3.3", "lacks {value}"),
        ("measure_amps", "MEAS:CURR? {value}", "unknown placeholder {value}"),
        ("select", "INST {}", "{} (a placeholder needs a name)"),
        ("amps", "CURR {value:.4q}", "cannot be filled in"),
        ("output_on", "OUTP {ch", "does not parse"),
        ("error_query", "SYST:ERR? {ch}", "it may use no placeholders"),
        ("output_off", "  ", "the command is empty"),
    ],
)
def test_template_mistakes_are_named(field, template, words):
    problem = template_problem(field, template)
    assert problem is not None and words in problem


def test_an_invalid_dialect_is_refused_with_every_field_named():
    with pytest.raises(ValueError) as caught:
        replace(GENERIC, volts="VOLT", number="(", output_off=(), output_bits=(4,), channels=2)
    message = str(caught.value)
    for field in ("volts: ", "number: ", "output_off: ", "output_bits: "):
        assert field in message
    assert isinstance(GENERIC, Dialect)  # the built-ins themselves passed the same checks
