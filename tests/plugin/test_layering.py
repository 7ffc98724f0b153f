"""The shared model and the CNI plugin import only the standard library (DESIGN.md layering).

Checked in a fresh interpreter, because this test process has long since imported
pytest, hypothesis and friends.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SHARED_MODULES = ["plugin.names", "plugin.problems", "plugin.selection", "plugin.netconf", "plugin.status"]
# The node installer runs in the image, where third-party packages exist; it stays standard
# library only so that it can live in plugin/ and reuse the plugin's parsers without
# pulling the webhook's dependencies into the node side.
INSTALLER_MODULES = ["plugin.install", "plugin.install_conf", "plugin.install_host", "plugin.install_kubeconfig"]

PROBE = """
import json, sys
before = set(sys.modules)
for name in sys.argv[1:]:
    __import__(name)
loaded = sorted(set(sys.modules) - before)
print(json.dumps(loaded))
"""


def _loaded_by(*modules: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *modules],
        capture_output=True, text=True, check=True, cwd=_repo_root(),
    )
    return list(json.loads(out.stdout))


def _repo_root() -> str:
    import pathlib

    return str(pathlib.Path(__file__).resolve().parents[2])


def _third_party(loaded: list[str]) -> list[str]:
    stdlib = sys.stdlib_module_names
    return [m for m in loaded if m.split(".")[0] not in stdlib and m.split(".")[0] != "plugin"]


@pytest.mark.parametrize("module", SHARED_MODULES + INSTALLER_MODULES)
def test_shared_model_module_loads_no_third_party_module(module: str) -> None:
    loaded = _loaded_by(module)
    assert f"{module}" in loaded
    assert _third_party(loaded) == []


def test_layering_probe_would_notice_a_third_party_import() -> None:
    loaded = _loaded_by("yaml")
    assert "yaml" in _third_party(loaded)
