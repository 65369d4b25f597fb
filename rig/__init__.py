"""rig: hardware-in-the-loop tests for Afero-style boards (ASR + MCU + OTA pipeline).

Import what you need from here (`from rig import Board, Pipeline, cut_power_at`); the modules
behind these names may move, these names stay. They load on first use, so `import rig` costs
nothing and a tool that needs one driver does not pay for the rest.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name → the module that defines it (a module's own name: the module itself).
_EXPORTS: dict[str, str] = {
    # errors
    "RigError": "rig.errors",
    # the lab and its boards
    "Board": "rig.lab.board",
    "Lab": "rig.lab.setup",
    "BoardLock": "rig.lab.lock",
    # instruments
    "PowerSupply": "rig.instruments.power",
    "PowerProtocol": "rig.instruments.protocols",
    "PowerError": "rig.instruments.power",
    "Console": "rig.instruments.console",
    "ConsoleProtocol": "rig.instruments.protocols",
    "ConsoleError": "rig.instruments.console",
    "ConsoleTimeout": "rig.instruments.console",
    "HandoffRecorder": "rig.instruments.sniffer_port",
    "SnifferProtocol": "rig.instruments.protocols",
    "SnifferError": "rig.instruments.sniffer_port",
    # the ASR⇆MCU protocol
    "Transcript": "rig.protocol.transcript",
    "HandoffError": "rig.protocol.transcript",
    "event_bytes": "rig.protocol.decoder",
    "aflib": "rig.protocol.aflib",
    # OTA
    "OtaClient": "rig.ota.client",
    "OtaClientError": "rig.ota.client",
    "DeviceClient": "rig.ota.device_client",
    "Pipeline": "rig.ota.pipeline",
    "PipelineRun": "rig.ota.pipeline",
    "Target": "rig.ota.pipeline",
    "OtaOutcome": "rig.ota.pipeline",
    "cut_power_at": "rig.ota.power_cut",
    "AFTER_APPLY": "rig.ota.power_cut",
    "LocalService": "rig.ota.service.serve",
    "PartnerAuth": "rig.ota.service.auth",
    # steps, retries, measurements
    "steps": "rig.steps",
    "retry_flaky": "rig.flaky",
    "hardware_flaky": "rig.flaky",
    "FlakyStepError": "rig.flaky",
    "Measurements": "rig.report.measure",
    "Measurement": "rig.report.measure",
    "PowerTrace": "rig.report.power_trace",
    # firmware images
    "image": "rig.image",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rig' has no attribute {name!r}")
    loaded = importlib.import_module(module)
    value = loaded if module.rsplit(".", 1)[-1] == name else getattr(loaded, name)
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
