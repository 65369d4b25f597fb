"""afPro over UART, byte for byte: sync codec, each transaction shape, and every recovery path."""

from __future__ import annotations

import pytest

from rig.protocol.aflib import ProtocolError
from rig.protocol.afpro import (
    GIVE_UP_TIMEOUT,
    READY,
    REPLY_TIMEOUT,
    RESYNC_TIMEOUT,
    ZERO_SYNC,
    AsrPhase,
    AsrTransport,
    McuPhase,
    McuTransport,
    Sync,
    SyncKind,
)

H = bytes.fromhex
R = bytes([READY])
SET_20 = H("1200 0b 03 1605 0c00 00000000 0001020304050607")  # SET 1302 offset 0, 8 data bytes
UPDATE_14 = H("0c00 0d 03 1605 00 02 0400 08000000")  # UPDATE 1302 next offset 8
GET_6 = H("0400 0c 01 b604")


# -- sync codec ---------------------------------------------------------------------------------


def test_zero_sync_after_reset():
    assert H("30 0000 0000 30") == ZERO_SYNC
    assert Sync.decode(ZERO_SYNC) == Sync(SyncKind.REQUEST_OR_RESPONSE, 0, 0)


def test_sync_checksum_is_the_byte_sum_mod_256_and_counts_are_little_endian():
    sync = Sync(SyncKind.ACK, 0x1234, 0xFFFF)
    assert sync.encode() == H("31 3412 ffff") + bytes([(0x31 + 0x34 + 0x12 + 0xFF + 0xFF) % 256])
    assert Sync.decode(sync.encode()) == sync


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (H("30 0000 0000 31"), "checksum"),
        (H("32 0000 0000 32"), "kind 0x32"),
        (H("30 0000 0000"), "6 bytes"),
    ],
)
def test_bad_syncs_are_refused(data: bytes, complaint: str):
    with pytest.raises(ProtocolError, match=complaint):
        Sync.decode(data)


def test_counts_must_fit_16_bits():
    with pytest.raises(ProtocolError):
        Sync(SyncKind.ACK, 65536, 0).encode()
    with pytest.raises(ProtocolError):
        McuTransport().send(bytes(65536))
    with pytest.raises(ProtocolError):
        AsrTransport().send(b"")


# -- transactions, byte for byte ----------------------------------------------------------------


def test_boot_the_asr_asks_with_a_ready_and_the_mcu_answers_with_a_zero_sync():
    mcu, asr = McuTransport(), AsrTransport()
    assert asr.outgoing() == R
    assert mcu.receive(R) == [] and mcu.outgoing() == ZERO_SYNC
    assert asr.receive(ZERO_SYNC) == [] and asr.outgoing() == ZERO_SYNC + R
    assert mcu.receive(ZERO_SYNC + R) == [] and mcu.outgoing() == H("31 0000 0000 31")
    assert asr.receive(H("31 0000 0000 31")) == [] and asr.outgoing() == R
    assert mcu.receive(R) == [] and mcu.outgoing() == b""
    assert mcu.phase is McuPhase.IDLE and asr.phase is AsrPhase.IDLE


def booted() -> tuple[McuTransport, AsrTransport]:
    mcu, asr = McuTransport(), AsrTransport()
    for _ in range(5):
        asr.receive(mcu.outgoing())
        mcu.receive(asr.outgoing())
    assert mcu.phase is McuPhase.IDLE and asr.phase is AsrPhase.IDLE
    return mcu, asr


def test_asr_data_ready_request_response_ready_ack_ready_data_ready():
    mcu, asr = booted()
    asr.send(SET_20)
    assert asr.outgoing() == R  # attention
    mcu.receive(R)
    assert mcu.outgoing() == H("30 0000 0000 30")
    asr.receive(H("30 0000 0000 30"))
    assert asr.outgoing() == H("30 0000 1400 44") + R  # 20 bytes to send
    mcu.receive(H("30 0000 1400 44") + R)
    assert mcu.outgoing() == H("31 0000 1400 45")
    asr.receive(H("31 0000 1400 45"))
    assert asr.outgoing() == R + SET_20 + R
    assert mcu.receive(R + SET_20 + R) == [SET_20]
    assert mcu.phase is McuPhase.IDLE and mcu.outgoing() == b""


def test_mcu_data_request_response_ready_ack_ready_data_ready():
    mcu, asr = booted()
    mcu.send(UPDATE_14)
    assert mcu.outgoing() == H("30 0e00 0000 3e")  # no Ready needed: the MCU is master
    asr.receive(H("30 0e00 0000 3e"))
    assert asr.outgoing() == H("30 0e00 0000 3e") + R
    mcu.receive(H("30 0e00 0000 3e") + R)
    assert mcu.outgoing() == H("31 0e00 0000 3f")
    asr.receive(H("31 0e00 0000 3f"))
    assert asr.outgoing() == R
    mcu.receive(R)
    assert mcu.outgoing() == UPDATE_14
    assert asr.receive(UPDATE_14) == [UPDATE_14]
    assert asr.outgoing() == R
    mcu.receive(R)
    assert mcu.phase is McuPhase.IDLE


