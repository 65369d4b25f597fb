"""`rig ota …` from a terminal: a real `rig ota serve` process and the client verbs against it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from rig.cli.main import main as rig_main
from rig.ota.client import OtaClient

ROOT = Path(__file__).resolve().parents[3]
CLIENT_SECRET, PASSWORD = "cli-client-secret-d41", "cli-password-e9b"
SIGN_IN_ENV = {"T_CLIENT_ID": "lab-cli", "T_CLIENT_SECRET": CLIENT_SECRET,
               "T_USERNAME": "lab@example.io", "T_PASSWORD": PASSWORD}  # fmt: skip
SIGN_IN_OPTIONS = ["--client-id-env", "T_CLIENT_ID", "--client-secret-env", "T_CLIENT_SECRET",
                   "--username-env", "T_USERNAME", "--password-env", "T_PASSWORD"]  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    data = tmp_path_factory.mktemp("ota-data")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rig", "ota", "serve", "--data", str(data),
         "--partner", "lab:acct-1", "--token", "s3cret",
         "--client-id", "lab-cli", "--client-secret", CLIENT_SECRET,
         "--username", "lab@example.io", "--password", PASSWORD, "--token-lifetime", "3600"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = proc.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:"), proc.stderr.read()
    yield url, data
    proc.terminate()
    assert proc.wait(timeout=10) == 0


@pytest.fixture
def rig(served, monkeypatch, capsys):
    url, _ = served
    monkeypatch.setenv("RIG_OTA_URL", url)
    monkeypatch.setenv("RIG_OTA_TOKEN", "s3cret")
    monkeypatch.setenv("RIG_OTA_PARTNER", "lab")

    def run(*args: str, expect: int = 0):
        code = rig_main(["ota", *args])
        out, err = capsys.readouterr()
        assert code == expect, err
        return json.loads(out) if "--json" in args else out + err

    return run


def test_the_ota_managers_workflow_from_a_terminal(rig, tmp_path):
    assert "101" in rig("types", "add", "--name", "application", "--type", "101")
    table = rig("types")
    assert table.splitlines()[0].split()[:3] == ["type", "id", "name"]
    published = rig("profiles", "publish", "blinky", str(ROOT / "fixtures/profiles/blinky.yaml"),
                    "--json")  # fmt: skip
    assert 101 in published["otaImageTypes"]
    firmware = tmp_path / "app.bin"
    firmware.write_bytes(b"firmware v1" * 50)
    image = rig("upload", str(firmware), "--type", "101", "--name", "app", "--version", "1.0.0",
                "--tag", "ci", "--device-type", "blinky", "--json")  # fmt: skip
    assert image["associations"]["lab"] == ["blinky"]
    listed = rig("images", "--tag", "ci", "--json")
    assert [i["id"] for i in listed] == [image["id"]]
    assert rig("images", "--tag", "nope", "--json") == []
    assert image["id"] in rig("images")  # the table form
    # register a device through the client (local-only), then deploy by TYPE/VERSION_NUMBER
    with OtaClient(os.environ["RIG_OTA_URL"], partner="lab", token="s3cret",
                   account="acct-1") as ota:  # fmt: skip
        ota.register_device("dev-7", "blinky")
    pushed = rig("deploy", f"101/{image['versionNumber']}", "--device", "dev-7", "--json",
                 "--account", "acct-1")  # fmt: skip
    assert pushed[0]["state"] == "QUEUED"
    status = rig("status", pushed[0]["deploymentId"], "--json")
    assert status["state"] == "QUEUED" and status["history"][0]["state"] == "QUEUED"
    assert "QUEUED" in rig("status", "--device", "dev-7")


def test_refusals_are_one_line_with_the_rule(rig):
    out = rig("upload", str(ROOT / "boards.yaml"), "--type", "199", "--name", "x",
              "--version", "1", expect=1)  # fmt: skip
    assert "R4" in out and "199" in out
    assert "Traceback" not in out


def test_wrong_token_is_an_auth_error(rig, monkeypatch):
    monkeypatch.setenv("RIG_OTA_TOKEN", "wrong")
    out = rig("types", expect=1)
    assert "Traceback" not in out and ("401" in out or "token" in out.lower())


def test_no_server_says_how_to_start_one(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("RIG_OTA_URL", raising=False)
    boards = tmp_path / "boards.yaml"
    boards.write_text("boards:\n  e: {kind: emulated, device_type: blinky}\n")
    assert rig_main(["ota", "types", "-f", str(boards)]) == 1
    assert "rig ota serve" in capsys.readouterr().err


def test_local_only_features_say_so_against_a_server_without_them():
    """A remote server that has only the public API: a real HTTP server answering 404."""
    import http.server
    import threading

    from rig.ota.client import OtaClient
    from rig.ota.http import LocalOnlyError

    class PublicOnly(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b'{"content": [], "totalPages": 0}' if "/v1/ota/" in self.path else b"nope"
            self.send_response(200 if "/v1/ota/" in self.path else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), PublicOnly)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with OtaClient(f"http://127.0.0.1:{server.server_port}", partner="lab", token="t") as ota:
            assert ota.image_types() == []  # the public part works
            with pytest.raises(LocalOnlyError) as caught:
                ota.device_types()
    finally:
        server.shutdown()
    assert "local-only feature of rig's OTA service" in str(caught.value)
    assert caught.value.rule == "LOCAL_ONLY"


# -- signing in (OAuth password grant) ----------------------------------------------------------


@pytest.fixture
def signed_in(rig, monkeypatch):
    """The `rig` runner with the sign-in variables set and no bearer token to fall back on."""
    monkeypatch.delenv("RIG_OTA_TOKEN")
    for name, value in SIGN_IN_ENV.items():
        monkeypatch.setenv(name, value)
    return rig


def test_serve_takes_a_sign_in_and_its_token_lifetime(served):
    url, _ = served
    answer = httpx.post(url + "/oauth/token", auth=("lab-cli", CLIENT_SECRET),
                        data={"grant_type": "password", "username": "lab@example.io",
                              "password": PASSWORD})  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.json()["expires_in"] == 3600  # --token-lifetime 3600


def test_the_verbs_sign_in_with_the_variables_named(signed_in):
    signed_in("types", "add", "--name", "signed", "--type", "150", *SIGN_IN_OPTIONS)
    listed = signed_in("types", "--json", *SIGN_IN_OPTIONS)
    assert 150 in [t["type"] for t in listed]


def test_a_sign_in_variable_not_set_is_named(signed_in, monkeypatch):
    monkeypatch.delenv("T_PASSWORD")
    out = signed_in("types", *SIGN_IN_OPTIONS, expect=1)
    assert "--password-env names T_PASSWORD, which is not set" in out
    assert "Traceback" not in out


def test_half_the_sign_in_options_is_one_message(signed_in):
    out = signed_in("types", *SIGN_IN_OPTIONS[:4], expect=1)
    assert "signing in needs all of" in out and "--username-env, --password-env" in out


def test_a_refused_sign_in_is_one_line_without_the_secret(signed_in, monkeypatch):
    monkeypatch.setenv("T_PASSWORD", "wrong-password-123")
    out = signed_in("types", *SIGN_IN_OPTIONS, expect=1)
    assert "invalid_grant" in out and "T_USERNAME and T_PASSWORD" in out
    assert "wrong-password-123" not in out and CLIENT_SECRET not in out
    assert len(out.strip().splitlines()) == 1


def test_boards_yaml_names_the_sign_in_variables(signed_in, served, monkeypatch, tmp_path):
    url, _ = served
    monkeypatch.delenv("RIG_OTA_URL")
    boards = tmp_path / "boards.yaml"
    boards.write_text(
        f"ota:\n  service: {url}\n  partner: lab\n  account: acct-1\n"
        "  client_id_env: T_CLIENT_ID\n  client_secret_env: T_CLIENT_SECRET\n"
        "  username_env: T_USERNAME\n  password_env: T_PASSWORD\n"
        "boards:\n  e: {kind: emulated, device_type: blinky}\n"
    )
    assert isinstance(signed_in("types", "--json", "-f", str(boards)), list)
    monkeypatch.delenv("T_CLIENT_SECRET")
    out = signed_in("types", "-f", str(boards), expect=1)
    where = f"{boards.resolve()}: ota.client_secret_env"
    assert f"{where} names T_CLIENT_SECRET, which is not set" in out


def test_serve_wants_one_sign_in_per_partner(capsys):
    code = rig_main(["ota", "serve", "--partner", "a", "--token", "t", "--client-id", "c"])
    assert code == 1
    err = capsys.readouterr().err
    assert "one each of --client-id, --client-secret, --username, --password per --partner" in err
