"""The live index: NADs and Namespaces from the API server, kept current by watches.

One list then a watch per kind, in a daemon thread each; a watch that ends is resumed
from the last resourceVersion, and a ``410 Gone`` (history compacted) triggers a fresh
list that replaces the kind's contents as a whole. ``/readyz`` turns ready once both
kinds have been listed once. An API server that is down, refuses, or answers with an
error is retried every ``RETRY_SECONDS``; the index keeps serving what it last knew.

Every call has a client-side timeout, so a silent API server (a half-open connection
after a partition, a hung apiserver) cannot stall the index or a request for ever:

- list: ``LIST_TIMEOUT`` seconds without a byte;
- watch: the server ends it after ``watch_timeout`` seconds (and sends bookmarks), so
  ``WATCH_GRACE`` seconds more without a byte means the connection is dead: re-watch
  from the last resourceVersion;
- the confirming GET (:meth:`ClusterIndex.confirm`) runs while an admission request
  waits, so it gets ``CONFIRM_TIMEOUT`` seconds, well inside the webhook's own
  ``timeoutSeconds`` (5 s in manifests/webhook/validating.yaml). When it fails (timeout,
  refused, 5xx) the index's answer stands (the NAD is missing) and confirms are skipped
  for ``CONFIRM_BACKOFF`` seconds: a pod that selects eight missing networks pays at most
  one timeout, and a struggling API server is not sent a GET per admission.

Only the webhook's cluster mode imports this module (and the kubernetes client with it):
``--nads DIR`` and ``netplexctl`` never pay for that import.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from webhook import blocking
from webhook.index import NAD_KIND, IndexedNad, MemoryIndex, index_nad

log = logging.getLogger("netplex.webhook.cluster")

NAD_GROUP, NAD_VERSION, NAD_PLURAL = "k8s.cni.cncf.io", "v1", "network-attachment-definitions"
WATCH_TIMEOUT_SECONDS = 300
WATCH_GRACE = 30.0
LIST_TIMEOUT = 60.0
CONFIRM_TIMEOUT = 1.5
CONFIRM_BACKOFF = 10.0
CONNECT_TIMEOUT = 5.0
RETRY_SECONDS = 2.0


def load_api_client(kubeconfig: str | None) -> Any:
    """An ApiClient from a kubeconfig file, or the in-cluster service account."""
    from kubernetes import client, config

    if kubeconfig:
        return config.new_client_from_config(config_file=kubeconfig)
    config.load_incluster_config()
    return client.ApiClient()


def _without_read_retries(api_client: Any) -> Any:
    """A client like ``api_client`` (its own connection pool) that never re-sends a request.

    urllib3 re-sends an idempotent GET after a read timeout, three times by default, each
    with a fresh timeout: a 1.5 s confirm would wait 6 s. Refused connections are still
    retried once (the request was not sent).
    """
    import copy

    import urllib3
    from kubernetes import client

    configuration = copy.deepcopy(api_client.configuration)
    configuration.retries = urllib3.Retry(total=1, connect=1, read=0, status=0, redirect=0, other=0)
    return client.ApiClient(configuration)


class ClusterIndex(MemoryIndex):
    """A :class:`MemoryIndex` fed by list+watch; ``confirm`` does one GET for a miss."""

    def __init__(
        self,
        api_client: Any,
        *,
        watch_timeout: int = WATCH_TIMEOUT_SECONDS,
        watch_grace: float = WATCH_GRACE,
        list_timeout: float = LIST_TIMEOUT,
        confirm_timeout: float = CONFIRM_TIMEOUT,
        confirm_backoff: float = CONFIRM_BACKOFF,
    ) -> None:
        super().__init__()
        self._watch_timeout = watch_timeout
        self._watch_grace = watch_grace
        self._list_timeout = list_timeout
        self._confirm_timeout = confirm_timeout
        self._confirm_backoff = confirm_backoff
        self._confirm_paused_until = 0.0
        from kubernetes import client

        self._core = client.CoreV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)
        self._confirmer = client.CustomObjectsApi(_without_read_retries(api_client))
        self._synced = {NAD_KIND: threading.Event(), "Namespace": threading.Event()}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> ClusterIndex:
        for kind, lister in ((NAD_KIND, self._list_nads), ("Namespace", self._list_namespaces)):
            thread = threading.Thread(target=self._run, args=(kind, lister), name=f"watch-{kind}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()

    def synced(self) -> bool:
        return all(event.is_set() for event in self._synced.values())

    def wait_synced(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        return all(e.wait(max(0.0, deadline - time.monotonic())) for e in self._synced.values())

    def confirm(self, namespace: str, name: str) -> IndexedNad | None:
        """One GET before a NAD is declared missing (the watch may lag a fresh create).

        None when the API server says 404, and also when it cannot answer in time (then
        the index's "missing" stands; see the module docstring).
        """
        if time.monotonic() < self._confirm_paused_until:
            return None
        blocking.may_block(f"GET NetworkAttachmentDefinition {namespace}/{name}")
        from kubernetes.client.rest import ApiException

        try:
            obj: Any = self._confirmer.get_namespaced_custom_object(
                NAD_GROUP, NAD_VERSION, namespace, NAD_PLURAL, name, _request_timeout=self._confirm_timeout
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            if exc.status is not None and exc.status < 500 and exc.status != 429:
                raise  # 401/403...: a broken deployment, not a passing outage
            self._pause_confirms(f"{exc.status} {exc.reason}", namespace, name)
            return None
        except Exception as exc:  # urllib3: timeouts, refused, reset, TLS
            self._pause_confirms(str(exc) or type(exc).__name__, namespace, name)
            return None
        nad: Mapping[str, Any] = dict(obj, kind=NAD_KIND)
        self.put(nad)
        return index_nad(nad)

    def _pause_confirms(self, why: str, namespace: str, name: str) -> None:
        self._confirm_paused_until = time.monotonic() + self._confirm_backoff
        log.warning(
            "confirming GET of NetworkAttachmentDefinition %s/%s failed (%s); using the index alone "
            "for the next %.0fs",
            namespace, name, why, self._confirm_backoff,
        )

    def _list_nads(self, **kwargs: Any) -> Any:
        return self._custom.list_cluster_custom_object(NAD_GROUP, NAD_VERSION, NAD_PLURAL, **kwargs)

    def _list_namespaces(self, **kwargs: Any) -> Any:
        # Plain dicts, not the client's typed models: the rules read raw annotations.
        if kwargs.get("watch"):
            return self._core.list_namespace(**kwargs)
        response: Any = self._core.list_namespace(_preload_content=False, **kwargs)
        return json.loads(response.data)

    def _run(self, kind: str, lister: Callable[..., Mapping[str, Any]]) -> None:
        from kubernetes import watch
        from kubernetes.client.rest import ApiException

        resource_version: str | None = None
        while not self._stop.is_set():
            try:
                if resource_version is None:
                    listing = lister(_request_timeout=(CONNECT_TIMEOUT, self._list_timeout))
                    items = [dict(i, kind=kind) for i in listing.get("items", [])]
                    self.replace(kind, items)
                    resource_version = str(listing.get("metadata", {}).get("resourceVersion", ""))
                    self._synced[kind].set()
                    log.info("listed %d %s objects at resourceVersion %s", len(items), kind, resource_version)
                stream = watch.Watch().stream(
                    lister,
                    resource_version=resource_version,
                    timeout_seconds=self._watch_timeout,
                    allow_watch_bookmarks=True,
                    _request_timeout=(CONNECT_TIMEOUT, self._watch_timeout + self._watch_grace),
                )
                for event in stream:
                    if self._stop.is_set():
                        return
                    raw = event.get("raw_object") or event.get("object")
                    if not isinstance(raw, Mapping):
                        continue
                    obj: Mapping[str, Any] = raw
                    resource_version = str(obj.get("metadata", {}).get("resourceVersion", resource_version))
                    if event.get("type") == "ERROR":
                        if obj.get("code") == 410:
                            resource_version = None  # compacted: relist
                        break
                    if event.get("type") == "BOOKMARK":
                        continue
                    obj = dict(obj, kind=kind)
                    if event.get("type") == "DELETED":
                        self.delete(obj)
                    else:
                        self.put(obj)
            except ApiException as exc:
                if exc.status == 410:
                    resource_version = None
                    continue
                log.warning("watch of %s failed (%s %s); retrying in %.0fs", kind, exc.status, exc.reason, RETRY_SECONDS)
                self._stop.wait(RETRY_SECONDS)
            except Exception as exc:  # the watch must outlive any single failure
                log.warning("watch of %s failed (%s); retrying in %.0fs", kind, exc, RETRY_SECONDS)
                self._stop.wait(RETRY_SECONDS)
