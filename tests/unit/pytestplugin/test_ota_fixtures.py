"""The OTA fixtures in inner pytest runs: how the `ota` client proves who it is.

With `service: local` the plugin's own service is signed in to with OAuth (fresh credentials
per run) and `scratch_ota` keeps a static token; with a remote server the client signs in with
the credentials whose environment variables boards.yaml names.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rig.ota.service.auth import PartnerAuth
from rig.ota.service.oauth import OAuthLogin
from rig.ota.service.serve import LocalService

BOARD = "boards:\n  e: {kind: emulated, device_type: blinky}\n"
REMOTE_SECRET, REMOTE_PASSWORD = "remote-client-secret-71", "remote-password-c3"
ENV = {"LAB_OTA_CLIENT_ID": "remote-client", "LAB_OTA_CLIENT_SECRET": REMOTE_SECRET,
       "LAB_OTA_USERNAME": "lab@example.io", "LAB_OTA_PASSWORD": REMOTE_PASSWORD}  # fmt: skip

OTA_TESTS = """
def test_the_lab_client_signs_in(ota, ota_endpoint):
    assert ota_endpoint.credentials is not None and ota_endpoint.token is None
    ota.add_image_type("application", "", 101)
    assert [t["type"] for t in ota.image_types()] == [101]
    assert ota.sign_ins.count == 1 and ota.sign_ins.seconds > 0

def test_scratch_keeps_a_static_token(scratch_ota):
    assert scratch_ota.image_types() == []
    assert scratch_ota.sign_ins.count == 0
"""


@pytest.fixture
def remote(tmp_path) -> Iterator[LocalService]:
    """A service of this test's own, standing in for a remote server."""
    login = OAuthLogin("remote-client", REMOTE_SECRET, "lab@example.io", REMOTE_PASSWORD)
    partner = PartnerAuth("lab", "remote-static-token", oauth=login)
    with LocalService(tmp_path / "remote-ota", [partner]) as service:
        yield service


def test_the_local_service_is_signed_in_to(pytester, rig_env):
    pytester.makefile(".yaml", boards="ota: {service: local, partner: lab}\n" + BOARD)
    pytester.makepyfile(test_ota=OTA_TESTS)
    result = pytester.runpytest()
    result.assert_outcomes(passed=2)


def test_a_remote_server_is_signed_in_to_with_the_variables_named(
    pytester, rig_env, remote, monkeypatch
):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("RIG_OTA_TOKEN", raising=False)
    pytester.makefile(".yaml", boards=_remote_boards(remote.base_url))
    pytester.makepyfile(
        test_remote="""
def test_remote(ota, ota_endpoint):
    assert ota_endpoint.token is None
    assert ota.image_types() == []
    assert ota.sign_ins.count == 1
"""
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_a_sign_in_variable_not_set_fails_naming_it(pytester, rig_env, remote, monkeypatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("LAB_OTA_USERNAME")
    boards = pytester.makefile(".yaml", boards=_remote_boards(remote.base_url))
    pytester.makepyfile(test_remote="def test_remote(ota):\n    ota.image_types()\n")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    out = result.stdout.str()
    assert f"{boards}: ota.username_env names LAB_OTA_USERNAME, which is not set" in out
    assert "Traceback" not in out and REMOTE_SECRET not in out and REMOTE_PASSWORD not in out


def _remote_boards(url: str) -> str:
    keys = ("client_id_env", "client_secret_env", "username_env", "password_env")
    lines = "".join(f"  {key}: {name}\n" for key, name in zip(keys, ENV, strict=True))
    return f"ota:\n  service: {url}\n  partner: lab\n{lines}{BOARD}"
