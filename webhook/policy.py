"""Who may use which networks: the cluster policy file and the per-namespace annotations.

Two layers, both optional:

- the **cluster policy** (YAML file mounted from a ConfigMap, ``--policy FILE``): how strict
  the webhook is (missing NADs, pod updates), Multus-style namespace isolation, the
  networks every pod gets, and the device-plugin resource injection settings;
- the **namespace policy** (``netplex.io/*`` annotations on a Namespace, set by a cluster
  admin with ``kubectl annotate namespace``): default networks, an allow-list of
  ``namespace/name`` glob patterns, a cap on the number of networks, and whether
  violations are denied or only warned about.

Parsing is pure: an annotation typo becomes a :class:`plugin.model.problems.Problem` that the
webhook uses to reject the Namespace change, so a broken policy never reaches a pod.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from plugin.model import limits, names, selection
from plugin.model.problems import Collector, Findings, show

PREFIX = "netplex.io/"
DEFAULT_NETWORKS = PREFIX + "default-networks"
ALLOWED_NETWORKS = PREFIX + "allowed-networks"
MAX_NETWORKS = PREFIX + "max-networks"
POLICY_MODE = PREFIX + "policy-mode"
SKIP_DEFAULT_NETWORKS = PREFIX + "skip-default-networks"

NAMESPACE_KEYS = (DEFAULT_NETWORKS, ALLOWED_NETWORKS, MAX_NETWORKS, POLICY_MODE)
POD_KEYS = (SKIP_DEFAULT_NETWORKS,)

_PATTERN_PART_RE = re.compile(r"^[a-z0-9*?-]+$")


class ClusterPolicy(BaseModel):
    """The webhook's policy file. Every key is optional; the defaults are the strict ones."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    missing_networks: Literal["deny", "warn", "ignore"] = Field("deny", alias="missingNetworks")
    pod_network_update: Literal["deny", "warn"] = Field("deny", alias="podNetworkUpdate")
    namespace_isolation: bool = Field(False, alias="namespaceIsolation")
    global_namespaces: tuple[str, ...] = Field(("default",), alias="globalNamespaces")
    multus_namespace: str = Field("kube-system", alias="multusNamespace")
    default_networks: str | None = Field(None, alias="defaultNetworks")
    system_namespaces: tuple[str, ...] = Field(("kube-system",), alias="systemNamespaces")
    resource_name_keys: tuple[str, ...] = Field(
        ("k8s.v1.cni.cncf.io/resourceName",), alias="resourceNameKeys"
    )
    resource_container: str | None = Field(None, alias="resourceContainer")
    resource_all_containers: bool = Field(False, alias="resourceAllContainers")
    honor_resources: bool = Field(False, alias="honorResources")
    inject_podnetinfo: bool = Field(False, alias="injectPodnetinfo")
    inject_node_selector: bool = Field(False, alias="injectNodeSelector")


def parse_cluster_policy(data: object, *, source: str = "policy") -> tuple[ClusterPolicy, list[str]]:
    """Build the policy from decoded YAML; the messages name each bad key and the fix."""
    if data is None:
        return ClusterPolicy(), []
    if not isinstance(data, Mapping):
        return ClusterPolicy(), [f"{source}: must be a mapping of policy keys (got {show(data)})"]
    too_deep = limits.depth_problem(limits.value_depth(data))
    if too_deep is not None:  # before pydantic, which validates recursively
        return ClusterPolicy(), [f"{source}: {too_deep}; a policy file is a flat mapping of the keys listed in the README"]
    raw = dict(data)
    globals_value = raw.get("globalNamespaces")
    if isinstance(globals_value, str):  # Multus spells it as a comma list
        raw["globalNamespaces"] = [p.strip() for p in globals_value.split(",") if p.strip()]
    try:
        policy = ClusterPolicy.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            problems.append(f"{source}: {where}: {err['msg']} (got {show(err.get('input'))})")
        return ClusterPolicy(), problems
    problems = []
    if policy.default_networks is not None:
        parsed = selection.parse_networks(
            policy.default_networks, "default", path=f"{source}: defaultNetworks"
        )
        problems.extend(str(p) for p in parsed.errors)
    return policy, problems


def load_cluster_policy(path: Path) -> tuple[ClusterPolicy, list[str]]:
    """Read the policy file; an unreadable or invalid file is reported, never half-applied.

    YAML is read with ``webhook.documents``' loader (libyaml: it refuses more than 1,000
    levels itself, where PyYAML's pure-Python composer recurses), then depth-checked."""
    from webhook import documents

    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        return ClusterPolicy(), [f"{path}: cannot read policy: {exc.strerror or exc}"]
    except UnicodeDecodeError as exc:
        return ClusterPolicy(), [f"{path}: cannot read policy: {documents.utf8_problem(exc)}"]
    try:
        data = documents.load_yaml(text)
    except documents.YAMLProblem as exc:
        return ClusterPolicy(), [f"{path}: cannot read policy: {exc}"]
    return parse_cluster_policy(data, source=str(path))


