"""The node daemon's cache of its node's pods (``fieldSelector=spec.nodeName=<node>``), and
how the daemon's client wrapper uses it for an ADD's pod read, against the API test
double over real HTTPS. The list+watch machinery itself (paging, resume, backoff,
credentials) is tested once, through the NAD cache: tests/node/test_nadcache.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from plugin.cni import k8s
from plugin.cni.kubeconfig import Connection
from plugin.node import daemon
from plugin.node.daemon import CachedReads
from plugin.node.podcache import PODS_PATH, PodCache
from tests.k8sapi import FakeApiServer, make_pod
from tests.node.test_nadcache import source, started_caches, wait_until  # noqa: F401  (source: a fixture)
from tests.plugin.test_main import api_fixture  # noqa: F401  (fixtures are found by name)

NODE = "node-7"
POD_GET = r"/api/v1/namespaces/default/pods/web"


def uid_of(obj: Any) -> str:
    return str(obj["metadata"]["uid"])


def pod_requests(api: FakeApiServer, watch: bool) -> list[Any]:
    return [r for r in api.requests_matching("GET", PODS_PATH) if (r.param("watch") == "1") == watch]


@pytest.fixture
def make_cache(source: k8s.ConnectionSource) -> Iterator[Callable[..., PodCache]]:  # noqa: F811
    with started_caches(lambda node=NODE, **kw: PodCache(source, node, **kw)) as make:
        yield make


@pytest.fixture
def client(source: k8s.ConnectionSource) -> k8s.Client:  # noqa: F811
    return k8s.Client(source, attempts=1)


# ------------------------------------------------------------------ the cache


def test_only_this_nodes_pods_are_listed_and_followed_until_deleted(
        api: FakeApiServer, make_cache: Callable[..., PodCache]) -> None:
    api.create(make_pod("web", node_name=NODE))
    api.create(make_pod("other", node_name="node-8"))
    api.create(make_pod("pending"))  # not scheduled yet
    seen: list[tuple[str, str]] = []
    cache = make_cache(on_change=lambda kind, obj: seen.append((kind, obj["metadata"]["name"])))
    assert cache.wait_synced(10)
    assert cache.size() == 1
    assert cache.get("default", "web") is not None
    assert (cache.get("default", "other"), cache.get("default", "pending")) == (None, None)
    api.wait_for_watches(1)
    [listed] = pod_requests(api, watch=False)
    [watch] = pod_requests(api, watch=True)
    assert listed.param("fieldSelector") == watch.param("fieldSelector") == "spec.nodeName=node-7"

    api.create(make_pod("elsewhere", node_name="node-8"))
    late = api.create(make_pod("late", "blue", node_name=NODE))
    wait_until(lambda: cache.get("blue", "late") is not None, what="the new pod of this node")
    assert cache.get("default", "elsewhere") is None  # written before "late": the watch never had it
    assert uid_of(cache.get("blue", "late")) == uid_of(late)
    api.delete("pods", "default", "web")
    wait_until(lambda: cache.get("default", "web") is None, what="the deleted pod gone")
    assert cache.size() == 1
    assert seen == [("ADDED", "web"), ("ADDED", "late"), ("DELETED", "web")]
    assert (cache.restarts, cache.relists) == (0, 0)


def test_get_hands_out_the_frozen_metadata_an_add_reads_without_copying(
        api: FakeApiServer, make_cache: Callable[..., PodCache]) -> None:
    created = api.create(make_pod("web", labels={"app": "web"}, node_name=NODE,
                                  annotations={"k8s.v1.cni.cncf.io/networks": "blue/macvlan-a"}))
    cache = make_cache()
    assert cache.wait_synced(10)
    pod = cache.get("default", "web")
    assert pod is not None
    assert pod is cache.get("default", "web")  # the stored object itself: no copy per call
    assert list(pod) == ["metadata"]  # no spec, no status
    assert dict(pod["metadata"]) == {"name": "web", "namespace": "default", "uid": uid_of(created),
                                     "resourceVersion": created["metadata"]["resourceVersion"],
                                     "annotations": pod["metadata"]["annotations"]}
    assert dict(pod["metadata"]["annotations"]) == {"k8s.v1.cni.cncf.io/networks": "blue/macvlan-a"}
    with pytest.raises(TypeError, match="'mappingproxy' object does not support item assignment"):
        pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"] = "changed"  # type: ignore[index]
    with pytest.raises(TypeError, match="'mappingproxy' object does not support item assignment"):
        pod["metadata"] = {}  # type: ignore[index]
    assert cache.get("default", "web")["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"] == "blue/macvlan-a"  # type: ignore[index]


def test_an_annotation_change_reaches_the_cache(api: FakeApiServer,
                                                make_cache: Callable[..., PodCache]) -> None:
    created = api.create(make_pod("web", node_name=NODE))
    cache = make_cache()
    assert cache.wait_synced(10)
    api.wait_for_watches(1)
    created["metadata"]["annotations"] = {"k8s.v1.cni.cncf.io/networks": "macvlan-a"}
    api.update(created)
    wait_until(lambda: "annotations" in cache.get("default", "web")["metadata"],  # type: ignore[index]
               what="MODIFIED")
    assert cache.get("default", "web")["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"] == "macvlan-a"  # type: ignore[index]


def test_compacted_history_means_a_relist_that_forgets_deleted_pods(
        api: FakeApiServer, make_cache: Callable[..., PodCache]) -> None:
    api.create(make_pod("stays", node_name=NODE))
    api.create(make_pod("goes", node_name=NODE))
    cache = make_cache()
    assert cache.wait_synced(10)
    api.wait_for_watches(1)
    port = int(api.address.rsplit(":", 1)[1])
    api.stop()
    api.delete("pods", "default", "goes")
    api.create(make_pod("new", node_name=NODE))
    api.compact()
    api.port = port
    api.start()
    wait_until(lambda: cache.get("default", "new") is not None and cache.get("default", "goes") is None,
               what="relisted state")
    assert cache.get("default", "stays") is not None
    assert (cache.size(), cache.relists) == (2, 1)
    relist = pod_requests(api, watch=False)[-1]
    assert relist.param("fieldSelector") == "spec.nodeName=node-7"


def test_an_expired_watch_means_a_relist(api: FakeApiServer, make_cache: Callable[..., PodCache]) -> None:
    cache = make_cache()
    assert cache.wait_synced(10)
    api.wait_for_watches(1)
    api.fail_next("GET", PODS_PATH, 410)  # the resumed watch gets 200 + ERROR 410 Expired
    api.drop_watches()
    wait_until(lambda: cache.relists == 1, what="relist")
    api.create(make_pod("after", node_name=NODE))
    wait_until(lambda: cache.get("default", "after") is not None, what="watching again")
    assert len(pod_requests(api, watch=False)) == 2


@pytest.mark.parametrize(("node", "message"), [
    ("", '"" is not a valid node name (a DNS-1123 subdomain: it is empty); use lowercase letters, digits, '
         "'-' and '.', each dot-separated part starting and ending with a letter or digit, at most 253 characters"),
    ("node-7,spec.nodeName!=x", '"node-7,spec.nodeName!=x" is not a valid node name (a DNS-1123 subdomain: it has a part '
                                '"node-7,spec" that contains \',\'); use lowercase letters'),
    ("Worker_1", '"Worker_1" is not a valid node name (a DNS-1123 subdomain: it has a part "Worker_1" that contains '
                 "uppercase 'W'); use lowercase letters"),
])
def test_a_node_name_that_would_change_the_selector_is_refused(node: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        PodCache(Connection(server="https://192.0.2.1"), node)
    assert str(info.value).startswith(message)


def test_forbidden_names_list_and_watch_on_pods(api: FakeApiServer,
                                                make_cache: Callable[..., PodCache]) -> None:
    api.fail_next("GET", PODS_PATH, 403, times=1000)
    cache = make_cache()
    wait_until(lambda: "403" in cache.last_error, what="403 noted")
    assert cache.last_error == (f"GET {PODS_PATH}?limit=500&fieldSelector=spec.nodeName%3Dnode-7: 403 Forbidden: "
                                "forbidden: injected by tests.k8sapi; "
                                "the node daemon's identity needs list and watch on pods")
    assert not cache.synced


# ------------------------------------------------------------------ the ADD's pod read


def read_pod(client: k8s.Client, cache: PodCache, name: str, uid: str | None,
             namespace: str = "default") -> Mapping[str, Any] | None:
    """What an ADD in the daemon does: wait_for_pod through the daemon's client wrapper."""
    return k8s.wait_for_pod(CachedReads(client, pods=cache.get), namespace, name, uid,  # type: ignore[arg-type]
                            attempts=1, delay=0)


