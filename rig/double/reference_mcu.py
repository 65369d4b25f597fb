"""Afero's reference MCU, generic_mcu, as an external MCU of the double: build it, run it.

afLib3-generic (Apache-2.0) ships `platform/linux/examples/generic_mcu`, an MCU OTA receiver
that speaks afPro over any serial device. rig builds it with cmake and runs it on the UART of an
emulated ASR (`external_mcu`), so the ASR, the decoder and the assertions are checked against
Afero's own code, not against rig's emulated MCU alone. Nothing of Afero's is copied: the
source stays where the lab keeps it (`$RIG_AFLIB_SRC`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

from rig.double.errors import DoubleError

EXAMPLE = Path("platform") / "linux" / "examples" / "generic_mcu"
TOOLS = ("cmake", "make", "cc", "c++")  # cmake's project() also wants a C++ compiler
BUILD_TIMEOUT_S = 300


class ReferenceUnavailable(DoubleError):
    """generic_mcu cannot be built here: its source or the build tools are missing."""


def aflib_source(default: Path | None = None) -> Path | None:
    """Where afLib3-generic is: `$RIG_AFLIB_SRC`, else `default`."""
    chosen = os.environ.get("RIG_AFLIB_SRC")
    return Path(chosen) if chosen else default


def build_generic_mcu(source: Path | None, build: Path) -> Path:
    """cmake + make of generic_mcu into `build`; the binary's path."""
    example = source / EXAMPLE if source is not None else None
    if example is None or not example.is_dir():
        raise ReferenceUnavailable(
            f"Afero's afLib3-generic is not at {source}: set RIG_AFLIB_SRC to its folder"
        )
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        raise ReferenceUnavailable(
            f"{', '.join(missing)} not installed: apt install cmake build-essential"
        )
    for command in (["cmake", "-S", str(example), "-B", str(build)], ["make", "-C", str(build)]):
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise DoubleError(f"{' '.join(command)} took more than {BUILD_TIMEOUT_S} s") from None
        if done.returncode != 0:
            raise DoubleError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
    binary = build / "generic_mcu"
    if not binary.is_file():
        raise DoubleError(f"the build of generic_mcu made no {binary}")
    return binary


class GenericMcu:
    """generic_mcu on a UART, in its own folder (it stores `ota_file_type.<type>` there)."""

    def __init__(self, binary: Path, uart: str, folder: Path, *, baud: int = 115200) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._lines: list[str] = []
        self._changed = threading.Condition()
        # stdin stays an open pipe: at end of input generic_mcu prints its usage in a loop
        self.proc = subprocess.Popen(
            [str(binary), "-b", str(baud), "-D", uart], cwd=folder, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, name="generic_mcu", daemon=True)
        self._reader.start()
        try:
            self.wait_for(r"using uart path")
        except BaseException:
            self.stop()
            raise

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self._lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()  # it exited: waiters need not wait for more

    def text(self) -> str:
        with self._changed:
            return "\n".join(self._lines)

    def tail(self, lines: int = 15) -> str:
        with self._changed:
            return "\n".join(self._lines[-lines:])

    def wait_for(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """The first match of `pattern` in what it printed; DoubleError, with its last lines,
        when it does not print it within `timeout` or exits first."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                match = re.search(pattern, "\n".join(self._lines))
                if match:
                    return match
                remaining = deadline - time.monotonic()
                exited = self.proc.poll() is not None and not self._reader.is_alive()
                if remaining <= 0 or exited:
                    why = f"exited ({self.proc.returncode})" if exited else f"within {timeout:g} s"
                    tail = "\n".join(self._lines[-15:])
                    raise DoubleError(f"generic_mcu did not say {pattern!r} {why}:\n{tail}")
                self._changed.wait(min(remaining, 0.5))

    def stored(self, ota_type: int = 101) -> bytes | None:
        """The image it kept for `ota_type` (None: none, e.g. deleted after FAIL)."""
        path = self.folder / f"ota_file_type.{ota_type}"
        return path.read_bytes() if path.exists() else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        self._reader.join(timeout=5)
