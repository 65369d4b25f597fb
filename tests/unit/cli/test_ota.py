"""`rig ota …` from a terminal: a real `rig ota serve` process and the client verbs against it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rig.cli.main import main as rig_main
from rig.ota.client import OtaClient

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    data = tmp_path_factory.mktemp("ota-data")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rig", "ota", "serve", "--data", str(data),
         "--partner", "lab:acct-1", "--token", "s3cret"],
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

    from rig.ota.client import LocalOnlyError, OtaClient

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
