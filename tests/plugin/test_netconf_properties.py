"""Properties of plugin.model.netconf: it never raises, and what it normalizes it reads back the same."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from plugin.model.netconf import (
    SUPPORTED_VERSIONS,
    NetConfResult,
    parse_netconf,
    parse_netconf_object,
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)

# Keys the parser looks at, so that arbitrary values land where the checks are.
PLUGIN_KEYS = [
    "type", "name", "cniVersion", "cniVersions", "plugins", "capabilities", "runtimeConfig",
    "args", "dns", "mtu", "mode", "flag", "master", "bridge", "device", "vlan", "vlanId",
    "vlanQoS", "vlanTrunk", "link_state", "isGateway", "disableCheck", "disableGC",
    "loadOnlyInlinedPlugins", "cni.dev/x", "Type",
]
IPAM_KEYS = [
    "type", "subnet", "rangeStart", "rangeEnd", "gateway", "ranges", "routes", "addresses",
    "dns", "range", "range_start", "range_end", "exclude", "ipRanges",
]
PLUGIN_TYPES = ["bridge", "macvlan", "ipvlan", "host-device", "sriov", "vlan", "tuning", "x"]
IPAM_TYPES = ["host-local", "static", "whereabouts", "dhcp", "other"]

addresses = st.sampled_from(["10.1.0.1", "10.1.0.0/24", "10.1.0.300", "2001:db8::1", "::/0",
                             "10.1.0.10-10.1.0.20/24", "0.0.0.0/0", "x", ""])
leaf = json_values | addresses
range_obj = st.dictionaries(st.sampled_from(IPAM_KEYS), leaf, max_size=5)
ipam = st.fixed_dictionaries(
    {"type": st.sampled_from(IPAM_TYPES) | json_values},
    optional={
        key: leaf | st.lists(range_obj | st.lists(range_obj, max_size=3), max_size=3)
        for key in IPAM_KEYS if key != "type"
    },
)
plugin_like = st.fixed_dictionaries(
    {},
    optional={
        **{key: leaf for key in PLUGIN_KEYS},
        "type": st.sampled_from(PLUGIN_TYPES) | json_values,
        "ipam": ipam | json_values,
    },
)
config_like = plugin_like | st.fixed_dictionaries(
    {"plugins": st.lists(plugin_like | json_values, max_size=3) | json_values},
    optional={key: leaf for key in PLUGIN_KEYS if key != "plugins"},
)


def consistent(result: NetConfResult) -> None:
    """Whatever the input, the result tells one story."""
    assert result.ok == (not result.errors)
    assert (result.kind == "invalid") == (not result.ok)
    if result.kind in ("empty", "invalid"):
        assert result.conflist is None
        assert result.cni_version is None
        assert result.plugin_types == ()
    else:
        assert result.conflist is not None
        assert result.cni_version in SUPPORTED_VERSIONS
        assert isinstance(result.conflist["name"], str)
        assert len(result.plugin_types) == len(result.conflist["plugins"]) >= 1
    for problem in result.errors + result.warnings:
        assert isinstance(problem.path, str)
        assert isinstance(problem.message, str) and problem.message
        json.dumps(problem.message)


@given(st.text())
def test_parse_netconf_never_raises_on_arbitrary_text(text: str) -> None:
    consistent(parse_netconf(text, "net"))


@given(json_values)
def test_parse_netconf_never_raises_on_arbitrary_json(value: Any) -> None:
    consistent(parse_netconf(json.dumps(value), "net"))


@given(json_values, st.none() | st.sampled_from(["net", "", "bad name"]))
def test_parse_netconf_object_never_raises_on_arbitrary_json(value: Any, nad: str | None) -> None:
    consistent(parse_netconf_object(value, nad))


@settings(max_examples=300)
@given(config_like)
def test_config_shaped_input_never_raises_and_is_never_mutated(value: dict[str, Any]) -> None:
    before = json.dumps(value, sort_keys=True)
    consistent(parse_netconf_object(value, "net"))
    consistent(parse_netconf(json.dumps(value), "net"))
    assert json.dumps(value, sort_keys=True) == before


@given(st.text(alphabet='{}[]":,0123456789.eE+-tfnrulas \\', max_size=40))
def test_json_like_noise_never_raises(text: str) -> None:
    consistent(parse_netconf(text, "net"))


# ----------------------------------------------------------------------------- valid configs

ifnames = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=15).filter(
    lambda s: s not in (".", "..")
)
cni_names = st.from_regex(r"\A[a-z0-9][a-z0-9_.-]{0,20}\Z")
extra_keys = st.dictionaries(
    st.from_regex(r"\Ax-[a-z]{1,8}\Z"), json_values, max_size=3
)


@st.composite
def subnets(draw: st.DrawFn) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if draw(st.booleans()):
        address: ipaddress.IPv4Address | ipaddress.IPv6Address = draw(st.ip_addresses(v=4))
        prefix = draw(st.integers(0, 30))
    else:
        address = draw(st.ip_addresses(v=6))
        prefix = draw(st.integers(0, 126))
    return ipaddress.ip_network(f"{address}/{prefix}", strict=False)


@st.composite
def host_local(draw: st.DrawFn) -> dict[str, Any]:
    network = draw(subnets())
    ipam: dict[str, Any] = {"type": "host-local", "subnet": str(network)}
    size = network.num_addresses
    low, high = sorted(draw(st.lists(st.integers(1, min(size - 2, 2**20)), min_size=2, max_size=2)))
    if draw(st.booleans()):
        ipam["rangeStart"] = str(network[low])
        ipam["rangeEnd"] = str(network[high])
    if draw(st.booleans()):
        ipam["gateway"] = str(network[1])
    if draw(st.booleans()):
        default = "0.0.0.0/0" if network.version == 4 else "::/0"
        ipam["routes"] = [{"dst": default}]
    return ipam


@st.composite
def valid_confs(draw: st.DrawFn) -> dict[str, Any]:
    plugin_type = draw(st.sampled_from(["macvlan", "ipvlan", "bridge", "sriov", "tuning", "my-plugin"]))
    doc: dict[str, Any] = draw(extra_keys)
    doc["type"] = plugin_type
    if draw(st.booleans()):
        doc["cniVersion"] = draw(st.sampled_from(SUPPORTED_VERSIONS))
    if draw(st.booleans()):
        doc["name"] = draw(cni_names)
    if draw(st.booleans()):
        doc["mtu"] = draw(st.just(0) | st.integers(68, 65535))
    if plugin_type in ("macvlan", "ipvlan") and draw(st.booleans()):
        doc["master"] = draw(ifnames)
    if plugin_type == "bridge" and draw(st.booleans()):
        doc["vlan"] = draw(st.integers(0, 4094))
    if draw(st.booleans()):
        doc["capabilities"] = draw(st.dictionaries(st.sampled_from(["ips", "mac", "portMappings"]), st.booleans()))
    if draw(st.booleans()):
        doc["ipam"] = draw(host_local())
    return doc


@settings(max_examples=200)
@given(valid_confs(), cni_names)
def test_a_valid_conf_normalizes_to_a_conflist_that_parses_back_to_itself(doc: dict[str, Any], nad: str) -> None:
    first = parse_netconf(json.dumps(doc), nad)
    assert first.ok, [str(e) for e in first.errors]
    assert first.kind == "conf"
    assert first.conflist is not None
    assert first.conflist["name"] == (doc.get("name") or nad)
    assert first.conflist["plugins"][0] == {**doc, "name": first.conflist["name"]}
    assert first.capabilities == frozenset(k for k, v in doc.get("capabilities", {}).items() if v)

    again = parse_netconf(json.dumps(first.conflist), nad)
    assert again.ok
    assert again.kind == "conflist"
    assert again.conflist == first.conflist
    assert again.cni_version == first.cni_version
    assert again.capabilities == first.capabilities


@given(valid_confs(), cni_names)
def test_a_valid_conf_object_gives_the_same_result_as_its_text(doc: dict[str, Any], nad: str) -> None:
    from_text = parse_netconf(json.dumps(doc), nad)
    from_object = parse_netconf_object(doc, nad)
    assert from_text == from_object
