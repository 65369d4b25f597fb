"""The deployment state machine (DESIGN §4): the vocabulary client, service and reports share.

A deployment moves forward along QUEUED → OFFERED → ACCEPTED → TRANSFERRING → TRANSFERRED →
VERIFYING → APPLYING → SUCCEEDED (a stage may be skipped, never revisited) or ends in a failure
that fits its stage. Terminal states are final, with one exception: INTERRUPTED may be retried
as a new attempt of the same deployment (and may still be canceled or superseded), until the
retry limit: an attempt that ends INTERRUPTED with `MAX_ATTEMPTS` used is not offered again. A
device that lost its place (ASR reboot) restarts by reporting ACCEPTED again, which is also a new
attempt.

Plain data and one pure function (`move`), no FastAPI: the client and the reports import it too.
The service turns a refused move into its HTTP error (rig.ota.service.deployments).
"""

from __future__ import annotations

from typing import Literal

QUEUED, OFFERED, ACCEPTED = "QUEUED", "OFFERED", "ACCEPTED"
TRANSFERRING, TRANSFERRED = "TRANSFERRING", "TRANSFERRED"
VERIFYING, APPLYING, SUCCEEDED = "VERIFYING", "APPLYING", "SUCCEEDED"
DECLINED, ABORTED_BY_MCU = "DECLINED", "ABORTED_BY_MCU"
VERIFY_FAILED, APPLY_FAILED = "VERIFY_FAILED", "APPLY_FAILED"
INTERRUPTED, TIMED_OUT = "INTERRUPTED", "TIMED_OUT"
CANCELED, SUPERSEDED = "CANCELED", "SUPERSEDED"

PATH = (QUEUED, OFFERED, ACCEPTED, TRANSFERRING, TRANSFERRED, VERIFYING, APPLYING, SUCCEEDED)
FAILURES = (
    DECLINED,
    ABORTED_BY_MCU,
    VERIFY_FAILED,
    APPLY_FAILED,
    INTERRUPTED,
    TIMED_OUT,
    CANCELED,
    SUPERSEDED,
)
STATES = PATH + FAILURES
TERMINAL = frozenset((SUCCEEDED, *FAILURES))
RETRYABLE = frozenset((INTERRUPTED,))
#: Attempts a deployment gets (the service's default; `Deployments.max_attempts` per service).
MAX_ATTEMPTS = 3
#: Not yet final: offered to the device by `next`, superseded by a newer push, cancelable.
OPEN = frozenset(set(STATES) - TERMINAL | RETRYABLE)
#: Only the service moves a deployment here; a device reporting them is refused.
SERVICE_ONLY = frozenset((QUEUED, CANCELED, SUPERSEDED))

State = Literal[
    "QUEUED",
    "OFFERED",
    "ACCEPTED",
    "TRANSFERRING",
    "TRANSFERRED",
    "VERIFYING",
    "APPLYING",
    "SUCCEEDED",
    "DECLINED",
    "ABORTED_BY_MCU",
    "VERIFY_FAILED",
    "APPLY_FAILED",
    "INTERRUPTED",
    "TIMED_OUT",
    "CANCELED",
    "SUPERSEDED",
]

#: The stages from which each failure may be reported (INTERRUPTED/TIMED_OUT: any open stage).
_FAILS_FROM = {
    DECLINED: {QUEUED, OFFERED, ACCEPTED},
    ABORTED_BY_MCU: {ACCEPTED, TRANSFERRING, TRANSFERRED},
    VERIFY_FAILED: {TRANSFERRING, TRANSFERRED, VERIFYING},
    APPLY_FAILED: {VERIFYING, APPLYING},
}
_RETRY_TO = {OFFERED, ACCEPTED, TRANSFERRING}
_RESTART_FROM = {TRANSFERRING, TRANSFERRED, VERIFYING, APPLYING}

Move = Literal["same", "move", "retry"]


def move(current: str, new: str) -> Move | None:
    """How `current` → `new` counts, or None when the machine does not allow it."""
    if new == current:
        return "same"
    if current in RETRYABLE and new in _RETRY_TO | {CANCELED, SUPERSEDED}:
        return "retry" if new in _RETRY_TO else "move"
    if current in TERMINAL:
        return None
    if new == ACCEPTED and current in _RESTART_FROM:
        return "retry"
    if new in PATH and PATH.index(new) > PATH.index(current):
        return "move"
    if new in (INTERRUPTED, TIMED_OUT, CANCELED, SUPERSEDED) or current in _FAILS_FROM.get(new, ()):
        return "move"
    return None


def allowed_from(current: str) -> list[str]:
    """Every other state a deployment may move to from `current` (for messages and docs)."""
    return [s for s in STATES if s != current and move(current, s) is not None]
