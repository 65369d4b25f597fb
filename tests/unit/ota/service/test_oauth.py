"""OAuth sign-in of the local service (`POST /oauth/token`, password grant) over real HTTP.

The request and the answer follow Afero's OAuth page (afero-devdocs API-OAuthEndpoints.md):
form fields grant_type/username/password, the client as HTTP Basic, an answer of
access_token/token_type/expires_in/scope. Refusals, which the page does not show, follow
RFC 6749 §5.2. The tokens must open exactly what the partner's static token opens.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rig.ota.service.auth import PartnerAuth
from rig.ota.service.errors import OtaError
from rig.ota.service.oauth import MAX_LIVE_TOKENS, OAuthLogin
from rig.ota.service.serve import LocalService
from tests.unit.helpers import wait_until

LAB = OAuthLogin("lab-client", "lab-client-secret-9f2", "lab@example.io", "lab-password-71c")
OTHER = OAuthLogin("other-client", "other-secret-55e", "other@example.io", "other-password-3a0")
PARTNERS = [
    PartnerAuth("lab", "lab-static-token", "lab-account", oauth=LAB),
    PartnerAuth("other", "other-static-token", oauth=OTHER),
]
SECRETS = [LAB.client_secret, LAB.password, OTHER.client_secret, OTHER.password]
RFC_ERRORS = {"invalid_request", "invalid_client", "invalid_grant", "unsupported_grant_type"}


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def sign_in(
    http: httpx.Client, login: OAuthLogin = LAB, *, secret: str | None = None, **form: str
) -> httpx.Response:
    """The sign-in as Afero's page shows it; keyword arguments replace form fields."""
    fields = {"grant_type": "password", "username": login.username, "password": login.password}
    headers = {
        "Authorization": basic(login.client_id, login.client_secret if secret is None else secret),
        "Accept": "application/json",
    }
    return http.post("/oauth/token", data={**fields, **form}, headers=headers)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., httpx.Client]]:
    """Start a service (keyword arguments go to LocalService); returns an httpx client on it."""
    running: list[tuple[LocalService, httpx.Client]] = []

    def run(**options: object) -> httpx.Client:
        service = LocalService(tmp_path / f"ota-{len(running)}", PARTNERS, **options).start()
        http = httpx.Client(base_url=service.base_url, timeout=10)
        running.append((service, http))
        return http

    yield run
    for service, http in running:
        http.close()
        service.stop()


@pytest.fixture
def http(start: Callable[..., httpx.Client]) -> httpx.Client:
    return start()


def test_a_sign_in_answers_as_afero_documents(http: httpx.Client) -> None:
    answer = sign_in(http)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 16200  # 4.5 h by default
    assert body["scope"] == "partner account"
    assert len(body["access_token"]) >= 32
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["cache-control"] == "no-store"  # RFC 6749 §5.1
    assert sign_in(http).json()["access_token"] != body["access_token"]  # random, never reused


def test_an_issued_token_opens_what_the_static_token_opens(http: httpx.Client) -> None:
    token = sign_in(http).json()["access_token"]
    made = http.post("/v1/ota/partners/lab/types", json={"name": "app", "type": 101},
                     headers=bearer(token))  # fmt: skip
    assert made.status_code == 201, made.text
    listed = http.get("/v1/ota/partners/lab/types", headers=bearer("lab-static-token"))
    assert [t["type"] for t in listed.json()] == [101]  # the same partner's records
    devices = http.get("/v1/accounts/lab-account/devices", headers=bearer(token))
    assert devices.status_code == 200, devices.text
    local = http.get("/v1/local/partners/lab/deviceTypes", headers=bearer(token))
    assert local.status_code == 200, local.text
    # and no more: another partner's path is hidden from it as from the static token
    theirs = http.get("/v1/ota/partners/other/types", headers=bearer(token))
    static = http.get("/v1/ota/partners/other/types", headers=bearer("lab-static-token"))
    assert (theirs.status_code, theirs.json()["rule"]) == (404, "NOT_FOUND")
    assert theirs.json() == static.json()