@dataclass(frozen=True, slots=True)
class NamespacePolicy:
    """The ``netplex.io/*`` policy of one namespace, parsed."""

    namespace: str
    default_networks: str | None = None
    allowed_patterns: tuple[str, ...] | None = None  # None = no allow-list
    max_networks: int | None = None
    mode: Literal["enforce", "warn"] = "enforce"
    findings: Findings = field(default_factory=Findings)

    def allows(self, ref: str) -> bool:
        """Whether ``namespace/name`` matches the allow-list (always, without one)."""
        if self.allowed_patterns is None:
            return True
        return any(fnmatch.fnmatchcase(ref, pattern) for pattern in self.allowed_patterns)


def annotation_path(key: str, prefix: str = "metadata") -> str:
    return f"{prefix}.annotations[{key}]"


def parse_namespace_policy(namespace: str, annotations: Mapping[str, Any] | None) -> NamespacePolicy:
    """Parse a Namespace's policy annotations; problems explain each typo."""
    annotations = annotations or {}
    out = Collector()
    default_networks: str | None = None
    allowed: tuple[str, ...] | None = None
    max_networks: int | None = None
    mode: Literal["enforce", "warn"] = "enforce"

    for key, value in annotations.items():
        if not isinstance(key, str) or not key.startswith(PREFIX):
            continue
        path = annotation_path(key)
        if key not in NAMESPACE_KEYS:
            hint = names.closest(key, NAMESPACE_KEYS)
            known = ", ".join(NAMESPACE_KEYS)
            did = f'did you mean "{hint}"? ' if hint else ""
            out.error(path, f"unknown netplex policy annotation (got {show(key)}); {did}known keys: {known}")
            continue
        if not isinstance(value, str):
            out.error(path, f"must be a string (got {show(value)})")
            continue
        if key == DEFAULT_NETWORKS:
            parsed = selection.parse_networks(value, namespace, path=path)
            out.errors.extend(parsed.errors)
            out.warnings.extend(parsed.warnings)
            if parsed.ok:
                default_networks = value
        elif key == ALLOWED_NETWORKS:
            allowed = _parse_patterns(value, path, out)
        elif key == MAX_NETWORKS:
            text = value.strip()
            count = limits.parse_count(text)
            if count is not None:
                max_networks = count
            else:
                out.error(
                    path,
                    f"{limits.count_problem(text)} (got {show(value)}); use a count such as \"2\" "
                    "(\"0\" forbids secondary networks)",
                )
        elif key == POLICY_MODE:
            if value in ("enforce", "warn"):
                mode = value  # type: ignore[assignment]
            else:
                out.error(path, f"is not a policy mode (got {show(value)}); use \"enforce\" or \"warn\"")
    return NamespacePolicy(
        namespace=namespace,
        default_networks=default_networks,
        allowed_patterns=allowed,
        max_networks=max_networks,
        mode=mode,
        findings=out.freeze(),
    )


def check_namespace_annotations(namespace: str, annotations: Mapping[str, Any] | None) -> Findings:
    """Findings for a Namespace object's policy annotations (errors reject the change)."""
    return parse_namespace_policy(namespace, annotations).findings


def _parse_patterns(value: str, path: str, out: Collector) -> tuple[str, ...] | None:
    patterns: list[str] = []
    items = [item.strip() for item in value.split(",")]
    if value.strip() == "":
        out.error(
            path,
            "is empty; list the networks pods may use as namespace/name patterns, e.g. "
            "\"tenant-a/*,shared/macvlan-*\", or remove the annotation to allow all",
        )
        return None
    for i, item in enumerate(items):
        where = f"{path}[{i}]"
        if item == "":
            out.error(where, "is empty (a trailing or double comma?); remove it")
            continue
        parts = item.split("/")
        if len(parts) != 2 or not all(parts):
            example = f"{item}" if "/" in item else f"<namespace>/{item}"
            out.error(
                where,
                f"is not a namespace/name pattern (got {show(item)}); write it as \"{example}\", "
                "with * and ? as wildcards",
            )
            continue
        bad = [p for p in parts if _PATTERN_PART_RE.match(p) is None]
        if bad:
            out.error(
                where,
                f"has characters a NAD reference cannot contain (got {show(item)}); use lowercase "
                "letters, digits, '-' and the wildcards * and ?",
            )
            continue
        patterns.append(item)
    return tuple(patterns)


def check_pod_annotations(annotations: Mapping[str, Any] | None, prefix: str = "metadata") -> Findings:
    """A pod's own ``netplex.io/*`` annotations (only the opt-out exists)."""
    out = Collector()
    for key, value in (annotations or {}).items():
        if not isinstance(key, str) or not key.startswith(PREFIX):
            continue
        path = annotation_path(key, prefix)
        if key == SKIP_DEFAULT_NETWORKS:
            if value not in ("true", "false"):
                out.error(path, f'must be "true" or "false" (got {show(value)})')
        elif key in NAMESPACE_KEYS:
            out.warn(
                path,
                "is a Namespace policy annotation and has no effect on a pod; set it with "
                f"kubectl annotate namespace <ns> {key}=...",
            )
        else:
            hint = names.closest(key, POD_KEYS + NAMESPACE_KEYS)
            did = f' did you mean "{hint}"?' if hint else ""
            out.warn(path, f"unknown netplex annotation (got {show(key)}), ignored;{did}")
    return out.freeze()


def skips_default_networks(annotations: Mapping[str, Any] | None) -> bool:
    return (annotations or {}).get(SKIP_DEFAULT_NETWORKS) == "true"
