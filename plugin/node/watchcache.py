"""A list+watch cache of one API collection, for the node daemon.

The thin plugin GETs the pod and each selected NAD on every ADD; the daemon answers
from memory instead (:mod:`plugin.node.nadcache`: every NAD; :mod:`plugin.node.podcache`:
the pods bound to its node) and falls back to a GET where memory may be behind. This is
the one reflector both use, client-go's behaviour without client-go:

- **list**, paged (``limit``/``continue``), then **watch** from the list's
  ``resourceVersion`` with ``allowWatchBookmarks``, both with the same optional
  ``fieldSelector``; the stream is read as JSON lines over ``http.client``, on a
  connection of its own (never the request path's).
- **410 Gone** (an ``ERROR`` event holding a ``410 Expired`` Status, or HTTP 410, or a
  ``continue`` token that expired) means the history we would resume from is compacted:
  **relist**. Anything deleted meanwhile disappears, because a relist replaces the map.
- A watch that **drops**, ends, or stays silent past ``timeoutSeconds`` + ``timeout``
  (a half-open connection) **resumes from the last resourceVersion** seen; bookmarks
  move it forward on a quiet cluster, so a resume rarely replays anything.
- Errors **back off** exponentially (with jitter) up to ``max_backoff``; a watch that
  ends at once without delivering anything counts as an error, so a server that
  accepts and immediately closes watches cannot make this a busy loop.
- The **connection is re-resolved before every (re)connect**: ``connection_source`` is
  what :func:`plugin.cni.k8s.client_from_config` gives its client (a callable that
  re-reads the kubeconfig and its token file), so a rotated token is used at the next
  reconnect, and a 401 is followed by a re-read, not a restart.
- **Size limits**: a watch line longer than ``MAX_EVENT_BYTES`` is not an event (relist);
  lists are read ``page_size`` items at a time; a subclass may keep only the part of
  each object its readers need (:meth:`WatchCache._keep`, pods keep their metadata).

TLS and the HTTPS connection are :mod:`plugin.cni.k8s`'s own (``ssl_context``,
``tls-server-name``), so the watch and the API client can never disagree on how to
reach the server.

Exceptions: none escape. Failures are logged (logger ``netplex.node.watchcache``, each
message starting with the cache's kind, ``NAD cache: ...``), kept in
:attr:`WatchCache.last_error` and counted in :attr:`WatchCache.restarts`.
"""

from __future__ import annotations

import contextlib
import copy
import http.client
import json
import logging
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode, urlsplit

from plugin.cni import k8s, kubeconfig
from plugin.cni.kubeconfig import Connection

log = logging.getLogger("netplex.node.watchcache")

USER_AGENT = "netplex-node"
MAX_EVENT_BYTES = 4 * 1024 * 1024  # etcd refuses objects over 1.5 MiB; a line this long is not an event
MIN_HEALTHY_WATCH = 1.0  # seconds: a watch that ends sooner with nothing delivered counts as a failure

Stored = TypeVar("Stored", bound=Mapping[str, Any])
"""What the cache keeps of each object (:meth:`WatchCache._keep`)."""

OnChange = Callable[[str, Any], None]
"""``on_change(event_type, kept_object)``: ``ADDED``, ``MODIFIED`` or ``DELETED`` (for a
deletion, the last object seen). A relist reports exactly what differs from the map it
replaces."""

Key = tuple[str, str]


class _Expired(Exception):
    """The resourceVersion (or continue token) we hold is compacted away: relist."""


class _Failed(Exception):
    """This cycle failed; back off and reconnect (resuming the watch if we can)."""


