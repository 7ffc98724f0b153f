"""webhook.patching: the pruned diff is a correct RFC 6902 patch, and it prunes."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
from hypothesis import given, settings
from hypothesis import strategies as st

from webhook.patching import make_patch

scalars = st.none() | st.booleans() | st.integers(-3, 3) | st.floats(-2, 2, allow_nan=False) | st.text(max_size=3)
keys = st.sampled_from(["a", "b", "c", "x/y", "m~n", "", "0"])
documents = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(documents, documents)
def test_patch_turns_any_document_into_any_other(before: Any, after: Any) -> None:
    original = copy.deepcopy(before)
    ops = make_patch(before, after)

    result = jsonpatch.apply_patch(before, ops)

    assert result == after and _same_types(result, after)
    assert before == original  # make_patch does not modify its input


@settings(max_examples=200, deadline=None)
@given(documents)
def test_equal_documents_give_an_empty_patch(doc: Any) -> None:
    assert make_patch(doc, copy.deepcopy(doc)) == []


def test_json_types_are_not_confused_the_way_python_equality_confuses_them() -> None:
    assert make_patch({"a": 1}, {"a": True}) == [{"op": "replace", "path": "/a", "value": True}]
    assert make_patch([1.0], [1]) == [{"op": "replace", "path": "/0", "value": 1}]


def test_paths_are_escaped_and_shared_parts_are_not_visited() -> None:
    shared = {"huge": list(range(1000))}
    before = {"metadata": {"annotations": {}}, "spec": shared}
    after = {"metadata": {"annotations": {"k8s.v1.cni.cncf.io/networks": "a~b"}}, "spec": shared}

    assert make_patch(before, after) == [
        {"op": "add", "path": "/metadata/annotations/k8s.v1.cni.cncf.io~1networks", "value": "a~b"}
    ]


def test_a_list_that_changed_length_is_diffed_by_jsonpatch_under_its_own_path() -> None:
    before = {"spec": {"volumes": [{"name": "a"}]}}
    after = {"spec": {"volumes": [{"name": "a"}, {"name": "podnetinfo"}]}}

    assert make_patch(before, after) == [{"op": "add", "path": "/spec/volumes/1", "value": {"name": "podnetinfo"}}]


def test_a_changed_root_type_is_one_replace_of_the_whole_document() -> None:
    assert make_patch({"a": 1}, [1]) == [{"op": "replace", "path": "", "value": [1]}]


def _same_types(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return all(_same_types(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return all(_same_types(x, y) for x, y in zip(a, b, strict=True))
    return True
