"""The netplex-node process with everything on: NADs from its watch cache, Events on the
pod, /metrics (issue 10, deliverables 1, 3 and 4), against the API test double, with real
plugins in real network namespaces, through the shim."""

from __future__ import annotations

import json
import signal
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.k8sapi import FakeApiServer, make_nad, make_pod
from tests.node.test_daemon import cni_env
from tests.plugin import thick
from tests.plugin.netns_fixtures import (  # noqa: F401  (fixtures are found by name)
    Netns,
    host_environ,
    host_link_names_fixture,
    make_netns_fixture,
    requires_netns,
)
from tests.plugin.test_e2e import (
    BRIDGE_NET,
    SPARE_NET,
    addresses,
    allocations,
    bridge_nad,
    cluster_conf,
    ipam,
)
from tests.plugin.test_main import api_fixture  # noqa: F401

pytestmark = [requires_netns, pytest.mark.netns]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def wait_until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s"
        time.sleep(0.05)


class Cluster:
    """The API double, a daemon process with metrics and Events, a shim, a netns per pod."""

    def __init__(self, tmp: Path, api: FakeApiServer, make_netns: Callable[[], Netns],
                 names: Callable[[str], str]) -> None:
        self.tmp, self.api, self.make_netns = tmp, api, make_netns
        self.data = tmp / "ipam"
        self.port = free_port()
        self.sock = tmp / "run" / "netplex.sock"
        self.shim = thick.write_shim(tmp / "bin", self.sock)
        self.conf = json.dumps({"cniVersion": "1.0.0", "name": "netplex", "type": "netplex",
                                "cniDir": str(tmp / "cni"),
                                "delegates": [cluster_conf(names("npc"), self.data)]}).encode()
        self.daemon = thick.start_daemon_process(
            self.sock, kubeconfig=api.kubeconfig(tmp / "kubeconfig"), environ=host_environ(),
            extra=("--metrics-address", f"127.0.0.1:{self.port}", "--node-name", "node-7"))

    def run(self, command: str, pod: str, ns: Netns, uid: str = "") -> Any:
        """The runtime's call; ``uid``: the sandbox's K8S_POD_UID, as kubelets pass it."""
        args = f"K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod}" + (f";K8S_POD_UID={uid}" if uid else "")
        env = cni_env(command, container_id=f"c-{pod}", netns=ns.path, args=args)
        return thick.run_shim(self.shim, env, self.conf)

    def pod_gets(self, pod: str) -> int:
        return len(self.api.requests_matching("GET", f"/api/v1/namespaces/default/pods/{pod}"))

    def pods_cached(self) -> float:
        return scrape(self.port)[("netplex_node_pod_cache_size", ())]

    def events_of(self, pod: str) -> list[dict[str, Any]]:
        return [e for e in self.api.list_objects("events", "default") if e["involvedObject"]["name"] == pod]


@pytest.fixture
def cluster(tmp_path: Path, api: FakeApiServer, make_netns: Callable[[], Netns],
            host_link_names: Callable[[str], str]) -> Iterator[Cluster]:
    made = Cluster(tmp_path, api, make_netns, host_link_names)
    try:
        yield made
    finally:
        made.daemon.stop()


def test_added_interface_events_name_every_interface_its_addresses_and_network(
        cluster: Cluster, host_link_names: Callable[[str], str]) -> None:
    cluster.api.create(bridge_nad("pod-net", host_link_names("npd"), BRIDGE_NET, cluster.data))
    pod = cluster.api.create(make_pod("web", annotations={"k8s.v1.cni.cncf.io/networks": "pod-net"}))
    ns = cluster.make_netns()
    added = cluster.run("ADD", "web", ns)
    assert added.returncode == 0, added.stdout
    inside = addresses(ns)
    wait_until(lambda: len(cluster.events_of("web")) == 2, "two AddedInterface events")
    events = sorted(cluster.events_of("web"), key=lambda e: e["message"])
    assert [(e["type"], e["reason"], e["message"]) for e in events] == [
        ("Normal", "AddedInterface", f"Add eth0 [{inside['eth0']['ipv4'][0]}] from cluster-net"),
        ("Normal", "AddedInterface", f"Add net1 [{inside['net1']['ipv4'][0]}] from default/pod-net"),
    ]
    assert {e["involvedObject"]["uid"] for e in events} == {pod["metadata"]["uid"]}
    assert {e["source"]["host"] for e in events} == {"node-7"}
    assert cluster.run("DEL", "web", ns).returncode == 0


