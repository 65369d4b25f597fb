"""Serve a supply model over raw TCP, the way LXI supplies listen on port 5025.

The power driver reaches it exactly as it reaches a lab supply: a pyvisa `...::SOCKET` resource
with `\\n` termination. One thread per client keeps a late (`DIAG:DELAY`) reply on one connection
from stalling the others; a shared wake-up pipe lets `close()` stop every thread at once, so
nothing is left behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import threading
from typing import Protocol

log = logging.getLogger(__name__)
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only; reset by the kernel per ACK

MAX_LINE_BYTES = 64 * 1024  # a client that never sends '\n' cannot make us buffer forever
SEND_TIMEOUT_S = 5.0  # a client that never reads its replies cannot hold a thread forever


class LineHandler(Protocol):
    """What the server needs from a model (PsuModel fits)."""

    def handle_timed(self, line: str) -> tuple[str | None, float]: ...


class ScpiServer:
    """A threaded line server on 127.0.0.1; started on construction, stopped by `close()`."""

    def __init__(self, model: LineHandler, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._model = model
        self._listener = socket.create_server((host, port))
        self.host = host
        self.port: int = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = os.pipe()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._clients: dict[threading.Thread, socket.socket] = {}
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"scpi-accept-{self.port}", daemon=True
        )
        self._accept_thread.start()

    @property
    def resource(self) -> str:
        """The VISA resource name a client opens (pyvisa-py `@py` understands it)."""
        return f"TCPIP0::{self.host}::{self.port}::SOCKET"

    def client_count(self) -> int:
        """Connections being served right now."""
        with self._lock:
            return sum(thread.is_alive() for thread in self._clients)

    def close(self) -> None:
        """Stop accepting, drop every client, join every thread. Safe to call twice."""
        if self._stop.is_set():
            return
        self._stop.set()
        os.write(self._wake_w, b"x")  # never read: stays readable, so every select wakes
        self._accept_thread.join()
        with self._lock:  # the accept thread is gone: no client can be added any more
            clients = list(self._clients.items())
        for _, conn in clients:
            with contextlib.suppress(OSError):  # OSError: the client thread already closed it
                conn.shutdown(socket.SHUT_RDWR)  # unblocks a sendall stuck on a full buffer
        for thread, _ in clients:
            thread.join()
        self._listener.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def __enter__(self) -> ScpiServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept_loop(self) -> None:
        while True:
            ready, _, _ = select.select([self._listener, self._wake_r], [], [])
            if self._wake_r in ready:
                return
            try:
                conn, _ = self._listener.accept()
            except OSError:  # the client gave up between select and accept
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.settimeout(SEND_TIMEOUT_S)
            thread = threading.Thread(
                target=self._serve_client, args=(conn,), name=f"scpi-client-{self.port}",
                daemon=True,
            )  # fmt: skip
            with self._lock:  # finished clients are forgotten here, never by their own thread,
                # so close() joins every thread that might still be running
                self._clients = {t: c for t, c in self._clients.items() if t.is_alive()}
                self._clients[thread] = conn
                thread.start()

    def _serve_client(self, conn: socket.socket) -> None:
        try:
            self._client_loop(conn)
        except OSError:  # reset, timeout on send, or shut down by close(): this client is done
            pass
        except Exception:  # a model bug must cost one connection, never the server
            log.exception("scpi server: dropping client after an unexpected error")
        finally:
            conn.close()

    def _client_loop(self, conn: socket.socket) -> None:
        pending = b""
        while True:
            ready, _, _ = select.select([conn, self._wake_r], [], [])
            if self._wake_r in ready:
                return
            data = conn.recv(65536)
            if not data:  # disconnected, possibly mid-line: the partial line is dropped
                return
            if _QUICKACK is not None:  # ACK a write that has no reply now, as instruments do:
                # a delayed ACK holds the client's next command 40 ms (Nagle), e.g. the
                # MEAS:CURR? after INST:NSEL, and a power trace would get one sample per 45 ms
                conn.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            pending += data
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                reply, delay = self._model.handle_timed(raw.rstrip(b"\r").decode("latin-1"))
                if reply is None:
                    continue
                if delay > 0 and self._stop.wait(delay):
                    return
                conn.sendall(reply.encode("latin-1", "replace") + b"\n")
            if len(pending) > MAX_LINE_BYTES:
                pending = b""
