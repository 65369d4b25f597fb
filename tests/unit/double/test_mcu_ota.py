"""The emulated MCU's afLib OTA state machine, driven with Messages only (no link, no clock).

`Asr` below plays the ASR's side the simple way (follow every next offset the MCU asks for), in
afLib's shape: every step a notification tunnelled on 1098, the MCU's reports tunnelled on 1099
(their request ids are the afLib layer's, rig.double.mcu_aflib), so each test reads as the
handoff a sniffer would show.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import pytest

from rig.double.flash import Flash
from rig.double.mcu_ota import IDLE, RECEIVING, VERIFYING, McuOta
from rig.protocol import aflib
from rig.protocol.aflib import (
    STOP_TRANSFER_OFFSET,
    Message,
    MsgType,
    OtaInfo,
    OtaState,
    UpdateReason,
    UpdateState,
)

SAMPLES = Path(__file__).resolve().parents[3] / "firmware_samples"
MANIFEST = {e["file"]: e for e in json.loads((SAMPLES / "MANIFEST.json").read_text())["samples"]}
CHUNK = 249


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


class Asr:
    """Sends what an ASR sends and keeps what the MCU says besides its answer."""

    def __init__(self, state: Path, **kwargs) -> None:
        self.state = state
        self.lines: list[str] = []
        self.reboots = 0
        self.reports: list[Message] = []
        self.req = 0
        self.power_cycle(**kwargs)

    def power_cycle(self, **kwargs) -> None:
        """A new Flash and McuOta on the same folder: flash kept, RAM lost (the board's
        power-off saves the flash record first, as BoardOta does)."""
        if hasattr(self, "flash"):
            self.flash.sync()
        self.flash = Flash(self.state, factory_version="1.0.0")
        self.ota = McuOta(self.flash, log=self.lines.append, on_reboot=self.reboot, **kwargs)
        self.reports += self.ota.startup_messages()

    def reboot(self) -> None:
        self.reboots += 1

    def send(self, attr_id: int, value: bytes) -> Message | None:
        """One notification; returns the MCU's answer to it (its first report of the same
        attribute) or None if it said nothing. The rest are its own reports."""
        out = self.ota.handle(aflib.notify(attr_id, value))
        for msg in out:  # every message must survive the wire, in afLib's shape
            assert aflib.decode(aflib.encode(msg)) == msg
            assert msg.channel == aflib.TO_ASR_CHANNEL or msg.type == MsgType.SET
        answer = next((m for m in out if m.attr_id == attr_id and m.channel), None)
        self.reports += [m for m in out if m is not answer]
        return answer

    def begin(self, size: int, *, ota_type: int = 101, version_id: int = 7) -> OtaInfo:
        answer = self.send(
            aflib.AF_MCU_OTA_INFO, OtaInfo.begin(ota_type, size, version_id).encode()
        )
        assert answer is not None and answer.type == MsgType.UPDATE
        assert answer.state == UpdateState.UPDATED
        return OtaInfo.decode(answer.value)

    def chunk(self, offset: int, data: bytes) -> tuple[int, UpdateState]:
        answer = self.send(aflib.AF_MCU_OTA_TRANSFER, aflib.encode_transfer(offset, data))
        assert answer is not None and answer.attr_id == aflib.AF_MCU_OTA_TRANSFER
        return aflib.decode_offset(answer.value), answer.state

    def transfer(self, data: bytes, *, offset: int = 0, until: int | None = None) -> int:
        """Send chunks from `offset`, always where the MCU asks, until STOP (or `until`)."""
        for _ in range(len(data) // CHUNK + 5):
            nxt, state = self.chunk(offset, data[offset : offset + CHUNK])
            assert state == UpdateState.UPDATED
            if nxt == STOP_TRANSFER_OFFSET or (until is not None and nxt >= until):
                return nxt
            assert nxt == offset + len(data[offset : offset + CHUNK])
            offset = nxt
        raise AssertionError("the MCU never said STOP")

    def info(self, state: OtaState, **fields) -> Message:
        return self.send(aflib.AF_MCU_OTA_INFO, OtaInfo(state, **fields).encode())

    def ota_reports(self) -> list[OtaInfo]:
        return [OtaInfo.decode(m.value) for m in self.reports if m.attr_id == aflib.AF_MCU_OTA_INFO]

    def version_reports(self) -> dict[int, int]:
        return {
            m.attr_id: struct.unpack("<Q", m.value)[0]
            for m in self.reports
            if m.attr_id != aflib.AF_MCU_OTA_INFO
        }

    def handoff(self, data: bytes, **begin) -> OtaInfo:
        """Steps 1-4: begin, every chunk; returns the MCU's verdict (VERIFY_SIGNATURE or FAIL)."""
        assert self.begin(len(data), **begin).state == OtaState.TRANSFER_BEGIN
        assert self.transfer(data) == STOP_TRANSFER_OFFSET
        return self.ota_reports()[-1]


