"""The local OTA service in its own process (`ServiceProcess`), as the pytest plugin runs it:
it serves once started, stops when asked, says why when it cannot start, and never outlives
the process that launched it, even one killed with SIGKILL."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from rig.ota.service.process import ServiceProcess, ServiceProcessError
from tests.unit.helpers import process_gone, wait_until

PARTNER = {"partner_id": "lab", "token": "t0ken-for-the-lab-partner", "account_id": "lab"}
LAUNCHER = """
import json, signal, sys
from pathlib import Path
from rig.ota.service.process import ServiceProcess

service = ServiceProcess(Path(sys.argv[1])).start([json.loads(sys.argv[2])])
print(json.dumps({"pid": service.pid, "url": service.base_url}), flush=True)
signal.pause()  # until killed
"""


def test_it_serves_the_api_once_started_and_stops_when_asked(tmp_path: Path) -> None:
    service = ServiceProcess(tmp_path / "ota").start([PARTNER])
    pid = service.pid
    try:
        headers = {"Authorization": f"Bearer {PARTNER['token']}"}
        answer = httpx.get(f"{service.base_url}/v1/ota/partners/lab/types", headers=headers)
        assert answer.status_code == 200 and answer.json() == []
    finally:
        service.stop()
    assert pid is not None and process_gone(pid)
    host, port = service.base_url.removeprefix("http://").rsplit(":", 1)
    with pytest.raises(ConnectionRefusedError):  # a raw socket: nothing listens there any more
        socket.create_connection((host, int(port)), timeout=5).close()
    service.stop()  # a second stop is harmless


def test_a_service_that_cannot_start_says_so_and_names_its_log(tmp_path: Path) -> None:
    bad = dict(PARTNER, partner_id="no spaces allowed")
    service = ServiceProcess(tmp_path / "ota")
    with pytest.raises(ServiceProcessError, match="did not start") as caught:
        service.start([bad], timeout_s=30)
    assert str(service.log_path) in str(caught.value)
    assert "no spaces allowed" in service.log_path.read_text()  # the reason is in the log
    assert service.pid is None  # nothing left running


def test_the_service_stops_when_its_launcher_is_killed(tmp_path: Path) -> None:
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(tmp_path / "ota"), json.dumps(PARTNER)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert launcher.stdout is not None
        started = json.loads(launcher.stdout.readline())
        assert httpx.get(f"{started['url']}/v1/health").status_code == 200
    finally:
        launcher.send_signal(signal.SIGKILL)
        launcher.wait(10)
    gone = lambda: process_gone(started["pid"])  # noqa: E731
    wait_until(gone, timeout=20, what="the orphaned service to stop")


def test_a_launched_service_told_nothing_exits_when_stopped(tmp_path: Path) -> None:
    """The plugin launches the service before it has read boards.yaml; a lab whose service
    is remote then stops it: it exits without serving and without an error in its log."""
    service = ServiceProcess(tmp_path / "ota")
    service.launch()
    pid = service.pid
    service.stop()
    assert pid is not None and process_gone(pid)
    assert "Traceback" not in service.log_path.read_text()
