"""rig.steps: what domain code emits reaches exactly the listeners of its context, in order."""

from __future__ import annotations

import threading

import pytest

from rig import steps
from rig.errors import RigError
from rig.flaky import Attempt, recording, retry_flaky


class Log(steps.Listener):
    def __init__(self, name: str = "log") -> None:
        self.name, self.seen, self.titles = name, [], {}

    def step_started(self, title: str, key: object) -> None:
        self.titles[key] = title
        self.seen.append(("start", title))

    def step_finished(self, key: object, error: BaseException | None) -> None:
        self.seen.append(("end", self.titles[key], type(error).__name__ if error else None))

    def attached(self, attachment: steps.Attachment) -> None:
        self.seen.append(("attach", attachment.name, attachment.kind, attachment.body))

    def labelled(self, name: str, value: str) -> None:
        self.seen.append(("label", name, value))

    def event(self, event: object) -> None:
        self.seen.append(("event", event))


def test_steps_nest_and_end_with_the_error_they_raised() -> None:
    log = Log()
    with steps.listening(log):
        with steps.step("outer"):
            with steps.step("inner"):
                steps.attach("history", "{}", "json")
            with pytest.raises(ValueError), steps.step("failing"):
                raise ValueError("boom")
        steps.label("image_version", "type 101 v1")
        steps.emit("an event")
    assert log.seen == [
        ("start", "outer"),
        ("start", "inner"),
        ("attach", "history", "json", "{}"),
        ("end", "inner", None),
        ("start", "failing"),
        ("end", "failing", "ValueError"),
        ("end", "outer", None),
        ("label", "image_version", "type 101 v1"),
        ("event", "an event"),
    ]


def test_nobody_listens_outside_a_listening_block() -> None:
    log = Log()
    with steps.listening(log):
        assert steps.listened()
    with steps.listening(), steps.step("unheard"):
        steps.emit("nobody hears this")
    assert log.seen == []


def test_only_replaces_the_outer_listeners_for_its_block() -> None:
    outer, inner = Log("outer"), Log("inner")
    with steps.listening(outer):
        with steps.listening(inner, only=True):
            steps.emit(1)
        steps.emit(2)
        with steps.listening(inner):  # added, not replacing
            steps.emit(3)
    assert [e for _, e in outer.seen] == [2, 3]
    assert [e for _, e in inner.seen] == [1, 3]


def test_another_thread_does_not_hear_this_context() -> None:
    log = Log()
    with steps.listening(log):
        worker = threading.Thread(target=steps.emit, args=("from a thread",))
        worker.start()
        worker.join(5)
    assert log.seen == []


def test_flaky_attempts_are_steps_and_events() -> None:
    log, attempts = Log(), []
    calls = []

    def wobbly() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise RigError("adapter re-enumerated")
        return 7

    with steps.listening(log), recording(attempts.append):
        assert retry_flaky("read supply", wobbly, attempts=3) == 7
    assert [s for s in log.seen if s[0] != "event"] == [
        ("start", "read supply (attempt 1/3)"),
        ("end", "read supply (attempt 1/3)", "RigError"),
        ("start", "read supply (attempt 2/3)"),
        ("end", "read supply (attempt 2/3)", None),
    ]
    assert [(a.number, a.error) for a in attempts] == [(1, "adapter re-enumerated"), (2, None)]
    events = [s[1] for s in log.seen if s[0] == "event"]
    assert [type(e) for e in events] == [Attempt, Attempt]
