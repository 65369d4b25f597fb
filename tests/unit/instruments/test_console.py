"""The console driver on real pseudo-terminals and a real TCP socket."""

import contextlib
import os
import re
import select
import socket
import threading
import tty

import pytest

from rig.instruments import console as console_module
from rig.instruments.console import Console, ConsoleError, ConsoleTimeout
from rig.instruments.console_io import PortWatch
from tests.unit.helpers import wait_until


@pytest.fixture
def pty_pair():
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    yield master, path
    for fd in (master, slave):
        with contextlib.suppress(OSError):  # a test may have closed it already
            os.close(fd)


@pytest.fixture
def console(pty_pair, tmp_path):
    _, path = pty_pair
    con = Console(path, log_path=tmp_path / "board.console.log", name="bench-1").open()
    yield con
    con.close()


def test_expect_returns_the_match_and_logs_every_line_with_a_timestamp(pty_pair, console):
    master, _ = pty_pair
    os.write(master, b"boot\r\nfirmware version: 2.4.1\r\npartial")
    match = console.expect(r"firmware version: (?P<v>\S+)\r\n", timeout=2)
    assert match.group("v") == "2.4.1"
    os.write(master, b" line\r\n")
    console.expect_exact("partial line", timeout=2)
    wait_until(lambda: "partial line" in console.log_path.read_text(), what="log line")
    log = console.log_path.read_text()
    stamped = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} ")
    lines = log.splitlines()
    assert all(stamped.match(line) for line in lines), lines
    assert [line[24:].rstrip("\r") for line in lines[1:]] == [
        "boot",
        "firmware version: 2.4.1",
        "partial line",
    ]


def test_timeout_shows_pattern_tail_and_log_path(pty_pair, console):
    master, _ = pty_pair
    os.write(master, b"".join(b"noise %d\r\n" % i for i in range(40)) + b"almost ready\r\n")
    with pytest.raises(ConsoleTimeout) as caught:
        console.expect(r"^ready$", timeout=0.3)
    message = str(caught.value)
    assert "'^ready$' did not appear within 0.3 s" in message
    assert "| almost ready" in message
    assert "| noise 39" in message and "| noise 0\n" not in message  # a tail, not everything
    assert str(console.log_path) in message
    assert message.startswith("bench-1: console ")


def test_sendline_reaches_the_board(pty_pair, console):
    master, _ = pty_pair
    console.sendline("version")
    got = b""
    while b"\n" not in got:
        got += os.read(master, 100)
    assert got == b"version\r\n"
    assert ">> version" in console.log_path.read_text()


def test_output_between_expects_is_not_lost(pty_pair, console):
    master, _ = pty_pair
    os.write(master, b"".join(b"step %03d\r\n" % i for i in range(300)))
    for i in range(300):
        console.expect_exact(f"step {i:03d}", timeout=2)


def test_missing_port_is_one_clear_error(tmp_path):
    con = Console(str(tmp_path / "ttyUSB-gone"), name="bench-1")
    with pytest.raises(ConsoleError) as caught:
        con.open()
    message = str(caught.value)
    assert "bench-1: console" in message and "cannot open it" in message
    assert "boards.bench-1.console.port" in message


def test_vanished_usb_adapter_is_waited_for_and_reopened(tmp_path):
    """A USB adapter re-enumerating is played by a symlink re-pointed to a new pty: the
    device node really disappears and a new one appears, as udev's by-id link would."""
    link = tmp_path / "usb-FTDI-if00-port0"
    master, slave = os.openpty()
    tty.setraw(slave)
    link.symlink_to(os.ttyname(slave))
    os.close(slave)
    con = Console(str(link), log_path=tmp_path / "c.log", name="bench-1").open()
    try:
        os.write(master, b"before\r\n")
        con.expect_exact("before", timeout=2)
        os.close(master)  # the adapter vanishes: reads fail
        link.unlink()
        wait_until(lambda: "console port lost" in con.log_path.read_text(), what="loss noticed")
        master2, slave2 = os.openpty()
        tty.setraw(slave2)
        link.symlink_to(os.ttyname(slave2))
        wait_until(lambda: con.reopened == 1, what="reopen")
        os.write(master2, b"after\r\n")
        con.expect_exact("after", timeout=2)
        os.close(master2)
        os.close(slave2)
    finally:
        con.close()
    log = (tmp_path / "c.log").read_text()
    assert log.index("before") < log.index("console port lost") < log.index("reopened")


