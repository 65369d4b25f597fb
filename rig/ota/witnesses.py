"""Three independent witnesses of an OTA outcome, cross-checked.

The service says what the deployment ended as and what version the device reports; the wire
(the sniffer's transcript) says whether the MCU wrote its version attribute after APPLY; the
console says what firmware booted. When they disagree, the test fails showing all three, since
the disagreement itself is the finding (e.g. a service that marks success the MCU never saw).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from rig.errors import RigError
from rig.instruments.console import ConsoleTimeout
from rig.instruments.sniffer_port import HandoffRecorder, SnifferError
from rig.lab.board import Board
from rig.protocol import aflib
from rig.protocol.transcript import Transcript


class WitnessError(RigError, AssertionError):
    """The witnesses of one deployment disagree."""


@dataclass
class Views:
    service: str
    wire: str
    console: str

    def __str__(self) -> str:
        return f"  service: {self.service}\n  wire:    {self.wire}\n  console: {self.console}"


def cross_check(
    deployment: dict,
    reported: dict[int, str],
    *,
    image_type: int,
    expected_version: str | None,
    board: Board | None = None,
    recorder: HandoffRecorder | None = None,
    console_timeout_s: float = 10.0,
) -> Views:
    """Compare what each witness saw; raise WitnessError when they disagree."""
    attribute = aflib.version_attribute(image_type)
    number = str(deployment["versionNumber"])
    succeeded = deployment["state"] == "SUCCEEDED"
    service_ok = succeeded and reported.get(attribute) == number
    views = Views(
        service=f"{deployment['state']} ({deployment.get('reason') or 'no reason'}); "
        f"device reports {attribute} = {reported.get(attribute, 'nothing')}",
        wire="not recorded",
        console="not checked",
    )
    verdicts = [service_ok]
    if recorder is not None:
        wrote = _wire_wrote(recorder, attribute, int(number), console_timeout_s if succeeded else 0)
        views.wire = f"version attribute {attribute} = {number} written after APPLY: {wrote}"
        verdicts.append(wrote)
    has_console = board is not None and "console" in board.config.capabilities
    if board is not None and not has_console:
        views.console = "not checked: the board has no console of its MCU"
    if has_console and expected_version is not None and succeeded:
        booted = _console_booted(board, expected_version, console_timeout_s)
        views.console = f"banner with version {expected_version}: {booted}"
        verdicts.append(booted)
    if len(set(verdicts)) > 1 or (succeeded and not all(verdicts)):
        history = " → ".join(h["state"] for h in deployment.get("history", []))
        raise WitnessError(
            f"the witnesses of deployment {deployment['id']} disagree ({history}):\n{views}"
        )
    return views


def _wire_wrote(recorder: HandoffRecorder, attribute: int, number: int, timeout_s: float) -> bool:
    """Whether the sniffer saw the version write after APPLY (it may lag the service a little)."""

    image_type = attribute - aflib.VERSION_ATTRIBUTE_BASE

    def wrote(transcript: Transcript) -> bool:
        return transcript.version_written(image_type, number) is not None

    try:
        recorder.wait_for(wrote, timeout_s, what="the version write")
    except SnifferError:
        return False
    return True


def _console_booted(board: Board, version: str, timeout_s: float) -> bool:
    """Whether the next banner (the board's own, boards.yaml `console.banner`) shows `version`:
    its `version` group must equal it; a banner without one must contain it."""
    try:
        match = board.console.expect(board.banner, timeout=timeout_s)
    except ConsoleTimeout:
        return False
    shown = match.groupdict().get("version")
    if shown is not None:
        return shown == version
    return re.search(re.escape(version), match.group(0)) is not None


def history_json(deployment: dict) -> str:
    """The deployment with its history, for the report."""
    return json.dumps(deployment, indent=2, sort_keys=True)
