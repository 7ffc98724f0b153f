"""A stand-in for the API server's webhook dispatch, with a Python CEL implementation.

:func:`called` plays the API server's part for one AdmissionReview ``request`` (built by
:func:`review`): it keeps the webhook entries whose rules and namespaceSelector match,
then evaluates their matchConditions against ``object``/``oldObject``/``request`` with
cel-python and keeps the entries whose conditions are all true. An evaluation error is
raised as :class:`MatchConditionError` (in a cluster it would count as a webhook failure,
with failurePolicy deciding).

cel-python is not cel-go (the API server's CEL): it lets ``has()`` on a null operand pass
and evaluates both sides of ``&&``, so a method call on a null value (``null.exists(...)``)
raises even behind ``false &&``. The manifests guard such calls with a ternary, which
both evaluate lazily.
"""

from __future__ import annotations

import uuid
from typing import Any

import celpy

from tests.manifests.rendering import find, rendered

RESOURCES = {  # kind -> (group, version, resource)
    "Pod": ("", "v1", "pods"),
    "Namespace": ("", "v1", "namespaces"),
    "NetworkAttachmentDefinition": ("k8s.cni.cncf.io", "v1", "network-attachment-definitions"),
    "Deployment": ("apps", "v1", "deployments"),
    "ReplicaSet": ("apps", "v1", "replicasets"),
    "StatefulSet": ("apps", "v1", "statefulsets"),
    "DaemonSet": ("apps", "v1", "daemonsets"),
    "Job": ("batch", "v1", "jobs"),
    "CronJob": ("batch", "v1", "cronjobs"),
    "ReplicationController": ("", "v1", "replicationcontrollers"),
}

_ENV = celpy.Environment()
_PROGRAMS: dict[str, Any] = {}


class MatchConditionError(AssertionError):
    pass


def evaluate(expression: str, request: dict[str, Any]) -> bool:
    program = _PROGRAMS.get(expression)
    if program is None:
        program = _PROGRAMS[expression] = _ENV.program(_ENV.compile(expression))
    activation = {
        "object": celpy.json_to_cel(request.get("object")),
        "oldObject": celpy.json_to_cel(request.get("oldObject")),
        "request": celpy.json_to_cel(request),
    }
    try:
        result = program.evaluate(activation)
    except Exception as exc:  # cel-python raises CELEvalError and plain TypeErrors
        raise MatchConditionError(f"cannot be evaluated: {type(exc).__name__}: {exc}") from exc
    if isinstance(result, celpy.CELEvalError):
        raise MatchConditionError(f"cannot be evaluated: {result}")
    if not isinstance(result, celpy.celtypes.BoolType):
        raise MatchConditionError(f"is not a bool (got {type(result).__name__} {str(result)!r})")
    return bool(result)


def _selected(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        present, value = expr["key"] in labels, labels.get(expr["key"])
        ok = {
            "In": present and value in expr.get("values", []),
            "NotIn": not present or value not in expr.get("values", []),
            "Exists": present,
            "DoesNotExist": not present,
        }[expr["operator"]]
        if not ok:
            return False
    return True


def _rule_matches(rule: dict[str, Any], request: dict[str, Any]) -> bool:
    resource = request["resource"]
    return (
        resource["group"] in rule["apiGroups"]
        and resource["version"] in rule["apiVersions"]
        and resource["resource"] in rule["resources"]
        and request["operation"] in rule["operations"]
    )


def called(request: dict[str, Any], variant: str = "base") -> list[str]:
    """Names of the webhook entries the API server would call for ``request``."""
    objects = rendered(variant)
    configs = [find(objects, "MutatingWebhookConfiguration", "netplex-mutating"),
               find(objects, "ValidatingWebhookConfiguration", "netplex-validating")]
    if request["kind"]["kind"] == "Namespace":
        namespace = (request.get("object") or request.get("oldObject"))["metadata"]["name"]
    else:
        namespace = request["namespace"]
    out = []
    for config in configs:
        for hook in config["webhooks"]:
            if not any(_rule_matches(rule, request) for rule in hook["rules"]):
                continue
            if not _selected(hook["namespaceSelector"], {"kubernetes.io/metadata.name": namespace}):
                continue
            results = []
            for condition in hook.get("matchConditions", []):
                try:
                    results.append(evaluate(condition["expression"], request))
                except MatchConditionError as exc:
                    raise MatchConditionError(f"{hook['name']} matchCondition {condition['name']} {exc}") from exc
            if all(results):
                out.append(hook["name"])
    return out


def review(kind: str, operation: str, obj: Any, old: Any = None, namespace: str = "default") -> dict[str, Any]:
    """An AdmissionReview ``request`` as the API server sends it."""
    group, version, resource = RESOURCES[kind]
    return {
        "uid": str(uuid.uuid4()),
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": resource},
        "requestKind": {"group": group, "version": version, "kind": kind},
        "requestResource": {"group": group, "version": version, "resource": resource},
        "name": "x",
        "namespace": "" if kind == "Namespace" else namespace,
        "operation": operation,
        "userInfo": {"username": "tester", "groups": ["system:authenticated"]},
        "object": obj,
        "oldObject": old,
        "dryRun": False,
        "options": None,
    }
