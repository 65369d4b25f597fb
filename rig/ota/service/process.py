"""rig's OTA service in a process of its own, as the pytest plugin runs it for a test run.

In a thread of pytest's process the service shared one interpreter lock with the tests: its
~0.4 s of imports at start-up held up the first test's board, and every request the boards made
during a test competed with the test's own work. In its own process it starts on the other core
and answers the boards as a lab's server would. Nothing from the service is imported here on the
launching side (FastAPI alone costs ~0.2 s): the launcher hands the child plain JSON.

The child reads one JSON line on stdin (data folder, host, partners with their secrets, which
so stay off the command line), prints one JSON line `{"url": ...}` on stdout once it serves, and
stops gracefully when its stdin closes: when the launcher stops it, and when the launcher dies
by any means, so a killed pytest leaves no service behind.
"""

from __future__ import annotations

import contextlib
import gc
import json
import sys
from pathlib import Path
from typing import Any

from rig.errors import RigError
from rig.lifeline import TiedChild, stop_when_stdin_closes

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0


class ServiceProcessError(RigError):
    """The local OTA service's process did not start; the message names its log."""


class ServiceProcess:
    """The launcher's handle: `start(partners)` returns once the service answers at `base_url`.

    Or in steps, to overlap the child's start-up with the launcher's own: `launch()` (the child
    loads the service, ~0.4 s, before it needs to know anything), `serve(partners)` once the
    launcher knows them, `ready()`. A launched child told nothing (`stop()`) just exits."""

    def __init__(self, data_dir: Path, *, log_path: Path | None = None) -> None:
        self.data_dir = data_dir
        self.log_path = log_path or data_dir / "service.log"  # its stderr
        self._child = TiedChild([sys.executable, "-m", "rig.ota.service.process"],
                                log_path=self.log_path)  # fmt: skip
        self.base_url = ""

    def start(
        self,
        partners: list[dict[str, Any]],
        *,
        host: str = "127.0.0.1",
        timeout_s: float = START_TIMEOUT_S,
    ) -> ServiceProcess:
        self.launch()
        self.serve(partners, host=host)
        return self.ready(timeout_s)

    def launch(self) -> None:
        """Start the child and return at once."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._child.launch()

    def serve(self, partners: list[dict[str, Any]], *, host: str = "127.0.0.1") -> None:
        """Tell the launched child what to serve: its data folder, host and partners (their
        secrets go through the pipe, not the command line)."""
        config = {"data": str(self.data_dir), "host": host, "partners": partners}
        self._child.send(json.dumps(config).encode() + b"\n")

    def ready(self, timeout_s: float = START_TIMEOUT_S) -> ServiceProcess:
        """Wait (at most `timeout_s` from the launch) until it serves; else stop it and say so."""
        line = next(self._child.lines(self._child.launched + timeout_s), b"")
        try:
            self.base_url = json.loads(line)["url"]
        except (ValueError, KeyError, TypeError):
            self.stop()
            raise ServiceProcessError(
                f"the local OTA service did not start within {timeout_s:g} s; its log: "
                f"{self.log_path}"
            ) from None
        return self

    def stop(self) -> None:
        """Close its stdin (it stops gracefully), then SIGTERM, then SIGKILL; safe twice."""
        self._child.stop(STOP_TIMEOUT_S)

    @property
    def pid(self) -> int | None:
        return self._child.pid


def _partner(given: dict[str, Any]) -> Any:
    from rig.ota.service.auth import PartnerAuth
    from rig.ota.service.oauth import OAuthLogin

    oauth = OAuthLogin(**given["oauth"]) if given.get("oauth") else None
    return PartnerAuth(given["partner_id"], given["token"], given.get("account_id", ""), oauth)


def main() -> int:
    gc.disable()  # loading allocates objects that all stay: collecting them cost ~20 %
    from rig.ota.service.serve import run  # the service's ~0.3 s, before it is told anything

    gc.freeze()
    gc.enable()

    line = sys.stdin.buffer.readline()
    if not line:  # the launcher found it did not need a service after all
        return 0
    config = json.loads(line)
    partners = [_partner(p) for p in config["partners"]]
    stop_when_stdin_closes()
    announce = lambda url: print(json.dumps({"url": url}), flush=True)  # noqa: E731
    with contextlib.suppress(KeyboardInterrupt):
        run(config["host"], 0, Path(config["data"]), partners, ready=announce)
    return 0


if __name__ == "__main__":
    sys.exit(main())
