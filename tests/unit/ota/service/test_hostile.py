"""Hostile input against the local OTA service (issue 12): each bad request ends quickly with a
clear error, in bounded memory and disk, stores nothing, and leaves the service working.

In process (`LocalService`): every case with its expected status, rule and message fragments;
after each, the same keep-alive connection answers again and every table and stored file is as
it was. As a real `rig ota serve` process: memory and disk bounds (peak RSS from
/proc/PID/status, bytes written from /proc/PID/io), a client hanging up mid-request (one log
line, no traceback), and the start-up sweep of uploads a kill left behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import selectors
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from rig.cli.main import build_parser
from rig.ota.service.auth import PartnerAuth
from rig.ota.service.serve import LocalService
from tests.unit.helpers import wait_until

REPO = Path(__file__).resolve().parents[4]
BLINKY = REPO / "fixtures" / "profiles" / "blinky.yaml"
EXPORTS = sorted(
    {
        p.parent
        for root in (REPO / "fixtures", Path("/work/shared/reference"))
        if root.is_dir()
        for p in root.rglob("device-description.json")
    }
)
TOKEN, OTHER_TOKEN = "hostile-token-1", "hostile-token-2"
PARTNERS = [PartnerAuth("lab", TOKEN), PartnerAuth("other", OTHER_TOKEN)]
MAX_IMAGE = 64 * 1024
P, L, D = "/v1/ota/partners/lab", "/v1/local/partners/lab", "/v1/device/dev-1"
KB100 = "x" * 100_000
MB = 1024 * 1024
JSON = {"Content-Type": "application/json"}


# -- in process: every case, its clear error, nothing stored, the connection still usable ------


class Lab:
    """A running service with an image type, a device type, a kept image and a device."""

    def __init__(self, svc: LocalService) -> None:
        self.svc = svc
        s = svc.service
        s.create_image_type("lab", "application", "", 101)
        s.create_device_type("lab", "blinky")
        self.profile = yaml.safe_load(BLINKY.read_text())
        s.publish_profile("lab", "blinky", self.profile)
        image = s.add_image(
            "lab", b"hostile" * 100, type=101, name="app", description="d", version="1.0.0"
        )
        self.url = image["url"]
        self.secret = s.register_device("lab", "dev-1", "blinky")["secret"]
        s.create_device_type("other", "kettle")
        self.http = httpx.Client(base_url=svc.base_url, timeout=30)

    def auth(self, who: str) -> dict[str, str]:
        return {
            "lab": {"Authorization": f"Bearer {TOKEN}"},
            "other": {"Authorization": f"Bearer {OTHER_TOKEN}"},
            "device": {"Authorization": f"Device {self.secret}"},
        }[who]

    def image(self, **changes: Any) -> dict[str, Any]:
        body = {"name": "app", "description": "d", "type": 101, "version": "2", "url": self.url}
        return body | changes

    def snapshot(self) -> dict[str, Any]:
        """Every row of every table, and every stored file with its size."""
        store = self.svc.service.store
        tables = [r["name"] for r in store.all("SELECT name FROM sqlite_master WHERE type='table'")]
        rows = {t: sorted(map(repr, store.all(f"SELECT * FROM {t}"))) for t in tables}
        data = self.svc.data_dir
        files = {
            str(p.relative_to(data)): p.stat().st_size
            for d in ("staging", "blobs")
            for p in (data / d).rglob("*")
            if p.is_file()
        }
        return {"rows": rows, "files": files}


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with LocalService(tmp_path / "ota", PARTNERS, MAX_IMAGE) as svc:
        lab = Lab(svc)
        try:
            yield lab
        finally:
            lab.http.close()


def _client_port(response: httpx.Response) -> Any:
    return response.extensions["network_stream"].get_extra_info("client_addr")


def chunks(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    """A body without Content-Length (httpx sends an iterator chunked)."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


BOUNDARY = "hostile-boundary"


def multipart_bytes(parts: list[tuple[str, str | None, bytes]], end: bool = True) -> bytes:
    """A hand-made multipart body: (field, filename or None, content) per part."""
    body = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        body += content + b"\r\n"
    return body + (f"--{BOUNDARY}--\r\n".encode() if end else b"")


