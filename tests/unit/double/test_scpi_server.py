"""The SCPI server over a real TCP socket, reached with pyvisa-py like a lab supply."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import pyvisa
from pyvisa.errors import VisaIOError

from rig.double.psu import PsuModel
from rig.double.scpi_server import ScpiServer
from tests.unit.helpers import open_visa, wait_until


@pytest.fixture
def psu() -> PsuModel:
    return PsuModel("generic")


@pytest.fixture
def server(psu: PsuModel) -> Iterator[ScpiServer]:
    with ScpiServer(psu) as srv:
        yield srv


def raw_client(server: ScpiServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=3)
    return sock


def read_lines(sock: socket.socket, count: int) -> list[bytes]:
    data = b""
    while data.count(b"\n") < count:
        chunk = sock.recv(4096)
        assert chunk, f"server closed the connection; got {data!r}"
        data += chunk
    return data.split(b"\n")[:count]


def test_resource_name_and_pyvisa_round_trip(
    server: ScpiServer, rm: pyvisa.ResourceManager
) -> None:
    assert server.resource == f"TCPIP0::127.0.0.1::{server.port}::SOCKET"
    inst = open_visa(rm, server.resource)
    assert inst.query("*IDN?") == "RIG,DOUBLE-PSU,0001,0.1"
    inst.write("VOLT 4.5")
    inst.write("OUTP ON")
    assert inst.query("VOLT?") == "4.500"
    assert inst.query("OUTP?") == "1"
    assert inst.query("SYST:ERR?") == '0,"No error"'
    inst.close()


def test_several_clients_share_one_supply(server: ScpiServer, rm: pyvisa.ResourceManager) -> None:
    first, second = open_visa(rm, server.resource), open_visa(rm, server.resource)
    sock = raw_client(server)
    wait_until(lambda: server.client_count() == 3)
    # Connections are not ordered against each other: *OPC? says "applied" before the next one.
    assert first.query("VOLT 7;*OPC?") == "1"
    assert second.query("VOLT?") == "7.000"
    sock.sendall(b"VOLT 8;*OPC?\r\n")
    assert read_lines(sock, 1) == [b"1"]
    assert first.query("VOLT?") == "8.000"
    assert second.query("*OPC?") == "1"
    sock.close()
    first.close()
    second.close()
    wait_until(lambda: server.client_count() == 0)


def test_crlf_and_several_lines_per_packet(server: ScpiServer) -> None:
    with raw_client(server) as sock:
        sock.sendall(b"VOLT 5\r\nVOLT?\r\n*OPC?\nBOGUS\nSYST:ERR?\n")
        assert read_lines(sock, 3) == [b"5.000", b"1", b'-113,"Undefined header"']
        sock.sendall(b"*I")  # a line split across packets
        sock.sendall(b"DN?\n")
        assert read_lines(sock, 1) == [b"RIG,DOUBLE-PSU,0001,0.1"]


def test_client_vanishing_mid_line_does_not_kill_server(
    server: ScpiServer, rm: pyvisa.ResourceManager
) -> None:
    polite = raw_client(server)
    polite.sendall(b"VOLT 9")  # no newline: the command must never run
    polite.close()
    rude = raw_client(server)
    rude.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    rude.sendall(b"VOLT 10")
    rude.close()  # RST instead of FIN
    wait_until(lambda: server.client_count() == 0)
    inst = open_visa(rm, server.resource)
    assert inst.query("VOLT?") == "3.300"
    inst.close()


def test_late_reply_then_client_recovers(server: ScpiServer, rm: pyvisa.ResourceManager) -> None:
    inst = open_visa(rm, server.resource, timeout_ms=150)
    inst.write("DIAG:DELAY 0.6")
    with pytest.raises(VisaIOError):
        inst.query("*IDN?")  # the reply comes after the client gave up
    inst.timeout = 3000
    assert inst.read() == "RIG,DOUBLE-PSU,0001,0.1", "the late reply must still arrive"
    assert inst.query("*OPC?") == "1"
    inst.close()


def test_delayed_reply_does_not_stall_other_clients(server: ScpiServer) -> None:
    slow, fast = raw_client(server), raw_client(server)
    slow.sendall(b"DIAG:DELAY 30;*IDN?\n")  # the delay is taken by this line's own query
    fast.sendall(b"*OPC?\n")
    assert read_lines(fast, 1) == [b"1"]
    assert select.select([slow], [], [], 0)[0] == [], "the delayed reply came early"
    started = time.monotonic()
    server.close()  # must not wait out the 30 s delay
    assert time.monotonic() - started < 2
    assert slow.recv(100) == b"", "server must drop the delayed client on close"
    slow.close()
    fast.close()


def test_close_joins_threads_and_frees_port(psu: PsuModel, rm: pyvisa.ResourceManager) -> None:
    before = set(threading.enumerate())
    server = ScpiServer(psu)
    inst = open_visa(rm, server.resource)
    idle = raw_client(server)
    assert inst.query("*OPC?") == "1"
    wait_until(lambda: server.client_count() == 2)
    started = set(threading.enumerate()) - before
    # one reactor thread and the worker that ran the command: no thread per client
    assert len(started) <= 2, [t.name for t in started]
    server.close()
    server.close()  # idempotent
    assert set(threading.enumerate()) - before == set()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1)
    with contextlib.suppress(VisaIOError):
        inst.close()
    idle.close()


def test_a_client_that_never_reads_costs_only_itself(psu: PsuModel) -> None:
    with ScpiServer(psu) as server, raw_client(server) as deaf, raw_client(server) as other:
        deaf.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        with contextlib.suppress(OSError):  # reset once the server drops it: that is the point
            deaf.sendall(b"*IDN?\n" * 200_000)  # ~5 MB of replies it never reads
        other.sendall(b"*OPC?\n")
        assert read_lines(other, 1) == [b"1"]
        wait_until(lambda: server.client_count() == 1, timeout=20, what="the deaf client dropped")
