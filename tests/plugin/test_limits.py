"""The depth guard (plugin/model/limits.py): text and decoded values, repeated keys included."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugin.model import limits


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_text_depth_counts_brackets_outside_strings_only() -> None:
    assert limits.text_depth('{"a": "[[[[{{{{", "b": [1, {"c": []}]}') == 4
    assert limits.text_depth(r'{"a\"[[[": 1}') == 1
    assert limits.text_depth("42") == 0


def test_a_repeated_key_does_not_hide_a_deep_value() -> None:
    text = '[{"name": "a", "cni-args": {"x": ' + nested(600) + ', "x": {}}}]'
    assert json.loads(text)[0]["cni-args"] == {"x": {}}  # the decoded object looks shallow
    assert limits.text_depth(text) == limits.MAX_DEPTH + 1  # stops counting past the limit


def test_deep_text_is_measured_without_recursion() -> None:
    assert limits.text_depth(nested(200_000), stop_after=10**9) == 200_000
    assert limits.text_depth("[" * 50 + '"unterminated') == limits.MAX_DEPTH + 1


def test_value_depth_walks_without_recursion() -> None:
    value: object = []
    for _ in range(100_000):
        value = [value]
    assert limits.value_depth(value, stop_after=10**9) == 100_001
    assert limits.value_depth({"a": [1, {"b": "x"}]}) == 3
    assert limits.value_depth("text") == 0


def test_the_message_names_the_limit() -> None:
    assert limits.depth_problem(limits.MAX_DEPTH) is None
    assert limits.depth_problem(33) == (
        "is nested more than 32 levels deep; at most 32 levels of objects and lists are accepted"
    )


@given(st.recursive(st.none() | st.integers() | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c),
                    max_leaves=30))
def test_text_and_value_depth_agree_on_any_json(value: object) -> None:
    assert limits.text_depth(json.dumps(value), stop_after=10**6) == limits.value_depth(value, stop_after=10**6)


@pytest.mark.parametrize(("text", "count"), [("0", 0), ("2", 2), ("007", 7), ("9" * 18, 10**18 - 1)])
def test_counts_are_plain_ascii_digits_within_the_length_limit(text: str, count: int) -> None:
    assert limits.parse_count(text) == count


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("²", "is not a whole number"),  # str.isdigit() says yes
        ("٣", "is not a whole number"),  # int() reads it as 3
        ("-1", "is not a whole number"),
        (" 2", "is not a whole number"),
        ("", "is not a whole number"),
        ("9" * 19, "has 19 digits, more than 18"),
        ("9" * 5000, "has 5000 digits, more than 18"),  # int() raises past 4,300 digits
    ],
)
def test_what_is_not_a_count_is_none_and_the_reason_says_why(text: str, why: str) -> None:
    assert limits.parse_count(text) is None
    assert limits.count_problem(text) == why


def test_integer_literals_past_the_digit_limit_are_refused_before_int_reads_them() -> None:
    assert limits.int_problem("9" * 100) is None
    assert limits.int_problem("-" + "9" * 100) is None
    assert limits.int_problem("9" * 5000) == (
        "a number has 5000 digits (999999999999...); at most 100 digits are accepted"
    )
