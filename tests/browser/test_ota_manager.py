"""The OTA Manager user guide (afero-devdocs, OTAMgr.md), followed in a real browser.

Sign in, the first-time wizard, image type folders (ADD, edit), the three-step upload wizard
(a file dropped on a folder), the image list's filters and tag search, DEPLOY → PUSH NOW to an
emulated board with its status followed live to SUCCEEDED, and a device's history; then the
pipeline's rules as the page shows them. What the page claims is checked against the API.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyvisa
from playwright.sync_api import expect

from rig.ota.pipeline import Pipeline
from rig.ota.service.serve import LocalService
from tests.browser.conftest import PASSWORD, TOKEN, USER, Shots
from tests.browser.pages import WAIT_MS, Manager
from tests.unit.double.bench import VENDOR, VENDOR_VERSION, Bench, Lab

PROFILE_102 = {"otaImageTypes": [102], "otaAttributeSize": 253, "name": "Bootable"}


def signed_in(manager: Manager) -> Manager:
    manager.sign_in(USER, PASSWORD)
    return manager


def board(service: LocalService, api: Pipeline, tmp_path: Path) -> Bench:
    """An emulated board of device type `blinky` (its profile enables type 101), booted and
    checking in with the service."""
    rm = pyvisa.ResourceManager("@py")
    bench = Bench(Lab(service, api.ota, api, rm), tmp_path / "double")
    bench.power_on()
    return bench


def test_sign_in_refuses_a_wrong_password_then_opens_the_first_time_wizard(
    manager: Manager,
) -> None:
    manager.sign_in(USER, "wrong")
    expect(manager.by_id("signin-error")).to_contain_text("user name or password is wrong")
    expect(manager.by_id("signin-view")).to_be_visible()
    manager.sign_in(USER, PASSWORD)
    expect(manager.by_id("first-time-view")).to_be_visible()  # no image type yet
    expect(manager.by_id("who")).to_have_text("partner lab")


def test_partner_id_and_static_token_also_sign_in(manager: Manager, api: Pipeline) -> None:
    api.ensure_image_type(101, "application")
    manager.sign_in("lab", TOKEN)
    manager.main_window()  # a type exists: straight to the main window
    expect(manager.folder(101)).to_contain_text("application")


def test_first_time_wizard_creates_types_shown_as_folders(
    manager: Manager, api: Pipeline, shots: Shots
) -> None:
    signed_in(manager)
    expect(manager.by_id("first-done")).to_be_disabled()  # at least one type is needed
    manager.add_first_type("application", "the app the MCU runs")
    manager.add_first_type("bootloader", "the first stage")
    shots.take(manager.page, "1-first-time-wizard")
    manager.by_id("first-done").click()
    manager.main_window()
    expect(manager.folder(101)).to_contain_text("application")
    expect(manager.folder(102)).to_contain_text("bootloader")
    made = {t["type"]: t["name"] for t in api.ota.image_types()}
    assert made == {101: "application", 102: "bootloader"}


def test_editing_an_image_type_keeps_its_id_and_number(manager: Manager, api: Pipeline) -> None:
    before = api.ensure_image_type(101, "application")
    signed_in(manager).main_window()
    manager.edit_type(101, "app", "renamed in the manager")
    expect(manager.folder(101)).to_contain_text("app")
    after = next(t for t in api.ota.image_types() if t["type"] == 101)
    assert (after["id"], after["name"], after["description"]) == (
        before["id"], "app", "renamed in the manager")  # fmt: skip


def test_upload_wizard_deploy_and_live_status_to_succeeded(
    manager: Manager, service: LocalService, api: Pipeline, tmp_path: Path, shots: Shots
) -> None:
    """The guide end to end: drop the image on a folder, describe it, associate it, DEPLOY it
    to a booted emulated board and watch its status reach SUCCEEDED without a reload."""
    signed_in(manager)
    manager.add_first_type("application", "the app the MCU runs")
    manager.add_first_type("bootloader", "the first stage")
    manager.by_id("first-done").click()
    bench = board(service, api, tmp_path)  # publishes blinky (type 101) and registers the board
    api.ota.add_device_type("bootable")
    api.ota.publish_profile("bootable", PROFILE_102)
    try:
        manager.page.reload()  # the profile and the device were made elsewhere
        manager.main_window()
        manager.by_id("upload-new").click()
        manager.drop_file(manager.upload_folder(101), "vendor-app.bin", VENDOR)
        expect(manager.upload_folder(101)).to_have_class("folder selected")
        expect(manager.by_id("upload-chosen")).to_contain_text("application (101)")
        expect(manager.by_id("upload-chosen")).to_contain_text("vendor-app.bin")
        shots.take(manager.page, "2-upload-step-1-file-on-a-folder")
        manager.next_step()
        manager.fill_info("vendor app", "the vendor's application", "2.0.0", ["release", "lab"])
        shots.take(manager.page, "3-upload-step-2-information")
        manager.next_step()
        expect(manager.device_type_box("blinky")).to_be_enabled()
        expect(manager.device_type_box("bootable")).to_be_disabled()  # enables 102 only (R6)
        expect(manager.page.locator("#upload-device-types li[data-device-type='bootable']")
               ).to_contain_text("does not enable type 101 (R6)")  # fmt: skip
        manager.device_type_box("blinky").check()
        shots.take(manager.page, "4-upload-step-3-device-types")
        manager.next_step()
        expect(manager.by_id("upload-dialog")).to_be_hidden()

        row = manager.image("vendor app")
        expect(row).to_contain_text("2.0.0")
        expect(row).to_contain_text("device types: blinky")
        kept = api.ota.images(type_=101)
        assert [(i["name"], i["version"], sorted(i["tags"])) for i in kept] == [
            ("vendor app", "2.0.0", ["lab", "release"])]  # fmt: skip
        assert kept[0]["sha256"] == hashlib.sha256(VENDOR).hexdigest()  # the bytes dropped

        row.locator("button.deploy").click()
        device = bench.target.device_id
        status = manager.status_of(row, device)
        status.evaluate("""(line) => {
            window.seen = [];
            new MutationObserver(() => window.seen.push(line.dataset.state))
                .observe(line, {attributes: true, attributeFilter: ["data-state"]});
        }""")
        row.locator(f"li.device[data-device-id='{device}'] input").check()
        row.locator("button.push").click()
        expect(status).to_have_attribute("data-state", "SUCCEEDED", timeout=WAIT_MS)
        expect(status).to_have_text("SUCCEEDED")
        shots.take(manager.page, "5-deployment-succeeded")
        seen = manager.page.evaluate("window.seen")
        assert seen[0] == "QUEUED" and seen[-1] == "SUCCEEDED", seen  # followed, not reloaded
        deployments = api.ota.deployments(device_id=device)
        assert [d["state"] for d in deployments] == ["SUCCEEDED"]
        assert bench.status()["running_version"] == VENDOR_VERSION  # the board runs it

        manager.page.locator(f"#device-list li[data-device-id='{device}'] button").click()
        history = manager.page.locator("#history tbody tr")
        expect(history).to_have_count(1)
        expect(history.first.locator("td.state")).to_have_text("SUCCEEDED")
        expect(history.first).to_contain_text("TRANSFERRING")
        shots.take(manager.page, "6-device-history")
    finally:
        bench.close()
        bench.lab.rm.close()
