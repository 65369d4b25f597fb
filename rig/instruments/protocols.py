"""The interfaces a board's instruments offer to tests, whatever drives them.

Each is small on purpose (labgrid's `PowerProtocol` is the model): what a test may ask of a
board's power, console and sniffer. The drivers in this package satisfy them; the board double
satisfies them at the wire (an SCPI socket, a pseudo-terminal, two mirrored ports), so the same
drivers serve a bench and CI. Another backend (a USB relay for power, a network console)
implements the protocol and the rest of rig takes it as it is.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Callable

    from rig.protocol.transcript import Transcript


@runtime_checkable
class PowerProtocol(Protocol):
    """A board's power: switch it, cycle it, read what it draws."""

    def on(self) -> None: ...
    def off(self) -> None: ...
    def cycle(self, off_s: float | None = None) -> None: ...
    def measure_current(self) -> float: ...


@runtime_checkable
class ConsoleProtocol(Protocol):
    """A board's console: send a line, wait for text, note rig's own marks in its log."""

    def open(self) -> ConsoleProtocol: ...
    def close(self) -> None: ...
    def sendline(self, text: str = "") -> None: ...
    def expect(self, pattern: str | re.Pattern[str], timeout: float = 10.0) -> re.Match[str]: ...
    def expect_exact(self, text: str, timeout: float = 10.0) -> str: ...
    def mark(self, text: str) -> None: ...


@runtime_checkable
class SnifferProtocol(Protocol):
    """Both directions of the ASR⇆MCU link, read while a test runs and decoded on demand."""

    def start(self) -> SnifferProtocol: ...
    def stop(self) -> Transcript: ...
    def transcript(self) -> Transcript: ...
    def wait_for(
        self, predicate: Callable[[Transcript], object], timeout_s: float = 30.0, what: str = ...
    ) -> Transcript: ...
