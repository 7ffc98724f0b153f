"""The CNI protocol module: error values, the CNI_* environment, CNI_ARGS, versions and
result conversion (cni.md §3, §7, §8; CNI-21, CNI-30, CNI-34..CNI-40, CNI-46)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugin.cni import protocol
from plugin.cni.protocol import CniError

ADD_ENV = {
    "CNI_COMMAND": "ADD",
    "CNI_CONTAINERID": "c0ffee",
    "CNI_NETNS": "/run/netns/pod",
    "CNI_IFNAME": "eth0",
    "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=prod;K8S_POD_NAME=web-0",
    "CNI_PATH": "/opt/cni/bin::/usr/lib/cni",
}


def env(**changes: str | None) -> dict[str, str]:
    out = dict(ADD_ENV)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def raised(fn: Any, *args: Any) -> CniError:
    with pytest.raises(CniError) as info:
        fn(*args)
    return info.value


# ---------------------------------------------------------------------------- errors


def test_well_known_codes_have_their_spec_numbers() -> None:
    assert (protocol.INCOMPATIBLE_VERSION, protocol.UNSUPPORTED_FIELD, protocol.UNKNOWN_CONTAINER) == (1, 2, 3)
    assert (protocol.INVALID_ENV, protocol.IO_FAILURE, protocol.DECODE_FAILURE, protocol.INVALID_CONFIG) == (4, 5, 6, 7)
    assert (protocol.TRY_AGAIN_LATER, protocol.NOT_AVAILABLE, protocol.NOT_AVAILABLE_LIMITED) == (11, 50, 51)
    assert protocol.INTERNAL == 999


def test_error_json_carries_version_code_msg_and_details() -> None:
    err = CniError(7, "Invalid Configuration", "Network 192.168.0.0/31 too small to allocate from.")
    assert json.loads(err.to_json("1.1.0")) == {
        "cniVersion": "1.1.0",
        "code": 7,
        "msg": "Invalid Configuration",
        "details": "Network 192.168.0.0/31 too small to allocate from.",
    }
    assert list(json.loads(err.to_json("1.1.0"))) == ["cniVersion", "code", "msg", "details"]


def test_error_json_omits_empty_details() -> None:
    assert json.loads(CniError(11, "busy").to_json("1.0.0")) == {
        "cniVersion": "1.0.0",
        "code": 11,
        "msg": "busy",
    }


def test_error_json_omits_an_unknown_version_rather_than_claiming_0_1_0() -> None:
    assert json.loads(CniError(5, "cannot read stdin").to_json("")) == {
        "code": 5,
        "msg": "cannot read stdin",
    }


def test_error_reads_as_msg_and_details_and_keeps_its_fields() -> None:
    err = CniError(4, "invalid CNI_ARGS", "pair \"x\" has no '='")
    assert str(err) == "invalid CNI_ARGS: pair \"x\" has no '='"
    assert (err.code, err.msg, err.details) == (4, "invalid CNI_ARGS", "pair \"x\" has no '='")
    assert str(CniError(3, "missing containerID")) == "missing containerID"


# ---------------------------------------------------------------------- environment


def test_required_env_table_follows_skel_for_each_verb() -> None:
    assert protocol.REQUIRED_ENV["ADD"] == ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH")
    assert protocol.REQUIRED_ENV["CHECK"] == protocol.REQUIRED_ENV["ADD"]
    assert protocol.REQUIRED_ENV["DEL"] == ("CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH")
    assert protocol.REQUIRED_ENV["GC"] == ("CNI_PATH",)
    assert protocol.REQUIRED_ENV["STATUS"] == ()
    assert protocol.REQUIRED_ENV["VERSION"] == ()
    assert set(protocol.REQUIRED_ENV) == set(protocol.VERBS)


def test_required_env_table_cannot_be_changed_by_a_caller() -> None:
    with pytest.raises(TypeError):
        protocol.REQUIRED_ENV["ADD"] = ()  # type: ignore[index]


def test_add_invocation_is_read_from_the_environment() -> None:
    inv = protocol.read_invocation(ADD_ENV)
    assert inv == protocol.Invocation(
        command="ADD",
        container_id="c0ffee",
        netns="/run/netns/pod",
        ifname="eth0",
        args=(("IgnoreUnknown", "1"), ("K8S_POD_NAMESPACE", "prod"), ("K8S_POD_NAME", "web-0")),
        path=("/opt/cni/bin", "/usr/lib/cni"),
    )


def test_all_missing_variables_are_named_at_once() -> None:
    err = raised(protocol.read_invocation, {"CNI_COMMAND": "ADD"})
    assert err.code == protocol.INVALID_ENV
    assert err.msg == (
        "required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH] missing"
    )
    assert "CNI_NETNS (the path of the container's network namespace)" in err.details
    assert err.details.startswith("ADD needs CNI_CONTAINERID (the container ID); ")


def test_missing_netns_and_path_are_reported_together() -> None:
    err = raised(protocol.read_invocation, env(CNI_NETNS=None, CNI_PATH=None))
    assert (err.code, err.msg) == (4, "required env variables [CNI_NETNS,CNI_PATH] missing")


def test_a_variable_set_to_the_empty_string_counts_as_missing() -> None:
    err = raised(protocol.read_invocation, env(CNI_CONTAINERID="", CNI_IFNAME=""))
    assert (err.code, err.msg) == (4, "required env variables [CNI_CONTAINERID,CNI_IFNAME] missing")


def test_del_does_not_need_the_network_namespace() -> None:
    inv = protocol.read_invocation(env(CNI_COMMAND="DEL", CNI_NETNS=None))
    assert (inv.command, inv.netns, inv.container_id) == ("DEL", "", "c0ffee")


def test_del_still_needs_container_id_ifname_and_path() -> None:
    err = raised(protocol.read_invocation, {"CNI_COMMAND": "DEL"})
    assert err.msg == "required env variables [CNI_CONTAINERID,CNI_IFNAME,CNI_PATH] missing"
    assert err.details.startswith("DEL needs ")


def test_check_needs_what_add_needs() -> None:
    err = raised(protocol.read_invocation, {"CNI_COMMAND": "CHECK", "CNI_PATH": "/opt/cni/bin"})
    assert err.msg == "required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME] missing"


def test_gc_needs_only_the_plugin_path() -> None:
    inv = protocol.read_invocation({"CNI_COMMAND": "GC", "CNI_PATH": "/opt/cni/bin"})
    assert inv == protocol.Invocation("GC", "", "", "", (), ("/opt/cni/bin",))
    err = raised(protocol.read_invocation, {"CNI_COMMAND": "GC"})
    assert (err.code, err.msg) == (4, "required env variables [CNI_PATH] missing")


def test_status_and_version_need_only_the_command() -> None:
    assert protocol.read_invocation({"CNI_COMMAND": "STATUS"}).command == "STATUS"
    assert protocol.read_invocation({"CNI_COMMAND": "VERSION"}) == protocol.Invocation(
        "VERSION", "", "", "", (), ()
    )


def test_version_accepts_libcni_dummy_values_without_validating_them() -> None:
    dummy = {
        "CNI_COMMAND": "VERSION",
        "CNI_NETNS": "dummy",
        "CNI_IFNAME": "dummy",
        "CNI_PATH": "dummy",
        "CNI_ARGS": "not a pair",
    }
    inv = protocol.read_invocation(dummy)
    assert (inv.netns, inv.ifname, inv.path, inv.args) == ("dummy", "dummy", ("dummy",), ())


def test_a_missing_command_is_reported_as_missing() -> None:
    err = raised(protocol.read_invocation, env(CNI_COMMAND=None))
    assert (err.code, err.msg) == (4, "required env variables [CNI_COMMAND] missing")
    assert err.details == "set CNI_COMMAND to one of ADD, DEL, CHECK, VERSION, STATUS, GC"


def test_an_unknown_command_is_named_in_the_message() -> None:
    err = raised(protocol.read_invocation, env(CNI_COMMAND="FOO"))
    assert (err.code, err.msg) == (4, "unknown CNI_COMMAND: FOO")
    assert err.details == "use one of ADD, DEL, CHECK, VERSION, STATUS, GC"


def test_commands_are_case_sensitive_as_in_skel() -> None:
    assert raised(protocol.read_invocation, env(CNI_COMMAND="add")).msg == "unknown CNI_COMMAND: add"


def test_container_id_with_bad_characters_is_code_4_naming_the_variable() -> None:
    err = raised(protocol.read_invocation, env(CNI_CONTAINERID="abc/def"))
    assert (err.code, err.msg) == (4, "invalid env variables [CNI_CONTAINERID]")
    assert err.details.startswith('CNI_CONTAINERID: "abc/def" is not a valid container ID')
    assert "contains '/'" in err.details


def test_container_id_must_start_with_a_letter_or_digit() -> None:
    err = raised(protocol.read_invocation, env(CNI_COMMAND="CHECK", CNI_CONTAINERID="_abc"))
    assert err.msg == "invalid env variables [CNI_CONTAINERID]"
    assert "starts with '_'" in err.details


@pytest.mark.parametrize(
    ("ifname", "reason"),
    [
        ("a" * 16, "16 bytes long"),
        ("..", "'..' is reserved"),
        ("net:1", "contains ':'"),
        ("net 1", "contains whitespace"),
        ("net/1", "contains '/'"),
    ],
)
def test_bad_interface_name_is_code_4_with_the_reason(ifname: str, reason: str) -> None:
    err = raised(protocol.read_invocation, env(CNI_IFNAME=ifname))
    assert (err.code, err.msg) == (4, "invalid env variables [CNI_IFNAME]")
    assert err.details.startswith("CNI_IFNAME: ")
    assert f"({reason})" in err.details


def test_bad_container_id_and_interface_name_are_reported_together() -> None:
    err = raised(protocol.read_invocation, env(CNI_COMMAND="DEL", CNI_CONTAINERID="a b", CNI_IFNAME="."))
    assert err.msg == "invalid env variables [CNI_CONTAINERID,CNI_IFNAME]"
    lines = err.details.split("\n")
    assert lines[0].startswith('CNI_CONTAINERID: "a b" is not a valid container ID')
    assert lines[1].startswith('CNI_IFNAME: "." is not a valid interface name')


def test_malformed_cni_args_fail_add() -> None:
    err = raised(protocol.read_invocation, env(CNI_ARGS="K8S_POD_NAME=web;oops"))
    assert (err.code, err.msg) == (4, "invalid CNI_ARGS")
    assert err.details.startswith("pair \"oops\" has no '='")


def test_malformed_cni_args_do_not_block_del_and_good_pairs_survive() -> None:
    inv = protocol.read_invocation(env(CNI_COMMAND="DEL", CNI_ARGS="K8S_POD_NAME=web;oops;=x"))
    assert inv.args == (("K8S_POD_NAME", "web"),)


def test_cni_path_is_split_on_colons_dropping_empty_entries() -> None:
    assert protocol.read_invocation(env(CNI_PATH=":/a::/b:")).path == ("/a", "/b")


# ---------------------------------------------------------------- validate_attachment


def test_runtime_side_check_answers_an_empty_container_id_with_code_3() -> None:
    err = raised(protocol.validate_attachment, "", "net1")
    assert (err.code, err.msg) == (3, "missing containerID")
    assert err.details == "CNI_CONTAINERID is empty; the runtime must give the container's ID"


def test_runtime_side_check_answers_bad_names_with_code_4() -> None:
    err = raised(protocol.validate_attachment, "c1", "net1:0")
    assert (err.code, err.msg) == (4, "invalid env variables [CNI_IFNAME]")
    assert "contains ':'" in err.details


def test_runtime_side_check_accepts_a_good_attachment() -> None:
    protocol.validate_attachment("c1.x_y-z", "net1")


# --------------------------------------------------------------------------- CNI_ARGS


def test_cni_args_are_split_into_ordered_pairs() -> None:
    assert protocol.parse_cni_args("FOO=BAR;ABC=123") == (("FOO", "BAR"), ("ABC", "123"))


def test_cni_args_values_may_contain_equals_signs() -> None:
    # libcni's LoadArgs (and so Multus) fails on this; the first '=' splits.
    assert protocol.parse_cni_args("FOO=bar=baz;X==") == (("FOO", "bar=baz"), ("X", "="))


def test_cni_args_empty_segments_are_skipped() -> None:
    assert protocol.parse_cni_args(";A=1;;B=;") == (("A", "1"), ("B", ""))
    assert protocol.parse_cni_args("") == ()


def test_cni_args_repeated_key_keeps_its_place_and_takes_the_last_value() -> None:
    multus = (
        "IgnoreUnknown=true;K8S_POD_NAMESPACE=test;K8S_POD_NAME=testpod;IgnoreUnknown=1;"
        "K8S_POD_NAMESPACE=test;MAC=c2:11:22:33:44:66;IP=10.10.0.5/24"
    )
    assert protocol.parse_cni_args(multus) == (
        ("IgnoreUnknown", "1"),
        ("K8S_POD_NAMESPACE", "test"),
        ("K8S_POD_NAME", "testpod"),
        ("MAC", "c2:11:22:33:44:66"),
        ("IP", "10.10.0.5/24"),
    )


def test_cni_args_keys_and_values_are_kept_verbatim() -> None:
    assert protocol.parse_cni_args(" A = 1 ") == ((" A ", " 1 "),)


def test_cni_args_segment_without_equals_is_named() -> None:
    err = raised(protocol.parse_cni_args, "A=1;FOOBAR")
    assert (err.code, err.msg) == (4, "invalid CNI_ARGS")
    assert err.details == (
        "pair \"FOOBAR\" has no '='; write KEY=VALUE pairs separated by ';', "
        "e.g. K8S_POD_NAMESPACE=prod;K8S_POD_NAME=web-0"
    )


def test_cni_args_pair_with_empty_key_is_refused() -> None:
    err = raised(protocol.parse_cni_args, "=value")
    assert err.details.startswith('pair "=value" has an empty key; ')


def test_cni_args_lists_every_bad_pair_but_cuts_a_long_list() -> None:
    err = raised(protocol.parse_cni_args, ";".join(f"bad{i}" for i in range(8)))
    lines = err.details.split("\n")
    assert len(lines) == 6
    assert lines[0].startswith('pair "bad0"') and lines[4].startswith('pair "bad4"')
    assert lines[5] == "... and 3 more"


def test_cni_args_that_are_not_text_are_refused() -> None:
    err = raised(protocol.parse_cni_args, b"A=1")
    assert (err.code, err.msg, err.details) == (
        4,
        "invalid CNI_ARGS",
        "CNI_ARGS is a bytes, not text",
    )


@given(st.text())
def test_parse_cni_args_raises_nothing_but_cni_error(text: str) -> None:
    try:
        pairs = protocol.parse_cni_args(text)
    except CniError as err:
        assert err.code == protocol.INVALID_ENV
    else:
        assert len({k for k, _ in pairs}) == len(pairs)


def test_cni_args_are_formatted_as_semicolon_joined_pairs() -> None:
    assert protocol.format_cni_args([("IgnoreUnknown", "true"), ("K8S_POD_NAME", "a=b")]) == (
        "IgnoreUnknown=true;K8S_POD_NAME=a=b"
    )
    assert protocol.format_cni_args([]) == ""


def test_formatting_cni_args_never_repeats_a_key() -> None:
    pairs = [("A", "1"), ("B", "2"), ("A", "3")]
    assert protocol.format_cni_args(pairs) == "A=3;B=2"


@pytest.mark.parametrize(
    ("pair", "detail"),
    [
        (("A", "x;y"), "value \"x;y\" contains ';', which CNI_ARGS cannot carry"),
        (("A;B", "1"), "key \"A;B\" contains ';', which CNI_ARGS cannot carry"),
        (("A=B", "1"), "key \"A=B\" contains '=', which CNI_ARGS cannot carry"),
        (("A", "x\0"), 'value "x\\u0000" contains NUL, which CNI_ARGS cannot carry'),
        (("", "1"), 'key of value "1" is empty; every pair needs a key'),
        (("A", 1), 'key "A" and value 1 must both be strings'),
        (("A",), '["A"] is not a (key, value) pair'),
    ],
)
def test_cni_args_that_cannot_be_represented_are_refused(pair: Any, detail: str) -> None:
    err = raised(protocol.format_cni_args, [pair])
    assert (err.code, err.msg) == (4, "cannot build CNI_ARGS")
    assert err.details.startswith(detail)


_arg_text = st.text(st.characters(exclude_characters=";=\0", exclude_categories=["Cs"]))


@given(
    st.lists(
        st.tuples(
            _arg_text.filter(bool), st.text().filter(lambda v: ";" not in v and "\0" not in v)
        )
    )
)
def test_formatted_cni_args_parse_back_to_the_same_pairs(pairs: list[tuple[str, str]]) -> None:
    expected = dict(pairs)
    assert dict(protocol.parse_cni_args(protocol.format_cni_args(pairs))) == expected
    assert [k for k, _ in protocol.parse_cni_args(protocol.format_cni_args(pairs))] == list(expected)


# --------------------------------------------------------------------------- versions


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("", (0, 1, 0)),
        ("1", (1, 0, 0)),
        ("0.4", (0, 4, 0)),
        ("1.1.0", (1, 1, 0)),
        ("01.2.3", (1, 2, 3)),
    ],
)
def test_versions_parse_like_libcni(text: str, parsed: tuple[int, int, int]) -> None:
    assert protocol.parse_version(text) == parsed


def test_a_version_with_four_parts_is_refused_with_code_1() -> None:
    err = raised(protocol.parse_version, "1.0.0.0")
    assert (err.code, err.msg) == (1, "invalid CNI version")
    assert err.details == '"1.0.0.0" has 4 parts; use at most 3, such as "1.1.0"'


@pytest.mark.parametrize(
    ("text", "part"),
    [
        ("1.x", "x"),
        ("-1.0", "-1"),
        ("+1", "+1"),
        (" 1.0", " 1"),
        ("1..0", ""),
        ("²", "²"),
        ("1.0.0-rc1", "0-rc1"),
    ],
)
def test_a_version_part_that_is_not_a_plain_number_is_refused(text: str, part: str) -> None:
    err = raised(protocol.parse_version, text)
    assert (err.code, err.msg) == (1, "invalid CNI version")
    assert err.details == (
        f"{json.dumps(text, ensure_ascii=False)} has part {json.dumps(part, ensure_ascii=False)}, "
        'not a number; use a version such as "1.1.0"'
    )


def test_a_version_part_too_large_for_go_is_refused() -> None:
    err = raised(protocol.parse_version, "1." + "9" * 19)
    assert (err.code, err.msg) == (1, "invalid CNI version")
    assert err.details.endswith("has a part of 19 digits, too large for a version number")


def test_a_version_that_is_not_a_string_is_refused() -> None:
    err = raised(protocol.parse_version, 1.0)
    assert err.details == '1.0 is a number, not a version string such as "1.1.0"'


@given(st.text())
def test_parse_version_raises_nothing_but_cni_error(text: str) -> None:
    try:
        major, minor, patch = protocol.parse_version(text)
    except CniError as err:
        assert err.code == protocol.INCOMPATIBLE_VERSION
    else:
        assert min(major, minor, patch) >= 0


def test_version_answer_lists_what_the_plugin_accepts_from_a_runtime() -> None:
    answer = protocol.version_result("1.0.0")
    assert answer == {"cniVersion": "1.0.0", "supportedVersions": list(protocol.PLUGIN_VERSIONS)}
    assert "0.2.0" not in answer["supportedVersions"]
    assert set(protocol.PLUGIN_VERSIONS) < set(protocol.SUPPORTED_VERSIONS)


def test_version_answer_falls_back_to_the_latest_for_an_unknown_request() -> None:
    assert protocol.version_result("")["cniVersion"] == "1.1.0"
    assert protocol.version_result("7.0.0")["cniVersion"] == "1.1.0"


# ---------------------------------------------------------------------------- results

RESULT_110: dict[str, Any] = {
    "cniVersion": "1.1.0",
    "interfaces": [
        {"name": "cni0", "mac": "00:11:22:33:44:55"},
        {"name": "veth3243", "mac": "55:44:33:22:11:11"},
        {
            "name": "eth0",
            "mac": "99:88:77:66:55:44",
            "sandbox": "/var/run/netns/blue",
            "mtu": 1450,
            "socketPath": "/run/vhu.sock",
            "pciID": "0000:18:02.5",
        },
    ],
    "ips": [
        {"address": "192.168.1.3/24", "gateway": "192.168.1.1", "interface": 2},
        {"address": "2001:db8::3/64", "gateway": "2001:db8::1", "interface": 2},
        {"address": "192.168.1.4/24", "interface": 2},
    ],
    "routes": [
        {
            "dst": "0.0.0.0/0",
            "gw": "192.168.1.1",
            "mtu": 1400,
            "advmss": 1360,
            "priority": 10,
            "table": 100,
            "scope": 0,
        },
        {"dst": "::/0"},
    ],
    "dns": {"nameservers": ["192.168.1.1"], "search": ["example.com"]},
    "example.com/extra": {"kept": True},
}


def test_converting_to_1_0_0_drops_the_1_1_0_only_fields() -> None:
    out = protocol.convert_result(RESULT_110, "1.0.0")
    assert out["cniVersion"] == "1.0.0"
    assert out["interfaces"][2] == {
        "name": "eth0",
        "mac": "99:88:77:66:55:44",
        "sandbox": "/var/run/netns/blue",
    }
    assert out["routes"] == [{"dst": "0.0.0.0/0", "gw": "192.168.1.1"}, {"dst": "::/0"}]
    assert out["ips"] == RESULT_110["ips"]
    assert out["dns"] == RESULT_110["dns"]
    assert out["example.com/extra"] == {"kept": True}


def test_converting_to_0_4_0_adds_the_ip_version() -> None:
    out = protocol.convert_result(RESULT_110, "0.4.0")
    assert [ip["version"] for ip in out["ips"]] == ["4", "6", "4"]
    assert out["ips"][0] == {
        "version": "4",
        "address": "192.168.1.3/24",
        "gateway": "192.168.1.1",
        "interface": 2,
    }
    assert "mtu" not in out["interfaces"][2]


def test_converting_from_0_3_1_to_1_x_removes_the_ip_version() -> None:
    old = {"cniVersion": "0.3.1", "ips": [{"version": "4", "address": "10.0.0.2/8"}]}
    assert protocol.convert_result(old, "1.1.0") == {
        "cniVersion": "1.1.0",
        "ips": [{"address": "10.0.0.2/8"}],
    }


def test_converting_to_0_2_0_keeps_the_first_address_of_each_family() -> None:
    out = protocol.convert_result(RESULT_110, "0.2.0")
    assert out == {
        "cniVersion": "0.2.0",
        "ip4": {
            "ip": "192.168.1.3/24",
            "gateway": "192.168.1.1",
            "routes": [{"dst": "0.0.0.0/0", "gw": "192.168.1.1"}],
        },
        "ip6": {"ip": "2001:db8::3/64", "gateway": "2001:db8::1", "routes": [{"dst": "::/0"}]},
        "dns": {"nameservers": ["192.168.1.1"], "search": ["example.com"]},
        "example.com/extra": {"kept": True},
    }


def test_converting_to_0_1_0_drops_routes_of_a_family_without_an_address() -> None:
    result = {
        "cniVersion": "1.0.0",
        "ips": [{"address": "10.0.0.2/8"}],
        "routes": [{"dst": "::/0", "gw": "2001:db8::1"}, {"dst": "10.0.0.0/8"}],
    }
    assert protocol.convert_result(result, "0.1.0") == {
        "cniVersion": "0.1.0",
        "ip4": {"ip": "10.0.0.2/8", "routes": [{"dst": "10.0.0.0/8"}]},
    }


def test_converting_from_0_2_0_gives_unindexed_addresses() -> None:
    old = {
        "cniVersion": "0.2.0",
        "ip4": {
            "ip": "10.1.0.5/16",
            "gateway": "10.1.0.1",
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.2.0.0/16", "gw": "10.1.0.254"}],
        },
        "ip6": {"ip": "2001:db8::5/64"},
        "dns": {"nameservers": ["10.1.0.1"]},
    }
    assert protocol.convert_result(old, "1.0.0") == {
        "cniVersion": "1.0.0",
        "ips": [{"address": "10.1.0.5/16", "gateway": "10.1.0.1"}, {"address": "2001:db8::5/64"}],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.2.0.0/16", "gw": "10.1.0.254"}],
        "dns": {"nameservers": ["10.1.0.1"]},
    }
    assert protocol.convert_result(old, "0.3.0")["ips"][1] == {
        "version": "6",
        "address": "2001:db8::5/64",
    }


def test_legacy_results_convert_between_legacy_versions() -> None:
    old = {"cniVersion": "0.1.0", "ip4": {"ip": "10.1.0.5/16", "routes": [{"dst": "0.0.0.0/0"}]}}
    assert protocol.convert_result(old, "0.2.0") == {**old, "cniVersion": "0.2.0"}


def test_a_result_without_version_is_read_by_its_shape() -> None:
    assert protocol.convert_result({"ip4": {"ip": "10.0.0.2/8"}}, "1.0.0") == {
        "cniVersion": "1.0.0",
        "ips": [{"address": "10.0.0.2/8"}],
    }
    assert protocol.convert_result({"ips": [{"address": "10.0.0.2/8"}]}, "0.2.0") == {
        "cniVersion": "0.2.0",
        "ip4": {"ip": "10.0.0.2/8"},
    }
    assert protocol.convert_result({"cniVersion": "", "dns": {}}, "1.1.0") == {
        "cniVersion": "1.1.0",
        "dns": {},
    }


def test_a_result_without_addresses_cannot_become_0_2_0() -> None:
    err = raised(
        protocol.convert_result, {"cniVersion": "1.0.0", "interfaces": [{"name": "x"}]}, "0.2.0"
    )
    assert (err.code, err.msg) == (1, "cannot convert the CNI result to version 0.2.0")
    assert err.details == (
        "it has no IP address, and 0.1.0/0.2.0 results consist of ip4/ip6 addresses"
    )


def test_converting_to_an_unknown_version_is_refused() -> None:
    err = raised(protocol.convert_result, RESULT_110, "2.0.0")
    assert (err.code, err.msg) == (1, 'cannot convert a result to CNI version "2.0.0"')
    assert err.details == "use one of 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0"


def test_a_result_of_an_unknown_version_is_refused() -> None:
    err = raised(protocol.convert_result, {"cniVersion": "0.3.2", "ips": []}, "1.0.0")
    assert (err.code, err.msg) == (1, 'unsupported CNI result version "0.3.2"')


def test_a_result_that_mixes_shapes_is_refused() -> None:
    err = raised(protocol.convert_result, {"cniVersion": "1.0.0", "ip4": {"ip": "10.0.0.2/8"}}, "1.0.0")
    assert (err.code, err.msg) == (6, "cannot decode the CNI result")
    assert err.details == (
        'cniVersion "1.0.0" results have ips, not ip4/ip6; set cniVersion to the version of the shape'
    )
    err = raised(protocol.convert_result, {"cniVersion": "0.2.0", "ips": []}, "1.0.0")
    assert err.details.startswith('cniVersion "0.2.0" results have ip4/ip6, not ips; ')
    err = raised(protocol.convert_result, {"ip6": {"ip": "::1/128"}, "routes": []}, "1.0.0")
    assert err.details.startswith(
        "it mixes ip4/ip6 (0.2.0 and older) with routes (0.3.0 and newer)"
    )


def test_a_result_that_is_not_an_object_is_refused() -> None:
    err = raised(protocol.convert_result, ["not", "a", "result"], "1.0.0")
    assert (err.code, err.msg, err.details) == (
        6,
        "cannot decode the CNI result",
        "it is a list, not a JSON object",
    )


def test_every_bad_field_of_a_result_is_named_with_its_path() -> None:
    bad = {
        "cniVersion": "1.1.0",
        "interfaces": [{"name": 5, "mtu": -1}, "eth0"],
        "ips": [{"address": "10.0.0.2", "gateway": "<nil>", "interface": True}],
        "routes": [{"gw": "10.0.0.1", "table": "main"}],
        "dns": {"nameservers": "10.0.0.1", "domain": 3},
    }
    err = raised(protocol.convert_result, bad, "1.1.0")
    assert (err.code, err.msg) == (6, "cannot decode the CNI result")
    lines = err.details.split("\n")
    assert lines[:5] == [
        "interfaces[1]: must be an object (got string)",
        "interfaces[0].name: must be a string (got number 5)",
        "interfaces[0].mtu: must not be negative (got -1)",
        'ips[0].address: is not a CIDR (got "10.0.0.2"); use address/prefix, e.g. 10.1.0.5/24 '
        "or 2001:db8::5/64",
        'ips[0].gateway: "<nil>" is not a valid IP address; use an IPv4 address like 192.0.2.10 '
        "or an IPv6 address like 2001:db8::10",
    ]
    assert lines[5] == "... and 5 more"


def test_legacy_result_fields_are_checked_too() -> None:
    err = raised(protocol.convert_result, {"cniVersion": "0.2.0", "ip4": "10.0.0.2/8"}, "1.0.0")
    assert err.details == "ip4: must be an object (got string)"
    err = raised(
        protocol.convert_result,
        {"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.2/8", "routes": [{"dst": "x"}]}},
        "1.0.0",
    )
    assert err.details.startswith('ip4.routes[0].dst: is not a CIDR (got "x")')


def test_an_empty_or_null_gateway_is_accepted_as_go_accepts_it() -> None:
    result = {
        "cniVersion": "1.0.0",
        "ips": [{"address": "10.0.0.2/8", "gateway": ""}],
        "routes": [{"dst": "0.0.0.0/0", "gw": None}],
    }
    assert protocol.convert_result(result, "1.0.0") == result


def test_conversion_neither_changes_nor_shares_its_input() -> None:
    before = copy.deepcopy(RESULT_110)
    out = protocol.convert_result(RESULT_110, "1.1.0")
    assert before == RESULT_110
    out["interfaces"][0]["name"] = "changed"
    out["example.com/extra"]["kept"] = False
    assert before == RESULT_110


def test_a_result_nested_too_deeply_is_a_decode_failure() -> None:
    deep: Any = []
    for _ in range(5000):
        deep = [deep]
    err = raised(protocol.convert_result, {"cniVersion": "1.0.0", "x": deep}, "1.0.0")
    assert (err.code, err.msg, err.details) == (
        6,
        "cannot decode the CNI result",
        "it is nested too deeply",
    )


_v4 = st.ip_addresses(v=4).map(str)
_v6 = st.ip_addresses(v=6).map(str)
_cidr = st.one_of(st.tuples(_v4, st.integers(0, 32)), st.tuples(_v6, st.integers(0, 128))).map(
    lambda t: f"{t[0]}/{t[1]}"
)
_name = st.text(min_size=1, max_size=15)
_interface = st.fixed_dictionaries(
    {"name": _name},
    optional={"mac": st.just("02:00:00:00:00:01"), "sandbox": st.text(min_size=1, max_size=20)},
)
_ip = st.fixed_dictionaries(
    {"address": _cidr}, optional={"gateway": st.one_of(_v4, _v6), "interface": st.integers(0, 5)}
)
_route = st.fixed_dictionaries({"dst": _cidr}, optional={"gw": st.one_of(_v4, _v6)})
_dns = st.fixed_dictionaries(
    {},
    optional={
        "nameservers": st.lists(_v4, max_size=3),
        "domain": st.text(max_size=10),
        "search": st.lists(st.text(max_size=10), max_size=3),
        "options": st.lists(st.text(max_size=10), max_size=3),
    },
)
_result_110 = st.fixed_dictionaries(
    {"cniVersion": st.just("1.1.0")},
    optional={
        "interfaces": st.lists(_interface, max_size=4),
        "ips": st.lists(_ip, max_size=4),
        "routes": st.lists(_route, max_size=4),
        "dns": _dns,
    },
)


@given(_result_110)
def test_a_1_1_0_result_survives_a_trip_through_0_4_0(result: dict[str, Any]) -> None:
    there = protocol.convert_result(result, "0.4.0")
    assert there["cniVersion"] == "0.4.0"
    assert all(ip["version"] in ("4", "6") for ip in there.get("ips", []))
    assert protocol.convert_result(there, "1.1.0") == result


@given(_result_110, st.sampled_from(protocol.SUPPORTED_VERSIONS))
def test_conversion_to_any_version_is_stable_when_repeated(
    result: dict[str, Any], version: str
) -> None:
    try:
        once = protocol.convert_result(result, version)
    except CniError as err:
        assert err.code == protocol.INCOMPATIBLE_VERSION and not result.get("ips")
        return
    assert protocol.convert_result(once, version) == once


_result_keys = st.sampled_from(
    [
        "cniVersion",
        "interfaces",
        "ips",
        "routes",
        "dns",
        "ip4",
        "ip6",
        "address",
        "gw",
        "dst",
        "ip",
        "mtu",
        "interface",
        "nameservers",
        "other",
    ]
)
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=4)
    | st.sampled_from(["1.1.0", "0.2.0", "10.0.0.1", "10.0.0.1/8", "::/0"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_result_keys, inner, max_size=3),
    max_leaves=10,
)


@given(st.dictionaries(_result_keys, _json, max_size=5), st.sampled_from(protocol.SUPPORTED_VERSIONS))
def test_conversion_of_arbitrary_json_raises_nothing_but_cni_error(
    result: dict[str, Any], version: str
) -> None:
    try:
        protocol.convert_result(result, version)
    except CniError as err:
        assert err.code in (protocol.INCOMPATIBLE_VERSION, protocol.DECODE_FAILURE)
