"""The package's import rules (docs/architecture.md), checked on the source as written.

Each rule is one a careless change breaks silently: a driver that imports pytest cannot be used
from a lab script, a protocol module that reaches for a port cannot be tested on bytes alone, a
client that imports FastAPI drags the server into every process. The AST is read, nothing runs.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import rig

PACKAGE = Path(rig.__file__).resolve().parent

#: Which parts of rig each area may import (itself always). Imports under
#: `if TYPE_CHECKING:` are for annotations only and are not counted.
ALLOWED: dict[str, set[str]] = {
    "rig.errors": set(),
    "rig.steps": set(),
    # every YAML file rig reads goes through it, so every layer may use it: stdlib, PyYAML, errors
    "rig.safe_yaml": {"rig.errors"},
    "rig.image": {"rig.errors"},
    # a child process's tie to its launcher (stdlib only): the child's end in the double's CLI
    # and the service, the launcher's end in the lab (the double) and the service's launcher
    "rig.lifeline": set(),
    "rig.flaky": {"rig.errors", "rig.steps"},
    "rig.protocol": {"rig.errors"},
    "rig.instruments": {"rig.errors", "rig.protocol", "rig.safe_yaml"},
    "rig.double": {
        "rig.errors",
        "rig.protocol",
        "rig.image",
        "rig.ota.device_client",
        "rig.ota.states",
    },
    # the double's data (spec, fault catalogue, errors), never its running parts
    "rig.lab": {
        "rig.errors",
        "rig.safe_yaml",
        "rig.lifeline",
        "rig.instruments",
        "rig.double.spec",
        "rig.double.catalogue",
        "rig.double.errors",
    },
    "rig.ota.service": {"rig.errors", "rig.safe_yaml", "rig.ota.states", "rig.lifeline"},
    "rig.ota": {
        "rig.errors",
        "rig.safe_yaml",
        "rig.steps",
        "rig.protocol",
        "rig.instruments",
        "rig.lab",
        "rig.report.power_trace",
    },
    "rig.report": {"rig.errors", "rig.steps", "rig.protocol", "rig.ota.states", "rig.lab"},
    "rig.nightly": {"rig.errors", "rig.lab", "rig.report"},
    "rig.cli": {
        "rig.errors",
        "rig.safe_yaml",
        "rig.lifeline",
        "rig.lab",
        "rig.double",
        "rig.image",
        "rig.nightly",
        "rig.ota",
        "rig.report",
    },
    "rig.pytestplugin": {
        "rig.errors",
        "rig.steps",
        "rig.flaky",
        "rig.lab",
        "rig.instruments",
        "rig.protocol",
        "rig.double",
        "rig.ota",
        "rig.report",
    },
}
#: Third-party packages only some areas may import.
RESTRICTED = {
    "pytest": {"rig.pytestplugin"},
    "_pytest": {"rig.pytestplugin"},
    "xdist": {"rig.pytestplugin"},
    "allure": {"rig.pytestplugin", "rig.report.allure_listener"},
    "allure_commons": {"rig.pytestplugin", "rig.report.allure_listener"},
    "fastapi": {"rig.ota.service"},
    "starlette": {"rig.ota.service"},
    "uvicorn": {"rig.ota.service"},
}
#: Pure code on bytes: no port, no socket, no thread, no clock.
NO_IO = {"rig.protocol": {"serial", "socket", "select", "threading", "time", "os", "pexpect"}}


def _module_name(path: Path) -> str:
    parts = ("rig", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _area(module: str) -> str:
    """The longest key of ALLOWED that `module` belongs to."""
    best = max((a for a in ALLOWED if module == a or module.startswith(a + ".")), key=len)
    return best


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, except those guarded by `if TYPE_CHECKING:`."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                found.append(child)
            visit(child)

    visit(tree)
    return found


SOURCES = sorted(PACKAGE.rglob("*.py"))


def _imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level or node.module is None:
        return []
    if node.module == "rig":  # `from rig import x`: x is a submodule or a public name
        return [f"rig.{alias.name}" for alias in node.names]
    return [node.module]


def test_every_module_belongs_to_an_area() -> None:
    for path in SOURCES:
        module = _module_name(path)
        if module in ("rig", "rig.__main__"):
            continue
        assert any(_within(module, area) for area in ALLOWED), f"{module} has no import rule"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_imports_follow_the_rules(path: Path) -> None:
    module = _module_name(path)
    if module in ("rig", "rig.__main__"):
        return
    area = _area(module)
    allowed = ALLOWED[area] | {area}
    broken = []
    for node in _imports(ast.parse(path.read_text())):
        for name in _imported(node):
            top = name.split(".")[0]
            where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
            if top == "rig":
                if not any(_within(name, a) or _within(a, name) for a in allowed):
                    broken.append(f"{where}: {area} may not import {name}")
            elif top in RESTRICTED and not any(_within(module, a) for a in RESTRICTED[top]):
                broken.append(f"{where}: only {sorted(RESTRICTED[top])} may import {top}")
            elif top in NO_IO.get(area, ()):
                broken.append(f"{where}: {area} is pure code on bytes; it may not import {top}")
    assert not broken, "\n".join(broken)


def test_the_yaml_reader_needs_only_the_standard_library_pyyaml_and_rig_errors() -> None:
    """Every layer reads its YAML through rig.safe_yaml, so it must drag nothing in with it."""
    import sys

    imported = {
        name.split(".")[0] if not name.startswith("rig.") else name
        for path in sorted((PACKAGE / "safe_yaml").glob("*.py"))
        for node in _imports(ast.parse(path.read_text()))
        for name in _imported(node)
    }
    extra = {
        n for n in imported if n not in sys.stdlib_module_names and not _within(n, "rig.safe_yaml")
    } - {"yaml", "rig.errors"}
    assert not extra, (
        f"rig/safe_yaml/ may import only the standard library, yaml, rig.errors: {extra}"
    )


def test_no_module_imports_a_private_name_of_another() -> None:
    """Not in rig, its tests or its benches: a private name may change without notice."""
    repo = PACKAGE.parent
    broken = []
    for path in [*SOURCES, *(repo / "tests").rglob("*.py"), *(repo / "benches").glob("*.py")]:
        for node in _imports(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                private = [a.name for a in node.names if a.name.startswith("_")]
                if private:
                    broken.append(f"{path.relative_to(repo)}:{node.lineno}: {private}")
    assert not broken, "\n".join(broken)


def test_nothing_outside_the_plugin_imports_it() -> None:
    for path in SOURCES:
        module = _module_name(path)
        if _within(module, "rig.pytestplugin"):
            continue
        for node in _imports(ast.parse(path.read_text())):
            assert not any(_within(n, "rig.pytestplugin") for n in _imported(node)), module


def test_every_public_name_imports() -> None:
    assert rig.__all__ == sorted(set(rig.__all__))
    for name in rig.__all__:
        assert getattr(rig, name) is not None, name
        exec(f"from rig import {name}", {})  # the form users write


def test_an_unknown_name_is_an_attribute_error_naming_it() -> None:
    with pytest.raises(AttributeError, match="'Boardd'"):
        _ = rig.Boardd


def test_importing_rig_loads_no_driver_and_the_client_no_server() -> None:
    """`import rig` is free and the OTA client never pulls the FastAPI service in (a fresh
    interpreter, so this test's own imports do not count)."""
    code = (
        "import sys, rig, rig.ota.client, rig.ota.pipeline, rig.report.ota; "
        "print(sorted(m for m in ('fastapi', 'starlette', 'uvicorn', 'pytest', 'allure') "
        "if m in sys.modules))"
    )
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_plugin_entry_point_is_the_pytestplugin_package() -> None:
    plugin = importlib.import_module("rig.pytestplugin")
    assert plugin.pytest_plugins == [
        "rig.pytestplugin.boards",
        "rig.pytestplugin.ota",
        "rig.pytestplugin.report",
    ]
