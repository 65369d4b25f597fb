"""The emulated MCU flash: factory image, staging that survives a power cut, the bootloader checks.

A new `Flash` on the same folder stands for a power cycle: only what is on disk survives.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from rig import image
from rig.double import flash as flash_mod
from rig.double.flash import Flash, FlashError

SAMPLES = Path(__file__).resolve().parents[3] / "firmware_samples"
MANIFEST = {e["file"]: e for e in json.loads((SAMPLES / "MANIFEST.json").read_text())["samples"]}


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def new_flash(state: Path, **kwargs) -> Flash:
    return Flash(state, factory_version="1.0.0", **kwargs)


def stage(flash: Flash, data: bytes, *, ota_type: int = 101, version_id: int = 7) -> None:
    flash.begin_staging(ota_type, len(data), version_id)
    for offset in range(0, len(data), 249):
        flash.write(offset, data[offset : offset + 249])


def test_first_use_flashes_a_factory_image_in_slot_a_that_survives_power_cycles(tmp_path):
    flash = new_flash(tmp_path)
    header = image.parse(flash.active_image()).header
    assert (flash.active_slot, flash.running_version()) == ("A", "1.0.0")
    assert (header.image_type, header.version, header.security_counter) == (101, "1.0.0", 1)
    assert flash.security_counter == 1
    assert flash.installed_version_id(101) is None  # the service never numbered it
    assert flash.banner == "rig-app factory 1.0.0"
    again = Flash(tmp_path, factory_version="9.9.9")  # a spec change does not reflash
    assert again.running_version() == "1.0.0"
    assert again.active_image() == flash.active_image()


def test_a_factory_version_no_header_can_hold_is_shipped_opaque(tmp_path):
    flash = Flash(tmp_path, factory_version="1.0-beta", factory_version_id=3)
    assert flash.running_version() == "1.0-beta"
    assert not image.is_rig_image(flash.active_image())
    assert flash.installed_version_id(101) == 3


def test_good_upgrade_boots_slot_b_and_records_counter_and_version_id(tmp_path):
    data = sample("blinky-app-1.1.0.rigimg")
    flash = new_flash(tmp_path)
    stage(flash, data)
    assert flash.staged_bytes == len(data)
    assert flash.staged_sha256().hex() == MANIFEST["blinky-app-1.1.0.rigimg"]["sha256"]
    result = flash.commit(7)
    assert (result.ok, result.version, result.rebooted) == (True, "1.1.0", True)
    assert result.reason == "booted slot B (1.1.0)"
    for f in (flash, new_flash(tmp_path)):
        assert (f.active_slot, f.running_version(), f.banner) == (
            "B",
            "1.1.0",
            "rig-app blinky 1.1.0",
        )
        assert f.active_image() == data
        assert f.installed_version_id(101) == 7
        assert f.staging is None


def test_slots_alternate_and_the_floor_follows_the_booted_counter(tmp_path):
    flash = new_flash(tmp_path)
    newer = image.build(b"x" * 100, image_type=101, version="3.0.0", security_counter=5)
    stage(flash, sample("blinky-app-1.1.0.rigimg"), version_id=7)
    assert flash.commit(7).ok
    stage(flash, newer, version_id=8)
    assert flash.commit(8).ok
    assert (flash.active_slot, flash.security_counter, flash.installed()) == ("A", 5, {101: 8})
    stage(flash, sample("blinky-app-1.1.0.rigimg"), version_id=9)  # counter 1 < 5 now
    assert not flash.commit(9).ok


def test_staging_survives_a_power_cut_and_ram_does_not_matter(tmp_path):
    data = sample("blinky-app-1.1.0.rigimg")
    flash = new_flash(tmp_path)
    flash.begin_staging(101, len(data), 7)
    flash.write(0, data[:1000])
    flash.sync()  # the board's power-off
    after = new_flash(tmp_path)
    assert after.staging == {"type": 101, "size": len(data), "version_id": 7, "received": 1000}
    after.write(1000, data[1000:])
    assert after.staged_sha256() == hashlib.sha256(data).digest()
    assert after.commit(7).ok


def test_writes_must_be_contiguous_and_inside_the_declared_size(tmp_path):
    flash = new_flash(tmp_path)
    with pytest.raises(FlashError, match="without a transfer"):
        flash.write(0, b"x")
    flash.begin_staging(101, 10, 1)
    flash.write(0, b"abcd")
    with pytest.raises(FlashError, match="write at 8, but the slot holds 4 bytes"):
        flash.write(8, b"ij")
    with pytest.raises(FlashError, match="write at 0"):
        flash.write(0, b"abcd")  # a rewrite would hide a duplicate-chunk bug
    with pytest.raises(FlashError, match="passes the declared size 10"):
        flash.write(4, b"efghijk")
    assert flash.staged_data() == b"abcd"
    with pytest.raises(FlashError, match="does not fit the 65536-byte slot"):
        flash.begin_staging(101, image.MCU_SLOT_BYTES + 1, 2)


def test_the_record_counts_staged_bytes_in_batches_and_a_crash_resumes_from_the_last_one(
    tmp_path, monkeypatch
):
    """Between saves the record lags the slot: a crash then resumes from fewer bytes than the
    slot holds, never more, and the transfer still ends with the right image."""
    monkeypatch.setattr(flash_mod, "SAVE_EVERY_S", 3600.0)  # only the byte count triggers
    batch = flash_mod.SAVE_EVERY_BYTES // 249  # whole chunks of 249 bytes in one batch
    data = bytes(range(256)) * (3 * batch)  # three batches' worth

    def reopen() -> Flash:  # the double starts again over the same state folder
        return new_flash(tmp_path, slot_bytes=len(data))

    flash = reopen()
    flash.begin_staging(101, len(data), 7)
    for offset in range(0, batch * 249, 249):  # less than a batch
        flash.write(offset, data[offset : offset + 249])
    assert flash.staged_bytes == batch * 249  # RAM knows every byte …
    crashed = reopen()  # … the double died without a sync: the record does not
    assert crashed.staged_bytes == 0
    for offset in range(0, (batch + 10) * 249, 249):  # one batch is saved on the way
        crashed.write(offset, data[offset : offset + 249])
    saved = reopen().staged_bytes
    assert flash_mod.SAVE_EVERY_BYTES <= saved <= (batch + 10) * 249 < len(data)
    resumed = reopen()
    for offset in range(saved, len(data), 249):
        resumed.write(offset, data[offset : offset + 249])
    assert reopen().staged_bytes == len(data)  # the last byte is always saved
    assert resumed.staged_sha256() == hashlib.sha256(data).digest()
    assert resumed.commit(7).ok


def test_the_record_is_saved_at_least_every_save_period(tmp_path, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(flash_mod.time, "monotonic", lambda: clock[0])
    flash = new_flash(tmp_path)
    flash.begin_staging(101, 1000, 1)
    flash.write(0, b"a" * 10)
    assert new_flash(tmp_path).staged_bytes == 0  # just saved at begin: 10 bytes in RAM only
    clock[0] += flash_mod.SAVE_EVERY_S
    flash.write(10, b"b" * 10)
    assert new_flash(tmp_path).staged_bytes == 20


def test_a_crash_while_saving_the_record_keeps_the_old_record(tmp_path, monkeypatch):
    flash = new_flash(tmp_path)
    flash.begin_staging(101, 100, 1)
    flash.write(0, b"a" * 40)
    flash.sync()

    def power_cut(src, dst):
        raise OSError("power cut")

    monkeypatch.setattr(flash_mod.os, "replace", power_cut)
    flash.write(40, b"b" * 20)
    with pytest.raises(OSError):
        flash.sync()
    monkeypatch.undo()
    after = new_flash(tmp_path)
    assert after.staged_bytes == 40  # the slot got the bytes, the record never counted them
    after.write(40, b"c" * 60)
    assert after.staged_data() == b"a" * 40 + b"c" * 60


def test_crash_image_falls_back_and_changes_nothing(tmp_path):
    flash = new_flash(tmp_path)
    factory = flash.active_image()
    stage(flash, sample("blinky-app-1.2.0-crash.rigimg"))
    result = flash.commit(7)
    assert (result.ok, result.rebooted, result.version) == (False, True, "1.0.0")
    assert result.reason == "image fails to boot: fell back to slot A (1.0.0)"
    after = new_flash(tmp_path)
    assert (after.active_slot, after.running_version(), after.active_image()) == (
        "A",
        "1.0.0",
        factory,
    )
    assert after.installed_version_id(101) is None and after.staging is None


@pytest.mark.parametrize(
    ("name", "ota_type", "reason"),
    [
        ("blinky-app-0.9.0-rollback.rigimg", 101,
         "security counter 0 is lower than the accepted 1: rollback refused"),
        ("kettle-heater-1.0.0.rigimg", 101,
         "image type 102 in the header does not match the OTA type 101: refused"),
        ("blinky-app-1.1.0-corrupt.rigimg", 101, "bad image header: payload SHA-256 mismatch"),
    ],
)  # fmt: skip
def test_refused_images_leave_the_old_slot_running(tmp_path, name, ota_type, reason):
    flash = new_flash(tmp_path)
    stage(flash, sample(name), ota_type=ota_type)
    assert flash.staged_problem().startswith(reason)
    result = flash.commit(7)
    assert (result.ok, result.rebooted, result.version) == (False, False, "1.0.0")
    assert result.reason.startswith(reason)
    assert (flash.active_slot, flash.security_counter, flash.staging) == ("A", 1, None)
    assert flash.installed() == {}


def test_incomplete_or_mismatched_apply_is_refused(tmp_path):
    flash = new_flash(tmp_path)
    assert flash.commit(1).reason == "no staged image"
    data = sample("blinky-app-1.1.0.rigimg")
    flash.begin_staging(101, len(data), 7)
    flash.write(0, data[:249])
    assert flash.commit(7).reason == f"only 249 of {len(data)} bytes staged"
    stage(flash, data, version_id=7)
    result = flash.commit(8)
    assert (
        not result.ok
        and "APPLY version 8 does not match the transferred version 7" in result.reason
    )
    assert flash.running_version() == "1.0.0"


def test_opaque_image_is_stored_and_booted_byte_for_byte(tmp_path):
    data = sample("vendor-app.hex")
    flash = new_flash(tmp_path)
    stage(flash, data)
    assert flash.staged_problem() is None  # no header to check
    result = flash.commit(7)
    sha = MANIFEST["vendor-app.hex"]["sha256"]
    assert result.ok and result.version == f"opaque-{sha[:8]}"
    assert new_flash(tmp_path).active_image() == data
    assert flash.security_counter == 1  # an opaque image does not move the floor


def test_an_unreadable_record_says_what_to_do(tmp_path):
    new_flash(tmp_path)
    (tmp_path / flash_mod.RECORD).write_text("{not json")
    with pytest.raises(FlashError, match=r"delete .* to start again from the factory image"):
        new_flash(tmp_path)
