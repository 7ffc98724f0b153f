"""plugin.model.selection: the network-selection annotation, read the same way by webhook and plugin.

Every rule has a passing case and a failing case; failing cases assert the exact field
path and the part of the message that carries the bad value and the fix.
"""

from __future__ import annotations

import json
import subprocess
import sys
import types
from typing import Any

import pytest

from plugin.model.problems import Findings, Problem
from plugin.model.selection import (
    CLUSTER_INTERFACE,
    DEFAULT_NETWORK_ANNOTATION,
    NETWORKS_ANNOTATION,
    Bandwidth,
    PortMapping,
    Selection,
    SelectionResult,
    format_networks,
    parse_default_network,
    parse_networks,
)

P = "metadata.annotations[k8s.v1.cni.cncf.io/networks]"
D = "metadata.annotations[v1.multus-cni.io/default-network]"
NS = "podns"


def parse(value: str | None, **kwargs: Any) -> SelectionResult:
    return parse_networks(value, NS, **kwargs)


def parse_one(element: dict[str, Any]) -> SelectionResult:
    return parse(json.dumps([element]))


def only_error(result: SelectionResult) -> Problem:
    assert len(result.errors) == 1, result.errors
    return result.errors[0]


def only_warning(result: SelectionResult) -> Problem:
    assert len(result.warnings) == 1, result.warnings
    return result.warnings[0]


def refs(result: SelectionResult) -> list[tuple[str, str]]:
    return [(s.ref, s.interface) for s in result.selections]


def clean(result: SelectionResult) -> SelectionResult:
    assert result.errors == (), result.errors
    assert result.warnings == (), result.warnings
    return result


# ------------------------------------------------------------------ absent, empty, form


def test_an_absent_annotation_selects_nothing_and_has_no_problems() -> None:
    result = parse(None)
    assert result == SelectionResult((), (), (), "absent")
    assert result.ok
    assert result.findings == Findings()


@pytest.mark.parametrize("value", ["", "   ", "\t\n"])
def test_an_empty_annotation_selects_no_extra_network_with_a_warning_to_remove_it(value: str) -> None:
    # Multus: "" is "no kubernetes network found", i.e. the cluster network only; Helm
    # renders "" when a chart asks for no extra network (issue 12).
    result = parse(value)
    assert result.ok and result.selections == () and result.form == "absent"
    problem = only_warning(result)
    assert problem.path == P
    assert problem.message == (
        f"is empty (got {json.dumps(value)}), so it selects no extra network and the pod gets the "
        "cluster network only (plus any default networks); remove the annotation, or list networks "
        'as "net-a,other-ns/net-b@net2" or as JSON [{"name":"net-a"}]'
    )


def test_a_value_without_brackets_or_quotes_is_the_comma_form() -> None:
    assert parse("net-a").form == "short"


@pytest.mark.parametrize("value", ['[{"name":"a"}]', '{"name":"a"}', '"a"'])
def test_a_value_with_a_bracket_brace_or_quote_is_the_json_form(value: str) -> None:
    assert parse(value).form == "json"


def test_a_comma_form_with_a_quote_is_read_as_json_as_multus_does() -> None:
    problem = only_error(parse('net1,"net2"'))
    assert problem.path == P
    assert problem.message.startswith("is not valid JSON: Expecting value at line 1 column 1")
    assert 'in the comma form "net-a,other-ns/net-b@net2" (no "[", "{" or \'"\')' in problem.message


def test_the_result_exposes_ok_and_findings() -> None:
    result = parse("a,,b")
    assert not result.ok
    assert result.findings == Findings(result.errors, result.warnings)


def test_a_non_string_value_from_an_untyped_caller_is_an_error_not_a_crash() -> None:
    problem = only_error(parse_networks(5, NS))  # type: ignore[arg-type]
    assert problem.path == P
    assert problem.message.startswith("must be a string (got number 5)")


# ------------------------------------------------------------------ comma form


def test_the_seed_single_network_resolves_in_the_pod_namespace() -> None:
    result = clean(parse("macvlan-conf"))
    assert result.selections == (Selection("macvlan-conf", NS, "net1", False, False, 0),)


def test_the_seed_two_networks_with_a_space_get_net1_and_net2() -> None:
    result = clean(parse("macvlan-conf, bridge-conf"))
    assert refs(result) == [("podns/macvlan-conf", "net1"), ("podns/bridge-conf", "net2")]
    assert [s.index for s in result.selections] == [0, 1]


def test_the_seed_cross_namespace_reference_keeps_its_namespace() -> None:
    (sel,) = clean(parse("other-namespace/macvlan-conf")).selections
    assert (sel.namespace, sel.name, sel.namespace_given) == (
        "other-namespace",
        "macvlan-conf",
        True,
    )
    assert sel.ref == "other-namespace/macvlan-conf"


def test_the_nad_client_item_with_namespace_and_interface_is_read_when_eth0_is_free() -> None:
    (sel,) = clean(parse("ns1/net1@eth0", reserved_interfaces=())).selections
    assert (sel.namespace, sel.name, sel.interface, sel.interface_requested) == (
        "ns1",
        "net1",
        "eth0",
        True,
    )


def test_the_nad_client_item_asking_for_eth0_is_rejected_because_the_cluster_uses_it() -> None:
    problem = only_error(parse("ns1/net1@eth0"))
    assert problem.path == f"{P}[0].interface"
    assert problem.message.startswith(
        'is already used by the cluster network (the runtime\'s CNI_IFNAME) (got "eth0"); '
        'choose another name, e.g. "net1"'
    )


def test_the_nad_client_items_are_trimmed() -> None:
    result = clean(parse(" net1 , ns2/net2 "))
    assert refs(result) == [("podns/net1", "net1"), ("ns2/net2", "net2")]


