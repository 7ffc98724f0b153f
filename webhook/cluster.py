"""The live index: NADs and Namespaces from the API server, kept current by watches.

One list then a watch per kind, in a daemon thread each; a watch that ends is resumed
from the last resourceVersion, and a ``410 Gone`` (history compacted) triggers a fresh
list that replaces the kind's contents as a whole. ``/readyz`` turns ready once both
kinds have been listed once.

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
RETRY_SECONDS = 2.0


def load_api_client(kubeconfig: str | None) -> Any:
    """An ApiClient from a kubeconfig file, or the in-cluster service account."""
    from kubernetes import client, config

    if kubeconfig:
        return config.new_client_from_config(config_file=kubeconfig)
    config.load_incluster_config()
    return client.ApiClient()


class ClusterIndex(MemoryIndex):
    """A :class:`MemoryIndex` fed by list+watch; ``confirm`` does one GET for a miss."""

    def __init__(self, api_client: Any, *, watch_timeout: int = WATCH_TIMEOUT_SECONDS) -> None:
        super().__init__()
        self._watch_timeout = watch_timeout
        from kubernetes import client

        self._core = client.CoreV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)
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
        """One GET before a NAD is declared missing (the watch may lag a fresh create)."""
        blocking.may_block(f"GET NetworkAttachmentDefinition {namespace}/{name}")
        from kubernetes.client.rest import ApiException

        try:
            obj: Any = self._custom.get_namespaced_custom_object(NAD_GROUP, NAD_VERSION, namespace, NAD_PLURAL, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        nad: Mapping[str, Any] = dict(obj, kind=NAD_KIND)
        self.put(nad)
        return index_nad(nad)

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
                    listing = lister()
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
