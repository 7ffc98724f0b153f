"""The rules: what is wrong with a Pod, a workload's pod template, a NAD or a Namespace.

Pure functions of ``(object, context) -> Findings``. The admission handler and
``netplexctl check`` both call :func:`check_object`, so an object the linter passes is an
object the webhook admits, and a pod the webhook admits does not fail in the CNI plugin for
a reason visible here (the plugin parses with the same ``plugin.model.selection`` and
``plugin.model.netconf``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from plugin.model import names, selection
from plugin.model.problems import Collector, Findings, show
from webhook import nad_annotations
from webhook import policy as policies
from webhook.index import NAD_API_VERSION, NAD_KIND, IndexedNad, NetworkIndex, object_name

WORKLOAD_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}
CHECKED_KINDS = frozenset({"Pod", NAD_KIND, "Namespace", *WORKLOAD_TEMPLATE_PATHS})

Confirm = Callable[[str, str], IndexedNad | None]


@dataclass(frozen=True, slots=True)
class Context:
    """What the rules need besides the object itself."""

    index: NetworkIndex
    policy: policies.ClusterPolicy = field(default_factory=policies.ClusterPolicy)
    # One GET against the API before a NAD is declared missing, so a NAD created a moment
    # ago (not yet seen by the watch) does not make a pod bounce. None offline.
    confirm_missing: Confirm | None = None


def template_of(obj: Mapping[str, Any]) -> tuple[Mapping[str, Any] | None, str]:
    """The pod template of a workload and its field path (``spec.template``)."""
    steps = WORKLOAD_TEMPLATE_PATHS.get(str(obj.get("kind")), ())
    node: Any = obj
    for step in steps:
        node = node.get(step) if isinstance(node, Mapping) else None
    return (node if isinstance(node, Mapping) else None), ".".join(steps)


def annotations_of(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    annotations = meta.get("annotations") if isinstance(meta, Mapping) else None
    return annotations if isinstance(annotations, Mapping) else {}


def namespace_policy(namespace: str, index: NetworkIndex) -> policies.NamespacePolicy:
    ns_obj = index.get_namespace(namespace)
    return policies.parse_namespace_policy(namespace, annotations_of(ns_obj))


def check_object(
    obj: Mapping[str, Any],
    namespace: str,
    ctx: Context,
    *,
    operation: str = "CREATE",
    old: Mapping[str, Any] | None = None,
) -> Findings:
    """Dispatch on ``kind``; kinds netplex does not care about have no findings."""
    kind = obj.get("kind")
    if kind == "Pod":
        return check_pod(obj, namespace, ctx, operation=operation, old=old)
    if kind == NAD_KIND:
        return check_nad(obj, ctx.policy)
    if kind == "Namespace":
        return check_namespace(obj)
    if kind in WORKLOAD_TEMPLATE_PATHS:
        return check_workload(obj, namespace, ctx)
    return Findings()


def check_nad(obj: Mapping[str, Any], policy: policies.ClusterPolicy | None = None) -> Findings:
    """NPWG-3 name rule, the annotations netplex injects from, then the netconf rules."""
    from webhook.index import index_nad

    out = Collector()
    api_version = obj.get("apiVersion")
    if api_version is not None and api_version != NAD_API_VERSION:
        out.error("apiVersion", f"is not served (got {show(api_version)}); use {NAD_API_VERSION}")
    name = object_name(obj)
    problem = names.check_dns1123_label(name, what="NetworkAttachmentDefinition name")
    if problem:
        note = " (NPWG §3.3; the API server alone would let the dots through)" if "." in name else ""
        out.error("metadata.name", problem + note)
    keys = (policy or policies.ClusterPolicy()).resource_name_keys
    errors, warnings = nad_annotations.read_nad_annotations(annotations_of(obj), keys).findings()
    out.errors.extend(errors)
    out.warnings.extend(warnings)
    spec = obj.get("spec")
    if spec is not None and not isinstance(spec, Mapping):
        out.error("spec", f"must be an object (got {show(spec)}); use spec: {{config: '<CNI JSON>'}}")
        return out.freeze()
    out.extend(index_nad(obj).config.findings)
    return out.freeze()


def check_namespace(obj: Mapping[str, Any]) -> Findings:
    return policies.check_namespace_annotations(object_name(obj), annotations_of(obj))


def check_workload(obj: Mapping[str, Any], namespace: str, ctx: Context) -> Findings:
    """The pod template gets the pod rules, with paths into the template."""
    template, path = template_of(obj)
    if template is None:
        return Findings()
    return check_pod_annotations(
        annotations_of(template), namespace, ctx, prefix=f"{path}.metadata",
        node_selector=node_selector_of(template), spec_path=f"{path}.spec",
    )


def node_selector_of(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    """The pod's own ``spec.nodeSelector`` ({} when absent or not a map)."""
    spec = pod.get("spec")
    selector = spec.get("nodeSelector") if isinstance(spec, Mapping) else None
    return selector if isinstance(selector, Mapping) else {}


