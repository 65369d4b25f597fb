"""The local OTA service over real HTTP: auth, the catalogue rules R1..R7, paging, profiles.

Each test starts a `LocalService` on loopback in its own temporary folder and talks to it with
plain httpx, exactly as a remote client would. The helpers here (`Partner`, `Board`, fixtures)
are shared with test_ota_devices.py and test_ota_transfer.py.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rig.ota.service.auth import PartnerAuth
from rig.ota.service.serve import LocalService

REPO = Path(__file__).resolve().parents[4]
PROFILES = REPO / "fixtures" / "profiles"
REFERENCE_EXPORT = PROFILES / "afBlink_Modulo-1B_UART"  # a real Profile Editor export
LAB_TOKEN, OTHER_TOKEN = "lab-token-123", "other-token-456"
PARTNERS = [PartnerAuth("lab", LAB_TOKEN, "lab-account"), PartnerAuth("other", OTHER_TOKEN)]
MAX_IMAGE_BYTES = 64 * 1024
OPEN_CLIENTS: list[httpx.Client] = []  # closed by the `ota` fixture after each test


def _client(base_url: str, authorization: str) -> httpx.Client:
    client = httpx.Client(base_url=base_url, headers={"Authorization": authorization}, timeout=10)
    OPEN_CLIENTS.append(client)
    return client


class Partner:
    """One partner's view of the service, with helpers that build the pipeline step by step."""

    def __init__(self, base_url: str, partner: str = "lab", token: str = LAB_TOKEN) -> None:
        self.http = _client(base_url, f"Bearer {token}")
        self.p = f"/v1/ota/partners/{partner}"
        self.local = f"/v1/local/partners/{partner}"

    def ok(self, method: str, path: str, status: int = 200, **kw: Any) -> Any:
        r = self.http.request(method, path, **kw)
        assert r.status_code == status, f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    def refused(self, method: str, path: str, status: int, rule: str, **kw: Any) -> dict:
        r = self.http.request(method, path, **kw)
        body = r.json()
        assert (r.status_code, body.get("rule")) == (status, rule), r.text
        assert body["message"] and "hint" in body
        return body

    def image_type(self, type: int = 101, name: str = "application") -> dict:
        return self.ok("POST", f"{self.p}/types", 201, json={"name": name, "type": type})

    def device_type(self, dt: str, profile: str | dict | None = None) -> dict | None:
        self.ok("POST", f"{self.local}/deviceTypes", 201, json={"id": dt})
        if profile is None:
            return None
        if isinstance(profile, str):
            from rig.ota.service.profiles import load_profile

            profile = load_profile(PROFILES / f"{profile}.yaml").model_dump()
        return self.ok("PUT", f"{self.local}/deviceTypes/{dt}/profile", json=profile)

    def upload(self, data: bytes) -> str:
        """Stage and keep bytes; returns the repository url."""
        sha = self.ok("POST", f"{self.p}/binaries", content=data)["value"]
        assert sha == hashlib.sha256(data).hexdigest()
        return self.ok("POST", f"{self.p}/binaries/moveToRepository", json={"value": sha})["value"]

    def image(
        self,
        type: int = 101,
        version: str = "1.0.0",
        data: bytes | None = None,
        name: str = "app",
        tags: list[str] | None = None,
        **extra: Any,
    ) -> dict:
        data = data if data is not None else f"{name}-{type}-{version}".encode() * 10
        body = {
            "name": name,
            "description": f"{name} {version}",
            "type": type,
            "version": version,
            "url": self.upload(data),
            "tags": tags or [],
            **extra,
        }
        return self.ok("POST", f"{self.p}/pool", 201, json=body)

    def associate(self, dt: str, image: dict) -> dict:
        body = {"type": image["type"], "versionNumber": image["versionNumber"]}
        return self.ok("POST", f"{self.p}/deviceTypes/{dt}/firmwareImages", 201, json=body)

    def register(self, device_id: str, dt: str) -> str:
        body = {"deviceId": device_id, "deviceTypeId": dt}
        return self.ok("POST", f"{self.local}/devices", 201, json=body)["secret"]

    def push(self, dt: str, image: dict, device_id: str) -> dict:
        path = f"{self.p}/deviceTypes/{dt}/firmwareImages/{image['id']}/push"
        return self.ok("PUT", path, 202, json={"value": device_id})

    def deployment(self, deployment_id: str) -> dict:
        return self.ok("GET", f"{self.local}/deployments/{deployment_id}")