def test_an_interface_with_an_underscore_is_accepted_by_linux_rules_unlike_the_nad_client() -> None:
    (sel,) = clean(parse("net1@my_interface")).selections
    assert sel.interface == "my_interface"


def test_the_nad_client_item_with_two_slashes_is_rejected_with_the_item_form() -> None:
    problem = only_error(parse("a/b/c"))
    assert problem.path == f"{P}[0]"
    assert problem.message == (
        "has more than one '/' (got \"a/b/c\"); write each item as "
        '[namespace/]name[@interface], e.g. "other-ns/net-b@net2"'
    )


def test_the_nad_client_item_with_two_ats_is_rejected_with_the_item_form() -> None:
    problem = only_error(parse("net1@a@b"))
    assert problem.path == f"{P}[0]"
    assert problem.message.startswith(
        "has more than one '@' (got \"net1@a@b\"); write each item as "
    )


def test_an_at_before_the_slash_is_rejected_with_the_item_form() -> None:
    problem = only_error(parse("net1@a/b"))
    assert problem.path == f"{P}[0]"
    assert problem.message.startswith("has '@' before '/' (got \"net1@a/b\"); write each item as ")


def test_the_nad_client_trailing_comma_is_an_empty_item_error() -> None:
    result = parse("net1,")
    problem = only_error(result)
    assert problem.path == f"{P}[1]"
    assert problem.message == (
        'is an empty item, from a trailing comma (got "net1,"); remove the extra comma'
    )
    assert refs(result) == [("podns/net1", "net1")]  # best effort, not for use


@pytest.mark.parametrize(
    ("value", "index", "where"),
    [("a,,b", 1, "two commas in a row"), (",a", 0, "a leading comma"), ("a, ,b", 1, "two commas")],
)
def test_an_empty_item_says_where_the_extra_comma_is(value: str, index: int, where: str) -> None:
    problem = only_error(parse(value))
    assert problem.path == f"{P}[{index}]"
    assert f"is an empty item, from {where}" in problem.message
    assert f"(got {json.dumps(value)})" in problem.message


@pytest.mark.parametrize(
    ("value", "field", "hint"),
    [
        ("/net1", "namespace", "write the namespace before '/', or leave out the '/'"),
        ("ns/", "name", "write each item as [namespace/]name[@interface]"),
        ("@eth1", "name", "write each item as [namespace/]name[@interface]"),
        ("net1@", "interface", "write an interface name after '@', or leave out the '@'"),
        ("ns / @ if1", "name", "write each item as"),
    ],
)
def test_an_empty_part_of_an_item_is_an_error_naming_the_part(
    value: str, field: str, hint: str
) -> None:
    problem = only_error(parse(value))
    assert problem.path == f"{P}[0].{field}"
    assert problem.message.startswith(f"is empty (got {json.dumps(value.strip())}); ")
    assert hint in problem.message


def test_the_parts_of_an_item_are_trimmed() -> None:
    (sel,) = clean(parse("ns1 / net-a @ if1")).selections
    assert (sel.namespace, sel.name, sel.interface) == ("ns1", "net-a", "if1")


@pytest.mark.parametrize(
    ("value", "field", "bad"),
    [
        (
            "Other/net",
            "namespace",
            "\"Other\" is not a valid namespace (a DNS-1123 label: it contains uppercase 'O')",
        ),
        (
            "net_1",
            "name",
            "\"net_1\" is not a valid network name (a DNS-1123 label: it contains '_')",
        ),
        (
            "my.net",
            "name",
            "\"my.net\" is not a valid network name (a DNS-1123 label: it contains '.')",
        ),
        ("net1@a:b", "interface", "\"a:b\" is not a valid interface name (contains ':')"),
        ("net1@abcdefghijklmnop", "interface", "is not a valid interface name (16 bytes long)"),
    ],
)
def test_an_invalid_part_of_an_item_is_rejected_with_the_rule(
    value: str, field: str, bad: str
) -> None:
    problem = only_error(parse(value))
    assert problem.path == f"{P}[0].{field}"
    assert bad in problem.message
    assert "; use " in problem.message


def test_an_interface_of_fifteen_bytes_is_accepted() -> None:
    (sel,) = clean(parse("net1@abcdefghijklmno")).selections
    assert sel.interface == "abcdefghijklmno"


def test_the_same_network_listed_twice_gives_two_attachments() -> None:
    result = clean(parse("net-a,net-a"))
    assert refs(result) == [("podns/net-a", "net1"), ("podns/net-a", "net2")]


def test_errors_on_several_items_are_all_reported_and_clean_items_kept() -> None:
    result = parse("A,b/c/d,ok")
    assert [p.path for p in result.errors] == [f"{P}[0].name", f"{P}[1]"]
    # "A" still takes net1: generated names do not shift when an earlier item is fixed.
    assert refs(result) == [("podns/ok", "net2")]


# ------------------------------------------------------------------ JSON form: the list


def test_the_seed_json_list_with_interfaces_is_read() -> None:
    value = (
        '[{ "name": "macvlan-conf", "interface": "data1" }, '
        '{ "name": "bridge-conf", "interface": "mgmt0" }]'
    )
    result = clean(parse(value))
    assert result.form == "json"
    assert refs(result) == [("podns/macvlan-conf", "data1"), ("podns/bridge-conf", "mgmt0")]
    assert all(s.interface_requested for s in result.selections)


def test_the_seed_json_list_asking_for_eth1_and_eth2_is_read() -> None:
    value = '[{"name":"mgmt-net","interface":"eth1"},{"name":"data-net","interface":"eth2"}]'
    assert refs(clean(parse(value))) == [("podns/mgmt-net", "eth1"), ("podns/data-net", "eth2")]


def test_invalid_json_is_rejected_with_the_decoder_position_and_the_shape() -> None:
    problem = only_error(parse('[{"name": "a",}]'))
    assert problem.path == P
    assert problem.message.startswith(
        "is not valid JSON: Expecting property name enclosed in double quotes at line 1 column 15"
    )
    assert 'list networks as JSON [{"name":"net-a"}]' in problem.message


