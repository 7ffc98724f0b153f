"""Kubernetes Events about pods, posted by the node daemon off the request path.

What users of Multus thick look for after ``kubectl describe pod``, and what the daemon
therefore posts:

- after a successful ADD, one ``Normal`` event ``AddedInterface`` per attachment, cluster
  network first, worded exactly as Multus does (``Add net1 [10.1.1.5/24] from
  tenant-a/macvlan-conf``: Go's ``%v`` of the address list, then the network's name);
- after a failed ADD, one ``Warning`` event. Its reason is ``NoNetworkFound`` when a
  selected NAD does not exist, the reason Multus uses for that case (so queries and
  alerts written for Multus keep working), and ``FailedAddInterface`` otherwise: Multus
  itself posts nothing there (the kubelet's ``FailedCreatePodSandBox`` is all users get),
  the name pairs with ``AddedInterface`` in ``--field-selector reason=...`` and follows
  the kubelet's ``Failed<Verb>`` habit, and it is not ``FailedCreatePodSandBox`` because
  the kubelet already posts that one for the same failure: reusing it would count every
  failure twice in alerts keyed on it.

Builders are pure functions from the pod and what the plugin produced (network-status
entries, or the CNI error) to Event objects a real API server accepts
(``core/v1``, legacy recorder shape: ``firstTimestamp``/``lastTimestamp``/``count``,
``eventTime`` null, named ``<pod>.<16 hex digits>`` like client-go's recorder).

:class:`EventPoster` sends them from one worker thread through a bounded queue:
``enqueue`` never blocks and never raises, a full queue drops the event (counted), and
an API failure is logged and counted, never raised. Losing an Event must never fail or
slow an ADD. Nor should posting one: given ``quiet``, the worker holds each event until no
request is in flight, or ``max_delay`` seconds after it was queued, whichever comes first
(an ADD is followed by more ADDs and DELs when pods start together; a POST's JSON and TLS
work in this process would otherwise run alongside them). Under constant load events
are late by ``max_delay``, never fewer.

Exceptions: none escape :class:`EventPoster`; the builders raise nothing for any input
of the documented types.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import quote

from plugin.cni import k8s

log = logging.getLogger("netplex.node.events")

COMPONENT = "netplex-node"
MESSAGE_LIMIT = 1024  # bytes: the API's limit for an event's message (NoteLengthLimit)
DEFAULT_CAPACITY = 1000
DEFAULT_MAX_DELAY = 2.0  # seconds an event may wait for a moment without requests

NORMAL, WARNING = "Normal", "Warning"
ADDED_INTERFACE = "AddedInterface"
NO_NETWORK_FOUND = "NoNetworkFound"
FAILED_ADD_INTERFACE = "FailedAddInterface"

# The resolver's wording for a missing NAD (Multus' own, kept on purpose: plugin.cni.resolve).
_MISSING_NAD = re.compile(r"cannot find a network-attachment-definition \([^)]*\) in namespace \([^)]*\)")


class PodLike(Protocol):
    """The pod an event is about (``plugin.cni.commands.PodRef`` is one)."""

    @property
    def namespace(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def uid(self) -> str: ...


class CniErrorLike(Protocol):
    """A CNI error as ``plugin.cni.protocol.CniError`` carries it."""

    @property
    def code(self) -> int: ...
    @property
    def msg(self) -> str: ...
    @property
    def details(self) -> str: ...


# ----------------------------------------------------------------------- builders


def added_interface_message(entry: Mapping[str, Any]) -> str | None:
    """Multus' ``Add <if> [<ips>] from <network>`` for one network-status entry.

    None when the entry names neither an interface nor an address (Multus posts nothing
    for an empty result either).
    """
    interface = entry.get("interface")
    ips = entry.get("ips")
    addresses = [str(ip) for ip in ips] if isinstance(ips, list | tuple) else []
    if not interface and not addresses:
        return None
    text = f"Add {interface or ''} [{' '.join(addresses)}]"
    name = entry.get("name")
    return f"{text} from {name}" if name else text


def added_interface_events(pod: PodLike, statuses: Sequence[Mapping[str, Any]], *, node: str,
                           now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """One ``Normal``/``AddedInterface`` event per attachment, in the order given."""
    when = now or _utcnow()
    events = []
    for entry in statuses:
        message = added_interface_message(entry) if isinstance(entry, Mapping) else None
        if message is not None:
            events.append(build_event(pod, NORMAL, ADDED_INTERFACE, message, node=node, now=when))
    return events


def add_failed_event(pod: PodLike, error: CniErrorLike, *, node: str, network: str | None = None,
                     delegate: str | None = None, now: dt.datetime | None = None) -> dict[str, Any]:
    """The ``Warning`` event for a failed ADD: the plugin's message without the pod
    prefix (the event is on the pod already), its details, and the CNI code.

    ``network`` and ``delegate`` (what ``plugin.cni.commands.Observer.add_failed`` is
    told) are named in front when the message does not name them already.
    """
    message = failure_message(pod, error, network=network, delegate=delegate)
    return build_event(pod, WARNING, failure_reason(error), message, node=node, now=now)


def failure_reason(error: CniErrorLike) -> str:
    """``NoNetworkFound`` for a missing NAD, as Multus; ``FailedAddInterface`` otherwise."""
    return NO_NETWORK_FOUND if _MISSING_NAD.search(f"{error.msg}\n{error.details}") else FAILED_ADD_INTERFACE


def failure_message(pod: PodLike, error: CniErrorLike, *, network: str | None = None,
                    delegate: str | None = None) -> str:
    """``<msg>; <details> (CNI error <code>)``, ``msg`` without this pod's ``[ns/name/uid]: ``.

    For a delegate failure ``msg`` already names the network, the interface, the
    plugin type and the plugin's own message (``error adding network "tenant-a/macvlan-conf"
    (interface net1): plugin type="macvlan" failed (add): ...``).
    """
    msg = error.msg or "ADD failed"
    label = re.match(rf"\[{re.escape(pod.namespace)}/{re.escape(pod.name)}(/[^\]/]*)?\]: ", msg)
    if label is not None:  # with or without the UID the plugin found on the pod
        msg = msg[label.end():] or "ADD failed"
    named = []
    if network and f'"{network}"' not in msg:
        named.append(f'network "{network}"')
    if delegate and f'type="{delegate}"' not in msg:
        named.append(f'plugin type="{delegate}"')
    if named:
        msg = f"{', '.join(named)}: {msg}"
    text = f"{msg}; {error.details}" if error.details else msg
    return f"{text} (CNI error {error.code})"


def build_event(pod: PodLike, event_type: str, reason: str, message: str, *, node: str,
                now: dt.datetime | None = None) -> dict[str, Any]:
    """A core/v1 Event as client-go's legacy recorder makes one, message cut to the limit."""
    stamp = _rfc3339(now or _utcnow())
    involved: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "namespace": pod.namespace, "name": pod.name}
    if pod.uid:
        involved["uid"] = pod.uid
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{pod.name}.{_unique_stamp():016x}", "namespace": pod.namespace},
        "involvedObject": involved,
        "reason": reason,
        "message": truncate(message),
        "type": event_type,
        "source": {"component": COMPONENT, "host": node},
        "reportingComponent": COMPONENT,
        "reportingInstance": node,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "eventTime": None,
        "count": 1,
    }


