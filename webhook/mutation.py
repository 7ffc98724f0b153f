"""What the mutating webhook adds to a new pod, computed on a copy of the raw pod dict.

The patch is always the diff of the original and the mutated pod
(``webhook.patching.make_patch``, which leaves list edits to ``jsonpatch``): escaping
(``~1`` in ``k8s.v1.cni.cncf.io/networks``) and add-vs-replace come for free, unknown pod
fields are never touched, and no change means no patch. Every step is idempotent,
because the API server may call the webhook twice (``reinvocationPolicy: IfNeeded``).

The mutated pod is built copy-on-write (:func:`_owned`): a dict or list is copied the
first time a step writes into it, so the request's pod is never modified and every
part nobody touched is shared, which is what makes the diff cheap. Steps must reach
anything they write through :func:`_owned`.

Steps, in order:

1. default networks: the namespace's ``netplex.io/default-networks`` then the cluster
   policy's ``defaultNetworks``, appended after the pod's own selections, skipping
   networks the pod already selects; opt-out with ``netplex.io/skip-default-networks``;
2. device-plugin resources: one unit of a NAD's ``k8s.v1.cni.cncf.io/resourceName`` per
   attachment, in requests and limits (never lowering what the user set);
3. optional: the ``podnetinfo`` downward-API volume, and the NADs' node labels.

Values from a NAD's annotations are injected only when valid (``webhook.nad_annotations``);
an invalid or contradictory one is left out, and ``/validate`` denies the pod naming the
NAD. User values read here (resource quantities, the injected-resources record) may be
anything a request can hold: they are read with the depth and length limits of
``plugin.model.limits``, never with ``int()`` or ``json.loads`` alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from plugin.model import limits, records, selection
from plugin.model.problems import Problem, show
from webhook import nad_annotations
from webhook import policy as policies
from webhook.index import IndexedNad, NetworkIndex
from webhook.validators import namespace_policy

RESOURCES_INJECTED = "netplex.io/injected-resources"
NODE_SELECTOR_ANNOTATION = nad_annotations.NODE_SELECTOR_ANNOTATION
PODNETINFO = "podnetinfo"
PODNETINFO_PATH = "/etc/podnetinfo"


@dataclass(slots=True)
class Mutation:
    """The mutated pod and the warnings gathered on the way."""

    pod: dict[str, Any]
    warnings: list[Problem] = field(default_factory=list)
    # ids of the containers already copied for this mutation (the originals stay alive
    # in the request, so an id cannot be reused while this object lives).
    owned: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.owned.add(id(self.pod))


def _owned(out: Mutation, parent: Any, key: str | int, kind: type[Any] = dict) -> Any:
    """``parent[key]`` as a container of this mutation's own (copied on first write).

    ``parent`` must itself be owned. A value of another type is replaced by an empty
    ``kind``, as the steps did before they shared anything.
    """
    value = parent[key] if isinstance(parent, list) and isinstance(key, int) else parent.get(key)
    if type(value) is kind and id(value) in out.owned:
        return value
    mine = kind(value) if isinstance(value, kind) else kind()
    parent[key] = mine
    out.owned.add(id(mine))
    return mine


@dataclass(frozen=True, slots=True)
class Plan:
    """What a pod's mutation depends on besides the pod's own spec: its networks answer.

    A function of (namespace, the networks annotation, the skip annotation, the index,
    the policy) only, so the webhook can keep it per question (``webhook.admission``):
    every replica of a Deployment gets the same plan.
    """

    networks_text: str | None  # the annotation's new value, None to leave it as it is
    warnings: tuple[Problem, ...]
    selected: tuple[selection.Selection, ...]
    found: tuple[IndexedNad, ...]
    counts: tuple[tuple[str, int], ...]  # device-plugin resource -> attachments, sorted


def plan_mutation(
    networks: object,
    skip_defaults: bool,
    namespace: str,
    index: NetworkIndex,
    policy: policies.ClusterPolicy,
) -> Plan | None:
    """The plan for a pod whose networks annotation is ``networks``; None: leave it alone."""
    if networks is not None and not isinstance(networks, str):
        return None  # the validating webhook rejects it; nothing sane to add to
    parsed = selection.parse_networks(networks, namespace)
    if not parsed.ok:
        return None
    warnings: list[Problem] = []
    text, selected = _default_networks(parsed, skip_defaults, namespace, index, policy, warnings)
    nads = [index.get_nad(s.namespace, s.name) for s in selected]
    found = tuple(n for n in nads if n is not None)
    counts: dict[str, int] = {}
    for nad in found:
        resource = _resource_of(nad, policy.resource_name_keys)
        if resource:
            counts[resource] = counts.get(resource, 0) + 1
    return Plan(text, tuple(warnings), selected, found, tuple(sorted(counts.items())))


def mutate_pod(
    pod: Mapping[str, Any],
    namespace: str,
    index: NetworkIndex,
    policy: policies.ClusterPolicy,
    plan: Plan | None = None,
) -> Mutation:
    """Return a mutated copy of ``pod`` (copy-on-write); the caller diffs it against ``pod``.

    ``plan`` is :func:`plan_mutation` for this pod when the caller already has it.
    """
    out = Mutation(dict(pod))
    if plan is None:
        annotations = _annotations(pod)
        plan = plan_mutation(annotations.get(selection.NETWORKS_ANNOTATION),
                             policies.skips_default_networks(annotations), namespace, index, policy)
        if plan is None:
            return out
    out.warnings.extend(plan.warnings)
    if plan.networks_text is not None:
        _set_annotation(out, selection.NETWORKS_ANNOTATION, plan.networks_text)
    _add_resources(out, plan.counts, policy)
    if policy.inject_node_selector:
        _add_node_selectors(out, list(plan.found), policy)
    if policy.inject_podnetinfo and plan.selected:
        _add_podnetinfo(out)
    return out


def _annotations(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    """Read-only view: write with :func:`_set_annotation`."""
    meta = pod.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    return annotations if isinstance(annotations, dict) else {}


def _set_annotation(out: Mutation, key: str, value: str) -> None:
    meta = _owned(out, out.pod, "metadata")
    _owned(out, meta, "annotations")[key] = value


def _default_sources(namespace: str, index: NetworkIndex, policy: policies.ClusterPolicy) -> list[tuple[str, str]]:
    """(selection text, where it came from) in injection order."""
    sources = []
    ns_defaults = namespace_policy(namespace, index).default_networks
    if ns_defaults:
        sources.append((ns_defaults, f"namespace {namespace} ({policies.DEFAULT_NETWORKS})"))
    if policy.default_networks and namespace not in policy.system_namespaces:
        sources.append((policy.default_networks, "cluster policy defaultNetworks"))
    return sources


def _default_networks(
    parsed: selection.SelectionResult,
    skip: bool,
    namespace: str,
    index: NetworkIndex,
    policy: policies.ClusterPolicy,
    warnings: list[Problem],
) -> tuple[str | None, tuple[selection.Selection, ...]]:
    """(new annotation text or None, the selections the pod ends up with)."""
    own = parsed.selections
    if skip:
        return None, own
    chosen = list(own)
    refs = {s.ref for s in own}
    for text, origin in _default_sources(namespace, index, policy):
        defaults = selection.parse_networks(text, namespace)
        if not defaults.ok:
            warnings.append(Problem(origin, f"default networks not injected: {defaults.errors[0]}"))
            continue
        for sel in defaults.selections:
            if sel.ref in refs:
                continue
            refs.add(sel.ref)
            # Written with its namespace: the pod's annotation must mean the same thing
            # wherever the default came from.
            chosen.append(records.replace(sel, namespace_given=True))
    if len(chosen) == len(own):
        return None, own
    use_json = parsed.form == "json" or not all(s.short_form_ok for s in chosen)
    text = selection.format_networks(chosen, "json" if use_json else "short")
    reparsed = selection.parse_networks(text, namespace)
    if not reparsed.ok:  # e.g. a default asks for an interface the pod already uses
        warnings.append(
            Problem(
                policies.annotation_path(selection.NETWORKS_ANNOTATION),
                f"default networks not injected: {reparsed.errors[0]}",
            )
        )
        return None, own
    return text, reparsed.selections


def _resource_of(nad: IndexedNad, keys: tuple[str, ...]) -> str | None:
    """The NAD's device-plugin resource: the first valid one of the configured keys."""
    resources = nad_annotations.read_nad_annotations(nad.annotations, keys).resources
    return resources[0] if resources else None


