"""The node daemon's metrics, scraped over HTTP and read with prometheus_client's own parser."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from plugin.node import metrics
from plugin.node.metrics import LATENCY_BUCKETS, VERBS, DaemonMetrics


@pytest.fixture
def served() -> Iterator[tuple[DaemonMetrics, str]]:
    m = DaemonMetrics()
    server, thread = m.serve(port=0)
    yield m, f"http://127.0.0.1:{server.server_port}/metrics"
    server.shutdown()
    server.server_close()
    thread.join(5)


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of one scrape."""
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_every_verb_result_and_event_outcome_exists_at_zero_before_any_request(
        served: tuple[DaemonMetrics, str]) -> None:
    _, url = served
    samples = scrape(url)
    for verb in VERBS:
        for result in ("success", "error"):
            assert value(samples, "netplex_node_requests_total", verb=verb, result=result) == 0
        assert value(samples, "netplex_node_request_duration_seconds_count", verb=verb) == 0
    for outcome in ("posted", "dropped", "failed"):
        assert value(samples, "netplex_node_events_total", outcome=outcome) == 0
    assert value(samples, "netplex_node_requests_in_flight") == 0
    for cache in ("nad", "pod"):
        assert value(samples, f"netplex_node_{cache}_cache_size") == 0
        assert value(samples, f"netplex_node_{cache}_cache_synced") == 0
        assert value(samples, f"netplex_node_{cache}_watch_restarts_total") == 0
    assert value(samples, "process_resident_memory_bytes") > 0


def test_requests_are_counted_by_verb_and_result_with_their_latency(served: tuple[DaemonMetrics, str]) -> None:
    m, url = served
    m.observe("ADD", True, 0.040)
    m.observe("ADD", False, 2.0)
    m.observe("DEL", True, 0.0004)
    samples = scrape(url)
    assert value(samples, "netplex_node_requests_total", verb="ADD", result="success") == 1
    assert value(samples, "netplex_node_requests_total", verb="ADD", result="error") == 1
    assert value(samples, "netplex_node_requests_total", verb="DEL", result="success") == 1
    assert value(samples, "netplex_node_request_duration_seconds_count", verb="ADD") == 2
    assert value(samples, "netplex_node_request_duration_seconds_sum", verb="ADD") == pytest.approx(2.04)
    assert value(samples, "netplex_node_request_duration_seconds_bucket", verb="ADD", le="0.05") == 1
    assert value(samples, "netplex_node_request_duration_seconds_bucket", verb="ADD", le="2.5") == 2
    assert value(samples, "netplex_node_request_duration_seconds_bucket", verb="DEL", le="0.001") == 1


def test_latency_buckets_span_one_millisecond_to_a_minute(served: tuple[DaemonMetrics, str]) -> None:
    _, url = served
    bounds = sorted(float(dict(labels)["le"]) for (name, labels) in scrape(url)
                    if name == "netplex_node_request_duration_seconds_bucket" and dict(labels)["verb"] == "ADD")
    assert bounds[0] == 0.001 and bounds[-2] == 60.0 and bounds[-1] == float("inf")
    assert bounds[:-1] == list(LATENCY_BUCKETS)


def test_a_verb_the_daemon_does_not_know_is_counted_as_unknown(served: tuple[DaemonMetrics, str]) -> None:
    m, url = served
    m.observe("add; DROP TABLE", False, 0.001)
    samples = scrape(url)
    assert value(samples, "netplex_node_requests_total", verb="UNKNOWN", result="error") == 1
    assert not any(dict(labels).get("verb") == "add; DROP TABLE" for (_, labels) in samples)


def test_track_counts_in_flight_while_running_and_an_exception_as_an_error(served: tuple[DaemonMetrics, str]) -> None:
    m, url = served
    inside = threading.Event()
    release = threading.Event()

    def slow_add() -> None:
        with m.track("ADD") as request:
            inside.set()
            release.wait(5)
            request.success = True

    worker = threading.Thread(target=slow_add)
    worker.start()
    assert inside.wait(5)
    assert value(scrape(url), "netplex_node_requests_in_flight") == 1
    release.set()
    worker.join(5)
    with pytest.raises(RuntimeError, match=r"^boom$"), m.track("DEL") as request:
        request.success = True
        raise RuntimeError("boom")
    samples = scrape(url)
    assert value(samples, "netplex_node_requests_in_flight") == 0
    assert value(samples, "netplex_node_requests_total", verb="ADD", result="success") == 1
    assert value(samples, "netplex_node_requests_total", verb="DEL", result="error") == 1
    assert value(samples, "netplex_node_requests_total", verb="DEL", result="success") == 0


def test_a_request_whose_success_is_never_set_is_an_error(served: tuple[DaemonMetrics, str]) -> None:
    m, url = served
    with m.track("CHECK"):
        pass
    assert value(scrape(url), "netplex_node_requests_total", verb="CHECK", result="error") == 1