@pytest.fixture
def asr(tmp_path) -> Asr:
    return Asr(tmp_path)


def test_full_handoff_of_1_1_0_installs_it_and_survives_a_power_cycle(asr):
    data = sample("blinky-app-1.1.0.rigimg")
    assert asr.reports == []  # the factory image has no service version number
    verdict = asr.handoff(data)
    assert verdict.state == OtaState.VERIFY_SIGNATURE
    assert verdict.sha256.hex() == MANIFEST["blinky-app-1.1.0.rigimg"]["sha256"]
    report = asr.reports[-1]
    assert (report.type, report.channel, report.reason) == (
        MsgType.UPDATE, aflib.TO_ASR_CHANNEL, UpdateReason.LOCAL_OR_MCU_UPDATE,
    )  # fmt: skip
    assert asr.ota.phase == VERIFYING and asr.reboots == 0
    ack = asr.info(OtaState.APPLY, version_id=7)  # echoed as IDLE, 9 bytes, like generic_mcu
    assert OtaInfo.decode(ack.value) == OtaInfo(OtaState.IDLE, version_id=7)
    assert len(ack.value) == 9 and ack.state == UpdateState.UPDATED
    assert asr.reports[-1].type == MsgType.SET  # the version write afLib waits an answer for
    assert asr.version_reports() == {2101: 7}
    assert (asr.flash.running_version(), asr.reboots, asr.ota.phase) == ("1.1.0", 1, IDLE)
    asr.reports.clear()
    asr.power_cycle()
    assert asr.flash.running_version() == "1.1.0"
    assert asr.flash.active_image() == data
    assert asr.version_reports() == {2101: 7}  # afLib MCUs set their version at startup


def test_console_lines_read_like_afLib_examples(asr):
    data = sample("blinky-app-1.1.0.rigimg")
    asr.handoff(data)
    asr.info(OtaState.APPLY, version_id=7)
    assert asr.lines[0] == "OTA: begin type=101 size=28736 version=7"
    progress = [line for line in asr.lines if line.endswith("/28736)")]
    assert len(progress) == 9 and progress[0] == "OTA: 10% (2988/28736)"
    assert f"OTA: verify sha256={hashlib.sha256(data).hexdigest()}" in asr.lines
    assert "OTA: apply version=7: rebooting" in asr.lines
    assert asr.lines[-1] == "OTA: booted slot B (1.1.0); version attribute 2101 = 7"


def test_corrupt_image_fails_the_header_check_instead_of_verifying(asr):
    verdict = asr.handoff(sample("blinky-app-1.1.0-corrupt.rigimg"))
    assert verdict == OtaInfo(OtaState.FAIL, 101, 28736, 7)  # no VERIFY_SIGNATURE at all
    assert all(i.state != OtaState.VERIFY_SIGNATURE for i in asr.ota_reports())
    assert any("header check failed: bad image header: payload SHA-256 mismatch" in line
               for line in asr.lines)  # fmt: skip
    assert asr.flash.staging is None and asr.ota.phase == IDLE
    refused = asr.info(OtaState.APPLY, version_id=7)  # an ASR that ignores the FAIL
    assert refused.state == UpdateState.FAILED
    assert asr.version_reports() == {} and asr.flash.running_version() == "1.0.0"