def test_the_nad_client_bare_object_is_rejected_with_a_wrap_hint() -> None:
    problem = only_error(parse('{"name":"net1"}'))
    assert problem.path == P
    assert problem.message == (
        'is a JSON object, not a list (got "{\\"name\\":\\"net1\\"}"); wrap it in [ ]: [{"name": "net1"}]'
    )


@pytest.mark.parametrize(("value", "kind"), [('"net1"', "string"), ("[1]", None)])
def test_json_that_is_not_a_list_of_objects_is_rejected(value: str, kind: str | None) -> None:
    problem = only_error(parse(value))
    if kind is None:
        assert problem.path == f"{P}[0]"
        assert problem.message.startswith("must be an object (got number 1); ")
    else:
        assert problem.path == P
        assert problem.message.startswith(f"is a JSON {kind}, not a list (got ")


def test_a_string_element_is_rejected_with_the_object_it_should_be() -> None:
    problem = only_error(parse('["net1"]'))
    assert problem.path == f"{P}[0]"
    assert problem.message == (
        'must be an object (got string "net1"); write each network as an object: {"name": "net1"}'
    )


def test_an_empty_json_list_is_a_warning_not_an_error() -> None:
    result = parse("[]")
    assert result.ok and result.selections == ()
    problem = only_warning(result)
    assert problem.path == P
    assert (
        problem.message
        == 'is an empty list (got "[]"); it selects no network: remove the annotation'
    )


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("[NaN]", "NaN is not a JSON value"),
        ('[{"name":"a","cni-args":{"x":Infinity}}]', "Infinity is not a JSON value"),
        ('[{"name":"a","cni-args":{"x":-Infinity}}]', "-Infinity is not a JSON value"),
        ('[{"name":"a","cni-args":{"x":1e400}}]', "number 1e400 is out of range"),
    ],
)
def test_numbers_python_accepts_but_json_does_not_are_invalid_json(value: str, why: str) -> None:
    problem = only_error(parse(value))
    assert problem.path == P
    assert problem.message.startswith(f"is not valid JSON: {why} (got ")


def test_deeply_nested_json_is_rejected_without_a_crash() -> None:
    for value in ["[" * 100_000, '[{"name":"a","cni-args":' + "[" * 40 + "]" * 40 + "}]"]:
        problem = only_error(parse(value))
        assert problem.path == P
        assert problem.message.startswith(
            "is nested more than 32 levels deep; at most 32 levels of objects and lists are accepted (got "
        )


@pytest.mark.parametrize("depth", [33, 600, 5000])
def test_a_repeated_key_does_not_hide_a_deep_value_from_the_depth_guard(depth: int) -> None:
    # Issue 12 (b): the decoder keeps the last "x" ({}), the first one was ~600 deep and the
    # repeated-key warning used to walk it recursively (RecursionError, HTTP 500).
    value = '[{"name":"a","cni-args":{"x":' + "[" * depth + "]" * depth + ',"x":{}}}]'
    for result in (parse(value), parse_default_network(value, "kube-system")):
        problem = only_error(result)
        assert problem.message.startswith("is nested more than 32 levels deep; at most 32 levels")
        assert result.selections == ()


def test_a_value_nested_exactly_to_the_limit_is_read() -> None:
    inner = "[" * 29 + "]" * 29  # list 1, element 2, cni-args 3, "x" 4..32
    result = parse('[{"name":"a","cni-args":{"x":' + inner + "}}]")
    assert result.ok, result.errors
    one_more = "[" * 30 + "]" * 30
    assert not parse('[{"name":"a","cni-args":{"x":' + one_more + "}}]").ok


def test_an_unpaired_surrogate_is_shown_escaped_so_the_message_can_be_sent() -> None:
    problem = only_error(parse('[{"name":"\\ud800"}]'))
    assert problem.path == f"{P}[0].name"
    assert '"\\ud800"' in problem.message
    problem.message.encode("utf-8")  # raises UnicodeEncodeError when not escaped
    warning = only_warning(parse('[{"name":"a","\\udc00":1}]'))
    assert warning.path == f'{P}[0]["\\udc00"]'


def test_a_repeated_key_warns_and_the_last_value_wins_as_in_go() -> None:
    result = parse('[{"name":"a","mac":"02:00:00:00:00:01","mac":"02:00:00:00:00:02"}]')
    problem = only_warning(result)
    assert problem.path == f"{P}[0].mac"
    assert problem.message == (
        'is given 2 times in one object (got "02:00:00:00:00:01", then "02:00:00:00:00:02"); '
        "the last one is used (as Kubernetes and Multus decode JSON): keep only one"
    )
    assert result.selections[0].mac == "02:00:00:00:00:02"


def test_a_repeated_key_inside_cni_args_is_found_too() -> None:
    problem = only_warning(parse('[{"name":"a","cni-args":{"x":{"y":1,"y":2}}}]'))
    assert problem.path == f"{P}[0].cni-args.x.y"


# ------------------------------------------------------------------ JSON form: name, namespace


def test_a_json_element_without_namespace_uses_the_pod_namespace() -> None:
    (sel,) = clean(parse_one({"name": "net-a"})).selections
    assert (sel.namespace, sel.namespace_given) == (NS, False)


def test_an_empty_json_namespace_means_the_pod_namespace() -> None:
    (sel,) = clean(parse_one({"name": "net-a", "namespace": ""})).selections
    assert (sel.namespace, sel.namespace_given) == (NS, False)


def test_a_json_namespace_is_used_and_remembered_as_given() -> None:
    (sel,) = clean(parse_one({"name": "net-a", "namespace": "ns2"})).selections
    assert (sel.ref, sel.namespace_given) == ("ns2/net-a", True)


