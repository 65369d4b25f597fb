"""The OTA Manager's HTTP side, without a browser: its files, its sign-in, its state vocabulary.

The browser suite (tests/browser) drives the page itself; these hold what it stands on, and
run where no Chromium is installed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rig.ota import states
from rig.ota.service.auth import PartnerAuth
from rig.ota.service.errors import OtaError
from rig.ota.service.oauth import OAuthLogin, TokenIssuer
from rig.ota.service.serve import LocalService

STATIC = Path(__file__).resolve().parents[4] / "rig" / "ota" / "service" / "manager" / "static"
LAB = PartnerAuth("lab", "lab-token", "lab-account", OAuthLogin("c1", "s1", "eng@lab", "pw-lab"))
OTHER = PartnerAuth("other", "other-token")  # no OAuth login: signs in with id and token


@pytest.fixture
def http(tmp_path: Path) -> Iterator[httpx.Client]:
    with (
        LocalService(tmp_path / "ota", [LAB, OTHER], token_lifetime_s=60) as service,
        httpx.Client(base_url=service.base_url, timeout=10) as client,
    ):
        yield client


def test_the_page_and_its_modules_are_served_from_the_service_itself(http: httpx.Client) -> None:
    page = http.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    linked = re.findall(r'(?:src|href)="(/ui/[^"]+)"', page.text)
    assert sorted(linked) == ["/ui/app.css", "/ui/app.js"]
    imported = set()
    for name in sorted(p.name for p in STATIC.glob("*.js")):
        module = http.get(f"/ui/{name}")
        assert module.status_code == 200
        assert module.headers["content-type"].startswith("text/javascript")
        imported |= set(re.findall(r'from "\./([\w.]+)"', module.text))
        assert "http://" not in module.text and "https://" not in module.text  # nothing remote
    assert imported == {"api.js", "deploy.js", "upload.js"}  # every import is served


@pytest.mark.parametrize("name", ["index.html", "../app.py", "..%2Fapp.py", "nope.js", "app.JS"])
def test_only_the_pages_own_files_are_served(http: httpx.Client, name: str) -> None:
    answer = http.get(f"/ui/{name}")
    assert answer.status_code == 404
    assert answer.json()["rule"] == "NOT_FOUND"


def test_sign_in_by_oauth_user_gives_an_expiring_token_that_opens_the_partner(
    http: httpx.Client,
) -> None:
    answer = http.post("/v1/local/signin", json={"username": "eng@lab", "password": "pw-lab"})
    assert answer.status_code == 200
    body = answer.json()
    assert (body["partnerId"], body["accountId"], body["expires_in"]) == ("lab", "lab-account", 60)
    token = {"Authorization": f"Bearer {body['access_token']}"}
    assert http.get("/v1/ota/partners/lab/types", headers=token).status_code == 200
    assert http.get("/v1/ota/partners/other/types", headers=token).status_code == 404


def test_sign_in_by_partner_id_and_static_token(http: httpx.Client) -> None:
    body = http.post("/v1/local/signin", json={"username": "other", "password": "other-token"})
    assert body.status_code == 200 and body.json()["partnerId"] == "other"
    assert body.json()["access_token"] != "other-token"  # a session token, not the static one


@pytest.mark.parametrize(
    "form",
    [
        {"username": "eng@lab", "password": "pw-lab-typo"},
        {"username": "lab", "password": "pw-lab"},  # one partner's password, another's name
        {"username": "eng@lab", "password": "other-token"},
        {"username": "nobody", "password": "pw-lab"},
    ],
)
def test_a_wrong_sign_in_is_refused_without_naming_what_was_wrong(
    http: httpx.Client, form: dict
) -> None:
    answer = http.post("/v1/local/signin", json=form)
    assert answer.status_code == 401
    body = answer.json()
    assert body["rule"] == "AUTH" and body["message"] == "the user name or password is wrong"
    assert form["password"] not in answer.text


def test_a_malformed_sign_in_is_a_validation_error(http: httpx.Client) -> None:
    answer = http.post("/v1/local/signin", json={"username": "eng@lab"})
    assert answer.status_code == 422 and answer.json()["rule"] == "VALIDATION"


def test_two_partners_with_one_user_name_are_refused_at_start() -> None:
    twin = PartnerAuth("twin", "twin-token", oauth=OAuthLogin("c2", "s2", "eng@lab", "pw-twin"))
    with pytest.raises(OtaError, match="share one OAuth user name"):
        TokenIssuer({"lab": LAB, "twin": twin})


def test_the_pages_final_states_are_the_state_machines() -> None:
    """deploy.js stops following a deployment at these; they must be rig.ota.states'."""
    source = (STATIC / "deploy.js").read_text()
    listed = re.search(r"export const FINAL = \[(.*?)\];", source, re.S)
    assert listed is not None
    assert set(re.findall(r'"(\w+)"', listed.group(1))) == states.TERMINAL - states.RETRYABLE