class Board:
    """The device side: what an ASR does with its own secret."""

    def __init__(self, base_url: str, device_id: str, secret: str) -> None:
        self.http = _client(base_url, f"Device {secret}")
        self.d = f"/v1/device/{device_id}"

    def ok(self, method: str, path: str, status: int = 200, **kw: Any) -> Any:
        r = self.http.request(method, self.d + path, **kw)
        assert r.status_code == status, f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    def checkin(self, **versions: str) -> dict | None:
        return self.ok("POST", "/checkin", json={"versions": versions})["deployment"]

    def report(self, state: str, **kw: Any) -> dict:
        return self.ok(
            "POST", f"/deployments/{kw.pop('deployment')}/progress", json={"state": state, **kw}
        )


@pytest.fixture
def ota(tmp_path: Path) -> Iterator[LocalService]:
    with LocalService(tmp_path / "ota", PARTNERS, MAX_IMAGE_BYTES) as svc:
        try:
            yield svc
        finally:
            while OPEN_CLIENTS:
                OPEN_CLIENTS.pop().close()


@pytest.fixture
def partner(ota: LocalService) -> Partner:
    return Partner(ota.base_url)


@pytest.fixture
def blinky_partner(partner: Partner) -> Partner:
    """Image type 101 and device type blinky (profile enabling 101)."""
    partner.image_type(101)
    partner.device_type("blinky", "blinky")
    return partner


# -- auth ------------------------------------------------------------------------------------


def test_a_missing_or_wrong_token_is_401(ota: LocalService) -> None:
    bare = httpx.get(f"{ota.base_url}/v1/ota/partners/lab/types")
    assert (bare.status_code, bare.json()["rule"]) == (401, "AUTH")
    assert bare.headers["www-authenticate"] == "Bearer"
    Partner(ota.base_url, token="nope").refused("GET", "/v1/ota/partners/lab/types", 401, "AUTH")


def test_another_partners_path_is_404_and_reveals_nothing(ota: LocalService) -> None:
    partner, other = Partner(ota.base_url), Partner(ota.base_url, "other", OTHER_TOKEN)
    other.image_type(150, name="secret-bootloader")
    for path in (
        "/v1/ota/partners/other/types",
        "/v1/ota/partners/other/types/150",
        "/v1/local/partners/other/deviceTypes",
        "/v1/accounts/other/devices",
    ):
        body = partner.refused("GET", path, 404, "NOT_FOUND")
        assert "secret-bootloader" not in json.dumps(body)
    nobody = partner.refused("GET", "/v1/ota/partners/ghost/types", 404, "NOT_FOUND")
    seen = partner.refused("GET", "/v1/ota/partners/other/types", 404, "NOT_FOUND")
    assert nobody["message"].replace("ghost", "X") == seen["message"].replace("other", "X")
    assert partner.ok("GET", f"{partner.p}/types") == []
    # an id of another partner's record is as unknown as a made-up one
    other.device_type("gadget", _profile("blinky") | {"otaImageTypes": [150]})
    image = other.image(150, name="boot")
    partner.device_type("blinky")
    path = f"{partner.p}/deviceTypes/blinky/firmwareImages/{image['id']}/push"
    partner.refused("PUT", path, 404, "NOT_FOUND", json={"value": "dev-1"})


def test_a_device_secret_opens_only_its_own_device(
    blinky_partner: Partner, ota: LocalService
) -> None:
    partner = blinky_partner
    secret_a, secret_b = partner.register("dev-a", "blinky"), partner.register("dev-b", "blinky")
    image = partner.image()
    partner.associate("blinky", image)
    b_deployment = partner.push("blinky", image, "dev-b")["deploymentId"]
    a_on_b = Board(ota.base_url, "dev-b", secret_a)
    r = a_on_b.http.post(f"{a_on_b.d}/checkin", json={"versions": {}})
    assert (r.status_code, r.json()["rule"]) == (403, "AUTH")
    assert "dev-b" in r.json()["message"]
    board_a = Board(ota.base_url, "dev-a", secret_a)
    r = board_a.http.post(
        f"{board_a.d}/deployments/{b_deployment}/progress", json={"state": "ACCEPTED"}
    )
    assert (r.status_code, r.json()["rule"]) == (404, "NOT_FOUND")
    r = board_a.http.get(f"{board_a.d}/images/{image['sha256']}")
    assert (r.status_code, r.json()["rule"]) == (404, "NOT_FOUND")
    assert Board(ota.base_url, "dev-b", secret_b).checkin()["deploymentId"] == b_deployment
    r = httpx.post(f"{ota.base_url}/v1/device/dev-a/checkin", json={"versions": {}})
    assert (r.status_code, r.json()["rule"]) == (401, "AUTH")


