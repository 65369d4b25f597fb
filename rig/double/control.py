"""The double's control channel: JSON lines over a loopback TCP port.

Tests and the plugin use it for what a real bench sets up by other means: telling an emulated
ASR its OTA service and device secret, and (later) injecting faults. One request per line,
one answer per line: `{"op": ..., "board": ..., ...}` → `{"ok": true, ...}` or
`{"ok": false, "error": "..."}`.
"""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import threading
from collections.abc import Callable
from typing import Any

from rig.errors import RigError

Handler = Callable[[dict[str, Any]], dict[str, Any] | None]


class ControlError(RigError):
    """The double refused or could not answer a control request."""


class ControlServer:
    """Serves `handlers[op](request)` on 127.0.0.1; a handler raising RigError answers ok: false."""

    def __init__(self, handlers: dict[str, Handler]) -> None:
        self.handlers = handlers
        outer = self

        class _Session(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                for line in self.rfile:
                    answer = outer._answer(line)
                    with contextlib.suppress(OSError):
                        self.wfile.write(json.dumps(answer).encode() + b"\n")

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Session)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
            handler = self.handlers.get(request.get("op", ""))
            if handler is None:
                known = ", ".join(sorted(self.handlers))
                return {"ok": False, "error": f"unknown op {request.get('op')!r} (known: {known})"}
            return {"ok": True, **(handler(request) or {})}
        except (ValueError, AttributeError) as exc:
            return {"ok": False, "error": f"bad control request: {exc}"}
        except KeyError as exc:  # str(KeyError) is just the quoted key: say what it is
            return {"ok": False, "error": f"{request.get('op')!r} request lacks the field {exc}"}
        except (RigError, TypeError) as exc:
            return {"ok": False, "error": str(exc)}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class DoubleControl:
    """Client side: one connection to a double's control port."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout_s: float = 10.0) -> None:
        self._sock = socket.create_connection((host, port), timeout=timeout_s)
        self._file = self._sock.makefile("rwb")

    def call(self, op: str, **fields: Any) -> dict[str, Any]:
        self._file.write(json.dumps({"op": op, **fields}).encode() + b"\n")
        self._file.flush()
        line = self._file.readline()
        if not line:
            raise ControlError(f"the board double closed its control channel during {op!r}")
        answer = json.loads(line)
        if not answer.get("ok"):
            raise ControlError(f"board double refused {op!r}: {answer.get('error')}")
        return answer

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
            self._sock.close()
