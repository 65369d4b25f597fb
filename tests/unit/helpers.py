"""Helpers the framework's own tests import: deadline-bounded waits, a VISA opener, Chromium."""

import os
import shutil
import time
from collections.abc import Callable

import pytest
import pyvisa


def wait_until(predicate: Callable[[], object], timeout: float = 5.0, what: str = "condition"):
    """Poll `predicate` until it is truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)  # sleep-ok: polling interval of a deadline-bounded wait


def open_visa(rm: pyvisa.ResourceManager, resource: str, timeout_ms: int = 2000):
    """The SCPI supply at `resource`, with the double's newline terminations."""
    return rm.open_resource(
        resource, read_termination="\n", write_termination="\n", timeout=timeout_ms
    )


#: How to get the browser the report and OTA Manager tests drive, for their skip messages.
CHROMIUM_HINT = "Chromium not found: apt install chromium (Debian), or set RIG_CHROMIUM to its path"


def find_chromium() -> str | None:
    """The Chromium to drive: $RIG_CHROMIUM, else the first of the usual names on PATH."""
    given = os.environ.get("RIG_CHROMIUM")
    if given:
        return shutil.which(given)
    names = ("chromium", "chromium-browser", "google-chrome")
    return next((found for name in names if (found := shutil.which(name))), None)


def process_gone(pid: int) -> bool:
    """No process `pid` runs any more (an unreaped zombie counts as gone: it runs nothing)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True