def gets_of_web(api: FakeApiServer) -> int:
    return len(api.requests_matching("GET", POD_GET))


def test_a_cached_pod_with_the_sandbox_uid_is_read_without_a_get(
        api: FakeApiServer, make_cache: Callable[..., PodCache], client: k8s.Client) -> None:
    created = api.create(make_pod("web", node_name=NODE, annotations={"k8s.v1.cni.cncf.io/networks": "net-a"}))
    cache = make_cache()
    assert cache.wait_synced(10)
    pod = read_pod(client, cache, "web", uid_of(created))
    assert pod is not None and pod["metadata"]["annotations"] == {"k8s.v1.cni.cncf.io/networks": "net-a"}
    assert gets_of_web(api) == 0


def test_without_a_sandbox_uid_the_pod_is_got_from_the_api(
        api: FakeApiServer, make_cache: Callable[..., PodCache], client: k8s.Client) -> None:
    api.create(make_pod("web", node_name=NODE))
    cache = make_cache()
    assert cache.wait_synced(10)
    pod = read_pod(client, cache, "web", None)
    assert pod is not None and "spec" in pod  # the API's whole pod
    assert gets_of_web(api) == 1


@pytest.mark.parametrize("why", ["the watch has not delivered it yet", "the cache never listed (403)"])
def test_a_pod_the_cache_does_not_hold_is_got_from_the_api(
        api: FakeApiServer, make_cache: Callable[..., PodCache], client: k8s.Client, why: str) -> None:
    if why.startswith("the watch"):
        cache = make_cache()
        assert cache.wait_synced(10)
        cache.stop()  # a watch that lags: the pod below never reaches it
        created = api.create(make_pod("web", node_name=NODE))
    else:
        created = api.create(make_pod("web", node_name=NODE))
        api.fail_next("GET", PODS_PATH, 403, times=1000)  # the daemon's RBAC lacks list/watch on pods
        cache = make_cache()
        wait_until(lambda: "403" in cache.last_error, what="403 noted")
    pod = read_pod(client, cache, "web", uid_of(created))
    assert pod is not None and uid_of(pod) == uid_of(created)
    assert gets_of_web(api) == 1


