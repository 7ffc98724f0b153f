"""netplex with the real CNI reference plugins in real network namespaces, and the
Kubernetes API test double: what a pod really gets, and that nothing is left behind.

Every test makes its own namespaces, bridges (no address on the host: ``isGateway`` is
off) and host-local data directory, and the fixtures remove them even when it fails.
The cluster network is bridge + host-local given as ``delegates[0]``; the pod's networks
are NADs of macvlan (on one end of a veth pair: this kernel has no dummy links), bridge,
static + tuning.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from plugin.cni import cache
from tests.k8sapi import FakeApiServer, make_nad, make_pod
from tests.plugin import thick
from tests.plugin.netns_fixtures import (  # noqa: F401  (fixtures are found by name)
    CNI_BIN,
    Netns,
    host_environ,
    host_link_names_fixture,
    ip,
    make_netns_fixture,
    netns_fixture,
    requires_netns,
    veth_master_fixture,
)
from tests.plugin.test_main import REPO, STATUS, Outcome, Plugin, api_fixture  # noqa: F401

pytestmark = [requires_netns, pytest.mark.netns]

POD = "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=cid1"
CLUSTER_NET, MACVLAN_NET, BRIDGE_NET, SPARE_NET = "198.18.60", "198.18.61", "198.18.62", "198.18.63"


# -------------------------------------------------------------------------- helpers


def ipam(subnet: str, data_dir: Path, **extra: Any) -> dict[str, Any]:
    return {"type": "host-local", "subnet": f"{subnet}.0/24", "dataDir": str(data_dir), **extra}


def cluster_conf(bridge: str, data_dir: Path, *, default_route: bool = False) -> dict[str, Any]:
    extra = {"routes": [{"dst": "0.0.0.0/0"}]} if default_route else {}
    return {"cniVersion": "1.0.0", "name": "cluster-net",
            "plugins": [{"type": "bridge", "bridge": bridge, "ipam": ipam(CLUSTER_NET, data_dir, **extra)}]}


def macvlan_nad(name: str, master: str, subnet: str, data_dir: Path, **ipam_extra: Any) -> dict[str, Any]:
    return make_nad(name, config={"cniVersion": "1.0.0", "type": "macvlan", "master": master, "mode": "bridge",
                                  "ipam": ipam(subnet, data_dir, **ipam_extra)})


def bridge_nad(name: str, bridge: str, subnet: str, data_dir: Path) -> dict[str, Any]:
    return make_nad(name, config={"cniVersion": "1.0.0", "type": "bridge", "bridge": bridge,
                                  "ipam": ipam(subnet, data_dir)})


def addresses(ns: Netns) -> dict[str, dict[str, Any]]:
    """Interface name -> {"mac": ..., "ipv4": [address/prefix, ...]} inside the namespace."""
    links = json.loads(ip("-n", ns.name, "-j", "addr", "show").stdout)
    return {link["ifname"]: {"mac": link.get("address"),
                             "ipv4": [f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", [])
                                      if a.get("family") == "inet"]}
            for link in links}


def default_routes(ns: Netns) -> list[dict[str, Any]]:
    routes: list[dict[str, Any]] = json.loads(ip("-n", ns.name, "-j", "-4", "route", "show", "default").stdout
                                              or "[]")
    return routes


def allocations(data_dir: Path) -> dict[str, list[str]]:
    """host-local's reservations: network -> the addresses it holds (one file each)."""
    if not data_dir.exists():
        return {}
    return {net.name: sorted(f.name for f in net.iterdir() if f.name[0].isdigit())
            for net in sorted(data_dir.iterdir()) if net.is_dir()}


def status_written(api: FakeApiServer) -> list[dict[str, Any]]:
    patches = api.requests_matching("PATCH", r"/api/v1/namespaces/default/pods/web/status")
    assert len(patches) == 1
    written: list[dict[str, Any]] = json.loads(patches[0].json()["metadata"]["annotations"][STATUS])
    return written


