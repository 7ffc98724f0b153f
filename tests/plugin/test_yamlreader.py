"""The standard-library YAML reader the CNI plugin reads kubeconfigs with.

PyYAML (a test dependency, never a plugin one) is the oracle: whatever it writes, in block,
flow or mixed style, our reader must read back as ``yaml.safe_load`` does; bad YAML must
give a ``YamlError`` whose message starts with the line, never another exception.
"""

from __future__ import annotations

import datetime
import textwrap
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugin.cni.yamlreader import MAX_NODES, YamlError, load

# ------------------------------------------------------------------ what it reads


def test_kubeconfig_constructs_read_as_pyyaml_reads_them() -> None:
    text = textwrap.dedent("""\
        %YAML 1.1
        --- # start
        plain: some words here
        single: 'it''s # not a comment'
        double: "tab\\there \\u00e9 \\"q\\" \\x41\\/"
        url: https://10.0.0.1:6443   # a comment
        arn: arn:aws:eks:us-west-2:111122223333:cluster/my-cluster
        empty_map: {}
        empty_list: []
        nothing:
        tilde: ~
        bools: [true, False, yes, off]
        numbers: [42, -7, 0x1F, 017, 0b101, 1_000, 1.5, .inf, -.Inf, 1.0e+3]
        "quoted key": v
        'single key': w
        context: {cluster: local, user: admin}
        nested: {a: [1, {b: c}], 'd': "e", f: }
        multi: {a: 1,
          b: [x,
            y]}   # over three lines
        folded plain: one
          two

          three
        folded quotes: "one
          two\\
          three"
        literal: |
          line 1
            indented
        folded: >-
          a
          b

          c
        keep: |+
          x

        hint: |2

            two leading spaces kept
        items:
        - plain item
        - key: value
          other: 2
        -
          nested: deeper
        - - inner
          - list
        - ? explicit
          : key
        indented:
          - a
          -   b
        anchored: &base {server: https://a, insecure-skip-tls-verify: true}
        alias: *base
        merged:
          <<: *base
          server: https://b
        tagged: !!str 6443
        ...
        """)
    expected = {
        "plain": "some words here", "single": "it's # not a comment", "double": 'tab\there é "q" A/',
        "url": "https://10.0.0.1:6443", "arn": "arn:aws:eks:us-west-2:111122223333:cluster/my-cluster",
        "empty_map": {}, "empty_list": [], "nothing": None, "tilde": None, "bools": [True, False, True, False],
        "numbers": [42, -7, 31, 15, 5, 1000, 1.5, float("inf"), float("-inf"), 1000.0],
        "quoted key": "v", "single key": "w", "context": {"cluster": "local", "user": "admin"},
        "nested": {"a": [1, {"b": "c"}], "d": "e", "f": None}, "multi": {"a": 1, "b": ["x", "y"]},
        "folded plain": "one two\nthree", "folded quotes": "one twothree", "literal": "line 1\n  indented\n",
        "folded": "a b\nc", "keep": "x\n\n", "hint": "\n  two leading spaces kept\n",
        "items": ["plain item", {"key": "value", "other": 2}, {"nested": "deeper"}, ["inner", "list"],
                  {"explicit": "key"}],
        "indented": ["a", "b"],
        "anchored": {"server": "https://a", "insecure-skip-tls-verify": True},
        "alias": {"server": "https://a", "insecure-skip-tls-verify": True},
        "merged": {"server": "https://b", "insecure-skip-tls-verify": True},
        "tagged": "6443",
    }
    assert load(text) == expected
    assert yaml.safe_load(text) == expected


def test_json_is_read_as_yaml() -> None:
    text = '{"apiVersion":"v1","clusters":[{"name":"k","cluster":{"server":"https://a","x":[1,2.5,true,null]}}]}'
    assert load(text) == {"apiVersion": "v1", "clusters": [{"name": "k", "cluster": {"server": "https://a",
                                                                                       "x": [1, 2.5, True, None]}}]}


def test_byte_order_mark_and_windows_line_ends_are_read() -> None:
    assert load("\ufeffa: 1\r\nb:\r\n  - 'x\r\n  y'\r\n") == {"a": 1, "b": ["x y"]}


@pytest.mark.parametrize(("text", "value"), [("", None), ("# only a comment\n", None), ("---\n", None),
                                              ("---\n...\n", None), ("...\n", None)])
def test_an_empty_document_is_none(text: str, value: None) -> None:
    assert load(text) is value


def test_number_prefixes_without_digits_stay_strings() -> None:
    """PyYAML fails on these with a bare ValueError; they are no numbers."""
    assert load("a: 0x_\nb: 0b__\nc: -0x\nd: 0_\n") == {"a": "0x_", "b": "0b__", "c": "-0x", "d": 0}


