"""The node daemon's NAD list+watch cache against the API test double, over real HTTPS."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from plugin.cni import k8s
from plugin.cni.kubeconfig import Connection, KubeconfigError
from plugin.node.nadcache import NADS_PATH, NadCache
from plugin.node.watchcache import WatchCache
from tests.k8sapi import FakeApiServer, make_nad, make_namespace, make_pod

FAST = {"backoff": 0.05, "max_backoff": 0.2}


def config_of(cni_type: str) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "type": cni_type}


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        time.sleep(0.01)


def nad_type(cache: NadCache, namespace: str, name: str) -> str | None:
    nad = cache.get(namespace, name)
    return None if nad is None else str(json.loads(nad["spec"]["config"])["type"])


def watches(api: FakeApiServer) -> list[Any]:
    return [r for r in api.requests_matching("GET", NADS_PATH) if r.param("watch") == "1"]


def lists(api: FakeApiServer) -> list[Any]:
    return [r for r in api.requests_matching("GET", NADS_PATH) if r.param("watch") is None]


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with FakeApiServer(tls=True) as server:
        server.create(make_namespace("blue"))
        yield server


@pytest.fixture
def source(api: FakeApiServer, tmp_path: Path) -> k8s.ConnectionSource:
    """What the daemon passes: the API client's own connection callable."""
    client = k8s.client_from_config(str(api.kubeconfig(tmp_path / "kubeconfig")))
    assert client is not None
    return client.connection


Cache = TypeVar("Cache", bound=WatchCache[Any])


@contextlib.contextmanager
def started_caches(build: Callable[..., Cache]) -> Iterator[Callable[..., Cache]]:
    """``make(**kw)``: ``build(**kw)`` with the fast test timings, started; all stopped at the end."""
    made: list[Cache] = []

    def make(**kw: Any) -> Cache:
        cache = build(**{"timeout": 5.0, **FAST, **kw})
        made.append(cache)
        cache.start()
        return cache

    try:
        yield make
    finally:
        for cache in made:
            cache.stop()


@pytest.fixture
def make_cache(source: k8s.ConnectionSource) -> Iterator[Callable[..., NadCache]]:
    with started_caches(lambda **kw: NadCache(kw.pop("connection_source", source), **kw)) as make:
        yield make


# ------------------------------------------------------------------ list


def test_initial_sync_loads_every_namespace_then_watches_from_the_list_version(
        api: FakeApiServer, make_cache: Callable[..., NadCache]) -> None:
    api.create(make_nad("macvlan-a", "blue", config=config_of("macvlan")))
    api.create(make_nad("bridge-b", "default", config=config_of("bridge")))
    listed_at = api.resource_version
    cache = make_cache()
    assert cache.wait_synced(10)
    assert cache.synced
    assert cache.size() == 2
    assert nad_type(cache, "blue", "macvlan-a") == "macvlan"
    assert nad_type(cache, "default", "bridge-b") == "bridge"
    assert cache.get("blue", "bridge-b") is None  # same name, other namespace: a miss
    api.wait_for_watches(1)
    [listed] = lists(api)
    [watch] = watches(api)
    assert listed.header("Authorization") == "Bearer test-token"
    assert (watch.param("resourceVersion"), watch.param("allowWatchBookmarks")) == (listed_at, "true")
    assert int(watch.param("timeoutSeconds") or 0) > 0
    assert (cache.restarts, cache.relists) == (0, 0)


def test_a_long_list_is_read_page_by_page(api: FakeApiServer, make_cache: Callable[..., NadCache]) -> None:
    for i in range(5):
        api.create(make_nad(f"net-{i}", "blue", config=config_of("bridge")))
    cache = make_cache(page_size=2)
    assert cache.wait_synced(10)
    assert cache.size() == 5
    pages = lists(api)
    assert [p.param("limit") for p in pages] == ["2", "2", "2"]
    assert [bool(p.param("continue")) for p in pages] == [False, True, True]


def test_get_returns_a_copy_that_callers_may_change(api: FakeApiServer,
                                                    make_cache: Callable[..., NadCache]) -> None:
    api.create(make_nad("macvlan-a", "blue", config=config_of("macvlan")))
    cache = make_cache()
    assert cache.wait_synced(10)
    nad = cache.get("blue", "macvlan-a")
    assert nad is not None
    nad["spec"]["config"] = "changed"
    assert nad_type(cache, "blue", "macvlan-a") == "macvlan"