def multipart(parts: list[tuple[str, str | None, bytes]], end: bool = True) -> dict[str, Any]:
    """httpx arguments of a hand-made multipart body, sent without Content-Length."""
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    return {"content": chunks(multipart_bytes(parts, end)), "headers": headers}


def export(**description_changes: Any) -> dict[str, Any]:
    folder = REPO / "fixtures" / "profiles" / "afBlink_Modulo-1B_UART"
    device_type = json.loads((folder / "device-type.json").read_text())
    description = json.loads((folder / "device-description.json").read_text())
    return {"deviceType": device_type, "deviceDescription": description | description_changes}


def services(value: Any) -> Callable[[Lab], dict[str, Any]]:
    return lambda _: {"json": export(services=value)}


@dataclass
class Case:
    """One hostile request and the answer it must get."""

    method: str
    path: str
    send: Callable[[Lab], dict[str, Any]]
    status: int
    rule: str
    says: tuple[str, ...] = ()
    who: str = "lab"
    extra: dict[str, Any] = field(default_factory=dict)


def body(value: Any) -> Callable[[Lab], dict[str, Any]]:
    return lambda _: {"json": value}


def raw(text: bytes) -> Callable[[Lab], dict[str, Any]]:
    return lambda _: {"content": text, "headers": JSON}


