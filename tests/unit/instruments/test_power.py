"""The SCPI power driver against the board double's real socket and against pyvisa-sim."""

import socket
from pathlib import Path

import pytest

from rig.double.runner import Double
from rig.double.spec import EmulatedBoardSpec
from rig.instruments.power import PowerError, PowerSupply
from tests.unit.helpers import wait_until

SIM = Path(__file__).resolve().parents[3] / "fixtures" / "instruments" / "generic_psu.yaml"


@pytest.fixture(scope="module")
def double():
    with Double(
        [
            EmulatedBoardSpec("generic-board"),
            EmulatedBoardSpec("rigol-board", model="rigol-dp832", channel=2),
        ]
    ) as running:
        yield {row["board"]: row for row in running.info()}


@pytest.fixture(params=["generic-board", "rigol-board"])
def supply(request, double):
    info = double[request.param]
    psu = PowerSupply(
        str(info["power"]),
        model=str(info["model"]),
        channel=int(info["channel"]),
        timeout_s=1.0,
        name=request.param,
    )
    psu.open()
    yield psu
    psu.off()
    psu.close()


def test_identity_names_the_dialect(supply):
    expected = "RIGOL TECHNOLOGIES,DP832" if supply.model.startswith("rigol") else "RIG,DOUBLE-PSU"
    assert supply.identity.startswith(expected)


def test_settings_and_output_round_trip(supply):
    supply.configure(3.3, 0.25)
    supply.on()
    assert supply.is_on()
    assert supply.measure_volts() == pytest.approx(3.3, abs=0.05)
    assert wait_until(lambda: supply.measure_current() > 0.005, what="board draw")
    supply.off()
    assert not supply.is_on()
    assert supply.measure_current() < 0.0005
    assert supply.measure_volts() < 0.1


def test_refused_setting_reports_the_instruments_error(supply):
    with pytest.raises(PowerError) as caught:
        supply.set_volts(99)
    message = str(caught.value)
    assert "refused" in message and "99.000" in message and "-222" in message
    assert supply.errors() == []  # the queue was drained: the next setting starts clean


def test_late_reply_never_answers_the_next_query(double):
    info = double["generic-board"]
    psu = PowerSupply(str(info["power"]), timeout_s=0.3, name="generic-board")
    psu.open()
    psu.configure(3.3, 0.5)
    psu.on()
    psu._io("DIAG:DELAY 0.6", query=False)  # the double answers the next query late
    with pytest.raises(PowerError, match=r"no reply to 'MEAS:VOLT\?' within 0.3 s"):
        psu.measure_volts()
    # The late "3.300" must not be taken as the answer to these:
    assert psu._query("*IDN?").startswith("RIG,DOUBLE-PSU")
    assert psu.is_on()
    psu.off()
    psu.close()


def test_nothing_answering_is_one_clear_error():
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never replies
    port = silent.getsockname()[1]
    psu = PowerSupply(f"TCPIP0::127.0.0.1::{port}::SOCKET", timeout_s=0.3, name="bench-1")
    with pytest.raises(PowerError) as caught:
        psu.open()
    silent.close()
    message = str(caught.value)
    assert "nothing answered *IDN? within 0.3 s" in message
    assert message.startswith(f"bench-1: power supply TCPIP0::127.0.0.1::{port}::SOCKET")


def test_unreachable_instrument_names_the_inventory_field():
    free = socket.create_server(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()  # nothing listens there now
    psu = PowerSupply(f"TCPIP0::127.0.0.1::{port}::SOCKET", timeout_s=0.5, name="bench-1")
    with pytest.raises(PowerError) as caught:
        psu.open()
    message = str(caught.value)  # pyvisa-py may connect lazily: refused shows as no answer
    assert "cannot open it" in message or "nothing answered *IDN?" in message
    assert "boards.bench-1.power.resource" in message


def test_pyvisa_sim_definition():
    psu = PowerSupply(
        "TCPIP0::sim-psu::5025::SOCKET", visa_library=f"{SIM}@sim", name="sim", channel=2
    )
    assert psu.open() == "RIG,SIM-PSU,0001,0.1"
    psu.configure(5.0, 1.5)
    assert psu._query("VOLT?") == "5.000"
    assert psu._query("INST:NSEL?") == "2"
    psu.on()
    assert psu.is_on()
    assert psu.measure_current() == pytest.approx(0.012)
    with pytest.raises(PowerError, match='-222,"Data out of range"'):
        psu.set_current_limit(7.5)
    psu.off()
    assert not psu.is_on()
    psu.close()


def test_unknown_visa_library_is_a_clear_error():
    psu = PowerSupply("TCPIP0::x::5025::SOCKET", visa_library="@nonesuch", name="bench-1")
    with pytest.raises(PowerError, match="cannot open it"):
        psu.open()


def test_survives_the_shared_resource_manager_being_closed(double):
    """pyvisa shares one ResourceManager per library in a process: another user closing it
    must not leave this board's supply unusable."""
    import pyvisa

    info = double["generic-board"]
    psu = PowerSupply(str(info["power"]), timeout_s=1.0, name="generic-board")
    psu.open()
    pyvisa.ResourceManager("@py").close()
    psu.on()
    assert psu.is_on()
    psu.off()
    psu.close()


def test_the_drain_counts_from_when_the_output_went_off(supply):
    """boot() and cycle() wait the off time from the moment the output went off, so a board
    that has been off a while is not kept waiting again; switched on, the whole wait is back."""
    supply.on()
    assert supply.drain_remaining_s(5.0) == 5.0
    supply.off()
    first = supply.drain_remaining_s(5.0)
    assert 0.0 < first <= 5.0
    supply.off()  # still off: the rails have been draining since the first off
    assert supply.drain_remaining_s(5.0) <= first
    supply.on()
    assert supply.drain_remaining_s(5.0) == 5.0


def test_a_supply_that_was_never_on_has_nothing_to_drain(double):
    """A double just started: its output has never been on (the Lab says so with off_since)."""
    info = double["generic-board"]
    psu = PowerSupply(str(info["power"]), off_s=60.0, off_since=float("-inf"), name="fresh")
    psu.open()
    try:
        psu.off()
        assert psu.drain_remaining_s() == 0.0
        psu.on()
        assert psu.is_on()
        psu.off()
        assert psu.drain_remaining_s() > 59.0  # it was on: now the whole off time applies
    finally:
        psu.off()
        psu.close()