def test_collision_the_mcu_wins_resyncs_and_the_asr_sends_later():
    mcu, asr = booted()
    asr.send(SET_20)
    mcu.send(GET_6)
    assert mcu.outgoing() == H("30 0600 0000 36")
    assert asr.outgoing() == R
    mcu.receive(R)  # the ASR's attention crossed our request: nothing new to do
    assert mcu.outgoing() == b""
    asr.receive(H("30 0600 0000 36"))
    assert asr.outgoing() == H("30 0600 1400 4a") + R  # both counts: a collision
    mcu.receive(H("30 0600 1400 4a") + R)
    assert mcu.collisions == 1
    assert mcu.outgoing() == H("30 0600 0000 36")  # the same request again
    asr.receive(H("30 0600 0000 36"))
    assert asr.outgoing() == H("30 0600 0000 36") + R  # the ASR yields this time
    mcu.receive(H("30 0600 0000 36") + R)
    asr.receive(mcu.outgoing())
    mcu.receive(asr.outgoing())
    assert mcu.outgoing() == GET_6
    assert asr.receive(GET_6) == [GET_6]
    assert asr.outgoing() == R + R  # end of transaction, then attention: it still has SET_20
    mcu.receive(R + R)
    assert mcu.outgoing() == H("30 0000 0000 30")
    asr.receive(H("30 0000 0000 30"))
    assert asr.outgoing() == H("30 0000 1400 44") + R


def test_an_mcu_that_acks_the_collision_sends_and_the_asr_keeps_its_message():
    _, asr = booted()
    asr.send(SET_20)
    asr.outgoing()
    asr.receive(H("30 0600 0000 36"))
    assert asr.outgoing() == H("30 0600 1400 4a") + R
    asr.receive(Sync(SyncKind.ACK, 6, 20).encode())
    assert asr.outgoing() == R
    assert asr.receive(GET_6) == [GET_6]
    assert asr.outgoing() == R + R
    asr.receive(H("30 0000 0000 30"))
    assert asr.outgoing() == H("30 0000 1400 44") + R


# -- recovery -------------------------------------------------------------------------------


def test_a_response_with_a_bad_checksum_makes_the_mcu_resync_at_once():
    mcu, _ = booted()
    mcu.send(GET_6)
    mcu.outgoing()
    mcu.receive(H("30 0600 0000 37") + R)
    assert mcu.resyncs == 1
    assert mcu.outgoing() == H("30 0600 0000 36")
    mcu.receive(H("30 0600 0000 36") + R)
    assert mcu.outgoing() == H("31 0600 0000 37")


def test_a_response_for_another_request_makes_the_mcu_resync():
    mcu, _ = booted()
    mcu.send(GET_6)
    mcu.outgoing()
    mcu.receive(H("30 0700 0000 37"))
    assert mcu.resyncs == 1 and mcu.outgoing() == H("30 0600 0000 36")


def test_the_asr_ignores_bad_syncs_and_finds_a_good_one_right_behind():
    _, asr = booted()
    asr.receive(H("30 0600 0000 35") + H("77 31") + H("30 0600 0000 36"))
    assert asr.outgoing() == H("30 0600 0000 36") + R
    assert asr.ignored_syncs >= 1


def test_the_asr_ignores_an_ack_that_does_not_match_its_response():
    _, asr = booted()
    asr.receive(H("30 0600 0000 36"))
    asr.outgoing()
    asr.receive(Sync(SyncKind.ACK, 7, 0).encode())
    assert asr.outgoing() == b"" and asr.phase is AsrPhase.AWAIT_ACK


def test_a_stuck_transaction_resyncs_after_the_resync_timeout():
    mcu, _ = booted()
    mcu.send(GET_6)
    mcu.poll(0.0)  # timeouts count from the first poll that sees an event: poll often
    request = mcu.outgoing()
    assert not mcu.poll(RESYNC_TIMEOUT / 2) and mcu.outgoing() == b""
    assert not mcu.poll(RESYNC_TIMEOUT)
    assert mcu.outgoing() == request and mcu.resyncs == 1
    assert not mcu.poll(RESYNC_TIMEOUT * 1.5) and mcu.outgoing() == b""


