"""Running the local OTA service: in the foreground (`run`) or in a thread (`LocalService`).

We bind the listening socket ourselves and hand it to uvicorn, so port 0 picks a free port and
we know which one before anyone needs the URL. "Ready" means uvicorn finished its startup and
serves requests; `LocalService` then also checks that /v1/health answers.
"""

from __future__ import annotations

import copy
import socket
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import uvicorn
from uvicorn.config import LOGGING_CONFIG

from rig.ota.service.app import create_app
from rig.ota.service.auth import PartnerAuth
from rig.ota.service.domain import DEFAULT_MAX_IMAGE_BYTES, OtaService
from rig.ota.service.errors import OtaError
from rig.ota.service.limits import DEFAULT_MAX_JSON_BYTES
from rig.ota.service.oauth import DEFAULT_TOKEN_LIFETIME_S

DEFAULT_DATA_DIR = Path(".rig") / "ota"
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0


class _Server(uvicorn.Server):
    """uvicorn that tells us when it has started."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._on_started()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Device long-polls answer first: else they hold the graceful stop to its timeout."""
        service = getattr(getattr(self.config.app, "state", None), "service", None)
        if service is not None:
            service.work_bell.close()
        await super().shutdown(sockets=sockets)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
    # without it every response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OtaError(
            400,
            "VALIDATION",
            f"cannot listen on {host}:{port}: {exc.strerror}",
            "pick another --port (0 picks a free one)",
        ) from exc
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _url(host: str, sock: socket.socket) -> str:
    port = sock.getsockname()[1]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _foreground_logging() -> dict[str, Any]:
    """uvicorn's logging, plus the service's own lines (start-up sweep, clients gone, bugs) at
    INFO on stderr: in the foreground they are the operator's only view of the service."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["rig.ota.service"] = {
        "handlers": ["default"],
        "level": "INFO",
        "propagate": False,
    }
    return config


def _server(
    sock: socket.socket,
    app: object,
    on_started: Callable[[], None],
    log_config: dict[str, Any] | None = None,
) -> _Server:
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
        **({"log_config": log_config} if log_config else {}),
    )
    return _Server(config, on_started)


def run(
    host: str = "127.0.0.1",
    port: int = 0,
    data_dir: Path | str = DEFAULT_DATA_DIR,
    partners: Mapping[str, PartnerAuth] | list[PartnerAuth] | None = None,
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
    ready: Callable[[str], None] | None = None,
    token_lifetime_s: float = DEFAULT_TOKEN_LIFETIME_S,
    max_json_bytes: int = DEFAULT_MAX_JSON_BYTES,
) -> None:
    """Serve in the foreground until interrupted; announce the base URL once it serves.

    The URL goes to `ready`, or is printed on its own line on stdout (for launchers to read).
    SIGINT/SIGTERM stop it gracefully; uvicorn then re-raises the signal, so Ctrl-C surfaces as
    KeyboardInterrupt and SIGTERM ends the process with the signal's exit status.
    """
    app = create_app(
        Path(data_dir), partners or {}, max_image_bytes, token_lifetime_s, max_json_bytes
    )
    sock = _bind(host, port)
    url = _url(host, sock)
    announce = ready or (lambda u: print(u, flush=True))
    try:
        _server(sock, app, lambda: announce(url), _foreground_logging()).run(sockets=[sock])
    finally:
        sock.close()


class LocalService:
    """The service in a background thread, for tests and the pytest plugin.

    with LocalService(tmp_path, {"lab": PartnerAuth("lab", "t0ken")}) as svc:
        httpx.get(svc.base_url + "/v1/health")
        svc.service.create_device_type("lab", "blinky")   # direct set-up, no HTTP

    Partners with an `oauth` login may sign in at /oauth/token; the tokens it issues live
    `token_lifetime_s` (short ones let a test see a token expire).
    """

    def __init__(
        self,
        data_dir: Path | str,
        partners: Mapping[str, PartnerAuth] | list[PartnerAuth],
        max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token_lifetime_s: float = DEFAULT_TOKEN_LIFETIME_S,
        max_json_bytes: int = DEFAULT_MAX_JSON_BYTES,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.app = create_app(
            self.data_dir, partners, max_image_bytes, token_lifetime_s, max_json_bytes
        )
        self.service: OtaService = self.app.state.service
        self._host, self._port = host, port
        self._started = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._error: BaseException | None = None
        self.base_url = ""

    def start(self, timeout_s: float = START_TIMEOUT_S) -> LocalService:
        """Start serving; returns once /v1/health answers, or raises OtaError at the deadline."""
        self._sock = _bind(self._host, self._port)
        self.base_url = _url(self._host, self._sock)
        self._server = _server(self._sock, self.app, self._started.set)
        self._thread = threading.Thread(target=self._serve, name="rig-ota-service", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._started.wait(0.01):
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                why = f": {self._error!r}" if self._error else f" within {timeout_s} s"
                raise OtaError(
                    500,
                    "INTERNAL",
                    f"the local OTA service did not start{why}",
                    "look for another error above; check the data folder",
                )
        with httpx.Client(base_url=self.base_url, timeout=max(deadline - time.monotonic(), 1)) as c:
            c.get("/v1/health").raise_for_status()
        return self

    def _serve(self) -> None:
        try:
            assert self._server is not None and self._sock is not None
            self._server.run(sockets=[self._sock])
        except BaseException as exc:  # reported by start(); a thread cannot raise to it
            self._error = exc

    def stop(self) -> None:
        """Stop serving and close the database; safe to call twice."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S)
            if self._thread.is_alive() and self._server is not None:
                self._server.force_exit = True
                self._thread.join(STOP_TIMEOUT_S)
        if self._sock is not None:
            self._sock.close()
        self._thread = self._server = self._sock = None
        self.service.close()

    def __enter__(self) -> LocalService:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