def test_timestamps_and_sexagesimal_numbers_stay_strings_as_kubectl_reads_them() -> None:
    """A deliberate difference from PyYAML (which makes dates and base-60 integers): kubectl's
    decoder gives a kubeconfig's string fields these texts unchanged."""
    text = "last-update: 2026-12-03\nport: 1:20\n"
    assert load(text) == {"last-update": "2026-12-03", "port": "1:20"}
    assert yaml.safe_load(text) == {"last-update": datetime.date(2026, 12, 3), "port": 80}


# ------------------------------------------------------------------ PyYAML as the oracle

# Kubeconfig-shaped data: names, servers, tokens and paths of any text, extensions of any shape.
_TEXT = st.text(st.characters(blacklist_characters="\x85\u2028\u2029", blacklist_categories=("Cs",)), max_size=40)
_TRICKY = st.text(alphabet=st.sampled_from([*"ab yz09-_./:=+@#'\"é\\\n\t{}[],&*!|>%?`~", "\x01", "\ufeff"]),
                  max_size=40)
_STRINGS = st.one_of(_TEXT, _TRICKY, st.sampled_from(["", "yes", "null", "~", "0x1F", "017", "1:20", "2026-12-03",
                                                      "-", "- a", "? b", ": c", "a: b", "#c", "&a", "*a", "!!str",
                                                      "https://10.0.0.1:6443", "'", '"', "|", ">"]))
_SCALARS = st.one_of(_STRINGS, st.booleans(), st.none(), st.integers(-(10**40), 10**40), st.floats(allow_nan=False))
_TREES = st.recursive(_SCALARS, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(_STRINGS, children, max_size=4)), max_leaves=20)
_B64 = st.binary(max_size=1500).map(lambda b: __import__("base64").b64encode(b).decode())


def _named(section: str, body: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(st.fixed_dictionaries({"name": _STRINGS, section: body}), max_size=3)


_KUBECONFIGS = st.fixed_dictionaries(
    {
        "apiVersion": st.just("v1"),
        "kind": st.just("Config"),
        "current-context": _STRINGS,
        "preferences": st.just({}),
        "clusters": _named("cluster", st.fixed_dictionaries(
            {"server": _STRINGS},
            optional={"certificate-authority-data": _B64, "certificate-authority": _STRINGS,
                      "insecure-skip-tls-verify": st.booleans(), "tls-server-name": _STRINGS,
                      "proxy-url": _STRINGS, "extensions": st.lists(st.fixed_dictionaries(
                          {"name": _STRINGS, "extension": _TREES}), max_size=2)})),
        "users": _named("user", st.fixed_dictionaries(
            {}, optional={"token": _STRINGS, "tokenFile": _STRINGS, "client-certificate-data": _B64,
                          "client-key-data": _B64, "client-certificate": _STRINGS, "client-key": _STRINGS,
                          "exec": st.fixed_dictionaries({"command": _STRINGS, "args": st.lists(_STRINGS, max_size=4),
                                                         "env": st.none(), "installHint": _STRINGS})})),
        "contexts": _named("context", st.fixed_dictionaries(
            {"cluster": _STRINGS, "user": _STRINGS}, optional={"namespace": _STRINGS})),
    },
    optional={"extensions": _TREES},
)
_STYLES = st.sampled_from([True, False, None])


def _agrees(data: Any, flow: bool | None, indent: int, width: int) -> None:
    text = yaml.safe_dump(data, default_flow_style=flow, indent=indent, width=width, allow_unicode=True)
    assert load(text) == yaml.safe_load(text), text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_KUBECONFIGS, _STYLES, st.sampled_from([2, 4]), st.sampled_from([20, 80, 10_000]))
def test_kubeconfig_shaped_data_written_by_pyyaml_in_any_style_reads_as_pyyaml_reads_it(
        data: dict[str, Any], flow: bool | None, indent: int, width: int) -> None:
    """Block (False), flow (True) and mixed (None) style, short lines that fold long values."""
    _agrees(data, flow, indent, width)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_TREES, st.dictionaries(_STRINGS, _TREES, min_size=1)), _STYLES, st.sampled_from([2, 4]),
       st.sampled_from([20, 80, 10_000]))
def test_any_tree_written_by_pyyaml_in_any_style_reads_as_pyyaml_reads_it(
        data: Any, flow: bool | None, indent: int, width: int) -> None:
    _agrees(data, flow, indent, width)


_EDITS = st.lists(st.tuples(st.floats(0, 1), st.sampled_from(["insert", "delete", "replace"]),
                            st.sampled_from([*" \n\t:-?#'\"{}[],&*!|>%@`~\\xé", "  ", "\n  ", ": ", "- ", "---",
                                             "..."])),
                  min_size=1, max_size=4)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_KUBECONFIGS, _STYLES, _EDITS)
