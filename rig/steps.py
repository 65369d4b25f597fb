"""Steps, attachments, labels and events: what rig's code says happened, for whoever listens.

Drivers and domain code (the pipeline, flaky steps, the OTA report helpers) must not care whether
Allure, JUnit, a log or nobody is listening, so they never import a reporter: they call `step()`,
`attach()`, `label()` or `emit()`, and the listeners subscribed in the current context turn that
into report entries. The pytest plugin subscribes an Allure listener and the test's own record
for each test; outside pytest nothing listens and every call costs next to nothing.

Listeners live in a context variable, so a nested run (an inner pytest run inside a test) can
replace them for its own duration without touching the outer run's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Kind = Literal["text", "json", "png", "csv"]


@dataclass(frozen=True)
class Attachment:
    """Something a reader of the report should see: inline `body` or a file at `path`."""

    name: str
    kind: Kind
    body: str | bytes | None = None
    path: Path | None = None


class Listener:
    """Receives what rig emits. Subclasses override what they care about; the rest is ignored.

    `key` identifies one step between its start and its end (steps nest; keys never repeat)."""

    def step_started(self, title: str, key: object) -> None:
        """A step began."""

    def step_finished(self, key: object, error: BaseException | None) -> None:
        """The step `key` ended; `error` is what it raised, if it raised."""

    def attached(self, attachment: Attachment) -> None:
        """Something to attach to the current test's report."""

    def labelled(self, name: str, value: str) -> None:
        """A label of the current test (e.g. the image version it pushed)."""

    def event(self, event: object) -> None:
        """A domain event (a flaky attempt, an OTA outcome): listeners pick the types they know."""


_listeners: ContextVar[tuple[Listener, ...]] = ContextVar("rig_listeners", default=())


@contextlib.contextmanager
def listening(*listeners: Listener, only: bool = False) -> Iterator[None]:
    """Subscribe `listeners` for the duration of the block (after those already listening, or
    instead of them with `only=True`)."""
    current = () if only else _listeners.get()
    token = _listeners.set((*current, *listeners))
    try:
        yield
    finally:
        _listeners.reset(token)


@contextlib.contextmanager
def step(title: str) -> Iterator[None]:
    """A named step; what it raises still propagates, and listeners see it end with the error."""
    listeners, key = _listeners.get(), object()
    for listener in listeners:
        listener.step_started(title, key)
    try:
        yield
    except BaseException as exc:
        for listener in reversed(listeners):
            listener.step_finished(key, exc)
        raise
    for listener in reversed(listeners):
        listener.step_finished(key, None)


def attach(name: str, body: str | bytes, kind: Kind = "text") -> None:
    """Attach text or bytes to the current test's report."""
    _tell_all("attached", Attachment(name, kind, body=body))


def attach_file(name: str, path: str | Path, kind: Kind) -> None:
    """Attach a file (read by the listener now: the file may be temporary)."""
    _tell_all("attached", Attachment(name, kind, path=Path(path)))


def label(name: str, value: str) -> None:
    """Label the current test (reports filter and group by labels)."""
    for listener in _listeners.get():
        listener.labelled(name, value)


def emit(event: object) -> None:
    """Hand a domain event to every listener."""
    _tell_all("event", event)


def listened() -> bool:
    """Whether anyone listens: a caller may skip work (decoding, drawing) nobody would see."""
    return bool(_listeners.get())


def _tell_all(method: str, payload: object) -> None:
    for listener in _listeners.get():
        getattr(listener, method)(payload)