def test_a_json_element_without_name_is_rejected_as_required() -> None:
    problem = only_error(parse_one({"interface": "net1"}))
    assert problem.path == f"{P}[0].name"
    assert problem.message.startswith('is required (got {"interface": "net1"}); use the name of a')


def test_an_empty_json_name_is_rejected() -> None:
    problem = only_error(parse_one({"name": ""}))
    assert problem.path == f"{P}[0].name"
    assert problem.message.startswith('is required but empty (got ""); use the name of a')


@pytest.mark.parametrize(
    ("element", "field", "part"),
    [
        (
            {"name": "yo!"},
            "name",
            "\"yo!\" is not a valid network name (a DNS-1123 label: it contains '!')",
        ),
        ({"name": "a", "namespace": "Ns"}, "namespace", '"Ns" is not a valid namespace'),
        (
            {"name": 5},
            "name",
            "must be a string (got number 5); use the name of a NetworkAttachmentDefinition",
        ),
        (
            {"name": "a", "namespace": ["x"]},
            "namespace",
            'must be a string (got list ["x"]); use the namespace',
        ),
    ],
)
def test_an_invalid_json_name_or_namespace_is_rejected(
    element: dict[str, Any], field: str, part: str
) -> None:
    problem = only_error(parse_one(element))
    assert problem.path == f"{P}[0].{field}"
    assert part in problem.message


# ------------------------------------------------------------------ JSON form: interface


def test_a_json_interface_is_requested() -> None:
    (sel,) = clean(parse_one({"name": "a", "interface": "data_1"})).selections
    assert (sel.interface, sel.interface_requested) == ("data_1", True)


@pytest.mark.parametrize(
    ("interface", "part"),
    [
        ("data/1", "\"data/1\" is not a valid interface name (contains '/')"),
        ("a b", '"a b" is not a valid interface name (contains whitespace)'),
        ("..", "\"..\" is not a valid interface name ('..' is reserved)"),
        ("", 'is empty (got ""); use an interface name such as "net1"'),
        (7, "must be a string (got number 7); use an interface name"),
    ],
)
def test_an_invalid_json_interface_is_rejected(interface: Any, part: str) -> None:
    problem = only_error(parse_one({"name": "a", "interface": interface}))
    assert problem.path == f"{P}[0].interface"
    assert part in problem.message


def test_the_legacy_interface_request_is_used_with_a_deprecation_warning() -> None:
    result = parse_one({"name": "a", "interfaceRequest": "data1"})
    assert result.ok
    assert result.selections[0].interface == "data1"
    assert result.selections[0].interface_requested
    problem = only_warning(result)
    assert problem.path == f"{P}[0].interfaceRequest"
    assert (
        problem.message
        == 'is deprecated (got "data1"); use "interface" instead: {"interface": "data1"}'
    )


def test_the_legacy_interface_request_fills_an_empty_interface() -> None:
    result = parse_one({"name": "a", "interface": "", "interfaceRequest": "data1"})
    assert result.ok and result.selections[0].interface == "data1"


def test_a_legacy_interface_request_that_differs_is_ignored_with_a_warning() -> None:
    result = parse_one({"name": "a", "interface": "x1", "interfaceRequest": "y1"})
    assert result.selections[0].interface == "x1"
    problem = only_warning(result)
    assert problem.path == f"{P}[0].interfaceRequest"
    assert problem.message.startswith(
        'is ignored because interface is set (got "y1", interface "x1")'
    )


def test_a_legacy_interface_request_equal_to_interface_is_only_deprecated() -> None:
    problem = only_warning(parse_one({"name": "a", "interface": "x1", "interfaceRequest": "x1"}))
    assert problem.message == 'is deprecated and repeats interface (got "x1"); remove it'


def test_an_invalid_legacy_interface_request_is_rejected_at_its_own_key() -> None:
    problem = only_error(parse_one({"name": "a", "interfaceRequest": "a:b"}))
    assert problem.path == f"{P}[0].interfaceRequest"
    assert '"a:b" is not a valid interface name' in problem.message


# ------------------------------------------------------------------ interface naming


def test_generated_interfaces_skip_names_requested_later_in_the_list() -> None:
    result = clean(parse("a,b@net1,c"))
    assert refs(result) == [("podns/a", "net2"), ("podns/b", "net1"), ("podns/c", "net3")]


def test_generated_interfaces_count_only_unnamed_elements_unlike_multus() -> None:
    # Multus numbers by delegate position and gives foo, net2; netplex gives foo, net1.
    assert refs(clean(parse("a@foo,b"))) == [("podns/a", "foo"), ("podns/b", "net1")]


def test_generated_interfaces_skip_reserved_names() -> None:
    result = clean(parse("a,b", reserved_interfaces=("eth0", "net1")))
    assert [s.interface for s in result.selections] == ["net2", "net3"]


def test_a_repeated_interface_is_rejected_naming_the_first_element() -> None:
    result = parse(
        '[{"name":"a","interface":"data1"},{"name":"b"},{"name":"c","interface":"data1"}]'
    )
    problem = only_error(result)
    assert problem.path == f"{P}[2].interface"
    assert problem.message == (
        'is already requested by element [0] (got "data1"); give each attachment its own '
        'interface, e.g. "net1", or leave the key out to get a generated one'
    )
    assert refs(result) == [("podns/a", "data1"), ("podns/b", "net1")]


def test_a_reserved_interface_other_than_eth0_is_rejected_as_reserved() -> None:
    problem = only_error(parse("a@net9", reserved_interfaces=("eth0", "net9")))
    assert problem.path == f"{P}[0].interface"
    assert problem.message.startswith(
        'is reserved: the pod already has an interface with this name (got "net9"); choose another name'
    )