def test_damaged_yaml_is_read_as_pyyaml_reads_it_or_refused_with_its_line(
        data: dict[str, Any], flow: bool | None, edits: list[tuple[float, str, str]]) -> None:
    """Never another exception; never a value PyYAML would read differently (its dates and
    base-60 numbers aside, see above)."""
    chars = list(yaml.safe_dump(data, default_flow_style=flow, allow_unicode=True))
    for where, edit, text in edits:
        at = min(int(where * len(chars)), max(len(chars) - 1, 0))
        if edit == "insert":
            chars.insert(at, text)
        elif chars and edit == "delete":
            del chars[at]
        elif chars:
            chars[at] = text
    damaged = "".join(chars)
    try:
        ours = load(damaged)
    except YamlError as exc:
        assert str(exc).startswith(f"line {exc.line}: ")
        assert 1 <= exc.line <= damaged.count("\n") + 1
        return
    try:
        theirs = yaml.safe_load(damaged)
    except yaml.YAMLError:
        return  # we read some YAML that PyYAML refuses (tabs in plain values, empty flow keys)
    if not _has_dates_or_base60(damaged, theirs):
        assert ours == theirs, damaged


_PIECES = st.sampled_from([*" \n\t:-?#'\"{}[],&*!|>%@`~\\abx019.\r\ufeffé", "  ", "\n  ", ": ", "- ", "---", "...",
                           "|2", ">-", "&a ", "*a", "<<: ", "? ", "!!str ", "\\x4"])


@settings(max_examples=500, deadline=None)
@given(st.lists(_PIECES, max_size=40).map("".join))
def test_any_text_is_read_or_refused_with_its_line(text: str) -> None:
    try:
        load(text)
    except YamlError as exc:
        assert str(exc).startswith(f"line {exc.line}: ")
        assert 1 <= exc.line <= text.count("\n") + text.count("\r") + 1


def _has_dates_or_base60(text: str, value: Any) -> bool:
    if isinstance(value, datetime.date):
        return True
    if isinstance(value, dict):
        return any(_has_dates_or_base60(text, k) or _has_dates_or_base60(text, v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_dates_or_base60(text, v) for v in value)
    return isinstance(value, int | float) and ":" in text


# ------------------------------------------------------------------ what it refuses


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: [x, y\nb: 1\n", "line 3: expected ',' or ']' in the flow sequence opened on line 1 (got the end of "
                             "the file)"),
        ("a: {x: 1\n", "line 2: expected ',' or '}' in the flow mapping opened on line 1 (got the end of the file)"),
        ("a: [1,,2]\n", "line 1: an empty entry (',' with nothing before it) in a flow collection"),
        ('a: "bad \\q"\n', 'line 1: unknown escape "\\\\q" in a double-quoted string; write a backslash as \\\\'),
        ('a: "\\x4"\n', 'line 1: bad escape "\\\\x4\\"" in a double-quoted string; \\x takes 2 hexadecimal digits'),
        ("a: 'open\nb: 1\n", "line 1: unterminated single-quoted string (the file ends inside it)"),
        ('a: "x" y\n', 'line 1: unexpected text after a quoted string (got "y")'),
        ("a: b: c\n", 'line 1: a mapping cannot start on the line of its key (got "b: c"); quote the value, or '
                      "start the mapping on the next line"),
        ("a: one\n  two: 2\n", "line 2: a ': ' inside a plain value (got \"two: 2\"); quote the value, or start "
                               "the mapping on the next line"),
        ("a: 1\n- b\n", "line 2: a sequence item ('- ') where a mapping key was expected; indent the item under "
                        "its key or add the key"),
        ("a:\n\tb: 1\n", "line 2: tab in indentation; YAML indents with spaces only"),
        ("a:\n  b: 1\n c: 2\n", 'line 3: unexpected indentation "c: 2" (1 space where 0 or fewer fit; a value '
                                "cannot continue on a line that is deeper than its key unless it is quoted)"),
        ("a: b\n  # c\n  d\n", 'line 3: unexpected indentation "d" (2 spaces where 0 or fewer fit; a value '
                               "cannot continue on a line that is deeper than its key unless it is quoted)"),
        ("a: 1\njust text\n", "line 2: expected 'key: value' (got \"just text\")"),
        ("- a\nb: 1\n", 'line 2: unexpected content "b: 1" (its indentation matches no mapping or sequence '
                        "above it)"),
        ("a: 1\n---\nb: 2\n", "line 2: a second document ('---'); a kubeconfig is one document"),
        ("a: 1\n...\nb: 2\n", "line 3: content after the end of the document ('...'); a kubeconfig is one document"),
        ("%YAML 1.2\na: 1\n", "line 2: a directive must be followed by the document start '---'"),
        ('"a\n--- b"\n', "line 1: a document marker inside a quoted string; close the quote first"),
        ("a: *nothing\n", "line 1: unknown alias \"*nothing\"; an alias refers to an earlier '&anchor'"),
        ("a: |x\n  t\n", "line 1: bad block scalar header \"x\"; expected e.g. '|', '|-', '>+' or '|2'"),
        ("{[a]: 1}\n", "line 1: a mapping or sequence as a key is not supported"),
        ("[a]: 1\n", 'line 1: unexpected text after a flow collection (got ": 1")'),
        ("a: @x\n", "line 1: a plain value cannot start with '@' (got \"@x\"); quote it"),
        ("a: ]\n", "line 1: a plain value cannot start with ']' (got \"]\"); quote it"),
        ("<<: 1\n", "line 1: a merge key ('<<') takes a mapping or a list of mappings"),
    ],
)
def test_bad_yaml_is_refused_with_its_line_and_what_to_do(text: str, message: str) -> None:
    with pytest.raises(YamlError) as info:
        load(text)
    assert str(info.value) == message
    with pytest.raises(yaml.YAMLError):  # PyYAML refuses each of them too
        yaml.safe_load(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("%FOO x\n---\na: 1\n", 'line 1: unknown directive "%FOO x"; only %YAML and %TAG exist'),
        ("a: &x\n  - *x\n", "line 2: unknown alias \"*x\"; an alias refers to an earlier '&anchor'"),
        ("a: !!binary aGk=\n", 'line 1: the tag "!!binary" is not supported; plain values are typed as kubectl '
                               "types them (only !, !!str, !!map and !!seq are accepted)"),
    ],
)
def test_yaml_that_pyyaml_reads_but_kubectl_refuses_or_no_kubeconfig_holds_is_refused(text: str, message: str) -> None:
    """go-yaml (kubectl) refuses unknown directives and recursive aliases; !!binary would
    make bytes, which no kubeconfig field takes."""
    yaml.safe_load(text)
    with pytest.raises(YamlError) as info:
        load(text)
    assert str(info.value) == message


