"""The emulated ASR learns of work by long-poll (rig/double/asr_watch.py), not by polling.

An ASR with no MCU behind it: enough to see when it checks in. A push is OFFERED while the ASR
is idle; it checks in then (and times out at BEGIN, nobody answering). Deadlines only.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from rig.double.asr import Asr
from rig.double.spec import AsrTimeouts
from rig.ota.device_client import DeviceClient
from rig.ota.service.serve import LocalService
from tests.unit.helpers import wait_until
from tests.unit.ota.service import test_service as common
from tests.unit.ota.service.test_service import Partner

ota, partner, blinky_partner = common.ota, common.partner, common.blinky_partner  # shared fixtures


class CountingDevice(DeviceClient):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.checkins = 0

    def checkin(self, versions: dict[int, str]) -> dict | None:
        self.checkins += 1
        return super().checkin(versions)


@pytest.fixture
def asr(blinky_partner: Partner, ota: LocalService):
    secret = blinky_partner.register("dev-1", "blinky")
    device = CountingDevice(ota.base_url, "dev-1", secret)
    lines: list[str] = []
    timeouts = AsrTimeouts(offer=0.2, chunk=0.2, verify=0.2, version=0.2, checkin_s=0.05)
    asr = Asr(send=lambda raw, flip: None, log=lines.append, timeouts=timeouts)
    asr.connect(device)
    asr.start()
    yield asr, device, lines
    asr.stop()
    device.close()


def listening(ota: LocalService) -> bool:
    return ota.app.state.service.work_bell.waiting("dev-1") == 1


def test_an_idle_asr_checks_in_once_then_waits_on_the_long_poll(asr, ota) -> None:
    _, device, _ = asr
    wait_until(lambda: listening(ota), what="the ASR's long-poll")
    assert device.checkins == 1  # the check-in at power-on
    threading.Event().wait(0.5)  # ten check-in periods: a polling ASR would have checked in
    assert device.checkins == 1 and listening(ota)


def test_a_push_wakes_the_idle_asr_which_checks_in_and_works(asr, ota, blinky_partner) -> None:
    _, device, _ = asr
    wait_until(lambda: listening(ota), what="the ASR's long-poll")
    image = blinky_partner.image(101, "1.0.0")
    blinky_partner.associate("blinky", image)
    push = blinky_partner.push("blinky", image, "dev-1")

    def ended() -> dict | None:
        deployment = blinky_partner.deployment(push["deploymentId"])
        return deployment if deployment["state"] == "TIMED_OUT" else None

    deployment = wait_until(ended, timeout=15, what="the ASR to work on the push")
    states = [h["state"] for h in deployment["history"]]
    assert states == ["QUEUED", "OFFERED", "TIMED_OUT"], states  # no MCU to answer BEGIN
    assert device.checkins == 2
    wait_until(lambda: listening(ota), what="the ASR to listen again once idle")


def test_power_off_does_not_wait_for_the_long_poll_in_flight(asr, ota) -> None:
    asr_, _, _ = asr
    wait_until(lambda: listening(ota), what="the ASR's long-poll")
    started = time.monotonic()
    asr_.stop()
    assert time.monotonic() - started < 10  # the long-poll would hold it 25 s