def _add_resources(out: Mutation, counts: tuple[tuple[str, int], ...], policy: policies.ClusterPolicy) -> None:
    if not counts:
        return
    containers = _target_containers(out, policy)
    annotations = _annotations(out.pod)
    previously = _previous_injection(annotations.get(RESOURCES_INJECTED))
    added: dict[str, int] = {}
    for index_, _ in containers:
        container = _owned(out, _owned(out, _owned(out, out.pod, "spec"), "containers", list), index_)
        resources = _owned(out, container, "resources")
        for part in ("requests", "limits"):
            _owned(out, resources, part)
        for resource, count in counts:
            base = f"spec.containers[{index_}].resources"
            user = _user_value(resources, resource, previously.get(resource, 0) if policy.honor_resources else 0)
            if user is None:  # not a whole number: leave it to the API server
                part = "limits" if resource in resources["limits"] else "requests"
                out.warnings.append(Problem(
                    f"{base}.{part}[{resource}]",
                    f"is not a whole number (got {show(resources[part].get(resource))}); netplex did not "
                    f"add the {count} device(s) the pod's networks need: write a count such as \"{count}\"",
                ))
                continue
            if user == 0:
                target = count
            elif policy.honor_resources:
                target = user + count
            else:
                target = user
                if user < count:
                    out.warnings.append(Problem(
                        f"{base}.requests[{resource}]",
                        f"is {user} but the pod's networks need {count} (got {user}); the pod "
                        f"will get fewer devices than attachments and fail at start; set it to {count} "
                        "or remove it to let netplex set it",
                    ))
            resources["requests"][resource] = str(target)
            resources["limits"][resource] = str(target)
            if target != user:
                added[resource] = target - user
    if policy.honor_resources and added:
        _set_annotation(out, RESOURCES_INJECTED, json.dumps(added, sort_keys=True, separators=(",", ":")))


