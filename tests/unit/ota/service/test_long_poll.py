"""The device-side long-poll: `GET /v1/device/{id}/deployments/next?wait=S`.

A waiting device hears of a push, a cancel or a supersede at once, and many waiting devices
hold no thread of the server's pool. Waits are bounded by deadlines only: under a loaded
machine a long-poll may answer late, never wrongly; "at once" is checked as "well before the
wait would have ended".
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from rig.ota.device_client import DeviceClient
from rig.ota.service.domain import OtaService
from rig.ota.service.serve import LocalService
from tests.unit.helpers import wait_until
from tests.unit.ota.service import test_service as common
from tests.unit.ota.service.test_service import Partner

ota, partner, blinky_partner = common.ota, common.partner, common.blinky_partner  # shared fixtures

LONG = 30.0  # the longest wait; every "at once" below must come well before it
PROMPT = LONG / 2


class Waiting:
    """One long-poll running in a thread: its answer (or error) and how long it took."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self.answer: Any = None
        self.error: BaseException | None = None
        self.took = float("inf")
        self._thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self._thread.start()

    def _run(self, call: Callable[[], Any]) -> None:
        started = time.monotonic()
        try:
            self.answer = call()
        except BaseException as exc:  # handed to the test's thread
            self.error = exc
        self.took = time.monotonic() - started

    def result(self, timeout: float = LONG + 10) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the long-poll never answered"
        if self.error is not None:
            raise self.error
        return self.answer


@pytest.fixture
def lab(blinky_partner: Partner, ota: LocalService) -> tuple[Partner, DeviceClient, dict]:
    """dev-1 registered, image 101 #1 associated (not pushed): (partner, device, image)."""
    secret = blinky_partner.register("dev-1", "blinky")
    image = blinky_partner.image(101, "1.0.0")
    blinky_partner.associate("blinky", image)
    device = DeviceClient(ota.base_url, "dev-1", secret)
    yield blinky_partner, device, image
    device.close()


def service(ota: LocalService) -> OtaService:
    return ota.app.state.service


def waiting_for(ota: LocalService, count: int, device_id: str | None = "dev-1") -> None:
    wait_until(lambda: service(ota).work_bell.waiting(device_id) == count, timeout=LONG,
               what=f"{count} long-poll(s) to wait")  # fmt: skip


def test_a_waiting_next_answers_with_the_push_at_once(lab, ota: LocalService) -> None:
    partner, device, image = lab
    poll = Waiting(lambda: device.next_deployment(wait_s=LONG))
    waiting_for(ota, 1)
    push = partner.push("blinky", image, "dev-1")
    offer = poll.result()
    assert offer is not None and offer["deploymentId"] == push["deploymentId"]
    assert offer["state"] == "OFFERED"
    assert poll.took < PROMPT, f"the long-poll took {poll.took:.1f} s to hear of the push"
    assert partner.deployment(push["deploymentId"])["state"] == "OFFERED"


def test_a_long_poll_answers_at_once_when_there_is_work_already(lab, ota: LocalService) -> None:
    partner, device, image = lab
    push = partner.push("blinky", image, "dev-1")
    poll = Waiting(lambda: device.next_deployment(wait_s=LONG))
    assert poll.result()["deploymentId"] == push["deploymentId"]
    assert poll.took < PROMPT


def test_a_long_poll_with_nothing_to_do_ends_204_after_its_wait(lab, ota: LocalService) -> None:
    _, device, _ = lab
    started = time.monotonic()
    response = device._http.get("/v1/device/dev-1/deployments/next", params={"wait": "0.3"})
    assert response.status_code == 204 and not response.content
    assert time.monotonic() - started >= 0.25  # it waited (a lower bound holds under load)
    assert service(ota).work_bell.waiting() == 0  # nothing is left listening


def test_a_long_poll_marks_the_device_connected(lab, partner: Partner) -> None:
    _, device, _ = lab
    assert device.next_deployment(wait_s=0.1) is None
    body = partner.ok("GET", "/v1/accounts/lab-account/devices/dev-1?expansions=state")
    assert body["state"]["connected"] is True


def test_wait_zero_or_absent_answers_at_once_as_before(lab) -> None:
    _, device, _ = lab
    for params in ({}, {"wait": "0"}):
        response = device._http.get("/v1/device/dev-1/deployments/next", params=params)
        assert response.status_code == 204