def test_a_silent_asr_is_reset_after_the_reply_timeout_and_the_message_waits_for_its_boot():
    mcu, _ = booted()
    mcu.send(GET_6)
    now, resets = 0.0, []
    while now <= REPLY_TIMEOUT + 0.5:
        resets.append(now) if mcu.poll(now) else None
        now += 0.25
    assert resets == [REPLY_TIMEOUT]
    assert mcu.phase is McuPhase.AWAIT_BOOT and mcu.resyncs == 9
    assert mcu.pending == 1  # the MCU's own queue survives the ASR's reset
    mcu.outgoing()
    mcu.poll(REPLY_TIMEOUT + 5)
    assert mcu.outgoing() == b""  # nothing until the ASR says it is up
    asr = AsrTransport()  # the reset ASR
    mcu.receive(asr.outgoing())
    assert mcu.outgoing() == H("30 0600 0000 36")


def test_bytes_from_the_asr_keep_the_reset_away():
    mcu, _ = booted()
    mcu.send(GET_6)
    for now in range(0, 31):
        assert not mcu.poll(float(now))
        mcu.receive(H("30 0600 0000 37"))  # garbage, but the ASR is alive
    assert mcu.resets == 0


def test_a_lost_final_ready_does_not_resend_the_data():
    mcu, asr = booted()
    mcu.send(GET_6)
    asr.receive(mcu.outgoing())
    mcu.receive(asr.outgoing())
    asr.receive(mcu.outgoing())
    mcu.receive(asr.outgoing())
    assert asr.receive(mcu.outgoing()) == [GET_6]
    asr.outgoing()  # the final Ready is lost
    mcu.poll(0.0)
    assert mcu.phase is McuPhase.AWAIT_FINAL_READY
    mcu.poll(RESYNC_TIMEOUT)
    assert mcu.phase is McuPhase.IDLE and mcu.outgoing() == b""


def test_the_asr_gives_up_an_abandoned_transaction_only_after_the_mcu_would_have_resynced():
    # a Ready from the ASR in mid-transaction would pass for the one that answers the ack
    assert GIVE_UP_TIMEOUT > RESYNC_TIMEOUT
    _, asr = booted()
    asr.send(SET_20)
    asr.receive(H("30 0000 0000 30"))
    asr.poll(0.0)
    assert asr.outgoing() == R + H("30 0000 1400 44") + R
    asr.poll(RESYNC_TIMEOUT)
    assert asr.outgoing() == b"" and asr.phase is AsrPhase.AWAIT_ACK
    asr.poll(GIVE_UP_TIMEOUT)
    assert asr.phase is AsrPhase.IDLE and asr.outgoing() == R  # asks again


def test_idle_ends_have_no_deadline_so_an_idle_link_need_not_poll():
    mcu, asr = booted()
    mcu.poll(0.0)
    asr.poll(0.0)
    assert mcu.deadline() is None and asr.deadline() is None
    assert AsrTransport().deadline() is not None  # its boot Ready is out: it may ask again


def test_the_mcu_deadline_is_its_next_resync_then_the_reset_of_a_silent_asr():
    mcu, _ = booted()
    mcu.poll(0.0)
    mcu.send(GET_6)
    mcu.poll(100.0)  # silence counts from the send, however long the MCU was idle unpolled
    assert mcu.deadline() == 100.0 + RESYNC_TIMEOUT
    assert not mcu.poll(100.0 + RESYNC_TIMEOUT) and mcu.resyncs == 1
    now = 100.0
    while (due := mcu.deadline()) is not None and mcu.phase is not McuPhase.AWAIT_BOOT:
        assert due > now  # each poll at the deadline moves it on: no busy loop
        now = due
        mcu.poll(now)
    assert now == 100.0 + REPLY_TIMEOUT and mcu.resets == 1
    assert mcu.deadline() == now + REPLY_TIMEOUT  # awaiting the boot: only the reply timeout


def test_the_asr_deadline_is_its_give_up_while_a_transaction_or_a_message_waits():
    _, asr = booted()
    asr.send(SET_20)
    asr.poll(3.0)
    assert asr.deadline() == 3.0 + GIVE_UP_TIMEOUT  # the attention Ready may go unheard
    asr.receive(H("30 0000 0000 30"))
    asr.poll(4.0)
    assert asr.deadline() == 4.0 + GIVE_UP_TIMEOUT
    asr.poll(4.0 + GIVE_UP_TIMEOUT)
    assert asr.phase is AsrPhase.IDLE and asr.outgoing().endswith(R)  # asked again


def test_asr_reset_forgets_its_queue_and_announces_itself():
    _, asr = booted()
    asr.send(SET_20)
    assert asr.pending == 1
    asr.reset()
    assert asr.pending == 0
    assert asr.outgoing() == R
    asr.receive(ZERO_SYNC)
    assert asr.outgoing() == ZERO_SYNC + R