def _previous_injection(value: object) -> dict[str, int]:
    """What netplex added on an earlier call ({resource: count}); anything else reads as {}.

    The annotation is the user's to edit, so it is measured before it is decoded."""
    if not isinstance(value, str) or limits.text_depth(value) > limits.MAX_DEPTH:
        return {}
    try:
        data = json.loads(value)
    except ValueError:  # not JSON, or an integer past Python's 4,300 digits
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        k: v
        for k, v in data.items()
        if isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 10**limits.COUNT_MAX_DIGITS
    }


def _user_value(resources: dict[str, Any], resource: str, already_added: int) -> int | None:
    """What the user asked for (0 = nothing), without what netplex added before.

    ``None`` when a value is not a plain count: a quantity string of ASCII digits (the API
    server's form for extended resources) or an integer; never ``int()`` on anything else
    (``"²"`` passes ``str.isdigit``, a nested list would be rendered recursively)."""
    values = []
    for part in ("requests", "limits"):
        raw = resources[part].get(resource)
        if raw is None:
            continue
        if isinstance(raw, str):
            count = limits.parse_count(raw.strip())
        elif isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw < 10**limits.COUNT_MAX_DIGITS:
            count = raw
        else:
            count = None
        if count is None:
            return None
        values.append(count)
    if not values:
        return 0
    return max(max(values) - already_added, 0)


def _target_containers(out: Mutation, policy: policies.ClusterPolicy) -> list[tuple[int, dict[str, Any]]]:
    spec = out.pod.get("spec")
    containers = spec.get("containers") if isinstance(spec, dict) else None
    if not isinstance(containers, list) or not containers:
        return []
    indexed = [(i, c) for i, c in enumerate(containers) if isinstance(c, dict)]
    if policy.resource_all_containers:
        return indexed
    if policy.resource_container:
        named = [(i, c) for i, c in indexed if c.get("name") == policy.resource_container]
        if named:
            return named
        out.warnings.append(Problem(
            "spec.containers",
            f"has no container named {show(policy.resource_container)} (the policy's "
            "resourceContainer); device resources were added to the first container",
        ))
    return indexed[:1]


def _add_node_selectors(out: Mutation, nads: list[IndexedNad], policy: policies.ClusterPolicy) -> None:
    """Each NAD's node label into ``spec.nodeSelector``, when valid and uncontested.

    An invalid label, one the pod already sets to another value, or one two NADs set to
    different values is left out: ``/validate`` (which runs after this) denies the pod and
    names the NAD, where the network-resources-injector would overwrite the pod's value
    or send a patch the API server refuses."""
    wanted: dict[str, str] = {}
    contested: set[str] = set()
    for nad in nads:
        label = nad_annotations.read_nad_annotations(nad.annotations, policy.resource_name_keys).node_label
        if label is None:
            continue
        key, value = label
        if wanted.setdefault(key, value) != value:
            contested.add(key)
    spec = out.pod.get("spec")
    current = spec.get("nodeSelector") if isinstance(spec, dict) else None
    if current is not None and not isinstance(current, dict):
        return  # not a map: the API server refuses the pod whatever we add
    merged = dict(current or {})
    for key, value in wanted.items():
        if key not in contested and key not in merged:
            merged[key] = value
    if merged != (current or {}):
        _owned(out, out.pod, "spec")["nodeSelector"] = merged


def _add_podnetinfo(out: Mutation) -> None:
    spec = _owned(out, out.pod, "spec")
    volumes = spec.get("volumes")
    if not isinstance(volumes, list):
        volumes = []
    if not any(isinstance(v, dict) and v.get("name") == PODNETINFO for v in volumes):
        volumes = _owned(out, spec, "volumes", list)
        volumes.append({
            "name": PODNETINFO,
            "downwardAPI": {"items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
            ]},
        })
    containers = spec.get("containers")
    for i, container in enumerate(containers if isinstance(containers, list) else []):
        if not isinstance(container, dict):
            continue
        mounts = container.get("volumeMounts")
        mounts = mounts if isinstance(mounts, list) else []
        if any(isinstance(m, dict) and m.get("name") == PODNETINFO for m in mounts):
            continue
        if any(isinstance(m, dict) and m.get("mountPath") == PODNETINFO_PATH for m in mounts):
            out.warnings.append(Problem(
                f"spec.containers[{i}].volumeMounts",
                f"already uses {PODNETINFO_PATH} (got another volume there); podnetinfo not mounted",
            ))
            continue
        container = _owned(out, _owned(out, spec, "containers", list), i)
        _owned(out, container, "volumeMounts", list).append(
            {"name": PODNETINFO, "mountPath": PODNETINFO_PATH, "readOnly": True}
        )