@pytest.mark.parametrize("wait", ["31", "-1", "soon", "nan", "inf", "1e9"])
def test_a_wait_out_of_range_or_not_a_number_is_a_clear_422(lab, wait: str) -> None:
    _, device, _ = lab
    response = device._http.get("/v1/device/dev-1/deployments/next", params={"wait": wait})
    body = response.json()
    assert (response.status_code, body["rule"]) == (422, "VALIDATION"), response.text
    assert "wait" in body["message"], body


def test_a_long_poll_needs_the_device_secret(lab, ota: LocalService) -> None:
    stranger = httpx.get(f"{ota.base_url}/v1/device/dev-1/deployments/next?wait=30", timeout=10)
    assert stranger.status_code == 401
    assert service(ota).work_bell.waiting() == 0


def test_a_cancel_wakes_a_waiting_device(lab, ota: LocalService) -> None:
    """A deployment INTERRUPTED at its retry limit is not offered: the device waits; its
    cancel is a change the device hears at once (nothing to do: 204)."""
    partner, device, image = lab
    service(ota).max_attempts = 1
    push = partner.push("blinky", image, "dev-1")
    assert device.next_deployment()["deploymentId"] == push["deploymentId"]
    device.progress(push["deploymentId"], "INTERRUPTED", reason="power loss")
    poll = Waiting(lambda: device.next_deployment(wait_s=LONG))
    waiting_for(ota, 1)
    partner.ok("POST", f"{partner.local}/deployments/{push['deploymentId']}/cancel")
    assert poll.result() is None
    assert poll.took < PROMPT, f"the long-poll took {poll.took:.1f} s to hear of the cancel"


def test_a_supersede_wakes_a_waiting_device_with_the_newer_push(lab, ota: LocalService) -> None:
    partner, device, image = lab
    service(ota).max_attempts = 1
    first = partner.push("blinky", image, "dev-1")
    device.next_deployment()
    device.progress(first["deploymentId"], "INTERRUPTED", reason="power loss")
    poll = Waiting(lambda: device.next_deployment(wait_s=LONG))
    waiting_for(ota, 1)
    newer = partner.image(101, "2.0.0")
    partner.associate("blinky", newer)
    second = partner.push("blinky", newer, "dev-1")
    assert poll.result()["deploymentId"] == second["deploymentId"]
    assert poll.took < PROMPT
    assert partner.deployment(first["deploymentId"])["state"] == "SUPERSEDED"


def test_another_devices_push_does_not_wake_a_waiter(lab, ota: LocalService) -> None:
    partner, device, image = lab
    partner.register("dev-2", "blinky")
    poll = Waiting(lambda: device.next_deployment(wait_s=1.0))
    waiting_for(ota, 1)
    partner.push("blinky", image, "dev-2")
    assert poll.result() is None  # it ran its whole wait: the push was not for it


def test_sixty_waiting_devices_leave_the_server_free(lab, ota: LocalService) -> None:
    """Each waiter would hold a pool thread if the route were sync (40 threads): 60 wait, the
    server still answers others at once, and one push answers all of dev-1's waiters."""
    partner, device, image = lab
    secret = partner.register("dev-2", "blinky")
    auth = device._http.headers["Authorization"]
    answers: list[httpx.Response] = []

    async def waiters() -> None:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=ota.base_url, headers={"Authorization": auth},
                                     timeout=LONG + 10, limits=limits) as http:  # fmt: skip
            calls = [http.get("/v1/device/dev-1/deployments/next", params={"wait": LONG})
                     for _ in range(60)]  # fmt: skip
            answers.extend(await asyncio.gather(*calls))

    crowd = Waiting(lambda: asyncio.run(waiters()))
    waiting_for(ota, 60)
    with DeviceClient(ota.base_url, "dev-2", secret) as other:
        started = time.monotonic()
        assert other.checkin({101: "0"}) is None  # a sync route: it needs a pool thread
        assert other.next_deployment() is None
        assert time.monotonic() - started < PROMPT
    push = partner.push("blinky", image, "dev-1")
    crowd.result()
    assert crowd.took < PROMPT + LONG / 2
    assert [r.status_code for r in answers] == [200] * 60
    assert {r.json()["deploymentId"] for r in answers} == {push["deploymentId"]}
    assert service(ota).work_bell.waiting() == 0


def test_stopping_the_service_answers_a_waiting_long_poll(lab, ota: LocalService) -> None:
    """uvicorn's graceful stop would wait for the long-poll, then cancel it with a traceback."""
    _, device, _ = lab
    poll = Waiting(lambda: device.next_deployment(wait_s=LONG))
    waiting_for(ota, 1)
    ota.stop()
    assert poll.result() is None  # a 204, not a dropped connection
    assert poll.took < PROMPT