# -- R1, R2: image types ----------------------------------------------------------------------


def test_r1_type_numbers_are_101_to_200_unique_and_at_most_100(partner: Partner) -> None:
    body = partner.refused("POST", f"{partner.p}/types", 400, "R1", json={"name": "x", "type": 250})
    assert "250" in body["message"] and "101" in body["message"]
    partner.image_type(101)
    body = partner.refused("POST", f"{partner.p}/types", 409, "R1", json={"name": "x", "type": 101})
    assert "101" in body["message"]
    numbers = [
        partner.ok("POST", f"{partner.p}/types", 201, json={"name": f"t{i}"})["type"]
        for i in range(99)
    ]
    assert numbers == list(range(102, 201))
    body = partner.refused("POST", f"{partner.p}/types", 409, "R1", json={"name": "one too many"})
    assert "at most 100" in body["message"]
    listed = partner.ok("GET", f"{partner.p}/types")  # a bare array, not paged
    assert [t["type"] for t in listed] == list(range(101, 201))


def test_r2_renaming_keeps_id_and_type(partner: Partner) -> None:
    created = partner.image_type(104, name="assets")
    assert created["versionAttributeId"] == 2104
    assert created["id"].isdigit() and int(created["id"]) > 2**53  # an integer string, as Afero's
    answer = partner.http.put(
        f"{partner.p}/types/104", json={"name": "sounds", "description": "wav"}
    )
    assert (answer.status_code, answer.content) == (204, b"")
    renamed = partner.ok("GET", f"{partner.p}/types/104")
    assert (renamed["id"], renamed["type"], renamed["name"]) == (created["id"], 104, "sounds")
    assert renamed["updatedTimestamp"] >= created["updatedTimestamp"]
    assert renamed["description"] == "wav"
    body = partner.refused("PUT", f"{partner.p}/types/104", 400, "R2", json={"type": 105})
    assert "104" in body["message"] and "105" in body["message"]
    partner.refused("PUT", f"{partner.p}/types/104", 400, "R2", json={"id": "another-id"})
    partner.refused("GET", f"{partner.p}/types/105", 404, "NOT_FOUND")


# -- R3: profiles -----------------------------------------------------------------------------


def test_r3_a_profile_needs_an_image_type_and_only_enables_existing_ones(partner: Partner) -> None:
    partner.device_type("blinky")
    blinky = json.loads(json.dumps(_profile("blinky")))
    path = f"{partner.local}/deviceTypes/blinky/profile"
    body = partner.refused("PUT", path, 409, "R3", json=blinky)
    assert "no image type" in body["message"] and "/types" in body["hint"]
    partner.image_type(102)
    body = partner.refused("PUT", path, 409, "R3", json=blinky)
    assert "101" in body["message"]
    partner.refused(
        "PUT", f"{partner.local}/deviceTypes/ghost/profile", 404, "NOT_FOUND", json=blinky
    )


def test_an_ota_profile_publishes_the_ota_attributes(partner: Partner) -> None:
    partner.image_type(101)
    partner.image_type(102)
    blinky = partner.device_type("blinky", "blinky")
    assert blinky["otaImageTypes"] == [101] and blinky["version"] == 1
    assert {1, 2, 1301, 1302, 2101} <= set(blinky["attributeIds"])
    assert blinky["mcu"] == {
        "interface": "uart",
        "baud": 115200,
        "parity": "none",
        "dataBits": 8,
        "stopBits": 1,
    }
    transfer = next(a for a in blinky["attributes"] if a["id"] == 1302)
    assert transfer["length"] == 253
    kettle = partner.device_type("kettle", "kettle")
    assert kettle["otaImageTypes"] == [101, 102]
    assert {1301, 1302, 2101, 2102} <= set(kettle["attributeIds"])
    again = partner.ok(
        "PUT", f"{partner.local}/deviceTypes/blinky/profile", json=_profile("blinky")
    )
    assert again["version"] == 2
    assert partner.ok("GET", f"{partner.local}/deviceTypes/blinky")["profile"]["version"] == 2