def test_the_daemon_hooks_count_in_flight_results_and_refusals(served: tuple[DaemonMetrics, str]) -> None:
    m, url = served
    assert value(scrape(url), "netplex_node_requests_refused_total", reason="peer") == 0
    m.request_started("ADD")
    m.request_started("DEL")
    assert value(scrape(url), "netplex_node_requests_in_flight") == 2
    m.request_finished("ADD", 0, 0.02)
    m.request_finished("DEL", 1, 0.01)
    m.request_refused("peer")
    m.request_refused("something new")
    samples = scrape(url)
    assert value(samples, "netplex_node_requests_in_flight") == 0
    assert value(samples, "netplex_node_requests_total", verb="ADD", result="success") == 1
    assert value(samples, "netplex_node_requests_total", verb="DEL", result="error") == 1
    assert value(samples, "netplex_node_requests_refused_total", reason="peer") == 1
    assert value(samples, "netplex_node_requests_refused_total", reason="other") == 1
    assert value(samples, "netplex_node_requests_refused_total", reason="request") == 0


def test_delegate_failures_are_counted_by_network(served: tuple[DaemonMetrics, str]) -> None:
    m, url = served
    m.delegate_failed("tenant-a/macvlan-conf")
    m.delegate_failed("tenant-a/macvlan-conf")
    m.delegate_failed("blue/bridge")
    samples = scrape(url)
    assert value(samples, "netplex_node_delegate_failures_total", network="tenant-a/macvlan-conf") == 2
    assert value(samples, "netplex_node_delegate_failures_total", network="blue/bridge") == 1


def test_nad_cache_and_event_series_are_read_from_their_owners_at_scrape_time(
        served: tuple[DaemonMetrics, str]) -> None:
    m, url = served
    state = {"size": 3, "restarts": 1, "posted": 5, "dropped": 2, "failed": 1}
    m.bind_nad_cache(lambda: state["size"], lambda: state["restarts"], lambda: True)
    m.bind_events(lambda: state["posted"], lambda: state["dropped"], lambda: state["failed"])
    samples = scrape(url)
    assert value(samples, "netplex_node_nad_cache_size") == 3
    assert value(samples, "netplex_node_nad_cache_synced") == 1
    assert value(samples, "netplex_node_nad_watch_restarts_total") == 1
    assert [value(samples, "netplex_node_events_total", outcome=o) for o in ("posted", "dropped", "failed")] == [5, 2, 1]
    state.update(size=7, restarts=4, posted=9)
    samples = scrape(url)
    assert (value(samples, "netplex_node_nad_cache_size"), value(samples, "netplex_node_nad_watch_restarts_total"),
            value(samples, "netplex_node_events_total", outcome="posted")) == (7, 4, 9)


def test_the_pod_cache_series_are_its_own_beside_the_nad_caches(served: tuple[DaemonMetrics, str]) -> None:
    m, url = served
    state = {"pods": 12, "pod_restarts": 2, "pods_synced": False}
    m.bind_nad_cache(lambda: 3, lambda: 1, lambda: True)
    m.bind_pod_cache(lambda: state["pods"], lambda: state["pod_restarts"], lambda: state["pods_synced"])
    samples = scrape(url)
    assert [value(samples, f"netplex_node_pod_{name}") for name in ("cache_size", "cache_synced",
                                                                  "watch_restarts_total")] == [12, 0, 2]
    assert [value(samples, f"netplex_node_nad_{name}") for name in ("cache_size", "cache_synced",
                                                                  "watch_restarts_total")] == [3, 1, 1]
    state.update(pods=13, pods_synced=True)
    samples = scrape(url)
    assert (value(samples, "netplex_node_pod_cache_size"), value(samples, "netplex_node_pod_cache_synced")) == (13, 1)


def test_a_reading_that_fails_leaves_its_series_out_but_the_scrape_works(served: tuple[DaemonMetrics, str],
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    m, url = served

    def broken() -> int:
        raise OSError("cache gone")

    m.bind_nad_cache(broken, lambda: 2)
    samples = scrape(url)
    assert ("netplex_node_nad_cache_size", ()) not in samples
    assert value(samples, "netplex_node_nad_watch_restarts_total") == 2
    assert "metrics: a scrape-time reading failed" in caplog.text
    assert "OSError: cache gone" in caplog.text


def test_metrics_live_in_their_own_registry_not_the_global_one() -> None:
    DaemonMetrics(process=False)
    DaemonMetrics(process=False)  # twice in one process: no "Duplicated timeseries" error
    names = {metric.name for metric in REGISTRY.collect()}
    assert not any(name.startswith("netplex_node_") for name in names)


def test_serve_listens_on_loopback_by_default() -> None:
    m = DaemonMetrics(process=False)
    server, thread = metrics.serve(m, port=0)
    try:
        assert server.server_address[0] == "127.0.0.1"
        assert scrape(f"http://127.0.0.1:{server.server_port}/metrics")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_the_plugin_and_the_shim_paths_never_import_prometheus_client() -> None:
    """Only the daemon pays for it: importing the other node parts must not load it."""
    import subprocess
    import sys

    code = ("import sys; import plugin.cni.main, plugin.node.events, plugin.node.nadcache, plugin.node.podcache; "
            "print('prometheus_client' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
