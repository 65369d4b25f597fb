"""The pipeline rules R1-R8, proved against the OTA service through rig's client.

Each test starts from an empty local service of its own (`scratch_ota`), so the rules are seen
from a clean state and a test that uses up a limit (R1) does not starve the others.
"""

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from rig import DeviceClient, OtaClient, OtaClientError

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ROOT / "fixtures" / "profiles"


def profile(name: str, types: list[int] | None = None) -> dict:
    data = yaml.safe_load((PROFILES / f"{name}.yaml").read_text())
    if types is not None:
        data["otaImageTypes"] = types
    return data


def refused(call, *args, **kwargs) -> OtaClientError:
    with pytest.raises(OtaClientError) as caught:
        call(*args, **kwargs)
    return caught.value


def lab(ota: OtaClient, types=(101,), device_types=("blinky",)) -> None:
    """Image types, device types and profiles enabling every type for every device type."""
    for type_ in types:
        ota.add_image_type(f"app {type_}", "application", type_)
    for device_type in device_types:
        ota.add_device_type(device_type)
        ota.publish_profile(device_type, profile("blinky", list(types)))


def test_r1_image_type_numbers_are_101_to_200_and_at_most_100(scratch_ota):
    ota = scratch_ota
    for bad in (100, 201):
        error = refused(ota.add_image_type, "out of range", "", bad)
        assert error.rule == "R1" and str(bad) in error.message
    first = ota.add_image_type("bootloader", "", 150)
    assert first["type"] == 150 and first["versionAttributeId"] == 2150
    duplicate = refused(ota.add_image_type, "again", "", 150)
    assert (duplicate.status, duplicate.rule) == (409, "R1")
    for _ in range(99):
        ota.add_image_type("auto", "")  # the service picks the lowest free number
    assert sorted(t["type"] for t in ota.image_types()) == list(range(101, 201))
    hundred_and_first = refused(ota.add_image_type, "one too many", "")
    assert hundred_and_first.rule == "R1" and "100" in hundred_and_first.message


def test_r2_renaming_keeps_id_and_type(scratch_ota):
    made = scratch_ota.add_image_type("app", "first", 101)
    renamed = scratch_ota.edit_image_type(101, name="application", description="second")
    assert (renamed["id"], renamed["type"]) == (made["id"], 101)
    assert (renamed["name"], renamed["description"]) == ("application", "second")
    error = refused(scratch_ota.request, "PUT", f"{scratch_ota.ota}/types/101", json={"type": 102})
    assert error.rule == "R2"
    assert scratch_ota.image_type(101)["id"] == made["id"]


def test_r3_profiles_need_an_image_type_and_no_ota_means_no_image(scratch_ota):
    ota = scratch_ota
    ota.add_device_type("blinky")
    early = refused(ota.publish_profile, "blinky", profile("blinky"))
    assert early.rule == "R3" and "image type" in early.message
    ota.add_image_type("app", "", 101)
    published = ota.publish_profile("blinky", profile("blinky"))
    ids = {a["id"] for a in published["attributes"]}
    assert {1301, 1302, 2101} <= ids
    # A real Profile Editor export with no MCU OTA type publishes, but is eligible for nothing.
    export = PROFILES / "afBlink_Modulo-1B_UART"
    ota.add_device_type("afblink")
    plain = ota.publish_export(
        "afblink",
        json.loads((export / "device-type.json").read_text()),
        json.loads((export / "device-description.json").read_text()),
    )
    assert plain["otaImageTypes"] == []
    image = ota.upload_image(b"app v1", type_=101, name="app", version="1.0.0")
    error = refused(ota.associate, "afblink", 101, image["versionNumber"])
    assert error.rule == "R6" and "afblink" in error.message


def test_r4_uploads_need_an_existing_and_enabled_type(scratch_ota):
    ota = scratch_ota
    missing = refused(ota.upload_image, b"x", type_=120, name="app", version="1.0.0")
    assert missing.rule == "R4" and "120" in missing.message
    ota.add_image_type("assets", "", 120)
    not_enabled = refused(ota.upload_image, b"x", type_=120, name="app", version="1.0.0")
    assert not_enabled.rule == "R4" and "profile" in not_enabled.message
    ota.add_device_type("blinky")
    ota.publish_profile("blinky", profile("blinky", [120]))
    assert ota.upload_image(b"x", type_=120, name="app", version="1.0.0")["type"] == 120


def test_r5_metadata_hash_and_no_duplicate_versions(scratch_ota):
    ota = scratch_ota
    lab(ota)
    payload = b"\x7fELF firmware " * 1000
    image = ota.upload_image(
        payload, type_=101, name="blinky-app", version="2.1.0", description="LED app",
        tags=["release", "ci"],
    )  # fmt: skip
    assert image["sha256"] == hashlib.sha256(payload).hexdigest()
    assert image["size"] == len(payload)
    assert (image["name"], image["version"], sorted(image["tags"])) == (
        "blinky-app", "2.1.0", ["ci", "release"],
    )  # fmt: skip
    assert isinstance(image["versionNumber"], str) and isinstance(image["id"], str)
    assert ota.image_exists(101, "blinky-app", "2.1.0")
    again = refused(ota.upload_image, b"other bytes", type_=101, name="blinky-app", version="2.1.0")
    assert (again.status, again.rule) == (409, "R5")
    url = ota.move_to_repository(ota.upload_binary(b"y"))
    nameless = refused(ota.create_image, description="d", type=101, version="1", url=url, tags=[])
    assert nameless.status in (400, 422) and "name" in nameless.message