def test_the_loopback_interface_cannot_be_requested() -> None:
    problem = only_error(parse("a@lo", reserved_interfaces=()))
    assert problem.path == f"{P}[0].interface"
    assert problem.message.startswith(
        'is the pod\'s loopback interface, which always exists (got "lo")'
    )


def test_an_element_with_errors_still_keeps_its_interface_from_being_generated() -> None:
    result = parse('[{"name":"a"},{"name":"B","interface":"net1"}]')
    assert [p.path for p in result.errors] == [f"{P}[1].name"]
    assert refs(result) == [("podns/a", "net2")]


# ------------------------------------------------------------------ ips, mac, guid


def test_ips_with_and_without_prefix_are_kept_in_order() -> None:
    (sel,) = clean(parse_one({"name": "a", "ips": ["10.1.1.11/24", "2001:db8::11"]})).selections
    assert sel.ips == ("10.1.1.11/24", "2001:db8::11")


def test_an_empty_ips_list_is_rejected() -> None:
    problem = only_error(parse_one({"name": "a", "ips": []}))
    assert problem.path == f"{P}[0].ips"
    assert problem.message.startswith("is an empty list (got []); use a list of addresses")


def test_a_bad_address_in_ips_is_rejected_at_its_position() -> None:
    problem = only_error(
        parse_one({"name": "a", "ips": ["10.0.0.1/24", "10.0.0.2/24", "10.0.0.300"]})
    )
    assert problem.path == f"{P}[0].ips[2]"
    assert problem.message.startswith('"10.0.0.300" is not a valid IP address; use an IPv4 address')


def test_a_single_ip_string_is_rejected_with_the_list_it_should_be() -> None:
    problem = only_error(parse_one({"name": "a", "ips": "10.0.0.1/24"}))
    assert problem.path == f"{P}[0].ips"
    assert problem.message == (
        'must be a list of strings (got string "10.0.0.1/24"); write it as a list: ["10.0.0.1/24"]'
    )


def test_a_non_string_in_ips_is_rejected() -> None:
    problem = only_error(parse_one({"name": "a", "ips": [10]}))
    assert problem.path == f"{P}[0].ips[0]"
    assert problem.message.startswith("must be a string (got number 10); ")


def test_a_valid_mac_is_kept() -> None:
    (sel,) = clean(parse_one({"name": "a", "mac": "02:00:00:00:00:01"})).selections
    assert sel.mac == "02:00:00:00:00:01"


def test_the_nad_client_bad_mac_is_rejected_with_the_rule() -> None:
    result = parse('[{"name":"net1","ips":["10.0.0.1/24"],"mac":"zz"}]')
    problem = only_error(result)
    assert problem.path == f"{P}[0].mac"
    assert problem.message.startswith('"zz" is not a valid MAC address')
    assert "02:00:00:00:00:01" in problem.message


@pytest.mark.parametrize(
    ("mac", "message"),
    [
        (5, "must be a string (got number 5); use a 6-byte unicast Ethernet address"),
        (None, "must be a string (got null); remove the key, or use a 6-byte"),
    ],
)
def test_a_mac_of_the_wrong_type_names_the_type_seen(mac: Any, message: str) -> None:
    problem = only_error(parse_one({"name": "a", "mac": mac}))
    assert problem.path == f"{P}[0].mac"
    assert problem.message.startswith(message)


def test_an_infiniband_guid_is_kept() -> None:
    element = {"name": "a", "infiniband-guid": "00:11:22:33:44:55:66:77"}
    (sel,) = clean(parse_one(element)).selections
    assert sel.infiniband_guid == "00:11:22:33:44:55:66:77"


def test_a_six_byte_infiniband_guid_is_rejected() -> None:
    problem = only_error(parse_one({"name": "a", "infiniband-guid": "02:00:00:00:00:01"}))
    assert problem.path == f"{P}[0].infiniband-guid"
    assert problem.message.startswith(
        '"02:00:00:00:00:01" is not a valid InfiniBand GUID (6 bytes, not 8)'
    )


# ------------------------------------------------------------------ default-route


def test_default_route_absent_empty_and_given_are_told_apart() -> None:
    value = '[{"name":"a"},{"name":"b","default-route":["10.0.0.1","2001:db8::1"]}]'
    a, b = clean(parse(value)).selections
    assert a.default_route is None
    assert b.default_route == ("10.0.0.1", "2001:db8::1")
    (c,) = clean(parse_one({"name": "c", "default-route": []})).selections
    assert c.default_route == ()


def test_a_gateway_with_a_prefix_is_rejected() -> None:
    problem = only_error(parse_one({"name": "a", "default-route": ["10.0.0.1/24"]}))
    assert problem.path == f"{P}[0].default-route[0]"
    assert problem.message == (
        '"10.0.0.1/24" is not a valid gateway (has a prefix length); use the address alone, e.g. "10.0.0.1"'
    )


def test_default_route_on_two_elements_is_rejected_at_the_later_ones() -> None:
    value = json.dumps(
        [
            {"name": "a"},
            {"name": "b", "default-route": ["10.0.0.1"]},
            {"name": "c", "default-route": []},
            {"name": "d", "default-route": ["10.0.1.1"]},
        ]
    )
    result = parse(value)
    assert [p.path for p in result.errors] == [f"{P}[2].default-route", f"{P}[3].default-route"]
    assert result.errors[0].message.startswith(
        "is also set on element [1] (got []); only one network"
    )
    assert result.errors[1].message.startswith('is also set on element [1] (got ["10.0.1.1"])')


# ------------------------------------------------------------------ portMappings


def test_port_mappings_are_read_with_protocol_upper_cased_and_tcp_by_default() -> None:
    element = {
        "name": "a",
        "portMappings": [
            {"hostPort": 8080, "containerPort": 80},
            {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "192.0.2.1"},
            {"hostPort": 1, "containerPort": 65535, "protocol": "Sctp"},
        ],
    }
    (sel,) = clean(parse_one(element)).selections
    assert sel.port_mappings == (
        PortMapping(8080, 80, "TCP"),
        PortMapping(5353, 53, "UDP", "192.0.2.1"),
        PortMapping(1, 65535, "SCTP"),
    )


