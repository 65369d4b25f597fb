"""Afero's 19 public OTA operations, one test each, written from Afero's OTA endpoints page
(aferodeveloper/afero-devdocs, docs/API-OTAEndpoints-Funcs.md) and not from rig's OpenAPI; and
the device listing of Afero's device API page (docs/API-DeviceEndpoints.md), which the
pipeline reads.

Each test checks the documented status, the documented body shape (top-level type and every
documented field; fields a server adds are tolerated) and that each documented query or payload
parameter has an effect. The target is rig's local service unless RIG_OTA_CONTRACT_URL is set
(see conftest.py). Where the page contradicts itself, the test says which reading it takes
(docs/ota-api-conformance.md, "Ambiguities").
"""

from __future__ import annotations

import hashlib
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

if TYPE_CHECKING:
    import httpx

    from tests.contract.conftest import Target

# -- the documented shapes ----------------------------------------------------------------------
# Required fields with their JSON type; "optional" fields are left out, since the page says a
# server may omit them. `IntStr` marks the fields the page types as integers written as strings
# (they may exceed 53 bits); the firmware-image schemas type their `id` as a plain string.


class IntStr:
    """A JSON string holding a non-negative integer."""


TYPE_RECORD = {
    "id": IntStr, "name": str, "type": int, "partnerId": str,
    "createdTimestamp": int, "updatedTimestamp": int, "versionAttributeId": int,
}  # fmt: skip
POOL_IMAGE = {
    "id": IntStr, "name": str, "type": int, "versionNumber": IntStr, "version": str, "url": str,
    "createdTimestamp": int, "updatedTimestamp": int, "partnerId": str,
}  # fmt: skip
FIRMWARE_IMAGE = {k: v for k, v in POOL_IMAGE.items() if k != "version"} | {
    "id": str,
    "deviceTypeId": str,
}
PAGE = {
    "number": int, "size": int, "totalPages": int, "numberOfElements": int,
    "totalElements": int, "content": list, "sort": str,
}  # fmt: skip
ASSOCIATION = {
    "name": str, "partnerId": str, "email": str, "deviceTypeId": str, "deviceTypeName": str,
    "firmwareImageId": IntStr,
}  # fmt: skip


def has_shape(body: Any, fields: dict[str, type]) -> None:
    assert isinstance(body, dict), f"expected an object, got {body!r}"
    missing = sorted(set(fields) - set(body))
    assert not missing, f"documented fields missing: {missing} in {body!r}"
    for name, kind in fields.items():
        value = body[name]
        if kind is IntStr:
            assert isinstance(value, str) and value.isdigit(), f"{name}: {value!r} is no integer"
            continue
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        assert ok, f"{name} should be {kind.__name__}: {value!r}"
    if "tags" in body:  # optional, but a list of strings when present
        assert isinstance(body["tags"], list) and all(isinstance(t, str) for t in body["tags"])


def a_page(body: Any, item: dict[str, type]) -> list[dict]:
    has_shape(body, PAGE)
    for element in body["content"]:
        has_shape(element, item)
    assert body["numberOfElements"] == len(body["content"])
    return body["content"]


def call(target: Target, method: str, path: str, status: int, **kw: Any) -> httpx.Response:
    answer = target.http.request(method, target.p + path, **kw)
    assert answer.status_code == status, f"{method} {path}: {answer.status_code} {answer.text}"
    return answer


def no_body(answer: httpx.Response) -> None:
    assert answer.content == b"", f"expected no body, got {answer.text!r}"


# -- the records the reading tests use ----------------------------------------------------------