def test_r6_association_only_with_eligible_device_types(scratch_ota):
    ota = scratch_ota
    for type_ in (101, 102):
        ota.add_image_type(f"t{type_}", "", type_)
    ota.add_device_type("blinky")
    ota.publish_profile("blinky", profile("blinky", [101]))
    ota.add_device_type("kettle")
    ota.publish_profile("kettle", profile("kettle"))  # enables 101 and 102
    app = ota.upload_image(
        b"a", type_=101, name="app", version="1", device_types=["blinky", "kettle"]
    )
    assert sorted(app["associations"]["lab"]) == ["blinky", "kettle"]  # one image, two types
    heater = ota.upload_image(b"h", type_=102, name="heater", version="1", device_types=["kettle"])
    error = refused(ota.associate, "blinky", 102, heater["versionNumber"])
    assert (error.status, error.rule) == (400, "R6") or error.rule == "R6"
    assert "'blinky'" in error.message and "102" in error.message


def test_r7_filters_by_type_device_type_and_tags(scratch_ota):
    ota = scratch_ota
    for type_ in (101, 102):
        ota.add_image_type(f"t{type_}", "", type_)
    ota.add_device_type("blinky")
    ota.publish_profile("blinky", profile("blinky", [101, 102]))
    ota.add_device_type("kettle")
    ota.publish_profile("kettle", profile("kettle"))
    ota.upload_image(b"1", type_=101, name="a", version="1", tags=["release", "eu"],
                     device_types=["blinky"])  # fmt: skip
    ota.upload_image(b"2", type_=101, name="b", version="1", tags=["release"],
                     device_types=["kettle"])  # fmt: skip
    ota.upload_image(b"3", type_=102, name="c", version="1", tags=["beta", "eu"],
                     device_types=["blinky", "kettle"])  # fmt: skip
    names = lambda images: sorted(i["name"] for i in images)  # noqa: E731
    assert names(ota.images(type_=101)) == ["a", "b"]
    assert names(ota.images(device_type="kettle")) == ["b", "c"]
    assert names(ota.images(tags=["eu"])) == ["a", "c"]
    assert names(ota.images(tags=["release", "eu"])) == ["a"]
    assert names(ota.images(type_=102, tags=["release"])) == []
    assert ota.tags() == ["beta", "eu", "release"]


def test_r7_paging_over_more_than_50_images(scratch_ota):
    ota = scratch_ota
    lab(ota)
    for i in range(60):
        ota.upload_image(f"build {i}".encode(), type_=101, name="nightly", version=f"0.{i}.0")
    first = ota.request("GET", f"{ota.ota}/pool", params={"type": 101})
    assert (first["size"], first["numberOfElements"], first["totalElements"]) == (50, 50, 60)
    assert first["totalPages"] == 2 and first["number"] == 0
    last = ota.request("GET", f"{ota.ota}/pool", params={"type": 101, "page": 1})
    assert last["numberOfElements"] == 10
    everything = ota.images(type_=101)
    numbers = [int(i["versionNumber"]) for i in everything]
    assert len(set(numbers)) == 60 and sorted(numbers) == list(range(1, 61))


def test_r8_push_needs_known_associated_device_and_no_downgrade(scratch_ota):
    ota = scratch_ota
    lab(ota, device_types=("blinky", "kettle"))
    old = ota.upload_image(b"v1", type_=101, name="app", version="1.0.0", device_types=["blinky"])
    new = ota.upload_image(b"v2", type_=101, name="app", version="2.0.0", device_types=["blinky"])
    unknown = refused(ota.push, "blinky", new["id"], "ghost-device")
    assert unknown.rule == "R8" and "ghost-device" in unknown.message
    secret = ota.register_device("dev-1", "blinky")["secret"]
    ota.register_device("kettle-1", "kettle")
    wrong_type = refused(ota.push, "kettle", new["id"], "kettle-1")
    assert wrong_type.rule == "R8" and "kettle" in wrong_type.message
    with DeviceClient(ota.base_url, "dev-1", secret) as device:
        device.report_attributes({2101: new["versionNumber"]})  # the device runs v2 already
    downgrade = refused(ota.push, "blinky", old["id"], "dev-1")
    assert downgrade.rule == "R8" and "downgrade" in downgrade.message
    assert ota.deployments("dev-1") == []  # nothing reached the device


def test_happy_path_up_to_a_queued_deployment(board, ota, pipeline, ota_target, tmp_path):
    firmware = tmp_path / "app-v2.bin"
    firmware.write_bytes(b"\x00rig app " + board.name.encode() * 100)
    run = pipeline.run(firmware, ota_target, type_=101, version="2.0.0", tags=["ci"], until=None)
    assert run.image_type["type"] == 101
    assert 2101 in {a["id"] for a in run.profile["attributes"]}
    assert run.image["sha256"] == hashlib.sha256(firmware.read_bytes()).hexdigest()
    associations = ota.associations(101, run.image["versionNumber"])
    assert [(a["partnerId"], a["deviceTypeId"]) for a in associations] == [
        (ota.partner, ota_target.device_type)
    ]
    # a board that is on hears of the push at once (its ASR long-polls): it may be under way
    assert run.states[0] == "QUEUED", run.states
    assert run.deployment["deviceId"] == ota_target.device_id
    assert run.deployment["versionNumber"] == run.image["versionNumber"]
