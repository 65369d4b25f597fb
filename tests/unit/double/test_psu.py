"""The emulated supply's SCPI surface, both dialects, driven line by line (no sockets)."""

from __future__ import annotations

import threading
import time

import pytest

from rig.double.psu import ERROR_QUEUE_LEN, PsuModel

NO_ERROR = '0,"No error"'
OUT_OF_RANGE = '-222,"Data out of range"'
UNDEFINED = '-113,"Undefined header"'


class Recorder:
    """Records what the supply told the board; draws a fixed current."""

    def __init__(self, amps: float = 0.0125) -> None:
        self.calls: list[tuple[int, bool, float, float]] = []
        self.amps = amps

    def on_output(self, channel: int, on: bool, volts: float, amps: float) -> None:
        self.calls.append((channel, on, volts, amps))

    def draw(self, channel: int) -> float:
        return self.amps if channel == 2 else 0.0


@pytest.fixture
def outputs() -> Recorder:
    return Recorder()


@pytest.fixture
def generic(outputs: Recorder) -> PsuModel:
    return PsuModel("generic", on_output=outputs.on_output, draw=outputs.draw)


@pytest.fixture
def rigol(outputs: Recorder) -> PsuModel:
    return PsuModel("rigol-dp832", on_output=outputs.on_output, draw=outputs.draw)


def errors(psu: PsuModel) -> list[str]:
    """Drain the error queue, as a driver does after a batch of commands."""
    drained = []
    while (entry := psu.handle("SYST:ERR?")) != NO_ERROR:
        drained.append(entry)
        assert len(drained) <= ERROR_QUEUE_LEN, "error queue never empties"
    return drained


def test_identities_differ_by_dialect(generic: PsuModel, rigol: PsuModel) -> None:
    assert generic.handle("*IDN?") == "RIG,DOUBLE-PSU,0001,0.1"
    assert rigol.handle("*idn?") == "RIGOL TECHNOLOGIES,DP832,DP8B000000001,00.01.16"
    assert generic.handle("*OPC?") == rigol.handle("*OPC?") == "1"


def test_generic_defaults_and_number_formats(generic: PsuModel) -> None:
    assert generic.handle("VOLT?") == "3.300"
    assert generic.handle("CURR?") == "1.0000"
    assert generic.handle("OUTP?") == "0"
    assert generic.handle("INST:NSEL?") == "1"
    generic.handle("CURR 0.05")
    assert generic.handle("CURR?") == "0.0500"
    assert errors(generic) == []


@pytest.mark.parametrize(
    ("select", "set_volts", "query_volts", "output_on", "query_output"),
    [
        ("INST:NSEL 2", "VOLT 5", "VOLT?", "OUTP ON", "OUTP?"),
        ("inst:nsel 2", "volt 5", "volt?", "outp 1", "outp?"),
        (":INSTrument:NSELect 2", ":VOLTage 5", ":VOLTage?", ":OUTPut:STATe ON", "OUTPut:STATe?"),
        ("instrument:nselect 2", "SOUR:VOLT:LEV:IMM 5", "VOLT:LEV?", ":OUTP:STAT on", ":OUTP?"),
    ],
)
def test_generic_long_and_short_forms_act_on_selected_channel(
    generic: PsuModel,
    outputs: Recorder,
    select: str,
    set_volts: str,
    query_volts: str,
    output_on: str,
    query_output: str,
) -> None:
    assert generic.handle(select) is None
    generic.handle(set_volts)
    generic.handle(output_on)
    assert generic.handle(query_volts) == "5.000"
    assert generic.handle(query_output) == "1"
    assert generic.output(2) == (True, 5.0, 1.0)
    assert generic.output(1) == (False, 3.3, 1.0), "another channel changed"
    assert outputs.calls == [(2, False, 5.0, 1.0), (2, True, 5.0, 1.0)]
    assert errors(generic) == []


