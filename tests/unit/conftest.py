"""Fixtures shared by the framework's own tests (helpers to import are in helpers.py)."""

from collections.abc import Iterator

import pytest
import pyvisa


@pytest.fixture
def rm() -> Iterator[pyvisa.ResourceManager]:
    """A pyvisa-py resource manager, as a lab script would use to reach a supply."""
    manager = pyvisa.ResourceManager("@py")
    yield manager
    manager.close()


@pytest.fixture
def rig_env(monkeypatch, tmp_path):
    """An inner pytest run of rig's own: board locks in a temporary folder, no board selection
    or inventory inherited from the environment of the run that starts it."""
    monkeypatch.setenv("RIG_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.delenv("RIG_BOARD", raising=False)
    monkeypatch.delenv("RIG_BOARDS_FILE", raising=False)
