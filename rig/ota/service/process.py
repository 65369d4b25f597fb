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
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rig.errors import RigError
from rig.lifeline import stop_when_stdin_closes

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
        self._proc: subprocess.Popen[bytes] | None = None
        self._launched = 0.0
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
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "rig.ota.service.process"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                start_new_session=True,  # Ctrl-C reaches pytest, which stops us in order
            )  # fmt: skip
        self._launched = time.monotonic()

    def serve(self, partners: list[dict[str, Any]], *, host: str = "127.0.0.1") -> None:
        """Tell the launched child what to serve: its data folder, host and partners (their
        secrets go through the pipe, not the command line)."""
        assert self._proc is not None and self._proc.stdin is not None, "launch() first"
        config = {"data": str(self.data_dir), "host": host, "partners": partners}
        self._proc.stdin.write(json.dumps(config).encode() + b"\n")
        self._proc.stdin.flush()  # and kept open: its end is the child's signal to stop

    def ready(self, timeout_s: float = START_TIMEOUT_S) -> ServiceProcess:
        """Wait (at most `timeout_s` from the launch) until it serves; else stop it and say so."""
        assert self._proc is not None, "launch() first"
        line = self._read_line(self._launched + timeout_s)
        try:
            self.base_url = json.loads(line)["url"]
        except (ValueError, KeyError, TypeError):
            self.stop()
            raise ServiceProcessError(
                f"the local OTA service did not start within {timeout_s:g} s; its log: "
                f"{self.log_path}"
            ) from None
        return self

    def _read_line(self, deadline: float) -> bytes:
        """Its first stdout line, or b"" if it exits or the deadline passes first."""
        assert self._proc is not None and self._proc.stdout is not None
        fd, pending = self._proc.stdout.fileno(), b""
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    return b""
                chunk = os.read(fd, 4096)
                if not chunk:
                    return b""
                pending += chunk
        return pending.split(b"\n", 1)[0]

    def stop(self) -> None:
        """Close its stdin (it stops gracefully), then SIGTERM, then SIGKILL; safe twice."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for step in (self._close_stdin, self._terminate, self._kill):
            step(proc)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(STOP_TIMEOUT_S)
                break
        if proc.stdout is not None:
            proc.stdout.close()

    @staticmethod
    def _close_stdin(proc: subprocess.Popen[bytes]) -> None:
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()

    @staticmethod
    def _terminate(proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None


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
