"""The live index against the Kubernetes API double: list, watch, relist, confirm-before-deny."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.k8sapi import FakeApiServer, make_nad, make_namespace
from webhook.admission import Admission
from webhook.cluster import ClusterIndex, load_api_client
from webhook.wiring import PolicySource, build_handler

CONFIG = {"cniVersion": "0.3.1", "type": "macvlan", "master": "eth0",
          "ipam": {"type": "host-local", "subnet": "10.1.0.0/24"}}


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with FakeApiServer(tls=True) as server:
        server.create(make_nad("macvlan-conf", "default", config=CONFIG))
        server.create(make_namespace("tenant", annotations={"netplex.io/allowed-networks": "shared/*"}))
        yield server


@pytest.fixture
def index(api: FakeApiServer, tmp_path: Path) -> Iterator[ClusterIndex]:
    cluster = ClusterIndex(load_api_client(str(api.kubeconfig(tmp_path / "kubeconfig")))).start()
    try:
        assert cluster.wait_synced(10)
        yield cluster
    finally:
        cluster.stop()


def pod_request(networks: str, namespace: str = "default") -> dict[str, Any]:
    return {"uid": "1", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "operation": "CREATE",
            "namespace": namespace,
            "object": {"metadata": {"name": "p", "annotations": {"k8s.v1.cni.cncf.io/networks": networks}},
                       "spec": {"containers": [{"name": "c"}]}}}


def test_index_lists_nads_and_namespaces_then_reports_synced(index: ClusterIndex) -> None:
    assert index.synced()
    nad = index.get_nad("default", "macvlan-conf")
    assert nad is not None and nad.config.ok
    namespace = index.get_namespace("tenant")
    assert namespace is not None
    assert namespace["metadata"]["annotations"] == {"netplex.io/allowed-networks": "shared/*"}


def test_watch_adds_updates_and_removes_nads(api: FakeApiServer, index: ClusterIndex) -> None:
    api.wait_for_watches(2)
    api.create(make_nad("fresh", "default", config=CONFIG))
    assert eventually(lambda: index.get_nad("default", "fresh") is not None)
    api.delete("network-attachment-definitions", "default", "fresh")
    assert eventually(lambda: index.get_nad("default", "fresh") is None)


def test_namespace_policy_changes_reach_the_index(api: FakeApiServer, index: ClusterIndex) -> None:
    api.wait_for_watches(2)
    api.create(make_namespace("team", annotations={"netplex.io/max-networks": "1"}))
    assert eventually(lambda: index.get_namespace("team") is not None)


NAD_PATH = "/apis/k8s.cni.cncf.io/v1/network-attachment-definitions"


def test_an_expired_watch_makes_the_index_relist(api: FakeApiServer, tmp_path: Path) -> None:
    cluster = ClusterIndex(load_api_client(str(api.kubeconfig(tmp_path / "kc"))), watch_timeout=1).start()
    try:
        assert cluster.wait_synced(10)

        def lists() -> int:
            return sum(1 for r in api.requests_matching("GET", NAD_PATH) if "watch" not in r.query)

        assert lists() == 1
        api.fail_next("GET", NAD_PATH, 410)  # the resumed watch hears "too old resource version"
        assert eventually(lambda: lists() == 2, timeout=15)
        api.create(make_nad("after-relist", "default", config=CONFIG))
        assert eventually(lambda: cluster.get_nad("default", "after-relist") is not None, timeout=15)
    finally:
        cluster.stop()


@pytest.fixture
def cluster_handler(api: FakeApiServer, tmp_path: Path) -> Iterator[Admission]:
    """The production wiring against the API double, synced."""
    args = argparse.Namespace(nads=None, policy=None, kubeconfig=str(api.kubeconfig(tmp_path / "kc")))
    handler = build_handler(args)
    try:
        assert eventually(handler.ready)
        yield handler
    finally:
        handler.close()


def test_a_miss_is_confirmed_with_one_get_before_denying(api: FakeApiServer, cluster_handler: Admission) -> None:
    handler = cluster_handler
    before = len(api.requests_matching("GET", r"/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions/.*"))
    verdict = handler.validate(pod_request("nope"))
    assert not verdict.allowed
    assert verdict.message.startswith(
        'metadata.annotations[k8s.v1.cni.cncf.io/networks][0].name: no NetworkAttachmentDefinition "nope" '
        'in namespace "default"'
    )
    gets = api.requests_matching("GET", r"/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions/.*")
    assert len(gets) - before == 1
    assert gets[-1].path.endswith("/nope")


def test_a_nad_created_a_moment_ago_is_found_by_the_confirming_get(api: FakeApiServer, index: ClusterIndex) -> None:
    # Not yet in the index (we bypass the watch by asking before it could deliver).
    api.create(make_nad("just-now", "default", config=CONFIG))
    nad = index.confirm("default", "just-now")
    assert nad is not None and nad.name == "just-now"
    assert index.get_nad("default", "just-now") is not None
    assert index.confirm("default", "never") is None


def test_namespace_policy_from_the_cluster_is_applied(
    api: FakeApiServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    handler = build_handler(argparse.Namespace(nads=None, policy=None,
                                               kubeconfig=str(api.kubeconfig(tmp_path / "kc"))))
    request.addfinalizer(handler.close)
    assert eventually(handler.ready)
    verdict = handler.validate(pod_request("default/macvlan-conf", namespace="tenant"))
    assert not verdict.allowed
    assert "is not allowed in namespace \"tenant\"" in verdict.message


def test_policy_file_is_reloaded_and_a_broken_edit_keeps_the_last_good_one(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("missingNetworks: warn\n")
    source = PolicySource(path, interval=0.0)
    assert source().missing_networks == "warn"
    path.write_text("missingNetworks: ignore\n")
    assert source().missing_networks == "ignore"
    path.write_text("missingNetworks: [\n")
    assert source().missing_networks == "ignore"
    path.write_text("missingNetworks: deny\n")
    assert source().missing_networks == "deny"


def test_a_broken_policy_file_at_start_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("missingNetwork: warn\n")
    with pytest.raises(ValueError, match="missingNetwork: Extra inputs are not permitted"):
        PolicySource(path)


def test_over_http_the_confirming_get_runs_once_and_off_the_event_loop(
    api: FakeApiServer, cluster_handler: Admission
) -> None:
    import asyncio
    import json
    import threading

    import httpx

    from webhook.app import create_app

    handler = cluster_handler
    pattern = r"/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions/.*"
    before = len(api.requests_matching("GET", pattern))
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": pod_request("nope")}
    confirm, threads = handler._confirm, []
    assert confirm is not None

    def watched(namespace: str, name: str) -> Any:
        threads.append(threading.current_thread().name)
        return confirm(namespace, name)

    handler._confirm = watched

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(handler))
        async with httpx.AsyncClient(transport=transport, base_url="http://webhook.test") as client:
            return await client.post("/validate", content=json.dumps(review), headers={"content-type": "application/json"})

    resp = asyncio.run(post())

    answer = resp.json()["response"]
    assert resp.status_code == 200 and answer["allowed"] is False
    assert 'no NetworkAttachmentDefinition "nope" in namespace "default"' in answer["status"]["message"]
    assert len(api.requests_matching("GET", pattern)) - before == 1
    # asked on the loop (it stepped aside before any I/O), then made in a worker thread
    assert threads[0] == threading.main_thread().name and threads[1] != threads[0]
