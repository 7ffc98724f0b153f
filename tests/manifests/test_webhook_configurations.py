"""netplex-mutating and netplex-validating: the fields the issue requires, and that they
agree with the Service and with what the webhook handler actually judges."""

from __future__ import annotations

import re

import pytest

from tests.manifests.rendering import (
    FAILURE_POLICIES,
    MANIFESTS,
    NAMESPACE,
    WITH_WEBHOOK,
    find,
    rendered,
)
from webhook.admission import GROUPS

MUTATING = ("MutatingWebhookConfiguration", "netplex-mutating")
VALIDATING = ("ValidatingWebhookConfiguration", "netplex-validating")

# (API group, resource) -> kind, for the resources netplex registers for.
KINDS = {
    ("", "pods"): "Pod",
    ("", "namespaces"): "Namespace",
    ("", "replicationcontrollers"): "ReplicationController",
    ("k8s.cni.cncf.io", "network-attachment-definitions"): "NetworkAttachmentDefinition",
    ("apps", "deployments"): "Deployment",
    ("apps", "replicasets"): "ReplicaSet",
    ("apps", "statefulsets"): "StatefulSet",
    ("apps", "daemonsets"): "DaemonSet",
    ("batch", "jobs"): "Job",
    ("batch", "cronjobs"): "CronJob",
}


def hooks(variant: str) -> list[tuple[str, dict]]:
    out = []
    for kind, name in (MUTATING, VALIDATING):
        out.extend((kind, hook) for hook in find(rendered(variant), kind, name)["webhooks"])
    return out


def registrations(hook: dict) -> set[tuple[str, str, str]]:
    """(group, resource, operation) triples a webhook entry's rules match."""
    out = set()
    for rule in hook["rules"]:
        assert rule["apiVersions"] == ["v1"], f"{hook['name']}: {rule}"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for operation in rule["operations"]:
                    out.add((group, resource, operation))
    return out


@pytest.mark.parametrize("variant", WITH_WEBHOOK)
def test_every_webhook_has_the_required_settings(variant):
    for kind, hook in hooks(variant):
        name = hook["name"]
        assert hook["admissionReviewVersions"] == ["v1"], name
        assert hook["sideEffects"] == "None", name
        assert 1 <= hook["timeoutSeconds"] <= 5, name
        assert hook["matchPolicy"] == "Equivalent", name
        assert hook["failurePolicy"] == FAILURE_POLICIES[name], name
        assert hook.get("objectSelector") is None, f"{name}: filtering is done by matchConditions"
        if kind == "MutatingWebhookConfiguration":
            assert hook["reinvocationPolicy"] == "IfNeeded", name


def test_the_webhook_entries_are_exactly_the_documented_ones():
    assert sorted(hook["name"] for _, hook in hooks("base")) == sorted(FAILURE_POLICIES)


@pytest.mark.parametrize("variant", WITH_WEBHOOK)
def test_every_webhook_skips_kube_system_and_netplex_system(variant):
    for _, hook in hooks(variant):
        selector = hook["namespaceSelector"]
        assert selector.get("matchLabels") is None, hook["name"]
        (expression,) = selector["matchExpressions"]
        assert expression["key"] == "kubernetes.io/metadata.name", hook["name"]
        assert expression["operator"] == "NotIn", hook["name"]
        assert sorted(expression["values"]) == ["kube-system", NAMESPACE], hook["name"]


@pytest.mark.parametrize("variant", WITH_WEBHOOK)
def test_every_webhook_calls_the_netplex_service_on_its_path(variant):
    service = find(rendered(variant), "Service", "netplex-webhook")
    (port,) = service["spec"]["ports"]
    for kind, hook in hooks(variant):
        target = hook["clientConfig"]["service"]
        assert target["name"] == service["metadata"]["name"], hook["name"]
        assert target["namespace"] == service["metadata"]["namespace"], hook["name"]
        assert target["port"] == port["port"], hook["name"]
        assert target["path"] == ("/mutate" if kind.startswith("Mutating") else "/validate"), hook["name"]
        assert "url" not in hook["clientConfig"], hook["name"]