class Node:
    """One test's "node": the plugin with the reference plugins, a pod namespace, the API.

    ``thin``: the runtime runs the plugin itself (``plugin.cni.main.main`` in this process).
    ``thick``: the runtime runs the shim (a ``python3 -IS`` subprocess), which asks a
    netplex-node daemon; the daemon has the API credentials, the configuration has none.
    """

    def __init__(self, tmp: Path, api: FakeApiServer, ns: Netns, names: Callable[[str], str],
                 mode: str = "thin") -> None:
        self.plugin = Plugin(tmp, CNI_BIN)
        self.api = api
        self.ns = ns
        self.data = tmp / "ipam"
        self.cluster_bridge = names("npc")
        self.kubeconfig = api.kubeconfig(tmp / "kubeconfig")
        self.mode = mode
        self.shim = thick.write_shim(tmp / "bin", tmp / "run" / "netplex.sock") if mode == "thick" else None

    def config(self, *, version: str = "1.0.0", default_route: bool = False, **keys: Any) -> dict[str, Any]:
        if self.mode == "thin":
            keys = {"kubeconfig": str(self.kubeconfig), **keys}
        return self.plugin.config(cluster_conf(self.cluster_bridge, self.data, default_route=default_route),
                                  version=version, **keys)

    def run(self, command: str, config: Mapping[str, Any], *, netns: str | None = None, args: str = POD,
            container_id: str = "cid1") -> Outcome:
        netns = self.ns.path if netns is None else netns
        if self.shim is None:
            return self.plugin.run(command, config, netns=netns, args=args, container_id=container_id)
        environ = {**host_environ(), "CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_NETNS": netns,
                   "CNI_IFNAME": "eth0", "CNI_PATH": CNI_BIN, "CNI_ARGS": args}
        done = thick.run_shim(self.shim, environ, json.dumps(config).encode())
        return Outcome(done.returncode, done.stdout.decode(), done.stderr.decode())


THIN_TEST_ENVIRONMENT = {"pod_attempts": 2, "pod_delay": 0.01, "lock_timeout": 5.0, "readiness_timeout": 0.2}


@pytest.fixture(params=["thin", "thick"])
def node(request: pytest.FixtureRequest, tmp_path: Path, api: FakeApiServer, netns: Netns,
         host_link_names: Callable[[str], str]) -> Iterator[Node]:
    """Every test of this file runs through both paths, with the same assertions."""
    made = Node(tmp_path, api, netns, host_link_names, mode=request.param)
    if made.shim is None:
        yield made
        return
    environment = {**THIN_TEST_ENVIRONMENT, "device_info_dir": str(made.plugin.devinfo)}
    with thick.InProcessDaemon(tmp_path / "run" / "netplex.sock", kubeconfig=made.kubeconfig,
                               base_environ=host_environ(), environment_kw=environment):
        yield made


def three_network_pod(node: Node, master: str, names: Callable[[str], str], annotation: str) -> None:
    node.api.create(macvlan_nad("macvlan-conf", master, MACVLAN_NET, node.data))
    node.api.create(bridge_nad("bridge-conf", names("npd"), BRIDGE_NET, node.data))
    node.api.create(make_pod("web", annotations={"k8s.v1.cni.cncf.io/networks": annotation}))


# ------------------------------------------------------------------------------ ADD