def test_the_reference_export_enables_no_type_so_its_device_type_is_eligible_for_nothing(
    partner: Partner,
) -> None:
    export = _reference_export()
    partner.device_type("modulo")
    path = f"{partner.local}/deviceTypes/modulo/profile/export"
    partner.refused("PUT", path, 409, "R3", json=export)  # R3: no image type yet
    partner.image_type(101)
    published = partner.ok("PUT", path, json=export)
    assert published["otaImageTypes"] == []
    assert published["name"] == "afBlink Modulo-1B UART"
    assert 1301 not in published["attributeIds"] and 1302 not in published["attributeIds"]
    assert {1, 1024, 65066} <= set(published["attributeIds"])
    partner.device_type("blinky", "blinky")
    image = partner.image(101)
    body = partner.refused(
        "POST",
        f"{partner.p}/deviceTypes/modulo/firmwareImages",
        409,
        "R6",
        json={"type": 101, "versionNumber": image["versionNumber"]},
    )
    assert "'modulo' is not eligible for image type 101" in body["message"]


def test_an_export_with_a_version_attribute_needs_the_ota_attributes(partner: Partner) -> None:
    partner.image_type(101)
    partner.device_type("modulo")
    export = _reference_export()
    attrs = export["deviceDescription"]["services"][0]["attributes"]
    attrs.append({"id": 2101, "dataType": "SINT64", "length": 8, "operations": ["READ"]})
    path = f"{partner.local}/deviceTypes/modulo/profile/export"
    body = partner.refused("PUT", path, 400, "VALIDATION", json=export)
    assert "2101" in body["message"] and "1301" in body["message"] and "1302" in body["message"]
    attrs.append({"id": 1301, "dataType": "BYTES", "length": 46, "operations": ["READ"]})
    attrs.append({"id": 1302, "dataType": "BYTES", "length": 200, "operations": ["WRITE"]})
    published = partner.ok("PUT", path, json=export)
    assert (published["otaImageTypes"], published["otaAttributeSize"]) == ([101], 200)


def test_a_bad_profile_is_a_validation_error_naming_the_field(partner: Partner) -> None:
    partner.image_type(101)
    partner.device_type("blinky")
    profile = _profile("blinky")
    profile["mcu"]["baud"] = 12345
    path = f"{partner.local}/deviceTypes/blinky/profile"
    body = partner.refused("PUT", path, 422, "VALIDATION", json=profile)
    assert "mcu" in body["message"] and "12345" in body["message"]
    profile = _profile("blinky") | {"otaImageTypes": [300]}
    body = partner.refused("PUT", path, 422, "VALIDATION", json=profile)
    assert "otaImageTypes" in body["message"]


# -- R4, R5: images ---------------------------------------------------------------------------


def test_r4_an_image_needs_an_existing_type_enabled_by_a_profile(partner: Partner) -> None:
    url = None
    partner.image_type(101)
    partner.image_type(102)
    partner.device_type("blinky", "blinky")  # enables 101 only
    url = partner.upload(b"firmware bytes")
    image = {"name": "a", "description": "d", "version": "1", "url": url}
    body = partner.refused("POST", f"{partner.p}/pool", 404, "R4", json=image | {"type": 105})
    assert "105" in body["message"]
    body = partner.refused("POST", f"{partner.p}/pool", 409, "R4", json=image | {"type": 102})
    assert "102" in body["message"] and "otaImageTypes" in body["hint"]
    assert (
        partner.ok("POST", f"{partner.p}/pool", 201, json=image | {"type": 101})["versionNumber"]
        == "1"
    )


def test_r5_metadata_is_required_and_type_name_version_is_unique(blinky_partner: Partner) -> None:
    partner = blinky_partner
    data = b"\x7fELF" + bytes(range(256)) * 4
    url = partner.upload(data)
    full = {
        "name": "app",
        "description": "first",
        "type": 101,
        "version": "1.0.0",
        "url": url,
        "tags": ["nightly", "nightly", " rc "],
    }
    body = partner.refused(
        "POST", f"{partner.p}/pool", 400, "R5", json=full | {"description": None}
    )
    assert "description" in body["message"]
    body = partner.refused("POST", f"{partner.p}/pool", 400, "R5", json={"type": 101, "url": url})
    assert "name, description, version" in body["message"]
    image = partner.ok("POST", f"{partner.p}/pool", 201, json=full)
    assert image["sha256"] == hashlib.sha256(data).hexdigest()
    assert (image["size"], image["tags"]) == (len(data), ["nightly", "rc"])
    assert image["id"].isdigit() and int(image["id"]) > 2**53
    body = partner.refused("POST", f"{partner.p}/pool", 409, "R5", json=full)
    assert "'app' version '1.0.0'" in body["message"]
    exists = f"{partner.p}/pool/types/101/names/app/versions"
    assert partner.ok("GET", f"{exists}/1.0.0/exists") == {"value": True}
    assert partner.ok("GET", f"{exists}/2.0.0/exists") == {"value": False}
    # the record about to be edited does not count against its own name and version
    query = {"excludeFirmwareImageId": image["id"]}
    assert partner.ok("GET", f"{exists}/1.0.0/exists", params=query) == {"value": False}
    assert partner.ok("GET", f"{exists}/1.0.0/exists", params={"excludeFirmwareImageId": "x"}) == {
        "value": True
    }
    partner.refused(
        "POST", f"{partner.p}/pool", 404, "NOT_FOUND", json=full | {"url": "/nowhere/abc"}
    )


