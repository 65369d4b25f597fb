"""Serve a supply model over raw TCP, the way LXI supplies listen on port 5025.

The power driver reaches it exactly as it reaches a lab supply: a pyvisa `...::SOCKET` resource
with `\\n` termination. No thread of its own: the double's reactor (rig.double.reactor) accepts
and reads every client of every board, and the commands of one connection run in order on the
reactor's workers, so a command that powers a board (and joins its threads) or a late
(`DIAG:DELAY`) reply on one connection never stalls the others.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections import deque
from typing import Protocol

from rig.double.reactor import Reactor

log = logging.getLogger(__name__)
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only; reset by the kernel per ACK

MAX_LINE_BYTES = 64 * 1024  # a client that never sends '\n' cannot make us buffer forever
SEND_BUFFER_BYTES = 64 * 1024  # the kernel's share of the replies a client has not read yet
MAX_UNSENT_BYTES = 64 * 1024  # a client this far behind on reading its replies is dropped


class LineHandler(Protocol):
    """What the server needs from a model (PsuModel fits)."""

    def handle_timed(self, line: str) -> tuple[str | None, float]: ...


class _Client:
    """One connection: lines not yet run, replies not yet sent; `lock` guards both and `closed`."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.fd = conn.fileno()
        self.lock = threading.Lock()
        self.partial = b""
        self.lines: deque[str] = deque()
        self.unsent = bytearray()
        self.busy = False  # a worker runs (or a late reply holds) this client's commands
        self.closed = False


