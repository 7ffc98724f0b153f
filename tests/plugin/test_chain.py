"""Running a network configuration like libcni: requests, order, prevResult, and each
verb's rules (cni.md §5, §10.4–10.8; CNI-5..16, CNI-45, CNI-47; NPWG-33).

Recording fake plugins show exactly what each delegate was given; the reference
plugins in real namespaces show that the requests work on the real thing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from plugin.cni import chain, protocol
from plugin.cni import netns as nets
from plugin.cni.chain import Attachment
from plugin.cni.delegate import DelegateError
from tests.plugin.netns_fixtures import (  # noqa: F401  (fixtures are found by name)
    CNI_BIN,
    FakePlugins,
    Netns,
    fake_conflist,
    fake_plugins_fixture,
    host_environ,
    host_link_names_fixture,
    ip,
    make_netns_fixture,
    netns_fixture,
    requires_netns,
    unique,
    veth_master_fixture,
)

ATT = Attachment(container_id="c1", netns="/run/netns/pod", ifname="net1", cni_args="IgnoreUnknown=true",
                 capability_args={"mac": "c2:11:22:33:44:55", "ips": ["10.1.2.3/24"]})


def run_kw(fake: FakePlugins) -> dict[str, Any]:
    return {"dirs": [fake.dir], "environ": {"PATH": "/usr/bin:/bin"}}


# -------------------------------------------------------------------- build_request


def test_request_carries_the_lists_name_and_version_whatever_the_plugin_said() -> None:
    plugin = {"type": "bridge", "name": "other", "cniVersion": "0.3.1"}
    conflist = {"cniVersion": "1.0.0", "name": "net-a", "plugins": [plugin]}
    request = json.loads(chain.build_request(plugin, conflist, capability_args={}, prev_result=None))
    assert request == {"type": "bridge", "name": "net-a", "cniVersion": "1.0.0"}


def test_request_keeps_unknown_keys_and_capabilities_exactly() -> None:
    plugin = {"type": "x", "capabilities": {"mac": False}, "vendor": {"deep": [1, {"a": None}], "n": 1.5},
              "cni.dev/custom": "kept", "args": {"cni": {"labels": []}}}
    conflist = {"cniVersion": "1.0.0", "name": "n", "plugins": [plugin]}
    request = json.loads(chain.build_request(plugin, conflist, capability_args={"mac": "m"}, prev_result=None))
    assert request == {**plugin, "name": "n", "cniVersion": "1.0.0"}


def test_runtime_config_holds_only_declared_and_supplied_capabilities() -> None:
    plugin = {"type": "x", "capabilities": {"mac": True, "ips": False, "portMappings": True, "bandwidth": "yes"},
              "runtimeConfig": {"stale": 1}}
    conflist = {"cniVersion": "1.0.0", "name": "n", "plugins": [plugin]}
    caps = {"mac": "c2:11:22:33:44:55", "ips": ["10.0.0.1/24"], "bandwidth": {"ingressRate": 1}}
    request = json.loads(chain.build_request(plugin, conflist, capability_args=caps, prev_result=None))
    assert request["runtimeConfig"] == {"mac": "c2:11:22:33:44:55"}


def test_runtime_config_is_omitted_when_nothing_applies_and_a_stored_one_stays() -> None:
    plugin = {"type": "x", "capabilities": {"portMappings": True}, "runtimeConfig": {"stored": True}}
    conflist = {"cniVersion": "1.0.0", "name": "n", "plugins": [plugin]}
    request = json.loads(chain.build_request(plugin, conflist, capability_args={"mac": "m"}, prev_result=None))
    assert request["runtimeConfig"] == {"stored": True}  # libcni replaces it only when it has something
    bare = json.loads(chain.build_request({"type": "x"}, conflist, capability_args={"mac": "m"}, prev_result=None))
    assert "runtimeConfig" not in bare


def test_prev_result_is_added_only_when_given() -> None:
    conflist = {"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "x"}]}
    prev = {"cniVersion": "1.0.0", "ips": []}
    with_prev = json.loads(chain.build_request({"type": "x"}, conflist, capability_args={}, prev_result=prev))
    assert with_prev["prevResult"] == prev
    without = json.loads(chain.build_request({"type": "x"}, conflist, capability_args={}, prev_result=None))
    assert "prevResult" not in without


@pytest.mark.parametrize(("conflist", "chosen"), [
    ({"cniVersion": "0.4.0", "cniVersions": ["0.3.1", "1.0.0"]}, "1.0.0"),
    ({"cniVersion": "1.0.0", "cniVersions": ["0.3.1", "9.0.0"]}, "1.0.0"),
    ({"cniVersion": "7.0.0", "cniVersions": ["0.3.1", "0.4.0"]}, "0.4.0"),
    ({"cniVersions": ["0.3.1", "1.1.0"]}, "1.1.0"),
    ({"cniVersion": "0.3.1"}, "0.3.1"),
    ({}, "0.1.0"),
    ({"cniVersion": ""}, "0.1.0"),
])
def test_highest_supported_version_of_cni_version_and_cni_versions_is_chosen(
        conflist: dict[str, Any], chosen: str) -> None:
    assert chain.select_version(conflist) == chosen


@pytest.mark.parametrize(("conflist", "code"), [
    ({"cniVersion": 1}, protocol.INVALID_CONFIG),
    ({"cniVersions": "1.0.0"}, protocol.INVALID_CONFIG),
    ({"cniVersions": ["1.0.0", 1]}, protocol.INVALID_CONFIG),
    ({"cniVersion": "1.0.0.0"}, protocol.INCOMPATIBLE_VERSION),
    ({"cniVersions": ["1.0.0", "x"]}, protocol.INCOMPATIBLE_VERSION),
    ({"cniVersion": "9.0.0", "cniVersions": ["8.0.0"]}, protocol.INCOMPATIBLE_VERSION),
])
def test_unusable_versions_are_errors(conflist: dict[str, Any], code: int) -> None:
    with pytest.raises(protocol.CniError) as caught:
        chain.select_version(conflist)
    assert caught.value.code == code


@pytest.mark.parametrize(("value", "expected"), [(True, True), ("TRUE", True), ("true", True),
                                                 (False, False), ("False", False), (None, None)])
def test_disable_flags_accept_booleans_and_true_false_strings(value: Any, expected: bool | None) -> None:
    conflist = {} if value is None else {"disableCheck": value}
    assert chain.flag(conflist, "disableCheck") is bool(expected)


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_other_disable_flag_values_are_rejected(value: Any) -> None:
    with pytest.raises(protocol.CniError) as caught:
        chain.flag({"disableGC": value}, "disableGC")
    assert caught.value.msg == "disableGC must be true or false"


# -------------------------------------------------------------------------- ADD


def test_add_chains_prev_result_and_injects_name_version_and_capabilities(fake_plugins: FakePlugins) -> None:
    conflist = fake_conflist({"type": "fake-a"}, {"type": "fake-b", "capabilities": {"mac": True}},
                             {"type": "fake-c", "capabilities": {"ips": True, "portMappings": True}})
    result = chain.add(conflist, ATT, **run_kw(fake_plugins))
    a, b, c = fake_plugins.calls()
    assert [x["plugin"] for x in (a, b, c)] == ["fake-a", "fake-b", "fake-c"]
    for seen in (a, b, c):
        assert seen["command"] == "ADD"
        assert seen["request"]["name"] == "fakenet" and seen["request"]["cniVersion"] == "1.0.0"
        assert seen["env"] == {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/pod",
                               "CNI_IFNAME": "net1", "CNI_ARGS": "IgnoreUnknown=true",
                               "CNI_PATH": fake_plugins.dir}
    assert "prevResult" not in a["request"] and "runtimeConfig" not in a["request"]
    assert b["request"]["runtimeConfig"] == {"mac": "c2:11:22:33:44:55"}
    assert c["request"]["runtimeConfig"] == {"ips": ["10.1.2.3/24"]}
    assert [i["name"] for i in b["request"]["prevResult"]["interfaces"]] == ["fake-a-net1"]
    assert [i["name"] for i in c["request"]["prevResult"]["interfaces"]] == ["fake-a-net1", "fake-b-net1"]
    assert result["cniVersion"] == "1.0.0"
    assert [i["name"] for i in result["interfaces"]] == ["fake-a-net1", "fake-b-net1", "fake-c-net1"]


def test_add_stops_at_the_first_failing_plugin_with_its_error(fake_plugins: FakePlugins) -> None:
    behaviour = {"fake-b": {"ADD": {"error": {"code": 107, "msg": "no room", "details": "pool full"}}}}
    conflist = fake_conflist({"type": "fake-a"}, {"type": "fake-b"}, {"type": "fake-c"}, behaviour=behaviour)
    with pytest.raises(DelegateError) as caught:
        chain.add(conflist, ATT, **run_kw(fake_plugins))
    assert (caught.value.code, caught.value.msg, caught.value.details, caught.value.plugin) == (
        107, "no room", "pool full", "fake-b")
    assert [x["plugin"] for x in fake_plugins.calls()] == ["fake-a", "fake-b"]


def test_add_returns_the_final_result_in_the_lists_version(fake_plugins: FakePlugins) -> None:
    old = {"cniVersion": "0.3.1", "interfaces": [{"name": "eth0", "sandbox": "/run/netns/pod"}],
           "ips": [{"version": "4", "address": "10.1.2.3/24", "interface": 0}]}
    conflist = fake_conflist({"type": "fake-a"}, behaviour={"fake-a": {"ADD": {"result": old}}})
    result = chain.add(conflist, ATT, **run_kw(fake_plugins))
    assert result["cniVersion"] == "1.0.0"
    assert result["ips"] == [{"address": "10.1.2.3/24", "interface": 0}]


def test_a_refused_type_anywhere_in_the_list_stops_the_chain_before_any_plugin_runs(
        fake_plugins: FakePlugins) -> None:
    conflist = fake_conflist({"type": "fake-a"}, {"type": "../../bin/sh"})
    with pytest.raises(protocol.CniError) as caught:
        chain.add(conflist, ATT, **run_kw(fake_plugins))
    assert caught.value.code == protocol.INVALID_CONFIG
    assert caught.value.msg == 'plugins[1]: refusing to run plugin type "../../bin/sh"'
    assert fake_plugins.calls() == []


def test_a_missing_plugin_is_an_error_naming_the_directories(fake_plugins: FakePlugins) -> None:
    conflist = fake_conflist({"type": "fake-a"}, {"type": "absent"})
    with pytest.raises(protocol.CniError) as caught:
        chain.add(conflist, ATT, **run_kw(fake_plugins))
    assert caught.value.msg == f'failed to find plugin "absent" in path [{fake_plugins.dir}]'


@pytest.mark.parametrize("conflist", [{"name": "n"}, {"name": "n", "plugins": []},
                                      {"name": "n", "plugins": ["bridge"]}, {"name": "n", "plugins": [{}]}])
def test_a_list_without_usable_plugins_is_an_invalid_configuration(conflist: dict[str, Any]) -> None:
    with pytest.raises(protocol.CniError) as caught:
        chain.add(conflist, ATT, dirs=[CNI_BIN], environ={})
    assert caught.value.code == protocol.INVALID_CONFIG


def test_a_single_configuration_runs_as_a_list_of_itself(fake_plugins: FakePlugins) -> None:
    conf = {"cniVersion": "0.4.0", "name": "single", "type": "fake-a", "extra": 1}
    chain.add(conf, ATT, **run_kw(fake_plugins))
    (seen,) = fake_plugins.calls()
    assert seen["request"] == conf


# -------------------------------------------------------------------------- DEL


def test_delete_runs_in_reverse_with_the_stored_result_converted(fake_plugins: FakePlugins) -> None:
    conflist = fake_conflist({"type": "fake-a"}, {"type": "fake-b", "capabilities": {"mac": True}})
    stored = {"cniVersion": "0.3.1", "interfaces": [{"name": "net1", "sandbox": "/run/netns/pod"}],
              "ips": [{"version": "4", "address": "10.1.2.3/24", "interface": 0}]}
    chain.delete(conflist, ATT, stored, **run_kw(fake_plugins))
    b, a = fake_plugins.calls()
    assert (b["plugin"], a["plugin"]) == ("fake-b", "fake-a")
    for seen in (a, b):
        assert seen["command"] == "DEL"
        assert seen["request"]["prevResult"] == {
            "cniVersion": "1.0.0", "interfaces": [{"name": "net1", "sandbox": "/run/netns/pod"}],
            "ips": [{"address": "10.1.2.3/24", "interface": 0}]}
    assert b["request"]["runtimeConfig"] == {"mac": "c2:11:22:33:44:55"}


def test_delete_without_a_netns_passes_no_cni_netns(fake_plugins: FakePlugins) -> None:
    att = Attachment(container_id="c1", netns=None, ifname="net1")
    chain.delete(fake_conflist({"type": "fake-a"}), att, None, **run_kw(fake_plugins))
    (seen,) = fake_plugins.calls()
    assert "CNI_NETNS" not in seen["env"]
    assert seen["env"]["CNI_IFNAME"] == "net1"
    assert "prevResult" not in seen["request"]


def test_delete_of_a_list_older_than_0_4_0_sends_no_prev_result(fake_plugins: FakePlugins) -> None:
    stored = {"cniVersion": "0.3.1", "ips": []}
    chain.delete(fake_conflist({"type": "fake-a"}, version="0.3.1"), ATT, stored, **run_kw(fake_plugins))
    (seen,) = fake_plugins.calls()
    assert "prevResult" not in seen["request"]


def test_delete_stops_at_the_first_error(fake_plugins: FakePlugins) -> None:
    behaviour = {"fake-c": {"DEL": {"error": {"code": 11, "msg": "busy"}}}}
    conflist = fake_conflist({"type": "fake-a"}, {"type": "fake-b"}, {"type": "fake-c"}, behaviour=behaviour)
    with pytest.raises(DelegateError) as caught:
        chain.delete(conflist, ATT, None, **run_kw(fake_plugins))
    assert caught.value.msg == "busy"
    assert [x["plugin"] for x in fake_plugins.calls()] == ["fake-c"]


# ------------------------------------------------------------------------ CHECK


def test_check_runs_in_order_with_the_stored_result(fake_plugins: FakePlugins) -> None:
    stored = {"cniVersion": "1.0.0", "ips": []}
    chain.check(fake_conflist({"type": "fake-a"}, {"type": "fake-b"}), ATT, stored, **run_kw(fake_plugins))
    assert [(x["plugin"], x["command"]) for x in fake_plugins.calls()] == [("fake-a", "CHECK"), ("fake-b", "CHECK")]
    assert all(x["request"]["prevResult"] == stored for x in fake_plugins.calls())
    assert fake_plugins.calls()[0]["env"]["CNI_NETNS"] == "/run/netns/pod"


def test_check_of_a_list_older_than_0_4_0_is_refused_without_running_anything(fake_plugins: FakePlugins) -> None:
    with pytest.raises(protocol.CniError) as caught:
        chain.check(fake_conflist({"type": "fake-a"}, version="0.3.1"), ATT, {}, **run_kw(fake_plugins))
    assert caught.value.code == protocol.INCOMPATIBLE_VERSION
    assert caught.value.msg == 'configuration version "0.3.1" does not support the CHECK command'
    assert fake_plugins.calls() == []


@pytest.mark.parametrize("disabled", [True, "true", "True"])
def test_check_is_skipped_when_disabled(fake_plugins: FakePlugins, disabled: Any) -> None:
    conflist = fake_conflist({"type": "fake-a"}, disableCheck=disabled)
    chain.check(conflist, ATT, {"cniVersion": "1.0.0"}, **run_kw(fake_plugins))
    assert fake_plugins.calls() == []


def test_check_stops_at_the_first_failure(fake_plugins: FakePlugins) -> None:
    behaviour = {"fake-a": {"CHECK": {"error": {"code": 999, "msg": "eth0 is gone"}}}}
    conflist = fake_conflist({"type": "fake-a"}, {"type": "fake-b"}, behaviour=behaviour)
    with pytest.raises(DelegateError, match="eth0 is gone"):
        chain.check(conflist, ATT, {"cniVersion": "1.0.0"}, **run_kw(fake_plugins))
    assert len(fake_plugins.calls()) == 1


# ------------------------------------------------------------------- GC and STATUS

VALID = [{"containerID": "c1", "ifname": "net1"}, {"containerID": "c2", "ifname": "eth0"}]


def test_gc_tells_every_plugin_the_valid_attachments_under_both_keys(fake_plugins: FakePlugins) -> None:
    conflist = fake_conflist({"type": "fake-a", "capabilities": {"mac": True}}, {"type": "fake-b"}, version="1.1.0")
    chain.gc(conflist, VALID, dirs=[fake_plugins.dir], environ={"CNI_IFNAME": "eth0", "CNI_NETNS": "/x"})
    calls = fake_plugins.calls()
    assert [x["plugin"] for x in calls] == ["fake-a", "fake-b"]
    for seen in calls:
        assert seen["env"] == {"CNI_COMMAND": "GC", "CNI_PATH": fake_plugins.dir}
        request = seen["request"]
        assert request["cni.dev/valid-attachments"] == VALID
        assert request["cni.dev/attachments"] == VALID
        assert request["name"] == "fakenet" and request["cniVersion"] == "1.1.0"
        assert "runtimeConfig" not in request and "prevResult" not in request


def test_gc_goes_on_past_errors_and_reports_them_all(fake_plugins: FakePlugins) -> None:
    behaviour = {"fake-a": {"GC": {"error": {"code": 999, "msg": "cannot list", "details": "disk"}}},
                 "fake-b": {"GC": {"stdout": "garbage", "exit": 1}}}
    conflist = fake_conflist({"type": "fake-a"}, {"type": "fake-b"}, {"type": "fake-c"}, version="1.1.0",
                             behaviour=behaviour)
    with pytest.raises(protocol.CniError) as caught:
        chain.gc(conflist, VALID, **run_kw(fake_plugins))
    assert [x["plugin"] for x in fake_plugins.calls()] == ["fake-a", "fake-b", "fake-c"]
    err = caught.value
    assert err.code == protocol.INTERNAL
    assert err.msg == 'GC of network "fakenet": 2 of 3 plugins failed'
    assert err.details.startswith("fake-a: cannot list: disk; fake-b: netplugin failed but error parsing")


@pytest.mark.parametrize(("version", "top"), [("1.0.0", {}), ("1.1.0", {"disableGC": True}),
                                              ("1.1.0", {"disableGC": "TRUE"})])
def test_gc_is_not_sent_below_1_1_0_or_when_disabled(fake_plugins: FakePlugins, version: str,
                                                     top: dict[str, Any]) -> None:
    chain.gc(fake_conflist({"type": "fake-a"}, version=version, **top), VALID, **run_kw(fake_plugins))
    assert fake_plugins.calls() == []


def test_status_is_sent_only_to_1_1_0_lists(fake_plugins: FakePlugins) -> None:
    chain.status(fake_conflist({"type": "fake-a"}, version="1.0.0"), **run_kw(fake_plugins))
    assert fake_plugins.calls() == []
    chain.status(fake_conflist({"type": "fake-a"}, {"type": "fake-b"}, version="1.1.0"), **run_kw(fake_plugins))
    calls = fake_plugins.calls()
    assert [(x["plugin"], x["command"]) for x in calls] == [("fake-a", "STATUS"), ("fake-b", "STATUS")]
    assert calls[0]["env"] == {"CNI_COMMAND": "STATUS", "CNI_PATH": fake_plugins.dir}
    assert calls[0]["request"]["name"] == "fakenet"


def test_status_stops_at_the_first_plugin_that_is_not_ready(fake_plugins: FakePlugins) -> None:
    behaviour = {"fake-a": {"STATUS": {"error": {"code": 50, "msg": "daemon down"}}}}
    conflist = fake_conflist({"type": "fake-a"}, {"type": "fake-b"}, version="1.1.0", behaviour=behaviour)
    with pytest.raises(DelegateError) as caught:
        chain.status(conflist, **run_kw(fake_plugins))
    assert (caught.value.code, caught.value.msg) == (50, "daemon down")
    assert len(fake_plugins.calls()) == 1


# ---------------------------------------------------------------------- validate


def test_validate_returns_the_union_of_enabled_capabilities(fake_plugins: FakePlugins) -> None:
    conflist = fake_conflist({"type": "fake-a", "capabilities": {"mac": True, "ips": False}},
                             {"type": "fake-b", "capabilities": {"portMappings": True}})
    assert chain.validate(conflist, **run_kw(fake_plugins)) == {"mac", "portMappings"}
    assert {x["command"] for x in fake_plugins.calls()} == {"VERSION"}


@pytest.mark.netns
@requires_netns
def test_validate_reports_every_plugin_that_cannot_run_the_list() -> None:
    conflist = {"cniVersion": "1.1.0", "name": "n",
                "plugins": [{"type": "bridge"}, {"type": "absent"}, {"type": "tuning"}]}
    with pytest.raises(protocol.CniError) as caught:
        chain.validate(conflist, dirs=[CNI_BIN], environ=host_environ())
    err = caught.value
    assert err.msg == 'network "n": 3 of 3 plugins failed'
    assert 'bridge: plugin bridge does not support config version "1.1.0"' in err.details
    assert 'failed to find plugin "absent"' in err.details
    assert 'tuning: plugin tuning does not support config version "1.1.0"' in err.details


# --------------------------------------------------------- real plugins, real netns


def bridge_conflist(bridge: str, data_dir: Path, *more: dict[str, Any], subnet: str | None = None,
                    version: str = "1.0.0") -> dict[str, Any]:
    """bridge + host-local; the bridge gets no address (isGateway false): nothing on the
    host changes except the bridge and veth, which the fixtures remove."""
    subnet = subnet or f"198.18.{int.from_bytes(os.urandom(1), 'big')}.0/24"
    return {"cniVersion": version, "name": unique("np-net-"), "plugins": [
        {"type": "bridge", "bridge": bridge,
         "ipam": {"type": "host-local", "subnet": subnet, "dataDir": str(data_dir)}},
        *more,
    ]}


def addresses_of(ns: Netns, ifname: str) -> list[str]:
    return [f"{a['local']}/{a['prefixlen']}" for link in nets.addresses(ns.path, ifname)
            for a in link.get("addr_info", []) if a.get("family") == "inet"]


def has_link(ns: Netns, ifname: str) -> bool:
    return any(link["ifname"] == ifname for link in nets.links(ns.path))


REAL = {"dirs": [CNI_BIN]}


@pytest.mark.netns
@requires_netns
def test_bridge_and_host_local_add_an_addressed_interface_that_delete_removes_twice(
        netns: Netns, host_link_names: Callable[[str], str], tmp_path: Path) -> None:
    conflist = bridge_conflist(host_link_names("npb"), tmp_path / "ipam", subnet="198.18.7.0/24")
    att = Attachment(container_id="ctr-1", netns=netns.path, ifname="net1")
    result = chain.add(conflist, att, environ=host_environ(), **REAL)
    assert result["ips"][0]["address"] == "198.18.7.2/24"
    assert result["interfaces"][result["ips"][0]["interface"]] == {
        "name": "net1", "mac": result["interfaces"][2]["mac"], "sandbox": netns.path}
    assert addresses_of(netns, "net1") == ["198.18.7.2/24"]
    assert (tmp_path / "ipam" / conflist["name"] / "198.18.7.2").exists()

    chain.delete(conflist, att, result, environ=host_environ(), **REAL)
    assert not has_link(netns, "net1")
    assert not (tmp_path / "ipam" / conflist["name"] / "198.18.7.2").exists()
    chain.delete(conflist, att, result, environ=host_environ(), **REAL)  # DEL is idempotent


@pytest.mark.netns
@requires_netns
def test_delete_succeeds_after_the_netns_is_gone(make_netns: Callable[[], Netns],
                                                 host_link_names: Callable[[str], str], tmp_path: Path) -> None:
    ns = make_netns()
    conflist = bridge_conflist(host_link_names("npb"), tmp_path / "ipam")
    result = chain.add(conflist, Attachment("ctr-2", ns.path, "net1"), environ=host_environ(), **REAL)
    ip("netns", "del", ns.name)
    chain.delete(conflist, Attachment("ctr-2", None, "net1"), result, environ=host_environ(), **REAL)
    assert not [p for p in os.listdir(tmp_path / "ipam" / conflist["name"]) if p.startswith("198.")]


@pytest.mark.netns
@requires_netns
def test_check_passes_after_add_and_fails_once_the_interface_is_deleted_by_hand(
        netns: Netns, host_link_names: Callable[[str], str], tmp_path: Path) -> None:
    # The kernel gives a bridge the lowest MAC of its ports unless one was set, and the
    # bridge plugin CHECKs the bridge's MAC first: with a plugin-made bridge, removing
    # the only port fails with "Bridge interface ... Mac doesn't match" instead. A bridge
    # with an assigned MAC keeps it, so the container side is what CHECK finds broken.
    bridge = host_link_names("npb")
    ip("link", "add", bridge, "type", "bridge")
    ip("link", "set", bridge, "address", "02:00:5e:10:00:01", "up")
    conflist = bridge_conflist(bridge, tmp_path / "ipam")
    att = Attachment(container_id="ctr-3", netns=netns.path, ifname="net1")
    result = chain.add(conflist, att, environ=host_environ(), **REAL)
    chain.check(conflist, att, result, environ=host_environ(), **REAL)

    ip("-n", netns.name, "link", "del", "net1")
    with pytest.raises(DelegateError) as caught:
        chain.check(conflist, att, result, environ=host_environ(), **REAL)
    assert caught.value.plugin == "bridge"
    assert caught.value.msg == "Interface name net1 not found"
    chain.delete(conflist, att, result, environ=host_environ(), **REAL)


@pytest.mark.netns
@requires_netns
def test_check_of_a_plugin_made_bridge_fails_on_the_bridge_mac_once_its_last_port_is_gone(
        netns: Netns, host_link_names: Callable[[str], str], tmp_path: Path) -> None:
    bridge = host_link_names("npb")
    conflist = bridge_conflist(bridge, tmp_path / "ipam")
    att = Attachment(container_id="ctr-3b", netns=netns.path, ifname="net1")
    result = chain.add(conflist, att, environ=host_environ(), **REAL)
    ip("-n", netns.name, "link", "del", "net1")
    with pytest.raises(DelegateError) as caught:
        chain.check(conflist, att, result, environ=host_environ(), **REAL)
    assert caught.value.msg.startswith(f"Bridge interface {bridge} Mac doesn't match: ")
    chain.delete(conflist, att, result, environ=host_environ(), **REAL)


@pytest.mark.netns
@requires_netns
def test_mac_capability_reaches_tuning_and_nothing_reaches_plugins_that_did_not_declare_it(
        netns: Netns, host_link_names: Callable[[str], str], tmp_path: Path) -> None:
    conflist = bridge_conflist(host_link_names("npb"), tmp_path / "ipam",
                               {"type": "tuning", "capabilities": {"mac": True}},
                               {"type": "portmap", "capabilities": {"portMappings": True}})
    att = Attachment(container_id="ctr-4", netns=netns.path, ifname="net1",
                     capability_args={"mac": "c2:11:22:33:44:55"})
    result = chain.add(conflist, att, environ=host_environ(), **REAL)
    (link,) = [x for x in nets.links(netns.path) if x["ifname"] == "net1"]
    assert link["address"] == "c2:11:22:33:44:55"
    assert {"name": "net1", "mac": "c2:11:22:33:44:55", "sandbox": netns.path} in result["interfaces"]
    # portmap declared portMappings, none were supplied: it got no runtimeConfig and so
    # programmed nothing (its ADD then only passes the result through).
    chain.delete(conflist, att, result, environ=host_environ(), **REAL)
    assert not has_link(netns, "net1")


def in_netns(node: Netns) -> Callable[[str, Mapping[str, str], bytes, float], tuple[int, bytes, bytes]]:
    """An ExecFn that runs each plugin inside ``node`` (``ip netns exec`` also gives it
    that namespace's /sys): a whole CNI node in a namespace of our own."""

    def run(path: str, env: Mapping[str, str], stdin: bytes, timeout: float) -> tuple[int, bytes, bytes]:
        done = subprocess.run(["ip", "netns", "exec", node.name, path], input=stdin, env=dict(env),
                              capture_output=True, timeout=timeout, check=False)
        return done.returncode, done.stdout, done.stderr

    return run


@pytest.mark.netns
@requires_netns
@pytest.mark.skipif(shutil.which("iptables") is None, reason="portmap needs iptables, which is not installed")
def test_port_mappings_reach_portmap_which_programs_them_in_the_nodes_firewall(
        make_netns: Callable[[], Netns], tmp_path: Path) -> None:
    node, pod = make_netns(), make_netns()
    conflist = bridge_conflist("npbr0", tmp_path / "ipam",
                               {"type": "tuning", "capabilities": {"mac": True}},
                               {"type": "portmap", "capabilities": {"portMappings": True}},
                               subnet="198.18.9.0/24")
    mappings = [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]
    att = Attachment(container_id="ctr-5", netns=pod.path, ifname="eth0",
                     capability_args={"portMappings": mappings, "mac": "c2:11:22:33:44:66"})
    runner = in_netns(node)
    result = chain.add(conflist, att, environ=host_environ(), exec_fn=runner, **REAL)
    rules = ip("netns", "exec", node.name, "iptables", "-t", "nat", "-S").stdout
    assert "--dport 8080" in rules and "--to-destination 198.18.9.2:80" in rules
    assert addresses_of(pod, "eth0") == ["198.18.9.2/24"]
    chain.delete(conflist, att, result, environ=host_environ(), exec_fn=runner, **REAL)
    rules = ip("netns", "exec", node.name, "iptables", "-t", "nat", "-S").stdout
    assert "--dport 8080" not in rules


@pytest.mark.netns
@requires_netns
def test_macvlan_on_a_veth_master_gets_its_address(netns: Netns, veth_master: str, tmp_path: Path) -> None:
    conflist = {"cniVersion": "0.4.0", "name": unique("np-mv-"), "plugins": [
        {"type": "macvlan", "master": veth_master, "mode": "bridge",
         "ipam": {"type": "host-local", "subnet": "198.18.10.0/24", "dataDir": str(tmp_path / "ipam")}}]}
    att = Attachment(container_id="ctr-6", netns=netns.path, ifname="net2")
    result = chain.add(conflist, att, environ=host_environ(), **REAL)
    assert result["cniVersion"] == "0.4.0"
    assert result["ips"][0]["version"] == "4"
    assert addresses_of(netns, "net2") == ["198.18.10.2/24"]
    details = json.loads(nets.run_ip(netns.path, ["-j", "-d", "link", "show", "net2"]))
    assert details[0]["linkinfo"]["info_kind"] == "macvlan"
    chain.check(conflist, att, result, environ=host_environ(), **REAL)
    chain.delete(conflist, att, result, environ=host_environ(), **REAL)
    assert not has_link(netns, "net2")


@pytest.mark.netns
@requires_netns
def test_a_failing_real_plugin_stops_the_chain_with_its_own_message(
        netns: Netns, host_link_names: Callable[[str], str], fake_plugins: FakePlugins) -> None:
    conflist = {"cniVersion": "1.0.0", "name": "np-bad", "plugins": [
        {"type": "bridge", "bridge": host_link_names("npb"), "ipam": {"type": "host-local"}},
        {"type": "fake-a"}]}
    att = Attachment(container_id="ctr-7", netns=netns.path, ifname="net1")
    with pytest.raises(DelegateError) as caught:
        chain.add(conflist, att, dirs=[CNI_BIN, fake_plugins.dir], environ=host_environ())
    assert (caught.value.code, caught.value.msg, caught.value.plugin) == (999, "no IP ranges specified", "bridge")
    assert fake_plugins.calls() == []
    # bridge does not undo its veth when IPAM fails: this is why a runtime must DEL
    # even a failed ADD (CNI-18).
    # Its DEL removes the veth and then reports the same IPAM error.
    assert has_link(netns, "net1")
    with pytest.raises(DelegateError) as caught:
        chain.delete(conflist, att, None, dirs=[CNI_BIN, fake_plugins.dir], environ=host_environ())
    assert str(caught.value) == 'plugin type="bridge" failed (del): no IP ranges specified'
    assert [(x["plugin"], x["command"]) for x in fake_plugins.calls()] == [("fake-a", "DEL")]
    assert not has_link(netns, "net1")