def test_crash_image_verifies_then_falls_back_without_the_version_write(asr):
    name = "blinky-app-1.2.0-crash.rigimg"
    verdict = asr.handoff(sample(name))
    assert verdict.sha256.hex() == MANIFEST[name]["sha256"]
    ack = asr.info(OtaState.APPLY, version_id=7)
    assert ack.state == UpdateState.UPDATED and OtaInfo.decode(ack.value).state == OtaState.IDLE
    assert asr.ota_reports()[-1].state == OtaState.FAIL
    assert asr.version_reports() == {}  # the only success signal is missing
    assert asr.flash.running_version() == "1.0.0" and asr.reboots == 1
    assert any(line.startswith("OTA: boot failed: fell back to 1.0.0") for line in asr.lines)
    asr.power_cycle()
    assert asr.flash.running_version() == "1.0.0" and asr.version_reports() == {}


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("blinky-app-0.9.0-rollback.rigimg",
         "security counter 0 is lower than the accepted 1: rollback refused"),
        ("kettle-heater-1.0.0.rigimg",
         "image type 102 in the header does not match the OTA type 101: refused"),
    ],
)  # fmt: skip
def test_header_refusals_report_fail_and_keep_1_0_0(asr, name, why):
    verdict = asr.handoff(sample(name))  # kettle forced into a type-101 OTA
    assert verdict.state == OtaState.FAIL
    assert f"OTA: header check failed: {why}" in asr.lines
    assert asr.flash.running_version() == "1.0.0" and asr.flash.staging is None
    assert asr.version_reports() == {} and asr.reboots == 0


def test_huge_image_is_declined_at_begin_and_nothing_is_written(asr):
    size = MANIFEST["blinky-app-2.0.0-huge.rigimg"]["size"]
    answer = asr.begin(size)
    assert answer == OtaInfo(OtaState.IDLE, 101, size, 7)  # the begin value, state IDLE
    assert asr.flash.staging is None and asr.ota.phase == IDLE
    assert "OTA: declined type=101 size=65537 version=7: 65537 bytes do not fit the " \
           "65536-byte slot" in asr.lines  # fmt: skip
    nxt, state = asr.chunk(0, b"x" * CHUNK)
    assert (nxt, state) == (STOP_TRANSFER_OFFSET, UpdateState.FAILED)


def test_a_type_the_mcu_does_not_take_is_declined(tmp_path):
    asr = Asr(tmp_path)
    assert asr.begin(100, ota_type=102).state == OtaState.IDLE
    taker = Asr(tmp_path / "kettle", accepted_types={101, 102})
    assert taker.begin(100, ota_type=102).state == OtaState.TRANSFER_BEGIN


def test_vendor_bin_is_stored_and_booted_untouched(asr):
    data = sample("vendor-app.bin")
    verdict = asr.handoff(data, version_id=12)
    assert verdict.sha256.hex() == MANIFEST["vendor-app.bin"]["sha256"]
    asr.info(OtaState.APPLY, version_id=12)
    assert asr.version_reports() == {2101: 12}
    assert asr.flash.active_image() == data
    assert asr.flash.running_version() == f"opaque-{MANIFEST['vendor-app.bin']['sha256'][:8]}"


def test_an_out_of_order_chunk_is_answered_with_the_expected_offset(asr):
    data = sample("blinky-app-1.1.0.rigimg")
    asr.begin(len(data))
    assert asr.chunk(2 * CHUNK, data[2 * CHUNK : 3 * CHUNK]) == (0, UpdateState.UPDATED)
    assert asr.flash.staged_bytes == 0
    assert asr.chunk(0, data[:CHUNK]) == (CHUNK, UpdateState.UPDATED)
    assert asr.chunk(2 * CHUNK, data[2 * CHUNK : 3 * CHUNK])[0] == CHUNK
    assert "OTA: chunk at 498, expected 249" in asr.lines