def test_a_repeated_key_keeps_its_last_value_as_kubectl_and_pyyaml_do() -> None:
    text = "token: old\ntoken: new\nctx: {user: a, user: b}\n"
    assert load(text) == yaml.safe_load(text) == {"token": "new", "ctx": {"user": "b"}}


DEPTH_MESSAGE = "the value is nested more than 32 levels deep; at most 32 levels of objects and lists are accepted"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("x: " + "[" * 33 + "]" * 33 + "\n", 1),
        ("a: " + "[a: " * 5000, 1),  # unclosed and far deeper than the interpreter's recursion limit
        ("a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 40)), 33),
        ("".join("  " * i + "- \n" for i in range(2000)), 33),
        ("a: &a " + "[" * 30 + "x" + "]" * 30 + "\nb: [[[[*a]]]]\n", 3),  # through an alias
    ],
)
def test_nesting_beyond_the_shared_depth_limit_is_refused_before_any_deep_recursion(text: str, line: int) -> None:
    with pytest.raises(YamlError) as info:
        load(text)
    assert str(info.value) == f"line {line}: {DEPTH_MESSAGE}"


@pytest.mark.parametrize(("text", "digits"), [("a: " + "1" * 101, 101), ("a: [-" + "7" * 5000 + "]", 5000),
                                             ("\n" + "9" * 200 + ": x", 200)])
def test_an_integer_longer_than_the_shared_limit_is_refused_with_its_line(text: str, digits: int) -> None:
    with pytest.raises(YamlError) as info:
        load(text)
    line = 2 if text.startswith("\n") else 1
    shown = text.split(": ")[0].strip() if text.startswith("\n") else text[3:].lstrip("[-")
    assert str(info.value) == (f"line {line}: a number has {digits} digits ({shown[:12]}...); at most 100 digits "
                               "are accepted; quote it if it is text")


def test_a_quoted_long_number_is_text() -> None:
    assert load("token: '" + "1" * 500 + "'") == {"token": "1" * 500}


def test_a_billion_laughs_is_refused_by_the_expansion_limit() -> None:
    text = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{n}: &{n} [{', '.join(['*' + p] * 10)}]\n" for p, n in zip("abcde", "bcdef", strict=True))
    with pytest.raises(YamlError) as info:
        load(text)
    assert str(info.value) == (f"line 5: the document holds more than {MAX_NODES} values (aliases expand to "
                               "copies); a kubeconfig holds a few hundred")
