"""A power dialect written in boards.yaml: validated at load with FILE:LINE, then driven."""

from __future__ import annotations

import shutil
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from rig.instruments.power import PowerError, PowerSupply
from rig.instruments.power_dialects import DIALECTS, GENERIC
from rig.lab import inventory

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "instruments"

# A bench with an HMC8043 described from scratch (as if rig had no built-in for it): the generic
# dialect plus the two-switch output of the R&S manual. Line numbers below count from `boards:`.
HMC_BY_HAND = """\
boards:
  bench-1:
    device_type: blinky
    console: {port: /dev/ttyUSB0}
    power:
      resource: "TCPIP0::sim-hmc8043::5025::SOCKET"
      visa_library: rs_hmc8043.yaml@sim
      model: bench-hmc
      channel: 2
      dialect:
        base: generic
        output_on: ["OUTP:CHAN 1", "OUTP:MAST 1"]
        output_off: "OUTP:CHAN 0"
        output_query: ["OUTP:CHAN?", "OUTP:MAST?"]
        idn: "Rohde&Schwarz,HMC804"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "boards.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def _power(tmp_path: Path, block: str) -> Path:
    """A one-board boards.yaml: `power:` is line 5, `block` goes on from line 7."""
    head = "boards:\n  bench-1:\n    device_type: blinky\n    console: {port: /dev/ttyUSB0}\n"
    power = '    power:\n      resource: "TCPIP0::psu-1.lab::5025::SOCKET"\n'
    body = textwrap.indent(textwrap.dedent(block), "      ")
    return _write(tmp_path, head + power + body)


def test_a_dialect_written_in_boards_yaml_drives_its_supply(tmp_path):
    shutil.copy(FIXTURES / "rs_hmc8043.yaml", tmp_path / "rs_hmc8043.yaml")
    lab = inventory.load(_write(tmp_path, HMC_BY_HAND))
    power = lab.boards["bench-1"].power
    assert power is not None
    dialect = power.supply_dialect()
    assert dialect.output_on == ("OUTP:CHAN 1", "OUTP:MAST 1")
    assert dialect.output_off == ("OUTP:CHAN 0",)  # one command may be written as a string
    assert dialect.select == GENERIC.select and dialect.volts == GENERIC.volts  # from the base
    library = f"{lab.resolve(power.visa_library.removesuffix('@sim'))}@sim"
    psu = PowerSupply(str(power.resource), model=power.model, dialect=dialect,
                      channel=power.channel, visa_library=library, timeout_s=0.3)  # fmt: skip
    try:
        assert psu.open().startswith("Rohde&Schwarz,HMC8043,")
        psu.configure(5.0, 0.5)
        assert psu.volts_setting() == pytest.approx(5.0)
        assert psu._query("INST:NSEL?") == "2"
        psu.on()
        assert psu.is_on()
        psu.off()
        assert not psu.is_on()
        assert psu._query("OUTP:MAST?") == "1"  # the other channels keep their power
    finally:
        psu.close()


def test_fields_left_out_are_the_bases(tmp_path):
    lab = inventory.load(_power(tmp_path, """\
        model: rigol-lab
        dialect: {base: rigol-dp821, idn: null}
        """))  # fmt: skip
    power = lab.boards["bench-1"].power
    assert power is not None
    assert power.supply_dialect() == replace(DIALECTS["rigol-dp821"], idn=None)
    assert power.supply_dialect().channels == 2


def test_a_null_output_query_means_the_state_cannot_be_read(tmp_path):
    lab = inventory.load(_power(tmp_path, "model: blind-psu\ndialect: {output_query: null}\n"))
    power = lab.boards["bench-1"].power
    assert power is not None
    assert power.supply_dialect().output_query == ()
    psu = PowerSupply("TCPIP0::x::5025::SOCKET", model="blind-psu", dialect=power.supply_dialect())
    with pytest.raises(PowerError, match="blind-psu dialect has no query for the output state"):
        psu.is_on()  # said before anything is sent


def test_a_built_in_model_still_needs_no_dialect(tmp_path):
    lab = inventory.load(_power(tmp_path, "model: siglent-spd3303x-e\nchannel: 2\n"))
    power = lab.boards["bench-1"].power
    assert power is not None and power.supply_dialect() == DIALECTS["siglent-spd3303x-e"]


# (the `power:` block, then the line, field path and words of the one problem it must produce)
MISTAKES = {
    "unknown placeholder": (
        'model: my-psu\ndialect:\n  volts: "VOLT {chan}"\n',
        9, "boards.bench-1.power.dialect.volts", "unknown placeholder {chan} in 'VOLT {chan}'"),
    "setting without its value": (
        'model: my-psu\ndialect:\n  amps: "CURR 0.5"\n',
        9, "boards.bench-1.power.dialect.amps", "lacks {value}"),
    "one bad command of several": (
        'model: my-psu\ndialect:\n  output_on: ["OUTP ON", "OUTP:GEN {on}"]\n',
        9, "boards.bench-1.power.dialect.output_on", "unknown placeholder {on}"),
    "unknown base": (
        "model: my-psu\ndialect: {base: siglent-spd3033x}\n",
        8, "boards.bench-1.power.dialect.base", "did you mean 'siglent-spd3303x'?"),
    "misspelt field": (
        'model: my-psu\ndialect: {measure_amp: "MEAS:CURR?"}\n',
        8, "boards.bench-1.power.dialect.measure_amp", "did you mean 'measure_amps'?"),
    "unquoted ON": (
        "model: my-psu\ndialect: {on_reply: [1, ON]}\n",
        8, "boards.bench-1.power.dialect.on_reply", "write the replies in quotes"),
    "reply pattern without its group": (
        'model: my-psu\ndialect: {number: "V1 (\\\\S+)"}\n',
        8, "boards.bench-1.power.dialect.number", "needs a group (?P<value>...)"),
    "emptied template": (
        "model: my-psu\ndialect: {measure_volts: null}\n",
        8, "boards.bench-1.power.dialect.measure_volts", "may not be empty"),
    "no commands to switch on": (
        "model: my-psu\ndialect: {output_on: []}\n",
        8, "boards.bench-1.power.dialect.output_on", "give at least one command"),
    "status bits for too few channels": (
        "model: my-psu\ndialect: {base: siglent-spd3303x, channels: 3}\n",
        8, "boards.bench-1.power.dialect", "output_bits: [4, 5] names the bit of 2 channel(s)"),
    "dialect without a name": (
        "dialect: {base: generic}\n",
        5, "boards.bench-1.power", "power.dialect needs a name: add model: NAME"),
    "dialect named as a built-in": (
        "model: rigol-dp832\ndialect: {idn: null}\n",
        7, "boards.bench-1.power.model", "call that one something else (e.g. rigol-dp832-lab)"),
    "model typo without a dialect": (
        "model: keysigth-e36312a\n",
        7, "boards.bench-1.power.model", "did you mean 'keysight-e36312a'?"),
    "channel the model lacks": (
        "model: rs-hmc8042\nchannel: 3\n",
        8, "boards.bench-1.power.channel", "rs-hmc8042 has channels 1 to 2: there is no channel 3"),
    "channel a written dialect lacks": (
        "model: my-psu\nchannel: 2\ndialect: {base: rs-hmc8041}\n",
        8, "boards.bench-1.power.channel", "my-psu has one channel: there is no channel 2"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(MISTAKES))
def test_a_mistake_in_a_dialect_is_one_problem_with_file_line_and_field(case, tmp_path):
    block, line, path, words = MISTAKES[case]
    file = _power(tmp_path, block)
    with pytest.raises(inventory.InventoryError) as caught:
        inventory.load(file)
    problems = caught.value.problems
    assert len(problems) == 1, [str(p) for p in problems]
    assert (problems[0].line, problems[0].path) == (line, path), str(problems[0])
    assert words in problems[0].message
    assert str(problems[0]).startswith(f"{file}:{line}: {path}: ")
