"""The annotations netplex reads from a NAD: its node label and its device-plugin resources.

Both end up in a pod: the mutating webhook adds one unit of each resource to the pod's
containers and (with ``injectNodeSelector``) the node label to ``spec.nodeSelector``. A
value the API server would refuse there (``rack: "r1=a"``, a resource named ``sriov``)
must never reach the patch, because the API server's refusal names the pod's field, not
the NAD it came from. So the values are checked here, once, with the Kubernetes rules
(``plugin.model.names``): a NAD is rejected at admission, and a pod that selects a NAD
admitted before these rules existed is denied at ``/validate`` naming the NAD.

``k8s.v1.cni.cncf.io/nodeSelector`` is read exactly as the network-resources-injector
reads it: the whole value split on ``=``; two parts are a key and a value, one part is a
key with the empty value, more than two is refused ("more than one label"); key and value
are trimmed. So a NAD carries one node label; ``a=b,c=d`` is refused, not two labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from plugin.model import names
from plugin.model.problems import ANNOTATION_PATH, Problem, show

NODE_SELECTOR_ANNOTATION = "k8s.v1.cni.cncf.io/nodeSelector"
RESOURCE_NAME_ANNOTATION = "k8s.v1.cni.cncf.io/resourceName"

NODE_SELECTOR_FORM = (
    'write one node label as key=value, e.g. "rack=r1", or a bare key for the empty value '
    "(one label per NAD, as the network-resources-injector reads it)"
)


@dataclass(frozen=True, slots=True)
class NadAnnotations:
    """What one NAD asks of the pods that select it, and what is wrong with it.

    ``problems`` are keyed by annotation: (annotation key, message without the path), so
    a NAD's own admission puts them under ``metadata.annotations[<key>]`` and a pod's
    validation under the element that selects the NAD.
    """

    node_label: tuple[str, str] | None  # (key, value); None: no annotation or invalid
    resources: tuple[str, ...]  # valid extended resource names, one per configured key
    problems: tuple[tuple[str, str], ...]
    warnings: tuple[tuple[str, str], ...]

    def findings(self) -> tuple[list[Problem], list[Problem]]:
        """(errors, warnings) as problems at the NAD's own annotation paths."""
        def at(key: str) -> str:
            return ANNOTATION_PATH.format(key=key)

        return [Problem(at(k), m) for k, m in self.problems], [Problem(at(k), m) for k, m in self.warnings]


def read_nad_annotations(annotations: Mapping[str, Any], resource_keys: tuple[str, ...]) -> NadAnnotations:
    """Check the node selector and the configured resource-name annotations of one NAD."""
    problems: list[tuple[str, str]] = []
    warnings: list[tuple[str, str]] = []
    node_label: tuple[str, str] | None = None
    raw = annotations.get(NODE_SELECTOR_ANNOTATION)
    if raw is not None:
        node_label, problem = parse_node_selector(raw)
        if problem is not None:
            problems.append((NODE_SELECTOR_ANNOTATION, problem))
    resources: list[str] = []
    for key in dict.fromkeys(resource_keys):
        value = annotations.get(key)
        if value is None:
            continue
        if isinstance(value, str) and value.strip() == "":
            warnings.append((key, (
                f"is empty (got {show(value)}), so pods selecting this network get no device "
                "resource from it; name the device plugin's resource, e.g. "
                '"intel.com/sriov_netdevice", or remove the annotation'
            )))
            continue
        problem = names.check_extended_resource_name(value)
        if problem is None:
            resources.append(value)
        else:
            problems.append((key, _invalid("resource name", value, problem)))
    return NadAnnotations(node_label, tuple(resources), tuple(problems), tuple(warnings))


def parse_node_selector(raw: object) -> tuple[tuple[str, str] | None, str | None]:
    """(key, value) from a nodeSelector annotation value, or (None, what is wrong)."""
    if not isinstance(raw, str):
        return None, f"must be a string (got {show(raw)}); {NODE_SELECTOR_FORM}"
    parts = raw.split("=")
    if len(parts) > 2:
        return None, f"has more than one '=' (got {show(raw)}); {NODE_SELECTOR_FORM}"
    key = parts[0].strip()
    value = parts[1].strip() if len(parts) == 2 else ""
    problem = names.check_label_key(key)
    if problem is not None:
        return None, _invalid("label key", raw, problem)
    problem = names.check_label_value(value)
    if problem is not None:
        return None, _invalid("label value", raw, problem)
    return (key, value), None


def _invalid(what: str, raw: object, problem: str) -> str:
    """``has an invalid <what> (got <raw>): <the names rule's message>``."""
    return f"has an invalid {what} (got {show(raw)}): {problem}"