def truncate(message: str, limit: int = MESSAGE_LIMIT) -> str:
    """At most ``limit`` UTF-8 bytes, never a broken character; a cut ends with ``...``."""
    raw = message.encode("utf-8")
    if len(raw) <= limit:
        return message
    return raw[: limit - 3].decode("utf-8", "ignore") + "..."


_stamp_lock = threading.Lock()
_last_stamp = 0


def _unique_stamp() -> int:
    """Nanoseconds since the epoch (client-go's name suffix), strictly increasing here,
    so two events of one pod in the same nanosecond still get two names."""
    global _last_stamp
    with _stamp_lock:
        _last_stamp = max(time.time_ns(), _last_stamp + 1)
        return _last_stamp


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _rfc3339(when: dt.datetime) -> str:
    """metav1.Time on the wire: UTC, whole seconds."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ----------------------------------------------------------------------- posting


class EventPoster:
    """One worker thread posting queued Events with its own API client.

    ``client`` must be used by nothing else: :class:`plugin.cni.k8s.HttpTransport` keeps
    one connection and is not meant for two threads. Give it short limits (e.g.
    ``timeout=5, attempts=2, deadline=10``): an event that cannot be posted soon is not
    worth holding the queue for.
    """

    def __init__(self, client: k8s.Client, *, capacity: int = DEFAULT_CAPACITY,
                 quiet: Callable[[float], object] | None = None, max_delay: float = DEFAULT_MAX_DELAY) -> None:
        self._client = client
        self._quiet = quiet  # quiet(timeout): returns once no request is in flight, or after timeout
        self._max_delay = max_delay
        self._queue: queue.Queue[tuple[float, dict[str, Any]] | None] = queue.Queue(maxsize=max(1, capacity))
        self._lock = threading.Lock()
        self._posted = 0
        self._dropped = 0
        self._failed = 0
        self._failing = False
        self._closed = False
        self._drain_until = float("inf")
        self._thread = threading.Thread(target=self._run, name="netplex-events", daemon=True)
        self._thread.start()

    # -- counters (thread-safe reads)

    @property
    def posted(self) -> int:
        return self._posted

    @property
    def dropped(self) -> int:
        """Events never sent: the queue was full, the poster was stopped, or stop() gave up."""
        return self._dropped

    @property
    def failed(self) -> int:
        """Events the API server refused or could not be asked about."""
        return self._failed

    def pending(self) -> int:
        return self._queue.qsize()

    # -- producer side

    def enqueue(self, event: dict[str, Any]) -> bool:
        """Queue ``event``; False (and counted as dropped) when full or stopped. Never blocks."""
        try:
            if self._closed:
                self._count_dropped(1)
                return False
            self._queue.put_nowait((time.monotonic(), event))
            return True
        except queue.Full:
            self._count_dropped(1)
            return False
        except Exception:  # never let an event break an ADD
            self._count_dropped(1)
            return False

    def enqueue_all(self, events: Sequence[dict[str, Any]]) -> int:
        """Queue each event; how many were accepted."""
        return sum(1 for event in events if self.enqueue(event))

    def stop(self, timeout: float = 5.0) -> int:
        """Post what can be posted within ``timeout`` seconds, then give up on the rest.

        Returns the number of events left unposted (they are counted as dropped).
        """
        deadline = time.monotonic() + max(0.0, timeout)
        with self._lock:
            self._closed = True
            self._drain_until = deadline
        with contextlib.suppress(queue.Full):  # wakes an idle worker; a full queue keeps it busy anyway
            self._queue.put_nowait(None)
        self._thread.join(max(0.0, deadline - time.monotonic()))
        left = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                left += 1
        self._count_dropped(left)
        return left

    # -- the worker

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=0.2 if self._closed else None)
            except queue.Empty:  # closed and drained
                return
            if item is None:
                if self._closed:
                    return
                continue
            queued_at, event = item
            if self._closed and time.monotonic() >= self._drain_until:
                self._count_dropped(1)
                continue
            if self._quiet is not None and not self._closed:
                wait = queued_at + self._max_delay - time.monotonic()
                if wait > 0:
                    self._quiet(wait)
            self._post(event)

    def _post(self, event: dict[str, Any]) -> None:
        raw_meta = event.get("metadata")
        meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
        namespace = str(meta.get("namespace") or "default")
        path = f"/api/v1/namespaces/{quote(namespace, safe='')}/events"
        try:
            self._client.call("POST", path, body=json.dumps(event).encode())
        except Exception as exc:  # ApiError, a broken kubeconfig, anything: counted and logged
            with self._lock:
                self._failed += 1
                first = not self._failing
                self._failing = True
            level = logging.WARNING if first else logging.DEBUG
            log.log(level, "cannot post event %s/%s (%s): %s", namespace, meta.get("name"),
                    event.get("reason"), exc)
            return
        with self._lock:
            self._posted += 1
            recovered = self._failing
            self._failing = False
        if recovered:
            log.info("posting events works again")

    def _count_dropped(self, n: int) -> None:
        if n:
            with self._lock:
                self._dropped += n