def test_mutation_is_registered_for_pod_create_only():
    (_, hook), = [(k, h) for k, h in hooks("base") if k.startswith("Mutating")]
    assert registrations(hook) == {("", "pods", "CREATE")}
    assert "matchConditions" not in hook, "pods without annotations get namespace default networks too"


def test_validation_covers_exactly_the_resources_and_operations_of_the_issue():
    covered = set()
    for kind, hook in hooks("base"):
        if kind.startswith("Validating"):
            covered |= registrations(hook)
    expected = {(g, r, op) for (g, r) in KINDS for op in ("CREATE", "UPDATE")}
    assert covered == expected


def test_validation_registers_every_kind_the_handler_judges_and_nothing_else():
    judged = {(group, kind) for kind, group in GROUPS.items()}
    registered = set()
    for kind, hook in hooks("base"):
        if kind.startswith("Validating"):
            registered |= {(g, KINDS[(g, r)]) for g, r, _ in registrations(hook)}
    assert registered == judged


def test_pod_rules_have_webhook_entries_of_their_own():
    for _, hook in hooks("base"):
        resources = {r for _, r, _ in registrations(hook)}
        if "pods" in resources:
            assert resources == {"pods"}, f"{hook['name']} mixes pods with {resources - {'pods'} }"
    validating = [h for k, h in hooks("base") if k.startswith("Validating")]
    pod_ops = {h["name"]: {op for _, r, op in registrations(h) if r == "pods"} for h in validating}
    assert pod_ops["pods.validate.netplex.io"] == {"CREATE"}
    assert pod_ops["pod-updates.validate.netplex.io"] == {"UPDATE"}


def test_rule_scopes_match_the_resources():
    for _, hook in hooks("base"):
        for rule in hook["rules"]:
            expected = "Cluster" if rule["resources"] == ["namespaces"] else "Namespaced"
            assert rule["scope"] == expected, f"{hook['name']}: {rule}"


def test_every_failure_policy_is_explained_in_the_yaml_comments():
    validating = (MANIFESTS / "webhook" / "validating.yaml").read_text()
    table = [line for line in validating.splitlines() if line.startswith("#   ")]
    for name, policy in FAILURE_POLICIES.items():
        if ".validate." not in name:
            continue
        short = name.removesuffix(".netplex.io")
        lines = [line for line in table if re.search(rf"#\s+{re.escape(short)}\s", line)]
        assert len(lines) == 1, f"validating.yaml's table has no line for {short}"
        assert policy in lines[0].split(), f"validating.yaml says {lines[0]!r} for {name} ({policy})"
    assert "# Why Fail where it is Fail" in validating
    assert "# Why workloads are Ignore" in validating
    mutating = (MANIFESTS / "webhook" / "mutating.yaml").read_text()
    assert "# failurePolicy: Ignore." in mutating


def test_the_base_sets_no_ca_bundle_for_the_webhook_to_overwrite():
    for _, hook in hooks("base"):
        assert "caBundle" not in hook["clientConfig"], hook["name"]


def test_the_self_signed_webhook_may_patch_exactly_these_two_configurations():
    """The names the RBAC allows patching are the configurations' names, and the CA
    Secret's name is the one the webhook's --self-signed mode uses."""
    from certs import kube

    objects = rendered("base")
    role = find(objects, "ClusterRole", "netplex-webhook-self-signed")
    allowed = {(rule["resources"][0], name) for rule in role["rules"] for name in rule["resourceNames"]}
    assert allowed == {("mutatingwebhookconfigurations", MUTATING[1]),
                       ("validatingwebhookconfigurations", VALIDATING[1])}
    assert {name for _, name in kube.WEBHOOK_CONFIGURATIONS} == {MUTATING[1], VALIDATING[1]}
    secrets = find(objects, "Role", "netplex-webhook-self-signed")["rules"]
    assert [r["resourceNames"] for r in secrets if "resourceNames" in r] == [[kube.CA_SECRET]]
    assert (kube.NAMESPACE, kube.SERVICE) == (NAMESPACE, "netplex-webhook")