def test_wait_synced_says_false_while_the_api_server_cannot_be_reached(
        api: FakeApiServer, make_cache: Callable[..., NadCache]) -> None:
    api.stop()
    cache = make_cache()
    assert cache.wait_synced(0.3) is False
    assert not cache.synced
    assert cache.get("blue", "anything") is None
    assert "cannot reach the API server" in cache.last_error


# ------------------------------------------------------------------ watch


def test_created_updated_and_deleted_nads_are_seen_in_order(api: FakeApiServer,
                                                           make_cache: Callable[..., NadCache]) -> None:
    seen: list[tuple[str, str]] = []
    cache = make_cache(on_change=lambda kind, obj: seen.append((kind, obj["metadata"]["name"])))
    assert cache.wait_synced(10)
    api.wait_for_watches(1)
    created = api.create(make_nad("macvlan-a", "blue", config=config_of("macvlan")))
    wait_until(lambda: nad_type(cache, "blue", "macvlan-a") == "macvlan", what="ADDED")
    api.update({**created, "spec": {"config": json.dumps(config_of("ipvlan"))}})
    wait_until(lambda: nad_type(cache, "blue", "macvlan-a") == "ipvlan", what="MODIFIED")
    api.delete("network-attachment-definitions", "blue", "macvlan-a")
    wait_until(lambda: cache.get("blue", "macvlan-a") is None, what="DELETED")
    assert seen == [("ADDED", "macvlan-a"), ("MODIFIED", "macvlan-a"), ("DELETED", "macvlan-a")]
    assert cache.resource_version == api.resource_version
    assert (cache.restarts, cache.relists, len(lists(api))) == (0, 0, 1)


def test_a_dropped_watch_resumes_from_the_last_version_without_a_relist(
        api: FakeApiServer, make_cache: Callable[..., NadCache]) -> None:
    cache = make_cache()
    assert cache.wait_synced(10)
    api.wait_for_watches(1)
    api.create(make_nad("first", "blue", config=config_of("bridge")))
    wait_until(lambda: cache.get("blue", "first") is not None)
    resume_at = cache.resource_version
    api.drop_watches()
    api.wait_for_watches(1)
    api.create(make_nad("second", "blue", config=config_of("bridge")))
    wait_until(lambda: cache.get("blue", "second") is not None)
    assert [w.param("resourceVersion") for w in watches(api)][1] == resume_at
    assert len(lists(api)) == 1
    assert (cache.restarts, cache.relists) == (1, 0)


def test_bookmarks_move_the_resume_version_forward(api: FakeApiServer,
                                                    make_cache: Callable[..., NadCache]) -> None:
    cache = make_cache()
    assert cache.wait_synced(10)
    api.wait_for_watches(1)
    before = cache.resource_version
    api.create(make_pod("web", "blue"))  # a write the NAD watch never sees
    api.bookmark()
    wait_until(lambda: cache.resource_version == api.resource_version, what="bookmark")
    assert int(cache.resource_version) > int(before)
    assert cache.size() == 0


def test_a_watch_renewed_at_its_timeout_is_not_a_restart(api: FakeApiServer,
                                                          make_cache: Callable[..., NadCache]) -> None:
    cache = make_cache(watch_timeout=1)
    assert cache.wait_synced(10)
    wait_until(lambda: len(watches(api)) >= 3, timeout=10, what="three watches")
    assert [w.param("timeoutSeconds") for w in watches(api)][:3] == ["1", "1", "1"]
    assert (cache.restarts, len(lists(api))) == (0, 1)


# ------------------------------------------------------------------ 410 and outages


def test_compacted_history_after_a_reconnect_means_a_relist_that_forgets_deleted_nads(
        api: FakeApiServer, make_cache: Callable[..., NadCache]) -> None:
    api.create(make_nad("stays", "blue", config=config_of("bridge")))
    api.create(make_nad("goes", "blue", config=config_of("bridge")))
    seen: list[tuple[str, str]] = []
    cache = make_cache(on_change=lambda kind, obj: seen.append((kind, obj["metadata"]["name"])))
    assert cache.wait_synced(10)
    api.wait_for_watches(1)
    port = int(api.address.rsplit(":", 1)[1])
    api.stop()
    api.delete("network-attachment-definitions", "blue", "goes")
    api.create(make_nad("new", "blue", config=config_of("macvlan")))
    api.compact()
    api.port = port
    api.start()
    wait_until(lambda: cache.get("blue", "new") is not None and cache.get("blue", "goes") is None,
               what="relisted state")
    assert nad_type(cache, "blue", "stays") == "bridge"
    assert cache.size() == 2
    assert cache.relists == 1
    assert len(lists(api)) == 2
    assert seen[2:] == [("ADDED", "new"), ("DELETED", "goes")]  # the relist's difference, nothing else


