"""The live index when the API server misbehaves: down at start, watches cut, 410 Gone, slow.

Against the API double (tests/k8sapi.py) and its outage controls: ``down()``/``up()``
(connections refused, open ones cut), ``drop_watches(cut=True)`` (a watch cut mid-stream),
``compact()`` (history gone: a resumed watch gets 410) and ``delay()`` (slow answers).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.k8sapi import FakeApiServer, make_nad
from tests.webhook.test_cluster import CONFIG, NAD_PATH, eventually, pod_request
from webhook import cluster as cluster_module
from webhook.admission import Admission
from webhook.app import create_app
from webhook.cluster import ClusterIndex, load_api_client
from webhook.wiring import build_handler

NAD_ITEMS = r"/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions/.*"


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with FakeApiServer(tls=True) as server:
        server.create(make_nad("old", "default", config=CONFIG))
        yield server


def start_index(api: FakeApiServer, tmp_path: Path, **kwargs: Any) -> ClusterIndex:
    return ClusterIndex(load_api_client(str(api.kubeconfig(tmp_path / "kc"))), **kwargs).start()


def nad_lists(api: FakeApiServer) -> int:
    return sum(1 for r in api.requests_matching("GET", NAD_PATH) if "watch" not in r.query)


def nad_watches(api: FakeApiServer) -> list[str]:
    """The resourceVersion each NAD watch was opened from, in order."""
    return [r.query["resourceVersion"][-1] for r in api.requests_matching("GET", NAD_PATH) if "watch" in r.query]


def readyz(app: Any) -> tuple[int, dict[str, Any]]:
    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://webhook.test") as client:
            return await client.get("/readyz")

    response = asyncio.run(get())
    return response.status_code, response.json()


def test_api_down_at_start_keeps_readyz_false_until_the_first_sync(api: FakeApiServer, tmp_path: Path) -> None:
    kubeconfig = api.kubeconfig(tmp_path / "kc")
    api.down()
    handler = build_handler(argparse.Namespace(nads=None, policy=None, kubeconfig=str(kubeconfig)))
    try:
        app = create_app(handler)
        # several attempts fail (connection refused) while it is down
        time.sleep(cluster_module.RETRY_SECONDS * 1.5)
        assert readyz(app) == (503, {"ready": False, "reason": "the NetworkAttachmentDefinition index has not synced yet"})
        assert handler.index_size() == 0

        api.up()
        assert eventually(lambda: readyz(app)[0] == 200, timeout=15)
        assert readyz(app) == (200, {"ready": True})
        assert handler.index_size() == 1
        verdict = handler.validate(pod_request("old"))
        assert verdict.allowed, verdict.message
    finally:
        handler.close()


def test_a_watch_cut_mid_stream_resumes_where_it_was_and_misses_nothing(api: FakeApiServer, tmp_path: Path) -> None:
    index = start_index(api, tmp_path)
    try:
        assert index.wait_synced(10)
        api.wait_for_watches(2)
        seen = api.resource_version
        api.drop_watches(cut=True)
        # while the client is cut off (it waits before reconnecting)
        api.delete("network-attachment-definitions", "default", "old")
        api.create(make_nad("new", "default", config=CONFIG))

        assert eventually(lambda: index.get_nad("default", "new") is not None, timeout=15)
        assert eventually(lambda: index.get_nad("default", "old") is None, timeout=15)
        assert nad_lists(api) == 1  # resumed from its resourceVersion, no relist
        assert nad_watches(api)[-1] == seen
    finally:
        index.stop()


def test_a_watch_cut_then_410_gone_relists_and_drops_what_was_deleted_meanwhile(
    api: FakeApiServer, tmp_path: Path
) -> None:
    index = start_index(api, tmp_path)
    try:
        assert index.wait_synced(10)
        api.wait_for_watches(2)
        api.drop_watches(cut=True)
        api.delete("network-attachment-definitions", "default", "old")
        api.create(make_nad("new", "default", config=CONFIG))
        api.compact()  # the resumed watch hears "410 too old resource version"

        assert eventually(lambda: nad_lists(api) == 2, timeout=15)
        assert eventually(lambda: index.get_nad("default", "new") is not None, timeout=15)
        assert index.get_nad("default", "old") is None
        assert index.nad_names("default") == ["new"]
    finally:
        index.stop()


def test_an_api_server_restart_with_history_lost_relists_and_keeps_serving_meanwhile(
    api: FakeApiServer, tmp_path: Path
) -> None:
    index = start_index(api, tmp_path)
    try:
        assert index.wait_synced(10)
        api.wait_for_watches(2)
        api.down()
        api.delete("network-attachment-definitions", "default", "old")
        api.create(make_nad("new", "default", config=CONFIG))
        api.compact()
        time.sleep(cluster_module.RETRY_SECONDS * 1.5)
        assert index.synced() and index.nad_names("default") == ["old"]  # what it last knew

        api.up()
        assert eventually(lambda: index.nad_names("default") == ["new"], timeout=15)
        assert nad_lists(api) == 2
    finally:
        index.stop()


# -- a slow API server and the event loop ---------------------------------------------------


@pytest.fixture
def slow_handler(api: FakeApiServer, tmp_path: Path) -> Iterator[Admission]:
    """The production wiring (its default confirming-GET timeout), synced, over an API whose
    NAD GETs take 5 s."""
    cluster = start_index(api, tmp_path, confirm_backoff=60)
    handler = Admission(cluster, confirm_missing=cluster.confirm, ready=cluster.synced, close=cluster.stop)
    try:
        assert cluster.wait_synced(10)
        api.delay(5.0, "GET", NAD_ITEMS)
        yield handler
    finally:
        api.delay(0)
        cluster.stop()


def review(networks: str) -> bytes:
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                       "request": pod_request(networks)}).encode()


async def served_with_probe(handler: Admission, bodies: list[bytes]) -> tuple[list[tuple[httpx.Response, float]], float]:
    """POST every body to /validate at once through the app; meanwhile a probe coroutine
    sleeps 5 ms at a time on the same loop and records the longest gap between its wake-ups
    beyond what it asked for. Returns the (answer, seconds) pairs and that gap."""
    app = create_app(handler)
    transport = httpx.ASGITransport(app=app)
    longest = 0.0
    done = asyncio.Event()

    async def probe() -> None:
        nonlocal longest
        while not done.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            longest = max(longest, time.perf_counter() - before - 0.005)

    async def post(client: httpx.AsyncClient, body: bytes) -> tuple[httpx.Response, float]:
        began = time.perf_counter()
        response = await client.post("/validate", content=body, headers={"content-type": "application/json"})
        return response, time.perf_counter() - began

    prober = asyncio.create_task(probe())
    await asyncio.sleep(0.05)
    async with httpx.AsyncClient(transport=transport, base_url="http://webhook.test", timeout=30) as client:
        answers = await asyncio.gather(*(post(client, body) for body in bodies))
    done.set()
    await prober
    return list(answers), longest


def test_a_slow_api_costs_one_confirm_timeout_at_most_and_never_stalls_the_event_loop(
    api: FakeApiServer, slow_handler: Admission, capsys: pytest.CaptureFixture[str]
) -> None:
    timeout = cluster_module.CONFIRM_TIMEOUT
    # 20 pods that each select 3 missing networks (each would GET), 20 that select one present
    bodies = [review(f"gone-{i}-a, gone-{i}-b, gone-{i}-c") for i in range(20)] + [review("old")] * 20

    answers, gap = asyncio.run(served_with_probe(slow_handler, bodies))

    for response, _ in answers:
        assert response.status_code == 200
    missing, present = answers[:20], answers[20:]
    for response, _ in missing:
        message = response.json()["response"]["status"]["message"]
        assert response.json()["response"]["allowed"] is False
        assert message.startswith('metadata.annotations[k8s.v1.cni.cncf.io/networks][0].name: '
                                  'no NetworkAttachmentDefinition "gone-')
    assert all(response.json()["response"]["allowed"] is True for response, _ in present)
    slowest = max(seconds for _, seconds in missing)
    # one timed-out GET (not re-sent: 4 x 1.5 s), then the index alone (not 3 x 5 s)
    assert slowest < timeout + 1.5, f"a request waited {slowest:.2f}s"
    assert max(seconds for _, seconds in present) < timeout + 1.5
    assert gap < timeout, f"the event loop stalled {gap * 1000:.0f} ms"
    gets = api.requests_matching("GET", NAD_ITEMS)
    assert 1 <= len(gets) <= 20  # the first failure pauses the confirms (the rest raced it)
    with capsys.disabled():
        print(f"\n[slow API] longest event-loop gap {gap * 1000:.1f} ms; slowest request {slowest * 1000:.0f} ms; "
              f"{len(gets)} confirming GETs sent for 60 missing networks")


def test_a_confirm_that_fails_is_logged_and_leaves_the_index_answer(
    api: FakeApiServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    index = start_index(api, tmp_path, confirm_timeout=0.5, confirm_backoff=0.5)
    try:
        assert index.wait_synced(10)
        api.fail_next("GET", NAD_ITEMS, 503)
        assert index.confirm("default", "fresh") is None
        assert ("confirming GET of NetworkAttachmentDefinition default/fresh failed (503 Service Unavailable); "
                "using the index alone for the next 0s") in caplog.text
        api.create(make_nad("fresh", "default", config=CONFIG))
        assert index.confirm("default", "fresh") is None  # paused: not asked
        assert len(api.requests_matching("GET", NAD_ITEMS)) == 1
        time.sleep(0.6)
        found = index.confirm("default", "fresh")  # asked again after the pause
        assert found is not None and found.name == "fresh"
    finally:
        index.stop()


def test_a_confirm_refused_for_lack_of_rights_is_an_error_not_a_miss(api: FakeApiServer, tmp_path: Path) -> None:
    from kubernetes.client.rest import ApiException

    index = start_index(api, tmp_path)
    try:
        assert index.wait_synced(10)
        api.fail_next("GET", NAD_ITEMS, 403)
        with pytest.raises(ApiException) as caught:
            index.confirm("default", "fresh")
        assert caught.value.status == 403
    finally:
        index.stop()


# -- a hung API server: every call has a client-side timeout ---------------------------------


def test_a_list_that_hangs_is_given_up_and_retried(api: FakeApiServer, tmp_path: Path) -> None:
    api.delay(60, "GET", NAD_PATH)  # the API server accepts the list and never answers it
    index = start_index(api, tmp_path, list_timeout=0.5)
    try:
        time.sleep(1.0)
        assert not index.synced()
        api.delay(0)  # the API server recovers; the hung request would still hang for 60 s
        assert index.wait_synced(12), "the index waited for the hung list"
        assert index.nad_names("default") == ["old"]
    finally:
        index.stop()


def test_a_watch_that_goes_silent_is_given_up_and_resumed(api: FakeApiServer, tmp_path: Path) -> None:
    index = start_index(api, tmp_path, watch_timeout=1, watch_grace=0.5)
    try:
        assert index.wait_synced(10)
        api.delay(60, "GET", NAD_PATH)  # the next watch (after the 1 s one ends) hears nothing
        watches = len(nad_watches(api))
        assert eventually(lambda: len(nad_watches(api)) > watches, timeout=5)
        api.delay(0)
        api.create(make_nad("new", "default", config=CONFIG))
        assert eventually(lambda: index.get_nad("default", "new") is not None, timeout=15), "stuck on the silent watch"
    finally:
        index.stop()
