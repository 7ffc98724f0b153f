"""From configuration and selections to the delegates to run (``plugin.cni.resolve``): where
each network's config comes from, what is injected into it, and what is refused."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from plugin.cni import config, resolve
from plugin.model import selection
from tests.k8sapi import make_nad

BRIDGE = {"cniVersion": "1.0.0", "type": "bridge", "bridge": "br-x"}


def cfg(tmp_path: Path, **keys: Any) -> config.PluginConfig:
    data: dict[str, Any] = {"cniVersion": "1.0.0", "name": "netplex", "type": "netplex",
                            "confDir": str(tmp_path / "net.d"), "delegates": [{**BRIDGE, "name": "cluster"}]}
    data.update(keys)
    return config.parse_plugin_config(data)


def write(directory: Path, filename: str, content: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def nads(*objects: Mapping[str, Any]) -> resolve.GetNad:
    by_key = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objects}
    return lambda namespace, name: by_key.get((namespace, name))


def one(annotation: str, namespace: str = "default") -> selection.Selection:
    parsed = selection.parse_networks(annotation, namespace)
    assert parsed.ok, parsed.errors
    return parsed.selections[0]


# ------------------------------------------------------------------ files on disk


def test_conflist_is_found_before_a_conf_of_the_same_name(tmp_path: Path) -> None:
    """CNI-44, NPWG-4."""
    write(tmp_path, "00-a.conf", {**BRIDGE, "name": "net"})
    write(tmp_path, "10-b.conflist", {"cniVersion": "1.0.0", "name": "net", "plugins": [BRIDGE]})
    found, skipped = resolve.find_conf_by_name(str(tmp_path), "net")
    assert found is not None and "plugins" in found
    assert skipped == []


def test_an_unreadable_file_does_not_hide_the_others_and_is_reported(tmp_path: Path) -> None:
    """Unlike libcni (cni.md trap 7)."""
    bad = write(tmp_path, "00-broken.conflist", "{not json")
    write(tmp_path, "10-net.conf", {**BRIDGE, "name": "net"})
    found, skipped = resolve.find_conf_by_name(str(tmp_path), "net")
    assert found is not None and found["type"] == "bridge"
    assert len(skipped) == 1 and skipped[0].startswith(f"{bad} (Expecting property name")


def test_missing_directory_finds_nothing(tmp_path: Path) -> None:
    assert resolve.find_conf_by_name(str(tmp_path / "absent"), "net") == (None, [])


# -------------------------------------------------------------- clusterNetwork


def test_cluster_network_name_is_a_nad_in_the_multus_namespace_first(tmp_path: Path) -> None:
    """Multus §5.1: a NAD shadows a file of the same name."""
    write(tmp_path / "net.d", "net.conf", {**BRIDGE, "name": "net"})
    nad = make_nad("net", "kube-system", config={"cniVersion": "1.0.0", "type": "macvlan", "master": "eth9"})
    name, conflist = resolve.resolve_network_ref("net", cfg(tmp_path), nads(nad))
    assert name == "kube-system/net"
    assert conflist["plugins"][0]["type"] == "macvlan"


def test_cluster_network_name_falls_back_to_a_file_in_conf_dir(tmp_path: Path) -> None:
    write(tmp_path / "net.d", "net.conf", {**BRIDGE, "name": "net"})
    name, conflist = resolve.resolve_network_ref("net", cfg(tmp_path), nads())
    assert (name, conflist["plugins"][0]["type"]) == ("net", "bridge")


def test_cluster_network_path_may_be_a_file_or_a_directory(tmp_path: Path) -> None:
    write(tmp_path / "d", "20-second.conf", {**BRIDGE, "name": "second"})
    first = write(tmp_path / "d", "10-first.conflist", {"cniVersion": "1.0.0", "name": "first", "plugins": [BRIDGE]})
    assert resolve.resolve_network_ref(str(tmp_path / "d"), cfg(tmp_path), None)[0] == "first"
    assert resolve.resolve_network_ref(str(first), cfg(tmp_path), None)[0] == "first"


def test_unknown_cluster_network_names_every_place_searched(tmp_path: Path) -> None:
    with pytest.raises(resolve.ResolveError) as caught:
        resolve.resolve_network_ref("nothere", cfg(tmp_path), nads())
    assert str(caught.value) == (
        'cannot find network "nothere": no NetworkAttachmentDefinition "nothere" in namespace "kube-system" and '
        f'no CNI config named "nothere" in {tmp_path}/net.d')


def test_delegates_give_the_cluster_network_first_and_the_others_unnamed(tmp_path: Path) -> None:
    """NPWG-31, NPWG-38: the runtime's own runtimeConfig goes to the cluster network only."""
    extra = {"cniVersion": "1.0.0", "name": "extra", "type": "macvlan", "master": "eth1"}
    conf = cfg(tmp_path, delegates=[{**BRIDGE, "name": "cluster"}, extra],
               runtimeConfig={"portMappings": [{"hostPort": 80, "containerPort": 8080}]})
    delegates = resolve.cluster_delegates(conf, "eth0", None, None)
    assert [(d.network, d.ifname, d.default) for d in delegates] == [("cluster", "eth0", True), ("extra", "", False)]
    assert delegates[0].capability_args == {"portMappings": [{"hostPort": 80, "containerPort": 8080}]}
    assert delegates[1].capability_args == {}