@pytest.mark.parametrize("version", ["0.3.1", "1.0.0"])
def test_add_attaches_every_selected_network_and_reports_them(node: Node, veth_master: str, version: str,
                                                              host_link_names: Callable[[str], str]) -> None:
    """NPWG-7, 13, 25..28, 31; CNI-24: eth0, net1 and data0 with their addresses; the
    cluster network's result in the version asked; network-status via pods/status."""
    three_network_pod(node, veth_master, host_link_names, "macvlan-conf, bridge-conf@data0")
    out = node.run("ADD", node.config(version=version))
    assert out.code == 0, out.stdout
    inside = addresses(node.ns)
    assert sorted(inside) == ["data0", "eth0", "lo", "net1"]
    assert [a.rsplit(".", 1)[0] for a in inside["eth0"]["ipv4"]] == [CLUSTER_NET]
    assert [a.rsplit(".", 1)[0] for a in inside["net1"]["ipv4"]] == [MACVLAN_NET]
    assert [a.rsplit(".", 1)[0] for a in inside["data0"]["ipv4"]] == [BRIDGE_NET]

    result = out.json
    assert result["cniVersion"] == version
    pod_side = [i for i in result["interfaces"] if i.get("sandbox")]
    assert [(i["name"], i["mac"], i["sandbox"]) for i in pod_side] == [("eth0", inside["eth0"]["mac"], node.ns.path)]
    assert [ip_["address"] for ip_ in result["ips"]] == inside["eth0"]["ipv4"]
    assert all(("version" in ip_) == (version == "0.3.1") for ip_ in result["ips"])

    written = status_written(node.api)
    assert written == [
        {"name": "cluster-net", "interface": "eth0", "ips": inside["eth0"]["ipv4"], "mac": inside["eth0"]["mac"],
         "default": True},
        {"name": "default/macvlan-conf", "interface": "net1", "ips": inside["net1"]["ipv4"],
         "mac": inside["net1"]["mac"], "default": False},
        {"name": "default/bridge-conf", "interface": "data0", "ips": inside["data0"]["ipv4"],
         "mac": inside["data0"]["mac"], "default": False},
    ]
    assert "<nil>" not in json.dumps(written)
    assert cache.container_ids(str(node.plugin.cni_dir)) == ["cid1"]


def test_del_needs_neither_the_api_nor_the_nad_and_leaves_nothing_behind(node: Node, veth_master: str,
                                                                          host_link_names: Callable[[str], str]
                                                                          ) -> None:
    """Issue §4/§5, CNI-27: the cache alone; interfaces gone, IPs released, DEL twice."""
    three_network_pod(node, veth_master, host_link_names, "macvlan-conf, bridge-conf@data0")
    conf = node.config()
    assert node.run("ADD", conf).code == 0
    assert all(len(ips) == 1 for ips in allocations(node.data).values())
    node.api.delete("network-attachment-definitions", "default", "macvlan-conf")
    node.api.stop()
    first = node.run("DEL", conf)
    assert first.code == 0, first.stdout
    assert sorted(addresses(node.ns)) == ["lo"]
    assert allocations(node.data) == {"bridge-conf": [], "cluster-net": [], "macvlan-conf": []}
    assert cache.container_ids(str(node.plugin.cni_dir)) == []
    second = node.run("DEL", conf)
    assert second.code == 0, second.stdout


def test_del_after_the_namespace_is_gone_still_releases_the_addresses(node: Node, veth_master: str,
                                                                      host_link_names: Callable[[str], str]) -> None:
    """CNI-28."""
    three_network_pod(node, veth_master, host_link_names, "macvlan-conf, bridge-conf@data0")
    conf = node.config()
    assert node.run("ADD", conf).code == 0
    ip("netns", "del", node.ns.name)
    out = node.run("DEL", conf)
    assert out.code == 0, out.stdout
    assert allocations(node.data) == {"bridge-conf": [], "cluster-net": [], "macvlan-conf": []}
    assert cache.container_ids(str(node.plugin.cni_dir)) == []


def test_failing_third_network_rolls_back_interfaces_and_addresses(node: Node, veth_master: str,
                                                                    host_link_names: Callable[[str], str]) -> None:
    """NPWG-34, CNI-18: host-local has no address left for the third network."""
    three_network_pod(node, veth_master, host_link_names, "macvlan-conf, bridge-conf@data0, full-conf")
    full = f"{SPARE_NET}.10"
    node.api.create(macvlan_nad("full-conf", veth_master, SPARE_NET, node.data, rangeStart=full, rangeEnd=full))
    (node.data / "full-conf").mkdir(parents=True)
    (node.data / "full-conf" / full).write_text("another-container\r\neth0")
    pod_uid = node.api.get("pods", "default", "web")["metadata"]["uid"]  # type: ignore[index]
    error = node.run("ADD", node.config()).error
    assert error["msg"] == (f'[default/web/{pod_uid}]: error adding network "default/full-conf" (interface net2): '
                            f'plugin type="macvlan" failed (add): failed to allocate for range 0: no IP addresses '
                            f"available in range set: {full}-{full}")
    assert error["details"] == "rolled back: 4 networks deleted again"
    assert sorted(addresses(node.ns)) == ["lo"]
    assert allocations(node.data) == {"bridge-conf": [], "cluster-net": [], "full-conf": [full],
                                      "macvlan-conf": []}
    assert cache.container_ids(str(node.plugin.cni_dir)) == []