def test_an_expired_error_event_on_a_live_watch_means_a_relist(api: FakeApiServer,
                                                              make_cache: Callable[..., NadCache]) -> None:
    cache = make_cache()
    assert cache.wait_synced(10)
    api.wait_for_watches(1)
    api.fail_next("GET", NADS_PATH, 410)  # the resumed watch gets 200 + ERROR 410 Expired
    api.drop_watches()
    wait_until(lambda: cache.relists == 1, what="relist")
    api.wait_for_watches(1)
    api.create(make_nad("after", "blue", config=config_of("bridge")))
    wait_until(lambda: cache.get("blue", "after") is not None)
    assert len(lists(api)) == 2


def test_http_410_on_a_list_is_retried_with_a_fresh_list(api: FakeApiServer,
                                                         make_cache: Callable[..., NadCache]) -> None:
    api.create(make_nad("macvlan-a", "blue", config=config_of("macvlan")))
    api.fail_next("GET", NADS_PATH, 410)
    cache = make_cache()
    assert cache.wait_synced(10)
    assert [r.status for r in lists(api)] == [410, 200]
    assert nad_type(cache, "blue", "macvlan-a") == "macvlan"


def test_an_api_server_restart_is_followed_by_a_resync_with_backoff_meanwhile(
        api: FakeApiServer, make_cache: Callable[..., NadCache]) -> None:
    cache = make_cache(backoff=0.05, max_backoff=0.2)
    assert cache.wait_synced(10)
    api.wait_for_watches(1)
    port = int(api.address.rsplit(":", 1)[1])
    api.stop()
    restarts_before = cache.restarts
    time.sleep(1.5)
    api.create(make_nad("while-down", "blue", config=config_of("bridge")))
    attempts = cache.restarts - restarts_before
    # backoff 0.05 doubling to 0.2 with jitter >= 0.5x: at most ~20 attempts in 1.5 s; a busy loop makes thousands
    assert 3 <= attempts <= 20, attempts
    assert "cannot reach the API server" in cache.last_error
    api.port = port
    api.start()
    wait_until(lambda: cache.get("blue", "while-down") is not None, what="resync")
    assert cache.last_error == ""


def test_a_server_that_ends_every_watch_at_once_is_not_hammered(api: FakeApiServer,
                                                               make_cache: Callable[..., NadCache]) -> None:
    cache = make_cache(backoff=0.05, max_backoff=0.2)
    assert cache.wait_synced(10)
    api.wait_for_watches(1)
    api.cluster.stop_watches()  # watches are accepted, then closed with nothing in them
    start = len(watches(api))
    time.sleep(1.5)
    assert len(watches(api)) - start <= 20
    api.cluster.resume_watches()
    api.create(make_nad("back", "blue", config=config_of("bridge")))
    wait_until(lambda: cache.get("blue", "back") is not None, what="watching again")


# ------------------------------------------------------------------ credentials


def token_file_kubeconfig(api: FakeApiServer, tmp_path: Path, token: str) -> Path:
    path = api.kubeconfig(tmp_path / "kubeconfig-tokenfile")
    doc = yaml.safe_load(path.read_text())
    (tmp_path / "token").write_text(token)
    doc["users"][0]["user"] = {"tokenFile": str(tmp_path / "token")}
    path.write_text(yaml.safe_dump(doc))
    return path


def test_a_rotated_token_file_is_read_again_at_the_next_connection(
        api: FakeApiServer, tmp_path: Path, make_cache: Callable[..., NadCache]) -> None:
    client = k8s.client_from_config(str(token_file_kubeconfig(api, tmp_path, "test-token")))
    assert client is not None
    cache = make_cache(connection_source=client.connection)
    assert cache.wait_synced(10)
    api.wait_for_watches(1)
    api.set_token("rotated-token")  # the old token is refused from now on
    api.drop_watches()
    wait_until(lambda: any(r.status == 401 for r in watches(api)), what="a refused reconnect")
    wait_until(lambda: "401 Unauthorized" in cache.last_error, what="the 401 noted")
    assert "re-reads" in cache.last_error  # the client's hint: fix the token file, no restart needed
    (tmp_path / "token").write_text("rotated-token\n")
    api.create(make_nad("after-rotation", "blue", config=config_of("bridge")))
    wait_until(lambda: cache.get("blue", "after-rotation") is not None, what="watching with the new token")
    last = watches(api)[-1]
    assert last.header("Authorization") == "Bearer rotated-token"
    assert cache.relists == 0  # the watch resumed: nothing was lost while refused


