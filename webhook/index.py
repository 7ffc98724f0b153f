"""The NADs and Namespaces the webhook decides against.

One in-memory index serves every mode: ``--nads DIR`` and ``netplexctl check`` fill it from
YAML files, the cluster mode fills it from a watch. Each NAD's ``spec.config`` is parsed
once when the NAD arrives, not on every pod admission (the reference injector GETs a NAD
per request when it has no annotations; we never do).

Writers (the watch thread) replace a namespace's map as a whole under a lock; readers
(request threads) never lock and always see a complete map.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from plugin.model import netconf

NAD_KIND = "NetworkAttachmentDefinition"
NAD_API_VERSION = "k8s.cni.cncf.io/v1"
DEFAULT_NAMESPACE = "default"


@dataclass(frozen=True, slots=True)
class IndexedNad:
    namespace: str
    name: str
    obj: Mapping[str, Any]
    config: netconf.NetConfResult
    # read once at indexing: every mutated pod asks for it
    annotations: Mapping[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        meta = self.obj.get("metadata") or {}
        annotations = meta.get("annotations") if isinstance(meta, Mapping) else None
        object.__setattr__(self, "annotations", annotations if isinstance(annotations, Mapping) else {})

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


class NetworkIndex(Protocol):
    def get_nad(self, namespace: str, name: str) -> IndexedNad | None: ...
    def nad_names(self, namespace: str) -> list[str]: ...
    def get_namespace(self, name: str) -> Mapping[str, Any] | None: ...
    def size(self) -> int: ...
    def generation(self) -> int:
        """A number that changes whenever any NAD or Namespace does (memo validity)."""
        ...


def object_namespace(obj: Mapping[str, Any], default: str = DEFAULT_NAMESPACE) -> str:
    meta = obj.get("metadata")
    if isinstance(meta, Mapping):
        ns = meta.get("namespace")
        if isinstance(ns, str) and ns:
            return ns
    return default


def object_name(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    if isinstance(meta, Mapping):
        name = meta.get("name") or meta.get("generateName")
        if isinstance(name, str):
            return name
    return ""


def index_nad(obj: Mapping[str, Any], namespace: str | None = None) -> IndexedNad:
    name = object_name(obj)
    spec = obj.get("spec")
    config = spec.get("config") if isinstance(spec, Mapping) else None
    return IndexedNad(
        namespace=namespace or object_namespace(obj),
        name=name,
        obj=obj,
        config=netconf.parse_netconf(config, name),
    )


class MemoryIndex:
    """NADs by namespace and name, Namespaces by name."""

    def __init__(self, objects: Iterable[Mapping[str, Any]] = ()) -> None:
        self._lock = threading.Lock()
        self._nads: dict[str, dict[str, IndexedNad]] = {}
        self._namespaces: dict[str, Mapping[str, Any]] = {}
        self._generation = 0
        for obj in objects:
            self.put(obj)

    def put(self, obj: Mapping[str, Any], default_namespace: str = DEFAULT_NAMESPACE) -> None:
        kind = obj.get("kind")
        if kind == NAD_KIND:
            nad = index_nad(obj, object_namespace(obj, default_namespace))
            with self._lock:
                updated = dict(self._nads.get(nad.namespace, {}))
                updated[nad.name] = nad
                self._nads[nad.namespace] = updated
                self._generation += 1
        elif kind == "Namespace":
            with self._lock:
                self._namespaces[object_name(obj)] = obj
                self._generation += 1

    def delete(self, obj: Mapping[str, Any]) -> None:
        kind = obj.get("kind")
        name = object_name(obj)
        with self._lock:
            if kind == NAD_KIND:
                ns = object_namespace(obj)
                updated = dict(self._nads.get(ns, {}))
                updated.pop(name, None)
                self._nads[ns] = updated
            elif kind == "Namespace":
                self._namespaces.pop(name, None)
            self._generation += 1

    def replace(self, kind: str, objects: Iterable[Mapping[str, Any]]) -> None:
        """Swap in a full listing of one kind (a watch's relist)."""
        if kind == NAD_KIND:
            fresh: dict[str, dict[str, IndexedNad]] = {}
            for obj in objects:
                nad = index_nad(obj)
                fresh.setdefault(nad.namespace, {})[nad.name] = nad
            with self._lock:
                self._nads = fresh
                self._generation += 1
        elif kind == "Namespace":
            namespaces = {object_name(o): o for o in objects}
            with self._lock:
                self._namespaces = namespaces
                self._generation += 1

    def get_nad(self, namespace: str, name: str) -> IndexedNad | None:
        return self._nads.get(namespace, {}).get(name)

    def nad_names(self, namespace: str) -> list[str]:
        return sorted(self._nads.get(namespace, {}))

    def get_namespace(self, name: str) -> Mapping[str, Any] | None:
        return self._namespaces.get(name)

    def size(self) -> int:
        return sum(len(v) for v in list(self._nads.values()))

    def generation(self) -> int:
        return self._generation