def test_pod_default_network_annotation_replaces_the_cluster_network(tmp_path: Path) -> None:
    override = selection.parse_default_network("other", "kube-system").selections[0]
    nad = make_nad("other", "kube-system", config={"cniVersion": "1.0.0", "type": "ptp"})
    delegates = resolve.cluster_delegates(cfg(tmp_path), "eth0", nads(nad), override)
    assert [(d.network, d.ifname, d.conflist["plugins"][0]["type"]) for d in delegates] == [
        ("kube-system/other", "eth0", "ptp")]


def test_pod_default_network_annotation_needs_the_api(tmp_path: Path) -> None:
    override = selection.parse_default_network("other", "kube-system").selections[0]
    with pytest.raises(resolve.ResolveError, match=r"sets v1\.multus-cni\.io/default-network but no Kubernetes API"):
        resolve.cluster_delegates(cfg(tmp_path), "eth0", None, override)


def test_delegate_without_a_name_is_refused_with_the_field(tmp_path: Path) -> None:
    with pytest.raises(resolve.ResolveError) as caught:
        resolve.cluster_delegates(cfg(tmp_path, delegates=[BRIDGE]), "eth0", None, None)
    assert str(caught.value).startswith("invalid CNI configuration delegates[0]: ")
    assert "name" in str(caught.value)


def test_default_networks_skip_pods_of_system_namespaces(tmp_path: Path) -> None:
    write(tmp_path / "net.d", "extra.conf", {**BRIDGE, "name": "extra"})
    conf = cfg(tmp_path, defaultNetworks=["extra"], systemNamespaces=["infra"])
    assert resolve.default_network_refs(conf, "infra", None) == []
    assert [d.network for d in resolve.default_network_refs(conf, "kube-system", None)] == ["extra"]


# ------------------------------------------------------------------------- NADs


def test_nad_config_without_a_name_gets_the_nads_name(tmp_path: Path) -> None:
    """NPWG-5."""
    nad = make_nad("blue-net", config={"cniVersion": "1.0.0", "type": "macvlan", "master": "eth0"})
    conflist = resolve.conflist_of_nad(nad, cfg(tmp_path))
    assert conflist["name"] == "blue-net"
    assert conflist["plugins"][0]["name"] == "blue-net"


def test_nad_with_empty_config_uses_the_file_named_like_it(tmp_path: Path) -> None:
    """NPWG-2, NPWG-4."""
    write(tmp_path / "net.d", "x.conflist", {"cniVersion": "1.0.0", "name": "onnode", "plugins": [BRIDGE]})
    conflist = resolve.conflist_of_nad(make_nad("onnode"), cfg(tmp_path))
    assert conflist["plugins"][0]["bridge"] == "br-x"


def test_nad_with_empty_config_and_no_file_fails_naming_both(tmp_path: Path) -> None:
    with pytest.raises(resolve.ResolveError) as caught:
        resolve.conflist_of_nad(make_nad("onnode", "blue"), cfg(tmp_path))
    assert str(caught.value) == (
        'network-attachment-definition "blue/onnode" has an empty spec.config and no CNI config named '
        f'"onnode" exists in {tmp_path}/net.d on this node')


def test_nad_with_a_path_as_type_is_refused(tmp_path: Path) -> None:
    with pytest.raises(resolve.ResolveError) as caught:
        resolve.conflist_of_nad(make_nad("evil", config={"cniVersion": "1.0.0", "type": "../../bin/sh"}),
                                cfg(tmp_path))
    assert str(caught.value).startswith('network-attachment-definition "default/evil" has an invalid spec.config: ')
    assert "plugin type must be a bare file name, not a path" in str(caught.value)


def test_missing_nad_fails_the_selection(tmp_path: Path) -> None:
    """NPWG-39."""
    with pytest.raises(resolve.ResolveError) as caught:
        resolve.selection_delegate(one("nope"), "default", cfg(tmp_path), nads(), None)
    assert str(caught.value) == "cannot find a network-attachment-definition (nope) in namespace (default)"


# ------------------------------------------------------------ what gets injected


