"""Prometheus metrics of the ``netplex-node`` daemon, in a registry of their own.

The one ``plugin/`` module allowed a third-party import (``prometheus_client``,
tests/plugin/test_layering.py): the daemon runs in the image, where it is installed,
and the thin plugin and the shim never import this module.

Series (all ``netplex_node_``):

===============================================  =========  ===============================
``requests_total{verb,result}``                  counter    CNI requests answered; ``result``
                                                            ``success`` (exit 0) or ``error``
``request_duration_seconds{verb}``               histogram  time to answer, 1 ms to 60 s
``requests_in_flight``                           gauge      requests being answered now
``delegate_failures_total{network}``             counter    failed ADDs, by the network
                                                            (``namespace/name``) that failed
``nad_cache_size``                               gauge      NADs in the watch cache
``nad_cache_synced``                             gauge      1 once the cache has listed
``nad_watch_restarts_total``                     counter    relists and watch reconnects
``pod_cache_size``                               gauge      this node's pods in the pod
                                                            watch cache
``pod_cache_synced``                             gauge      1 once the pod cache has listed
``pod_watch_restarts_total``                     counter    its relists and reconnects
``requests_refused_total{reason}``               counter    connections refused (``peer``
                                                            not root, bad ``request``)
``events_total{outcome}``                        counter    pod Events ``posted``,
                                                            ``dropped`` (queue full) or
                                                            ``failed`` (API refused/down)
===============================================  =========  ===============================

plus the process and GC collectors (RSS, CPU, open fds). Every ``verb``/``result``
and ``outcome`` series exists at 0 from the start, so ``rate()`` and alerts work before
the first request; a verb the daemon does not know is counted as ``UNKNOWN`` (a label
value per garbage ``CNI_COMMAND`` would be unbounded). The watch cache and event series
are read at scrape time from callables (:meth:`DaemonMetrics.bind_nad_cache`,
:meth:`DaemonMetrics.bind_pod_cache`, :meth:`DaemonMetrics.bind_events`), so those
objects keep plain integer counters and know nothing of Prometheus.

:func:`serve` exposes ``/metrics`` with prometheus_client's own WSGI server, on
loopback unless told otherwise: the daemon runs with ``hostNetwork``, and a node port
open to the world is not the default.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, NamedTuple

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    gc_collector,
    process_collector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector

log = logging.getLogger("netplex.node.metrics")

VERBS = ("ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION")
UNKNOWN_VERB = "UNKNOWN"
RESULTS = ("success", "error")
EVENT_OUTCOMES = ("posted", "dropped", "failed")
CACHES = {  # the daemon's watch caches: series prefix -> (name, what it holds), for the help texts
    "nad": ("NAD", "NetworkAttachmentDefinitions"),
    "pod": ("pod", "Pods of this node (the metadata an ADD reads)"),
}
REFUSALS = ("peer", "request")  # the daemon's reasons: a peer that is not root, a request too big or malformed
# A VERSION answers in ~1 ms; an ADD through a slow IPAM or a device plugin can take tens of
# seconds, and the runtime's own CNI timeout is commonly a few minutes.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9464  # Multus' daemon has no default; this one is free on common node setups

Reading = Callable[[], float]


class DaemonMetrics:
    """The daemon's series; ``registry`` is what :func:`serve` exposes."""

    def __init__(self, registry: CollectorRegistry | None = None, *, process: bool = True) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        if process:
            process_collector.ProcessCollector(registry=self.registry)
            gc_collector.GCCollector(registry=self.registry)
        self.requests = Counter("netplex_node_requests_total", "CNI requests answered, by verb and result.",
                                ["verb", "result"], registry=self.registry)
        self.duration = Histogram("netplex_node_request_duration_seconds",
                                  "Time to answer a CNI request, by verb.", ["verb"],
                                  buckets=LATENCY_BUCKETS, registry=self.registry)
        self.in_flight = Gauge("netplex_node_requests_in_flight", "CNI requests being answered now.",
                               registry=self.registry)
        self.refused = Counter("netplex_node_requests_refused_total",
                               "Connections refused before running anything, by reason.", ["reason"],
                               registry=self.registry)
        self.delegate_failures = Counter("netplex_node_delegate_failures_total",
                                         "Failed ADDs, by the network whose delegate failed.", ["network"],
                                         registry=self.registry)
        self._scraped = _ScrapeTimeCollector()
        self.registry.register(self._scraped)
        # Children resolved once: ``labels()`` takes a lock and builds a tuple per call.
        self._counted = {(verb, result): self.requests.labels(verb, result)
                         for verb in VERBS for result in RESULTS}
        self._timed = {verb: self.duration.labels(verb) for verb in VERBS}
        for reason in REFUSALS:
            self.refused.labels(reason)
        self._lock = threading.Lock()

    # -- request path

    def observe(self, verb: str, success: bool, seconds: float) -> None:
        """Count one answered request and its duration."""
        verb = verb if verb in VERBS else UNKNOWN_VERB
        key = (verb, RESULTS[0] if success else RESULTS[1])
        counter = self._counted.get(key)
        if counter is None:
            with self._lock:
                counter = self._counted.setdefault(key, self.requests.labels(*key))
        counter.inc()
        timed = self._timed.get(verb)
        if timed is None:
            with self._lock:
                timed = self._timed.setdefault(verb, self.duration.labels(verb))
        timed.observe(seconds)

    # The daemon's Hooks (plugin.node.daemon.Hooks), so this object can be passed as one.

    def request_started(self, verb: str) -> None:
        self.in_flight.inc()

    def request_finished(self, verb: str, status: int, seconds: float) -> None:
        self.in_flight.dec()
        self.observe(verb, status == 0, seconds)

    def request_refused(self, reason: str) -> None:
        self.refused.labels(reason if reason in REFUSALS else "other").inc()

    def track(self, verb: str) -> RequestTimer:
        """``with metrics.track(verb) as request: ...; request.success = code == 0``.

        Counts the request in flight while the block runs; an exception leaving the block
        counts as an error.
        """
        return RequestTimer(self, verb)

    def delegate_failed(self, network: str) -> None:
        self.delegate_failures.labels(network).inc()

    def serve(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> tuple[Any, threading.Thread]:
        """:func:`serve` for this registry."""
        return serve(self, host, port)

    # -- read at scrape time

    def bind_nad_cache(self, size: Reading, restarts: Reading, synced: Reading | None = None) -> None:
        """e.g. ``bind_nad_cache(cache.size, lambda: cache.restarts, lambda: cache.synced)``."""
        self._scraped.caches["nad"] = CacheReadings(size, restarts, synced)

    def bind_pod_cache(self, size: Reading, restarts: Reading, synced: Reading | None = None) -> None:
        """The pod cache's readings, as :meth:`bind_nad_cache`."""
        self._scraped.caches["pod"] = CacheReadings(size, restarts, synced)

    def bind_events(self, posted: Reading, dropped: Reading, failed: Reading) -> None:
        """e.g. ``bind_events(lambda: poster.posted, lambda: poster.dropped, lambda: poster.failed)``."""
        self._scraped.events = {"posted": posted, "dropped": dropped, "failed": failed}


class RequestTimer:
    """What :meth:`DaemonMetrics.track` returns; set ``success`` before the block ends."""

    def __init__(self, metrics: DaemonMetrics, verb: str) -> None:
        self._metrics = metrics
        self._verb = verb
        self._start = 0.0
        self.success = False

    def __enter__(self) -> RequestTimer:
        self._metrics.in_flight.inc()
        self._start = time.perf_counter()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._metrics.in_flight.dec()
        self._metrics.observe(self._verb, self.success and exc is None, time.perf_counter() - self._start)


class CacheReadings(NamedTuple):
    """How to read one watch cache's series."""

    size: Reading
    restarts: Reading
    synced: Reading | None


class _ScrapeTimeCollector(Collector):
    """The watch cache and event series, read from their owners when scraped.

    Before anything is bound they read 0; a reading that raises is left out of that
    scrape (and logged), never a failed scrape.
    """

    def __init__(self) -> None:
        self.caches: dict[str, CacheReadings] = {}
        self.events: dict[str, Reading] = {}

    def describe(self) -> Iterable[Metric]:
        return list(self._families(lambda read: 0.0))

    def collect(self) -> Iterable[Metric]:
        return list(self._families(_read))

    def _families(self, read: Callable[[Reading | None], float | None]) -> Iterator[Metric]:
        for prefix, (name, holds) in CACHES.items():
            bound = self.caches.get(prefix)
            size = GaugeMetricFamily(f"netplex_node_{prefix}_cache_size", f"{holds} in the watch cache.")
            synced = GaugeMetricFamily(f"netplex_node_{prefix}_cache_synced", f"1 once the {name} cache has listed once.")
            restarts = CounterMetricFamily(f"netplex_node_{prefix}_watch_restarts",
                                           f"Relists and watch reconnects of the {name} cache after an error, "
                                           "a drop or a 410.")
            readings = (bound.size, bound.synced, bound.restarts) if bound else (None, None, None)
            families: tuple[GaugeMetricFamily | CounterMetricFamily, ...] = (size, synced, restarts)
            for family, reading in zip(families, readings, strict=True):
                value = read(reading)
                if value is not None:
                    family.add_metric([], value)
                yield family
        events = CounterMetricFamily("netplex_node_events", "Pod Events posted, dropped (queue full) or failed.",
                                     labels=["outcome"])
        for outcome in EVENT_OUTCOMES:
            value = read(self.events.get(outcome))
            if value is not None:
                events.add_metric([outcome], value)
        yield events


def _read(reading: Reading | None) -> float | None:
    if reading is None:
        return 0.0
    try:
        return float(reading())
    except Exception:
        log.exception("metrics: a scrape-time reading failed")
        return None


def serve(metrics: DaemonMetrics | CollectorRegistry, host: str = DEFAULT_HOST,
          port: int = DEFAULT_PORT) -> tuple[Any, threading.Thread]:
    """Serve ``/metrics`` (any path, as prometheus_client does) on ``host:port``.

    Returns prometheus_client's ``(server, thread)``; ``server.shutdown()`` then
    ``server.server_close()`` stops it. ``port=0`` picks a free port
    (``server.server_port`` says which).
    """
    registry = metrics.registry if isinstance(metrics, DaemonMetrics) else metrics
    return start_http_server(port, addr=host, registry=registry)
