"""The ASR⇆MCU protocol as pure code on bytes: afLib messages, afPro endpoints, the stream
decoder and the transcript with its assertions. No I/O and no clock: callers pass time in."""
