"""The Image Type / Device Type pipeline as one helper a test can read like the OTA Manager.

image type → profile → upload → associate → push → outcome, each stage an Allure step, each
stage's record kept so a test can assert on any of them. It talks only through the OTA client,
so it runs against the local service and a remote server alike.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import allure
import yaml

from rig.instruments.sniffer_port import HandoffRecorder
from rig.lab.board import Board
from rig.ota.client import TERMINAL_STATES, OtaClient, OtaClientError
from rig.ota.witnesses import Views, cross_check, history_json
from rig.report.ota import attach_power_trace, attach_timeline, record_ota, since
from rig.report.power_trace import PowerTrace


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


@dataclass
class Target:
    """Where an image goes: a device of a device type, with the profile that type publishes."""

    device_id: str
    device_type: str
    profile: Path | dict | None = None  # a profile file, or the profile itself


class Pipeline:
    """Walk the pipeline for one target device."""

    def __init__(
        self,
        ota: OtaClient,
        *,
        record: Callable[..., object] | None = None,
        on_deployment: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.ota = ota
        self.record = record  # the test's measurements: stage durations, throughput, current
        self.on_deployment = on_deployment  # the test's record keeps every outcome
        self.traced: Board | None = None  # whose supply to sample when run() is given no board
        self.sniffed: HandoffRecorder | None = None  # the wire to report when run() is given none
        self.pictures = True  # render the power trace and timeline (only worth it for a report)

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
            profile = yaml.safe_load(Path(profile).read_text())
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
        with allure.step(f"image type {type_}"):
            done.image_type = self.ensure_image_type(type_)
        with allure.step(f"profile of {target.device_type}"):
            self.ensure_device(target)
            done.profile = self.publish(target, type_)
        with allure.step(f"upload version {version}"):
            done.image = self.ota.upload_image(
                firmware, type_=type_, version=version, tags=tags,
                name=name or f"rig-{uuid.uuid4().hex[:8]}",
                description=f"uploaded by rig for {target.device_id}",
            )  # fmt: skip
        with allure.step(f"associate with {target.device_type}"):
            self.ota.associate(target.device_type, type_, done.image["versionNumber"])
        allure.dynamic.label("image_version", f"type {type_} v{version}")
        with self._power_trace((board or self.traced) if until is not None else None) as trace:
            with allure.step(f"push to {target.device_id}"):
                pushed = self.ota.push(target.device_type, done.image["id"], target.device_id)
                done.deployment = self.ota.deployment(pushed["deploymentId"])
            if until is not None:
                wanted = (until,) if isinstance(until, str) else until
                with allure.step(f"outcome: {'/'.join(wanted)}"):
                    done.deployment = self.ota.wait_for_deployment(
                        done.deployment["id"], set(wanted) | TERMINAL_STATES, timeout_s
                    )
                    allure.attach(history_json(done.deployment), name="deployment history",
                                  attachment_type=allure.attachment_type.JSON)  # fmt: skip
        if self.on_deployment is not None:
            self.on_deployment(done.deployment)
        if until is not None:
            self._report(done, board, handoff, trace)
            if done.deployment["state"] in TERMINAL_STATES and (board or handoff):
                with allure.step("three witnesses agree"):
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
        trace = PowerTrace(board.power.measure_current, name=board.name).start()
        deadline = time.monotonic() + 2.0  # a few idle samples before the push, if it answers
        while len(trace.samples) < 3 and trace.error is None and time.monotonic() < deadline:
            time.sleep(trace.interval_s)
        try:
            yield trace
        finally:
            trace.stop()

    def _report(self, done: PipelineRun, board: Board | None,
                handoff: HandoffRecorder | None, trace: PowerTrace | None) -> None:  # fmt: skip
        """Built-in measurements and pictures of this OTA, for the test's report."""
        traced, recorder = board or self.traced, handoff or self.sniffed
        name = traced.name if traced else (recorder.name if recorder else "board")
        transcript = None
        if recorder is not None:  # this deployment's part of the wire, not the whole test's
            transcript = since(recorder.transcript(), done.deployment.get("history", []))
        if self.record is not None:
            size = int(done.image.get("size") or 0)
            record_ota(self.record, done.deployment, image_size=size, transcript=transcript,
                       trace=trace)  # fmt: skip
        if trace is not None and self.pictures:
            attach_power_trace(trace, name, done.deployment)
        if transcript is not None and self.pictures:
            attach_timeline(transcript, done.deployment, name)
