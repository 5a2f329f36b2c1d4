"""The public surface and the import-direction rules of ARCHITECTURE.md."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import client_sdk

ROOT = Path(__file__).resolve().parent.parent


def test_all_matches_the_exported_names() -> None:
    import types

    public = {
        name
        for name, value in vars(client_sdk).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert set(client_sdk.__all__) - {"__version__"} == public - {"annotations"}
    for name in client_sdk.__all__:
        assert hasattr(client_sdk, name)


def test_importing_the_sdk_loads_no_server_side_module() -> None:
    code = (
        "import sys, json, client_sdk\n"
        "from client_sdk import Recommender, Updater\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    loaded = set(json.loads(out.stdout))
    forbidden = {"flask", "onnx", "server", "model_export", "werkzeug", "waitress", "scipy"}
    assert not {name.split(".")[0] for name in loaded} & forbidden


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_dependency_direction_in_source() -> None:
    rules = {
        "client_sdk": {"flask", "onnx", "server", "model_export", "werkzeug", "waitress", "scipy"},
        "model_export": {"server", "flask", "werkzeug", "waitress"},
    }
    for package, forbidden in rules.items():
        for path in (ROOT / package).rglob("*.py"):
            bad = _imports(path) & forbidden
            assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_the_sdk_imports_only_its_declared_dependencies() -> None:
    """An allow-list, not a deny-list: a stray import of anything else (threadpoolctl, say) in
    client_sdk fails here, as installing the SDK would not bring it."""
    allowed = set(sys.stdlib_module_names) | {"client_sdk", "numpy", "onnxruntime", "cryptography"}
    allowed.add("tuf")  # the optional `keyring` is loaded by importlib, only when asked for
    for path in (ROOT / "client_sdk").rglob("*.py"):
        extra = _imports(path) - allowed
        assert not extra, f"{path.relative_to(ROOT)} imports {sorted(extra)}"


def test_every_package_ships_py_typed() -> None:
    for package in ("client_sdk", "model_export", "server"):
        assert (ROOT / package / "py.typed").is_file()


def test_plain_install_requires_no_server_dependency() -> None:
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    plain = {dep.split(">")[0].split("=")[0].strip().lower() for dep in project["dependencies"]}
    assert plain == {"numpy", "onnxruntime", "cryptography", "tuf"}
    server = " ".join(project["optional-dependencies"]["server"])
    assert "flask" in server and "onnx" in server and "waitress" in server
