"""The local OTA service under OpenAPI-driven fuzzing: no input may produce a 5xx.

Every operation of the served `/openapi.json` gets a hypothesis run: path parameters (the ids
of real records mixed with random text and numbers), its declared query and header parameters,
and bodies (random JSON, including what Python's JSON reader accepts beyond the standard, and
objects built from the request schema's properties). Each request carries the credential its
path wants (partner bearer token, or `Device <secret>`), sometimes a wrong or missing one. The
contract (docs/ota-api.md): never a 500 for bad input; every 4xx is JSON with `rule` and
`message`. Failures found this way are kept below as explicit regression tests.

A second run per JSON operation sends hostile bodies (docs/ota-api.md, "Limits"): a valid body
with one declared field made a boolean where an integer goes, a string past its `maxLength`
(or just huge), an array past its `maxItems` (or just huge), or the whole body past the JSON
limit. Besides no 5xx: the boolean and anything past a declared bound is a 4xx, and a body past
the limit is 413 TOO_LARGE.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rig.ota.service.app import create_app
from rig.ota.service.auth import PartnerAuth
from rig.ota.service.profiles import load_profile
from rig.ota.service.serve import LocalService
from rig.ota.states import STATES

REPO = Path(__file__).resolve().parents[4]
BLINKY = REPO / "fixtures" / "profiles" / "blinky.yaml"
EXPORT = REPO / "fixtures" / "profiles" / "afBlink_Modulo-1B_UART"
TOKEN, OTHER_TOKEN = "fuzz-token-1", "fuzz-token-2"
PARTNERS = [PartnerAuth("lab", TOKEN), PartnerAuth("other", OTHER_TOKEN)]
MAX_IMAGE_BYTES = 64 * 1024
MAX_JSON_BYTES = 32 * 1024  # small, so bodies over it are cheap to send
EXAMPLES_PER_OPERATION = int(os.environ.get("RIG_FUZZ_EXAMPLES", "30"))  # more: a deeper run
FUZZ = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _document() -> dict[str, Any]:
    """The app's own OpenAPI document."""
    with tempfile.TemporaryDirectory() as folder:
        app = create_app(Path(folder), PARTNERS)
        try:
            return app.openapi()
        finally:
            app.state.service.close()