def test_the_static_token_still_works_beside_sign_in(http: httpx.Client) -> None:
    sign_in(http)
    answer = http.get("/v1/ota/partners/lab/types", headers=bearer("lab-static-token"))
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(
    ("case", "status", "error"),
    [
        ("wrong client secret", 401, "invalid_client"),
        ("unknown client id", 401, "invalid_client"),
        ("no client at all", 401, "invalid_client"),
        ("Basic auth that is not base64", 401, "invalid_client"),
        ("wrong password", 400, "invalid_grant"),
        ("another partner's user", 400, "invalid_grant"),
        ("client_credentials grant", 400, "unsupported_grant_type"),
        ("refresh_token grant", 400, "unsupported_grant_type"),
        ("no grant_type", 400, "invalid_request"),
        ("no password", 400, "invalid_request"),
        ("username twice", 400, "invalid_request"),
        ("a JSON body", 400, "invalid_request"),
    ],
)
def test_refusals_are_rfc_6749_errors(http: httpx.Client, case: str, status: int,
                                      error: str) -> None:  # fmt: skip
    fields = {"grant_type": "password", "username": LAB.username, "password": LAB.password}
    auth = basic(LAB.client_id, LAB.client_secret)
    send: dict = {}
    if case == "wrong client secret":
        auth = basic(LAB.client_id, "not-the-secret")
    elif case == "unknown client id":
        auth = basic("nobody", LAB.client_secret)
    elif case == "no client at all":
        auth = ""
    elif case == "Basic auth that is not base64":
        auth = "Basic %%%"
    elif case == "wrong password":
        fields["password"] = "not-the-password"
    elif case == "another partner's user":
        fields.update(username=OTHER.username, password=OTHER.password)
    elif case == "client_credentials grant":
        fields["grant_type"] = "client_credentials"
    elif case == "refresh_token grant":
        fields = {"grant_type": "refresh_token", "refresh_token": "whatever"}
    elif case == "no grant_type":
        del fields["grant_type"]
    elif case == "no password":
        del fields["password"]
    elif case == "username twice":
        send["content"] = urlencode([*fields.items(), ("username", "x")]).encode()
        send["headers"] = {"Content-Type": "application/x-www-form-urlencoded"}
    if case == "a JSON body":
        send["json"] = fields
    elif "content" not in send:
        send["data"] = fields
    headers = {**send.pop("headers", {}), **({"Authorization": auth} if auth else {})}
    answer = http.post("/oauth/token", headers=headers, **send)
    assert (answer.status_code, answer.json().get("error")) == (status, error), answer.text
    body = answer.json()
    assert set(body) == {"error", "error_description"} and body["error_description"]
    assert answer.headers["cache-control"] == "no-store"
    if status == 401:  # RFC 6749 §5.2: the scheme the client should authenticate with
        assert answer.headers["www-authenticate"].startswith("Basic")
    assert not any(secret in answer.text for secret in SECRETS)


def test_a_wrong_password_and_a_wrong_secret_say_what_to_check(http: httpx.Client) -> None:
    grant = sign_in(http, password="nope").json()["error_description"]
    client = sign_in(http, secret="nope").json()["error_description"]
    assert "user name or password" in grant
    assert "client id or secret" in client and "Authorization: Basic" in client


def test_an_expired_token_is_refused_as_an_unknown_one(start: Callable[..., httpx.Client]) -> None:
    http = start(token_lifetime_s=0.5)
    answer = sign_in(http)
    assert answer.json()["expires_in"] == 0  # rounded down: never later than the truth
    token = answer.json()["access_token"]
    # used at once it works (0.5 s is many round trips on loopback)...
    assert http.get("/v1/ota/partners/lab/types", headers=bearer(token)).status_code == 200

    def refused() -> httpx.Response | None:
        r = http.get("/v1/ota/partners/lab/types", headers=bearer(token))
        return r if r.status_code == 401 else None

    expired = wait_until(refused, timeout=10, what="the signed-in token to expire")
    unknown = http.get("/v1/ota/partners/lab/types", headers=bearer("never-issued"))
    assert unknown.status_code == 401
    assert expired.json() == unknown.json()  # the 401 of today, word for word
    assert expired.json()["rule"] == "AUTH"
    assert expired.headers["www-authenticate"] == unknown.headers["www-authenticate"]