TOO_LONG = ("at most",)
PAST_JSON_LIMIT = b'{"name": "' + b"x" * (MB + 10) + b'", "type": 150}'
CASES: dict[str, Case] = {
    # Bodies over the JSON limit (1 MiB): refused while read, before anything is parsed.
    "json body over the limit, Content-Length": Case(
        "POST", f"{P}/types", raw(PAST_JSON_LIMIT), 413, "TOO_LARGE",
        ("1024 KiB", "--max-json-kib")),
    "json body over the limit, chunked": Case(
        "POST", f"{P}/types", lambda _: {"content": chunks(PAST_JSON_LIMIT), "headers": JSON},
        413, "TOO_LARGE", ("1024 KiB", "--max-json-kib")),
    # Field limits: what used to be stored and then carried by every list.
    "image type name of 100 KB": Case(
        "POST", f"{P}/types", body({"name": KB100, "type": 150}), 422, "VALIDATION",
        ("'name'", "at most 256 characters")),
    "image type description of 100 KB": Case(
        "POST", f"{P}/types", body({"name": "n", "description": KB100}), 422, "VALIDATION",
        ("'description'", "at most 4096 characters")),
    "image type rename to 100 KB": Case(
        "PUT", f"{P}/types/101", body({"name": KB100}), 422, "VALIDATION", ("'name'", "256")),
    "image name of 100 KB": Case(
        "POST", f"{P}/pool", lambda lab: {"json": lab.image(name=KB100)}, 422, "VALIDATION",
        ("'name'", "256")),
    "image description of 100 KB": Case(
        "POST", f"{P}/pool", lambda lab: {"json": lab.image(description=KB100)}, 422,
        "VALIDATION", ("'description'", "4096")),
    "image version string of 100 KB": Case(
        "POST", f"{P}/pool", lambda lab: {"json": lab.image(version=KB100)}, 422, "VALIDATION",
        ("'version'", "at most 128 characters")),
    "a tag of 100 KB": Case(
        "POST", f"{P}/pool", lambda lab: {"json": lab.image(tags=["ok", KB100])}, 422,
        "VALIDATION", ("'tags[1]'", "at most 64 characters")),
    "10,000 tags": Case(
        "POST", f"{P}/pool", lambda lab: {"json": lab.image(tags=[f"t{i}" for i in range(10_000)])},
        422, "VALIDATION", ("'tags'", "at most 50 items")),
    "51 tags on an image update": Case(
        "PUT", f"{P}/pool/types/101/versionNumbers/1", body({"tags": [f"t{i}" for i in range(51)]}),
        422, "VALIDATION", ("'tags'", "at most 50")),
    "a search for 51 tags": Case(
        "GET", f"{P}/pool", lambda _: {"params": {"tags": ",".join(f"t{i}" for i in range(51))}},
        400, "VALIDATION", ("51 tags", "at most 50")),
    "an image url of 100 KB": Case(
        "POST", f"{P}/pool", lambda lab: {"json": lab.image(url=KB100)}, 422, "VALIDATION",
        ("'url'", "at most 2048 characters")),
    "a moveToRepository value of 100 KB": Case(
        "POST", f"{P}/binaries/moveToRepository", body({"value": KB100}), 422, "VALIDATION",
        ("'value'", "2048")),
    "an associated device type id of 100 KB": Case(
        "POST", f"{P}/pool", lambda lab: {"json": lab.image(associations={"lab": [KB100]})},
        422, "VALIDATION", ("associations", "128")),
    "a device id of 100 KB": Case(
        "POST", f"{L}/devices", body({"deviceId": KB100, "deviceTypeId": "blinky"}), 422,
        "VALIDATION", ("'deviceId'", "at most 128 characters")),
    "a device type id of 100 KB": Case(
        "POST", f"{L}/deviceTypes", body({"id": KB100}), 422, "VALIDATION",
        ("'id'", "at most 128 characters")),
    "a device type name of 100 KB": Case(
        "POST", f"{L}/deviceTypes", body({"id": "kettle", "name": KB100}), 422, "VALIDATION",
        ("'name'", "256")),
    "a profile name of 100 KB": Case(
        "PUT", f"{L}/deviceTypes/blinky/profile",
        lambda lab: {"json": lab.profile | {"name": KB100}}, 422, "VALIDATION", ("'name'", "256")),
    "a progress detail of 100 KB": Case(
        "POST", f"{D}/deployments/x/progress", body({"state": "ACCEPTED", "detail": KB100}), 422,
        "VALIDATION", ("'detail'", "at most 1024 characters"), who="device"),
    "a check-in with 101 versions": Case(
        "POST", f"{D}/checkin", body({"versions": {str(100 + i): "1" for i in range(101)}}), 422,
        "VALIDATION", ("'versions'",), who="device"),
    # Strict integers: a boolean is not a number, nor a digit string or 150.0 a type number.
    '"type": true in POST /types': Case(
        "POST", f"{P}/types", body({"name": "b", "type": True}), 422, "VALIDATION",
        ("'type'", "valid integer")),
    '"type": "150" in POST /types': Case(
        "POST", f"{P}/types", body({"name": "s", "type": "150"}), 422, "VALIDATION", ("'type'",)),
    '"type": 150.0 in POST /types': Case(
        "POST", f"{P}/types", body({"name": "f", "type": 150.0}), 422, "VALIDATION", ("'type'",)),
    '"type": true in PUT /types/101': Case(
        "PUT", f"{P}/types/101", body({"type": True}), 422, "VALIDATION", ("'type'",)),
    '"type": true in POST /pool': Case(
        "POST", f"{P}/pool", lambda lab: {"json": lab.image(type=True)}, 422, "VALIDATION",
        ("'type'", "valid integer")),
    '"type": false in POST /pool': Case(
        "POST", f"{P}/pool", lambda lab: {"json": lab.image(type=False)}, 422, "VALIDATION",
        ("'type'",)),
    '"type": -101 in POST /types is R1': Case(
        "POST", f"{P}/types", body({"name": "n", "type": -101}), 400, "R1",
        ("R1: image type -101 is outside 101..200",)),
    '"type": 10**30 in POST /types is R1': Case(
        "POST", f"{P}/types", body({"name": "n", "type": 10**30}), 400, "R1",
        ("(31 digits) is outside 101..200",)),
    '"type": -101 in POST /pool is R1': Case(
        "POST", f"{P}/pool", lambda lab: {"json": lab.image(type=-101)}, 400, "R1",
        ("image type -101 is outside 101..200",)),
    '"bytes": true in a progress report': Case(
        "POST", f"{D}/deployments/x/progress", body({"state": "ACCEPTED", "bytes": True}), 422,
        "VALIDATION", ("'bytes'", "valid integer"), who="device"),
    '"id": true in an attribute report': Case(
        "POST", f"{D}/attributes", body({"attributes": [{"id": True, "value": "1"}]}), 422,
        "VALIDATION", ("'attributes[0].id'",), who="device"),
    'a profile with "otaImageTypes": [true]': Case(
        "PUT", f"{L}/deviceTypes/blinky/profile",
        lambda lab: {"json": lab.profile | {"otaImageTypes": [True]}}, 422, "VALIDATION",
        ("'otaImageTypes[0]'", "valid integer")),
    'a profile with "stopBits": true': Case(
        "PUT", f"{L}/deviceTypes/blinky/profile",
        lambda lab: {"json": lab.profile | {"mcu": {"stopBits": True}}}, 422, "VALIDATION",
        ("'mcu.stopBits'",)),
    'a profile attribute with "length": true': Case(
        "PUT", f"{L}/deviceTypes/blinky/profile",
        lambda lab: {"json": lab.profile | {"attributes": [{"id": 1, "length": True}]}}, 422,
        "VALIDATION", ("'attributes[0].length'",)),
    # Profile Editor exports of the wrong shape: 422 naming the JSON path (these were 500s).
    "export services: 5": Case(
        "PUT", f"{L}/deviceTypes/blinky/profile/export", services(5), 422, "VALIDATION",
        ("'deviceDescription.services'", "valid list")),
    'export services: "x"': Case(
        "PUT", f"{L}/deviceTypes/blinky/profile/export", services("x"), 422, "VALIDATION",
        ("'deviceDescription.services'",)),
    "export services: [5]": Case(
        "PUT", f"{L}/deviceTypes/blinky/profile/export", services([5]), 422, "VALIDATION",
        ("'deviceDescription.services[0]'", "valid dictionary")),
    'export services: ["x"]': Case(
        "PUT", f"{L}/deviceTypes/blinky/profile/export", services(["x"]), 422, "VALIDATION",
        ("'deviceDescription.services[0]'",)),
    "export services: [[1]]": Case(
        "PUT", f"{L}/deviceTypes/blinky/profile/export", services([[1]]), 422, "VALIDATION",
        ("'deviceDescription.services[0]'",)),
    'export services: [{"attributes": 5}]': Case(
        "PUT", f"{L}/deviceTypes/blinky/profile/export", services([{"attributes": 5}]), 422,
        "VALIDATION", ("'deviceDescription.services[0].attributes'", "valid list")),
    'export services: [{"attributes": ["x"]}]': Case(
        "PUT", f"{L}/deviceTypes/blinky/profile/export", services([{"attributes": ["x"]}]), 422,
        "VALIDATION", ("'deviceDescription.services[0].attributes[0]'",)),
    'export attribute "id": "1"': Case(
        "PUT", f"{L}/deviceTypes/blinky/profile/export",
        services([{"attributes": [{"id": "1"}]}]), 422, "VALIDATION",
        ("'deviceDescription.services[0].attributes[0].id'", "valid integer")),
    'export attribute "id": true': Case(
        "PUT", f"{L}/deviceTypes/blinky/profile/export",
        services([{"attributes": [{"id": True}]}]), 422, "VALIDATION",
        ("services[0].attributes[0].id'",)),
    'export attribute "length": "big"': Case(
        "PUT", f"{L}/deviceTypes/blinky/profile/export",
        services([{"attributes": [{"id": 1, "length": "big"}]}]), 422, "VALIDATION",
        ("services[0].attributes[0].length'",)),
    'export attribute "operations": "READ"': Case(
        "PUT", f"{L}/deviceTypes/blinky/profile/export",
        services([{"attributes": [{"id": 1, "operations": "READ"}]}]), 422, "VALIDATION",
        ("services[0].attributes[0].operations'", "valid list")),
    "export without services": Case(
        "PUT", f"{L}/deviceTypes/blinky/profile/export",
        lambda _: {"json": {"deviceType": {}, "deviceDescription": {"schemaVersion": 1}}}, 422,
        "VALIDATION", ("'deviceDescription.services'", "Field required")),
    'export device type "name": 5': Case(
        "PUT", f"{L}/deviceTypes/blinky/profile/export",
        lambda _: {"json": export() | {"deviceType": {"name": 5}}}, 422, "VALIDATION",
        ("'deviceType.name'",)),
    # JSON that Python reads but cannot store or answer.
    "a number too large for a double (1e999)": Case(
        "POST", f"{D}/attributes", raw(b'{"attributes": [{"id": 5, "value": 1e999}]}'), 422,
        "VALIDATION", ("not valid JSON", "1e999 is too large"), who="device"),
    "JSON nested 100,000 deep": Case(
        "POST", f"{P}/types", raw(b"[" * 100_000 + b"]" * 100_000), 422, "VALIDATION",
        ("not valid JSON", "nested too deeply")),
    "an integer of 5000 digits": Case(
        "POST", f"{P}/types", raw(b'{"name": "n", "type": ' + b"9" * 5000 + b"}"), 422,
        "VALIDATION", ("not valid JSON", "more than 4300 digits")),
    "a body that is not UTF-8": Case(
        "POST", f"{P}/types", raw(b'{"name": "\xff\xfe"}'), 422, "VALIDATION",
        ("not valid JSON", "not UTF-8")),
    # Uploads: the image limit holds while streaming, multipart too; the hint names a real option.
    "an octet-stream upload over the limit, chunked": Case(
        "POST", f"{P}/binaries", lambda _: {"content": chunks(b"z" * (MAX_IMAGE + 1))}, 413,
        "TOO_LARGE", ("65536 bytes", "--max-image-mib")),
    "a multipart upload over the limit, chunked": Case(
        "POST", f"{P}/binaries", lambda _: multipart([("file", "fw.bin", b"z" * (MAX_IMAGE + 1))]),
        413, "TOO_LARGE", ("65536 bytes", "--max-image-mib")),
    "a multipart upload with two files": Case(
        "POST", f"{P}/binaries",
        lambda _: multipart([("file", "a.bin", b"a"), ("file", "b.bin", b"b")]), 400,
        "VALIDATION", ("exactly one file", "second file")),
    "a multipart upload with the file in another field": Case(
        "POST", f"{P}/binaries", lambda _: multipart([("firmware", "fw.bin", b"a")]), 400,
        "VALIDATION", ("'file'", "'firmware'")),
    "a multipart upload with no file": Case(
        "POST", f"{P}/binaries", lambda _: multipart([("file", None, b"not a file")]), 400,
        "VALIDATION", ("exactly one file",)),
    "a multipart upload cut short": Case(
        "POST", f"{P}/binaries", lambda _: multipart([("file", "fw.bin", b"a" * 100)], end=False),
        400, "VALIDATION", ("cut short",)),
    "a multipart upload with 21 fields": Case(
        "POST", f"{P}/binaries", lambda _: multipart([(f"f{i}", None, b"v") for i in range(21)]),
        400, "VALIDATION", ("more than 20 fields",)),
    "a multipart upload with a field of 100 KB": Case(
        "POST", f"{P}/binaries", lambda _: multipart([("note", None, KB100.encode())]), 400,
        "VALIDATION", ("besides 'file'",)),
    "a multipart upload that goes on past its end": Case(
        "POST", f"{P}/binaries",
        lambda _: {**multipart([("file", "fw.bin", b"a")]),
                   "content": chunks(multipart_bytes([("file", "fw.bin", b"a")]) + b"z" * MB)},
        413, "TOO_LARGE", ("65536 bytes",)),
    "a multipart upload without a boundary": Case(
        "POST", f"{P}/binaries",
        lambda _: {"content": b"--x\r\n", "headers": {"Content-Type": "multipart/form-data"}},
        400, "VALIDATION", ("boundary",)),
    # Another partner's device id: taken, and nothing about whose.
    "another partner's device id": Case(
        "POST", "/v1/local/partners/other/devices",
        body({"deviceId": "dev-1", "deviceTypeId": "kettle"}), 409, "CONFLICT",
        ("device id 'dev-1' is already registered",), who="other"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_a_hostile_request_gets_its_clear_error_and_changes_nothing(lab: Lab, name: str) -> None:
    case = CASES[name]
    warm = lab.http.get("/v1/health")  # opens the connection the case must not break
    before = lab.snapshot()
    kwargs = case.send(lab)
    kwargs["headers"] = {**kwargs.get("headers", {}), **lab.auth(case.who)}
    started = time.monotonic()
    answer = lab.http.request(case.method, case.path, **kwargs)
    assert time.monotonic() - started < 10, f"{name} took {time.monotonic() - started:.1f} s"
    got = answer.json()
    assert (answer.status_code, got.get("rule")) == (case.status, case.rule), got
    text = f"{got['message']} | {got['hint']}"
    for fragment in case.says:
        assert fragment in text, f"{fragment!r} not in {text!r}"
    assert "--max-image-bytes" not in text  # an option that never existed
    assert got["hint"], "every refusal says what to do"
    assert len(got["message"]) < 1000, "a refusal never echoes a huge input"
    after = lab.http.get("/v1/health")  # the same keep-alive connection still serves
    assert after.status_code == 200
    assert _client_port(after) == _client_port(warm) == _client_port(answer)
    assert lab.snapshot() == before, "a refused request stored something"


def test_a_taken_device_id_gets_the_same_answer_whoever_holds_it(lab: Lab) -> None:
    """Device ids are the ASR's hardware id, unique world-wide, and the device API addresses a
    device by id alone, so they are not scoped per partner; the 409 names no one."""
    body = {"deviceId": "dev-1", "deviceTypeId": "kettle"}
    theirs = lab.http.post("/v1/local/partners/other/devices", json=body, headers=lab.auth("other"))
    body["deviceTypeId"] = "blinky"
    mine = lab.http.post(f"{L}/devices", json=body, headers=lab.auth("lab"))
    assert theirs.status_code == mine.status_code == 409
    assert theirs.json() == mine.json()
    assert "lab" not in json.dumps(theirs.json())  # the owner is not named
    # and the ids stay addressable by id alone: the other partner sees no such device
    seen = lab.http.get("/v1/accounts/other/devices/dev-1", headers=lab.auth("other"))
    assert seen.status_code == 404


@pytest.mark.parametrize("folder", EXPORTS, ids=[str(f.name) for f in EXPORTS])
def test_real_profile_editor_exports_keep_publishing(lab: Lab, folder: Path) -> None:
    body = {
        "deviceType": json.loads((folder / "device-type.json").read_text()),
        "deviceDescription": json.loads((folder / "device-description.json").read_text()),
    }
    answer = lab.http.put(
        f"{L}/deviceTypes/blinky/profile/export", json=body, headers=lab.auth("lab")
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["name"] == body["deviceType"]["name"]


def test_fields_at_their_limits_are_accepted(lab: Lab) -> None:
    """The limits refuse only what is over them."""
    image = lab.image(
        name="n" * 256, description="d" * 4096, version="v" * 128,
        tags=[f"{i:02d}" + "t" * 62 for i in range(50)],
    )  # fmt: skip
    answer = lab.http.post(f"{P}/pool", json=image, headers=lab.auth("lab"))
    assert answer.status_code == 201, answer.text
    assert len(answer.json()["tags"]) == 50
    device = {"deviceId": "d" * 128, "deviceTypeId": "blinky"}
    assert lab.http.post(f"{L}/devices", json=device, headers=lab.auth("lab")).status_code == 201
    name = {"name": "x" * 256, "type": 150}
    assert lab.http.post(f"{P}/types", json=name, headers=lab.auth("lab")).status_code == 201
    search = {"tags": ",".join(f"{i:02d}" + "t" * 62 for i in range(50))}
    found = lab.http.get(f"{P}/pool", params=search, headers=lab.auth("lab")).json()
    assert found["totalElements"] == 1
    # a JSON body just under the limit is read
    padded = b'{"name": "ok", "type": 151, "pad": "' + b" " * (MB - 100) + b'"}'
    answer = lab.http.post(f"{P}/types", content=padded, headers=JSON | lab.auth("lab"))
    assert answer.status_code == 201, answer.text[:300]


def test_staged_files_are_only_swept_at_start_up(lab: Lab) -> None:
    """While the service runs, nothing removes a staged file: it may be an upload in flight."""
    orphan = lab.svc.data_dir / "staging" / ("0" * 64)
    orphan.write_bytes(b"no record names me")
    lab.http.post(f"{P}/binaries", content=b"fresh", headers=lab.auth("lab")).raise_for_status()
    assert orphan.is_file()


def test_serve_help_and_docs_give_every_limit(capsys: pytest.CaptureFixture[str]) -> None:
    serve = build_parser().parse_args(
        ["ota", "serve", "--max-image-mib", "2", "--max-json-kib", "8"]
    )
    assert (serve.max_image_mib, serve.max_json_kib) == (2, 8)  # the options the hints name
    with pytest.raises(SystemExit):
        build_parser().parse_args(["ota", "serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for limit in ("--max-image-mib", "--max-json-kib", "256", "4096", "128", "64", "50", "2048"):
        assert limit in text, limit
    docs = (REPO / "docs" / "ota-api.md").read_text()
    limits = docs[docs.index("## Limits") :]
    for limit in ("--max-image-mib", "--max-json-kib", "1 MiB", "64 MiB", "256", "4096", "128"):
        assert limit in limits, limit


# -- a real `rig ota serve`: memory, disk, hang-ups, the start-up sweep -------------------------


class Served:
    """`python -m rig.cli.main ota serve` on a data folder; its stderr goes to a file."""

    def __init__(self, data: Path, log: Path, *options: str) -> None:
        self.data, self.log_path = data, log
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rig.cli.main", "ota", "serve", "--port", "0",
             "--data", str(data), "--partner", "lab", "--token", TOKEN, *options],
            cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log,
        )  # fmt: skip
        self.url = self._first_line(20.0)
        self.http = httpx.Client(
            base_url=self.url, timeout=120, headers={"Authorization": f"Bearer {TOKEN}"}
        )

    def _first_line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                pytest.fail(f"rig ota serve printed no URL in {timeout} s: {self.log()}")
        line = self.proc.stdout.readline().decode().strip()
        assert line.startswith("http://"), f"{line!r} {self.log()}"
        return line

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def _proc(self, name: str, key: str) -> int:
        for line in Path(f"/proc/{self.proc.pid}/{name}").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise AssertionError(f"no {key} in /proc/{self.proc.pid}/{name}")

    def peak_rss_mb(self) -> float:
        return self._proc("status", "VmHWM") / 1024

    def written(self) -> int:
        """Bytes the process has passed to write(): files, log and answers."""
        return self._proc("io", "wchar")

    def reset_peak(self) -> float:
        """Start a new peak at the current RSS (Linux clear_refs 5); the peak to measure from."""
        with contextlib.suppress(OSError):  # else the peak since start: a stricter baseline
            Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")
        return self.peak_rss_mb()

    def close(self, kill: bool = False) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            self.proc.wait(timeout=20)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self._log.close()


IMAGE_LIMIT_MIB = 8


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("served")
    serving = Served(folder / "ota", folder / "serve.log", "--max-image-mib", str(IMAGE_LIMIT_MIB))
    serving.http.post(f"{P}/types", json={"name": "warm-up", "type": 101}).raise_for_status()
    try:
        yield serving
    finally:
        serving.close()


def stream(total: int, head: bytes = b"", tail: bytes = b"") -> Iterator[bytes]:
    """`total` bytes in 256 KiB chunks between `head` and `tail`, never all in memory."""
    yield head
    chunk = b"x" * (256 * 1024)
    for start in range(0, total, len(chunk)):
        yield chunk[: min(len(chunk), total - start)]
    yield tail


def stored_files(data: Path) -> list[Path]:
    return [p for d in ("staging", "blobs") for p in (data / d).rglob("*") if p.is_file()]


@pytest.mark.parametrize("declared", [True, False], ids=["Content-Length", "chunked"])
def test_a_100_mb_json_body_is_refused_in_bounded_memory(served: Served, declared: bool) -> None:
    head, tail = b'{"name": "', b'", "type": 150}'
    size = len(head) + 100 * MB + len(tail)
    headers = JSON | ({"Content-Length": str(size)} if declared else {})
    baseline = served.reset_peak()
    started = time.monotonic()
    answer = served.http.post(f"{P}/types", content=stream(100 * MB, head, tail), headers=headers)
    seconds = time.monotonic() - started
    growth = served.peak_rss_mb() - baseline
    assert (answer.status_code, answer.json()["rule"]) == (413, "TOO_LARGE"), answer.text[:300]
    assert "--max-json-kib" in answer.json()["hint"]
    assert growth < 100, f"peak RSS grew by {growth:.0f} MB for a refused 100 MB body"
    assert seconds < 60
    types = served.http.get(f"{P}/types").json()  # nothing stored; the service still serves
    assert [t["type"] for t in types] == [101]


@pytest.mark.parametrize("kind", ["multipart", "octet-stream"])
def test_a_1_gib_upload_stops_at_the_image_limit(served: Served, kind: str) -> None:
    """No Content-Length, 1 GiB claimed: never more than the limit in memory or on disk."""
    total = 1024 * MB
    if kind == "multipart":
        head = (b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="fw.bin"'
                b"\r\nContent-Type: application/octet-stream\r\n\r\n")  # fmt: skip
        content = stream(total, head, b"\r\n--b0undary--\r\n")
        headers = {"Content-Type": "multipart/form-data; boundary=b0undary"}
    else:
        content, headers = stream(total), {"Content-Type": "application/octet-stream"}
    baseline, written = served.reset_peak(), served.written()
    started = time.monotonic()
    answer = served.http.post(f"{P}/binaries", content=content, headers=headers)
    seconds = time.monotonic() - started
    growth = served.peak_rss_mb() - baseline
    on_disk = served.written() - written
    assert (answer.status_code, answer.json()["rule"]) == (413, "TOO_LARGE"), answer.text[:300]
    assert f"{IMAGE_LIMIT_MIB} MiB" in answer.json()["message"]
    assert "--max-image-mib" in answer.json()["hint"]
    assert growth < 100, f"peak RSS grew by {growth:.0f} MB"
    assert on_disk <= (IMAGE_LIMIT_MIB + 1) * MB, f"{on_disk / MB:.0f} MiB written to disk"
    assert seconds < 120
    assert stored_files(served.data) == []
    assert served.http.get("/v1/health").status_code == 200


def _unsent(sock: socket.socket) -> int:
    """Bytes of ours the service's side has not acknowledged yet (Linux SIOCOUTQ)."""
    return struct.unpack("i", fcntl.ioctl(sock, termios.TIOCOUTQ, b"\0" * 4))[0]


def _hang_up(served: Served, path: str, content_type: str) -> None:
    """Send the headers and half the body (under both limits), wait until the service has
    it, hang up."""
    host, port = served.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: 600000\r\n\r\n".encode()
            + b"y" * 300_000
        )
        wait_until(lambda: _unsent(sock) == 0, 10, "the service to receive the first part")
        if "binaries" in path:
            wait_until(
                lambda: list((served.data / "staging").glob(".upload-*.part")),
                10,
                "the upload to reach a file",
            )


@pytest.mark.parametrize(
    ("path", "content_type"),
    [(f"{P}/binaries", "application/octet-stream"), (f"{P}/types", "application/json")],
    ids=["upload", "json"],
)
def test_a_client_hanging_up_mid_request_is_one_log_line(
    served: Served, path: str, content_type: str
) -> None:
    start = len(served.log())
    _hang_up(served, path, content_type)
    wait_until(lambda: "went away" in served.log()[start:], 10, "the hang-up to be logged")
    wait_until(lambda: stored_files(served.data) == [], 10, "the partial upload to go")
    assert served.http.get("/v1/health").status_code == 200
    new = served.log()[start:]
    lines = new.strip().splitlines()
    assert len(lines) == 1, new
    assert f"went away during POST {path}" in lines[0] and "nothing stored" in lines[0]
    assert "Traceback" not in new and "OTA service bug" not in new and "ERROR" not in new


def test_start_up_removes_uploads_a_kill_left_unreferenced_and_keeps_the_rest(
    tmp_path: Path,
) -> None:
    data = tmp_path / "ota"
    first = Served(data, tmp_path / "first.log")
    try:
        kept_sha = first.http.post(f"{P}/binaries", content=b"kept image").json()["value"]
        first.http.post(f"{P}/binaries/moveToRepository", json={"value": kept_sha})
        staged_sha = first.http.post(f"{P}/binaries", content=b"staged image").json()["value"]
    finally:
        first.close(kill=True)  # SIGKILL: nothing of the service's own shutdown runs
    # What a kill between an upload's rename and its record leaves; and one mid-stream.
    orphan = b"renamed into place, never recorded"
    orphan_path = data / "staging" / hashlib.sha256(orphan).hexdigest()
    orphan_path.write_bytes(orphan)
    partial = data / "staging" / ".upload-killed.part"
    partial.write_bytes(b"half an upload")
    second = Served(data, tmp_path / "second.log")
    try:
        assert not orphan_path.exists() and not partial.exists()
        assert (data / "staging" / staged_sha).read_bytes() == b"staged image"
        assert (data / "blobs" / kept_sha[:2] / kept_sha[2:]).read_bytes() == b"kept image"
        said = [line for line in second.log().splitlines() if "start-up" in line]
        assert len(said) == 1, second.log()
        assert "removed 1 staged upload(s) no record refers to and 1 partial upload(s)" in said[0]
        # what the sweep kept still works: the staged upload can be kept
        moved = second.http.post(f"{P}/binaries/moveToRepository", json={"value": staged_sha})
        assert moved.status_code == 200, moved.text
    finally:
        second.close()