def test_version_numbers_are_strings_unique_and_increasing_per_type(partner: Partner) -> None:
    partner.image_type(101)
    partner.image_type(102)
    partner.device_type("kettle", "kettle")
    got = [
        (i["type"], i["versionNumber"])
        for i in (
            partner.image(101, "1.0"),
            partner.image(102, "1.0"),
            partner.image(101, "1.1"),
            partner.image(101, "0.9"),
            partner.image(102, "1.1"),
        )
    ]
    assert got == [(101, "1"), (102, "1"), (101, "2"), (101, "3"), (102, "2")]
    one = partner.ok("GET", f"{partner.p}/pool/types/101/versionNumbers/3")
    assert (one["version"], one["versionNumber"]) == ("0.9", "3")
    partner.refused("GET", f"{partner.p}/pool/types/101/versionNumbers/9", 404, "NOT_FOUND")
    answer = partner.http.put(
        f"{partner.p}/pool/types/101/versionNumbers/3",
        json={"description": "rollback build", "tags": ["old"]},
    )
    assert (answer.status_code, answer.content) == (204, b"")
    edited = partner.ok("GET", f"{partner.p}/pool/types/101/versionNumbers/3")
    assert (edited["description"], edited["tags"], edited["versionNumber"]) == (
        "rollback build",
        ["old"],
        "3",
    )
    # the version string and the bytes may change too, the bytes only before any deployment
    new_url = partner.upload(b"rebuilt 0.9")
    path = f"{partner.p}/pool/types/101/versionNumbers/3"
    partner.ok("PUT", path, 204, json={"version": "0.9.1", "url": new_url})
    edited = partner.ok("GET", path)
    assert (edited["version"], edited["sha256"]) == (
        "0.9.1",
        hashlib.sha256(b"rebuilt 0.9").hexdigest(),
    )
    assert edited["url"].endswith(edited["sha256"]) and edited["size"] == len(b"rebuilt 0.9")
    body = partner.refused("PUT", path, 409, "R5", json={"version": "1.1"})
    assert "'app' version '1.1'" in body["message"]
    partner.refused("PUT", path, 404, "NOT_FOUND", json={"url": "/nowhere/abc"})


def test_an_image_keeps_its_bytes_once_deployed(blinky_partner: Partner) -> None:
    partner = blinky_partner
    partner.register("dev-1", "blinky")
    image = partner.image()
    partner.associate("blinky", image)
    partner.push("blinky", image, "dev-1")
    path = f"{partner.p}/pool/types/101/versionNumbers/{image['versionNumber']}"
    body = partner.refused("PUT", path, 409, "CONFLICT", json={"url": partner.upload(b"other")})
    assert "deployments" in body["message"]
    partner.ok("PUT", path, 204, json={"url": image["url"]})  # the same bytes: nothing changes
    assert partner.ok("GET", path)["sha256"] == image["sha256"]


# -- R6, R7: associations and search ---------------------------------------------------------


