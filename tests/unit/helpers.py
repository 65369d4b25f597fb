"""Helpers the framework's own tests import: deadline-bounded waits, a VISA opener, Afero's
reference MCU as a process."""

import re
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import pyvisa


def wait_until(predicate: Callable[[], object], timeout: float = 5.0, what: str = "condition"):
    """Poll `predicate` until it is truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)  # sleep-ok: polling interval of a deadline-bounded wait


def open_visa(rm: pyvisa.ResourceManager, resource: str, timeout_ms: int = 2000):
    """The SCPI supply at `resource`, with the double's newline terminations."""
    return rm.open_resource(
        resource, read_termination="\n", write_termination="\n", timeout=timeout_ms
    )


MCU_FILE = "ota_file_type.101"  # where generic_mcu stores an image of type 101


class ReferenceMcu:
    """generic_mcu on the double's MCU UART, its stdout collected line by line."""

    def __init__(self, binary: Path, uart: str, folder: Path) -> None:
        self.folder = folder
        self.lines: list[str] = []
        self._lock = threading.Lock()
        # stdin stays an open pipe: at end of input generic_mcu prints its usage in a loop
        self.proc = subprocess.Popen(
            [str(binary), "-b", "115200", "-D", uart], cwd=folder, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.wait_for(r"using uart path")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def text(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        return wait_until(
            lambda: re.search(pattern, self.text()), timeout, f"generic_mcu: {pattern}"
        )

    def stored(self) -> bytes | None:
        path = self.folder / MCU_FILE
        return path.read_bytes() if path.exists() else None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self._reader.join(timeout=5)