def test_values_with_an_equals_sign_in_cni_args_do_not_break_add_or_del(node: Node) -> None:
    """Multus bug 5: host-local itself refuses such a pair, so it is not passed on."""
    conf = node.config()
    args = POD + ";K8S_POD_UID=;EXTRA=a=b"
    added = node.run("ADD", conf, args=args)
    assert added.code == 0, added.stdout
    assert node.run("DEL", conf, args=args).code == 0
    assert allocations(node.data) == {"cluster-net": []}


def test_check_passes_after_add_and_names_the_network_whose_interface_went_away(
        node: Node, veth_master: str, host_link_names: Callable[[str], str]) -> None:
    """CNI-13, CNI-29, Multus bug 4: every attachment is checked."""
    three_network_pod(node, veth_master, host_link_names, "macvlan-conf, bridge-conf@data0")
    conf = node.config()
    assert node.run("ADD", conf).code == 0
    passed = node.run("CHECK", conf)
    assert passed.code == 0, passed.stdout
    ip("-n", node.ns.name, "link", "del", "net1")
    error = node.run("CHECK", conf).error
    assert error["msg"].startswith('CHECK of network "default/macvlan-conf" (net1) failed: plugin type="macvlan" '
                                   "failed (check): ")
    assert "net1" in error["msg"]


def test_default_route_moves_to_the_requested_gateway_and_is_the_only_one(
        node: Node, host_link_names: Callable[[str], str]) -> None:
    """NPWG §4.1.2.1.9, Multus bug 1: one IPv4 default route, via the gateway asked for."""
    node.api.create(bridge_nad("bridge-conf", host_link_names("npd"), BRIDGE_NET, node.data))
    gateway = f"{BRIDGE_NET}.1"
    node.api.create(make_pod("web", annotations={
        "k8s.v1.cni.cncf.io/networks": json.dumps([{"name": "bridge-conf", "default-route": [gateway]}])}))
    conf = node.config(default_route=True)
    out = node.run("ADD", conf)
    assert out.code == 0, out.stdout
    assert [(r.get("gateway"), r.get("dev")) for r in default_routes(node.ns)] == [(gateway, "net1")]
    written = status_written(node.api)
    assert "gateway" not in written[0]
    assert (written[1]["gateway"], written[1]["default-route"]) == ([gateway], [gateway])
    assert not [r for r in out.json.get("routes", []) if r["dst"] == "0.0.0.0/0"]
    checked = node.run("CHECK", conf)
    assert checked.code == 0, checked.stdout


def test_eight_networks_with_one_nad_listed_seven_times(node: Node, veth_master: str) -> None:
    """NPWG-23, NPWG-24: one attachment per listing, each with its own interface and address."""
    node.api.create(macvlan_nad("macvlan-conf", veth_master, MACVLAN_NET, node.data))
    node.api.create(make_pod("web", annotations={"k8s.v1.cni.cncf.io/networks": ",".join(["macvlan-conf"] * 7)}))
    conf = node.config()
    out = node.run("ADD", conf)
    assert out.code == 0, out.stdout
    inside = addresses(node.ns)
    assert sorted(inside) == ["eth0", "lo", *(f"net{i}" for i in range(1, 8))]
    macvlan_ips = [inside[f"net{i}"]["ipv4"][0] for i in range(1, 8)]
    assert len(set(macvlan_ips)) == 7
    assert allocations(node.data)["macvlan-conf"] == sorted(a.split("/")[0] for a in macvlan_ips)
    assert node.run("DEL", conf).code == 0
    assert allocations(node.data) == {"cluster-net": [], "macvlan-conf": []}