def test_generic_measures_selected_channel(generic: PsuModel) -> None:
    generic.handle("INST:NSEL 2")
    assert generic.handle("MEAS:VOLT?") == "0.000", "output off must measure ~0 V"
    assert generic.handle("MEAS:CURR?") == "0.0000"
    generic.handle("OUTP ON")
    assert abs(float(generic.handle("MEAS:VOLT?")) - 3.3) < 0.002
    assert generic.handle("MEASure:CURRent:DC?") == "0.0125"  # from the board's draw
    generic.handle("CURR 0.01")
    assert generic.handle("MEAS:CURR?") == "0.0100", "draw above the limit is clamped (CC mode)"
    generic.handle("INST:NSEL 1")
    assert generic.handle("MEAS:VOLT:DC?") == "0.000"


def test_generic_rejects_rigol_channel_syntax(generic: PsuModel) -> None:
    assert generic.handle(":OUTP CH2,ON") is None
    assert generic.handle(":OUTP? CH2") is None, "a failed query must not answer"
    generic.handle(":SOUR2:VOLT 5")
    assert generic.handle(":MEAS:ALL?") is None
    assert errors(generic) == [
        '-108,"Parameter not allowed"',
        '-108,"Parameter not allowed"',
        UNDEFINED,
        UNDEFINED,
    ]
    assert generic.output(2) == (False, 3.3, 1.0)


def test_rigol_channel_addressed_commands(rigol: PsuModel, outputs: Recorder) -> None:
    rigol.handle(":OUTP CH2,ON")
    assert rigol.handle(":OUTP? CH2") == "ON"
    assert rigol.handle(":OUTP? CH1") == "OFF"
    rigol.handle(":SOUR2:VOLT 5.25")
    rigol.handle(":SOUR2:CURR 0.5")
    assert rigol.handle(":SOUR2:VOLT?") == "5.250"
    assert rigol.handle(":SOURce2:CURRent?") == "0.5000"
    assert rigol.handle(":SOUR1:VOLT?") == "3.300"
    assert abs(float(rigol.handle(":MEAS:VOLT? CH2")) - 5.25) < 0.002
    assert rigol.handle(":MEAS:CURR? CH2") == "0.0125"
    assert rigol.handle(":MEAS:VOLT? CH1") == "0.000"
    assert rigol.handle(":meas:curr:dc? ch2") == "0.0125"
    assert rigol.handle(":MEAS:ALL? CH2").split(",")[1:] == ["0.0125", "0.066"]
    assert rigol.handle(":INST:NSEL?") == "1", "channel-addressed commands must not select"
    assert outputs.calls == [(2, True, 3.3, 1.0), (2, True, 5.25, 1.0), (2, True, 5.25, 0.5)]
    assert errors(rigol) == []


def test_rigol_channel_less_forms_use_selected_channel(rigol: PsuModel) -> None:
    rigol.handle(":INST:NSEL 3")
    rigol.handle(":VOLT 12")
    rigol.handle(":OUTP ON")
    assert rigol.handle(":OUTP?") == "ON"
    assert rigol.handle(":SOUR3:VOLT?") == "12.000"
    assert rigol.handle(":OUTP? CH3") == "ON"
    rigol.handle(":INST CH1")
    assert rigol.handle(":INST?") == "CH1"
    assert rigol.handle(":OUTP?") == "OFF"
    assert errors(rigol) == []


@pytest.mark.parametrize(
    "command",
    ["VOLT 30.001", "VOLT -0.1", "CURR 3.5", "INST:NSEL 4", "INST:NSEL 0", "DIAG:DELAY 61"],
)
def test_out_of_range_queues_error_and_changes_nothing(generic: PsuModel, command: str) -> None:
    assert generic.handle(command) is None
    assert generic.handle("SYST:ERR?") == OUT_OF_RANGE
    assert generic.handle("SYST:ERR?") == NO_ERROR
    assert generic.output(1) == (False, 3.3, 1.0)
    assert generic.handle("INST:NSEL?") == "1"


def test_range_limits_are_inclusive(generic: PsuModel) -> None:
    generic.handle("VOLT 30")
    generic.handle("CURR 3")
    assert generic.output(1) == (False, 30.0, 3.0)
    generic.handle("VOLT 0")
    assert generic.handle("VOLT?") == "0.000"
    assert errors(generic) == []


def test_rigol_out_of_range_channel(rigol: PsuModel) -> None:
    rigol.handle(":OUTP CH4,ON")
    rigol.handle(":SOUR4:VOLT 1")
    assert errors(rigol) == [OUT_OF_RANGE, '-114,"Header suffix out of range"']