def test_r6_only_eligible_device_types_take_an_image(partner: Partner) -> None:
    for t in (101, 102, 104):
        partner.image_type(t)
    partner.device_type("blinky", "blinky")
    partner.device_type("kettle", "kettle")
    partner.device_type("bare")  # no profile
    both = partner.device_type("both", _profile("blinky") | {"otaImageTypes": [101, 104]})
    assert both["otaImageTypes"] == [101, 104]
    app = partner.image(101)
    assets = partner.image(104, associations={"lab": ["both"]})
    assert assets["associations"] == {"lab": ["both"]}
    path = f"{partner.p}/deviceTypes/kettle/firmwareImages"
    body = partner.refused("POST", path, 409, "R6", json={"type": 104, "versionNumber": "1"})
    assert body["message"] == (
        "R6: device type 'kettle' is not eligible for image type 104: "
        "its published profile does not enable type 104"
    )
    assert "publish a profile for 'kettle' that enables type 104" in body["hint"]
    body = partner.refused(
        "POST",
        f"{partner.p}/deviceTypes/bare/firmwareImages",
        409,
        "R6",
        json={"type": 101, "versionNumber": "1"},
    )
    assert "no published profile" in body["message"]
    partner.refused(
        "POST",
        f"{partner.p}/deviceTypes/ghost/firmwareImages",
        404,
        "NOT_FOUND",
        json={"type": 101, "versionNumber": "1"},
    )
    partner.refused(
        "POST",
        f"{partner.p}/pool",
        409,
        "R6",
        json={
            "name": "x",
            "description": "y",
            "version": "2",
            "type": 104,
            "url": assets["url"],
            "associations": {"lab": ["kettle"]},
        },
    )
    for dt in ("blinky", "kettle", "both"):  # one image, several device types
        partner.associate(dt, app)
    records = partner.ok("GET", f"{partner.p}/pool/types/101/versionNumbers/1/associations")
    assert [(r["partnerId"], r["deviceTypeId"]) for r in records] == [
        ("lab", "blinky"),
        ("lab", "both"),
        ("lab", "kettle"),
    ]
    assert {r["firmwareImageId"] for r in records} == {app["id"]}
    assert set(records[0]) == {
        "name", "partnerId", "email", "deviceTypeId", "deviceTypeName", "firmwareImageId"
    }  # fmt: skip
    listed = partner.ok("GET", f"{partner.p}/deviceTypes/both/firmwareImages")
    assert [i["type"] for i in listed["content"]] == [101, 104]
    assert {i["deviceTypeId"] for i in listed["content"]} == {"both"}
    assert (
        partner.ok("GET", f"{partner.p}/deviceTypes/both/firmwareImages/types/104")["totalElements"]
        == 1
    )
    one = f"{partner.p}/deviceTypes/kettle/firmwareImages/types/101/versionNumbers/1"
    assert (partner.ok("GET", one)["id"], partner.ok("GET", one)["deviceTypeId"]) == (
        app["id"],
        "kettle",
    )
    assert partner.ok("DELETE", one, 204) is None
    partner.refused("GET", one, 404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("versionNumber", True),  # would read as version number 1, an existing image
        ("type", True),
        ("type", False),
        ("type", " 101"),
        ("type", "1O1"),
        ("type", "101.0"),
        ("type", 101.0),
        ("type", "-101"),
        ("type", "٣"),  # a digit, but not an ASCII one
        ("versionNumber", "1.0"),
        ("versionNumber", "abc"),
        ("versionNumber", ""),
        ("versionNumber", -1),
        ("versionNumber", 1.0),
        ("versionNumber", None),
        ("versionNumber", "9" * 40),
    ],
)
def test_associating_refuses_a_type_or_version_number_that_is_no_whole_number(
    blinky_partner: Partner, field: str, value: Any
) -> None:
    partner = blinky_partner
    image = partner.image()  # type 101, version number "1"
    path = f"{partner.p}/deviceTypes/blinky/firmwareImages"
    body = {"type": 101, "versionNumber": "1", field: value}
    refused = partner.refused("POST", path, 422, "VALIDATION", json=body)
    assert f"body field '{field}'" in refused["message"], refused
    other = "type" if field == "versionNumber" else "versionNumber"
    assert f"'{other}'" not in refused["message"]
    assert partner.ok("GET", path)["totalElements"] == 0, "nothing may have been associated"
    accepted = partner.ok("POST", path, 201, json={"type": 101, "versionNumber": "1"})
    assert accepted["id"] == image["id"]  # the same request, well spelled, goes through


def test_associating_takes_type_and_version_number_as_integers_or_digit_strings(
    blinky_partner: Partner,
) -> None:
    """Afero's schema for this operation quotes both fields as strings; JSON integers work too."""
    partner = blinky_partner
    first, second, third = (partner.image(101, v) for v in ("1.0", "1.1", "1.2"))
    path = f"{partner.p}/deviceTypes/blinky/firmwareImages"
    quoted = partner.ok("POST", path, 201, json={"type": "101", "versionNumber": "1"})
    assert (quoted["id"], quoted["type"], quoted["versionNumber"]) == (first["id"], 101, "1")
    assert quoted["deviceTypeId"] == "blinky"
    numbers = partner.ok("POST", path, 201, json={"type": 101, "versionNumber": 2})
    assert (numbers["id"], numbers["versionNumber"]) == (second["id"], "2")
    record = partner.ok("POST", path, 201, json=third | {"type": "101"})  # the pool record
    assert (record["id"], record["type"]) == (third["id"], 101)
    leading = partner.ok("POST", path, 201, json={"type": "0101", "versionNumber": "03"})
    assert leading["id"] == third["id"]  # digits are read as a number: 0101 is type 101
    listed = partner.ok("GET", path)["content"]
    assert [i["id"] for i in listed] == [first["id"], second["id"], third["id"]]
    body = partner.refused(
        "POST", path, 422, "VALIDATION", json={"type": "65536", "versionNumber": 1}
    )
    assert "body field 'type'" in body["message"]  # the type's range holds for digits too


