"""`OtaClient` signing in with OAuth against the real local service (LocalService, loopback).

It signs in on first use, signs in again once when a call comes back 401 and sends the call
again once, says plainly when signing in fails, counts what sign-in cost, and never shows a
secret: not in a message, a repr or a log line.
"""

from __future__ import annotations

import base64
import http.server
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from rig.ota.client import OtaClient
from rig.ota.errors import OtaClientError
from rig.ota.service.auth import PartnerAuth
from rig.ota.service.oauth import OAuthLogin
from rig.ota.service.serve import LocalService
from rig.ota.signin import OAuthCredentials, OAuthSignIn, SignInEnv
from tests.unit.helpers import wait_until

LOGIN = OAuthLogin("lab-client", "client-secret-4be1", "lab@example.io", "user-password-88d")
STATIC = "static-token-c0ffee"
CREDENTIALS = OAuthCredentials("lab-client", "client-secret-4be1", "lab@example.io",
                               "user-password-88d")  # fmt: skip
SECRETS = ["client-secret-4be1", "user-password-88d", STATIC]


def partners(password: str = LOGIN.password) -> list[PartnerAuth]:
    login = OAuthLogin(LOGIN.client_id, LOGIN.client_secret, LOGIN.username, password)
    return [PartnerAuth("lab", STATIC, "lab-account", oauth=login)]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., LocalService]]:
    """Start a local service; keyword arguments go to LocalService (`password` to its login)."""
    running: list[LocalService] = []

    def run(password: str = LOGIN.password, **options: object) -> LocalService:
        folder = tmp_path / f"ota-{len(running)}"
        running.append(LocalService(folder, partners(password), **options).start())
        return running[-1]

    yield run
    for service in running:
        service.stop()


@pytest.fixture
def client_of() -> Iterator[Callable[..., OtaClient]]:
    made: list[OtaClient] = []

    def make(service: LocalService, credentials: OAuthCredentials = CREDENTIALS) -> OtaClient:
        made.append(OtaClient(service.base_url, partner="lab", credentials=credentials,
                              account="lab-account", timeout_s=10))  # fmt: skip
        return made[-1]

    yield make
    for client in made:
        client.close()


def raw_sign_in(service: LocalService) -> str:
    """A token of our own, issued after the client's: when it has expired, so has the client's."""
    basic = base64.b64encode(f"{LOGIN.client_id}:{LOGIN.client_secret}".encode()).decode()
    answer = httpx.post(
        service.base_url + "/oauth/token",
        data={"grant_type": "password", "username": LOGIN.username, "password": LOGIN.password},
        headers={"Authorization": f"Basic {basic}"},
    )
    return answer.raise_for_status().json()["access_token"]