@pytest.mark.parametrize(("element", "key", "capability"), [
    ({"ips": ["10.1.1.1/24"]}, "ips", "ips"),
    ({"mac": "02:00:00:00:00:01"}, "mac", "mac"),
    ({"portMappings": [{"hostPort": 80, "containerPort": 80}]}, "portMappings", "portMappings"),
    ({"bandwidth": {"ingressRate": 1000, "ingressBurst": 100}}, "bandwidth", "bandwidth"),
    ({"infiniband-guid": "00:11:22:33:44:55:66:77"}, "infiniband-guid", "infinibandGUID"),
])
def test_a_request_needs_a_plugin_that_declares_its_capability(tmp_path: Path, element: dict[str, Any], key: str,
                                                               capability: str) -> None:
    """NPWG-14..18."""
    sel = one(json.dumps([{"name": "net", **element}]))
    nad = make_nad("net", config={"cniVersion": "1.0.0", "type": "macvlan", "master": "eth0"})
    with pytest.raises(resolve.ResolveError) as caught:
        resolve.selection_delegate(sel, "default", cfg(tmp_path), nads(nad), None)
    assert str(caught.value).startswith(f'network "default/net" (interface net1): the selection sets "{key}" but no '
                                        f'plugin in its config declares the "{capability}" capability')
    declared = make_nad("net", config={"cniVersion": "1.0.0", "type": "macvlan", "master": "eth0",
                                       "capabilities": {capability: True}})
    delegate = resolve.selection_delegate(sel, "default", cfg(tmp_path), nads(declared), None)
    assert list(delegate.capability_args) == [capability]


def test_cni_args_go_into_every_plugins_args_cni_and_win(tmp_path: Path) -> None:
    """NPWG-19."""
    config_ = {"cniVersion": "1.0.0", "plugins": [
        {"type": "macvlan", "master": "eth0", "args": {"cni": {"a": "nad", "b": "nad"}, "other": 1}},
        {"type": "tuning"}]}
    sel = one(json.dumps([{"name": "net", "cni-args": {"a": "pod", "c": ["x"]}}]))
    delegate = resolve.selection_delegate(sel, "default", cfg(tmp_path), nads(make_nad("net", config=config_)), None)
    first, second = delegate.conflist["plugins"]
    assert first["args"] == {"cni": {"a": "pod", "b": "nad", "c": ["x"]}, "other": 1}
    assert second["args"] == {"cni": {"a": "pod", "c": ["x"]}}


def test_resource_device_is_injected_into_every_plugin_and_given_as_capability(tmp_path: Path) -> None:
    nad = make_nad("sriov", config={"cniVersion": "1.0.0", "plugins": [{"type": "sriov"}, {"type": "tuning"}]},
                   annotations={resolve.RESOURCE_NAME_ANNOTATION: "intel.com/vf"})
    handed: list[tuple[str, str]] = []

    def next_device(resource: str, network: str) -> str:
        handed.append((resource, network))
        return "0000:03:02.1"

    delegate = resolve.selection_delegate(one("sriov"), "default", cfg(tmp_path), nads(nad), next_device)
    assert handed == [("intel.com/vf", "default/sriov")]
    assert [(p["deviceID"], p["pciBusID"]) for p in delegate.conflist["plugins"]] == [("0000:03:02.1",) * 2] * 2
    assert (delegate.resource, delegate.device_id) == ("intel.com/vf", "0000:03:02.1")
    assert delegate.capability_args == {"deviceID": "0000:03:02.1"}


def test_selection_device_id_is_only_a_capability_arg(tmp_path: Path) -> None:
    """Multus: an element's deviceID reaches runtimeConfig, never the config bytes."""
    nad = make_nad("hostdev", config={"cniVersion": "1.0.0", "type": "host-device"})
    sel = one(json.dumps([{"name": "hostdev", "deviceID": "0000:05:00.0"}]))
    delegate = resolve.selection_delegate(sel, "default", cfg(tmp_path), nads(nad), None)
    assert delegate.capability_args == {"deviceID": "0000:05:00.0"}
    assert "deviceID" not in delegate.conflist["plugins"][0]


@pytest.mark.parametrize(("namespace", "allowed"), [("default", True), ("shared", True), ("blue", False)])
def test_namespace_isolation_allows_own_and_global_namespaces_only(tmp_path: Path, namespace: str,
                                                                   allowed: bool) -> None:
    """NPWG-37, Multus §4 (comparing namespaces)."""
    conf = cfg(tmp_path, namespaceIsolation=True, globalNamespaces="shared, default")
    sel = one(f"{namespace}/net")
    if allowed:
        resolve.check_isolation(sel, "default", conf)
        return
    with pytest.raises(resolve.ResolveError) as caught:
        resolve.check_isolation(sel, "default", conf)
    assert str(caught.value) == ('namespace isolation is on: pod in namespace "default" may not use network '
                                 '"blue/net" (allowed: its own namespace and shared, default)')