def _ota_operations(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """The OTA API's operations. OAuth sign-in (/oauth/token) answers in RFC 6749's error shape,
    not `{rule, message}`: tests/unit/ota/service/test_oauth.py fuzzes it against that."""
    return sorted(
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method in item
        if not path.startswith("/oauth/")
    )


DOCUMENT = _document()
OPERATIONS = _ota_operations(DOCUMENT)


class Lab:
    """A running service with one of everything, and the ids of those records."""

    def __init__(self, svc: LocalService) -> None:
        self.svc = svc
        s = svc.service
        s.create_image_type("lab", "application", "", 101)
        s.create_device_type("lab", "blinky")
        self.profile = load_profile(BLINKY).model_dump()
        s.publish_profile("lab", "blinky", self.profile)
        self.image = s.add_image(
            "lab", b"fuzz firmware" * 64, type=101, name="app", description="d", version="1.0.0"
        )
        s.associate("lab", "blinky", 101, self.image["versionNumber"])
        self.secret = s.register_device("lab", "dev-1", "blinky")["secret"]
        self.deployment = s.push("lab", "blinky", self.image["id"], "dev-1")["deploymentId"]
        self.http = httpx.Client(base_url=svc.base_url, timeout=10)

    def valid_body(self, method: str, template: str) -> dict[str, Any]:
        """A body the operation accepts (given the right path), for the fuzzer to vary."""
        image, tail = self.image, template.rsplit("}", 1)[-1]
        if tail == "/profile/export":
            return {
                "deviceType": json.loads((EXPORT / "device-type.json").read_text()),
                "deviceDescription": json.loads((EXPORT / "device-description.json").read_text()),
            }
        bodies = {
            ("POST", "/types"): {"name": "assets", "description": "d", "type": 150},
            ("PUT", ""): {"name": "renamed", "description": "d", "tags": ["x"]},  # type, image
            ("POST", "/binaries/moveToRepository"): {"value": image["sha256"]},
            ("POST", "/pool"): {
                "name": "app", "description": "d", "type": 101, "version": "2.0.0",
                "url": image["url"], "tags": ["a"], "associations": {"lab": ["blinky"]},
            },
            ("POST", "/firmwareImages"): {"type": 101, "versionNumber": image["versionNumber"]},
            ("PUT", "/push"): {"value": "dev-1"},
            ("POST", "/deviceTypes"): {"id": "kettle", "name": "Kettle", "description": ""},
            ("PUT", "/profile"): self.profile,
            ("POST", "/devices"): {"deviceId": "dev-2", "deviceTypeId": "blinky"},
            ("POST", "/checkin"): {"versions": {"101": image["versionNumber"]}},
            ("POST", "/progress"): {"state": "ACCEPTED"},
            ("POST", "/v1/local/signin"): {"username": "lab", "password": TOKEN},
            ("POST", "/attributes"): {
                "attributes": [{"id": 2101, "value": "1"}, {"id": 1, "value": True}]
            },
        }  # fmt: skip
        return bodies.get((method, tail), {})

    def auth(self, path: str, kind: str) -> dict[str, str]:
        """The header `kind` asks for: the right credential for the path, a wrong one, or none."""
        device = path.startswith("/v1/device/")
        if kind == "none" or path == "/v1/health":
            return {}
        if kind == "wrong":
            return {"Authorization": "Device nope" if device else f"Bearer {OTHER_TOKEN}"}
        return {"Authorization": f"Device {self.secret}" if device else f"Bearer {TOKEN}"}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Lab]:
    with LocalService(
        tmp_path / "ota", PARTNERS, MAX_IMAGE_BYTES, max_json_bytes=MAX_JSON_BYTES
    ) as svc:
        api = Lab(svc)
        try:
            yield api
        finally:
            api.http.close()


# -- strategies ---------------------------------------------------------------------------------

TEXT = st.text(max_size=24)  # no surrogates: usable in a URL or a header
ODD_TEXT = st.text(st.characters(codec=None, categories=["Cs", "Ll", "Nd", "Zs"]), max_size=6)
HEADER_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=24).map(
    str.strip
)
BIG_INTS = st.sampled_from([-1, 0, 2**31, 2**63 - 1, 2**63, -(2**63) - 1, 10**30])
INTS = st.integers(-1000, 1000) | BIG_INTS | st.integers()
LEAVES = st.none() | st.booleans() | INTS | st.floats() | TEXT | ODD_TEXT


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=4) | st.dictionaries(TEXT | ODD_TEXT, inner, max_size=4)


ANY_JSON = st.recursive(LEAVES, _containers, max_leaves=12)


def _mostly(
    good: st.SearchStrategy[Any], other: st.SearchStrategy[Any], weight: int = 3
) -> st.SearchStrategy[Any]:
    """`good` `weight` times out of `weight + 1`, else `other` (one_of would flatten `other`'s
    branches and so weigh `good` by how many alternatives `other` happens to be built from)."""
    return st.sampled_from([True] * weight + [False]).flatmap(lambda ok: good if ok else other)


def _loose(real: Any, *near: Any) -> st.SearchStrategy[Any]:
    """Mostly the value that names a real record; else a near miss, random text or a number."""
    other = st.sampled_from(near) | TEXT | INTS if near else TEXT | INTS
    return _mostly(st.just(real), other, 5)


