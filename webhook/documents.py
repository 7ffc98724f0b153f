"""Kubernetes objects read from YAML files, each with the line where it starts.

Used by ``netplexctl check`` (findings point at ``FILE:LINE``) and by the webhook's
``--nads DIR`` mode. ``kind: List`` documents (``kubectl get -o yaml``) are unpacked into
their items, each with its own line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

try:  # the C loader is several times faster; fall back when libyaml is absent
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on the wheel
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

YAML_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True, slots=True)
class Document:
    source: str
    line: int  # 1-based line of the object's first key
    obj: dict[str, Any]


class DocumentError(Exception):
    """A file that cannot be read or parsed (``netplexctl`` exits 2)."""

    def __init__(self, source: str, line: int | None, message: str) -> None:
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {message}")


def parse_yaml(text: str, source: str) -> list[Document]:
    """Every object in a multi-document YAML text; empty documents are skipped."""
    loader = _Loader(text)
    docs: list[Document] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            obj = loader.construct_document(node)
            docs.extend(_expand(obj, node, source))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise DocumentError(source, line, f"cannot parse YAML: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise DocumentError(source, None, f"cannot parse YAML: {exc}") from exc
    finally:
        loader.dispose()
    return docs


def _expand(obj: Any, node: yaml.Node, source: str) -> Iterator[Document]:
    line = node.start_mark.line + 1
    if obj is None:
        return
    if not isinstance(obj, dict):
        raise DocumentError(source, line, f"expected a Kubernetes object (a mapping), got {type(obj).__name__}")
    items = obj.get("items")
    if str(obj.get("kind", "")).endswith("List") and isinstance(items, list):
        item_nodes = _items_nodes(node)
        for i, item in enumerate(items):
            if isinstance(item, dict):
                item_line = item_nodes[i].start_mark.line + 1 if i < len(item_nodes) else line
                yield Document(source, item_line, item)
        return
    yield Document(source, line, obj)


def _items_nodes(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if getattr(key, "value", None) == "items" and isinstance(value, yaml.SequenceNode):
                return list(value.value)
    return []


def read_file(path: Path) -> list[Document]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DocumentError(str(path), None, f"cannot read: {exc}") from exc
    return parse_yaml(text, str(path))


def read_directory(directory: Path) -> list[Document]:
    """All YAML/JSON files below ``directory``, in name order (deterministic)."""
    if not directory.is_dir():
        raise DocumentError(str(directory), None, "is not a directory")
    docs: list[Document] = []
    for path in sorted(directory.rglob("*")):
        if path.is_file() and path.suffix in YAML_SUFFIXES:
            docs.extend(read_file(path))
    return docs