def test_an_unreadable_kubeconfig_is_reported_and_retried(api: FakeApiServer,
                                                          make_cache: Callable[..., NadCache]) -> None:
    calls: list[int] = []
    conn = Connection(server=api.url, ca_data=api.ca_pem, token="test-token")

    def flaky() -> Connection:
        calls.append(1)
        if len(calls) < 3:
            raise KubeconfigError("kubeconfig /etc/netplex/kubeconfig: cannot read it")
        return conn

    cache = make_cache(connection_source=flaky)
    assert cache.wait_synced(10)
    assert len(calls) >= 3


def test_forbidden_names_the_permissions_the_daemon_needs(api: FakeApiServer,
                                                          make_cache: Callable[..., NadCache]) -> None:
    api.fail_next("GET", NADS_PATH, 403, times=1000)
    cache = make_cache()
    wait_until(lambda: "403" in cache.last_error, what="403 noted")
    assert cache.last_error.startswith(f"GET {NADS_PATH}?limit=500: 403 Forbidden: forbidden: injected by tests.k8sapi")
    assert cache.last_error.endswith("the node daemon's identity needs list and watch on "
                                     "network-attachment-definitions.k8s.cni.cncf.io")
    assert not cache.synced


# ------------------------------------------------------------------ robustness


def test_a_failing_on_change_callback_does_not_stop_the_cache(api: FakeApiServer,
                                                             make_cache: Callable[..., NadCache]) -> None:
    def boom(kind: str, obj: dict[str, Any]) -> None:
        raise RuntimeError("callback bug")

    cache = make_cache(on_change=boom)
    assert cache.wait_synced(10)
    api.wait_for_watches(1)
    api.create(make_nad("one", "blue", config=config_of("bridge")))
    api.create(make_nad("two", "blue", config=config_of("bridge")))
    wait_until(lambda: cache.size() == 2)
    assert cache.restarts == 0


def test_stop_ends_the_thread_promptly_in_a_watch_and_in_a_backoff(
        api: FakeApiServer, source: k8s.ConnectionSource) -> None:
    watching = NadCache(source, timeout=5.0)
    watching.start()
    assert watching.wait_synced(10)
    api.wait_for_watches(1)
    began = time.monotonic()
    watching.stop(timeout=5)
    assert time.monotonic() - began < 1.0
    assert watching._thread is not None and not watching._thread.is_alive()

    api.stop()
    waiting = NadCache(source, timeout=5.0, backoff=30.0, max_backoff=30.0)
    waiting.start()
    wait_until(lambda: waiting.restarts >= 1, what="first failure")
    began = time.monotonic()
    waiting.stop(timeout=5)
    assert time.monotonic() - began < 1.0
    assert waiting._thread is not None and not waiting._thread.is_alive()


def test_starting_twice_is_refused(make_cache: Callable[..., NadCache]) -> None:
    cache = make_cache()
    with pytest.raises(RuntimeError, match=r"^NadCache.start: already started$"):
        cache.start()


def test_a_watch_that_does_not_answer_in_time_is_retried_from_the_same_version(
        api: FakeApiServer, make_cache: Callable[..., NadCache]) -> None:
    cache = make_cache(timeout=0.3)
    assert cache.wait_synced(10)
    api.wait_for_watches(1)
    resume_at = cache.resource_version
    api.delay(1.0, "GET", NADS_PATH)  # answers come after the cache's 0.3 s timeout
    api.drop_watches()
    wait_until(lambda: "timed out" in cache.last_error, what="a timed-out reconnect")
    assert cache.last_error.startswith(f"GET {NADS_PATH}?watch=1&resourceVersion={resume_at}&")
    api.delay(0)
    api.create(make_nad("later", "blue", config=config_of("bridge")))
    wait_until(lambda: cache.get("blue", "later") is not None, what="watching again")
    assert {w.param("resourceVersion") for w in watches(api)} == {resume_at}
    assert cache.relists == 0