def check_pod(
    pod: Mapping[str, Any],
    namespace: str,
    ctx: Context,
    *,
    operation: str = "CREATE",
    old: Mapping[str, Any] | None = None,
) -> Findings:
    if operation == "UPDATE" and old is not None:
        return check_pod_update(pod, old, ctx)
    return check_pod_annotations(annotations_of(pod), namespace, ctx, node_selector=node_selector_of(pod))


def check_pod_update(pod: Mapping[str, Any], old: Mapping[str, Any], ctx: Context) -> Findings:
    """A running pod's interfaces are made once, at sandbox creation: an edit changes nothing."""
    out = Collector()
    for key in (selection.NETWORKS_ANNOTATION, selection.DEFAULT_NETWORK_ANNOTATION):
        before = annotations_of(old).get(key)
        after = annotations_of(pod).get(key)
        if before != after:
            message = (
                f"cannot be changed on an existing pod (got {show(before)} -> {show(after)}); "
                "interfaces are attached only when the pod starts, so delete and recreate the pod "
                "(or change its Deployment) to use other networks"
            )
            if ctx.policy.pod_network_update == "deny":
                out.error(policies.annotation_path(key), message)
            else:
                out.warn(policies.annotation_path(key), message)
    return out.freeze()


def check_pod_annotations(
    annotations: Mapping[str, Any],
    namespace: str,
    ctx: Context,
    *,
    prefix: str = "metadata",
    node_selector: Mapping[str, Any] | None = None,
    spec_path: str = "spec",
) -> Findings:
    """The networks a pod selects: syntax, existence, isolation, namespace policy, and what
    the selected NADs would add to the pod (device resources, node label)."""
    out = Collector()
    out.extend(policies.check_pod_annotations(annotations, prefix))

    value = annotations.get(selection.NETWORKS_ANNOTATION)
    networks_path = policies.annotation_path(selection.NETWORKS_ANNOTATION, prefix)
    if value is not None and not isinstance(value, str):
        out.error(networks_path, f"must be a string (got {show(value)})")
        value = None
    parsed = selection.parse_networks(value, namespace, path=networks_path)
    out.extend(parsed.findings)
    if parsed.ok:
        found = []
        for sel in parsed.selections:
            nad = _check_selected(sel, namespace, ctx, out, networks_path)
            if nad is not None:
                found.append((sel, nad))
        _check_namespace_policy(parsed.selections, namespace, ctx, out, networks_path)
        _check_injected(found, node_selector or {}, ctx, out, networks_path, spec_path)

    default_value = annotations.get(selection.DEFAULT_NETWORK_ANNOTATION)
    if default_value is not None:
        default_path = policies.annotation_path(selection.DEFAULT_NETWORK_ANNOTATION, prefix)
        if not isinstance(default_value, str):
            out.error(default_path, f"must be a string (got {show(default_value)})")
        else:
            default = selection.parse_default_network(
                default_value, ctx.policy.multus_namespace, path=default_path
            )
            out.extend(default.findings)
            if default.ok:
                for sel in default.selections:
                    _check_exists(sel, ctx, out, f"{default_path}[{sel.index}]")
    return out.freeze()


def _check_selected(
    sel: selection.Selection, namespace: str, ctx: Context, out: Collector, path: str
) -> IndexedNad | None:
    """Isolation, existence and capabilities of one selection; the NAD when it exists."""
    element = f"{path}[{sel.index}]"
    if (
        ctx.policy.namespace_isolation
        and sel.namespace != namespace
        and sel.namespace not in ctx.policy.global_namespaces
    ):
        allowed = ", ".join(dict.fromkeys([namespace, *ctx.policy.global_namespaces]))
        out.error(
            f"{element}.namespace",
            f"refers to another namespace while namespace isolation is on (got {show(sel.namespace)}); "
            f"pods in {show(namespace)} may use networks from: {allowed}",
        )
        return None
    nad = _check_exists(sel, ctx, out, element)
    if nad is None:
        return None
    if nad.config.errors:
        first = nad.config.errors[0]
        out.error(
            f"{element}.name",
            f"network {show(sel.ref)} has an invalid spec.config, so the attachment would fail "
            f"at pod start ({first}); fix the NetworkAttachmentDefinition",
        )
        return nad
    if nad.config.kind == "empty":
        return nad  # the on-disk config is unknown here; the plugin checks capabilities at ADD
    for key, capability in selection.requested_capabilities(sel):
        if capability not in nad.config.capabilities:
            out.error(
                f"{element}.{key}",
                f"network {show(sel.ref)} has no plugin that declares the {show(capability)} "
                f"capability, so the request would be dropped (NPWG: the attachment fails); add "
                f'"capabilities": {{"{capability}": true}} to a plugin in its config that supports it',
            )
    return nad