class WatchCache(Generic[Stored]):
    """The objects of one namespaced collection, kept current by one background thread.

    ``get``, ``size``, ``synced`` and the counters are safe from any thread. What ``get``
    hands out is decided by the subclass (:meth:`_keep`, :meth:`_export`): by default
    a deep copy of the whole object, so callers may do what they like with it.
    """

    def __init__(self, connection_source: k8s.ConnectionSource, path: str, *, kind: str, resource: str,
                 field_selector: str = "", timeout: float = 10.0, on_change: OnChange | None = None,
                 watch_timeout: float = 300.0, backoff: float = 0.5, max_backoff: float = 30.0,
                 page_size: int = 500) -> None:
        """``path``: the collection (``/api/v1/pods``), listed and watched with
        ``field_selector`` when one is given; ``kind`` names the objects in messages
        (``NAD``: ``listing NADs``, ``NAD cache: ...``); ``resource`` is what the 403 hint
        says the daemon needs list and watch on.

        ``timeout``: seconds to connect and for a list request; a watch asks the server
        for ``watch_timeout`` seconds (``timeoutSeconds``) and gives up on a silent
        stream ``timeout`` seconds after that."""
        self.path = path
        self.kind = kind
        self.resource = resource
        self.field_selector = field_selector
        self._source = connection_source
        self.timeout = timeout
        self.watch_timeout = watch_timeout
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.page_size = page_size
        self._on_change = on_change
        self._lock = threading.Lock()
        self._items: dict[Key, Stored] = {}
        self._rv = ""
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._http: http.client.HTTPConnection | None = None
        self._contexts: dict[tuple[Any, ...], ssl.SSLContext] = {}
        self._restarts = 0
        self._relists = 0
        self.last_error = ""

    # ------------------------------------------------------------------ public

    def start(self) -> None:
        """Start the list+watch thread (a daemon thread: it never holds the process up)."""
        if self._thread is not None:
            raise RuntimeError(f"{type(self).__name__}.start: already started")
        self._thread = threading.Thread(target=self._run, name=f"netplex-{self.kind.lower()}-cache", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread: wake it from a backoff and cut its connection."""
        self._stop.set()
        with self._lock:
            conn = self._http
        if conn is not None and conn.sock is not None:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout)

    def wait_synced(self, timeout: float | None = None) -> bool:
        """True once the first list is in (at most ``timeout`` seconds of waiting)."""
        return self._synced.wait(timeout)

    @property
    def synced(self) -> bool:
        """A full list has been loaded once; later outages leave the last state in place."""
        return self._synced.is_set()

    def get(self, namespace: str, name: str) -> Stored | None:
        """What the cache holds of this object (:meth:`_export`), or None: not there (yet),
        so the caller confirms a miss with a GET."""
        with self._lock:
            obj = self._items.get((namespace, name))
        return self._export(obj) if obj is not None else None

    def size(self) -> int:
        with self._lock:
            return len(self._items)

    @property
    def restarts(self) -> int:
        """Relists after the first, plus watches re-opened after an error, a drop or an
        early end (a watch renewed because its ``timeoutSeconds`` ran out is not counted)."""
        return self._restarts

    @property
    def relists(self) -> int:
        """Lists after the first one (each also counted in :attr:`restarts`)."""
        return self._relists

    @property
    def resource_version(self) -> str:
        """The resourceVersion a resumed watch would start from."""
        with self._lock:
            return self._rv

    # ------------------------------------------------------------------ what is kept

    def _keep(self, obj: dict[str, Any]) -> Stored:
        """What to store of an object read from the API: here all of it."""
        return obj  # type: ignore[return-value]  # the default Stored is the decoded object

    def _export(self, stored: Stored) -> Stored:
        """What ``get`` returns of a stored object: here a deep copy, since the stored
        object is mutable and a caller could otherwise change the cache's state."""
        return copy.deepcopy(stored)

    # ------------------------------------------------------------------ the loop

    def _run(self) -> None:
        failures = 0
        need_list = True
        while not self._stop.is_set():
            started = time.monotonic()
            delivered = 0
            renewed = False
            try:
                conn = self._connection()
                http_conn = self._open(conn)
                try:
                    if need_list:
                        self._list(http_conn, conn)
                        need_list = False
                    delivered, renewed = self._watch(http_conn, conn)
                finally:
                    self._close()
            except _Expired as exc:
                need_list = True
                self._note(f"relisting: {exc}", logging.INFO)
            except _Failed as exc:
                self._note(str(exc), logging.WARNING)
            except Exception as exc:  # a bug must not kill the cache silently
                self._note(f"unexpected {type(exc).__name__}: {exc}", logging.ERROR)
                log.debug("%s cache loop", self.kind, exc_info=True)
            if self._stop.is_set():
                break
            healthy = delivered > 0 or time.monotonic() - started >= MIN_HEALTHY_WATCH
            if not renewed:
                self._restarts += 1
            failures = 0 if healthy else failures + 1
            if failures:
                self._stop.wait(self._delay(failures))

    def _delay(self, failures: int) -> float:
        pause = min(self.max_backoff, self.backoff * 2 ** (failures - 1))
        return pause * random.uniform(0.5, 1.0)

    def _note(self, message: str, level: int) -> None:
        self.last_error = message
        if not self._stop.is_set():
            log.log(level, "%s cache: %s", self.kind, message)

    # ------------------------------------------------------------------ HTTP

    def _connection(self) -> Connection:
        if isinstance(self._source, Connection):
            return self._source
        try:
            return self._source()
        except kubeconfig.KubeconfigError as exc:
            raise _Failed(f"cannot read the API server connection: {exc}") from exc

    def _open(self, c: Connection) -> http.client.HTTPConnection:
        """A fresh connection, made the way the API client makes its own."""
        parts = urlsplit(c.server)
        host = parts.hostname or ""
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            tls_key = (c.ca_data, c.insecure, c.client_cert_data, c.client_key_data, c.tls_server_name)
            context = self._contexts.get(tls_key)
            if context is None:
                try:
                    context = k8s.ssl_context(c)
                except k8s.TransportError as exc:
                    raise _Failed(str(exc)) from exc
                self._contexts = {tls_key: context}  # only the current settings are kept
            conn = k8s.https_connection(host, parts.port or 443, self.timeout, context,
                                         c.tls_server_name or host)
        else:
            conn = http.client.HTTPConnection(host, parts.port or 80, timeout=self.timeout)
        with self._lock:
            self._http = conn
        if self._stop.is_set():  # stop() ran between the loop's check and now
            raise _Failed("stopping")
        return conn

    def _close(self) -> None:
        with self._lock:
            conn, self._http = self._http, None
        if conn is not None:
            conn.close()

    def _request(self, http_conn: http.client.HTTPConnection, c: Connection,
                 query: dict[str, str]) -> http.client.HTTPResponse:
        """GET the collection; a non-200 answer becomes _Expired (410) or _Failed."""
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if c.token:
            headers["Authorization"] = f"Bearer {c.token}"
        if self.field_selector:
            query = {**query, "fieldSelector": self.field_selector}
        target = f"{self.path}?{urlencode(query)}"
        try:
            http_conn.request("GET", target, headers=headers)
            resp = http_conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            raise _Failed(f"GET {target}: cannot reach the API server {c.server}: "
                          f"{exc or type(exc).__name__}") from exc
        if resp.status == 200:
            return resp
        try:
            body = resp.read()
        except (OSError, http.client.HTTPException):
            body = b""
        error = k8s.api_error(k8s.Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body),
                               "GET", target, c)
        if resp.status == 403:
            error = k8s.ApiError(error.status, error.reason, error.message, method="GET", path=target,
                                 hint=f"the node daemon's identity needs list and watch on {self.resource}")
        if resp.status == 410:
            raise _Expired(str(error))
        raise _Failed(str(error))

    def _list(self, http_conn: http.client.HTTPConnection, c: Connection) -> None:
        """Read every page, then swap the map in at once and report the differences."""
        items: dict[Key, Stored] = {}
        what = f"listing {self.kind}s"
        rv = ""
        token = ""
        while True:
            query = {"limit": str(self.page_size)}
            if token:
                query["continue"] = token
            resp = self._request(http_conn, c, query)
            try:
                page = json.loads(resp.read())
            except (OSError, http.client.HTTPException, ValueError) as exc:
                raise _Failed(f"{what}: the answer cannot be read: {exc}") from exc
            meta = page.get("metadata") if isinstance(page, dict) else None
            if not isinstance(meta, dict) or not isinstance(page.get("items"), list):
                raise _Failed(f"{what}: the answer is not a list (no metadata or items)")
            rv = rv or str(meta.get("resourceVersion") or "")
            for obj in page["items"]:
                key = _key_of(obj)
                if key is None:
                    raise _Failed(f"{what}: an item has no metadata.namespace/name: {_preview(obj)}")
                items[key] = self._keep(obj)
            token = str(meta.get("continue") or "")
            if not token:
                break
        if not rv:
            raise _Failed(f"{what}: the list has no metadata.resourceVersion")
        with self._lock:
            old, self._items, self._rv = self._items, items, rv
        if self._synced.is_set():
            self._relists += 1
        self._synced.set()
        for key, obj in items.items():
            before = old.get(key)
            if before is None:
                self._changed("ADDED", obj)
            elif _rv_of(before) != _rv_of(obj):
                self._changed("MODIFIED", obj)
        for key, obj in old.items():
            if key not in items:
                self._changed("DELETED", obj)

    def _watch(self, http_conn: http.client.HTTPConnection, c: Connection) -> tuple[int, bool]:
        """Follow the stream; (events delivered, ended because timeoutSeconds ran out)."""
        seconds = max(1, int(self.watch_timeout))
        opened = time.monotonic()
        query = {"watch": "1", "resourceVersion": self.resource_version, "allowWatchBookmarks": "true",
                 "timeoutSeconds": str(seconds)}
        resp = self._request(http_conn, c, query)
        if self._stop.is_set():  # stop() came while connecting, before there was a socket to cut
            return 0, True
        self.last_error = ""  # watching again
        if http_conn.sock is not None:  # from now on, silence beyond the server's own limit is a dead link
            http_conn.sock.settimeout(seconds + self.timeout)
        delivered = 0
        while True:
            try:
                line = resp.readline(MAX_EVENT_BYTES)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                raise _Failed(f"the watch dropped after {delivered} events: "
                              f"{exc or type(exc).__name__}") from exc
            if not line:
                renewed = time.monotonic() - opened >= 0.9 * seconds
                return delivered, renewed
            if not line.endswith(b"\n"):
                if len(line) >= MAX_EVENT_BYTES:
                    raise _Expired(f"a watch event is longer than {MAX_EVENT_BYTES} bytes")
                raise _Failed(f"the watch dropped in the middle of an event after {delivered} events")
            if line.strip():
                self._apply(line)
                delivered += 1

    def _apply(self, line: bytes) -> None:
        try:
            event = json.loads(line)
        except ValueError as exc:
            raise _Expired(f"a watch event is not JSON ({exc}): {_preview(line)}") from exc
        kind = event.get("type") if isinstance(event, dict) else None
        obj = event.get("object") if isinstance(event, dict) else None
        if not isinstance(obj, dict):
            raise _Expired(f"a watch event has no object: {_preview(line)}")
        if kind == "ERROR":
            code, message = obj.get("code"), obj.get("message") or obj.get("reason") or _preview(obj)
            if code == 410:
                raise _Expired(f"the watch expired: {message}")
            raise _Failed(f"the watch answered an error {code}: {message}")
        rv = _rv_of(obj)
        if kind == "BOOKMARK":
            if rv:
                with self._lock:
                    self._rv = rv
            return
        key = _key_of(obj)
        if kind not in ("ADDED", "MODIFIED", "DELETED") or key is None or not rv:
            raise _Expired(f"a watch event cannot be used (type {kind!r}): {_preview(line)}")
        kept = self._keep(obj)
        with self._lock:
            if kind == "DELETED":
                self._items.pop(key, None)
            else:
                self._items[key] = kept
            self._rv = rv
        self._changed(kind, kept)

    def _changed(self, kind: str, obj: Stored) -> None:
        if self._on_change is None:
            return
        try:
            self._on_change(kind, obj)
        except Exception:
            log.exception("%s cache: on_change(%s, %s) failed", self.kind, kind, _key_of(obj))


def _key_of(obj: Any) -> Key | None:
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    if not isinstance(meta, Mapping):
        return None
    namespace, name = meta.get("namespace"), meta.get("name")
    if not isinstance(namespace, str) or not isinstance(name, str) or not namespace or not name:
        return None
    return namespace, name


def _rv_of(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    return str(meta.get("resourceVersion") or "") if isinstance(meta, Mapping) else ""


def _preview(value: Any) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else json.dumps(value, default=str)
    text = text.strip()
    return text if len(text) <= 200 else text[:197] + "..."
