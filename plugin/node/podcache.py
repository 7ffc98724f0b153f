"""The pods bound to this node, in the node daemon's memory: what an ADD reads of its pod.

Every ADD needs its pod's annotations (the network selection) and UID; the thin plugin
GETs the pod for them (~1.2 ms over a warm connection, per pod). Like Multus thick's pod
informer, the daemon instead lists and watches the pods with
``fieldSelector=spec.nodeName=<node>`` (:mod:`plugin.node.watchcache`): the kubelet learns
of a pod on its node from the same kind of watch, so the pod is nearly always here by the
time the runtime asks for its sandbox. Whether a cached pod may be used is the caller's
decision (:class:`plugin.node.daemon.CachedReads`: only when its UID is the request's
``K8S_POD_UID``, otherwise a GET, exactly as the thin plugin does).

Pods are large (spec, status, managed fields: several KiB each) and an ADD reads only
``metadata``: the cache keeps ``metadata.name``, ``namespace``, ``uid``,
``resourceVersion`` and ``annotations`` and nothing else, **frozen** (read-only mappings,
tuples), so ``get`` hands out the stored object itself, with no copy per call, and no
caller can change the cache through it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from plugin.cni import k8s
from plugin.model import names
from plugin.node.watchcache import WatchCache

PODS_PATH = "/api/v1/pods"
KEPT_METADATA = ("name", "namespace", "uid", "resourceVersion", "annotations")


class PodCache(WatchCache[Mapping[str, Any]]):
    """The pods whose ``spec.nodeName`` is ``node_name``, reduced to what an ADD reads."""

    def __init__(self, connection_source: k8s.ConnectionSource, node_name: str, **kw: Any) -> None:
        """``node_name`` must be a node name (a DNS-1123 subdomain): it goes into the field
        selector, where a ``,`` or ``=`` would change what is selected. ``kw``:
        :class:`~plugin.node.watchcache.WatchCache`'s timing and ``on_change``."""
        problem = names.check_dns1123_subdomain(node_name, "node name")
        if problem is not None:
            raise ValueError(problem)
        super().__init__(connection_source, PODS_PATH, kind="pod", resource="pods",
                         field_selector=f"spec.nodeName={node_name}", **kw)
        self.node_name = node_name

    def _keep(self, obj: dict[str, Any]) -> Mapping[str, Any]:
        meta = obj.get("metadata")
        meta = meta if isinstance(meta, Mapping) else {}
        return frozen({"metadata": {key: meta[key] for key in KEPT_METADATA if key in meta}})

    def _export(self, stored: Mapping[str, Any]) -> Mapping[str, Any]:
        return stored  # frozen: sharing it is safe


def frozen(value: Any) -> Any:
    """``value`` with every dict made a read-only mapping and every list a tuple."""
    if isinstance(value, Mapping):
        return MappingProxyType({key: frozen(item) for key, item in value.items()})
    if isinstance(value, list):
        return tuple(frozen(item) for item in value)
    return value
