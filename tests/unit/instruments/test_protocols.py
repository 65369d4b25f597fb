"""Each driver offers what its declared protocol says, with the same parameters, so code typed
against `PowerProtocol` (say, a USB-relay backend) and the SCPI driver are interchangeable."""

from __future__ import annotations

import inspect

import pytest

from rig import (
    Console,
    ConsoleProtocol,
    HandoffRecorder,
    PowerProtocol,
    PowerSupply,
    SnifferProtocol,
)

PAIRS = [(PowerSupply, PowerProtocol), (Console, ConsoleProtocol),
         (HandoffRecorder, SnifferProtocol)]  # fmt: skip


def _methods(protocol: type) -> list[str]:
    return [n for n, v in vars(protocol).items() if inspect.isfunction(v) and not n.startswith("_")]


@pytest.mark.parametrize(("driver", "protocol"), PAIRS, ids=lambda t: t.__name__)
def test_the_driver_has_every_method_of_its_protocol_with_the_same_parameters(driver, protocol):
    assert _methods(protocol), protocol  # a protocol that declares nothing proves nothing
    for name in _methods(protocol):
        declared = inspect.signature(getattr(protocol, name))
        offered = inspect.signature(getattr(driver, name))
        assert list(offered.parameters) == list(declared.parameters), f"{driver.__name__}.{name}"
        for param, want in declared.parameters.items():
            has = offered.parameters[param]
            if want.default is not inspect.Parameter.empty and want.default is not Ellipsis:
                assert has.default == want.default, f"{driver.__name__}.{name}({param})"


def test_a_driver_instance_is_recognised_at_run_time() -> None:
    console = Console("/dev/null-not-opened")  # built, never opened: no port is touched
    recorder = HandoffRecorder({"asr_to_mcu": "a", "mcu_to_asr": "b"})
    assert isinstance(console, ConsoleProtocol) and isinstance(recorder, SnifferProtocol)
    assert not isinstance(console, PowerProtocol)
