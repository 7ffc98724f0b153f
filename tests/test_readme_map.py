"""The README's "Where things are" map matches the tree (issue 9): every package it names
exists, and every package of the tree is named."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOP_LEVEL = ("plugin", "webhook", "certs", "manifests", "tests", "bench", "examples")


def mapped_packages(text: str | None = None) -> list[str]:
    text = (REPO / "README.md").read_text() if text is None else text
    section = text.split("### Where things are", 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
    return re.findall(r"^\| `([\w/]+)/` \|", section, flags=re.M)


def tree_packages() -> set[str]:
    found = {name for name in TOP_LEVEL if (REPO / name).is_dir()}
    found |= {f"plugin/{p.parent.name}" for p in (REPO / "plugin").glob("*/__init__.py")}
    return found


def test_every_package_the_map_names_exists() -> None:
    named = mapped_packages()
    assert len(named) >= 8
    assert [name for name in named if not (REPO / name).is_dir()] == []


def test_every_package_of_the_tree_is_in_the_map() -> None:
    missing = tree_packages() - set(mapped_packages()) - {"plugin"}
    assert sorted(missing) == []


def test_the_map_reader_takes_rows_of_that_section_only() -> None:
    text = ("## Contributing\n\n### Where things are\n\n| package | what |\n|---|---|\n"
            "| `plugin/model/` | x |\n| `webhook/` | y |\nnot a row `certs/`\n\n## Next\n| `bench/` | z |\n")
    assert mapped_packages(text) == ["plugin/model", "webhook"]


def test_the_adding_a_plugin_type_paragraph_names_files_and_tables_that_exist() -> None:
    text = (REPO / "README.md").read_text()
    paragraph = text.split("Adding a CNI plugin type:", 1)[1].split("\n\n", 1)[0]
    files = re.findall(r"`((?:plugin|tests)/[\w/]+\.py)`", paragraph)
    assert "plugin/model/netconf/plugins.py" in files and "tests/plugin/test_netconf.py" in files
    assert [f for f in files if not (REPO / f).is_file()] == []
    from plugin.model.netconf import ipam, plugins

    tables = re.findall(r"`([A-Z_]+_CHECKS)`", paragraph)
    assert tables == ["PLUGIN_CHECKS", "IPAM_CHECKS"]
    assert "macvlan" in plugins.PLUGIN_CHECKS and "host-local" in ipam.IPAM_CHECKS