def _check_injected(
    found: list[tuple[selection.Selection, IndexedNad]],
    pod_selector: Mapping[str, Any],
    ctx: Context,
    out: Collector,
    path: str,
    spec_path: str,
) -> None:
    """What the mutating webhook would add from the selected NADs must be what the API
    server accepts: an invalid resource name or node label (a NAD admitted before these
    rules), or a node label that contradicts the pod's own ``nodeSelector`` or another
    NAD's, denies the pod here, naming the NAD, instead of a patch the API server refuses
    without saying where the value came from."""
    inject_labels = ctx.policy.inject_node_selector
    wanted: dict[str, tuple[str, selection.Selection]] = {}
    for sel, nad in found:
        element = f"{path}[{sel.index}].name"
        read = nad_annotations.read_nad_annotations(nad.annotations, ctx.policy.resource_name_keys)
        for key, problem in read.problems:
            if key == nad_annotations.NODE_SELECTOR_ANNOTATION and not inject_labels:
                continue
            out.error(element, (
                f"network {show(sel.ref)} cannot be attached: its NetworkAttachmentDefinition's "
                f"annotation {key} {problem}; fix the NetworkAttachmentDefinition"
            ))
        if not inject_labels or read.node_label is None:
            continue
        key, value = read.node_label
        own = pod_selector.get(key)
        if key in pod_selector and own != value:
            out.error(f"{spec_path}.nodeSelector[{key}]", (
                f"contradicts the node label that network {show(sel.ref)} needs (got {show(own)}, "
                f"its {nad_annotations.NODE_SELECTOR_ANNOTATION} annotation asks for {key}={show(value)}); "
                f"no node matches both: set {key} to {show(value)}, remove it, or select another network"
            ))
            continue
        earlier = wanted.get(key)
        if earlier is not None and earlier[0] != value:
            out.error(element, (
                f"network {show(sel.ref)} needs node label {key}={show(value)} but network "
                f"{show(earlier[1].ref)} (element [{earlier[1].index}]) needs {key}={show(earlier[0])} "
                f"(their {nad_annotations.NODE_SELECTOR_ANNOTATION} annotations); no node matches both: "
                "select networks whose node labels agree"
            ))
            continue
        wanted.setdefault(key, (value, sel))


def _check_exists(
    sel: selection.Selection, ctx: Context, out: Collector, element: str
) -> IndexedNad | None:
    nad = ctx.index.get_nad(sel.namespace, sel.name)
    if nad is None and ctx.confirm_missing is not None:
        nad = ctx.confirm_missing(sel.namespace, sel.name)
    if nad is not None:
        return nad
    mode = ctx.policy.missing_networks
    if mode == "ignore":
        return None
    available = ctx.index.nad_names(sel.namespace)
    hint = names.closest(sel.name, available)
    if hint:
        advice = f'did you mean "{hint}"?'
    elif available:
        shown = ", ".join(available[:8]) + (", ..." if len(available) > 8 else "")
        advice = f"networks in that namespace: {shown}"
    else:
        advice = "that namespace has no NetworkAttachmentDefinitions; create one first"
    message = (
        f"no NetworkAttachmentDefinition {show(sel.name)} in namespace {show(sel.namespace)}; {advice}"
    )
    if mode == "deny":
        out.error(f"{element}.name", message)
    else:
        out.warn(f"{element}.name", message + " (the pod will not start until it exists)")
    return None


def _check_namespace_policy(
    selected: tuple[selection.Selection, ...],
    namespace: str,
    ctx: Context,
    out: Collector,
    path: str,
) -> None:
    ns_policy = namespace_policy(namespace, ctx.index)
    report = out.error if ns_policy.mode == "enforce" else out.warn
    suffix = "" if ns_policy.mode == "enforce" else " (policy-mode is warn: allowed for now)"
    for sel in selected:
        if not ns_policy.allows(sel.ref):
            patterns = ", ".join(ns_policy.allowed_patterns or ())
            report(
                f"{path}[{sel.index}].name",
                f"network {show(sel.ref)} is not allowed in namespace {show(namespace)}; its "
                f"{policies.ALLOWED_NETWORKS} annotation allows: {patterns}{suffix}",
            )
    limit = ns_policy.max_networks
    if limit is not None and len(selected) > limit:
        report(
            path,
            f"selects {len(selected)} networks, more than the {limit} allowed in namespace "
            f"{show(namespace)} by {policies.MAX_NETWORKS}; remove {len(selected) - limit}{suffix}",
        )
