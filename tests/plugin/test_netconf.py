"""CNI conf/conflist parsing (CNI-1..5, CNI-44..46, NPWG-2..5) and the plugin field rules.

Every rule has a case that passes and a case that fails; failures assert the field path
and the parts of the message a user needs: the bad value and what would be accepted.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from plugin.model.netconf import (
    PLUGIN_TYPE_RE,
    SUPPORTED_VERSIONS,
    NetConfResult,
    parse_netconf,
    parse_netconf_object,
    plugin_type_problem,
)
from plugin.model.problems import Findings

NAD = "net"

# The seed NADs: (NAD name, spec.config). All must be admitted.
SEEDS: dict[str, str] = {
    "macvlan-conf": '{"cniVersion":"0.3.0","type":"macvlan","master":"eth0","mode":"bridge","ipam":{"type":"host-local","subnet":"192.168.1.0/24","rangeStart":"192.168.1.200","rangeEnd":"192.168.1.216","routes":[{"dst":"0.0.0.0/0"}],"gateway":"192.168.1.1"}}',
    "bridge-conf": '{"cniVersion":"0.3.1","type":"bridge","bridge":"mybridge","isGateway":true,"ipMasq":true,"ipam":{"type":"host-local","subnet":"10.244.0.0/16","gateway":"10.244.0.1"}}',
    "sriov-net": '{"cniVersion":"0.3.1","type":"sriov","vlan":100,"ipam":{"type":"host-local","subnet":"10.56.217.0/24","routes":[{"dst":"0.0.0.0/0"}],"gateway":"10.56.217.1"}}',
    "whereabouts-net": '{"cniVersion":"0.3.1","type":"macvlan","master":"eth0","ipam":{"type":"whereabouts","range":"192.168.2.0/24"}}',
    "data-network": '{"cniVersion":"0.3.1","type":"macvlan","master":"eth1","ipam":{"type":"host-local","subnet":"10.10.0.0/16"}}',
    "tenant-a-net": '{"cniVersion":"0.3.1","type":"bridge","bridge":"tenant-a-br","ipam":{"type":"host-local","subnet":"10.100.0.0/16"}}',
    "bridge-dev": '{"cniVersion":"0.3.1","name":"bridge-dev","type":"cnv-bridge","bridge":"dev-bridge","macspoofchk":true,"vlan":0}',
    "macvlan": '{"name":"mynet","type":"macvlan","master":"virbr0","ipam":{"type":"host-local","subnet":"192.168.1.0/24","rangeStart":"192.168.1.200","rangeEnd":"192.168.1.216"}}',
}


def conf(**fields: Any) -> str:
    """A valid single-plugin config with ``fields`` on top."""
    base: dict[str, Any] = {"cniVersion": "0.3.1", "type": "macvlan"}
    base.update(fields)
    return json.dumps(base)


def with_ipam(ipam: dict[str, Any], **fields: Any) -> str:
    return conf(ipam=ipam, **fields)


def conflist(*plugins: Any, **fields: Any) -> str:
    base: dict[str, Any] = {"cniVersion": "1.0.0", "name": NAD, "plugins": list(plugins)}
    base.update(fields)
    return json.dumps(base)


def messages(problems: tuple[Any, ...], path: str) -> list[str]:
    return [p.message for p in problems if p.path == path]


def the_error(result: NetConfResult, path: str, *fragments: str) -> str:
    """The one error at ``path``; it must contain every fragment."""
    assert not result.ok
    assert result.kind == "invalid"
    assert result.conflist is None
    found = messages(result.errors, path)
    assert len(found) == 1, f"errors at {path}: {found}; all: {[str(e) for e in result.errors]}"
    for fragment in fragments:
        assert fragment in found[0], f"{fragment!r} not in {found[0]!r}"
    return found[0]


def the_warning(result: NetConfResult, path: str, *fragments: str) -> str:
    found = messages(result.warnings, path)
    assert len(found) == 1, f"warnings at {path}: {found}; all: {[str(w) for w in result.warnings]}"
    for fragment in fragments:
        assert fragment in found[0], f"{fragment!r} not in {found[0]!r}"
    return found[0]


def accepted(config: str, nad: str = NAD) -> NetConfResult:
    result = parse_netconf(config, nad)
    assert result.ok, [str(e) for e in result.errors]
    assert result.conflist is not None
    return result


def rejected(config: str, nad: str = NAD) -> NetConfResult:
    result = parse_netconf(config, nad)
    assert not result.ok
    return result


# ----------------------------------------------------------------------------- seed corpus


@pytest.mark.parametrize(("nad", "config"), list(SEEDS.items()))
def test_seed_nads_are_admitted_without_errors(nad: str, config: str) -> None:
    result = accepted(config, nad)
    assert result.kind == "conf"
    assert result.conflist is not None
    assert result.conflist["plugins"][0]["type"] == json.loads(config)["type"]


@pytest.mark.parametrize("nad", [n for n in SEEDS if n != "macvlan"])
def test_seed_nads_with_a_version_and_no_foreign_name_have_no_warnings(nad: str) -> None:
    assert accepted(SEEDS[nad], nad).warnings == ()


def test_seed_without_version_and_with_another_name_only_warns_about_both() -> None:
    result = accepted(SEEDS["macvlan"], "macvlan")
    assert sorted(w.path for w in result.warnings) == ["spec.config.cniVersion", "spec.config.name"]
    assert result.cni_version == "0.1.0"
    assert result.conflist is not None
    assert result.conflist["name"] == "mynet"


# ----------------------------------------------------------------------------- empty / JSON


@pytest.mark.parametrize("config", [None, "", "   ", "\n\t \r\n"])
def test_empty_config_is_allowed_with_one_warning_about_the_on_disk_file(
    config: str | None,
) -> None:
    result = parse_netconf(config, "my-net")
    assert result.ok
    assert result.kind == "empty"
    assert result.conflist is None
    assert result.cni_version is None
    assert result.capabilities == frozenset()
    message = the_warning(
        result, "spec.config", "spec.config is empty", "confDir", '"my-net"', "fails to attach"
    )
    assert "on any node without" in message


def test_empty_config_warning_uses_the_given_path() -> None:
    result = parse_netconf("", "n", path="x.y")
    assert [w.path for w in result.warnings] == ["x.y"]
    assert result.warnings[0].message.startswith("x.y is empty")


@pytest.mark.parametrize(
    ("config", "type_seen"), [(5, "a number"), (b"{}", "a bytes"), ({"type": "x"}, "an object")]
)
def test_config_that_is_not_a_string_is_rejected(config: object, type_seen: str) -> None:
    result = parse_netconf(config, NAD)
    message = the_error(result, "spec.config", "must be a string holding JSON", "(got ")
    assert type_seen.split()[-1] in message


def test_invalid_json_error_names_line_and_column() -> None:
    result = rejected('{\n  "type": "bridge",\n  "mtu": 1500,,\n}')
    the_error(
        result, "spec.config", "not valid JSON", "line 3, column", "a CNI config is a JSON object"
    )


def test_truncated_json_is_rejected_with_the_decoders_message() -> None:
    result = rejected('{"type": "bridge"')
    the_error(result, "spec.config", "not valid JSON", "Expecting", "line 1, column 18")


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(token: str) -> None:
    result = rejected(f'{{"type": "bridge", "mtu": {token}}}')
    the_error(result, "spec.config", "not valid JSON", f"{token} is not a JSON number")


def test_a_number_too_large_for_a_float_is_not_json() -> None:
    result = rejected('{"type": "bridge", "mtu": 1e999}')
    the_error(result, "spec.config", "not valid JSON", "1e999", "too large")


def test_duplicate_keys_warn_at_their_path_and_the_last_value_wins() -> None:
    result = accepted(
        '{"cniVersion":"0.3.1","type":"bridge","ipam":{"type":"dhcp","type":"static"},"mtu":1400,"mtu":1500}'
    )
    the_warning(result, "spec.config.mtu", 'duplicate key "mtu"', "2 times", "last value")
    the_warning(result, "spec.config.ipam.type", 'duplicate key "type"')
    assert result.conflist is not None
    plugin = result.conflist["plugins"][0]
    assert plugin["mtu"] == 1500
    assert plugin["ipam"]["type"] == "static"


def test_duplicate_keys_inside_lists_are_reported_with_the_index() -> None:
    result = accepted('{"cniVersion": "1.0.0", "plugins": [{"type": "bridge", "type": "ptp"}]}')
    the_warning(result, "spec.config.plugins[0].type", 'duplicate key "type"')
    assert result.plugin_types == ("ptp",)


@pytest.mark.parametrize(
    ("config", "seen"),
    [
        ("[1, 2]", "a JSON list"),
        ('"x"', "a JSON string"),
        ("null", "a JSON null"),
        ("42", "a JSON number"),
    ],
)
def test_top_level_that_is_not_an_object_is_rejected_with_its_type(config: str, seen: str) -> None:
    the_error(rejected(config), "spec.config", seen, "a CNI config is a JSON object")


def test_deeply_nested_json_is_rejected_not_raised() -> None:
    result = rejected("[" * 100_000 + "]" * 100_000)
    assert result.errors[0].path == "spec.config"


def test_deeply_nested_value_in_a_checked_field_is_reported_not_raised() -> None:
    deep = "[" * 900 + "]" * 900
    result = rejected('{"cniVersion":"0.3.1","type":' + deep + "}")
    # refused by the depth guard before decoding (plugin/model/limits.py, issue 12)
    assert result.errors[0].path == "spec.config"
    assert result.errors[0].message.startswith("the CNI config is nested more than 32 levels deep")


# ----------------------------------------------------------------------------- conf vs conflist


def test_a_single_conf_is_up_converted_like_libcni() -> None:
    config = '{"cniVersion":"0.3.0","type":"awesome-plugin","foo":{"bar":[1,2]}}'
    result = accepted(config, "a-bridge-network")
    assert result.kind == "conf"
    assert result.conflist == {
        "cniVersion": "0.3.0",
        "name": "a-bridge-network",
        "plugins": [
            {
                "cniVersion": "0.3.0",
                "type": "awesome-plugin",
                "foo": {"bar": [1, 2]},
                "name": "a-bridge-network",
            }
        ],
    }
    assert result.cni_version == "0.3.0"
    assert result.plugin_types == ("awesome-plugin",)


def test_a_conf_without_version_is_up_converted_without_one() -> None:
    result = accepted('{"type":"bridge"}')
    assert result.conflist == {"name": NAD, "plugins": [{"type": "bridge", "name": NAD}]}


def test_a_conflist_keeps_every_key_unchanged() -> None:
    doc = {
        "cniVersion": "1.0.0",
        "name": "dbnet",
        "x-vendor": {"deep": [None, 1.5, True]},
        "plugins": [
            {"type": "bridge", "unknown": {"k": "v"}},
            {"type": "tuning", "sysctl": {"a": "1"}},
        ],
    }
    result = accepted(json.dumps(doc), "dbnet")
    assert result.kind == "conflist"
    assert result.conflist == doc
    assert result.plugin_types == ("bridge", "tuning")


def test_the_plugins_key_decides_conflist_even_with_a_top_level_type() -> None:
    result = accepted(conflist({"type": "bridge"}, type="macvlan"))
    assert result.kind == "conflist"
    assert result.plugin_types == ("bridge",)
    the_warning(result, "spec.config.type", "ignored", "conflist", '"macvlan"')


def test_top_level_ipam_in_a_conflist_warns_that_it_is_ignored() -> None:
    result = accepted(conflist({"type": "bridge"}, ipam={"type": "dhcp"}))
    the_warning(result, "spec.config.ipam", "ignored", "move it there")


def test_plugins_that_is_a_number_is_a_clear_error_not_a_crash() -> None:
    result = rejected('{"cniVersion":"1.0.0","name":"n","plugins": 5}')
    the_error(
        result, "spec.config.plugins", "must be a list of plugin objects", "(got 5, a number)"
    )


def test_plugins_that_is_an_object_is_rejected_with_its_type() -> None:
    result = rejected('{"name":"n","plugins": {"type": "bridge"}}')
    the_error(result, "spec.config.plugins", "must be a list", "an object")


def test_empty_plugins_list_is_rejected() -> None:
    the_error(
        rejected('{"cniVersion":"1.0.0","plugins": []}'),
        "spec.config.plugins",
        "empty",
        "(got [])",
        "at least one",
    )


@pytest.mark.parametrize("element", ["5", '"bridge"', "null", "[]"])
def test_plugins_element_that_is_not_an_object_is_rejected_at_its_index(element: str) -> None:
    result = rejected('{"cniVersion":"1.0.0","plugins": [{"type":"bridge"}, ' + element + "]}")
    the_error(result, "spec.config.plugins[1]", "must be a JSON object", f"(got {element}")


def test_conflist_without_name_is_accepted_with_the_nad_name_injected() -> None:
    # The reference admission controller rejects this with "invalid config" (NADAC bug).
    result = accepted(
        '{"cniVersion":"0.3.1","plugins":[{"type":"bridge"},{"type":"portmap"}]}', "my-net"
    )
    assert result.kind == "conflist"
    assert result.conflist is not None
    assert result.conflist["name"] == "my-net"
    assert "name" not in result.conflist["plugins"][0]
    assert result.warnings == ()


def test_empty_name_counts_as_missing_and_is_replaced() -> None:
    result = accepted(conf(name=""), "my-net")
    assert result.conflist is not None
    assert result.conflist["name"] == "my-net"
    assert result.conflist["plugins"][0]["name"] == "my-net"


def test_an_existing_name_is_kept_and_a_different_name_warns_with_both_values() -> None:
    result = accepted(conf(name="other"), "my-net")
    assert result.conflist is not None
    assert result.conflist["name"] == "other"
    the_warning(result, "spec.config.name", '"my-net"', '"other"', "recommends they match")


def test_a_matching_name_does_not_warn() -> None:
    assert accepted(conf(name=NAD)).warnings == ()


@pytest.mark.parametrize(
    ("name", "fragment"),
    [("bad name", "contains ' '"), ("-x", "starts with '-'"), ("a/b", "contains '/'")],
)
def test_invalid_network_name_is_rejected(name: str, fragment: str) -> None:
    the_error(rejected(conf(name=name)), "spec.config.name", fragment, "use letters, digits")


def test_non_string_name_is_rejected() -> None:
    the_error(rejected(conf(name=5)), "spec.config.name", "5", "not a string")


def test_parse_netconf_object_without_nad_name_requires_a_name() -> None:
    result = parse_netconf_object(
        {"cniVersion": "0.3.1", "type": "bridge"}, None, path="/etc/cni/net.d/10-x.conf"
    )
    the_error(result, "/etc/cni/net.d/10-x.conf.name", "name is missing", 'no "name" key', "CNI-1")


def test_parse_netconf_object_without_nad_name_rejects_an_empty_name() -> None:
    the_error(
        parse_netconf_object({"name": "", "type": "bridge"}, None),
        "spec.config.name",
        "missing",
        '(got "")',
    )


def test_parse_netconf_object_accepts_a_named_conf_and_never_mutates_its_input() -> None:
    obj = {"cniVersion": "0.3.1", "name": "x", "type": "bridge", "ipam": {"type": "dhcp"}}
    before = copy.deepcopy(obj)
    result = parse_netconf_object(obj, None)
    assert result.ok
    assert obj == before
    assert result.conflist is not None
    result.conflist["plugins"][0]["ipam"]["type"] = "changed"
    assert obj == before


def test_parse_netconf_object_injects_the_nad_name_when_given() -> None:
    result = parse_netconf_object({"plugins": [{"type": "bridge"}], "cniVersion": "1.0.0"}, "nad-x")
    assert result.conflist is not None
    assert result.conflist["name"] == "nad-x"


def test_parse_netconf_object_rejects_a_non_object() -> None:
    the_error(parse_netconf_object(["x"], "n"), "spec.config", "a JSON list", "JSON object")


def test_an_unusable_nad_name_for_injection_is_reported() -> None:
    the_error(
        parse_netconf_object({"type": "bridge"}, "bad name"),
        "spec.config.name",
        "cannot be used",
        "contains ' '",
    )


# ----------------------------------------------------------------------------- type


@pytest.mark.parametrize(
    "value", ["bridge", "host-device", "cnv-bridge", "ovs", "tuning", "a_b.c-1", "portmap"]
)
def test_bare_plugin_file_names_are_accepted(value: str) -> None:
    assert plugin_type_problem(value) is None
    accepted(conf(type=value))


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("../../bin/sh", "not a path"),
        ("/bin/sh", "not a path"),
        ("sub/bridge", "not a path"),
        ("a..b", "not a path"),
        ("..", "not a path"),
        ("c:\\\\x", "not a path"),
        (".hidden", "starts with '.'"),
        ("-x", "starts with '-'"),
        ("bri dge", "contains ' '"),
        ("bridge\n", "contains '\\n'"),
        ("", "empty"),
    ],
)
def test_plugin_type_must_be_a_bare_file_name(value: str, fragment: str) -> None:
    problem = plugin_type_problem(value)
    assert problem is not None
    assert fragment in problem
    assert "bare file name of a plugin in the CNI bin directory" in problem


def test_type_that_walks_out_of_the_bin_directory_is_rejected_with_the_reason() -> None:
    message = the_error(
        rejected(conf(type="../../bin/sh")), "spec.config.type", '"../../bin/sh"', "bare file name"
    )
    assert "outside the configured CNI bin directories" in message


def test_empty_type_is_rejected() -> None:
    the_error(rejected(conf(type="")), "spec.config.type", "empty", '(got "")', "CNI bin directory")


def test_missing_type_is_rejected() -> None:
    the_error(
        rejected('{"cniVersion":"0.3.1","master":"eth0"}'),
        "spec.config.type",
        "missing",
        'no "type" key',
    )


def test_missing_type_in_a_conflist_plugin_is_rejected_at_its_index() -> None:
    result = rejected(conflist({"type": "bridge"}, {"capabilities": {"portMappings": True}}))
    the_error(result, "spec.config.plugins[1].type", "missing")


def test_missing_type_mentions_a_key_differing_only_in_case() -> None:
    result = rejected('{"cniVersion":"0.3.1","Type":"bridge"}')
    the_error(result, "spec.config.type", 'but "Type"', "case-sensitive")
    the_warning(result, "spec.config.Type", 'rename it to "type"')


def test_non_string_type_is_rejected_with_its_json_type() -> None:
    the_error(rejected(conf(type=5)), "spec.config.type", "must be a string", "(got 5, a number)")


def test_type_with_the_wrong_case_of_a_standard_plugin_warns() -> None:
    result = accepted(conf(type="MacVlan"))
    the_warning(result, "spec.config.type", '"macvlan"', "case-sensitive")


def test_plugin_type_regex_is_the_published_one() -> None:
    assert PLUGIN_TYPE_RE.pattern == r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


# ----------------------------------------------------------------------------- generic plugin keys


def test_capabilities_are_collected_across_plugins() -> None:
    result = accepted(
        conflist(
            {"type": "macvlan", "capabilities": {"ips": True, "mac": False}},
            {"type": "tuning", "capabilities": {"mac": True}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        )
    )
    assert result.capabilities == frozenset({"ips", "mac", "portMappings"})


def test_capabilities_must_be_an_object() -> None:
    the_error(
        rejected(conf(capabilities=["ips"])),
        "spec.config.capabilities",
        "object of booleans",
        '(got ["ips"]',
    )


def test_capability_values_must_be_booleans() -> None:
    the_error(
        rejected(conf(capabilities={"ips": "true"})),
        "spec.config.capabilities.ips",
        '(got "true", a string)',
        "true or false",
    )


def test_invalid_result_has_no_capabilities_or_version() -> None:
    result = rejected(conf(capabilities={"ips": True}, mtu=1))
    assert result.capabilities == frozenset()
    assert result.cni_version is None


def test_stored_runtime_config_warns_that_it_is_reserved() -> None:
    result = accepted(conf(runtimeConfig={"mac": "02:00:00:00:00:01"}))
    the_warning(result, "spec.config.runtimeConfig", "reserved", "generates it")


def test_cni_dev_keys_are_reserved() -> None:
    result = rejected(conf(**{"cni.dev/valid-attachments": []}))
    the_error(
        result,
        "spec.config[cni.dev/valid-attachments]",
        "reserved for the CNI protocol",
        '"cni.dev/valid-attachments"',
    )


def test_cni_dev_keys_in_a_conflist_plugin_are_reserved() -> None:
    result = rejected(conflist({"type": "bridge", "cni.dev/attachments": []}))
    the_error(result, "spec.config.plugins[0][cni.dev/attachments]", "reserved")


def test_args_object_is_accepted_and_kept() -> None:
    result = accepted(conf(args={"cni": {"labels": [{"key": "a", "value": "b"}]}}))
    assert result.conflist is not None
    assert result.conflist["plugins"][0]["args"] == {
        "cni": {"labels": [{"key": "a", "value": "b"}]}
    }


def test_args_must_be_an_object() -> None:
    the_error(
        rejected(conf(args="IP=1.2.3.4")),
        "spec.config.args",
        "must be a JSON object",
        '"IP=1.2.3.4"',
    )


def test_dns_of_the_spec_shape_is_accepted() -> None:
    accepted(
        conf(
            dns={
                "nameservers": ["10.1.0.1", "2001:db8::1"],
                "domain": "x.org",
                "search": ["x.org"],
                "options": ["ndots:2"],
            }
        )
    )


def test_dns_must_be_an_object_with_lists_of_strings() -> None:
    the_error(rejected(conf(dns="10.1.0.1")), "spec.config.dns", "must be a JSON object")
    the_error(
        rejected(conf(dns={"nameservers": "10.1.0.1"})),
        "spec.config.dns.nameservers",
        "list of strings",
    )


def test_dns_nameserver_that_is_not_an_ip_warns() -> None:
    the_warning(
        accepted(conf(dns={"nameservers": ["dns.local"]})),
        "spec.config.dns.nameservers[0]",
        '"dns.local"',
    )


@pytest.mark.parametrize("mtu", [0, 68, 1500, 9000, 65535])
def test_mtu_in_range_or_zero_is_accepted(mtu: int) -> None:
    accepted(conf(mtu=mtu))


@pytest.mark.parametrize("mtu", [50, 67, 65536, -1])
def test_mtu_out_of_range_is_rejected(mtu: int) -> None:
    the_error(
        rejected(conf(mtu=mtu)),
        "spec.config.mtu",
        "out of range",
        f"(got {mtu})",
        "68 to 65535",
        "0 for the default",
    )


@pytest.mark.parametrize(
    ("mtu", "fragment"),
    [
        (1500.0, "not a whole number"),
        (True, "a boolean"),
        ("1500", "without quotes"),
        (None, "a null"),
    ],
)
def test_mtu_must_be_an_integer_as_go_reads_it(mtu: object, fragment: str) -> None:
    the_error(rejected(conf(mtu=mtu)), "spec.config.mtu", "must be an integer", fragment)


def test_mtu_is_checked_on_unknown_plugin_types_too() -> None:
    the_error(rejected(conf(type="ovs", mtu=10)), "spec.config.mtu", "out of range")


def test_unknown_plugin_types_get_only_the_generic_checks() -> None:
    for plugin_type in ("cnv-bridge", "tuning", "portmap", "ovs"):
        accepted(conf(type=plugin_type, mode="anything", master="eth0:1", vlan=99999))


def test_key_differing_only_in_case_from_a_cni_key_warns() -> None:
    result = accepted(conf(CNIVersion="1.0.0"))
    the_warning(result, "spec.config.CNIVersion", '"cniVersion"')


# ----------------------------------------------------------------------------- versions


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_every_supported_version_is_accepted(version: str) -> None:
    result = accepted(conf(cniVersion=version))
    assert result.cni_version == version
    assert result.warnings == ()


@pytest.mark.parametrize("version", ["9.9.9", "0.3", "1.0", "v1.0.0", "1.0.0.0", "2.0.0"])
def test_unsupported_cni_version_is_rejected_with_the_list(version: str) -> None:
    message = the_error(
        rejected(conf(cniVersion=version)), "spec.config.cniVersion", f'"{version}"', "use one of"
    )
    assert ", ".join(SUPPORTED_VERSIONS) in message


def test_cni_version_close_to_a_supported_one_gets_a_suggestion() -> None:
    the_error(rejected(conf(cniVersion="0.3")), "spec.config.cniVersion", 'did you mean "0.3.0"')


def test_non_string_cni_version_is_rejected() -> None:
    the_error(
        rejected(conf(cniVersion=1.0)),
        "spec.config.cniVersion",
        "must be a string",
        "(got 1.0, a number)",
    )


def test_missing_cni_version_warns_that_it_means_legacy_0_1_0() -> None:
    result = accepted('{"type":"bridge"}')
    assert result.cni_version == "0.1.0"
    the_warning(result, "spec.config.cniVersion", "0.1.0", "legacy", '"0.3.1"', '"1.0.0"')


def test_empty_cni_version_counts_as_missing() -> None:
    result = accepted(conf(cniVersion=""))
    assert result.cni_version == "0.1.0"
    the_warning(result, "spec.config.cniVersion", '(got "")', "0.1.0")


def test_conflist_version_is_the_highest_of_cni_version_and_cni_versions() -> None:
    result = accepted(
        conflist({"type": "bridge"}, cniVersion="0.4.0", cniVersions=["0.3.1", "1.0.0"])
    )
    assert result.cni_version == "1.0.0"


def test_cni_versions_above_1_1_0_are_dropped_with_a_warning() -> None:
    result = accepted(
        conflist({"type": "bridge"}, cniVersion="0.4.0", cniVersions=["1.1.0", "2.0.0"])
    )
    assert result.cni_version == "1.1.0"
    the_warning(result, "spec.config.cniVersions[1]", '"2.0.0"', "left out")


def test_cni_versions_alone_choose_the_version_without_a_legacy_warning() -> None:
    doc = json.loads(conflist({"type": "bridge"}, cniVersions=["0.4.0", "1.0.0"]))
    del doc["cniVersion"]
    result = accepted(json.dumps(doc))
    assert result.cni_version == "1.0.0"
    assert result.warnings == ()


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [("1.0.0.0", '"1.0.0.0"'), ("abc", '"abc"'), (1, "(got 1)"), ("", '(got "")')],
)
def test_each_bad_cni_versions_entry_is_an_error(entry: object, fragment: str) -> None:
    result = rejected(conflist({"type": "bridge"}, cniVersions=["0.4.0", entry]))
    the_error(
        result, "spec.config.cniVersions[1]", "not a version", fragment, "at most 3 numeric parts"
    )


def test_cni_versions_must_be_a_list() -> None:
    the_error(
        rejected(conflist({"type": "bridge"}, cniVersions="1.0.0")),
        "spec.config.cniVersions",
        "must be a list",
    )


def test_a_chosen_version_that_no_plugin_accepts_is_an_error() -> None:
    result = rejected(conflist({"type": "bridge"}, cniVersion="0.4.0", cniVersions=["1.0"]))
    the_error(result, "spec.config.cniVersions[0]", "version chosen", '"1.0"', "exact versions")


def test_cni_versions_in_a_single_conf_warn_that_they_are_ignored() -> None:
    result = accepted(conf(cniVersions=["1.0.0"]))
    assert result.cni_version == "0.3.1"
    the_warning(result, "spec.config.cniVersions", "only read from a conflist")


def test_plugin_level_cni_version_that_differs_from_the_list_warns() -> None:
    result = accepted(
        conflist(
            {"type": "bridge", "cniVersion": "0.3.1"}, {"type": "tuning", "cniVersion": "1.0.0"}
        )
    )
    the_warning(result, "spec.config.plugins[0].cniVersion", '"1.0.0"', '"0.3.1"', "list's version")
    assert messages(result.warnings, "spec.config.plugins[1].cniVersion") == []


def test_plugin_level_cni_version_must_be_a_string() -> None:
    the_error(
        rejected(conflist({"type": "bridge", "cniVersion": 1})),
        "spec.config.plugins[0].cniVersion",
        "must be a string",
    )


def test_plugin_level_name_must_be_a_string() -> None:
    the_error(
        rejected(conflist({"type": "bridge", "name": 7})),
        "spec.config.plugins[0].name",
        "must be a string",
    )


# ----------------------------------------------------------------------------- flags


@pytest.mark.parametrize("value", [True, False, "true", "FALSE", "True"])
@pytest.mark.parametrize("key", ["disableCheck", "disableGC", "loadOnlyInlinedPlugins"])
def test_list_flags_accept_booleans_and_true_false_strings(key: str, value: object) -> None:
    accepted(conflist({"type": "bridge"}, **{key: value}))


@pytest.mark.parametrize("value", ["yes", 1, None, "tru"])
@pytest.mark.parametrize("key", ["disableCheck", "disableGC", "loadOnlyInlinedPlugins"])
def test_list_flags_reject_other_values(key: str, value: object) -> None:
    result = rejected(conflist({"type": "bridge"}, **{key: value}))
    the_error(
        result,
        f"spec.config.{key}",
        "true or false",
        f"(got {json.dumps(value)}",
        '"true" or "false"',
    )


def test_load_only_inlined_plugins_without_plugins_is_rejected() -> None:
    result = rejected(conf(loadOnlyInlinedPlugins="true"))
    the_error(result, "spec.config.loadOnlyInlinedPlugins", 'no "plugins" list', "remove the flag")


def test_load_only_inlined_plugins_false_without_plugins_is_fine() -> None:
    accepted(conf(loadOnlyInlinedPlugins=False))


def test_disable_check_in_a_single_conf_warns_that_it_has_no_effect() -> None:
    the_warning(
        accepted(conf(disableCheck=True)), "spec.config.disableCheck", "only applies to a conflist"
    )


# ----------------------------------------------------------------------------- host-local


def host_local(**fields: Any) -> dict[str, Any]:
    return {"type": "host-local", **fields}


def test_host_local_subnet_with_range_and_gateway_is_accepted() -> None:
    accepted(
        with_ipam(
            host_local(
                subnet="10.1.0.0/24",
                rangeStart="10.1.0.10",
                rangeEnd="10.1.0.20",
                gateway="10.1.0.1",
            )
        )
    )


def test_host_local_ipv6_subnet_is_accepted() -> None:
    accepted(
        with_ipam(
            host_local(subnet="2001:db8::/64", rangeStart="2001:db8::10", gateway="2001:db8::1")
        )
    )


def test_host_local_ranges_of_range_sets_are_accepted() -> None:
    accepted(
        with_ipam(
            host_local(
                ranges=[
                    [
                        {
                            "subnet": "10.1.0.0/24",
                            "rangeStart": "10.1.0.10",
                            "rangeEnd": "10.1.0.50",
                        },
                        {
                            "subnet": "10.1.0.0/24",
                            "rangeStart": "10.1.0.100",
                            "rangeEnd": "10.1.0.150",
                        },
                    ],
                    [{"subnet": "2001:db8::/64"}],
                ]
            )
        )
    )


def test_host_local_without_subnet_or_ranges_is_rejected() -> None:
    the_error(
        rejected(with_ipam(host_local())),
        "spec.config.ipam",
        'neither "subnet" nor "ranges"',
        '"subnet": "10.1.0.0/24"',
    )


def test_host_local_without_ranges_is_fine_when_ranges_come_from_the_ip_ranges_capability() -> None:
    accepted(with_ipam(host_local(), capabilities={"ipRanges": True}))


def test_host_local_range_start_outside_the_subnet_is_rejected_naming_the_subnet() -> None:
    result = rejected(with_ipam(host_local(subnet="192.168.1.0/24", rangeStart="192.168.2.10")))
    the_error(
        result, "spec.config.ipam.rangeStart", "outside the subnet 192.168.1.0/24", '"192.168.2.10"'
    )


def test_host_local_range_end_outside_the_subnet_is_rejected() -> None:
    the_error(
        rejected(with_ipam(host_local(subnet="10.1.0.0/24", rangeEnd="10.2.0.1"))),
        "spec.config.ipam.rangeEnd",
        "outside the subnet 10.1.0.0/24",
    )


def test_host_local_gateway_outside_the_subnet_is_rejected() -> None:
    result = rejected(with_ipam(host_local(subnet="10.1.0.0/24", gateway="10.1.1.1")))
    the_error(result, "spec.config.ipam.gateway", "outside the subnet 10.1.0.0/24", '"10.1.1.1"')


def test_host_local_range_start_after_range_end_is_rejected() -> None:
    result = rejected(
        with_ipam(
            host_local(
                subnet="192.168.1.0/24", rangeStart="192.168.1.216", rangeEnd="192.168.1.200"
            )
        )
    )
    the_error(
        result,
        "spec.config.ipam.rangeEnd",
        "rangeStart comes after rangeEnd",
        "192.168.1.216",
        "192.168.1.200",
    )


def test_host_local_range_start_of_another_family_is_rejected() -> None:
    result = rejected(with_ipam(host_local(subnet="10.1.0.0/24", rangeStart="2001:db8::1")))
    the_error(result, "spec.config.ipam.rangeStart", "IPv6", "IPv4", "10.1.0.0/24")


def test_host_local_range_start_that_is_not_an_ip_is_rejected() -> None:
    the_error(
        rejected(with_ipam(host_local(subnet="10.1.0.0/24", rangeStart="10.1.0"))),
        "spec.config.ipam.rangeStart",
        '"10.1.0"',
        "IPv4 address",
    )


def test_host_local_subnet_must_be_a_cidr() -> None:
    the_error(
        rejected(with_ipam(host_local(subnet="10.1.0.0"))),
        "spec.config.ipam.subnet",
        "no prefix length",
        "10.1.0.0/24",
    )


def test_host_local_subnet_with_host_bits_warns_with_the_network_used() -> None:
    result = accepted(with_ipam(host_local(subnet="192.168.1.5/24")))
    the_warning(result, "spec.config.ipam.subnet", '"192.168.1.5/24"', "192.168.1.0/24")


@pytest.mark.parametrize("subnet", ["10.1.0.0/31", "10.1.0.1/32", "2001:db8::/127"])
def test_host_local_subnet_too_small_to_allocate_from_is_rejected(subnet: str) -> None:
    the_error(
        rejected(with_ipam(host_local(subnet=subnet))), "spec.config.ipam.subnet", "too small"
    )


def test_host_local_top_level_range_start_without_subnet_is_rejected() -> None:
    result = rejected(
        with_ipam(host_local(ranges=[[{"subnet": "10.1.0.0/24"}]], rangeStart="10.1.0.5"))
    )
    the_error(result, "spec.config.ipam.rangeStart", 'without "subnet"', '"10.1.0.5"')


def test_host_local_range_without_subnet_is_rejected_at_its_path() -> None:
    result = rejected(
        conflist(
            {"type": "bridge"},
            {
                "type": "macvlan",
                "ipam": host_local(
                    ranges=[[{"subnet": "10.1.0.0/24"}, {"rangeStart": "10.2.0.1"}]]
                ),
            },
        )
    )
    the_error(result, "spec.config.plugins[1].ipam.ranges[0][1].subnet", "needs a subnet")


def test_host_local_range_start_inside_ranges_is_checked_with_the_full_path() -> None:
    result = rejected(
        conflist(
            {"type": "bridge"},
            {
                "type": "macvlan",
                "ipam": host_local(
                    ranges=[
                        [
                            {"subnet": "10.1.0.0/24"},
                            {"subnet": "10.2.0.0/24", "rangeStart": "10.3.0.1"},
                        ]
                    ]
                ),
            },
        )
    )
    the_error(
        result,
        "spec.config.plugins[1].ipam.ranges[0][1].rangeStart",
        "outside the subnet 10.2.0.0/24",
    )


@pytest.mark.parametrize(
    ("ranges", "fragment"),
    [
        ("x", "must be a list of range sets"),
        ([[]], "non-empty list"),
        ([{"subnet": "10.1.0.0/24"}], "non-empty list"),
        ([[5]], "must be a JSON object"),
    ],
)
def test_host_local_ranges_must_have_the_list_of_lists_shape(ranges: object, fragment: str) -> None:
    result = rejected(with_ipam(host_local(ranges=ranges)))
    assert any(fragment in e.message for e in result.errors), [str(e) for e in result.errors]
    assert all(e.path.startswith("spec.config.ipam.ranges") for e in result.errors)


def test_host_local_overlapping_ranges_are_rejected_naming_both_paths() -> None:
    result = rejected(
        with_ipam(host_local(ranges=[[{"subnet": "10.1.0.0/24"}], [{"subnet": "10.1.0.0/25"}]]))
    )
    the_error(
        result,
        "spec.config.ipam.ranges[1][0]",
        "overlaps the range at spec.config.ipam.ranges[0][0]",
        "10.1.0.1-10.1.0.126",
    )


def test_host_local_subnet_overlapping_a_range_in_ranges_is_rejected() -> None:
    result = rejected(
        with_ipam(host_local(subnet="10.1.0.0/16", ranges=[[{"subnet": "10.1.5.0/24"}]]))
    )
    the_error(result, "spec.config.ipam.ranges[0][0]", "overlaps the range at spec.config.ipam")


def test_host_local_ranges_in_one_subnet_that_do_not_overlap_are_accepted() -> None:
    accepted(
        with_ipam(
            host_local(
                ranges=[
                    [{"subnet": "10.1.0.0/24", "rangeStart": "10.1.0.1", "rangeEnd": "10.1.0.9"}],
                    [{"subnet": "10.1.0.0/24", "rangeStart": "10.1.0.10", "rangeEnd": "10.1.0.19"}],
                ]
            )
        )
    )


def test_host_local_overlap_is_checked_across_the_whole_conflist() -> None:
    result = rejected(
        conflist(
            {"type": "bridge", "ipam": host_local(subnet="10.9.0.0/24")},
            {"type": "macvlan", "ipam": host_local(subnet="10.9.0.0/24", rangeStart="10.9.0.100")},
        )
    )
    the_error(
        result, "spec.config.plugins[1].ipam", "overlaps the range at spec.config.plugins[0].ipam"
    )


def test_host_local_range_set_mixing_families_is_rejected() -> None:
    result = rejected(
        with_ipam(host_local(ranges=[[{"subnet": "10.1.0.0/24"}, {"subnet": "2001:db8::/64"}]]))
    )
    the_error(result, "spec.config.ipam.ranges[0]", "mixes IPv4 and IPv6", "[0][0]", "[0][1]")


def test_routes_are_checked_for_every_known_ipam_type() -> None:
    for ipam in (
        host_local(subnet="10.1.0.0/24"),
        {"type": "dhcp"},
        {"type": "static"},
        {"type": "whereabouts", "range": "10.1.0.0/24"},
    ):
        ok = dict(
            ipam,
            routes=[
                {"dst": "0.0.0.0/0"},
                {"dst": "10.2.0.0/16", "gw": "10.1.0.1"},
                {"dst": "::/0"},
            ],
        )
        accepted(with_ipam(ok))
        the_error(
            rejected(with_ipam(dict(ipam, routes=[{"dst": "10.2.0.0"}]))),
            "spec.config.ipam.routes[0].dst",
            "no prefix length",
        )


@pytest.mark.parametrize(
    ("routes", "path", "fragment"),
    [
        ({"dst": "0.0.0.0/0"}, "spec.config.ipam.routes", "must be a list"),
        (["0.0.0.0/0"], "spec.config.ipam.routes[0]", "must be a JSON object"),
        ([{"gw": "10.1.0.1"}], "spec.config.ipam.routes[0].dst", 'no "dst" key'),
        (
            [{"dst": "0.0.0.0/0", "gw": "10.1.0.1/24"}],
            "spec.config.ipam.routes[0].gw",
            "has a prefix length",
        ),
        (
            [{"dst": "0.0.0.0/0", "gw": "2001:db8::1"}],
            "spec.config.ipam.routes[0].gw",
            "same family",
        ),
    ],
)
def test_bad_routes_are_rejected(routes: object, path: str, fragment: str) -> None:
    the_error(rejected(with_ipam(host_local(subnet="10.1.0.0/24", routes=routes))), path, fragment)


def test_routes_of_unknown_ipam_types_are_not_checked() -> None:
    accepted(with_ipam({"type": "my-ipam", "routes": "whatever"}))


# ----------------------------------------------------------------------------- ipam generic


def test_ipam_must_be_an_object() -> None:
    the_error(
        rejected(conf(ipam="host-local")),
        "spec.config.ipam",
        "must be a JSON object",
        '"host-local"',
    )


def test_ipam_type_must_be_a_bare_file_name() -> None:
    result = rejected(with_ipam({"type": "../ipam/host-local", "subnet": "10.1.0.0/24"}))
    the_error(
        result,
        "spec.config.ipam.type",
        "IPAM type must be a bare file name",
        '"../ipam/host-local"',
    )


def test_empty_ipam_object_means_no_ipam() -> None:
    assert accepted(conf(ipam={})).warnings == ()


def test_ipam_settings_without_a_type_warn_that_they_are_ignored() -> None:
    the_warning(
        accepted(with_ipam({"subnet": "10.1.0.0/24"})), "spec.config.ipam", "no type", '"subnet"'
    )


def test_dhcp_needs_nothing() -> None:
    accepted(with_ipam({"type": "dhcp"}))


def test_unknown_ipam_type_is_checked_only_for_its_type() -> None:
    accepted(with_ipam({"type": "calico-ipam", "subnet": "usePodCidr"}))


# ----------------------------------------------------------------------------- static


def test_static_addresses_with_gateways_and_dns_are_accepted() -> None:
    accepted(
        with_ipam(
            {
                "type": "static",
                "addresses": [
                    {"address": "10.10.0.1/24", "gateway": "10.10.0.254"},
                    {"address": "2001:db8::1/64"},
                ],
                "dns": {"nameservers": ["8.8.8.8"]},
            }
        )
    )


def test_static_address_without_prefix_is_rejected_with_an_example() -> None:
    result = rejected(with_ipam({"type": "static", "addresses": [{"address": "10.10.0.1"}]}))
    the_error(
        result,
        "spec.config.ipam.addresses[0].address",
        '"10.10.0.1"',
        "add a prefix length, e.g. 10.10.0.1/24",
    )


@pytest.mark.parametrize(
    ("addresses", "path", "fragment"),
    [
        ("10.10.0.1/24", "spec.config.ipam.addresses", "must be a list"),
        (["10.10.0.1/24"], "spec.config.ipam.addresses[0]", "must be a JSON object"),
        ([{"gateway": "10.10.0.254"}], "spec.config.ipam.addresses[0].address", 'no "address" key'),
        (
            [{"address": "10.10.0.300/24"}],
            "spec.config.ipam.addresses[0].address",
            '"10.10.0.300/24"',
        ),
        (
            [{"address": "10.10.0.1/24", "gateway": "nope"}],
            "spec.config.ipam.addresses[0].gateway",
            '"nope"',
        ),
        (
            [{"address": "10.10.0.1/24", "gateway": "2001:db8::1"}],
            "spec.config.ipam.addresses[0].gateway",
            "same family",
        ),
    ],
)
def test_bad_static_addresses_are_rejected(addresses: object, path: str, fragment: str) -> None:
    the_error(rejected(with_ipam({"type": "static", "addresses": addresses})), path, fragment)


def test_static_dns_must_be_an_object() -> None:
    the_error(
        rejected(with_ipam({"type": "static", "dns": ["8.8.8.8"]})),
        "spec.config.ipam.dns",
        "must be a JSON object",
    )


# ----------------------------------------------------------------------------- whereabouts


def wb(**fields: Any) -> dict[str, Any]:
    return {"type": "whereabouts", **fields}


@pytest.mark.parametrize(
    "value",
    ["192.168.2.0/24", "192.168.2.225-192.168.2.230/28", "fd00::1-fd00::10/64", "2001:db8::/64"],
)
def test_whereabouts_range_accepts_cidr_and_first_last_prefix_forms(value: str) -> None:
    accepted(with_ipam(wb(range=value)))


def test_whereabouts_range_start_end_and_exclude_inside_the_range_are_accepted() -> None:
    accepted(
        with_ipam(
            wb(
                range="192.168.2.0/24",
                range_start="192.168.2.10",
                range_end="192.168.2.100",
                exclude=["192.168.2.0/28", "192.168.2.200/32"],
            )
        )
    )


def test_whereabouts_ip_ranges_are_accepted_without_range() -> None:
    accepted(
        with_ipam(
            wb(
                ipRanges=[
                    {"range": "10.1.0.0/24", "exclude": ["10.1.0.0/30"]},
                    {"range": "fd00::/64"},
                ]
            )
        )
    )


def test_whereabouts_without_range_or_ip_ranges_is_rejected() -> None:
    the_error(
        rejected(with_ipam(wb())),
        "spec.config.ipam",
        'neither "range" nor "ipRanges"',
        "192.168.2.225-192.168.2.230/28",
    )


def test_whereabouts_exclude_outside_the_range_is_rejected_naming_the_range() -> None:
    result = rejected(
        with_ipam(wb(range="192.168.2.0/24", exclude=["192.168.2.0/28", "10.0.0.0/24"]))
    )
    the_error(
        result, "spec.config.ipam.exclude[1]", "outside the range 192.168.2.0/24", '"10.0.0.0/24"'
    )


def test_whereabouts_exclude_larger_than_the_range_is_rejected() -> None:
    the_error(
        rejected(with_ipam(wb(range="192.168.2.0/24", exclude=["192.168.0.0/16"]))),
        "spec.config.ipam.exclude[0]",
        "outside the range",
    )


def test_whereabouts_exclude_entries_must_be_cidrs() -> None:
    the_error(
        rejected(with_ipam(wb(range="192.168.2.0/24", exclude=["192.168.2.5"]))),
        "spec.config.ipam.exclude[0]",
        "no prefix length",
    )
    the_error(
        rejected(with_ipam(wb(range="192.168.2.0/24", exclude="192.168.2.0/28"))),
        "spec.config.ipam.exclude",
        "must be a list",
    )


def test_whereabouts_range_start_outside_the_range_is_rejected() -> None:
    result = rejected(with_ipam(wb(range="192.168.2.0/24", range_start="192.168.3.1")))
    the_error(result, "spec.config.ipam.range_start", "outside the range 192.168.2.0/24")


def test_whereabouts_range_start_after_range_end_is_rejected() -> None:
    result = rejected(
        with_ipam(wb(range="192.168.2.0/24", range_start="192.168.2.50", range_end="192.168.2.10"))
    )
    the_error(result, "spec.config.ipam.range_end", "comes before range_start")


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("192.168.2.0", "no prefix length"),
        ("x-192.168.2.230/28", "first address"),
        ("192.168.2.1-192.168.2.230", "last address"),
        ("192.168.3.1-192.168.2.230/28", "outside the range network"),
        ("192.168.2.230-192.168.2.225/28", "starts after it ends"),
        (5, "must be a string"),
    ],
)
def test_whereabouts_bad_range_is_rejected(value: object, fragment: str) -> None:
    the_error(rejected(with_ipam(wb(range=value))), "spec.config.ipam.range", fragment)


def test_whereabouts_ip_ranges_entries_are_checked_with_their_path() -> None:
    result = rejected(
        with_ipam(
            wb(
                ipRanges=[
                    {"range": "10.1.0.0/24"},
                    {"range": "10.2.0.0/24", "exclude": ["10.3.0.0/24"]},
                ]
            )
        )
    )
    the_error(result, "spec.config.ipam.ipRanges[1].exclude[0]", "outside the range 10.2.0.0/24")
    the_error(
        rejected(with_ipam(wb(ipRanges=[{"exclude": []}]))),
        "spec.config.ipam.ipRanges[0].range",
        'no "range" key',
    )
    the_error(
        rejected(with_ipam(wb(ipRanges="10.1.0.0/24"))),
        "spec.config.ipam.ipRanges",
        "must be a list",
    )


def test_whereabouts_range_start_with_the_first_last_form_warns_that_it_is_ignored() -> None:
    the_warning(
        accepted(
            with_ipam(wb(range="192.168.2.225-192.168.2.230/28", range_start="192.168.2.226"))
        ),
        "spec.config.ipam.range_start",
        "ignored",
    )


# ----------------------------------------------------------------------------- macvlan / ipvlan


@pytest.mark.parametrize("mode", ["bridge", "private", "vepa", "passthru", "source", ""])
def test_macvlan_modes_are_accepted(mode: str) -> None:
    accepted(conf(type="macvlan", mode=mode))


def test_macvlan_unknown_mode_is_rejected_with_the_choices() -> None:
    the_error(
        rejected(conf(type="macvlan", mode="foo")),
        "spec.config.mode",
        '(got "foo")',
        "bridge, private, vepa, passthru, source",
    )


def test_macvlan_mode_typo_gets_a_suggestion() -> None:
    the_error(
        rejected(conf(type="macvlan", mode="brige")), "spec.config.mode", 'did you mean "bridge"'
    )


@pytest.mark.parametrize("master", ["eth0", "ens1f0", "bond0.100", "virbr0"])
def test_valid_master_names_are_accepted(master: str) -> None:
    accepted(conf(type="macvlan", master=master))
    accepted(conf(type="ipvlan", master=master))
    accepted(conf(type="vlan", master=master, vlanId=5))


@pytest.mark.parametrize(
    ("master", "fragment"),
    [("eth0:1", "contains ':'"), ("a" * 16, "16 bytes"), ("", "empty"), ("eth 0", "whitespace")],
)
def test_bad_master_names_are_rejected(master: str, fragment: str) -> None:
    for plugin_type in ("macvlan", "ipvlan", "vlan"):
        the_error(
            rejected(conf(type=plugin_type, master=master)),
            "spec.config.master",
            fragment,
            "not a valid interface name",
        )


@pytest.mark.parametrize("mode", ["l2", "l3", "l3s"])
def test_ipvlan_modes_are_accepted(mode: str) -> None:
    accepted(conf(type="ipvlan", mode=mode, flag="bridge"))


def test_ipvlan_mode_l4_is_rejected() -> None:
    the_error(
        rejected(conf(type="ipvlan", mode="l4")), "spec.config.mode", '(got "l4")', "l2, l3, l3s"
    )


def test_ipvlan_bad_flag_is_rejected() -> None:
    the_error(
        rejected(conf(type="ipvlan", flag="public")),
        "spec.config.flag",
        '"public"',
        "bridge, private, vepa",
    )


# ----------------------------------------------------------------------------- bridge


def test_bridge_fields_of_the_right_types_are_accepted() -> None:
    accepted(
        conf(
            type="bridge",
            bridge="br0",
            vlan=4094,
            mtu=9000,
            isGateway=True,
            isDefaultGateway=False,
            ipMasq=True,
            hairpinMode=False,
            promiscMode=True,
            vlanTrunk=[{"id": 42}, {"minID": 100, "maxID": 200}, {"minID": 5, "maxID": 5}],
        )
    )


@pytest.mark.parametrize("vlan", [5000, -1, 4095])
def test_bridge_vlan_out_of_range_is_rejected(vlan: int) -> None:
    the_error(
        rejected(conf(type="bridge", vlan=vlan)), "spec.config.vlan", f"(got {vlan})", "0 to 4094"
    )


def test_bridge_vlan_must_be_an_integer() -> None:
    the_error(
        rejected(conf(type="bridge", vlan="100")),
        "spec.config.vlan",
        "must be an integer",
        "without quotes",
    )


def test_bridge_name_must_be_an_interface_name() -> None:
    the_error(
        rejected(conf(type="bridge", bridge="my/bridge")), "spec.config.bridge", "contains '/'"
    )


@pytest.mark.parametrize(
    "key", ["isGateway", "isDefaultGateway", "ipMasq", "hairpinMode", "promiscMode"]
)
def test_bridge_booleans_must_be_booleans(key: str) -> None:
    the_error(
        rejected(conf(type="bridge", **{key: "true"})),
        f"spec.config.{key}",
        "true or false",
        '(got "true", a string)',
    )


@pytest.mark.parametrize(
    ("trunk", "path", "fragment"),
    [
        ({"id": 1}, "spec.config.vlanTrunk", "must be a list"),
        ([5], "spec.config.vlanTrunk[0]", "must be a JSON object"),
        ([{}], "spec.config.vlanTrunk[0]", 'needs "id"'),
        ([{"id": 0}], "spec.config.vlanTrunk[0].id", "1 to 4094"),
        ([{"id": 4095}], "spec.config.vlanTrunk[0].id", "(got 4095)"),
        ([{"minID": 10}], "spec.config.vlanTrunk[0].maxID", "go together"),
        ([{"maxID": 10}], "spec.config.vlanTrunk[0].minID", "go together"),
        ([{"minID": 0, "maxID": 10}], "spec.config.vlanTrunk[0].minID", "out of range"),
        ([{"minID": 10, "maxID": 5000}], "spec.config.vlanTrunk[0].maxID", "out of range"),
        ([{"minID": 200, "maxID": 100}], "spec.config.vlanTrunk[0].maxID", "lower than minID"),
    ],
)
def test_bridge_bad_vlan_trunks_are_rejected(trunk: object, path: str, fragment: str) -> None:
    the_error(rejected(conf(type="bridge", vlanTrunk=trunk)), path, fragment)


# ----------------------------------------------------------------------------- host-device / sriov / vlan


def test_host_device_device_name_is_checked() -> None:
    accepted(conf(type="host-device", device="ens2f1"))
    accepted(conf(type="host-device", pciBusID="0000:03:00.1"))
    the_error(
        rejected(conf(type="host-device", device="ens2f1:0")), "spec.config.device", "contains ':'"
    )


def test_sriov_vlan_and_qos_in_range_are_accepted() -> None:
    accepted(conf(type="sriov", vlan=4094, vlanQoS=7, link_state="enable"))


@pytest.mark.parametrize(
    ("fields", "path", "fragment"),
    [
        ({"vlan": 5000}, "spec.config.vlan", "0 to 4094"),
        ({"vlan": 10, "vlanQoS": 8}, "spec.config.vlanQoS", "0 to 7"),
        ({"vlanQoS": 3}, "spec.config.vlanQoS", "needs a VLAN"),
        ({"vlan": 0, "vlanQoS": 3}, "spec.config.vlanQoS", "non-zero vlan"),
        ({"link_state": "up"}, "spec.config.link_state", "auto, enable, disable"),
    ],
)
def test_sriov_bad_fields_are_rejected(fields: dict[str, Any], path: str, fragment: str) -> None:
    the_error(rejected(conf(type="sriov", **fields)), path, fragment)


@pytest.mark.parametrize(
    "plugin_type", ["vlan", "macvlan", "ipvlan", "bridge", "host-device", "sriov"]
)
def test_vlan_id_is_checked_on_the_common_plugins(plugin_type: str) -> None:
    accepted(conf(type=plugin_type, vlanId=4094))
    the_error(
        rejected(conf(type=plugin_type, vlanId=5000)),
        "spec.config.vlanId",
        "(got 5000)",
        "0 to 4094",
    )


# ----------------------------------------------------------------------------- results and paths


def test_conflist_plugin_paths_include_the_index() -> None:
    result = rejected(
        conflist(
            {"type": "bridge"},
            {
                "type": "macvlan",
                "mode": "foo",
                "ipam": host_local(subnet="10.1.0.0/24", gateway="10.2.0.1"),
            },
        )
    )
    assert {e.path for e in result.errors} == {
        "spec.config.plugins[1].mode",
        "spec.config.plugins[1].ipam.gateway",
    }


def test_a_custom_path_prefixes_every_problem() -> None:
    result = parse_netconf(conf(mtu=1), NAD, path="delegates[2]")
    assert [e.path for e in result.errors] == ["delegates[2].mtu"]


def test_findings_carry_errors_and_warnings() -> None:
    result = parse_netconf('{"type":"bridge","mtu":1}', NAD)
    assert result.findings == Findings(result.errors, result.warnings)
    assert not result.findings.ok


def test_every_error_reads_as_path_colon_message_with_the_value_and_a_hint() -> None:
    bad = [
        conf(type="../../bin/sh"),
        conf(mtu=50),
        conf(type="macvlan", mode="foo"),
        conf(cniVersion="9.9.9"),
        with_ipam(host_local(subnet="10.1.0.0/24", rangeStart="10.2.0.1")),
    ]
    for config in bad:
        for error in rejected(config).errors:
            assert str(error).startswith(error.path + ": ")
            assert "(got " in error.message
            assert "; " in error.message


def test_parsing_never_mutates_the_given_config_string_result() -> None:
    config = SEEDS["macvlan-conf"]
    first = accepted(config, "macvlan-conf")
    assert first.conflist is not None
    first.conflist["plugins"][0]["ipam"]["subnet"] = "changed"
    second = accepted(config, "macvlan-conf")
    assert second.conflist is not None
    assert second.conflist["plugins"][0]["ipam"]["subnet"] == "192.168.1.0/24"


def test_a_normalized_conflist_parses_back_to_itself() -> None:
    for nad, config in SEEDS.items():
        first = accepted(config, nad)
        again = accepted(json.dumps(first.conflist), nad)
        assert again.conflist == first.conflist
        assert again.kind == "conflist"
        assert again.cni_version == first.cni_version