@pytest.mark.parametrize(
    ("mappings", "path", "message"),
    [
        ([], "", "is an empty list (got []); use a list such as"),
        ({"hostPort": 1}, "", 'must be a list of objects (got object {"hostPort": 1}); '),
        ([8080], "[0]", "must be an object (got number 8080); "),
        (
            [{"containerPort": 80}],
            "[0].hostPort",
            'is required (got {"containerPort": 80}); give the port on the node, 1-65535',
        ),
        (
            [{"hostPort": 80}],
            "[0].containerPort",
            'is required (got {"hostPort": 80}); give the port in the pod',
        ),
        (
            [{"hostPort": 0, "containerPort": 80}],
            "[0].hostPort",
            "is out of range (got 0); give the port on the node, 1-65535",
        ),
        (
            [{"hostPort": 80, "containerPort": 65536}],
            "[0].containerPort",
            "is out of range (got 65536)",
        ),
        (
            [{"hostPort": True, "containerPort": 80}],
            "[0].hostPort",
            "must be an integer (got boolean true)",
        ),
        (
            [{"hostPort": 80.0, "containerPort": 80}],
            "[0].hostPort",
            "must be an integer (got number 80.0)",
        ),
        (
            [{"hostPort": "80", "containerPort": 80}],
            "[0].hostPort",
            'must be an integer (got string "80")',
        ),
        (
            [{"hostPort": 80, "containerPort": 80, "protocol": "http"}],
            "[0].protocol",
            'is not a supported protocol (got "http"); use "TCP", "UDP" or "SCTP"',
        ),
        (
            [{"hostPort": 80, "containerPort": 80, "protocol": 6}],
            "[0].protocol",
            "must be a string (got number 6)",
        ),
        (
            [{"hostPort": 80, "containerPort": 80, "hostIP": "1.2.3"}],
            "[0].hostIP",
            '"1.2.3" is not a valid host IP',
        ),
        (
            [{"hostPort": 80, "containerPort": 80, "hostIP": ""}],
            "[0].hostIP",
            'is empty (got ""); use an IP address of the node, or leave hostIP out',
        ),
    ],
)
def test_invalid_port_mappings_are_rejected(mappings: Any, path: str, message: str) -> None:
    problem = only_error(parse_one({"name": "a", "portMappings": mappings}))
    assert problem.path == f"{P}[0].portMappings{path}"
    assert problem.message.startswith(message)


def test_an_unknown_key_in_a_port_mapping_warns_with_a_suggestion() -> None:
    result = parse_one(
        {"name": "a", "portMappings": [{"hostPort": 1, "containerPort": 2, "hostIp": "x"}]}
    )
    assert result.ok
    problem = only_warning(result)
    assert problem.path == f"{P}[0].portMappings[0].hostIp"
    assert problem.message.startswith(
        'is an unknown key and is ignored (got "hostIp": "x"); did you mean "hostIP"?'
    )


# ------------------------------------------------------------------ bandwidth


def test_bandwidth_rates_and_bursts_are_read() -> None:
    element = {
        "name": "a",
        "bandwidth": {"ingressRate": 1000, "ingressBurst": 100, "egressRate": 5},
    }
    (sel,) = clean(parse_one(element)).selections
    assert sel.bandwidth == Bandwidth(ingress_rate=1000, ingress_burst=100, egress_rate=5)


@pytest.mark.parametrize(
    ("bandwidth", "path", "message"),
    [
        ([1], "", "must be an object (got list [1]); use an object such as"),
        (
            {"ingressRate": 0},
            ".ingressRate",
            "must be a positive integer, at most 9223372036854775807 (got 0)",
        ),
        (
            {"egressRate": -5},
            ".egressRate",
            "must be a positive integer, at most 9223372036854775807 (got -5)",
        ),
        ({"egressRate": 2**63}, ".egressRate", "must be a positive integer"),
        (
            {"ingressRate": True},
            ".ingressRate",
            "must be an integer (got boolean true); give it in bits per second",
        ),
        ({"ingressRate": 1.5}, ".ingressRate", "must be an integer (got number 1.5)"),
        (
            {"egressRate": 10, "ingressBurst": 5},
            ".ingressBurst",
            "is set without ingressRate (got 5); set ingressRate too",
        ),
        ({"egressBurst": 5}, ".egressBurst", "is set without egressRate (got 5)"),
    ],
)
def test_invalid_bandwidth_is_rejected(bandwidth: Any, path: str, message: str) -> None:
    problem = only_error(parse_one({"name": "a", "bandwidth": bandwidth}))
    assert problem.path == f"{P}[0].bandwidth{path}"
    assert problem.message.startswith(message)


def test_an_unknown_bandwidth_key_warns_with_a_suggestion() -> None:
    result = parse_one({"name": "a", "bandwidth": {"ingressRate": 1, "egresRate": 4}})
    assert result.ok
    problem = only_warning(result)
    assert problem.path == f"{P}[0].bandwidth.egresRate"
    assert problem.message.endswith('did you mean "egressRate"?')


def test_an_empty_bandwidth_warns_that_it_limits_nothing() -> None:
    result = parse_one({"name": "a", "bandwidth": {}})
    assert result.selections[0].bandwidth == Bandwidth()
    problem = only_warning(result)
    assert problem.path == f"{P}[0].bandwidth"
    assert problem.message.startswith("sets no limit (got {}); set ingressRate or egressRate")


# ------------------------------------------------------------------ cni-args, claims, deviceID


