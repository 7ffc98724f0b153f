"""The layers of ``plugin/`` (DESIGN.md, README "Where things are"), checked two ways.

- Statically, every ``import`` in every module, including the lazy ones inside functions
  and under ``TYPE_CHECKING``: ``plugin/model`` imports only the standard library and
  itself; ``plugin/cni`` only the standard library, ``plugin/model`` and itself;
  ``plugin/node`` only the standard library and ``plugin``; nothing in ``plugin/`` imports
  ``webhook``, ``certs`` or a third-party package.
- Dynamically, in a fresh interpreter (this test process has long since imported pytest,
  hypothesis and friends): what importing a module really loads.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLUGIN = REPO / "plugin"

# What each sub-package may import besides the standard library (prefixes of module names).
ALLOWED: dict[str, tuple[str, ...]] = {
    "model": ("plugin.model",),
    "cni": ("plugin.model", "plugin.cni"),
    "node": ("plugin",),
}
# Third-party packages a module may import, by module.
THIRD_PARTY_EXCEPTIONS: dict[str, tuple[str, ...]] = {
    "plugin.node.metrics": ("prometheus_client",),  # the daemon's metrics; never imported by the plugin
}

SHARED_MODULES = ["plugin.model.names", "plugin.model.problems", "plugin.model.selection", "plugin.model.netconf", "plugin.cni.status"]
# The node installer runs in the image, where third-party packages exist; it stays standard
# library only so that it can live in plugin/ and reuse the plugin's parsers without
# pulling the webhook's dependencies into the node side.
INSTALLER_MODULES = ["plugin.node.install", "plugin.node.conflist", "plugin.node.host", "plugin.node.credentials"]

PROBE = """
import json, sys
before = set(sys.modules)
for name in sys.argv[1:]:
    __import__(name)
loaded = sorted(set(sys.modules) - before)
print(json.dumps(loaded))
"""


def imported_names(source: str, module: str) -> list[str]:
    """Every module an ``import`` statement of ``source`` names, relative ones resolved."""
    names: list[str] = []
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names.append(base)
    return names


def layer_violations(module: str, source: str) -> list[str]:
    """The imports of ``module`` (``plugin.<layer>.<name>``) that break the layering."""
    parts = module.split(".")
    layer = parts[1] if len(parts) > 2 else ""
    allowed = ALLOWED.get(layer, ("plugin",)) + THIRD_PARTY_EXCEPTIONS.get(module, ())
    bad = []
    for name in imported_names(source, module):
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or top == "__future__":
            continue
        if any(name == prefix or name.startswith(prefix + ".") for prefix in allowed):
            continue
        bad.append(name)
    return bad


def plugin_modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PLUGIN.rglob("*.py")):
        relative = path.relative_to(REPO).with_suffix("")
        parts = list(relative.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out.append((".".join(parts), path))
    return out


def test_every_plugin_module_sits_in_a_known_layer() -> None:
    layers = {name.split(".")[1] for name, _ in plugin_modules() if name.count(".") >= 2}
    assert layers == set(ALLOWED)
    loose = [name for name, _ in plugin_modules() if name.count(".") == 1 and name.split(".")[1] not in ALLOWED]
    assert loose == []


@pytest.mark.parametrize("module,path", plugin_modules(), ids=[name for name, _ in plugin_modules()])
def test_plugin_module_imports_respect_the_layers(module: str, path: Path) -> None:
    assert layer_violations(module, path.read_text()) == []


@pytest.mark.parametrize(
    "module,source,bad",
    [
        ("plugin.model.names", "def f():\n    from plugin.cni import protocol\n", ["plugin.cni"]),
        ("plugin.model.names", "from . import problems\nfrom ..cni import cache\n", ["plugin.cni"]),
        ("plugin.cni.main", "import webhook.app\nfrom plugin.node import install\n", ["webhook.app", "plugin.node"]),
        ("plugin.node.install", "import certs\nimport yaml\nfrom plugin.cni import cache\n", ["certs", "yaml"]),
        ("plugin.cni.cache", "TYPE_CHECKING = False\nif TYPE_CHECKING:\n    import fastapi\n", ["fastapi"]),
    ],
)
def test_the_static_check_notices_each_kind_of_violation(module: str, source: str, bad: list[str]) -> None:
    assert layer_violations(module, source) == bad


def _loaded_by(*modules: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *modules],
        capture_output=True, text=True, check=True, cwd=REPO,
    )
    return list(json.loads(out.stdout))


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
