"""Board locks: a second process waits a bounded time, then names the holder."""

import os
import subprocess
import sys
import textwrap

import pytest

from rig.lab.lock import BoardLock, LockError

HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from rig.lab.lock import BoardLock
    lock = BoardLock("bench-9", lock_dir=Path(sys.argv[1]))
    lock.acquire(5)
    print("held", flush=True)
    sys.stdin.read()   # hold until the test closes our stdin
    lock.release()
    """
)


@pytest.fixture
def holder(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "held"
    yield proc
    proc.stdin.close()
    proc.wait(timeout=10)


def test_second_process_waits_then_names_the_holder(tmp_path, holder):
    lock = BoardLock("bench-9", lock_dir=tmp_path)
    with pytest.raises(LockError) as caught:
        lock.acquire(0.3)
    message = str(caught.value)
    assert "board 'bench-9' is in use by" in message
    assert f"pid {holder.pid}" in message
    assert "--lock-timeout" in message
    assert not lock.held


def test_lock_is_taken_once_the_holder_lets_go(tmp_path, holder):
    holder.stdin.close()
    holder.wait(timeout=10)
    lock = BoardLock("bench-9", lock_dir=tmp_path)
    lock.acquire(2)
    assert lock.held
    assert f'"pid": {os.getpid()}' in lock.note.read_text()
    lock.release()
    assert not lock.note.exists()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path, holder):
    holder.kill()
    holder.wait(timeout=10)
    lock = BoardLock("bench-9", lock_dir=tmp_path)
    lock.acquire(2)  # the kernel dropped the dead holder's flock
    assert lock.held
    lock.release()


def test_other_boards_are_not_blocked(tmp_path, holder):
    lock = BoardLock("bench-10", lock_dir=tmp_path)
    lock.acquire(0.3)
    assert lock.held
    lock.release()