def test_cni_args_are_kept_as_an_immutable_copy() -> None:
    (sel,) = clean(parse_one({"name": "a", "cni-args": {"k": [1, {"x": None}]}})).selections
    assert isinstance(sel.cni_args, types.MappingProxyType)
    assert sel.cni_args == {"k": [1, {"x": None}]}
    with pytest.raises(TypeError):
        sel.cni_args["k"] = 2  # type: ignore[index]
    element = sel.to_element()
    element["cni-args"]["k"].append(3)
    assert sel.cni_args == {"k": [1, {"x": None}]}


def test_cni_args_given_as_a_plain_dict_are_frozen_too() -> None:
    args = {"k": [1]}
    sel = Selection("a", NS, "net1", False, False, 0, cni_args=args)
    args["k"].append(2)
    assert isinstance(sel.cni_args, types.MappingProxyType)
    assert sel.cni_args == {"k": [1]}


def test_cni_args_that_are_not_an_object_are_rejected() -> None:
    problem = only_error(parse_one({"name": "a", "cni-args": "k=v"}))
    assert problem.path == f"{P}[0].cni-args"
    assert problem.message.startswith('must be an object (got string "k=v"); use an object')


def test_an_ipam_claim_reference_is_kept() -> None:
    (sel,) = clean(parse_one({"name": "a", "ipam-claim-reference": "vm-a.net-a"})).selections
    assert sel.ipam_claim_reference == "vm-a.net-a"


def test_an_empty_ipam_claim_reference_is_rejected() -> None:
    problem = only_error(parse_one({"name": "a", "ipam-claim-reference": ""}))
    assert problem.path == f"{P}[0].ipam-claim-reference"
    assert problem.message.startswith('is empty (got ""); use the name of an IPAMClaim')


def test_ips_together_with_an_ipam_claim_reference_are_rejected_per_the_spec() -> None:
    result = parse('[{"name":"yo","ips":["10.0.0.1/24"],"ipam-claim-reference":"woop"}]')
    problem = only_error(result)
    assert problem.path == f"{P}[0].ipam-claim-reference"
    assert problem.message.startswith(
        'cannot be used together with ips (got "woop" and ips ["10.0.0.1/24"]); let the IPAM plugin'
    )


def test_the_nad_client_claim_table_row_gets_every_problem() -> None:
    result = parse('[{"name":"yo!","ips":["asd"],"ipam-claim-reference":"woop"}]')
    assert [p.path for p in result.errors] == [
        f"{P}[0].name",
        f"{P}[0].ips[0]",
        f"{P}[0].ipam-claim-reference",
    ]


def test_a_device_id_is_kept_and_its_type_checked() -> None:
    (sel,) = clean(parse_one({"name": "a", "deviceID": "0000:03:00.1"})).selections
    assert sel.device_id == "0000:03:00.1"
    problem = only_error(parse_one({"name": "a", "deviceID": 3}))
    assert problem.path == f"{P}[0].deviceID"
    assert problem.message.startswith("must be a string (got number 3); use a device ID string")


# ------------------------------------------------------------------ unknown keys


def test_an_unknown_key_warns_with_a_suggestion_and_is_kept() -> None:
    result = parse_one({"name": "a", "macc": "02:00:00:00:00:01"})
    assert result.ok
    problem = only_warning(result)
    assert problem.path == f"{P}[0].macc"
    assert problem.message == (
        'is an unknown key and is ignored by netplex (got "macc": "02:00:00:00:00:01"); did you mean "mac"?'
    )
    assert result.selections[0].extra == (("macc", "02:00:00:00:00:01"),)


def test_a_key_in_the_wrong_case_points_at_the_right_spelling() -> None:
    problem = only_warning(parse_one({"name": "a", "MAC": "02:00:00:00:00:01"}))
    assert problem.message.endswith(
        'did you mean "mac"? keys are case-sensitive in netplex '
        '(Multus\' Go decoder would have read "MAC" as "mac")'
    )


def test_an_unknown_key_far_from_any_known_key_lists_the_known_keys() -> None:
    problem = only_warning(parse_one({"name": "a", "zzzz": 1}))
    assert problem.message.endswith(
        "the keys netplex reads are name, namespace, interface, ips, mac, "
        "default-route, portMappings, bandwidth, cni-args, infiniband-guid, "
        "ipam-claim-reference, deviceID, interfaceRequest"
    )


def test_an_extension_key_with_a_dot_is_passed_through_with_a_warning() -> None:
    result = parse_one({"name": "a", "example.com/zone": {"z": 1}})
    problem = only_warning(result)
    assert problem.path == f'{P}[0]["example.com/zone"]'
    assert problem.message.startswith(
        'is an implementation extension (got "example.com/zone": {"z": 1})'
    )
    assert "passes it through unchanged" in problem.message
    (sel,) = result.selections
    assert sel.extra == (("example.com/zone", {"z": 1}),)
    assert sel.to_element() == {"name": "a", "example.com/zone": {"z": 1}}


# ------------------------------------------------------------------ paths


def test_a_caller_supplied_path_prefixes_every_problem() -> None:
    template = f"spec.template.metadata.annotations[{NETWORKS_ANNOTATION}]"
    result = parse_networks('[{"name":"a","ips":["x"]}]', NS, path=template)
    assert only_error(result).path == f"{template}[0].ips[0]"


def test_the_annotation_name_sets_the_default_path() -> None:
    result = parse_networks("A", NS, annotation="netplex.io/default-networks")
    assert only_error(result).path == "metadata.annotations[netplex.io/default-networks][0].name"


# ------------------------------------------------------------------ Selection, format_networks


def test_to_element_writes_only_what_the_user_set() -> None:
    (sel,) = clean(parse("a")).selections
    assert sel.to_element() == {"name": "a"}
    assert sel.short_form_ok


