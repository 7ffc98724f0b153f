"""Every NetworkAttachmentDefinition of the cluster, in the node daemon's memory.

The thin plugin GETs each selected NAD on every ADD; the daemon answers from this
list+watch cache (:mod:`plugin.node.watchcache`) instead and confirms a miss with a GET
(a NAD created a moment ago may not have reached the cache yet). NADs are small and
read whole (``spec.config``), so the cache keeps them whole and ``get`` returns a deep
copy that callers may change.
"""

from __future__ import annotations

from typing import Any

from plugin.cni import k8s
from plugin.node.watchcache import WatchCache

NADS_PATH = f"/apis/{k8s.NAD_GROUP_VERSION}/network-attachment-definitions"


class NadCache(WatchCache[dict[str, Any]]):
    """All NADs of the cluster (every namespace), kept current by one background thread."""

    def __init__(self, connection_source: k8s.ConnectionSource, **kw: Any) -> None:
        """``kw``: :class:`~plugin.node.watchcache.WatchCache`'s timing and ``on_change``."""
        super().__init__(connection_source, NADS_PATH, kind="NAD",
                         resource="network-attachment-definitions.k8s.cni.cncf.io", **kw)