def test_a_re_created_pod_the_cache_has_not_seen_is_got_from_the_api(
        api: FakeApiServer, make_cache: Callable[..., PodCache], client: k8s.Client) -> None:
    old = api.create(make_pod("web", node_name=NODE, annotations={"k8s.v1.cni.cncf.io/networks": "old-net"}))
    cache = make_cache()
    assert cache.wait_synced(10)
    cache.stop()  # it keeps the old pod, as a lagging watch would
    api.delete("pods", "default", "web")
    new = api.create(make_pod("web", node_name=NODE, annotations={"k8s.v1.cni.cncf.io/networks": "new-net"}))
    assert uid_of(cache.get("default", "web")) == uid_of(old) != uid_of(new)
    pod = read_pod(client, cache, "web", uid_of(new))
    assert pod is not None and pod["metadata"]["annotations"] == {"k8s.v1.cni.cncf.io/networks": "new-net"}
    assert gets_of_web(api) == 1


def test_a_late_add_for_the_replaced_pod_gets_the_api_answer_and_the_uid_mismatch(
        api: FakeApiServer, make_cache: Callable[..., PodCache], client: k8s.Client) -> None:
    old = api.create(make_pod("web", node_name=NODE))
    cache = make_cache()
    assert cache.wait_synced(10)
    api.wait_for_watches(1)
    api.delete("pods", "default", "web")
    new = api.create(make_pod("web", node_name=NODE))
    wait_until(lambda: (cache.get("default", "web") or {}).get("metadata", {}).get("uid") == uid_of(new),
               what="the new pod cached")
    with pytest.raises(k8s.PodUidMismatch) as info:
        read_pod(client, cache, "web", uid_of(old))
    assert str(info.value) == (
        f'GET /api/v1/namespaces/default/pods/web: 409 PodUidMismatch: expected pod UID "{uid_of(old)}" but got '
        f'"{uid_of(new)}" from Kube API; the pod was deleted and re-created under the same name '
        "(e.g. by a StatefulSet); this sandbox belongs to the old one")
    assert gets_of_web(api) == 1


