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
from tests.browser.conftest import PASSWORD, TOKEN, USER, Shots, partner
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
        # followed, not reloaded: the push's answer (QUEUED, or OFFERED when the board's
        # long-poll took it first) and later states, on one line that was never rebuilt
        assert seen[0] in {"QUEUED", "OFFERED"} and seen[-1] == "SUCCEEDED", seen
        assert len(set(seen)) >= 2, seen
        deployments = api.ota.deployments(device_id=device)
        assert [d["state"] for d in deployments] == ["SUCCEEDED"]
        assert bench.status()["running_version"] == VENDOR_VERSION  # the board runs it

        manager.page.locator(f"#device-list li[data-device-id='{device}'] button").click()
        history = manager.page.locator("#history tbody tr")
        expect(history).to_have_count(1)
        expect(history.first.locator("td.state")).to_have_text("SUCCEEDED")
        expect(history.first).to_contain_text("TRANSFERRING")
        shots.take(manager.page, "6-device-history")
        elsewhere = [u for u in manager.requests if not u.startswith((service.base_url, "data:"))]
        assert elsewhere == []  # the page fetched nothing from anywhere but the service
    finally:
        bench.close()
        bench.lab.rm.close()


def names(manager: Manager) -> list[str]:
    return sorted(manager.shown_images().all_inner_texts())


def test_filters_by_image_type_and_device_type_and_search_my_tags(
    manager: Manager, service: LocalService
) -> None:
    s = service.service  # set-up straight into the service: the filters are what is tested
    s.create_image_type("lab", "application", "", 101)
    s.create_image_type("lab", "bootloader", "", 102)
    for device_type, enabled in (("blinky", [101]), ("bootable", [102])):
        s.create_device_type("lab", device_type)
        s.publish_profile("lab", device_type, {"name": device_type, "otaImageTypes": enabled})
    for name, type_, tags, device_type in (
        ("app-a", 101, ["release"], "blinky"),
        ("app-b", 101, ["beta"], "blinky"),
        ("boot-c", 102, ["release", "lts"], "bootable"),
    ):
        image = s.add_image("lab", name.encode() * 50, type=type_, name=name, description="d",
                            version="1.0.0", tags=tags)  # fmt: skip
        s.associate("lab", device_type, type_, image["versionNumber"])
    signed_in(manager).main_window()
    expect(manager.shown_images()).to_have_count(3)

    manager.folder(101).locator("button.name").click()
    expect(manager.shown_images()).to_have_count(2)
    assert names(manager) == ["app-a", "app-b"]
    manager.page.locator("#device-type-filters li[data-device-type='bootable'] button").click()
    expect(manager.by_id("images-empty")).to_be_visible()  # type 101 ∧ bootable: none
    manager.page.get_by_role("button", name="ALL IMAGE TYPES").click()
    expect(manager.shown_images()).to_have_count(1)
    assert names(manager) == ["boot-c"]
    manager.page.get_by_role("button", name="ALL DEVICE TYPES").click()
    expect(manager.shown_images()).to_have_count(3)

    manager.search_tags("release")
    expect(manager.shown_images()).to_have_count(2)
    assert names(manager) == ["app-a", "boot-c"]
    manager.search_tags("release lts")  # every tag must be on the image
    expect(manager.shown_images()).to_have_count(1)
    expect(manager.by_id("filter-summary")).to_have_text("1 image · tags release,lts")
    manager.search_tags("")
    expect(manager.shown_images()).to_have_count(3)


def test_the_101st_image_type_shows_rule_R1(manager: Manager, service: LocalService) -> None:
    for number in range(101, 201):
        service.service.create_image_type("lab", f"type {number}", "", number)
    signed_in(manager).main_window()
    manager.open_add_type("one too many", "")
    expect(manager.by_id("type-error")).to_contain_text("R1")
    expect(manager.by_id("type-dialog")).to_be_visible()  # nothing was added; the form stays
    assert len(service.service.list_image_types("lab")) == 100