def _real_path(api: Lab, template: str) -> str:
    """The template filled in with the set-up's own records."""
    image = api.image
    real = {
        "partnerId": "lab", "accountId": "lab", "type": 101, "vn": image["versionNumber"],
        "dt": "blinky", "sha256": image["sha256"], "imageId": image["id"],
        "deploymentId": api.deployment, "deviceId": "dev-1", "name": "app", "version": "1.0.0",
    }  # fmt: skip
    return template.format(**real)


def _path_values(api: Lab) -> dict[str, st.SearchStrategy[Any]]:
    image, sha = api.image, api.image["sha256"]
    return {
        "partnerId": _loose("lab", "other", "LAB"),
        "accountId": _loose("lab", "other"),
        "type": _loose(101, 102, 200, 0, 65535, 65536),
        "vn": _loose(image["versionNumber"], "2", "01", " 1", "1.0"),
        "dt": _loose("blinky", "ghost"),
        "sha256": _loose(sha, sha.upper(), "0" * 64, sha[:-1]),
        "imageId": _loose(image["id"]),
        "deploymentId": _loose(api.deployment),
        "deviceId": _loose("dev-1", "dev-2"),
        "name": _loose("app", "ap"),
        "version": _loose("1.0.0", "1.0"),
    }


SORTS = ["type,asc", "name,desc", "versionNumber", "createdTimestamp,desc", "id", "x,up", ","]
QUERY_VALUES: dict[str, list[Any]] = {
    "page": [0, 1, 1_000_000, 1_000_001, -1],
    "size": [1, 50, 500, 501, 0],
    "sort": SORTS,
    "tags": ["a,b", ",", "nightly", " , x"],
    "type": [101, 300, -1],
    "deviceTypeId": ["blinky", "ghost"],
    "deviceId": ["dev-1", "ghost"],
    "state": [*STATES[:3], "DONE"],
    "expansions": ["state,attributes", "state", "bogus", ","],
    "range": ["bytes=0-10", "bytes=-5", "bytes=5-", "bytes=9-1", "bytes=0-1,3-4", "bytes=-0"],
}


def _param_value(name: str, where: str) -> st.SearchStrategy[Any]:
    good = QUERY_VALUES.get(name, ["x"])
    if where == "header":
        return _mostly(st.sampled_from(good), HEADER_TEXT, 2)
    return _mostly(st.sampled_from(good), TEXT | INTS, 2)


# Field names whose real values get the request past validation into the rules.
FIELD_VALUES: dict[str, list[Any]] = {
    "type": [101, 102, 250],
    "versionNumber": ["1", 1, "99"],
    "name": ["app", "Blinky", ""],
    "description": ["d", ""],
    "version": ["1.0.0", "2.0.0"],
    "id": ["blinky", "kettle", 1, 2101],
    "deviceId": ["dev-1", "dev-9", "bad id"],
    "deviceTypeId": ["blinky", "ghost"],
    "accountId": ["lab", "other", None],
    "state": list(STATES),
    "tags": [["a", "b"], []],
    "otaImageTypes": [[101], [], [101, 101], [300]],
}