def test_a_static_pod_is_got_from_the_api_and_accepted_with_the_kubelets_uid(
        api: FakeApiServer, make_cache: Callable[..., PodCache], client: k8s.Client) -> None:
    mirror = api.create(make_pod("etcd-node-7", "kube-system", node_name=NODE,
                                 annotations={"kubernetes.io/config.source": "file"}))
    cache = make_cache()
    assert cache.wait_synced(10)
    assert cache.get("kube-system", "etcd-node-7") is not None
    pod = read_pod(client, cache, "etcd-node-7", "kubelet-config-hash", namespace="kube-system")
    assert pod is not None and uid_of(pod) == uid_of(mirror)
    assert len(api.requests_matching("GET", r"/api/v1/namespaces/kube-system/pods/etcd-node-7")) == 1


def test_the_api_client_itself_always_gets_the_pod(api: FakeApiServer, client: k8s.Client) -> None:
    created = api.create(make_pod("web", node_name=NODE))
    assert uid_of(client.get_pod("default", "web", uid=uid_of(created))) == uid_of(created)
    assert uid_of(client.get_pod("default", "web", uid="another")) == uid_of(created)
    assert gets_of_web(api) == 2  # uid is for the daemon's wrapper: the client GETs every time


# ------------------------------------------------------------------ the daemon's wiring


def node_of(api: FakeApiServer, tmp_path: Path, node_name: str) -> daemon.Node:
    args = daemon.parse_args(["run", "--kubeconfig", str(api.kubeconfig(tmp_path / "kubeconfig")),
                              "--node-name", node_name, "--metrics-address", "", "--no-events"])
    return daemon.Node(args, {})


def test_the_daemon_watches_the_pods_of_its_node_name(api: FakeApiServer, tmp_path: Path) -> None:
    node = node_of(api, tmp_path, "node-7")
    assert node.pods is not None and node.pods.field_selector == "spec.nodeName=node-7"
    assert node.caches() == [node.nads, node.pods]


def test_a_node_name_that_is_no_node_name_leaves_the_daemon_without_a_pod_cache_and_says_why(
        api: FakeApiServer, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    node = node_of(api, tmp_path, "Worker_1")
    assert node.pods is None
    assert node.caches() == [node.nads]  # NADs still cached; every ADD GETs its pod, as the thin plugin does
    assert caplog.messages == [
        '--node-name: "Worker_1" is not a valid node name (a DNS-1123 subdomain: it has a part "Worker_1" that contains '
        "uppercase 'W'); use lowercase letters, digits, '-' and '.', each dot-separated part starting and ending "
        "with a letter or digit, at most 253 characters; without a pod cache, every ADD GETs its pod"]