def test_r7_search_by_type_device_type_and_all_tags(partner: Partner) -> None:
    partner.image_type(101)
    partner.image_type(102)
    partner.device_type("kettle", "kettle")
    partner.device_type("blinky", "blinky")
    partner.image(101, "1", tags=["nightly", "rc"])
    partner.image(101, "2", tags=["nightly"])
    partner.image(102, "1", tags=["rc", "nightly", "signed"], associations={"lab": ["kettle"]})

    def versions(query: str) -> list[tuple[int, str]]:
        page = partner.ok("GET", f"{partner.p}/pool?{query}")
        return [(i["type"], i["version"]) for i in page["content"]]

    assert versions("tags=nightly") == [(101, "1"), (101, "2"), (102, "1")]
    assert versions("tags=nightly,rc") == [(101, "1"), (102, "1")]
    assert versions("tags=rc,signed,nightly") == [(102, "1")]
    assert versions("tags=rc,missing") == []
    assert versions("type=101&tags=rc") == [(101, "1")]
    assert versions("deviceTypeId=kettle") == [(102, "1")]
    assert [i["version"] for i in partner.ok("GET", f"{partner.p}/pool/types/101")["content"]] == [
        "1",
        "2",
    ]
    assert partner.ok("GET", f"{partner.p}/tags") == ["nightly", "rc", "signed"]
    # `tags` also filters the per-type and per-device-type lists
    by_type = partner.ok("GET", f"{partner.p}/pool/types/101?tags=rc")
    assert [i["version"] for i in by_type["content"]] == ["1"]
    partner.associate("kettle", {"type": 101, "versionNumber": "2"})
    kettle = f"{partner.p}/deviceTypes/kettle/firmwareImages"
    assert [i["type"] for i in partner.ok("GET", f"{kettle}?tags=signed")["content"]] == [102]
    assert partner.ok("GET", f"{kettle}/types/101?tags=rc")["content"] == []
    assert len(partner.ok("GET", f"{kettle}/types/101?tags=nightly")["content"]) == 1


def test_paging_over_60_images(blinky_partner: Partner) -> None:
    partner = blinky_partner
    for i in range(60):
        partner.image(101, f"1.0.{i}")
    first = partner.ok("GET", f"{partner.p}/pool?size=25")
    assert {
        k: first[k] for k in ("number", "size", "totalPages", "totalElements", "numberOfElements")
    } == {"number": 0, "size": 25, "totalPages": 3, "totalElements": 60, "numberOfElements": 25}
    last = partner.ok("GET", f"{partner.p}/pool?size=25&page=2")
    assert last["numberOfElements"] == 10
    assert [i["versionNumber"] for i in last["content"]] == [str(n) for n in range(51, 61)]
    default = partner.ok("GET", f"{partner.p}/pool")
    assert (default["size"], default["numberOfElements"], default["totalPages"]) == (50, 50, 2)
    beyond = partner.ok("GET", f"{partner.p}/pool?size=25&page=7")
    assert (beyond["numberOfElements"], beyond["content"]) == (0, [])
    newest = partner.ok("GET", f"{partner.p}/pool?size=3&sort=versionNumber,desc")
    assert [i["versionNumber"] for i in newest["content"]] == ["60", "59", "58"]
    assert newest["sort"] == "versionNumber,desc"
    body = partner.refused("GET", f"{partner.p}/pool?size=501", 422, "VALIDATION")
    assert "size" in body["message"]
    by_description = partner.ok("GET", f"{partner.p}/pool?size=2&sort=description")
    assert [i["description"] for i in by_description["content"]] == ["app 1.0.0", "app 1.0.1"]
    assert by_description["sort"] == "description,asc"
    body = partner.refused("GET", f"{partner.p}/pool?sort=colour,asc", 400, "VALIDATION")
    assert "colour" in body["message"] and "versionNumber" in body["hint"]


# -- the error body, OpenAPI ------------------------------------------------------------------