class Bodies:
    """JSON bodies from a request schema: its object with random values, or anything at all."""

    def __init__(self, doc: dict[str, Any], api: Lab) -> None:
        self.schemas = doc.get("components", {}).get("schemas", {})
        image = api.image
        self.fields = FIELD_VALUES | {
            "value": [image["sha256"], image["url"], "dev-1", "0" * 64, 1, None],
            "url": [image["url"], "/nowhere/abc", ""],
            "versions": [{"101": "1"}, {"101": "x"}, {"99": "1"}, {}],
        }
        self.profile = api.profile

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = self.schemas[schema["$ref"].rsplit("/", 1)[-1]]
        return schema

    def of(self, schema: dict[str, Any], name: str = "", depth: int = 0) -> st.SearchStrategy[Any]:
        """A value for `schema`: usually of its type (in and out of its bounds), sometimes not."""
        schema = self._resolve(schema)
        kinds = [self._resolve(s) for s in schema.get("anyOf", [])] or [schema]
        typed = st.sampled_from(kinds).flatmap(lambda kind: self._typed(kind, depth))
        if name in self.fields:
            typed = _mostly(st.sampled_from(self.fields[name]), typed, 2)
        return _mostly(typed, ANY_JSON, 6)

    def _typed(self, schema: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
        kind = schema.get("type")
        if "enum" in schema:
            return st.sampled_from(schema["enum"])
        if kind == "integer":
            low, high = schema.get("minimum", -(2**40)), schema.get("maximum", 2**40)
            return st.integers(low, high) | st.sampled_from([low - 1, high + 1])
        if kind == "number":
            return st.floats()
        if kind == "boolean":
            return st.booleans()
        if kind == "string":
            return TEXT | ODD_TEXT
        if kind == "array" and depth < 3:
            return st.lists(self.of(schema.get("items", {}), depth=depth + 1), max_size=3)
        if kind == "object" and depth < 3:
            return self.object(schema, depth + 1)
        return ANY_JSON

    def object(self, schema: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
        """The schema's object: required fields usually there, optional ones sometimes."""
        schema = self._resolve(schema)
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        if not props:
            extra = schema.get("additionalProperties")
            values = self.of(extra, depth=depth) if isinstance(extra, dict) else ANY_JSON
            return st.dictionaries(TEXT | st.sampled_from(["101", "lab"]), values, max_size=3)

        @st.composite
        def build(draw: st.DrawFn) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for field, sub in props.items():
                keep = draw(st.integers(0, 9))
                if keep < (9 if field in required else 5):
                    out[field] = draw(self.of(sub, field, depth))
            if draw(st.integers(0, 9)) == 0:
                out[draw(TEXT)] = draw(ANY_JSON)
            return out

        return build()

    def body(self, operation: dict[str, Any], valid: dict[str, Any]) -> st.SearchStrategy[Any]:
        """A valid body with a field or two changed or dropped, a schema-shaped one, or any JSON."""
        content = operation.get("requestBody", {}).get("content", {})
        schema = content.get("application/json", {}).get("schema")
        if schema is None:
            return ANY_JSON
        shaped = self.object(schema)

        @st.composite
        def varied(draw: st.DrawFn) -> dict[str, Any]:
            changes = list(draw(shaped).items())[: draw(st.sampled_from([0, 1, 1, 2]))]
            body = {**valid, **dict(changes)}
            if body and draw(st.integers(0, 4)) == 0:
                body.pop(draw(st.sampled_from(sorted(body))))
            return body

        return _mostly(_mostly(varied(), shaped, 1), ANY_JSON, 4)


def _upload(draw: st.DrawFn) -> dict[str, Any]:
    """httpx keyword arguments of a raw or multipart upload, well-formed or not."""
    data = draw(st.binary(max_size=512))
    how = draw(st.sampled_from(["raw", "multipart", "other-field", "two-files", "bad-type"]))
    if how == "raw":
        return {"content": data, "headers": {"Content-Type": "application/octet-stream"}}
    if how == "multipart":
        return {"files": {"file": ("fw.bin", data)}}
    if how == "other-field":
        return {"files": {"firmware": ("fw.bin", data)}, "data": {"file": "not a file"}}
    if how == "two-files":
        return {"files": [("file", ("a.bin", data)), ("file", ("b.bin", data))]}
    boundary = draw(HEADER_TEXT)
    return {
        "content": data,
        "headers": {"Content-Type": f"multipart/form-data; boundary={boundary}"},
    }


def _send_body(
    draw: st.DrawFn, bodies: Bodies, operation: dict[str, Any], valid: dict[str, Any]
) -> dict[str, Any]:
    content = operation.get("requestBody", {}).get("content", {})
    if "application/octet-stream" in content:
        return _upload(draw)
    if not content and draw(st.integers(0, 3)):
        return {}
    body = draw(bodies.body(operation, valid))
    # Python's own JSON: NaN/Infinity tokens and \ud800-style escapes are read by the server too.
    text = json.dumps(body, ensure_ascii=True, allow_nan=True)
    if draw(st.integers(0, 19)) == 0:
        text = text[: draw(st.integers(0, len(text)))]  # truncated: not JSON at all
    return {"content": text.encode(), "headers": {"Content-Type": "application/json"}}


def check_answer(response: httpx.Response, what: str) -> None:
    """The contract: never a 5xx; every 4xx is JSON with a `rule` and a `message`."""
    assert response.status_code < 500, f"{what} -> {response.status_code} {response.text[:500]}"
    if response.status_code >= 400:
        try:
            body = response.json()
        except ValueError:
            pytest.fail(f"{what} -> {response.status_code} without a JSON body: {response.text!r}")
        assert isinstance(body, dict), f"{what} -> {body!r}"
        assert isinstance(body.get("rule"), str) and body["rule"], f"{what} -> {body!r}"
        assert isinstance(body.get("message"), str) and body["message"], f"{what} -> {body!r}"


# -- the fuzz run -------------------------------------------------------------------------------


@pytest.fixture
def doc(api: Lab) -> dict[str, Any]:
    return api.http.get("/openapi.json").raise_for_status().json()


def test_the_served_document_has_exactly_the_fuzzed_operations(doc: dict[str, Any]) -> None:
    assert _ota_operations(doc) == OPERATIONS
    assert len(OPERATIONS) >= 38  # every route of docs/ota-api.md, plus /v1/health


@pytest.mark.parametrize(
    ("method", "template"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS]
)
def test_no_input_gets_a_5xx(api: Lab, doc: dict[str, Any], method: str, template: str) -> None:
    operation = doc["paths"][template][method.lower()]
    params = operation.get("parameters", [])
    values = _path_values(api)
    bodies = Bodies(doc, api)
    has_body = "requestBody" in operation
    valid = api.valid_body(method, template)
    upload = "application/octet-stream" in operation.get("requestBody", {}).get("content", {})
    assert valid or not has_body or upload, "no valid body known for this operation"
    # First the operation as a client should call it: the set-up's records are the ones the
    # fuzzer aims at, so this answers 2xx (else the run below would only test refusals).
    body = {"content": b"firmware"} if upload else {"json": valid} if has_body else {}
    real_path = _real_path(api, template)
    answer = api.http.request(method, real_path, headers=api.auth(real_path, "right"), **body)
    assert 200 <= answer.status_code < 300, f"{method} {real_path}: {answer.text}"

    @FUZZ
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        path, query, headers = template, {}, {}
        for param in params:
            name, where = param["name"], param["in"]
            if where == "path":
                value = data.draw(values.get(name, TEXT), label=name)
                path = path.replace("{" + name + "}", quote(str(value), safe=""))
            elif data.draw(st.booleans(), label=f"send {name}"):
                value = data.draw(_param_value(name, where), label=name)
                (headers if where == "header" else query)[name] = str(value)
        kind = data.draw(st.sampled_from(["right"] * 10 + ["wrong", "none"]), label="auth")
        kwargs = _send_body(data.draw, bodies, operation, valid) if has_body else {}
        kwargs.setdefault("headers", {}).update({**headers, **api.auth(path, kind)})
        response = api.http.request(method, path, params=query, **kwargs)
        check_answer(response, f"{method} {path} {query} {kwargs}")

    run()


# -- hostile bodies: mistyped and oversized ------------------------------------------------------


def _alternatives(bodies: Bodies, schema: dict[str, Any]) -> list[dict[str, Any]]:
    schema = bodies._resolve(schema)
    return [bodies._resolve(s) for s in schema.get("anyOf", [])] or [schema]


def _declared_fields(
    bodies: Bodies, schema: dict[str, Any], path: tuple[Any, ...] = ()
) -> list[tuple[tuple[Any, ...], list[dict[str, Any]]]]:
    """(path, schema alternatives) of every declared field, arrays entered at item 0."""
    found = []
    for kind in _alternatives(bodies, schema):
        if len(path) > 6:
            break
        if kind.get("type") == "object":
            for name, sub in kind.get("properties", {}).items():
                found.append(((*path, name), _alternatives(bodies, sub)))
                found += _declared_fields(bodies, sub, (*path, name))
        elif kind.get("type") == "array" and "items" in kind:
            found += _declared_fields(bodies, kind["items"], (*path, 0))
    return found


def _put(body: Any, path: tuple[Any, ...], value: Any) -> Any:
    """`body` with `value` at `path`, making the containers on the way as needed."""
    if not path:
        return value
    key, rest = path[0], path[1:]
    if isinstance(key, int):
        node = list(body) if isinstance(body, list) else []
        node += [{}] * (key + 1 - len(node))
    else:
        node = dict(body) if isinstance(body, dict) else {}
    node[key] = _put(node[key] if isinstance(key, int) else node.get(key), rest, value)
    return node


def _bound(kinds: list[dict[str, Any]], kind: str, key: str) -> int | None:
    bounds = [k[key] for k in kinds if k.get("type") == kind and key in k]
    return max(bounds) if bounds else None


@st.composite
def _hostile_body(
    draw: st.DrawFn, fields: list[tuple[tuple[Any, ...], list[dict[str, Any]]]], valid: Any
) -> tuple[str, Any, bool]:
    """(what was done, the body, whether it must be refused with a 4xx)."""
    ints = [f for f in fields if any(k.get("type") == "integer" for k in f[1])]
    texts = [f for f in fields if any(k.get("type") == "string" for k in f[1])]
    arrays = [f for f in fields if any(k.get("type") == "array" for k in f[1])]
    kinds = ["over the body limit", "deep"]
    kinds += ["boolean for an integer"] * bool(ints) + ["huge string"] * bool(texts)
    kinds += ["huge array"] * bool(arrays)
    kind = draw(st.sampled_from(kinds))
    if kind == "over the body limit":
        pad = "x" * draw(st.integers(MAX_JSON_BYTES, 4 * MAX_JSON_BYTES))
        return kind, _put(valid, ("pad",), pad) if isinstance(valid, dict) else [pad], True
    if kind == "deep":
        depth = draw(st.integers(50, 900))
        return kind, _put(valid, (draw(st.sampled_from(["x", "name"])),), _nested(depth)), False
    if kind == "boolean for an integer":
        path, _ = draw(st.sampled_from(ints))
        return f"{kind} at {path}", _put(valid, path, draw(st.booleans())), True
    if kind == "huge string":
        path, alternatives = draw(st.sampled_from(texts))
        bound = _bound(alternatives, "string", "maxLength")
        size = (bound or 0) + draw(st.integers(1, 3 * MAX_JSON_BYTES))
        return f"{kind} ({size}) at {path}", _put(valid, path, "é" * size), bound is not None
    path, alternatives = draw(st.sampled_from(arrays))
    bound = _bound(alternatives, "array", "maxItems")
    size = (bound or 0) + draw(st.integers(1, 20_000))
    item = draw(st.sampled_from([0, "t", True, None, {}]))
    return f"{kind} ({size}) at {path}", _put(valid, path, [item] * size), bound is not None


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


JSON_OPERATIONS = [  # every operation with a JSON body
    (m, p)
    for m, p in OPERATIONS
    if "application/json"
    in DOCUMENT["paths"][p][m.lower()].get("requestBody", {}).get("content", {})
]


@pytest.mark.parametrize(
    ("method", "template"), JSON_OPERATIONS, ids=[f"{m} {p}" for m, p in JSON_OPERATIONS]
)
def test_oversized_and_mistyped_bodies_get_a_4xx_never_a_5xx(
    api: Lab, doc: dict[str, Any], method: str, template: str
) -> None:
    operation = doc["paths"][template][method.lower()]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    bodies = Bodies(doc, api)
    fields = _declared_fields(bodies, schema)
    valid = api.valid_body(method, template)
    path = _real_path(api, template)
    headers = {"Content-Type": "application/json", **api.auth(path, "right")}

    @FUZZ
    @given(hostile=_hostile_body(fields, valid))
    def run(hostile: tuple[str, Any, bool]) -> None:
        what, body, refused = hostile
        text = json.dumps(body)
        response = api.http.request(method, path, content=text.encode(), headers=headers)
        check_answer(response, f"{method} {path} with {what} ({len(text)} bytes)")
        if refused:
            assert 400 <= response.status_code < 500, f"{what} was taken: {response.text[:300]}"
        if len(text) > MAX_JSON_BYTES:
            assert (response.status_code, response.json()["rule"]) == (413, "TOO_LARGE"), what

    run()


# -- regressions: what the fuzzing found --------------------------------------------------------


def _raw_json(api: Lab, method: str, path: str, text: str) -> httpx.Response:
    headers = {"Content-Type": "application/json", **api.auth(path, "right")}
    return api.http.request(method, path, content=text.encode(), headers=headers)


@pytest.mark.parametrize(
    ("method", "path", "text"),
    [
        # The first falsifying example: a low then a high surrogate reached SQLite (500).
        ("PUT", "/v1/ota/partners/lab/deviceTypes/blinky/firmwareImages/{image}/push",
         '{"value": "6r\\u0237\\udfac\\ud88ao"}'),
        ("POST", "/v1/device/dev-1/attributes", '{"attributes": [{"id": 5, "value": "\\udc00"}]}'),
        ("POST", "/v1/device/dev-1/checkin", '{"versions": {"\\ud800": "1"}}'),
        ("POST", "/v1/local/partners/lab/devices",
         '{"deviceId": "d-9", "deviceTypeId": "blinky\\udfff"}'),
        # NaN/Infinity were stored as device attributes, then every answer showing them was a 500.
        ("POST", "/v1/device/dev-1/attributes", '{"attributes": [{"id": 5, "value": NaN}]}'),
        ("POST", "/v1/device/dev-1/attributes",
         '{"attributes": [{"id": 6, "value": [-Infinity]}]}'),
        ("PUT", "/v1/local/partners/lab/deviceTypes/blinky/profile/export",
         '{"deviceType": {"name": "x"}, "deviceDescription": {"n": Infinity}}'),
    ],
)  # fmt: skip
def test_non_standard_json_is_refused_as_invalid_json(
    api: Lab, method: str, path: str, text: str
) -> None:
    path = path.replace("{image}", api.image["id"])
    response = _raw_json(api, method, path, text)
    check_answer(response, f"{method} {path} {text}")
    body = response.json()
    assert (response.status_code, body["rule"]) == (422, "VALIDATION"), body
    assert "not valid JSON" in body["message"]
    assert "surrogate" in body["message"] or "is not a JSON number" in body["message"]
    # Nothing was stored: the device's attributes (where NaN used to land) still answer.
    device = api.http.get(
        "/v1/accounts/lab/devices/dev-1",
        params={"expansions": "attributes"},
        headers=api.auth("/v1/accounts", "right"),
    )
    assert device.status_code == 200 and device.json()["attributes"] == []


def test_escaped_surrogate_pairs_are_ordinary_text(api: Lab) -> None:
    """Only broken text is refused: a pair of escapes is one character (here an emoji)."""
    path = "/v1/ota/partners/lab/types"
    response = _raw_json(api, "POST", path, '{"name": "fw \\ud83d\\ude00", "type": 150}')
    assert response.status_code == 201, response.text
    assert (
        api.http.get(f"{path}/150", headers=api.auth(path, "right")).json()["name"]
        == "fw \U0001f600"
    )
