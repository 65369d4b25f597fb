"""afPro over UART (DESIGN §3): the sync message and both endpoints as sans-IO state machines.

The endpoints never touch a port or a clock: bytes go in through `receive`, come out of `outgoing`,
and time only exists as the `now` handed to `poll`. The double wires them to pseudo-terminals; the
tests wire them to each other through byte queues. Both carry opaque afLib messages (length prefix
included); rig.protocol.aflib decodes them. Choices where DESIGN is silent are listed in
docs/protocol.md.
"""

from rig.protocol.afpro.asr import AsrPhase, AsrTransport
from rig.protocol.afpro.mcu import McuPhase, McuTransport
from rig.protocol.afpro.wire import (
    GIVE_UP_TIMEOUT,
    READY,
    REPLY_TIMEOUT,
    RESYNC_TIMEOUT,
    SYNC_SIZE,
    ZERO_SYNC,
    Sync,
    SyncKind,
)

__all__ = [
    "GIVE_UP_TIMEOUT",
    "READY",
    "REPLY_TIMEOUT",
    "RESYNC_TIMEOUT",
    "SYNC_SIZE",
    "ZERO_SYNC",
    "AsrPhase",
    "AsrTransport",
    "McuPhase",
    "McuTransport",
    "Sync",
    "SyncKind",
]
