"""OTA fixtures: the lab's OTA service (local, started here, or remote), its client, the pipeline.

Loaded by rig.pytestplugin. With `ota: {service: local}` in boards.yaml each pytest process runs the
local service on loopback in a temporary data folder, with fresh credentials; otherwise the
client is pointed at the remote server named there, with the token or the sign-in credentials
whose environment variables the `ota:` section names.

The `ota` client signs in with OAuth on the local service too (fresh client, user and password
per run), so every run walks the sign-in a remote server asks for; `scratch_ota` keeps a static
partner token, so the token path is walked as well.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from rig import steps
from rig.pytestplugin.services import OtaEndpoint
from rig.pytestplugin.session import RigSession, session_of

if TYPE_CHECKING:  # loaded by the fixtures that use them: a run without OTA never pays for them
    from rig.double.control import DoubleControl
    from rig.instruments.sniffer_port import HandoffRecorder
    from rig.lab.board import Board
    from rig.ota.client import OtaClient
    from rig.ota.pipeline import Pipeline, Target
    from rig.report.power_trace import PowerTrace

__all__ = ["FaultControl", "OtaEndpoint"]


@pytest.fixture(scope="session")
def ota_endpoint(rig_session: RigSession) -> Iterator[OtaEndpoint]:
    """The OTA service this run uses: rig's local one when boards.yaml says service: local
    (started by the session, often before the first test asks, and stopped after the boards),
    else the remote server named there."""
    from rig.ota.errors import OtaClientError
    from rig.ota.signin import sign_in_env

    ota, boards_file = rig_session.ota_config()
    account = ota.account or ota.partner
    if ota.service == "local":
        yield rig_session.local_ota()
        return
    sign_in = sign_in_env(ota, boards_file)
    if sign_in is not None:
        try:
            credentials = sign_in.read()
        except OtaClientError as exc:
            pytest.fail(str(exc), pytrace=False)
        yield OtaEndpoint(ota.service, ota.partner, account, credentials=credentials)
        return
    token_env = ota.token_env or "RIG_OTA_TOKEN"
    token = os.environ.get(token_env)
    if not token:
        pytest.fail(f"boards.yaml names the OTA server {ota.service}, but {token_env} is not "
                    "set: export the partner's bearer token in it", pytrace=False)  # fmt: skip
    yield OtaEndpoint(ota.service, ota.partner, account, token)


@pytest.fixture(scope="session")
def ota(ota_endpoint: OtaEndpoint, rig_session: RigSession) -> Iterator[OtaClient]:
    """The OTA client, bound to the lab's partner. What signing in cost this process is kept
    beside the run's records (`ota/signin-<worker>.json`: the nightly summary adds them up)."""
    client = rig_session.take_ota_client(ota_endpoint) or ota_endpoint.client()
    with client:
        try:
            yield client
        finally:
            stats = client.sign_ins
            folder = rig_session.records.folder / "ota"
            folder.mkdir(parents=True, exist_ok=True)
            worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
            record = {"sign_ins": stats.count, "seconds": round(stats.seconds, 4)}
            (folder / f"signin-{worker}.json").write_text(json.dumps(record))


@pytest.fixture
def pipeline(ota: OtaClient, request: pytest.FixtureRequest) -> Pipeline:
    """image type → profile → upload → associate → push → outcome, as Allure steps; each
    outcome's stage durations, throughput and current go to the test's measurements."""
    from rig.ota.pipeline import Pipeline

    pipeline = Pipeline(ota)
    if "board" in request.fixturenames:  # its supply current is traced during each OTA
        pipeline.traced = request.getfixturevalue("board")
    if "handoff" in request.fixturenames:  # and the wire goes to the report as a timeline
        pipeline.sniffed = request.getfixturevalue("handoff")
    return pipeline


