"""``plugin.model.records.record`` behaves as ``dataclasses.dataclass`` on the shapes the
plugin uses (each class is declared twice, once per decorator, and compared)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Callable
from dataclasses import (
    KW_ONLY,  # both decorators read the annotation "KW_ONLY" (records by its name)
)
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugin.model import records


def declare(decorator: Callable[..., Any], field: Callable[..., Any], **options: Any) -> dict[str, type]:
    """The same classes, made by ``decorator``."""

    @decorator(**options)
    class Point:
        x: int
        y: int = 0
        tags: list[str] = field(default_factory=list)
        secret: str = field(default="s", repr=False)
        note: str = field(default="", compare=False)

    @decorator(**options)
    class Client:
        server: str
        _: KW_ONLY
        timeout: float = 10.0
        attempts: int = 3

    @decorator(**options)
    class Checked:
        value: int

        def __post_init__(self) -> None:
            if self.value < 0:
                raise ValueError(f"value must be >= 0, got {self.value}")

    return {"Point": Point, "Client": Client, "Checked": Checked}


OPTIONS = [{}, {"frozen": True}, {"frozen": True, "slots": True}, {"slots": True}]


def both(options: dict[str, Any]) -> tuple[dict[str, type], dict[str, type]]:
    return (declare(dataclasses.dataclass, dataclasses.field, **options),
            declare(records.record, records.field, **options))


@pytest.mark.parametrize("options", OPTIONS, ids=str)
@given(x=st.integers(), y=st.integers(), tags=st.lists(st.text(max_size=3), max_size=3))
def test_init_repr_eq_and_hash_match_dataclasses(options: dict[str, Any], x: int, y: int, tags: list[str]) -> None:
    ref, ours = both(options)
    a, b = ref["Point"](x, y, tags), ours["Point"](x, y, tags)
    assert repr(a) == repr(b)  # secret is not shown
    assert (a == ref["Point"](x, y, list(tags))) == (b == ours["Point"](x, y, list(tags))) is True
    assert (a == ref["Point"](x, y + 1)) == (b == ours["Point"](x, y + 1)) is False
    assert (a == ref["Point"](x, y, tags, note="n")) == (b == ours["Point"](x, y, tags, note="n")) is True
    assert b != (x, y)  # another type is never equal
    if options.get("frozen"):
        assert hash(ours["Client"](str(x))) == hash(ours["Client"](str(x)))
        for made in (a, b):
            with pytest.raises(TypeError, match="unhashable type: 'list'"):
                hash(made)  # the tags list, for both
    else:
        assert type(a).__hash__ is None and type(b).__hash__ is None


@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_defaults_factories_keyword_only_and_post_init_match(options: dict[str, Any]) -> None:
    ref, ours = both(options)
    p1, p2 = ours["Point"](1), ours["Point"](2)
    assert p1.tags == [] and p1.tags is not p2.tags  # a fresh list each time
    assert ours["Client"]("https://x", timeout=2.0).timeout == ref["Client"]("https://x", timeout=2.0).timeout == 2.0
    for cls in (ref["Client"], ours["Client"]):
        with pytest.raises(TypeError):
            cls("https://x", 2.0)  # keyword-only after KW_ONLY
    for cls in (ref["Checked"], ours["Checked"]):
        with pytest.raises(ValueError, match="value must be >= 0, got -1"):
            cls(-1)


@pytest.mark.parametrize("options", [{"frozen": True}, {"frozen": True, "slots": True}], ids=str)
def test_frozen_records_refuse_assignment(options: dict[str, Any]) -> None:
    _, ours = both(options)
    point = ours["Point"](1)
    with pytest.raises(records.FrozenInstanceError, match="cannot assign to field 'x'"):
        point.x = 2
    with pytest.raises(AttributeError):
        del point.y


def test_slots_leave_no_instance_dict_and_replace_runs_post_init() -> None:
    _, ours = both({"frozen": True, "slots": True})
    point = ours["Point"](1, 2, ["a"])
    assert not hasattr(point, "__dict__")
    moved = records.replace(point, y=5)
    assert (moved.x, moved.y, moved.tags) == (1, 5, ["a"])
    with pytest.raises(TypeError, match="Point has no field 'z'"):
        records.replace(point, z=1)
    with pytest.raises(ValueError, match="got -3"):
        records.replace(ours["Checked"](1), value=-3)


def test_mistakes_in_declarations_are_refused_with_the_reason() -> None:
    with pytest.raises(TypeError, match="non-default field 'b' follows a default field"):
        @records.record
        class Bad:
            a: int = 1
            b: int
    with pytest.raises(ValueError, match="cannot specify both default and default_factory"):
        records.field(default=1, default_factory=list)


def test_importing_records_loads_neither_dataclasses_nor_typing() -> None:
    probe = "import sys; import plugin.model.records; print(sorted(m for m in ('dataclasses', 'typing', 'inspect') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-S", "-c", probe], capture_output=True, text=True, check=True,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    assert out.stdout.strip() == "[]"
