"""The emulated ASR's non-volatile memory: the OTA job in flight, kept across reboots.

A real ASR keeps its OTA job across a reboot, so an interrupted attempt is reported as such and
offered again. One small JSON file, replaced atomically: a power cut leaves the old record or
the new one, never half of either.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any


class AsrMemory:
    """The ASR's non-volatile storage: the OTA job in flight (None: no path, RAM only)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._job: dict[str, Any] | None = None
        if path is not None and path.exists():
            with contextlib.suppress(ValueError, OSError):
                self._job = json.loads(path.read_text()).get("job")

    def job(self) -> dict[str, Any] | None:
        return dict(self._job) if self._job else None

    def save(self, job: dict[str, Any] | None) -> None:
        self._job = dict(job) if job else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(json.dumps({"job": self._job}))
            os.replace(tmp, self.path)  # a power cut leaves the old record or the new one

    def stage(self, stage: str) -> None:
        if self._job is not None and self._job.get("stage") != stage:
            self.save({**self._job, "stage": stage})
