"""The double's control channel: JSON lines over loopback TCP, a real server and real clients."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import pytest

from rig.double.control import ControlError, ControlServer, DoubleControl
from rig.errors import RigError


class BoardGone(RigError):
    pass


def ota(request: dict) -> dict:
    if request["board"] != "kettle":
        raise BoardGone(f"no emulated board {request['board']!r} in this double")
    return {"url": request["url"]}


def power(request: dict) -> None:
    return None  # a handler with nothing to add answers just ok


CLIENTS = 6
together = threading.Barrier(CLIENTS, timeout=5)  # every client inside a handler at once


def echo(request: dict) -> dict:
    if request["n"] == 0:
        together.wait()  # a server that handled one client at a time would break this
    return {"client": request["client"], "n": request["n"]}


def crash(request: dict) -> dict:
    raise RuntimeError("a bug in the double")  # not a RigError: the session ends


@pytest.fixture(scope="module")
def control_server() -> Iterator[ControlServer]:
    """One server for the module: closing one takes up to socketserver's 0.5 s poll interval."""
    control_server = ControlServer({"ota": ota, "power": power, "echo": echo, "crash": crash})
    yield control_server
    control_server.close()


@pytest.fixture
def raw(control_server: ControlServer) -> Iterator[socket.socket]:
    """A bare connection, for what DoubleControl would never send."""
    sock = socket.create_connection(("127.0.0.1", control_server.port), timeout=5)
    yield sock
    sock.close()


def ask(sock: socket.socket, line: bytes) -> dict:
    sock.sendall(line + b"\n")
    answer = b""
    while not answer.endswith(b"\n"):
        more = sock.recv(4096)
        assert more, "the server closed the connection"
        answer += more
    assert answer.count(b"\n") == 1  # one answer per request line
    return json.loads(answer)


def test_a_known_op_answers_ok_with_what_the_handler_returned(raw):
    request = {"op": "ota", "board": "kettle", "url": "http://127.0.0.1:1"}
    assert ask(raw, json.dumps(request).encode()) == {"ok": True, "url": "http://127.0.0.1:1"}
    assert ask(raw, b'{"op": "power"}') == {"ok": True}


def test_an_unknown_op_is_refused_naming_the_known_ones(raw):
    assert ask(raw, b'{"op": "reflash", "board": "kettle"}') == {
        "ok": False,
        "error": "unknown op 'reflash' (known: crash, echo, ota, power)",
    }
    answer = ask(raw, b'{"board": "kettle"}')
    assert (
        answer["ok"] is False
        and "unknown op None (known: crash, echo, ota, power)" in answer["error"]
    )


def test_a_handler_raising_a_rig_error_answers_not_ok_with_its_message(raw):
    request = {"op": "ota", "board": "toaster", "url": "x"}
    assert ask(raw, json.dumps(request).encode()) == {
        "ok": False,
        "error": "no emulated board 'toaster' in this double",
    }


@pytest.mark.parametrize(
    "line",
    [b"{not json", b'["ota"]', b"42", b"\xff\xfe", b'{"op": "ota", "board": "kettle"'],
    ids=["broken", "list", "number", "not-utf8", "unterminated"],
)
def test_a_malformed_request_answers_not_ok_and_the_session_goes_on(raw, line):
    answer = ask(raw, line)
    assert answer["ok"] is False and answer["error"].startswith("bad control request: ")
    assert ask(raw, b'{"op": "power"}') == {"ok": True}  # the same connection still works


def test_a_request_missing_a_field_answers_not_ok(raw):
    answer = ask(raw, b'{"op": "ota", "board": "kettle"}')  # no url
    assert answer == {"ok": False, "error": "'ota' request lacks the field 'url'"}


def test_the_client_raises_control_error_on_refusals(control_server):
    client = DoubleControl(control_server.port)
    try:
        assert client.call("ota", board="kettle", url="u") == {"ok": True, "url": "u"}
        with pytest.raises(ControlError) as caught:
            client.call("ota", board="toaster", url="u")
        assert str(caught.value) == (
            "board double refused 'ota': no emulated board 'toaster' in this double"
        )
        assert isinstance(caught.value, RigError)
        with pytest.raises(ControlError, match=r"refused 'nope': unknown op 'nope' \(known: "):
            client.call("nope")
        assert client.call("power") == {"ok": True}  # refusals do not break the connection
    finally:
        client.close()


def test_the_client_raises_control_error_when_the_double_goes_away(control_server):
    client = DoubleControl(control_server.port)
    try:
        with pytest.raises(ControlError, match="closed its control channel during 'crash'"):
            client.call("crash")
    finally:
        client.close()
    other = DoubleControl(control_server.port)  # one broken session leaves the server serving
    try:
        assert other.call("power") == {"ok": True}
    finally:
        other.close()


def test_several_clients_at_once_each_get_their_own_answers(control_server):
    answers: dict[int, list[dict]] = {}
    errors: list[BaseException] = []

    def run(client_id: int) -> None:
        client = DoubleControl(control_server.port)
        try:
            answers[client_id] = [client.call("echo", client=client_id, n=n) for n in range(50)]
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not errors
    assert sorted(answers) == list(range(CLIENTS))
    for client_id, got in answers.items():
        assert got == [{"ok": True, "client": client_id, "n": n} for n in range(50)]


def test_close_stops_serving():
    control_server = ControlServer({})
    port = control_server.port
    control_server.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
