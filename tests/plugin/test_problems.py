"""plugin.model.problems: any user value can be shown in a message and sent (issue 12 (a))."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from plugin.model import limits
from plugin.model.problems import Problem, printable, show


def test_an_unpaired_surrogate_is_shown_as_its_json_escape() -> None:
    assert show("a\ud800b") == '"a\\ud800b"'
    assert show({"\udc00": ["\ud800"]}) == '{"\\udc00": ["\\ud800"]}'
    assert show("é") == '"é"'  # valid text is left as the user wrote it


def test_printable_escapes_only_what_utf8_cannot_encode() -> None:
    assert printable("x\ud800y") == "x\\ud800y"
    assert printable("ok ✓") == "ok ✓"


def test_a_problem_escapes_its_path_and_message_so_it_can_be_encoded() -> None:
    problem = Problem('metadata.annotations["\ud800"]', "bad value \udfff")
    assert str(problem) == 'metadata.annotations["\\ud800"]: bad value \\udfff'
    str(problem).encode("utf-8")


def test_a_value_nested_past_the_limit_is_named_not_rendered() -> None:
    deep: object = "x"
    for _ in range(5000):  # json.dumps would raise RecursionError
        deep = [deep]
    assert show(deep) == f"<list nested more than {limits.MAX_DEPTH} levels deep>"
    assert show({"k": deep}) == f"<object nested more than {limits.MAX_DEPTH} levels deep>"


@given(st.recursive(st.text() | st.integers() | st.none(),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(), c, max_size=3), max_leaves=20))
def test_any_value_is_shown_as_encodable_text_within_the_limit(value: object) -> None:
    text = show(value, limit=60)
    text.encode("utf-8")
    assert len(text) <= 60 or text.startswith("<")


# High surrogates only: an escaped high+low pair would read back as the one character it encodes.
@given(st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDBFF) | st.characters(max_codepoint=0x7F)))
def test_shown_strings_decode_back_to_the_value_when_not_cut(value: str) -> None:
    text = show(value, limit=10**6)
    assert json.loads(text) == value