def test_upload_into_a_type_no_profile_enables_shows_rule_R4(
    manager: Manager, service: LocalService, api: Pipeline, tmp_path: Path
) -> None:
    service.service.create_image_type("lab", "application", "", 101)
    service.service.create_image_type("lab", "bootloader", "", 102)
    service.service.create_device_type("lab", "blinky")
    service.service.publish_profile("lab", "blinky", {"name": "b", "otaImageTypes": [101]})
    firmware = tmp_path / "boot.bin"
    firmware.write_bytes(b"\x7fboot" * 100)
    signed_in(manager).main_window()
    manager.by_id("upload-new").click()
    manager.upload_folder(102).click()  # select the folder, then pick the file
    manager.by_id("upload-file").set_input_files(str(firmware))
    expect(manager.by_id("upload-type-note")).to_contain_text("(R4)")
    manager.next_step()
    manager.fill_info("boot", "first stage", "1.0.0", [])
    manager.next_step()
    expect(manager.device_type_box("blinky")).to_be_disabled()
    manager.next_step()  # DONE: the service has the last word
    expect(manager.by_id("upload-error")).to_contain_text("R4: no published profile")
    expect(manager.by_id("upload-dialog")).to_be_visible()
    assert api.ota.images() == []


def test_a_device_type_made_ineligible_during_the_wizard_shows_rule_R6(
    manager: Manager, service: LocalService, api: Pipeline
) -> None:
    s = service.service
    s.create_image_type("lab", "application", "", 101)
    s.create_image_type("lab", "bootloader", "", 102)
    s.create_device_type("lab", "blinky")
    s.publish_profile("lab", "blinky", {"name": "b", "otaImageTypes": [101, 102]})
    s.create_device_type("lab", "kettle")  # stays eligible: type 101 itself stays uploadable (R4)
    s.publish_profile("lab", "kettle", {"name": "k", "otaImageTypes": [101]})
    signed_in(manager).main_window()
    manager.by_id("upload-new").click()
    manager.drop_file(manager.upload_folder(101), "app.bin", b"app" * 300)
    manager.next_step()
    manager.fill_info("app", "the app", "3.0.0", ["rc"])
    manager.next_step()
    manager.device_type_box("blinky").check()
    # Meanwhile, in the Profile Editor, blinky's profile stops enabling type 101.
    s.publish_profile("lab", "blinky", {"name": "b", "otaImageTypes": [102]})
    manager.next_step()
    expect(manager.by_id("upload-error")).to_contain_text("R6")
    assert api.ota.images() == []  # refused whole: no image without its type


def test_a_failed_deployment_shows_its_reason(
    manager: Manager, service: LocalService, api: Pipeline, tmp_path: Path
) -> None:
    api.ensure_image_type(101, "application")
    bench = board(service, api, tmp_path)
    try:
        bench.fault("corrupt_chunk", index=3)
        image = api.ota.upload_image(VENDOR, type_=101, name="vendor app", description="d",
                                     version="9.9.9", device_types=["blinky"])  # fmt: skip
        signed_in(manager).main_window()
        row = manager.image("vendor app")
        row.locator("button.deploy").click()
        device = bench.target.device_id
        row.locator(f"li.device[data-device-id='{device}'] input").check()
        row.locator("button.push").click()
        status = manager.status_of(row, device)
        expect(status).to_have_attribute("data-state", "VERIFY_FAILED")
        expect(status).to_contain_text("VERIFY_FAILED: sha256 mismatch")
        expect(status).to_have_class("status failed")
        deployment = api.ota.deployments(device_id=device)[0]
        assert (deployment["state"], deployment["imageId"]) == ("VERIFY_FAILED", image["id"])
    finally:
        bench.close()
        bench.lab.rm.close()


def test_a_session_the_service_forgot_returns_to_the_sign_in(browser, tmp_path: Path) -> None:
    """Issued tokens live in the service's memory: after a restart (or their expiry) every call
    is 401, and the page goes back to its sign-in instead of failing half-way. While the service
    is down, the page says so."""
    first = LocalService(tmp_path / "ota", [partner()]).start()
    first.service.create_image_type("lab", "application", "", 101)
    port = int(first.base_url.rsplit(":", 1)[1])
    context = browser.new_context()
    try:
        manager = Manager(context.new_page(), first.base_url)
        manager.open()
        signed_in(manager).main_window()
        expect(manager.folder(101)).to_be_visible()  # the page has loaded all it shows
        first.stop()
        manager.folder(101).locator("button.name").click()  # nobody answers: said, not thrown
        expect(manager.by_id("list-error")).to_contain_text("does not answer")
        with LocalService(tmp_path / "ota", [partner()], port=port):
            manager.folder(101).locator("button.name").click()
            expect(manager.by_id("signin-view")).to_be_visible()
            expect(manager.by_id("signin-error")).to_have_text(
                "Your session has ended: sign in again."
            )
            signed_in(manager).main_window()  # and signing in again works
            expect(manager.folder(101)).to_contain_text("application")
        assert not manager.page_errors
    finally:
        first.stop()
        context.close()