@pytest.fixture(scope="module")
def pool(target: Target) -> dict[str, Any]:
    """Two images of one run tag, both associated with the device type: A (older, "zeta build",
    tag release, associated on creation) and B (newer, "alpha build", tag beta, through op 13)."""
    target.need("type", "device_type", "write")
    run = f"contract-{uuid.uuid4().hex[:8]}"
    a = target.new_image(tags=["release", run], description="zeta build")
    call(target, "POST", f"/deviceTypes/{target.device_type}/firmwareImages", 201, json=a)
    b = target.new_image(tags=["beta", run], description="alpha build")
    call(target, "POST", f"/deviceTypes/{target.device_type}/firmwareImages", 201, json=b)
    return {"run": run, "a": a, "b": b}


def ids(items: list[dict]) -> list[str]:
    return [i["id"] for i in items]


# -- firmware types -----------------------------------------------------------------------------


def test_01_post_types_creates_a_type(target: Target) -> None:
    target.need("write")
    if not target.local:
        pytest.skip("a firmware type cannot be deleted again: not created on a remote target")
    answer = call(target, "POST", "/types", 201, json={"name": "assets", "description": "d",
                                                         "type": 150})  # fmt: skip
    body = answer.json()
    has_shape(body, TYPE_RECORD)
    assert (body["type"], body["name"]) == (150, "assets")


def test_02_get_types_is_a_bare_array_of_types(target: Target) -> None:
    body = call(target, "GET", "/types", 200).json()
    assert isinstance(body, list), f"expected a bare array, got {body!r}"
    for record in body:
        has_shape(record, TYPE_RECORD)
    if target.type is not None:
        assert target.type in {t["type"] for t in body}


def test_03_get_one_type(target: Target) -> None:
    target.need("type")
    body = call(target, "GET", f"/types/{target.type}", 200).json()
    # The page shows an array holding the record; fetching one type by its key answers the
    # record itself on rig. Both readings are accepted (conformance doc, ambiguity 2).
    record = body[0] if isinstance(body, list) and len(body) == 1 else body
    has_shape(record, TYPE_RECORD)
    assert record["type"] == target.type


def test_04_put_type_answers_204_without_a_body(target: Target) -> None:
    target.need("type", "write")
    before = call(target, "GET", f"/types/{target.type}", 200).json()
    before = before[0] if isinstance(before, list) else before
    text = f"contract {uuid.uuid4().hex[:6]}"
    update = {"name": before["name"], "description": text}
    no_body(call(target, "PUT", f"/types/{target.type}", 204, json=update))
    after = call(target, "GET", f"/types/{target.type}", 200).json()
    after = after[0] if isinstance(after, list) else after
    assert (after["id"], after["description"]) == (before["id"], text)


# -- the firmware pool --------------------------------------------------------------------------


def test_05_post_pool_creates_an_image(target: Target) -> None:
    image = target.new_image(tags=["contract"])
    # The page's response schema is the type record's (ambiguity 3); the fields it shares with
    # an image record are the ones checked, plus the version number every later call needs.
    shared = {k: v for k, v in TYPE_RECORD.items() if k != "versionAttributeId"}
    has_shape(image, shared | {"versionNumber": IntStr})
    assert image["type"] == target.type and image["tags"] == ["contract"]


def test_06_post_binaries_answers_200_and_the_sha256(target: Target) -> None:
    target.need("write")
    data = b"contract upload " + uuid.uuid4().bytes
    raw = call(target, "POST", "/binaries", 200, content=data,
               headers={"Content-Type": "application/octet-stream"})  # fmt: skip
    assert raw.json() == {"value": hashlib.sha256(data).hexdigest()}
    form = call(target, "POST", "/binaries", 200, files={"file": ("fw.bin", data[::-1])})
    assert form.json() == {"value": hashlib.sha256(data[::-1]).hexdigest()}


def test_07_move_to_repository_answers_the_url(target: Target) -> None:
    target.need("write")
    data = b"contract move " + uuid.uuid4().bytes
    sha = call(target, "POST", "/binaries", 200, content=data,
               headers={"Content-Type": "application/octet-stream"}).json()["value"]  # fmt: skip
    body = call(target, "POST", "/binaries/moveToRepository", 200, json={"value": sha}).json()
    assert set(body) >= {"value"} and isinstance(body["value"], str)
    url = urlsplit(body["value"])
    assert url.scheme in ("http", "https") and url.netloc, f"not an absolute URL: {body}"


