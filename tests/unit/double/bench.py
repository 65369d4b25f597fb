"""One emulated board in a fresh double, registered with a local OTA service, ready to push to.

Shared by the double's end-to-end tests (faults, Afero's reference MCU): the double, its SCPI
supply through pyvisa, its console through pyserial, the sniffer on its tap, the Pipeline.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import pyvisa
import serial

from rig.double.control import DoubleControl
from rig.double.runner import Double, EmulatedBoard
from rig.double.spec import EmulatedBoardSpec
from rig.instruments.sniffer_port import HandoffRecorder
from rig.ota.client import OtaClient
from rig.ota.pipeline import Pipeline, Target
from rig.ota.service.serve import LocalService
from rig.ota.states import TERMINAL
from rig.protocol import aflib
from rig.protocol.transcript import Transcript
from tests.unit.helpers import open_visa, wait_until

REPO = Path(__file__).resolve().parents[3]
BLINKY = REPO / "fixtures" / "profiles" / "blinky.yaml"
VENDOR = (REPO / "firmware_samples" / "vendor-app.bin").read_bytes()  # opaque, 25 chunks
APP = (REPO / "firmware_samples" / "blinky-app-1.1.0.rigimg").read_bytes()  # 1.1.0, 116 chunks
VENDOR_VERSION = f"opaque-{hashlib.sha256(VENDOR).hexdigest()[:8]}"  # what the MCU then runs
FACTORY = "1.0.0"
BOARD = "dut"
CHUNK = aflib.max_chunk(253)  # blinky's otaAttributeSize: 249 data bytes a chunk
FAST = {"offer": 1.0, "chunk": 1.0, "verify": 1.0, "version": 1.0, "checkin_s": 0.05}
FINAL = TERMINAL - {"INTERRUPTED"}  # INTERRUPTED is offered again: not an outcome yet
STOP = aflib.STOP_TRANSFER_OFFSET


@dataclass
class Lab:
    service: LocalService
    ota: OtaClient
    pipeline: Pipeline
    rm: pyvisa.ResourceManager


class Bench:
    """One emulated board registered as a fresh device, powered off, its sniffer recording."""

    def __init__(self, ota_lab: Lab, state: Path, *, device_type: str = "blinky",
                 profile: Path | dict = BLINKY, **spec: object) -> None:  # fmt: skip
        self.lab = ota_lab
        self.double = Double([EmulatedBoardSpec(BOARD, timeouts=FAST, **spec)], state)
        self.board: EmulatedBoard = self.double.boards[BOARD]
        info = self.double.info()[0]
        self.target = Target(f"dut-{uuid.uuid4().hex[:8]}", device_type, profile=profile)
        self.secret = ota_lab.pipeline.ensure_device(self.target)
        ota_lab.pipeline.publish(self.target, 101)
        self.control = DoubleControl(int(str(info["control"])))
        self.control.call("ota", board=BOARD, url=ota_lab.service.base_url,
                          device_id=self.target.device_id, secret=self.secret)  # fmt: skip
        self.recorder = HandoffRecorder(self.board.ota.info(), name=BOARD).start()
        self.console = serial.Serial(self.board.mcu.port, 115200, timeout=0.1)
        self._console_text = ""
        self.psu = open_visa(ota_lab.rm, str(info["power"]))

    # -- the board ---------------------------------------------------------------------------------

    def scpi(self, command: str) -> None:
        assert self.psu.query(f"{command};*OPC?").strip() == "1"  # *OPC?: it has been applied

    def power_on(self) -> None:
        self.scpi("OUTP ON")
        wait_until(lambda: self.status()["mcu"] == "idle", what="the board to boot")

    def status(self) -> dict:
        return self.control.call("status", board=BOARD)

    def fault(self, name: str, **params: object) -> dict:
        return self.control.call("fault", board=BOARD, name=name, **params)

    def console_expect(self, pattern: str, timeout: float = 5.0) -> str:
        """Console text up to the first match of `pattern` (read from where the last ended)."""
        deadline = time.monotonic() + timeout
        while not (match := re.search(pattern, self._console_text)):
            if time.monotonic() > deadline:
                pytest.fail(f"console never said {pattern!r}; it said:\n{self._console_text}")
            self._console_text += self.console.read(4096).decode(errors="replace")
        seen = self._console_text[: match.end()]
        self._console_text = self._console_text[match.end() :]
        return seen

    # -- the service -------------------------------------------------------------------------------

    def push(self, data: bytes, version: str) -> dict:
        """Upload, associate and push; the deployment's id and the image's version number."""
        run = self.lab.pipeline.run(data, self.target, version=version, until=None)
        return {"id": run.deployment["id"], "versionNumber": int(run.image["versionNumber"])}

    def outcome(self, deployment_id: str, timeout: float = 20.0) -> dict:
        return self.lab.ota.wait_for_deployment(deployment_id, FINAL, timeout)

    def attributes(self) -> dict[int, object]:
        device = self.lab.ota.device(self.target.device_id)
        return {int(a["id"]): a["value"] for a in device["attributes"]}

    def wire(self, predicate, what: str) -> Transcript:
        return self.recorder.wait_for(predicate, timeout_s=5, what=what)

    def close(self) -> None:
        self.recorder.stop()
        self.console.close()
        self.psu.close()
        self.control.close()
        self.double.close()