def test_to_element_uses_the_npwg_key_spellings() -> None:
    element = {
        "name": "a",
        "namespace": "ns2",
        "interface": "data1",
        "mac": "02:00:00:00:00:01",
        "default-route": ["10.0.0.1"],
        "portMappings": [
            {"hostPort": 80, "containerPort": 8080, "protocol": "UDP", "hostIP": "10.0.0.2"}
        ],
        "bandwidth": {"ingressRate": 10, "egressRate": 20, "egressBurst": 30},
        "cni-args": {"k": "v"},
        "infiniband-guid": "00:11:22:33:44:55:66:77",
        "ipam-claim-reference": "claim-a",
        "deviceID": "0000:03:00.1",
        "org.example.k": 1,
    }
    result = parse_one(element)
    assert result.ok
    assert result.selections[0].to_element() == element
    assert not result.selections[0].short_form_ok


def test_format_networks_writes_the_comma_form() -> None:
    result = clean(parse("a, ns2/b@data1 ,c@x"))
    assert format_networks(result.selections, "short") == "a,ns2/b@data1,c@x"


def test_format_networks_writes_compact_json() -> None:
    result = clean(parse("a,ns2/b@data1"))
    assert format_networks(result.selections, "json") == (
        '[{"name":"a"},{"name":"b","namespace":"ns2","interface":"data1"}]'
    )


def test_format_networks_refuses_the_comma_form_for_keys_only_json_carries() -> None:
    result = clean(parse_one({"name": "a", "ips": ["10.0.0.1/24"]}))
    with pytest.raises(
        ValueError, match=r"selection 0 \(podns/a\) cannot be written in the comma form"
    ):
        format_networks(result.selections, "short")


def test_an_interface_with_a_comma_or_at_needs_the_json_form() -> None:
    for interface in ("a,b", "a@b"):
        (sel,) = clean(parse_one({"name": "a", "interface": interface})).selections
        assert not sel.short_form_ok
        assert parse(format_networks([sel], "json")).selections == (sel,)


def test_format_networks_refuses_an_empty_comma_form_and_an_unknown_form() -> None:
    with pytest.raises(ValueError, match="remove the annotation"):
        format_networks([], "short")
    assert format_networks([], "json") == "[]"
    with pytest.raises(ValueError, match="form must be"):
        format_networks([], "yaml")  # type: ignore[arg-type]


def test_legacy_interface_request_is_written_back_as_interface() -> None:
    (sel,) = parse_one({"name": "a", "interfaceRequest": "data1"}).selections
    assert format_networks([sel], "short") == "a@data1"


# ------------------------------------------------------------------ default network


def test_the_default_network_is_one_network_in_the_default_namespace() -> None:
    result = clean(parse_default_network("cluster-net", "kube-system"))
    (sel,) = result.selections
    assert (sel.ref, sel.interface, sel.interface_requested) == (
        "kube-system/cluster-net",
        CLUSTER_INTERFACE,
        False,
    )
    assert sel.to_element() == {"name": "cluster-net"}


def test_the_default_network_reads_the_json_form_too() -> None:
    (sel,) = clean(
        parse_default_network('[{"name":"c","namespace":"n"}]', "kube-system")
    ).selections
    assert sel.ref == "n/c"


def test_an_empty_default_network_list_is_an_error_where_multus_panics() -> None:
    problem = only_error(parse_default_network("[]", "kube-system"))
    assert problem.path == D
    assert problem.message.startswith('names no network (got "[]"); name exactly one network')


def test_two_default_networks_are_rejected_with_the_count() -> None:
    problem = only_error(parse_default_network("a,b", "kube-system"))
    assert problem.path == D
    assert problem.message.startswith(
        'names 2 networks (got "a,b"); the cluster network is exactly one'
    )
    assert NETWORKS_ANNOTATION in problem.message


def test_a_default_network_element_that_is_not_an_object_still_counts() -> None:
    result = parse_default_network('[{"name":"a"},"b"]', "kube-system")
    assert [p.path for p in result.errors] == [f"{D}[1]", D]


def test_an_interface_on_the_default_network_is_ignored_with_a_warning() -> None:
    result = parse_default_network("ns/c@eth0", "kube-system")
    assert result.ok
    assert result.selections[0].interface == CLUSTER_INTERFACE
    assert not result.selections[0].interface_requested
    problem = only_warning(result)
    assert problem.path == f"{D}[0].interface"
    assert problem.message.startswith(
        'is ignored (got "eth0"); the cluster network always uses the runtime\'s interface (CNI_IFNAME'
    )


def test_an_empty_default_network_annotation_is_rejected() -> None:
    problem = only_error(parse_default_network(" ", "kube-system"))
    assert problem.path == D
    assert problem.message.startswith(
        'is empty (got " "); remove the annotation, or name one network'
    )


def test_the_default_network_path_can_be_given() -> None:
    path = f"spec.template.metadata.annotations[{DEFAULT_NETWORK_ANNOTATION}]"
    assert only_error(parse_default_network("A", "k", path=path)).path == f"{path}[0].name"


def test_an_absent_default_network_annotation_selects_nothing() -> None:
    assert parse_default_network(None, "kube-system") == SelectionResult((), (), (), "absent")


# ------------------------------------------------------------------ layering


def test_importing_selection_loads_only_the_standard_library() -> None:
    code = (
        "import sys; before = set(sys.modules); import plugin.model.selection; "
        "new = {m.split('.')[0] for m in set(sys.modules) - before}; "
        "print(sorted(m for m in new if m not in sys.stdlib_module_names and m not in ('plugin', '_distutils_hack')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_an_integer_past_the_digit_limit_is_invalid_json_with_a_message_for_users() -> None:
    # int() would raise with advice about sys.set_int_max_str_digits (issue 12)
    problem = only_error(parse('[{"name":"a","bandwidth":{"ingressRate":' + "9" * 5000 + "}}]"))
    assert problem.path == P
    assert problem.message.startswith(
        "is not valid JSON: a number has 5000 digits (999999999999...); at most 100 digits are accepted (got "
    )
