"""The OTA Manager as a test sees it: what a user does, named as the user guide names it.

Every wait is Playwright's own (`expect` retries until its timeout): no sleeps.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from playwright.sync_api import Locator, Page, expect

#: Long enough for a loaded 2-core machine; a wait ends as soon as its condition holds.
WAIT_MS = 20_000
expect.set_options(timeout=WAIT_MS)


@dataclass
class Manager:
    page: Page
    base_url: str
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def open(self) -> None:
        self.page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.set_default_timeout(WAIT_MS)
        self.page.goto(self.base_url + "/")

    def by_id(self, element_id: str) -> Locator:
        return self.page.locator(f"#{element_id}")

    # -- sign-in and the first-time wizard ---------------------------------------------------------

    def sign_in(self, user: str, password: str) -> None:
        self.by_id("signin-user").fill(user)
        self.by_id("signin-password").fill(password)
        self.by_id("signin-submit").click()

    def add_first_type(self, name: str, description: str) -> None:
        before = self.page.locator("#first-types li").count()
        self.by_id("first-type-name").fill(name)
        self.by_id("first-type-description").fill(description)
        self.by_id("first-type-add").click()
        expect(self.page.locator("#first-types li")).to_have_count(before + 1)

    def main_window(self) -> None:
        expect(self.by_id("main-view")).to_be_visible()

    # -- image types -------------------------------------------------------------------------------

    def folder(self, type_number: int) -> Locator:
        return self.page.locator(f"#type-folders li[data-type='{type_number}']")

    def open_add_type(self, name: str, description: str) -> None:
        self.by_id("add-type").click()
        self.by_id("type-name").fill(name)
        self.by_id("type-description").fill(description)
        self.by_id("type-save").click()

    def edit_type(self, type_number: int, name: str, description: str) -> None:
        self.folder(type_number).get_by_role("button", name="edit image type").click()
        expect(self.by_id("type-dialog-title")).to_have_text("Edit Firmware Image Type")
        self.by_id("type-name").fill(name)
        self.by_id("type-description").fill(description)
        self.by_id("type-save").click()
        expect(self.by_id("type-dialog")).to_be_hidden()

    # -- the upload wizard -------------------------------------------------------------------------

    def drop_file(self, target: Locator, name: str, data: bytes) -> None:
        """Drag a file from the desktop onto `target`: a real `drop` event carrying a File."""
        transfer = self.page.evaluate_handle(
            """([name, b64]) => {
                const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                const transfer = new DataTransfer();
                transfer.items.add(new File([bytes], name, {type: "application/octet-stream"}));
                return transfer;
            }""",
            [name, base64.b64encode(data).decode()],
        )
        target.dispatch_event("dragover", {"dataTransfer": transfer})
        target.dispatch_event("drop", {"dataTransfer": transfer})

    def upload_folder(self, type_number: int) -> Locator:
        return self.page.locator(f"#upload-folders li[data-type='{type_number}']")

    def next_step(self) -> None:
        self.by_id("upload-next").click()

    def fill_info(self, name: str, description: str, version: str, tags: list[str]) -> None:
        self.by_id("upload-name").fill(name)
        self.by_id("upload-description").fill(description)
        self.by_id("upload-version").fill(version)
        for tag in tags:
            self.by_id("upload-tag").fill(tag)
            self.by_id("upload-tag").press("Enter")
        expect(self.page.locator("#upload-tags li")).to_have_count(len(tags))

    def device_type_box(self, device_type: str) -> Locator:
        return self.page.locator(f"#upload-device-types li[data-device-type='{device_type}'] input")

    # -- images, filters, deploy -------------------------------------------------------------------

    def image(self, name: str) -> Locator:
        return self.page.locator("#images li.image").filter(
            has=self.page.locator(".image-name", has_text=name)
        )

    def shown_images(self) -> Locator:
        return self.page.locator("#images li.image .image-name")

    def search_tags(self, text: str) -> None:
        self.by_id("tag-search").fill(text)
        self.by_id("tag-search").press("Enter")

    def status_of(self, image: Locator, device_id: str) -> Locator:
        return image.locator(f"li.device[data-device-id='{device_id}'] .status")