def test_socket_url_console(tmp_path):
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    received = []

    def board():
        conn, _ = server.accept()
        with conn:
            line = b""
            while not line.endswith(b"\n"):  # TCP may split the line: read it whole
                chunk = conn.recv(100)
                if not chunk:
                    return
                line += chunk
            received.append(line)  # answer only once the console is surely open
            conn.sendall(b"firmware version: 9.9.9\r\n")
            conn.recv(100)  # stay connected until the console closes: no disconnect race

    thread = threading.Thread(target=board, daemon=True)
    thread.start()
    with Console(f"socket://127.0.0.1:{port}", name="remote") as con:
        con.sendline("version")
        assert con.expect(r"version: (\S+)\r\n", timeout=3).group(1) == "9.9.9"
    thread.join(timeout=3)  # the board hangs up once the console has closed
    server.close()
    assert received == [b"version\r\n"]


STAMP = re.compile(rb"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} ")


def logged_stream(log_path) -> bytes:
    """The log without its timestamps and rig's own notes: the bytes the board sent."""
    out = []
    for line in log_path.read_bytes().splitlines(keepends=True):
        stamp = STAMP.match(line)
        assert stamp, f"log line without a timestamp: {line!r}"
        if not line.startswith(b"[rig] ", stamp.end()):
            out.append(line[stamp.end() :])
    return b"".join(out)


def test_plain_text_expect_returns_a_match_and_the_text_before_it(pty_pair, console):
    master, _ = pty_pair
    os.write(master, b"boot\r\nversion 2.4.1 (a.b)\r\n")
    match = console.expect(r"version (\S+) \(a.b\)", timeout=2)  # regex syntax: a regex
    assert match.group(1) == "2.4.1"
    os.write(master, b"login: ")
    match = console.expect("login:", timeout=2)  # no regex syntax: looked for as plain text
    assert isinstance(match, re.Match) and match.group(0) == "login:"
    assert match.groupdict() == {} and console.before == "\r\n"


def test_expect_exact_takes_regex_syntax_as_text(pty_pair, console):
    master, _ = pty_pair
    os.write(master, b"axb [ok] a.b\r\n")
    assert console.expect_exact("a.b", timeout=2) == "a.b"
    assert console.before == "axb [ok] "


def test_the_log_holds_every_byte_whoever_read_it(pty_pair, console):
    """Bytes read by the reader thread while nobody waits, and by an expect reading the port
    itself, land in the log once each and in order."""
    master, _ = pty_pair
    sent = []

    def send(data: bytes) -> None:
        sent.append(data)
        os.write(master, data)

    send(b"unwatched 1\r\nunwatched 2 (no newline yet)")
    wait_until(lambda: b"no newline yet" in logged_stream(console.log_path), what="reader")
    send(b"\r\n")
    for i in range(200):
        send(b"line %03d [x] \xc2\xb5s\r\n" % i)
        if i % 7 == 0:
            console.expect(f"line {i:03d}", timeout=2)
    console.expect(r"line 199 \[x\] µs\r\n", timeout=2)
    send(b"tail without a match\r\n")
    wait_until(lambda: b"without a match" in logged_stream(console.log_path), what="tail")
    console.close()
    assert logged_stream(console.log_path) == b"".join(sent)


def test_plain_text_timeout_shows_pattern_tail_and_log_path(pty_pair, console):
    master, _ = pty_pair
    os.write(master, b"booting\r\nalmost ready\r\n")
    with pytest.raises(ConsoleTimeout) as caught:
        console.expect("login:", timeout=0.3)
    error = caught.value
    assert "'login:' did not appear within 0.3 s" in str(error)
    assert "| almost ready" in str(error) and str(console.log_path) in str(error)
    assert error.pattern == "login:" and error.tail == ("booting", "almost ready")
    assert error.log_path == console.log_path
    os.write(master, b"login: ")
    assert console.expect("login:", timeout=2).group(0) == "login:"  # the text is still there
    assert console.before == "booting\r\nalmost ready\r\n"


def test_close_wakes_an_expect_waiting_on_the_port(pty_pair, console):
    errors = []

    def wait() -> None:
        try:
            console.expect("never printed", timeout=30)
        except ConsoleError as exc:
            errors.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    wait_until(console._reading.locked, what="the expect to read the port")
    console.close()
    waiter.join(timeout=5)
    assert not waiter.is_alive()
    assert "was closed while waiting for 'never printed'" in str(errors[0])
    assert not isinstance(errors[0], ConsoleTimeout)