def wait_for_expiry(service: LocalService, token: str) -> None:
    def refused() -> bool:
        answer = httpx.get(service.base_url + "/v1/ota/partners/lab/types",
                           headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        return answer.status_code == 401

    wait_until(refused, timeout=10, what="the signed-in tokens to expire")


def assert_no_secret(*texts: str, log: str | None = None) -> None:
    """No secret in any of `texts`; `log` (caplog's text) must also show the sign-in was logged,
    so a log that captured nothing cannot pass."""
    if log is not None:
        assert "POST" in log and "/oauth/token" in log, "the sign-in's log lines were not captured"
        texts = (*texts, log)
    for text in texts:
        leaked = [secret for secret in SECRETS if secret in text]
        assert not leaked, f"a secret shows in: {text!r}"


def test_the_client_signs_in_on_first_use_and_then_only_once(start, client_of) -> None:
    ota = client_of(start())
    assert ota.sign_ins.count == 0  # nothing is sent before the first call
    ota.add_image_type("application", "", 101)
    ota.add_device_type("blinky")
    assert [t["type"] for t in ota.image_types()] == [101]
    assert ota.devices() == []  # the account's device paths too
    stats = ota.sign_ins
    assert stats.count == 1 and 0 < stats.seconds < 5


def test_an_expired_token_is_renewed_once_and_the_call_goes_through(start, client_of,
                                                                    tmp_path) -> None:  # fmt: skip
    service = start(token_lifetime_s=0.5)
    ota = client_of(service)
    ota.add_image_type("application", "", 101)
    wait_for_expiry(service, raw_sign_in(service))
    assert [t["type"] for t in ota.image_types()] == [101]  # 401, sign in, the same call again
    assert ota.sign_ins.count == 2
    # a streamed upload is sent whole again after the renewal (a file, read afresh)
    firmware = tmp_path / "fw.bin"
    firmware.write_bytes(b"firmware bytes " * 40_000)
    wait_for_expiry(service, raw_sign_in(service))
    sha = ota.upload_binary(firmware)
    assert ota.sign_ins.count == 3
    assert ota.move_to_repository(sha).endswith(sha)


def test_a_refused_sign_in_is_one_clear_error_without_secrets(start, client_of, caplog) -> None:
    caplog.set_level(logging.DEBUG)  # httpx, httpcore, uvicorn, rig: everything
    service = start()
    origin = ("ID", "SECRET", "USER", "PASS")
    wrong = OAuthCredentials(LOGIN.client_id, LOGIN.client_secret, LOGIN.username,
                             "stale-password-0ld", origin=origin)  # fmt: skip
    ota = client_of(service, wrong)
    with pytest.raises(OtaClientError) as caught:
        ota.image_types()
    error = caught.value
    assert (error.status, error.rule) == (400, "AUTH")
    assert "invalid_grant" in str(error) and service.base_url in str(error)
    assert "'lab@example.io'" in str(error) and "'lab-client'" in str(error)
    assert "check the user name and password in USER and PASS" in str(error)
    assert ota.sign_ins.count == 1
    assert_no_secret(str(error), repr(error), repr(ota), repr(wrong), log=caplog.text)
    assert "stale-password-0ld" not in caplog.text + str(error) + repr(wrong)


def test_a_wrong_client_secret_names_the_client_to_check(start, client_of, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = OAuthCredentials(LOGIN.client_id, "not-the-client-secret", LOGIN.username,
                             LOGIN.password)  # fmt: skip
    ota = client_of(start(), wrong)
    with pytest.raises(OtaClientError) as caught:
        ota.image_types()
    assert caught.value.status == 401 and "invalid_client" in str(caught.value)
    assert "check the OAuth client id and secret" in str(caught.value)
    assert_no_secret(str(caught.value), log=caplog.text)
    assert "not-the-client-secret" not in str(caught.value) + caplog.text


def test_when_signing_in_again_fails_the_error_is_one_and_clear(start, client_of,
                                                                caplog) -> None:  # fmt: skip
    """The service restarts (its tokens are gone) with the user's password changed."""
    caplog.set_level(logging.DEBUG)
    first = start()
    ota = client_of(first)
    ota.image_types()
    port = int(first.base_url.rsplit(":", 1)[1])
    first.stop()
    start(password="a-new-password-17", port=port)
    with pytest.raises(OtaClientError) as caught:
        ota.image_types()
    assert ota.sign_ins.count == 2  # the 401 led to exactly one more sign-in
    assert caught.value.status == 400 and "invalid_grant" in str(caught.value)
    assert "Traceback" not in str(caught.value) and "\n" not in str(caught.value)
    assert_no_secret(str(caught.value), log=caplog.text)
    assert "a-new-password-17" not in str(caught.value) + caplog.text


def test_a_token_refused_right_after_sign_in_is_not_retried_forever(start, client_of) -> None:
    ota = client_of(start(token_lifetime_s=1e-6))  # every token is dead before it is used
    with pytest.raises(OtaClientError) as caught:
        ota.image_types()
    assert ota.sign_ins.count == 2  # first use, then once more after the 401; no more
    assert (caught.value.status, caught.value.rule) == (401, "AUTH")
    assert "refused the access token it had just issued" in str(caught.value)
    assert "token lifetime" in str(caught.value)


def test_a_server_without_sign_in_says_so() -> None:
    class TokenOnly(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TokenOnly)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        with (
            OtaClient(url, partner="lab", credentials=CREDENTIALS) as ota,
            pytest.raises(OtaClientError) as caught,
        ):
            ota.image_types()
    finally:
        server.shutdown()
        server.server_close()
    assert "offers no OAuth sign-in" in str(caught.value) and "token_env" in str(caught.value)


def test_the_static_token_path_is_unchanged(start) -> None:
    service = start()
    with OtaClient(service.base_url, partner="lab", token=STATIC, account="lab-account") as ota:
        ota.add_image_type("application", "", 101)
        assert [t["type"] for t in ota.image_types()] == [101]
        assert ota.sign_ins.count == 0 and ota.sign_ins.seconds == 0
    with (
        OtaClient(service.base_url, partner="lab", token="wrong") as ota,
        pytest.raises(OtaClientError) as caught,
    ):
        ota.image_types()
    assert caught.value.status == 401  # no sign-in to fall back on: refused as before


def test_a_client_needs_exactly_one_way_in() -> None:
    with pytest.raises(OtaClientError, match="a partner token or OAuth credentials"):
        OtaClient("http://127.0.0.1:9", partner="lab")
    with pytest.raises(OtaClientError, match="one of the two"):
        OtaClient("http://127.0.0.1:9", partner="lab", token="t", credentials=CREDENTIALS)


def test_reprs_show_who_but_no_secret() -> None:
    shown = repr(CREDENTIALS) + repr(OAuthSignIn("http://x", CREDENTIALS))
    assert "lab-client" in shown and "lab@example.io" in shown
    assert_no_secret(shown)


def test_unusable_credentials_are_refused_before_any_call() -> None:
    with pytest.raises(OtaClientError, match="non-empty password"):
        OAuthCredentials("c", "s", "u", "")
    with pytest.raises(OtaClientError, match="holds a ':'"):
        OAuthCredentials("a:b", "s", "u", "p")


# -- the credentials from the environment ---------------------------------------------------------

ENV = SignInEnv("T_OTA_ID", "T_OTA_SECRET", "T_OTA_USER", "T_OTA_PASSWORD",
                where="/lab/boards.yaml: ota.")  # fmt: skip


def test_credentials_are_read_from_the_variables_named(monkeypatch) -> None:
    for name, value in zip(ENV.names(), ("cid", "csecret", "me@lab", "pw"), strict=True):
        monkeypatch.setenv(name, value)
    creds = ENV.read()
    assert (creds.client_id, creds.client_secret, creds.username, creds.password) == (
        "cid", "csecret", "me@lab", "pw")  # fmt: skip
    assert creds.origin == ENV.names()


def test_each_variable_not_set_is_named_with_its_key(monkeypatch) -> None:
    monkeypatch.setenv("T_OTA_ID", "cid")
    monkeypatch.setenv("T_OTA_USER", "me@lab")
    monkeypatch.setenv("T_OTA_SECRET", "")  # empty is as good as missing
    monkeypatch.delenv("T_OTA_PASSWORD", raising=False)
    with pytest.raises(OtaClientError) as caught:
        ENV.read()
    text = str(caught.value)
    assert "/lab/boards.yaml: ota.client_secret_env names T_OTA_SECRET, which is not set" in text
    assert "/lab/boards.yaml: ota.password_env names T_OTA_PASSWORD, which is not set" in text
    assert "export the user's password in it" in text
    assert "T_OTA_ID" not in text and "T_OTA_USER" not in text