def test_a_failed_add_is_a_warning_event_and_counted_by_network(cluster: Cluster) -> None:
    full = f"{SPARE_NET}.10"
    cluster.api.create(make_nad("full-net", config={"cniVersion": "1.0.0", "type": "bridge", "bridge": "npfull0",
                                                    "ipam": ipam(SPARE_NET, cluster.data, rangeStart=full,
                                                                 rangeEnd=full)}))
    (cluster.data / "full-net").mkdir(parents=True)
    (cluster.data / "full-net" / full).write_text("another-container\r\neth0")
    cluster.api.create(make_pod("full", annotations={"k8s.v1.cni.cncf.io/networks": "full-net"}))
    cluster.api.create(make_pod("lost", annotations={"k8s.v1.cni.cncf.io/networks": "no-such-net"}))
    failed = cluster.run("ADD", "full", cluster.make_netns())
    lost = cluster.run("ADD", "lost", cluster.make_netns())
    assert (failed.returncode, lost.returncode) == (1, 1)
    wait_until(lambda: cluster.events_of("full") and cluster.events_of("lost"), "the warning events")
    [warning] = cluster.events_of("full")
    assert (warning["type"], warning["reason"]) == ("Warning", "FailedAddInterface")
    assert 'network "default/full-net"' in warning["message"]
    assert 'plugin type="bridge"' in warning["message"]
    assert "no IP addresses available in range set" in warning["message"]
    [missing] = cluster.events_of("lost")
    assert (missing["type"], missing["reason"]) == ("Warning", "NoNetworkFound")
    assert "no-such-net" in missing["message"]
    samples = scrape(cluster.port)
    assert samples[("netplex_node_delegate_failures_total", (("network", "default/full-net"),))] == 1
    assert samples[("netplex_node_requests_total", (("result", "error"), ("verb", "ADD")))] == 2
    assert allocations(cluster.data) == {"cluster-net": [], "full-net": [full]}  # rolled back; full's own kept


def test_metrics_count_requests_by_verb_and_show_the_nad_cache(
        cluster: Cluster, host_link_names: Callable[[str], str]) -> None:
    cluster.api.create(bridge_nad("pod-net", host_link_names("npd"), BRIDGE_NET, cluster.data))
    cluster.api.create(make_pod("web", annotations={"k8s.v1.cni.cncf.io/networks": "pod-net"}))
    before = scrape(cluster.port)
    assert before[("netplex_node_requests_total", (("result", "success"), ("verb", "ADD")))] == 0  # pre-initialised
    wait_until(lambda: scrape(cluster.port)[("netplex_node_nad_cache_size", ())] == 1, "the NAD in the cache")
    ns = cluster.make_netns()
    assert cluster.run("ADD", "web", ns).returncode == 0
    assert cluster.run("DEL", "web", ns).returncode == 0
    after = scrape(cluster.port)
    assert after[("netplex_node_requests_total", (("result", "success"), ("verb", "ADD")))] == 1
    assert after[("netplex_node_requests_total", (("result", "success"), ("verb", "DEL")))] == 1
    assert after[("netplex_node_request_duration_seconds_count", (("verb", "ADD"),))] == 1
    assert after[("netplex_node_requests_in_flight", ())] == 0
    assert after[("netplex_node_nad_cache_synced", ())] == 1


def test_nads_come_from_the_cache_and_one_created_a_moment_ago_still_works(
        cluster: Cluster, host_link_names: Callable[[str], str]) -> None:
    cluster.api.create(bridge_nad("old-net", host_link_names("npd"), BRIDGE_NET, cluster.data))
    wait_until(lambda: scrape(cluster.port)[("netplex_node_nad_cache_size", ())] == 1, "the NAD in the cache")
    cluster.api.create(make_pod("cached", annotations={"k8s.v1.cni.cncf.io/networks": "old-net"}))
    ns = cluster.make_netns()
    assert cluster.run("ADD", "cached", ns).returncode == 0
    nad_gets = r"/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions/old-net"
    assert cluster.api.requests_matching("GET", nad_gets) == []  # served from the watch cache
    assert cluster.run("DEL", "cached", ns).returncode == 0

    # Created and used at once: the cache may not have it yet, the GET behind a miss does.
    cluster.api.create(make_nad("new-net", config={"cniVersion": "1.0.0", "type": "bridge",
                                                   "bridge": host_link_names("npn"),
                                                   "ipam": ipam(SPARE_NET, cluster.data)}))
    cluster.api.create(make_pod("fresh", annotations={"k8s.v1.cni.cncf.io/networks": "new-net"}))
    ns2 = cluster.make_netns()
    fresh = cluster.run("ADD", "fresh", ns2)
    assert fresh.returncode == 0, fresh.stdout
    assert sorted(addresses(ns2)) == ["eth0", "lo", "net1"]
    assert cluster.run("DEL", "fresh", ns2).returncode == 0