class ScpiServer:
    """A line server on 127.0.0.1; started on construction, stopped by `close()`."""

    def __init__(self, model: LineHandler, *, host: str = "127.0.0.1", port: int = 0,
                 reactor: Reactor | None = None) -> None:  # fmt: skip
        self._model = model
        self._own_reactor = reactor is None
        self._reactor = reactor or Reactor(name="scpi")
        try:
            self._listener = socket.create_server((host, port))
        except BaseException:
            if self._own_reactor:
                self._reactor.close()
            raise
        self._listener.setblocking(False)
        self.host = host
        self.port: int = self._listener.getsockname()[1]
        self._stopped = False
        self._working = 0  # workers running this server's commands: close() waits for them
        self._idle = threading.Condition()
        self._clients: dict[int, _Client] = {}  # touched in the reactor thread only
        try:
            self._reactor.add_reader(self._listener, self._accept)
        except BaseException:
            self._listener.close()
            if self._own_reactor:
                self._reactor.close()
            raise

    @property
    def resource(self) -> str:
        """The VISA resource name a client opens (pyvisa-py `@py` understands it)."""
        return f"TCPIP0::{self.host}::{self.port}::SOCKET"

    def client_count(self) -> int:
        """Connections being served right now."""
        return len(self._clients)

    def close(self) -> None:
        """Stop accepting and drop every client (a late reply is not waited for). Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        with contextlib.suppress(RuntimeError):  # the reactor is already gone: nothing to undo
            self._reactor.call(self._close_all)
        self._listener.close()
        for client in list(self._clients.values()):
            self._drop(client)
        with self._idle:  # a command still running may switch the board: let it finish first
            self._idle.wait_for(lambda: self._working == 0)
        if self._own_reactor:
            self._reactor.close()

    def __enter__(self) -> ScpiServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- in the reactor thread -----------------------------------------------------------------

    def _close_all(self) -> None:
        self._reactor.remove(self._listener)
        for client in list(self._clients.values()):
            self._drop(client)

    def _accept(self) -> None:
        for _ in range(16):  # a burst of clients, without starving the other boards
            try:
                conn, _ = self._listener.accept()
            except OSError:  # none left, or the client gave up between wake-up and accept
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # replies are lines: a client megabytes behind is not reading, not merely slow
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
            conn.setblocking(False)
            client = _Client(conn)
            self._clients[client.fd] = client
            self._reactor.add_reader(client.fd, lambda c=client: self._read(c))

    def _read(self, client: _Client) -> None:
        try:
            data = client.conn.recv(65536)
        except BlockingIOError:
            return
        except OSError:  # reset by the client
            data = b""
        if not data:  # disconnected, possibly mid-line: the partial line is dropped
            self._drop(client)
            return
        if _QUICKACK is not None:  # ACK a write that has no reply now, as instruments do:
            # a delayed ACK holds the client's next command 40 ms (Nagle), e.g. the
            # MEAS:CURR? after INST:NSEL, and a power trace would get one sample per 45 ms
            with contextlib.suppress(OSError):
                client.conn.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        *lines, client.partial = (client.partial + data).split(b"\n")
        if len(client.partial) > MAX_LINE_BYTES:
            client.partial = b""
        if not lines:
            return
        texts = [raw.rstrip(b"\r").decode("latin-1") for raw in lines]
        with client.lock:
            if not client.busy and not client.lines:
                texts = self._answer_here(client, texts)
            client.lines.extend(texts)
            if client.busy or not client.lines:
                return
            client.busy = True
        self._reactor.submit(lambda: self._run_commands(client))

    def _answer_here(self, client: _Client, lines: list[str]) -> list[str]:
        """Under client.lock: answer queries in the reactor thread, saving a worker's hand-off
        (a power trace's MEAS:CURR? round trip); the lines left for a worker. Only queries (a
        command that switches the output joins a board's threads), only while the supply is
        free, and up to a late reply (which then holds the rest back, busy)."""
        try_handle = getattr(self._model, "try_handle_timed", None)
        if try_handle is None or not all(_queries_only(line) for line in lines):
            return lines
        for i, line in enumerate(lines):
            done = try_handle(line)
            if done is None:  # another connection is switching this supply: a worker waits
                return lines[i:]
            reply, delay = done
            if reply is None:
                continue
            data = reply.encode("latin-1", "replace") + b"\n"
            if delay > 0:
                client.busy = True
                self._reactor.call_at(time.monotonic() + delay,
                                      lambda d=data: self._late_reply(client, d))  # fmt: skip
                return lines[i + 1 :]
            self._send_locked(client, data)
        return []

    def _flush(self, client: _Client) -> None:
        with client.lock:
            if client.closed:
                return
            try:
                sent = client.conn.send(client.unsent)
            except BlockingIOError:
                return
            except OSError:
                sent = -1
            if sent >= 0:
                del client.unsent[:sent]
                if client.unsent:
                    return
        if sent < 0:
            self._drop(client)
        else:
            self._reactor.set_writer(client.fd, None)

    def _drop(self, client: _Client) -> None:
        if self._clients.pop(client.fd, None) is not None:
            with contextlib.suppress(KeyError, ValueError, OSError, RuntimeError):
                self._reactor.remove(client.fd)  # RuntimeError: the reactor is gone already
        with client.lock:
            if not client.closed:
                client.closed = True
                client.conn.close()

    # -- on a worker: one client's commands, in order ------------------------------------------

    def _run_commands(self, client: _Client) -> None:
        with self._idle:
            self._working += 1
        try:
            self._commands(client)
        finally:
            with self._idle:
                self._working -= 1
                self._idle.notify_all()

    def _commands(self, client: _Client) -> None:
        try:
            while True:
                with client.lock:
                    if client.closed or not client.lines:
                        client.busy = False
                        return
                    line = client.lines.popleft()
                reply, delay = self._model.handle_timed(line)
                if reply is None:
                    continue
                data = reply.encode("latin-1", "replace") + b"\n"
                if delay > 0:  # the client waits; its next commands wait behind this reply
                    self._reactor.call_at(
                        time.monotonic() + delay, lambda data=data: self._late_reply(client, data)
                    )
                    return
                self._send(client, data)
        except Exception:  # a model bug must cost one connection, never the server
            log.exception("scpi server: dropping client after an unexpected error")
            self._reactor.call_soon(lambda: self._drop(client))

    def _late_reply(self, client: _Client, data: bytes) -> None:
        if client.closed or self._stopped:
            return
        self._send(client, data)
        self._reactor.submit(lambda: self._run_commands(client))

    def _send(self, client: _Client, data: bytes) -> None:
        with client.lock:
            self._send_locked(client, data)

    def _send_locked(self, client: _Client, data: bytes) -> None:
        """Straight onto the socket when it takes it (nearly always); the rest via the reactor."""
        if client.closed:
            return
        if not client.unsent:
            try:
                data = data[client.conn.send(data) :]
            except BlockingIOError:
                pass
            except OSError:  # reset: the reader side notices and drops the client
                return
            if not data:
                return
        client.unsent += data
        if len(client.unsent) > MAX_UNSENT_BYTES:
            self._reactor.call_soon(lambda: self._drop(client))
        else:
            self._reactor.call_soon(
                lambda: (
                    client.closed
                    or self._reactor.set_writer(client.fd, lambda: self._flush(client))
                )
            )


def _queries_only(line: str) -> bool:
    """Whether every command of the line is a query (`*IDN?`, `MEAS:CURR? CH2`, ...)."""
    parts = [part.split()[0] for part in line.split(";") if part.strip()]
    return bool(parts) and all(part.endswith("?") for part in parts)