def test_08_get_pool_is_a_page_with_tags_paging_and_sort(target: Target, pool: dict) -> None:
    a, b, run = pool["a"], pool["b"], pool["run"]

    def listed(**params: Any) -> list[dict]:
        return a_page(call(target, "GET", "/pool", 200, params=params).json(), POOL_IMAGE)

    assert ids(listed(tags=run)) == [a["id"], b["id"]]
    assert ids(listed(tags=f"{run},release")) == [a["id"]]
    assert ids(listed(tags=run, sort="description")) == [b["id"], a["id"]]
    assert ids(listed(tags=run, sort="description,desc")) == [a["id"], b["id"]]
    assert ids(listed(tags=run, sort="updatedTimestamp")) in ([a["id"], b["id"]],
                                                               [b["id"], a["id"]])  # fmt: skip
    second = call(target, "GET", "/pool", 200, params={"tags": run, "size": 1, "page": 1}).json()
    assert (second["number"], second["size"], second["totalElements"]) == (1, 1, 2)
    assert (second["totalPages"], ids(second["content"])) == (2, [b["id"]])


def test_09_get_pool_of_a_type_honours_tags_paging_and_sort(target: Target, pool: dict) -> None:
    a, b, run = pool["a"], pool["b"], pool["run"]
    path = f"/pool/types/{target.type}"

    def listed(**params: Any) -> list[dict]:
        return a_page(call(target, "GET", path, 200, params=params).json(), POOL_IMAGE)

    assert ids(listed(tags=run)) == [a["id"], b["id"]]
    assert ids(listed(tags=f"beta,{run}")) == [b["id"]]
    assert ids(listed(tags=run, sort="description")) == [b["id"], a["id"]]
    assert {i["type"] for i in listed(size=5)} <= {target.type}
    first = call(target, "GET", path, 200, params={"tags": run, "size": 1}).json()
    assert (first["numberOfElements"], first["totalElements"]) == (1, 2)


def test_10_exists_honours_exclude_firmware_image_id(target: Target, pool: dict) -> None:
    a = pool["a"]
    path = f"/pool/types/{target.type}/names/{a['name']}/versions/{a['version']}/exists"
    assert call(target, "GET", path, 200).json() == {"value": True}
    excluded = call(target, "GET", path, 200, params={"excludeFirmwareImageId": a["id"]}).json()
    assert excluded == {"value": False}
    other = f"/pool/types/{target.type}/names/{a['name']}/versions/no-such-version/exists"
    assert call(target, "GET", other, 200).json() == {"value": False}


def test_11_associations_are_an_array_of_records(target: Target, pool: dict) -> None:
    a = pool["a"]
    path = f"/pool/types/{target.type}/versionNumbers/{a['versionNumber']}/associations"
    body = call(target, "GET", path, 200).json()
    assert isinstance(body, list), f"expected a bare array, got {body!r}"
    for record in body:
        has_shape(record, ASSOCIATION)
    assert (target.partner, target.device_type, a["id"]) in {
        (r["partnerId"], r["deviceTypeId"], r["firmwareImageId"]) for r in body
    }


def test_12_put_pool_image_answers_204_without_a_body(target: Target) -> None:
    image = target.new_image(tags=["before"])
    path = f"/pool/types/{target.type}/versionNumbers/{image['versionNumber']}"
    new_url = target.upload(b"contract replacement " + uuid.uuid4().bytes)
    version = image["version"] + "-edited"
    update = {
        "name": image["name"], "description": "edited", "version": version, "url": new_url,
        "tags": ["after"],
    }  # fmt: skip
    no_body(call(target, "PUT", path, 204, json=update))
    after = call(target, "GET", path, 200).json()
    assert (after["description"], after["tags"], after["id"]) == ("edited", ["after"], image["id"])
    assert after["version"] == version and after["url"] != image["url"]
    assert after["versionNumber"] == image["versionNumber"]