def test_a_duplicate_chunk_does_not_corrupt_the_image(asr):
    data = sample("blinky-app-1.1.0.rigimg")
    asr.begin(len(data))
    asr.chunk(0, data[:CHUNK])
    asr.chunk(CHUNK, data[CHUNK : 2 * CHUNK])
    assert asr.chunk(0, bytes(CHUNK))[0] == 2 * CHUNK  # a stale copy, with other bytes
    assert asr.transfer(data, offset=2 * CHUNK) == STOP_TRANSFER_OFFSET
    assert asr.ota_reports()[-1].sha256 == hashlib.sha256(data).digest()


def test_a_chunk_too_big_for_the_attribute_is_refused(tmp_path):
    asr = Asr(tmp_path, attribute_size=128)
    asr.begin(1000)
    assert asr.chunk(0, b"x" * 125) == (0, UpdateState.LENGTH_EXCEEDED)
    assert asr.chunk(0, b"x" * 124) == (124, UpdateState.UPDATED)
    assert asr.chunk(124, b"y" * 124)[0] == 248
    assert asr.flash.staged_data() == b"x" * 124 + b"y" * 124


def test_a_chunk_past_the_declared_size_is_refused(asr):
    asr.begin(300)
    asr.chunk(0, b"a" * CHUNK)
    assert asr.chunk(CHUNK, b"b" * 60) == (CHUNK, UpdateState.LENGTH_EXCEEDED)
    assert asr.flash.staged_bytes == CHUNK


def test_resume_after_a_power_cut_continues_from_what_the_flash_kept(asr):
    data = sample("blinky-app-1.1.0.rigimg")
    asr.begin(len(data))
    asr.transfer(data, until=12_000)
    kept = asr.flash.staged_bytes
    assert kept == 49 * CHUNK
    asr.power_cycle()  # the ASR lost its place too: it starts again at BEGIN and offset 0
    assert asr.ota.phase == IDLE
    assert asr.begin(len(data)).state == OtaState.TRANSFER_BEGIN
    assert f"OTA: resume type=101 size={len(data)} version=7 at {kept}" in asr.lines
    assert asr.chunk(0, data[:CHUNK]) == (kept, UpdateState.UPDATED)
    assert asr.transfer(data, offset=kept) == STOP_TRANSFER_OFFSET
    assert asr.ota_reports()[-1].sha256 == hashlib.sha256(data).digest()
    asr.info(OtaState.APPLY, version_id=7)
    assert asr.flash.running_version() == "1.1.0"


def test_a_begin_for_another_version_starts_over(asr):
    data = sample("blinky-app-1.1.0.rigimg")
    asr.begin(len(data))
    asr.transfer(data, until=1000)
    asr.power_cycle()
    asr.begin(len(data), version_id=8)
    assert asr.flash.staged_bytes == 0
    assert asr.chunk(0, data[:CHUNK]) == (CHUNK, UpdateState.UPDATED)


def test_a_power_cut_after_verify_verifies_again_on_the_next_chunk(asr):
    data = sample("blinky-app-1.1.0.rigimg")
    asr.handoff(data)
    asr.power_cycle()
    asr.begin(len(data))
    assert asr.chunk(0, data[:CHUNK]) == (STOP_TRANSFER_OFFSET, UpdateState.UPDATED)
    assert asr.ota_reports()[-1].sha256 == hashlib.sha256(data).digest()
    assert asr.ota.phase == VERIFYING


def test_fail_from_the_asr_discards_the_staged_data_and_is_not_answered(asr):
    data = sample("blinky-app-1.1.0.rigimg")
    asr.handoff(data)
    before = len(asr.reports)
    assert asr.info(OtaState.FAIL) is None and len(asr.reports) == before  # as generic_mcu
    assert asr.flash.staging is None and asr.ota.phase == IDLE
    assert asr.info(OtaState.APPLY, version_id=7).state == UpdateState.FAILED
    assert asr.flash.running_version() == "1.0.0" and asr.version_reports() == {}


def test_a_retried_last_chunk_gets_stop_again_without_a_second_verify(asr):
    data = sample("vendor-app.bin")
    asr.handoff(data)
    before = len(asr.reports)
    last = (len(data) - 1) // CHUNK * CHUNK
    assert asr.chunk(last, data[last:])[0] == STOP_TRANSFER_OFFSET
    assert len(asr.reports) == before


