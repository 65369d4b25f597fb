"""What an OAuth sign-in costs a run, against the local service. A benchmark, not a test.

    .venv/bin/python benches/ota_signin.py [--runs 50]

A `LocalService` on loopback has partner `lab` with a static token and an OAuth login. Per run,
a fresh `OtaClient` with the credentials makes one call (`GET …/types`): the sign-in happens on
that first call, and the client's own counter (`OtaClient.sign_ins`) gives its time. The same
call with the static token is the baseline. Figures are the median and the minimum, in ms.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from rig.ota.client import OtaClient
from rig.ota.service.auth import PartnerAuth
from rig.ota.service.oauth import OAuthLogin
from rig.ota.service.serve import LocalService
from rig.ota.signin import OAuthCredentials

USER = ("bench-client", "bench-client-secret", "bench@lab.local", "bench-password")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    runs = parser.parse_args().runs
    partner = PartnerAuth("lab", "bench-token", oauth=OAuthLogin(*USER))
    sign_in, first_call, static_call = [], [], []
    with tempfile.TemporaryDirectory() as folder, LocalService(folder, [partner]) as service:
        for _ in range(runs + 1):  # the first run warms up and is not counted
            with OtaClient(service.base_url, partner="lab",
                           credentials=OAuthCredentials(*USER)) as ota:  # fmt: skip
                started = time.perf_counter()
                ota.image_types()
                first_call.append(time.perf_counter() - started)
                sign_in.append(ota.sign_ins.seconds)
            with OtaClient(service.base_url, partner="lab", token="bench-token") as ota:
                started = time.perf_counter()
                ota.image_types()
                static_call.append(time.perf_counter() - started)
    print(f"OTA sign-in against the local service, {runs} runs (ms)")
    print(f"{'measure':<36}{'median':>8}{'min':>8}")
    for name, values in (
        ("sign-in (OtaClient.sign_ins)", sign_in[1:]),
        ("first call, signing in", first_call[1:]),
        ("first call, static token", static_call[1:]),
    ):
        print(f"{name:<36}{statistics.median(values) * 1000:8.2f}{min(values) * 1000:8.2f}")


if __name__ == "__main__":
    main()