# -- firmware images of a device type -----------------------------------------------------------


def test_13_post_firmware_images_associates_and_answers_the_image(target: Target) -> None:
    target.need("device_type")
    image = target.new_image(tags=["contract"])
    path = f"/deviceTypes/{target.device_type}/firmwareImages"
    body = call(target, "POST", path, 201, json=image).json()  # the pool record, as advised
    has_shape(body, FIRMWARE_IMAGE)
    assert (body["versionNumber"], body["deviceTypeId"]) == (
        image["versionNumber"],
        target.device_type,
    )
    # The payload schema quotes `type` ("<integer>") and `versionNumber` ("<string>"): a
    # payload that writes both as strings is associated the same way.
    other = target.new_image(tags=["contract"])
    quoted = other | {"type": str(other["type"]), "versionNumber": str(other["versionNumber"])}
    body = call(target, "POST", path, 201, json=quoted).json()
    has_shape(body, FIRMWARE_IMAGE)
    assert (body["id"], body["deviceTypeId"]) == (other["id"], target.device_type)


def test_14_firmware_images_of_a_device_type(target: Target, pool: dict) -> None:
    a, b, run = pool["a"], pool["b"], pool["run"]
    path = f"/deviceTypes/{target.device_type}/firmwareImages"

    def listed(**params: Any) -> list[dict]:
        return a_page(call(target, "GET", path, 200, params=params).json(), FIRMWARE_IMAGE)

    assert ids(listed(tags=run)) == [a["id"], b["id"]]
    assert ids(listed(tags=f"{run},beta")) == [b["id"]]
    assert ids(listed(tags=run, sort="description")) == [b["id"], a["id"]]
    assert {i["deviceTypeId"] for i in listed(tags=run)} == {target.device_type}
    paged = call(target, "GET", path, 200, params={"tags": run, "size": 1, "page": 1}).json()
    assert (paged["totalElements"], ids(paged["content"])) == (2, [b["id"]])


def test_15_firmware_images_of_a_device_type_and_type(target: Target, pool: dict) -> None:
    a, b, run = pool["a"], pool["b"], pool["run"]
    path = f"/deviceTypes/{target.device_type}/firmwareImages/types/{target.type}"

    def listed(**params: Any) -> list[dict]:
        return a_page(call(target, "GET", path, 200, params=params).json(), FIRMWARE_IMAGE)

    assert ids(listed(tags=run)) == [a["id"], b["id"]]
    assert ids(listed(tags=f"release,{run}")) == [a["id"]]
    assert ids(listed(tags=run, sort="description,desc")) == [a["id"], b["id"]]
    assert ids(listed(tags=run, size=1)) == [a["id"]]


def test_16_one_firmware_image_of_a_device_type(target: Target, pool: dict) -> None:
    a = pool["a"]
    path = (
        f"/deviceTypes/{target.device_type}/firmwareImages/types/{target.type}"
        f"/versionNumbers/{a['versionNumber']}"
    )
    body = call(target, "GET", path, 200).json()
    has_shape(body, FIRMWARE_IMAGE | {"id": IntStr})  # this one is typed as an integer string
    assert (body["id"], body["deviceTypeId"]) == (a["id"], target.device_type)
    # page, size and sort are listed for this one-record answer too: they are accepted
    params = {"page": 0, "size": 5, "sort": "updatedTimestamp"}
    assert call(target, "GET", path, 200, params=params).json()["id"] == a["id"]


def test_17_push_is_accepted(target: Target, pool: dict) -> None:
    target.need("device")
    path = f"/deviceTypes/{target.device_type}/firmwareImages/{pool['b']['id']}/push"
    call(target, "PUT", path, 202, json={"value": target.device})  # no body is documented