def test_round_trips_answered_on_the_port(pty_pair, console):
    master, _ = pty_pair
    for i in range(50):
        console.sendline(f"ping {i}")
        got = b""
        while not got.endswith(b"\r\n"):
            got += os.read(master, 100)
        os.write(master, got.replace(b"ping", b"pong"))
        assert console.expect(f"pong {i}\r\n", timeout=2).group(0) == f"pong {i}\r\n"


needs_epoll = pytest.mark.skipif(not hasattr(select, "epoll"), reason="the port is muted by epoll")


@needs_epoll
def test_a_muted_port_wakes_no_watcher_until_unmuted(pty_pair):
    master, path = pty_pair
    port = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    wake_r, wake_w = os.pipe()
    watch = PortWatch(port, wake_r)
    try:
        assert not watch.wait(0)
        watch.mute()
        os.write(master, b"answer\r\n")
        readable = select.poll()
        readable.register(port, select.POLLIN)
        assert readable.poll(5000), "the bytes never reached the port"
        assert not watch.wait(0)  # there to read, and the muted watch does not tell
        woken = []
        sleeper = threading.Thread(target=lambda: woken.append(watch.wait(30)))
        sleeper.start()
        watch.unmute()  # wakes the sleeper: the port has something to read
        sleeper.join(timeout=5)
        assert woken == [True]
        assert os.read(port, 100) == b"answer\r\n"
        watch.mute()
        os.write(wake_w, b"x")  # close()'s wake-up is never muted
        assert watch.wait(5)
    finally:
        watch.close()
        for fd in (port, wake_r, wake_w):
            os.close(fd)


@needs_epoll
def test_the_reader_thread_sleeps_through_round_trips(pty_pair, console, monkeypatch):
    """Answers that come while an expect reads the port wake only the expect: the reader thread
    would take the GIL from it for nothing (and double a round trip on 2 cores)."""
    master, _ = pty_pair
    reader_woken = []
    wait = PortWatch.wait

    def counted(self, timeout_s):
        woken = wait(self, timeout_s)
        if woken and threading.current_thread() is console._thread:
            reader_woken.append(woken)
        return woken

    monkeypatch.setattr(PortWatch, "wait", counted)
    os.write(master, b"hello\r\n")  # a wait the reader thread began before the patch ends here
    wait_until(lambda: b"hello" in logged_stream(console.log_path), what="the reader")
    reader_woken.clear()

    def board() -> None:
        for _ in range(20):
            got = b""
            while not got.endswith(b"\n"):
                got += os.read(master, 100)
            # answer once the expect holds the port (a real board answers in its own time)
            wait_until(lambda: console._watch.muted, what="the expect to take the port")
            os.write(master, got.replace(b"ping", b"pong"))

    thread = threading.Thread(target=board, daemon=True)
    thread.start()
    for i in range(20):
        console.sendline(f"ping {i}")
        assert console.expect(f"pong {i}\r\n", timeout=5).group(0) == f"pong {i}\r\n"
    thread.join(timeout=5)
    assert reader_woken == []
    os.write(master, b"unwatched\r\n")  # and once no expect reads the port, it reads it again
    wait_until(lambda: b"unwatched" in logged_stream(console.log_path), what="the reader")
    assert reader_woken


def test_a_flood_is_read_by_the_reader_thread_and_nothing_is_lost(pty_pair, console, monkeypatch):
    """A port that floods (a whole read chunk at once) is handed back to the reader thread for
    the rest of the wait, so reading and logging overlap the search; every byte still reaches
    the match's `before` and the log, once and in order."""
    master, _ = pty_pair
    monkeypatch.setattr(console_module, "READ_CHUNK", 1024)  # any read of 1 KiB+ is a flood
    delivered = []
    deliver = console._deliver

    def counted(data: bytes) -> None:
        delivered.append(len(data))
        deliver(data)

    monkeypatch.setattr(console, "_deliver", counted)
    lines = b"".join(b"flood line %06d lorem ipsum dolor sit amet\r\n" % i for i in range(20000))

    def board() -> None:
        view = memoryview(lines + b"=== done ===\r\n")
        while view:
            view = view[os.write(master, view[:65536]) :]

    writer = threading.Thread(target=board, daemon=True)
    writer.start()
    console.expect_exact("=== done ===", timeout=30)
    writer.join(timeout=10)
    assert console.before == lines.decode()
    assert sum(delivered) > 0  # the reader thread took over the reading
    console.close()
    assert logged_stream(console.log_path) == lines + b"=== done ===\r\n"