def test_sigterm_posts_queued_events_and_stops_cleanly(cluster: Cluster, host_link_names: Callable[[str], str]) -> None:
    cluster.api.create(bridge_nad("pod-net", host_link_names("npd"), BRIDGE_NET, cluster.data))
    cluster.api.create(make_pod("web", annotations={"k8s.v1.cni.cncf.io/networks": "pod-net"}))
    ns = cluster.make_netns()
    assert cluster.run("ADD", "web", ns).returncode == 0
    cluster.daemon.signal(signal.SIGTERM)
    code, log = cluster.daemon.wait()
    assert code == 0, log
    assert "stopped by SIGTERM" in log
    assert len(cluster.events_of("web")) == 2
    assert cluster.run("DEL", "web", ns).returncode == 0  # the thin fallback


def test_an_add_reads_its_pod_from_the_node_pod_cache_only_when_the_uid_is_the_sandboxs(
        cluster: Cluster, host_link_names: Callable[[str], str]) -> None:
    """The daemon watches the pods of --node-name node-7; other pods, and ADDs without a
    K8S_POD_UID, are read with a GET as the thin plugin reads them."""
    cluster.api.create(bridge_nad("pod-net", host_link_names("npd"), BRIDGE_NET, cluster.data))
    selection = {"k8s.v1.cni.cncf.io/networks": "pod-net"}
    here = cluster.api.create(make_pod("here", annotations=selection, node_name="node-7"))
    unbound = cluster.api.create(make_pod("unbound", annotations=selection))  # not on this node as far as the watch knows
    cluster.api.create(make_pod("no-uid", annotations=selection, node_name="node-7"))
    wait_until(lambda: cluster.pods_cached() == 2, "this node's two pods in the cache")
    assert scrape(cluster.port)[("netplex_node_pod_cache_synced", ())] == 1
    listed = cluster.api.requests_matching("GET", "/api/v1/pods")
    assert {r.param("fieldSelector") for r in listed} == {"spec.nodeName=node-7"}

    for name, uid, gets in (("here", here["metadata"]["uid"], 0), ("unbound", unbound["metadata"]["uid"], 1),
                            ("no-uid", "", 1)):
        ns = cluster.make_netns()
        added = cluster.run("ADD", name, ns, uid=uid)
        assert added.returncode == 0, added.stdout
        assert sorted(addresses(ns)) == ["eth0", "lo", "net1"], name  # the selection was read either way
        assert cluster.pod_gets(name) == gets, name
        assert cluster.run("DEL", name, ns, uid=uid).returncode == 0


def test_a_late_add_for_a_re_created_pod_gets_it_and_is_refused_as_the_thin_plugin_refuses_it(
        cluster: Cluster) -> None:
    old = cluster.api.create(make_pod("web", node_name="node-7"))
    wait_until(lambda: cluster.pods_cached() == 1, "the pod in the cache")
    cluster.api.delete("pods", "default", "web")
    wait_until(lambda: cluster.pods_cached() == 0, "the deleted pod gone from the cache")
    new = cluster.api.create(make_pod("web", node_name="node-7"))
    wait_until(lambda: cluster.pods_cached() == 1, "the new pod in the cache")
    old_uid, new_uid = old["metadata"]["uid"], new["metadata"]["uid"]
    added = cluster.run("ADD", "web", cluster.make_netns(), uid=old_uid)
    assert added.returncode == 1
    error = json.loads(added.stdout)
    assert error["code"] == 7
    assert error["msg"] == f'[default/web/{old_uid}]: expected pod UID "{old_uid}" but got "{new_uid}" from Kube API'
    assert error["details"] == ("the pod was deleted and re-created under the same name (e.g. by a StatefulSet); "
                                "this sandbox belongs to the old one")
    assert cluster.pod_gets("web") == 1
