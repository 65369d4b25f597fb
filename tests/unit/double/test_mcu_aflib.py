"""The emulated MCU's afLib layer, driven with Messages: when it speaks, how it numbers and
queues, as Afero's afLib does (af_lib.c)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rig.double.flash import Flash
from rig.double.mcu_aflib import McuAfLib
from rig.double.mcu_ota import McuOta
from rig.protocol import aflib
from rig.protocol.aflib import AsrState, Message, MsgType, UpdateReason, UpdateState


class Mcu:
    def __init__(self, folder: Path) -> None:
        self.sent: list[Message] = []
        self.now = 0.0
        self.lines: list[str] = []
        ota = McuOta(Flash(folder, factory_version="1.0.0"), log=self.lines.append)
        self.afl = McuAfLib(ota, lambda raw: self.sent.append(aflib.decode(raw)),
                            log=self.lines.append, clock=lambda: self.now)  # fmt: skip

    def handshake(self, version: int = 0x7001, *states: AsrState) -> None:
        self.afl.receive(aflib.asr_version(version))
        for state in states or (AsrState.REBOOTED, AsrState.LINKED, AsrState.INITIALIZED):
            self.afl.receive(aflib.asr_state(state))

    def answer_last(self) -> None:
        self.afl.receive(aflib.answer(self.sent[-1]))


@pytest.fixture
def mcu(tmp_path: Path) -> Mcu:
    return Mcu(tmp_path)


def test_nothing_is_said_before_the_asr_version_and_the_state_it_needs(mcu):
    mcu.afl.booted()  # the application asks to report its version: it must wait
    mcu.afl.receive(aflib.asr_state(AsrState.INITIALIZED))
    assert mcu.sent == []  # no firmware version yet
    mcu.afl.receive(aflib.asr_version(0x7001))
    assert [(m.type, m.attr_id, m.request_id) for m in mcu.sent] == [
        (MsgType.SET, aflib.AFLIB_CAPABILITIES, 1)
    ]  # and nothing else until the ASR answers it


def test_at_or_below_0x5062_linked_is_enough_above_it_is_not(tmp_path):
    old, new = Mcu(tmp_path / "a"), Mcu(tmp_path / "b")
    old.handshake(0x5062, AsrState.LINKED)
    new.handshake(0x5063, AsrState.LINKED)
    assert old.sent and not new.sent
    new.afl.receive(aflib.asr_state(AsrState.INITIALIZED))
    assert new.sent


def test_each_request_waits_for_its_answer_and_ids_are_its_own_counter(mcu):
    mcu.afl.booted()
    mcu.handshake()
    assert [m.attr_id for m in mcu.sent] == [aflib.AFLIB_CAPABILITIES]
    mcu.answer_last()
    assert mcu.sent[-1] == Message(MsgType.GET, 2, aflib.ASR_CAPABILITIES)
    mcu.afl.receive(aflib.answer(mcu.sent[-1], b"\x80"))
    assert mcu.afl.capabilities == b"\x80"
    assert not [m for m in mcu.sent if aflib.ota_type_of(m.attr_id)]  # factory: no version


def test_a_reject_does_not_end_the_wait_but_ten_seconds_do(mcu):
    mcu.handshake()
    request = mcu.sent[-1]
    mcu.afl.receive(Message(MsgType.UPDATE_REJECTED_LEGACY, request.request_id, request.attr_id,
                            state=UpdateState.FORBIDDEN, reason=UpdateReason.UNKNOWN))  # fmt: skip
    assert len(mcu.sent) == 1
    mcu.now += 9.9
    mcu.afl.poll()
    assert len(mcu.sent) == 1
    mcu.now += 0.2
    mcu.afl.poll()
    assert mcu.sent[-1].attr_id == aflib.ASR_CAPABILITIES
    assert any("no answer to 1207" in line for line in mcu.lines)


def test_fake_updates_are_dropped_and_asr_sets_answered_with_their_id(mcu):
    mcu.handshake()
    mcu.answer_last()
    mcu.answer_last()  # 1206
    fake = Message(MsgType.UPDATE, 0, aflib.ASR_STATE, b"\x03", UpdateState.UPDATED,
                   UpdateReason.FAKE_UPDATE)  # fmt: skip
    mcu.afl.receive(fake)
    count = len(mcu.sent)
    mcu.afl.receive(Message(MsgType.SET, 0x43, 1, b"\x01"))
    reply = mcu.sent[count]
    assert (reply.type, reply.request_id, reply.attr_id, reply.value) == (
        MsgType.UPDATE, 0x43, 1, b"\x01"
    )  # fmt: skip
    assert reply.reason == UpdateReason.SERVICE_SET
    mcu.afl.receive(Message(MsgType.SET, 0x44, 5000, b"\x01"))  # not an MCU attribute
    assert (mcu.sent[-1].state, mcu.sent[-1].reason) == (5, UpdateReason.INTERNAL_SET_REJECTED)


def test_update_ready_asks_for_a_reboot_and_locks_until_the_next_handshake(mcu):
    mcu.handshake()
    mcu.answer_last()
    mcu.answer_last()
    mcu.afl.receive(aflib.asr_state(AsrState.UPDATE_READY))
    request = mcu.sent[-1]
    assert (request.type, request.attr_id, request.value[:1]) == (
        MsgType.SET, aflib.SYSTEM_COMMAND, b"\x01"
    )  # fmt: skip
    assert not mcu.afl.ready
    mcu.handshake()  # the ASR rebooted
    assert mcu.afl.ready and mcu.sent[-1].attr_id == aflib.AFLIB_CAPABILITIES


def test_ota_only_comes_through_the_channel_towards_the_mcu(mcu):
    mcu.handshake()
    mcu.answer_last()
    mcu.answer_last()
    begin = aflib.OtaInfo.begin(101, 100, 1)
    wrong_way = aflib.report(0, aflib.AF_MCU_OTA_INFO, begin.encode())  # on 1099
    mcu.afl.receive(wrong_way)
    assert mcu.afl.ota.phase == "idle"
    mcu.afl.receive(aflib.notify_info(begin))
    echo = mcu.sent[-1]
    assert (echo.channel, echo.value) == (aflib.TO_ASR_CHANNEL, begin.encode())
    assert echo.request_id == 3  # 1207 was 1, 1206 was 2