def test_18_delete_dissociates_with_204(target: Target) -> None:
    target.need("device_type")
    image = target.new_image(tags=["contract"])
    base = f"/deviceTypes/{target.device_type}/firmwareImages"
    call(target, "POST", base, 201, json=image)
    one = f"{base}/types/{target.type}/versionNumbers/{image['versionNumber']}"
    call(target, "GET", one, 200)
    no_body(call(target, "DELETE", one, 204))
    call(target, "GET", one, 404)


# -- tags ---------------------------------------------------------------------------------------


def test_19_tags_are_a_bare_array_of_strings(target: Target, pool: dict) -> None:
    body = call(target, "GET", "/tags", 200).json()
    assert isinstance(body, list) and all(isinstance(t, str) for t in body), body
    assert {"release", "beta", pool["run"]} <= set(body)


# -- the device API's listing (docs/API-DeviceEndpoints.md, not one of the 19) -----------------
# The page shows its devices by example, not by schema. Checked: the example's fields that
# describe the device's identity and update state. Not required: `profileId`, `friendlyName`,
# `virtual`, `developerDevice` and `disconnectNotificationLevel`, which rig keeps no data for
# (docs/ota-api-conformance.md, "Device listing"). Of `deviceState` only `connected` is
# required, and of an attribute its `id` and `updatedTimestamp` (rig stores the reported
# value, not the hex `data`).

DEVICE = {
    "deviceId": str, "deviceTypeId": str, "partnerId": str, "createdTimestamp": int,
    "updating": bool,
}  # fmt: skip
DEVICE_TAG = {"deviceTagType": str, "deviceTagId": str, "value": str, "localizationKey": str}
EXPANDED = {"state": "deviceState", "tags": "deviceTags", "attributes": "attributes"}


def a_device(body: Any, expansions: set[str]) -> None:
    """One device, with exactly the expansions asked for (absent ones are not shown)."""
    has_shape(body, DEVICE)
    for expansion, key in EXPANDED.items():
        assert (key in body) == (expansion in expansions), f"{key} with {expansions}: {body!r}"
    if "state" in expansions:
        has_shape(body["deviceState"], {"connected": bool})
    if "tags" in expansions:
        assert isinstance(body["deviceTags"], list), body
        for tag in body["deviceTags"]:
            has_shape(tag, DEVICE_TAG)
    if "attributes" in expansions:
        assert isinstance(body["attributes"], list), body
        for attribute in body["attributes"]:
            has_shape(attribute, {"id": int, "updatedTimestamp": int})


def devices_path(target: Target) -> str:
    target.need("account")
    return f"/v1/accounts/{target.account}/devices"


@pytest.mark.parametrize("expansions", ["", "state", "tags", "attributes", "state,tags,attributes"])
def test_device_list_is_a_bare_array_of_devices(target: Target, expansions: str) -> None:
    params = {"expansions": expansions} if expansions else {}
    answer = target.http.get(devices_path(target), params=params)
    assert answer.status_code == 200, f"{answer.status_code} {answer.text}"
    body = answer.json()
    assert isinstance(body, list), f"expected a bare array, got {body!r}"
    wanted = set(filter(None, expansions.split(",")))
    for device in body:
        a_device(device, wanted)
    if target.device is not None:
        assert target.device in {d["deviceId"] for d in body}


@pytest.mark.parametrize("expansions", ["", "tags", "state,tags,attributes"])
def test_one_device_is_an_object_with_the_same_expansions(target: Target, expansions: str) -> None:
    target.need("device")
    params = {"expansions": expansions} if expansions else {}
    answer = target.http.get(f"{devices_path(target)}/{target.device}", params=params)
    assert answer.status_code == 200, f"{answer.status_code} {answer.text}"
    body = answer.json()
    a_device(body, set(filter(None, expansions.split(","))))
    assert body["deviceId"] == target.device
