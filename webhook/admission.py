"""From an AdmissionReview ``request`` to a :class:`webhook.verdicts.Verdict`.

This is the one handler the HTTP layer calls (``webhook.app.Handler``). It picks the
rules by resource kind and operation and never sees the wire format: the envelope is
parsed and rendered by ``webhook.reviews``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from plugin.model import selection
from plugin.model.problems import Problem
from webhook import mutation, patching, validators
from webhook import policy as policies
from webhook.index import NetworkIndex
from webhook.policy import ClusterPolicy
from webhook.verdicts import Verdict, allowed, denied, from_findings, patched

T = TypeVar("T")

# (API group, kind) pairs netplex judges; anything else is allowed untouched.
GROUPS = {
    "Pod": "",
    "Namespace": "",
    "NetworkAttachmentDefinition": "k8s.cni.cncf.io",
    "Deployment": "apps",
    "ReplicaSet": "apps",
    "StatefulSet": "apps",
    "DaemonSet": "apps",
    "Job": "batch",
    "CronJob": "batch",
    "ReplicationController": "",
}


class Admission:
    """Validation and mutation against a live (or static) index and a reloadable policy.

    Decisions are CPU-only (index lookups) except the confirming GET, which announces
    itself through ``webhook.blocking``: so the app may call them on the event loop.
    """

    decides_inline = True
    MEMO_SIZE = 1024

    def __init__(
        self,
        index: NetworkIndex,
        policy: Callable[[], ClusterPolicy] = ClusterPolicy,
        *,
        confirm_missing: validators.Confirm | None = None,
        ready: Callable[[], bool] = lambda: True,
        close: Callable[[], None] = lambda: None,
    ) -> None:
        self.close = close
        self._index = index
        self._policy = policy
        self._confirm = confirm_missing
        self._ready = ready
        # Pod CREATE verdicts by (namespace, the annotations the rules read), and mutation
        # plans by (namespace, networks annotation, opt-out): every replica of a Deployment
        # asks the same question. Denials are never kept (a miss must be confirmed against
        # the API server each time).
        self._verdicts: _Memo[Verdict] = _Memo(self.MEMO_SIZE)
        self._plans: _Memo[mutation.Plan] = _Memo(self.MEMO_SIZE)

    def ready(self) -> bool:
        return self._ready()

    def index_size(self) -> int:
        return self._index.size()

    def _context(self) -> validators.Context:
        return validators.Context(self._index, self._policy(), self._confirm)

    def validate(self, request: Mapping[str, Any]) -> Verdict:
        kind = _kind(request)
        operation = request.get("operation")
        if kind is None or operation not in ("CREATE", "UPDATE"):
            return allowed()
        obj = request.get("object")
        if not isinstance(obj, Mapping):
            return denied([Problem("request.object", f"is missing from a {operation} of a {kind}")])
        namespace = _namespace(request, obj)
        key = _memo_key(kind, str(operation), obj, namespace)
        if key is not None:
            return self._memoized(key, kind, obj, namespace)
        old = request.get("oldObject")
        findings = validators.check_object(
            {**obj, "kind": kind},
            namespace,
            self._context(),
            operation=str(operation),
            old=old if isinstance(old, Mapping) else None,
        )
        return from_findings(findings)

    def _memoized(self, key: tuple[Any, ...], kind: str, obj: Mapping[str, Any], namespace: str) -> Verdict:
        generation, policy = self._index.generation(), self._policy()
        hit = self._verdicts.get(key, generation, policy)
        if hit is not None:
            return hit
        context = validators.Context(self._index, policy, self._confirm)
        findings = validators.check_object({**obj, "kind": kind}, namespace, context, operation="CREATE")
        verdict = from_findings(findings)
        if verdict.allowed:
            self._verdicts.put(key, generation, policy, verdict)
        return verdict

    def _plan(self, obj: Mapping[str, Any], namespace: str, policy: ClusterPolicy) -> mutation.Plan | None:
        annotations = validators.annotations_of(obj)
        networks = annotations.get(selection.NETWORKS_ANNOTATION)
        skip = policies.skips_default_networks(annotations)
        memoizable = networks is None or (isinstance(networks, str) and len(networks) <= MEMO_MAX_TEXT)
        if not memoizable:
            return mutation.plan_mutation(networks, skip, namespace, self._index, policy)
        key = (namespace, networks, skip)
        generation = self._index.generation()
        plan = self._plans.get(key, generation, policy)
        if plan is None:
            plan = mutation.plan_mutation(networks, skip, namespace, self._index, policy)
            if plan is not None:
                self._plans.put(key, generation, policy, plan)
        return plan

    def mutate(self, request: Mapping[str, Any]) -> Verdict:
        if _kind(request) != "Pod" or request.get("operation") != "CREATE":
            return allowed()
        obj = request.get("object")
        if not isinstance(obj, Mapping):
            return allowed()  # the validating webhook denies it with the reason
        namespace, policy = _namespace(request, obj), self._policy()
        plan = self._plan(obj, namespace, policy)
        if plan is None:
            return allowed()
        result = mutation.mutate_pod(obj, namespace, self._index, policy, plan)
        ops = patching.make_patch(obj, result.pod)
        if not ops:
            return allowed(*result.warnings)
        return patched(list(ops), *result.warnings)


MEMO_MAX_TEXT = 4096


class _Memo(Generic[T]):
    """Answers valid while the index generation and the policy are those they came from."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: dict[tuple[Any, ...], tuple[int, ClusterPolicy, T]] = {}

    def get(self, key: tuple[Any, ...], generation: int, policy: ClusterPolicy) -> T | None:
        hit = self._entries.get(key)
        if hit is not None and hit[0] == generation and (hit[1] is policy or hit[1] == policy):
            return hit[2]
        return None

    def put(self, key: tuple[Any, ...], generation: int, policy: ClusterPolicy, value: T) -> None:
        if len(self._entries) >= self.size:
            self._entries.clear()  # crude, but a full memo means the questions vary anyway
        self._entries[key] = (generation, policy, value)


