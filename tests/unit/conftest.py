"""Helpers shared by the framework's own tests."""

import time
from collections.abc import Callable, Iterator

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


@pytest.fixture
def rm() -> Iterator[pyvisa.ResourceManager]:
    """A pyvisa-py resource manager, as a lab script would use to reach a supply."""
    manager = pyvisa.ResourceManager("@py")
    yield manager
    manager.close()


def open_visa(rm: pyvisa.ResourceManager, resource: str, timeout_ms: int = 2000):
    """The SCPI supply at `resource`, with the double's newline terminations."""
    return rm.open_resource(
        resource, read_termination="\n", write_termination="\n", timeout=timeout_ms
    )


@pytest.fixture
def rig_env(monkeypatch, tmp_path):
    """An inner pytest run of rig's own: board locks in a temporary folder, no board selection
    or inventory inherited from the environment of the run that starts it."""
    monkeypatch.setenv("RIG_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.delenv("RIG_BOARD", raising=False)
    monkeypatch.delenv("RIG_BOARDS_FILE", raising=False)