@pytest.fixture
def power_trace(
    board: Board, request: pytest.FixtureRequest
) -> Iterator[Callable[..., PowerTrace]]:
    """Start sampling the board's supply current: `trace = power_trace()`; the picture and
    the samples are attached when the test ends (`trace.stop()` ends sampling earlier)."""
    from rig.report.power_trace import PowerTrace

    traces: list[PowerTrace] = []

    def start(interval_s: float = 0.02) -> PowerTrace:
        trace = PowerTrace(board.power.measure_current, interval_s=interval_s, name=board.name)
        traces.append(trace.start())
        return trace

    yield start
    for number, trace in enumerate(traces, 1):
        trace.stop()
        if session_of(request.config).allure:
            from rig.report.ota import attach_power_trace

            attach_power_trace(trace, board.name, label=f" #{number}")


@pytest.fixture
def ota_target(
    board: Board, pipeline: Pipeline, rig_session: RigSession, ota_endpoint: OtaEndpoint
) -> Target:
    """The board as the OTA service knows it: device id, device type, profile; registered."""
    from rig.double.control import DoubleControl
    from rig.ota.pipeline import Target

    config = board.config
    profile = None
    if config.profile:
        _, boards_file = rig_session.ota_config()
        base = boards_file.parent if boards_file else Path.cwd()
        profile = (base / config.profile).resolve()
    target = Target(device_id=board.device_id, device_type=config.device_type, profile=profile)
    secret = pipeline.ensure_device(target)
    if secret and board.control_port:  # an emulated board: its ASR now knows who it is
        control = DoubleControl(board.control_port)
        try:
            control.call("ota", board=board.name, url=ota_endpoint.base_url,
                         device_id=target.device_id, secret=secret)  # fmt: skip
        finally:
            control.close()
    return target


@pytest.fixture
def scratch_ota(ota_endpoint: OtaEndpoint, tmp_path: Path) -> Iterator[OtaClient]:
    """A client on a fresh, empty local service of its own: for tests that must start from
    nothing or use up a partner's limits. Skipped when the lab's service is a remote server."""
    if not ota_endpoint.base_url.startswith("http://127.0.0.1"):
        pytest.skip("needs rig's local OTA service (boards.yaml names a remote one)")
    from rig.ota.client import OtaClient
    from rig.ota.service.auth import PartnerAuth
    from rig.ota.service.serve import LocalService

    auth = PartnerAuth(partner_id="lab", token=secrets.token_urlsafe(16), account_id="lab")
    with (
        LocalService(tmp_path / "scratch-ota", {"lab": auth}) as service,
        OtaClient(service.base_url, partner="lab", token=auth.token) as client,
    ):
        yield client


@pytest.fixture
def handoff(board: Board) -> Iterator[HandoffRecorder]:
    """Records the board's ASR⇆MCU link during the test; `.transcript()` decodes it."""
    from rig.instruments.sniffer_port import HandoffRecorder

    if not board.tap:
        pytest.skip(f"board {board.name!r} has no sniffer: add tap: to boards.yaml")
    baud = board.config.tap.baud if board.config.tap else board.config.link.baud
    recorder = HandoffRecorder(board.tap, baud=baud, name=board.name).start()
    yield recorder
    transcript = recorder.stop()
    steps.attach(f"handoff {board.name}", transcript.text())


@pytest.fixture
def double_control(board: Board) -> Iterator[DoubleControl]:
    """The emulated board's control channel (link speed, later faults); skipped on real boards."""
    if not board.control_port:
        pytest.skip(f"board {board.name!r} is not emulated: it has no double to control")
    from rig.double.control import DoubleControl

    control = DoubleControl(board.control_port)
    yield control
    control.close()


class FaultControl:
    """Faults of one emulated board, through the double's control channel."""

    def __init__(self, control: DoubleControl, board: str) -> None:
        self._control, self.board = control, board

    def inject(self, name: str, **params: object) -> dict:
        return self._control.call("fault", board=self.board, name=name, **params)

    def timeouts(self, **seconds: float) -> dict:
        """Stage timeouts of the ASR (offer, chunk, verify, version), in seconds."""
        return self._control.call("timeouts", board=self.board, **seconds)

    def status(self) -> dict:
        return self._control.call("status", board=self.board)

    def clear(self) -> None:
        self._control.call("clear_faults", board=self.board)


@pytest.fixture
def faults(board: Board, double_control: DoubleControl) -> Iterator[FaultControl]:
    """Inject faults into the emulated board; all cleared when the test ends."""
    control = FaultControl(double_control, board.name)
    yield control
    control.clear()
