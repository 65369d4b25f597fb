"""What one test leaves behind for its report: measurements, flaky attempts, deployments.

Kept on the pytest item (created before its first fixture) so the board fixtures, the pipeline
and the report hooks all add to the same record, and written as a JSON sidecar at its end when
it holds something (`worth_keeping`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rig.flaky import Attempt
from rig.report.measure import Measurement, Measurements

_RECORD = pytest.StashKey["TestRecord"]()


@dataclass
class TestRecord:
    __test__ = False  # not a test class, whatever pytest's name matching thinks

    nodeid: str
    board: str | None = None
    measurements: Measurements = field(default_factory=Measurements)
    attempts: list[Attempt] = field(default_factory=list)
    deployments: list[dict[str, Any]] = field(default_factory=list)
    firmware: str | None = None  # the version the board's last banner showed
    outcome: str = "unknown"
    console_log: Path | None = None  # the board's console log, and where this test began in it
    console_from: int = 0
    longrepr: str | None = None

    def console_slice(self) -> str | None:
        """This test's part of the board's console log (not the whole session's)."""
        if self.console_log is None or not self.console_log.exists():
            return None
        with self.console_log.open("rb") as log:
            log.seek(self.console_from)
            return log.read().decode("utf-8", "replace")

    def as_dict(self) -> dict[str, Any]:
        return {
            "nodeid": self.nodeid,
            "board": self.board,
            "outcome": self.outcome,
            "message": self.longrepr,
            "firmware": self.firmware,
            "measurements": self.measurements.as_list(),
            "attempts": [a.as_dict() for a in self.attempts],
            "deployments": self.deployments,
        }

    def worth_keeping(self) -> bool:
        """A sidecar is written for a test on a board, or one that measured, retried a flaky
        step or deployed; a test that touched none of that has nothing for a reader."""
        return bool(self.board or self.measurements.items or self.attempts or self.deployments)

    def write(self, folder: Path) -> Path:
        """Write `folder/<test>.json` atomically (a reader never sees half a record)."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{sidecar_name(self.nodeid)}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.as_dict(), indent=2, default=str))
        tmp.replace(path)
        return path


def record_of(item: pytest.Item) -> TestRecord:
    """The item's record, made on first use."""
    record = item.stash.get(_RECORD, None)
    if record is None:
        record = item.stash[_RECORD] = TestRecord(item.nodeid, board=board_param(item))
    return record


def board_param(item: pytest.Item) -> str | None:
    """The board a test runs on (its `board` parameter), or None for a test without one."""
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("board") if callspec else None


def sidecar_name(nodeid: str) -> str:
    """A file name for a test id: readable, safe on any filesystem, unique by a short hash."""
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")[:120]
    return f"{readable}-{hashlib.sha1(nodeid.encode()).hexdigest()[:8]}"


def property_of(measurement: Measurement) -> tuple[str, str]:
    """A JUnit property for one measurement: name `measure:<name>`, value with unit and verdict."""
    verdict = "PASS" if measurement.passed else "FAIL"
    return f"measure:{measurement.name}", f"{measurement.shown} [{measurement.limits}] {verdict}"
