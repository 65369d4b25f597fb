"""Fixtures shared by the framework's own tests (helpers to import are in helpers.py)."""

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import matplotlib.backends.backend_agg  # the lazy imports below: see the comment after them
import matplotlib.figure
import matplotlib.gridspec
import matplotlib.lines  # noqa: F401
import pytest
import pyvisa

from rig.double.reference_mcu import ReferenceUnavailable, aflib_source, build_generic_mcu

# An inner pytester run drops from sys.modules whatever it loaded first (pytester restores
# them when it ends), and a module loaded again is a second copy whose classes the first copy's
# users do not know. So what rig loads lazily is loaded here, before any inner run:
# - httpcore, with httpx's first client: httpx maps the errors of the httpcore it saw first, and
#   `except httpx.HTTPError` stopped catching a dead server in a later test of the worker;
# - matplotlib's figure parts (the reports draw with them): a second matplotlib.gridspec made
#   `Figure.add_subplot` refuse the first one's GridSpec in test_timeline.
httpx.Client().close()

REPO = Path(__file__).resolve().parents[2]
#: Afero's afLib3-generic: $RIG_AFLIB_SRC, else the shared reference copy beside the repository.
AFLIB = aflib_source(REPO.parent / "shared" / "reference" / "aflib3-generic")


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


@pytest.fixture(scope="session")
def generic_mcu(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Afero's reference MCU, built once per test process."""
    try:
        return build_generic_mcu(AFLIB, tmp_path_factory.mktemp("generic_mcu"))
    except ReferenceUnavailable as exc:
        _unavailable(str(exc))
        raise  # unreachable: _unavailable skips or fails


def _unavailable(why: str) -> None:
    """Skip, saying why; where the reference MCU must run (CI sets RIG_AFLIB_REQUIRED=1), fail."""
    if os.environ.get("RIG_AFLIB_REQUIRED") == "1":
        pytest.fail(f"RIG_AFLIB_REQUIRED=1 but {why}", pytrace=False)
    pytest.skip(why)