def test_requested_interface_static_address_and_mac_are_applied(node: Node, veth_master: str) -> None:
    """NPWG-13, 14, 15: ``ips`` to static IPAM and ``mac`` to tuning, through runtimeConfig."""
    config = {"cniVersion": "1.0.0", "plugins": [
        {"type": "macvlan", "master": veth_master, "mode": "bridge",
         "ipam": {"type": "static"}, "capabilities": {"ips": True}},
        {"type": "tuning", "capabilities": {"mac": True}}]}
    node.api.create(make_nad("static-conf", config=config))
    node.api.create(make_pod("web", annotations={"k8s.v1.cni.cncf.io/networks": json.dumps(
        [{"name": "static-conf", "interface": "fixed0", "ips": [f"{SPARE_NET}.77/24"],
          "mac": "02:00:5e:00:53:77"}])}))
    out = node.run("ADD", node.config())
    assert out.code == 0, out.stdout
    assert addresses(node.ns)["fixed0"] == {"mac": "02:00:5e:00:53:77", "ipv4": [f"{SPARE_NET}.77/24"]}
    assert status_written(node.api)[1]["mac"] == "02:00:5e:00:53:77"


def test_a_nad_whose_type_is_a_path_runs_nothing(node: Node) -> None:
    """Issue §6: not even the cluster network is attached."""
    node.api.create(make_nad("evil", config={"cniVersion": "1.0.0", "type": "../../bin/sh"}))
    node.api.create(make_pod("web", annotations={"k8s.v1.cni.cncf.io/networks": "evil"}))
    error = node.run("ADD", node.config()).error
    assert error["code"] == 7
    assert 'plugin type must be a bare file name, not a path (got "../../bin/sh")' in error["details"]
    assert sorted(addresses(node.ns)) == ["lo"]
    assert allocations(node.data) == {}


def test_twenty_pods_added_in_parallel_get_distinct_addresses_and_release_them_all(
        tmp_path: Path, make_netns: Callable[[], Netns], host_link_names: Callable[[str], str]) -> None:
    """Twenty ``netplex`` processes at once on one bridge network: host-local's store is
    shared, nothing collides, and the DELs leave no reservation behind."""
    data = tmp_path / "ipam"
    conf = json.dumps({"cniVersion": "1.0.0", "name": "netplex", "type": "netplex", "cniDir": str(tmp_path / "cni"),
                       "binDir": CNI_BIN, "delegates": [cluster_conf(host_link_names("npc"), data)]}).encode()
    namespaces = [make_netns() for _ in range(20)]

    def run(command: str, i: int) -> subprocess.CompletedProcess[bytes]:
        env = {**host_environ(), "PYTHONPATH": str(REPO), "CNI_COMMAND": command, "CNI_CONTAINERID": f"pod{i}",
               "CNI_NETNS": namespaces[i].path, "CNI_IFNAME": "eth0", "CNI_PATH": CNI_BIN,
               "CNI_ARGS": f"K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod{i}"}
        return subprocess.run([sys.executable, "-m", "plugin.cni.main"], input=conf, env=env, capture_output=True,
                              check=False, timeout=120)

    with ThreadPoolExecutor(max_workers=20) as pool:
        added = list(pool.map(lambda i: run("ADD", i), range(20)))
    assert [a.returncode for a in added] == [0] * 20, [a.stdout for a in added if a.returncode]
    given = [json.loads(a.stdout)["ips"][0]["address"] for a in added]
    assert len(set(given)) == 20
    assert [addresses(ns)["eth0"]["ipv4"] for ns in namespaces] == [[g] for g in given]
    assert len(allocations(data)["cluster-net"]) == 20
    with ThreadPoolExecutor(max_workers=20) as pool:
        deleted = list(pool.map(lambda i: run("DEL", i), range(20)))
    assert [d.returncode for d in deleted] == [0] * 20, [d.stdout for d in deleted if d.returncode]
    assert allocations(data) == {"cluster-net": []}
    assert cache.container_ids(str(tmp_path / "cni")) == []
