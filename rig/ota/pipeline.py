"""The Image Type / Device Type pipeline as one helper a test can read like the OTA Manager.

image type → profile → upload → associate → push → outcome, each stage a step (`rig.steps`), each
stage's record kept so a test can assert on any of them. It talks only through the OTA client,
so it runs against the local service and a remote server alike. Every push ends with an
`OtaOutcome` event: the report layer turns it into measurements and pictures.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rig import safe_yaml, steps
from rig.instruments.sniffer_port import HandoffRecorder
from rig.lab.board import Board
from rig.ota.client import OtaClient, OtaClientError
from rig.ota.states import TERMINAL
from rig.ota.witnesses import Views, cross_check, history_json
from rig.protocol.transcript import Transcript
from rig.report.power_trace import PowerTrace

#: How often an OTA's power trace reads the supply's current (a slower supply reads as it can).
OTA_TRACE_S = 0.005
#: How long the draw must hold steady before a push to count as the board at rest, at least; a
#: board whose last boot took longer must hold it half as long again as that boot.
REST_S = 0.1


@dataclass
class PipelineRun:
    """What each stage produced."""

    image_type: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] | None = None
    image: dict[str, Any] = field(default_factory=dict)
    deployment: dict[str, Any] = field(default_factory=dict)
    witnesses: Views | None = None

    @property
    def states(self) -> list[str]:
        return [h["state"] for h in self.deployment.get("history", [])]


@dataclass(frozen=True)
class OtaOutcome:
    """Emitted once per `Pipeline.run`: what a report needs to describe that push."""

    deployment: dict[str, Any]
    image_size: int
    board: str  # whose deployment, for the pictures' titles
    waited: bool  # run() waited for an outcome (else it only pushed)
    trace: PowerTrace | None = None  # the supply current from just before the push
    wire: Transcript | None = None  # the sniffed wire so far (the whole test's)


@dataclass
class Target:
    """Where an image goes: a device of a device type, with the profile that type publishes."""

    device_id: str
    device_type: str
    profile: Path | dict | None = None  # a profile file, or the profile itself


class Pipeline:
    """Walk the pipeline for one target device."""

    def __init__(self, ota: OtaClient) -> None:
        self.ota = ota
        self.traced: Board | None = None  # whose supply to sample when run() is given no board
        self.sniffed: HandoffRecorder | None = None  # the wire to report when run() is given none

    def ensure_image_type(self, type_: int, name: str | None = None) -> dict:
        """The image type with this number, created if the partner has none yet."""
        try:
            return self.ota.image_type(type_)
        except OtaClientError as exc:
            if exc.status != 404:
                raise
        return self.ota.add_image_type(name or f"type {type_}", "created by rig", type_)

    def ensure_device(self, target: Target) -> str | None:
        """The device type and the device exist in the service (local-only registration).

        Returns the device's secret when this call registered it (it is shown only once)."""
        if not any(dt["id"] == target.device_type for dt in self.ota.device_types()):
            self.ota.add_device_type(target.device_type)
        try:
            self.ota.device(target.device_id)
            return None
        except OtaClientError as exc:
            if exc.status != 404:
                raise
        return self.ota.register_device(target.device_id, target.device_type)["secret"]

    def publish(self, target: Target, enable: int) -> dict | None:
        """Publish the target's profile file (it must enable the image type, else R4/R6 say so)."""
        if target.profile is None:
            return None
        profile = target.profile
        if not isinstance(profile, dict):
            profile = safe_yaml.load(profile)
        return self.ota.publish_profile(target.device_type, profile)

    def run(
        self,
        firmware: Path | bytes,
        target: Target,
        *,
        type_: int = 101,
        version: str = "1.0.0",
        name: str | None = None,
        tags: list[str] | tuple[str, ...] = (),
        until: str | tuple[str, ...] | None = "QUEUED",
        timeout_s: float = 60.0,
        board: Board | None = None,
        handoff: HandoffRecorder | None = None,
        expect_version: str | None = None,
    ) -> PipelineRun:
        """Push `firmware` to the target; wait for a state in `until` (None: do not wait).

        Given the board (and its handoff recorder), a terminal outcome is cross-checked with
        the console and the wire: disagreement fails with all three views."""
        done = PipelineRun()
        with steps.step(f"image type {type_}"):
            done.image_type = self.ensure_image_type(type_)
        with steps.step(f"profile of {target.device_type}"):
            self.ensure_device(target)
            done.profile = self.publish(target, type_)
        with steps.step(f"upload version {version}"):
            done.image = self.ota.upload_image(
                firmware, type_=type_, version=version, tags=tags,
                name=name or f"rig-{uuid.uuid4().hex[:8]}",
                description=f"uploaded by rig for {target.device_id}",
            )  # fmt: skip
        with steps.step(f"associate with {target.device_type}"):
            self.ota.associate(target.device_type, type_, done.image["versionNumber"])
        steps.label("image_version", f"type {type_} v{version}")
        with self._power_trace((board or self.traced) if until is not None else None) as trace:
            with steps.step(f"push to {target.device_id}"):
                pushed = self.ota.push(target.device_type, done.image["id"], target.device_id)
                done.deployment = self.ota.deployment(pushed["deploymentId"])
            if until is not None:
                wanted = (until,) if isinstance(until, str) else until
                with steps.step(f"outcome: {'/'.join(wanted)}"):
                    done.deployment = self.ota.wait_for_deployment(
                        done.deployment["id"], set(wanted) | TERMINAL, timeout_s
                    )
                    steps.attach("deployment history", history_json(done.deployment), "json")
        self._tell(done, until is not None, board, handoff, trace)
        if until is not None and done.deployment["state"] in TERMINAL and (board or handoff):
            with steps.step("three witnesses agree"):
                device = self.ota.device(target.device_id)
                reported = {int(a["id"]): str(a["value"]) for a in device["attributes"]}
                done.witnesses = cross_check(
                    done.deployment, reported, image_type=type_, board=board,
                    recorder=handoff, expected_version=expect_version,
                )  # fmt: skip
        return done

    @contextlib.contextmanager
    def _power_trace(self, board: Board | None) -> Iterator[PowerTrace | None]:
        """Sample the board's supply current from just before the push until the outcome."""
        if board is None:
            yield None
            return
        # On a fast link a small image crosses in ~20 ms, which a coarser trace may see in one
        # sample or none.
        trace = PowerTrace(board.power.measure_current, interval_s=OTA_TRACE_S, name=board.name)
        trace.start()
        # Samples at rest before the push, if the supply answers: the draw must have held steady
        # for longer than a boot (after a previous update the MCU may still be rebooting, and a
        # boot's draw can be as flat as rest's), each read whole.
        span_s = max(REST_S, 1.5 * (board.last_boot_s or 0.0))
        deadline = time.monotonic() + 2.0 + span_s
        while trace.error is None and time.monotonic() < deadline:
            trace.quiet = trace.settled(span_s=span_s)
            if trace.quiet is not None:
                break
            time.sleep(trace.interval_s)
        try:
            yield trace
        finally:
            trace.stop()

    def _tell(self, done: PipelineRun, waited: bool, board: Board | None,
              handoff: HandoffRecorder | None, trace: PowerTrace | None) -> None:  # fmt: skip
        """Tell the listeners (the test's report) how this push went."""
        traced, recorder = board or self.traced, handoff or self.sniffed
        name = traced.name if traced else (recorder.name if recorder else "board")
        steps.emit(OtaOutcome(
            deployment=done.deployment, image_size=int(done.image.get("size") or 0), board=name,
            waited=waited, trace=trace,
            wire=recorder.transcript() if recorder and waited and steps.listened() else None,
        ))  # fmt: skip
