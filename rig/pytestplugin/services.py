"""What a run starts for its tests (the local OTA service, a board's double and first boot),
started side by side in the background, and stopped in order after the last board.

A test using a board and the local OTA service used to wait for the double to start, the board
to boot, then the service to start, one after the other. They are independent (the double and
the service are processes of their own), so they start in daemon threads (a run stopped with
Ctrl-C never waits on them), as collection starts when `--board` names the board, else once it
says what the first test needs, and the fixtures take what is ready. Nothing heavy is imported
here: what the OTA fixtures need loads in the thread that starts the service, while it starts.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

from rig import steps
from rig.errors import RigError
from rig.flaky import retry_flaky

if TYPE_CHECKING:
    from rig.lab.board import Board
    from rig.lab.inventory import OtaConfig
    from rig.lab.setup import Lab
    from rig.ota.client import OtaClient
    from rig.ota.service.process import ServiceProcess
    from rig.ota.signin import OAuthCredentials

T = TypeVar("T")


@dataclass(frozen=True)
class OtaEndpoint:
    """Where the lab's OTA service is and who we are to it: a token, or sign-in credentials."""

    base_url: str
    partner: str
    account: str
    token: str | None = field(default=None, repr=False)
    credentials: OAuthCredentials | None = None

    def client(self) -> OtaClient:
        from rig.ota.client import OtaClient

        return OtaClient(self.base_url, partner=self.partner, token=self.token,
                         credentials=self.credentials, account=self.account)  # fmt: skip


class Background(Generic[T]):
    """One result computed in a daemon thread; `result()` waits for it or raises its error."""

    def __init__(self, name: str, work: Callable[[], T]) -> None:
        self._future: Future[T] = Future()
        self._thread = threading.Thread(target=self._run, args=(work,), name=name, daemon=True)
        self._thread.start()

    def _run(self, work: Callable[[], T]) -> None:
        try:
            self._future.set_result(work())
        except BaseException as exc:  # handed to whoever asks for the result
            self._future.set_exception(exc)

    def result(self) -> T:
        return self._future.result()

    def done(self) -> bool:
        return self._future.done()

    def settle(self, timeout_s: float) -> None:
        """Wait (bounded) for the work to end, so nothing is torn down under it."""
        self._thread.join(timeout_s)


@dataclass
class LocalOta:
    """The run's local OTA service, where it is, and a client already signed in to it (the
    first requests of a new service and client cost ~35 ms, paid here, before a test waits)."""

    service: ServiceProcess
    endpoint: OtaEndpoint
    client: OtaClient | None


def start_local_ota(
    folder: Path,
    ota: OtaConfig,
    launched: ServiceProcess | None = None,
    log_path: Path | None = None,
) -> LocalOta:
    """rig's OTA service on loopback in `folder`, in its own process (so its start-up and its
    answers to the boards run beside the tests, not under their interpreter lock), with a
    fresh partner, user and password. `launched`: its process, started earlier."""
    from rig.ota.service.process import ServiceProcess

    service = launched or ServiceProcess(folder, log_path=log_path)
    if launched is None:
        service.launch()
    account = ota.account or ota.partner
    secret, password = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    user = (f"rig-{ota.partner}", secret, f"{account}@rig.local", password)
    oauth = dict(zip(("client_id", "client_secret", "username", "password"), user, strict=True))
    partner = {"partner_id": ota.partner, "token": secrets.token_urlsafe(24),
               "account_id": account, "oauth": oauth}  # fmt: skip
    service.serve([partner])
    # While it starts (~0.4 s, on the other core), load what the OTA fixtures take next.
    import rig.ota.pipeline  # noqa: F401
    from rig.ota.signin import OAuthCredentials

    service.ready()
    endpoint = OtaEndpoint(service.base_url, ota.partner, account,
                           credentials=OAuthCredentials(*user))  # fmt: skip
    client = endpoint.client()
    try:
        client.device_types()  # signs in; the first thing a test's OTA fixtures ask
    except RigError:  # the fixture that asks will meet it again and say so
        client.close()
        client = None
    return LocalOta(service, endpoint, client)


@dataclass
class FirstBoot:
    """A board set up and booted once, or why not; the flaky attempts it emitted on the way
    (re-emitted by the fixture, so they land in the first test's record as before)."""

    board: Board | None
    problem: str | None
    events: list[object]


class _Events(steps.Listener):
    def __init__(self, events: list[object]) -> None:
        self.events = events

    def event(self, event: object) -> None:
        self.events.append(event)


def first_boot(lab: Lab, name: str) -> FirstBoot:
    """Set the board up and boot it (twice at most); a board that cannot is out of the run."""
    events: list[object] = []
    with steps.listening(_Events(events), only=True):
        try:
            ready = lab.board(name)
            retry_flaky(f"first boot of {name}", ready.boot, attempts=2)
        except RigError as exc:
            lab.mark_broken(name, str(exc))
            return FirstBoot(None, str(exc), events)
    return FirstBoot(ready, None, events)
