"""Turns what rig emits (`rig.steps`) into Allure steps, attachments and labels.

The one place outside the pytest plugin that knows Allure. Without `--alluredir` allure-pytest
records nothing, and these calls cost next to nothing.
"""

from __future__ import annotations

from typing import Any

import allure

from rig.steps import Attachment, Listener

_TYPES = {
    "text": allure.attachment_type.TEXT,
    "json": allure.attachment_type.JSON,
    "png": allure.attachment_type.PNG,
    "csv": allure.attachment_type.CSV,
}


class AllureListener(Listener):
    """One per test: steps nest as they are emitted, each closed with its error, if any."""

    def __init__(self) -> None:
        self._open: dict[object, Any] = {}

    def step_started(self, title: str, key: object) -> None:
        context = allure.step(title)
        context.__enter__()
        self._open[key] = context

    def step_finished(self, key: object, error: BaseException | None) -> None:
        context = self._open.pop(key, None)
        if context is not None:
            tb = error.__traceback__ if error is not None else None
            context.__exit__(type(error) if error is not None else None, error, tb)

    def attached(self, attachment: Attachment) -> None:
        kind = _TYPES[attachment.kind]
        if attachment.path is not None:
            allure.attach.file(str(attachment.path), name=attachment.name, attachment_type=kind)
        else:
            allure.attach(attachment.body, name=attachment.name, attachment_type=kind)

    def labelled(self, name: str, value: str) -> None:
        allure.dynamic.label(name, value)
