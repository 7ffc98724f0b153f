"""The Dockerfile's structure, checked by reading it.

No container engine exists on the CI machines (no docker, podman or buildkit), so
``docker build`` cannot run here; these tests check what can be checked without one:
pinned multi-stage bases, a numeric non-root user, no build tools in the final stage,
that the commands the manifests run are console scripts of the package (the webhook, the
node installer and the thick-mode daemon), and that the zipapp lands where the node
installer looks for it by default.
"""

from __future__ import annotations

import importlib
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from plugin.node import install

REPO = Path(__file__).resolve().parents[1]
BUILD_TOOLS = ("gcc", "g++", "clang", "build-essential", "make", "python3-dev", "libc6-dev", "libffi-dev")
IMAGE_COMMANDS = {"netplex-webhook", "netplex-install", "netplex-node"}


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def instructions(text: str) -> list[Instruction]:
    """Dockerfile instructions with continuation lines joined and comments dropped."""
    out: list[Instruction] = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        keyword, _, args = (pending + line).strip().partition(" ")
        out.append(Instruction(keyword.upper(), " ".join(args.split())))
        pending = ""
    return out


def stages() -> list[list[Instruction]]:
    """Each stage's instructions, starting with its FROM."""
    result: list[list[Instruction]] = []
    for ins in instructions((REPO / "Dockerfile").read_text()):
        if ins.keyword == "FROM":
            result.append([])
        assert result, f"{ins.keyword} before the first FROM"
        result[-1].append(ins)
    return result


def base_image(stage: list[Instruction]) -> str:
    return stage[0].args.split()[0]


def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_build_is_multi_stage_on_one_pinned_slim_python_base() -> None:
    all_stages = stages()
    assert len(all_stages) >= 2
    for stage in all_stages:
        image = base_image(stage)
        assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", image), image
    # The virtualenv copied from the builder links to the base's interpreter.
    assert base_image(all_stages[0]) == base_image(all_stages[-1])
    assert re.search(r"\bAS builder$", all_stages[0][0].args)


def test_final_stage_runs_as_a_numeric_non_root_user() -> None:
    users = [ins.args for ins in stages()[-1] if ins.keyword == "USER"]
    assert users, "the final stage sets no USER"
    match = re.fullmatch(r"(\d+)(?::(\d+))?", users[-1])
    assert match, f"USER must be numeric so that runAsNonRoot can verify it (got {users[-1]!r})"
    assert int(match.group(1)) != 0


def test_final_stage_installs_nothing_and_holds_no_build_tools() -> None:
    final = stages()[-1]
    for ins in final:
        words = set(re.split(r"[\s;&|=]+", ins.args.lower()))
        assert not words & set(BUILD_TOOLS), f"build tools in the final stage: {ins.keyword} {ins.args}"
    assert [ins for ins in final if ins.keyword in ("RUN", "ADD")] == []
    copies = [ins.args for ins in final if ins.keyword == "COPY"]
    assert copies
    assert all(args.startswith("--from=builder ") for args in copies), copies


def test_no_entrypoint_so_each_workload_picks_its_command() -> None:
    assert [ins for stage in stages() for ins in stage if ins.keyword == "ENTRYPOINT"] == []


def test_the_zipapp_is_built_and_copied_where_the_installer_looks_by_default() -> None:
    builder, final = stages()[0], stages()[-1]
    built = [m.group(1) for ins in builder if ins.keyword == "RUN"
             for m in [re.search(r"-m plugin\.node\.pack --output (\S+)", ins.args)] if m]
    assert built == [install.DEFAULT_PLUGIN]
    copied = [ins.args.split()[-1] for ins in final if ins.keyword == "COPY"]
    assert install.DEFAULT_PLUGIN in copied


def test_builder_copies_every_package_the_project_ships() -> None:
    copied = " ".join(ins.args for ins in stages()[0] if ins.keyword == "COPY")
    packages = [p.rstrip("*") for p in pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]]
    for needed in ["pyproject.toml", "README.md", *(f"{p}/" for p in packages)]:
        assert needed in copied.split(), f"{needed} is not copied into the builder"


def test_dockerignore_keeps_what_the_build_copies() -> None:
    ignored = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    assert {".git", ".venv"} <= set(ignored)
    for needed in ("pyproject.toml", "README.md", "plugin", "webhook", "certs"):
        assert needed not in ignored


def _commands(node: Any) -> Iterator[str]:
    """The first word of every ``command:`` list in a manifest (containers and exec probes)."""
    if isinstance(node, dict):
        command = node.get("command")
        if isinstance(command, list) and command and isinstance(command[0], str):
            yield command[0]
        for value in node.values():
            yield from _commands(value)
    elif isinstance(node, list):
        for value in node:
            yield from _commands(value)


def test_every_netplex_command_in_the_image_is_a_console_script_that_imports() -> None:
    used = set(IMAGE_COMMANDS)
    for path in sorted((REPO / "manifests").rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            used |= {Path(c).name for c in _commands(document) if Path(c).name.startswith("netplex")}
    scripts = pyproject()["project"]["scripts"]
    assert used <= set(scripts), f"not console scripts in pyproject.toml: {sorted(used - set(scripts))}"
    for name in sorted(used):
        module, _, function = scripts[name].partition(":")
        assert callable(getattr(importlib.import_module(module), function)), scripts[name]
