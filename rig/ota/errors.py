"""The OTA client's one error type, in a module of its own so sign-in and client share it."""

from __future__ import annotations

from rig.errors import RigError


class OtaClientError(RigError):
    """The OTA service refused a request (or could not be reached)."""

    def __init__(self, message: str, *, status: int = 0, rule: str = "", hint: str = "") -> None:
        self.status, self.rule, self.message, self.hint = status, rule, message, hint
        super().__init__(f"{message}{f' ({hint})' if hint else ''}")
