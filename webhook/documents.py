"""Kubernetes objects read from YAML files, each with the line where it starts.

Used by ``netplexctl check`` (findings point at ``FILE:LINE``) and by the webhook's
``--nads DIR`` mode, and (:func:`load_yaml`) for the webhook's policy file. ``kind: List``
documents (``kubectl get -o yaml``) are unpacked into their items, each with its own line.

Any text can come in, so nothing here raises anything but :class:`DocumentError` (or
:class:`YAMLProblem`): bytes that are not UTF-8 and documents nested deeper than
:data:`plugin.model.limits.DOCUMENT_MAX_DEPTH` are refused with the place and the limit,
before a checker walks them (libyaml itself stops at 1,000 levels).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from plugin.model import limits

try:  # the C loader is several times faster; fall back when libyaml is absent
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on the wheel
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

YAML_SUFFIXES = (".yaml", ".yml", ".json")


class _BoundedLoader(_Loader):
    """The safe loader, with integers read under :data:`plugin.model.limits.INT_MAX_DIGITS`."""


def _construct_int(loader: Any, node: yaml.ScalarNode) -> Any:
    problem = limits.int_problem(str(node.value).replace("_", ""))
    if problem is not None:
        raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark)
    return yaml.constructor.SafeConstructor.construct_yaml_int(loader, node)


_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


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


class YAMLProblem(ValueError):
    """A YAML text that cannot be used: the message says why and where."""


def utf8_problem(exc: UnicodeDecodeError) -> str:
    """``is not valid UTF-8: byte 0xff at position 31``."""
    return f"is not valid UTF-8: byte 0x{exc.object[exc.start]:02x} at position {exc.start}"


def decode(data: bytes, source: str) -> str:
    """UTF-8 text of a file or of stdin, or :class:`DocumentError` naming the bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentError(source, None, f"cannot read: {utf8_problem(exc)}") from exc


def _too_deep(obj: Any) -> str | None:
    return limits.depth_problem(limits.value_depth(obj, limits.DOCUMENT_MAX_DEPTH), limits.DOCUMENT_MAX_DEPTH)


def load_yaml(text: str) -> Any:
    """The one document of ``text`` (None when empty), depth-checked; :class:`YAMLProblem` if not."""
    try:
        data = yaml.load(text, Loader=_BoundedLoader)  # a safe loader: no arbitrary objects
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise YAMLProblem(f"{where}{exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise YAMLProblem(str(exc)) from exc
    problem = _too_deep(data)
    if problem is not None:
        raise YAMLProblem(f"the document {problem}")
    return data


def parse_yaml(text: str, source: str) -> list[Document]:
    """Every object in a multi-document YAML text; empty documents are skipped."""
    loader = _BoundedLoader(text)
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
    problem = _too_deep(obj)
    if problem is not None:
        raise DocumentError(source, line, f"the document {problem}")
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
        data = path.read_bytes()
    except OSError as exc:
        raise DocumentError(str(path), None, f"cannot read: {exc}") from exc
    return parse_yaml(decode(data, str(path)), str(path))


def read_directory(directory: Path) -> list[Document]:
    """All YAML/JSON files below ``directory``, in name order (deterministic)."""
    if not directory.is_dir():
        raise DocumentError(str(directory), None, "is not a directory")
    docs: list[Document] = []
    for path in sorted(directory.rglob("*")):
        if path.is_file() and path.suffix in YAML_SUFFIXES:
            docs.extend(read_file(path))
    return docs
