"""Fixtures of the double's end-to-end tests: one local OTA service per module, benches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import pyvisa

from rig.ota.client import OtaClient
from rig.ota.pipeline import Pipeline
from rig.ota.service.auth import PartnerAuth
from rig.ota.service.serve import LocalService
from tests.unit.double.bench import Bench, Lab


@pytest.fixture(scope="module")
def ota_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    folder = tmp_path_factory.mktemp("fault-service")
    partners = {"lab": PartnerAuth("lab", "tok", "lab")}
    rm = pyvisa.ResourceManager("@py")
    with (
        LocalService(folder, partners) as service,
        OtaClient(service.base_url, partner="lab", token="tok") as ota,
    ):
        pipeline = Pipeline(ota)
        pipeline.ensure_image_type(101, "application")
        yield Lab(service, ota, pipeline, rm)
    rm.close()


@pytest.fixture
def make_bench(ota_lab: Lab, tmp_path: Path) -> Iterator:
    benches: list[Bench] = []

    def make(**spec: object) -> Bench:
        benches.append(Bench(ota_lab, tmp_path / f"double-{len(benches)}", **spec))
        return benches[-1]

    yield make
    for bench in benches:
        bench.close()


@pytest.fixture
def bench(make_bench) -> Bench:
    """A booted board, no faults."""
    made = make_bench()
    made.power_on()
    return made