def _memo_key(kind: str, operation: str, obj: Mapping[str, Any], namespace: str) -> tuple[Any, ...] | None:
    """What a pod CREATE verdict depends on besides index and policy; None = do not memoize."""
    if kind != "Pod" or operation != "CREATE":
        return None
    annotations = validators.annotations_of(obj)
    relevant = []
    size = 0
    for name, value in annotations.items():
        if name in _MEMO_ANNOTATIONS or (isinstance(name, str) and name.startswith(policies.PREFIX)):
            if not isinstance(value, str):
                return None
            size += len(value)
            relevant.append((name, value))
    # The NADs' node labels are judged against the pod's own nodeSelector.
    selector = validators.node_selector_of(obj)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in selector.items()):
        return None
    size += sum(len(k) + len(v) for k, v in selector.items())
    if size > MEMO_MAX_TEXT:
        return None
    return ("Pod", namespace, tuple(sorted(relevant)), tuple(sorted(selector.items())))


_MEMO_ANNOTATIONS = frozenset({selection.NETWORKS_ANNOTATION, selection.DEFAULT_NETWORK_ANNOTATION})


def _kind(request: Mapping[str, Any]) -> str | None:
    gvk = request.get("kind")
    if not isinstance(gvk, Mapping):
        return None
    kind = gvk.get("kind")
    if not isinstance(kind, str) or kind not in GROUPS:
        return None
    if gvk.get("group", "") != GROUPS[kind]:
        return None
    return kind


def _namespace(request: Mapping[str, Any], obj: Mapping[str, Any]) -> str:
    """The request's namespace first: controller-created pods arrive without their own."""
    namespace = request.get("namespace")
    if isinstance(namespace, str) and namespace:
        return namespace
    meta = obj.get("metadata")
    if isinstance(meta, Mapping) and isinstance(meta.get("namespace"), str) and meta["namespace"]:
        return str(meta["namespace"])
    return "default"