def test_a_token_is_not_a_client_secret_or_a_password(http: httpx.Client) -> None:
    """Only issued tokens and static tokens open paths; OAuth secrets are not bearer tokens."""
    for secret in (LAB.client_secret, LAB.password):
        assert http.get("/v1/ota/partners/lab/types", headers=bearer(secret)).status_code == 401


def test_live_tokens_per_partner_are_bounded(http: httpx.Client) -> None:
    first = sign_in(http).json()["access_token"]
    for _ in range(MAX_LIVE_TOKENS - 1):
        sign_in(http)
    still = http.get("/v1/ota/partners/lab/types", headers=bearer(first))
    assert still.status_code == 200  # MAX_LIVE_TOKENS live at once are kept
    last = sign_in(http).json()["access_token"]  # one more: the oldest goes
    assert http.get("/v1/ota/partners/lab/types", headers=bearer(first)).status_code == 401
    assert http.get("/v1/ota/partners/lab/types", headers=bearer(last)).status_code == 200


def test_the_openapi_document_shows_the_form(http: httpx.Client) -> None:
    operation = http.get("/openapi.json").json()["paths"]["/oauth/token"]["post"]
    schema = operation["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert schema["required"] == ["grant_type", "username", "password"]


def test_partner_reprs_show_no_secret() -> None:
    text = repr(PARTNERS)
    assert "lab-client" in text and "lab@example.io" in text
    assert not any(s in text for s in [*SECRETS, "lab-static-token", "other-static-token"])


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda: OAuthLogin("c", "", "u", "p"), "non-empty client_secret"),
        (lambda: OAuthLogin("a:b", "s", "u", "p"), "holds a ':'"),
    ],
)
def test_unusable_logins_are_refused_at_start(build: Callable[[], object], words: str) -> None:
    with pytest.raises(OtaError, match=words):
        build()


def test_two_partners_with_one_client_id_or_a_zero_lifetime_do_not_start(tmp_path: Path) -> None:
    twin = [PARTNERS[0], PartnerAuth("twin", "twin-token", oauth=LAB)]
    with pytest.raises(OtaError, match="two partners share one OAuth client id"):
        LocalService(tmp_path / "a", twin)
    with pytest.raises(OtaError, match="token lifetime of 0 s") as caught:
        LocalService(tmp_path / "b", PARTNERS, token_lifetime_s=0)
    assert "--token-lifetime" in caught.value.hint


# -- no input gets a 5xx, every refusal is an RFC 6749 error --------------------------------------

FIELD = st.sampled_from(["grant_type", "username", "password", "scope", "refresh_token"]) | st.text(
    max_size=8
)
VALUE = st.sampled_from(["password", LAB.username, LAB.password, "refresh_token", ""]) | st.text(
    max_size=16
)
HEADER = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(str.strip)


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    fields=st.lists(st.tuples(FIELD, VALUE), max_size=5),
    auth=st.sampled_from([basic(LAB.client_id, LAB.client_secret), basic("x", "y"), ""]) | HEADER,
    content_type=st.sampled_from(["application/x-www-form-urlencoded", "application/json", ""])
    | HEADER,
    raw=st.none() | st.binary(max_size=64),
)
def test_no_sign_in_gets_a_5xx(http: httpx.Client, fields: list, auth: str, content_type: str,
                               raw: bytes | None) -> None:  # fmt: skip
    content = raw if raw is not None else urlencode(fields).encode()
    headers = {k: v for k, v in (("Authorization", auth), ("Content-Type", content_type)) if v}
    answer = http.post("/oauth/token", content=content, headers=headers)
    assert answer.status_code in (200, 400, 401), answer.text
    body = answer.json()
    if answer.status_code == 200:
        assert body["token_type"] == "bearer"
    else:
        assert body["error"] in RFC_ERRORS and body["error_description"], body
