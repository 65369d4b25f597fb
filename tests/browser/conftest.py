"""The OTA Manager's browser tests: system Chromium, headless, driven by Playwright (Python).

Playwright's own browser download cannot be reached from our machines, so the tests launch the
Chromium on PATH (Debian's `chromium`) by `executable_path`, and skip, saying how to install it,
when there is none. Each test gets a fresh local OTA service with one partner that signs in with
OAuth (user `eng@lab`) and a static token for the API-side set-up a test needs.

`RIG_MANAGER_SCREENSHOTS=DIR` also writes the tests' screenshots there (docs/ota-manager/ holds
the committed set); otherwise they go to the test's own temporary folder only.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig.ota.client import OtaClient
from rig.ota.pipeline import Pipeline
from rig.ota.service.auth import PartnerAuth
from rig.ota.service.oauth import OAuthLogin
from rig.ota.service.serve import LocalService
from tests.browser.pages import Manager
from tests.unit.helpers import CHROMIUM_HINT, find_chromium

USER, PASSWORD, TOKEN = "eng@lab", "correct horse", "lab-token"
#: The probe's flags: no sandbox as root, and none of Chromium's own calls to the internet
#: (refused here, and slow to be refused).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    path = find_chromium()
    if path is None:
        pytest.skip(CHROMIUM_HINT)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # a dev dependency: only missing when installed without [dev]
        pytest.skip("Playwright not installed: pip install -e '.[dev]'")
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def partner() -> PartnerAuth:
    return PartnerAuth("lab", TOKEN, "lab", OAuthLogin("ota-manager", "s3cret", USER, PASSWORD))


@pytest.fixture
def service(tmp_path: Path) -> Iterator[LocalService]:
    with LocalService(tmp_path / "ota", {"lab": partner()}) as running:
        yield running


@pytest.fixture
def api(service: LocalService) -> Iterator[Pipeline]:
    """The partner's API with its static token: set-up the Profile Editor or a script would do."""
    with OtaClient(service.base_url, partner="lab", token=TOKEN) as client:
        yield Pipeline(client)


class Shots:
    """Screenshots by name: into the test's folder, and into $RIG_MANAGER_SCREENSHOTS if set."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.publish = Path(os.environ["RIG_MANAGER_SCREENSHOTS"]) if os.environ.get(
            "RIG_MANAGER_SCREENSHOTS") else None  # fmt: skip

    def take(self, target, name: str) -> Path:
        path = self.folder / f"{name}.png"
        target.screenshot(path=str(path))
        if self.publish is not None:
            self.publish.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, self.publish / path.name)
        return path


@pytest.fixture
def shots(tmp_path: Path) -> Shots:
    return Shots(tmp_path)


@pytest.fixture
def manager(browser, service: LocalService) -> Iterator[Manager]:
    """A fresh browser context on the service's page, not yet signed in."""
    context = browser.new_context(viewport={"width": 1100, "height": 720})
    page = context.new_page()
    opened = Manager(page, service.base_url)
    opened.open()
    yield opened
    context.close()
    assert not opened.page_errors, f"the page threw: {opened.page_errors}"
