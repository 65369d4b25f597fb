"""Bounded retries for steps marked hardware-flaky, every attempt recorded.

Real benches have steps that fail now and then for reasons outside the firmware under test (a
USB adapter that re-enumerates, a supply that misses one query). Such a step, and only such a
step, may be marked: `hardware_flaky(attempts=3)(step)` or `retry_flaky("boot", board.boot)`.
Each attempt is a step (`rig.steps`) and an `Attempt` event, which the pytest plugin turns into
an Allure step and an entry of the test's record, so a pass after a retry is visible in the
report; a test is never rerun as a whole.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import ParamSpec, TypeVar

from rig import steps
from rig.errors import RigError

P = ParamSpec("P")
T = TypeVar("T")

MAX_ATTEMPTS = 5  # a step that fails more often than this is broken, not flaky


class FlakyStepError(RigError):
    """A hardware-flaky step failed on every attempt it was allowed."""


@dataclass(frozen=True)
class Attempt:
    step: str
    number: int
    of: int
    error: str | None  # None: this attempt succeeded
    at: float
    duration_s: float

    def as_dict(self) -> dict:
        return asdict(self)


class _AttemptSink(steps.Listener):
    def __init__(self, sink: Callable[[Attempt], None]) -> None:
        self.sink = sink

    def event(self, event: object) -> None:
        if isinstance(event, Attempt):
            self.sink(event)


@contextlib.contextmanager
def recording(sink: Callable[[Attempt], None]) -> Iterator[None]:
    """Send the attempts of flaky steps run inside this block to `sink` as well."""
    with steps.listening(_AttemptSink(sink)):
        yield


def retry_flaky(
    step: str,
    fn: Callable[[], T],
    *,
    attempts: int = 2,
    retry_on: tuple[type[BaseException], ...] = (RigError,),
    pause_s: float = 0.0,
) -> T:
    """Run `fn` up to `attempts` times while it raises one of `retry_on`; other errors pass."""
    if not 1 <= attempts <= MAX_ATTEMPTS:
        raise FlakyStepError(
            f"hardware-flaky step {step!r}: attempts={attempts} must be 1..{MAX_ATTEMPTS}; a "
            "step that needs more is broken, not flaky"
        )
    failures: list[str] = []
    details = ""  # the last failure's lines after its first: its evidence (e.g. lines received)
    for number in range(1, attempts + 1):
        started = time.time()
        try:
            with steps.step(f"{step} (attempt {number}/{attempts})"):
                result = fn()
        except retry_on as exc:
            first, _, details = str(exc).partition("\n")
            failures.append(f"attempt {number}: {first}")
            steps.emit(Attempt(step, number, attempts, str(exc), started, time.time() - started))
            if number < attempts and pause_s:
                time.sleep(pause_s)  # give the hardware its settling time, not a sync wait
            continue
        steps.emit(Attempt(step, number, attempts, None, started, time.time() - started))
        return result
    raise FlakyStepError(
        f"{step} failed on all {attempts} attempts (a hardware-flaky step, retried):\n  "
        + "\n  ".join(failures)
        + "".join(f"\n  {line}" for line in details.splitlines())
    )


def hardware_flaky(
    attempts: int = 2, *, retry_on: tuple[type[BaseException], ...] = (RigError,)
) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Decorator form of `retry_flaky` for a step function."""

    def wrap(fn: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(fn)
        def step(*args: P.args, **kwargs: P.kwargs) -> T:
            return retry_flaky(fn.__name__, lambda: fn(*args, **kwargs), attempts=attempts,
                               retry_on=retry_on)  # fmt: skip

        return step

    return wrap