def test_isolation_off_allows_every_namespace(tmp_path: Path) -> None:
    resolve.check_isolation(one("blue/net"), "default", cfg(tmp_path))


def test_extra_networks_get_the_first_free_net_names(tmp_path: Path) -> None:
    """NPWG-24: never a name the selections use."""
    plain = resolve.Delegate(network="x", ifname="", conflist={})
    named = resolve.Delegate(network="y", ifname="data0", conflist={})
    out = resolve.name_extra_interfaces([plain, named, plain], {"eth0", "net1", "net3"})
    assert [d.ifname for d in out] == ["net2", "data0", "net4"]


def test_config_bytes_are_a_lossless_encoding_of_the_conflist() -> None:
    conflist = {"name": "n", "cniVersion": "1.0.0", "plugins": [{"type": "x", "n": 1.5, "u": "é", "deep": [{}]}]}
    delegate = resolve.Delegate(network="n", ifname="net1", conflist=conflist)
    assert json.loads(delegate.config_bytes()) == conflist


# ------------------------------------------------- conf files nested too deep (issue 12)

DEEP = "[" * 1000 + "]" * 1000  # beyond the interpreter's recursion limit once decoded
DEPTH = "is nested more than 32 levels deep; at most 32 levels of objects and lists are accepted"


def test_a_conf_file_nested_too_deep_is_skipped_and_reported_without_hiding_the_others(tmp_path: Path) -> None:
    deep = write(tmp_path, "00-deep.conflist", '{"cniVersion": "1.0.0", "name": "net", "plugins": ' + DEEP + "}")
    write(tmp_path, "10-net.conf", {**BRIDGE, "name": "net"})
    found, skipped = resolve.find_conf_by_name(str(tmp_path), "net")
    assert found == {**BRIDGE, "name": "net"}
    assert skipped == [f"{deep} (the file {DEPTH})"]


def test_a_conf_file_nested_too_deep_is_named_when_it_is_the_cluster_network(tmp_path: Path) -> None:
    deep = write(tmp_path / "net.d", "00-deep.conf", DEEP)
    with pytest.raises(resolve.ResolveError) as info:
        resolve.cluster_delegates(cfg(tmp_path, clusterNetwork=str(deep)), "eth0", None, None)
    assert str(info.value) == f"cannot load CNI configuration {deep}: the file {DEPTH}"


def test_a_missing_network_names_the_too_deep_file_it_skipped(tmp_path: Path) -> None:
    deep = write(tmp_path / "net.d", "00-deep.conf", DEEP)
    with pytest.raises(resolve.ResolveError) as info:
        resolve.cluster_delegates(cfg(tmp_path, clusterNetwork="net"), "eth0", None, None)
    assert str(info.value) == (f'cannot find network "net": no CNI config named "net" in {tmp_path / "net.d"} '
                               f"(unreadable files skipped: {deep} (the file {DEPTH}))")


def test_conf_files_in_utf16_are_still_read(tmp_path: Path) -> None:
    path = tmp_path / "10-net.conf"
    path.write_bytes(json.dumps({**BRIDGE, "name": "net"}).encode("utf-16"))
    assert resolve.find_conf_by_name(str(tmp_path), "net") == ({**BRIDGE, "name": "net"}, [])


def test_a_nad_config_is_parsed_once_per_text_and_each_caller_gets_its_own_copy(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The daemon serves pod after pod with the same NADs: one parse per (text, name)."""
    from plugin.cni import resolve as resolve_module
    from plugin.model import netconf

    plugin_cfg = cfg(tmp_path)

    calls: list[str] = []
    real = netconf.parse_netconf

    def counting(config: object, name: str, **kw: Any) -> Any:
        calls.append(name)
        return real(config, name, **kw)

    monkeypatch.setattr(netconf, "parse_netconf", counting)
    monkeypatch.setattr(resolve_module, "_PARSED", {})
    text = '{"cniVersion": "1.0.0", "type": "bridge", "bridge": "br0"}'
    nad = {"metadata": {"name": "memo-net", "namespace": "default"}, "spec": {"config": text}}
    first = resolve_module.conflist_of_nad(nad, plugin_cfg)
    first["plugins"][0]["bridge"] = "changed by a caller"
    second = resolve_module.conflist_of_nad(nad, plugin_cfg)
    assert calls == ["memo-net"]
    assert second["plugins"][0]["bridge"] == "br0"
    other = {"metadata": {"name": "memo-net", "namespace": "default"}, "spec": {"config": text.replace("br0", "br1")}}
    assert resolve_module.conflist_of_nad(other, plugin_cfg)["plugins"][0]["bridge"] == "br1"
    assert calls == ["memo-net", "memo-net"]