def test_error_queue_is_fifo_and_readable_by_every_spelling(generic: PsuModel) -> None:
    generic.handle("BOGUS")
    generic.handle("VOLT 99")
    generic.handle("VOLT?  extra")
    generic.handle("OUTP MAYBE")
    assert generic.handle(":SYSTem:ERRor:NEXT?") == UNDEFINED
    assert generic.handle("syst:err?") == OUT_OF_RANGE
    assert generic.handle(":SYST:ERR:NEXT?") == '-108,"Parameter not allowed"'
    assert generic.handle("SYSTem:ERRor?") == '-104,"Data type error"'
    assert generic.handle("SYST:ERR?") == NO_ERROR


def test_cls_clears_errors_and_queue_overflow_is_reported(generic: PsuModel) -> None:
    for _ in range(ERROR_QUEUE_LEN + 5):
        generic.handle("NOPE")
    drained = errors(generic)
    assert len(drained) == ERROR_QUEUE_LEN
    assert drained[-1] == '-350,"Queue overflow"'
    generic.handle("NOPE")
    generic.handle("*CLS")
    assert generic.handle("SYST:ERR?") == NO_ERROR


def test_rst_turns_outputs_off_and_restores_defaults(rigol: PsuModel, outputs: Recorder) -> None:
    rigol.handle(":OUTP CH1,ON")
    rigol.handle(":SOUR3:VOLT 9")
    rigol.handle(":INST:NSEL 3")
    outputs.calls.clear()
    rigol.handle("*RST")
    assert [rigol.output(ch) for ch in (1, 2, 3)] == [(False, 3.3, 1.0)] * 3
    assert rigol.handle(":INST:NSEL?") == "1"
    assert outputs.calls == [(1, False, 3.3, 1.0), (3, False, 3.3, 1.0)], "only changed channels"


def test_callback_only_on_real_change(generic: PsuModel, outputs: Recorder) -> None:
    generic.handle("OUTP ON")
    generic.handle("OUTP ON")
    generic.handle("VOLT 3.3")
    generic.handle("OUTP OFF")
    assert outputs.calls == [(1, True, 3.3, 1.0), (1, False, 3.3, 1.0)]


def test_semicolon_joins_commands_and_replies(generic: PsuModel) -> None:
    assert generic.handle("VOLT 4.2;VOLT?;*OPC?") == "4.200;1"


def test_diag_delay_applies_to_next_query_only(generic: PsuModel) -> None:
    assert generic.handle_timed("DIAG:DELAY 0.25") == (None, 0.0)
    assert generic.handle_timed("VOLT 3") == (None, 0.0), "a command has no reply to delay"
    assert generic.handle_timed("*OPC?") == ("1", 0.25)
    assert generic.handle_timed("*OPC?") == ("1", 0.0)
    generic.handle(":DIAGnostic:DELay 0.2")
    started = time.monotonic()
    assert generic.handle("VOLT?") == "3.000"
    assert time.monotonic() - started >= 0.2, "handle() must hold the reply back"


def test_concurrent_clients_leave_board_in_supply_state(outputs: Recorder) -> None:
    psu = PsuModel("generic", on_output=outputs.on_output)

    def toggle(state: str) -> None:
        for _ in range(300):
            psu.handle(f"OUTP {state}")

    threads = [threading.Thread(target=toggle, args=(s,)) for s in ("ON", "OFF", "ON", "OFF")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final_on = psu.handle("OUTP?") == "1"
    assert outputs.calls[-1][1] is final_on, "the board saw a different last state than the PSU"
    assert all(a[1] != b[1] for a, b in zip(outputs.calls, outputs.calls[1:], strict=False))


def test_try_handle_timed_answers_only_when_the_supply_is_free() -> None:
    psu = PsuModel("generic")
    assert psu.try_handle_timed("*OPC?") == ("1", 0.0)
    held, release = threading.Event(), threading.Event()

    def switching() -> None:  # another connection's command, powering the board
        with psu._lock:
            held.set()
            release.wait(10)

    other = threading.Thread(target=switching)
    other.start()
    assert held.wait(10)
    assert psu.try_handle_timed("*OPC?") is None
    release.set()
    other.join()
    assert psu.try_handle_timed("*OPC?") == ("1", 0.0)