def test_bad_input_is_a_readable_4xx_never_a_500(partner: Partner) -> None:
    body = partner.refused("POST", f"{partner.p}/types", 422, "VALIDATION", json={"type": "abc"})
    assert "'name'" in body["message"] and "'type'" in body["message"]
    body = partner.refused(
        "POST",
        f"{partner.p}/types",
        422,
        "VALIDATION",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert "not valid JSON" in body["message"]
    partner.refused("POST", f"{partner.p}/types", 422, "VALIDATION")
    partner.refused("GET", f"{partner.p}/types/abc", 422, "VALIDATION")
    body = partner.refused("GET", f"{partner.p}/no/such/thing", 404, "NOT_FOUND")
    assert "no such path" in body["message"]
    assert (body["status"], body["error"]) == (404, "Not Found")  # the conventional pair
    partner.refused("DELETE", f"{partner.p}/types", 405, "VALIDATION")
    partner.refused(
        "POST", f"{partner.p}/binaries/moveToRepository", 404, "NOT_FOUND", json={"value": "0" * 64}
    )
    partner.refused(
        "POST",
        f"{partner.p}/binaries/moveToRepository",
        404,
        "NOT_FOUND",
        json={"value": "../../etc/passwd"},
    )


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
FIELDS = (
    "name",
    "description",
    "type",
    "version",
    "url",
    "tags",
    "associations",
    "value",
    "versionNumber",
    "id",
    "deviceId",
    "deviceTypeId",
    "otaImageTypes",
    "mcu",
    "attributes",
    "versions",
    "state",
    "reason",
    "bytes",
    "total",
)


def test_no_body_or_path_makes_a_500(blinky_partner: Partner, ota: LocalService) -> None:
    partner = blinky_partner
    board = Board(ota.base_url, "dev-1", partner.register("dev-1", "blinky"))
    image = partner.image()
    partner.associate("blinky", image)
    deployment = partner.push("blinky", image, "dev-1")["deploymentId"]
    routes = [
        ("POST", f"{partner.p}/types"),
        ("PUT", f"{partner.p}/types/101"),
        ("POST", f"{partner.p}/pool"),
        ("POST", f"{partner.p}/binaries/moveToRepository"),
        ("POST", f"{partner.p}/deviceTypes/blinky/firmwareImages"),
        ("PUT", f"{partner.p}/deviceTypes/blinky/firmwareImages/x/push"),
        ("PUT", f"{partner.local}/deviceTypes/blinky/profile"),
        ("PUT", f"{partner.local}/deviceTypes/blinky/profile/export"),
        ("POST", f"{partner.local}/devices"),
        ("POST", f"{partner.local}/deviceTypes"),
        ("POST", f"{board.d}/checkin"),
        ("POST", f"{board.d}/attributes"),
        ("POST", f"{board.d}/deployments/{deployment}/progress"),
    ]

    @settings(
        max_examples=80,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(
        st.sampled_from(routes),
        st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=4),
        st.text(max_size=12),
    )
    def check(route: tuple[str, str], body: dict, segment: str) -> None:
        method, path = route
        client = board.http if path.startswith("/v1/device") else partner.http
        r = client.request(method, path, json=body)
        assert r.status_code < 500, r.text
        r = partner.http.get(f"{partner.p}/pool/types/101/versionNumbers/{segment!r}")
        assert r.status_code < 500, r.text

    check()


def test_openapi_is_served(ota: LocalService) -> None:
    spec = httpx.get(f"{ota.base_url}/openapi.json").json()
    assert (
        "/v1/ota/partners/{partnerId}/deviceTypes/{dt}/firmwareImages/{imageId}/push"
        in spec["paths"]
    )
    assert "/v1/device/{deviceId}/checkin" in spec["paths"]
    upload = spec["paths"]["/v1/ota/partners/{partnerId}/binaries"]["post"]["requestBody"]
    assert {"application/octet-stream", "multipart/form-data"} <= set(upload["content"])


def _profile(name: str) -> dict:
    from rig.ota.service.profiles import load_profile

    return load_profile(PROFILES / f"{name}.yaml").model_dump()


def _reference_export() -> dict:
    if not REFERENCE_EXPORT.is_dir():
        pytest.skip(f"the reference Profile Editor export is not at {REFERENCE_EXPORT}")
    return {
        "deviceType": json.loads((REFERENCE_EXPORT / "device-type.json").read_text()),
        "deviceDescription": json.loads((REFERENCE_EXPORT / "device-description.json").read_text()),
    }