def test_only_ota_notifications_reach_the_ota_machine(asr):
    """afLib tunnels 1301/1302 as UPDATEs only: a SET or GET of them is not OTA (afLib never
    hands a SET on 1098 to the OTA code, and refuses GETs of tunnelled attributes)."""
    asr.begin(1000)
    assert asr.ota.handle(Message(MsgType.GET, 9, aflib.AF_MCU_OTA_INFO)) == []
    assert asr.ota.handle(Message(MsgType.SET, 3, aflib.AF_MCU_OTA_TRANSFER, bytes(8))) == []
    assert asr.ota.phase == RECEIVING and asr.flash.staged_bytes == 0


def test_decline_next_is_one_shot(asr):
    asr.ota.decline_next = True
    assert asr.begin(1000).state == OtaState.IDLE
    assert "fault injected (decline_next)" in asr.lines[-1]
    assert asr.begin(1000).state == OtaState.TRANSFER_BEGIN


def test_stop_early_sends_stop_before_the_end_and_no_verify(asr):
    data = sample("blinky-app-1.1.0.rigimg")
    asr.ota.stop_early_at = 0.5
    asr.begin(len(data))
    assert asr.transfer(data) == STOP_TRANSFER_OFFSET
    assert asr.ota_reports() == []
    assert asr.flash.staging is None and asr.ota.phase == IDLE
    assert any(line.startswith("OTA: stopping the transfer early at 14442/") for line in asr.lines)


def test_silent_mcu_answers_nothing(asr):
    asr.ota.silent = True
    assert asr.send(aflib.AF_MCU_OTA_INFO, OtaInfo.begin(101, 100, 1).encode()) is None
    assert asr.flash.staging is None and asr.ota.phase == IDLE
    asr.ota.silent = False
    asr.begin(100)
    assert asr.ota.phase == RECEIVING


def test_malformed_values_are_answered_failed(asr):
    assert asr.send(aflib.AF_MCU_OTA_INFO, b"\x09").state == UpdateState.FAILED
    asr.begin(100)
    answer = asr.send(aflib.AF_MCU_OTA_TRANSFER, b"\x00\x00")
    assert (aflib.decode_offset(answer.value), answer.state) == (0, UpdateState.FAILED)


def test_startup_on_the_same_object_forgets_ram_but_not_flash(asr):
    data = sample("blinky-app-1.1.0.rigimg")
    asr.begin(len(data))
    asr.transfer(data, until=1000)
    asr.ota.startup_messages()  # a reboot of the same MCU object (e.g. the console's `reboot`)
    assert asr.ota.phase == IDLE
    assert asr.chunk(1245, data[1245 : 1245 + CHUNK])[1] == UpdateState.FAILED
    asr.begin(len(data))
    assert asr.chunk(0, data[:CHUNK])[0] == 1245  # the flash kept the staged bytes


def test_a_transfer_begun_while_the_mcu_boots_after_apply_survives_its_banner(asr):
    """The apply's reboot resets the machine at once; the banner (booted, `startup_messages`)
    comes after the boot time. A next BEGIN in between is newer than the reboot: kept."""
    first = sample("blinky-app-1.1.0.rigimg")
    assert asr.handoff(first).state == OtaState.VERIFY_SIGNATURE
    asr.info(OtaState.APPLY, version_id=7)
    assert (asr.reboots, asr.ota.phase) == (1, IDLE)
    second = sample("vendor-app.bin")
    assert asr.begin(len(second), version_id=8).state == OtaState.TRANSFER_BEGIN
    assert asr.transfer(second, until=CHUNK) == CHUNK
    asr.reports += asr.ota.startup_messages()  # the banner of the apply's reboot
    assert asr.ota.phase == RECEIVING
    assert asr.transfer(second, offset=CHUNK) == STOP_TRANSFER_OFFSET
    assert asr.ota_reports()[-1].state == OtaState.VERIFY_SIGNATURE
    asr.reports += asr.ota.startup_messages()  # any other boot (a console reboot) loses RAM
    assert asr.ota.phase == IDLE
