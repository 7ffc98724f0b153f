"""Least privilege: no wildcards anywhere, and exactly the verbs each component uses."""

from __future__ import annotations

import pytest

from tests.manifests.rendering import (
    ALL,
    NAMESPACE,
    THICK_VARIANTS,
    THIN_VARIANTS,
    find,
    of_kind,
    ref,
    rendered,
)

# (apiGroup, resource, resourceNames or None) -> verbs
THIN_NODE = {  # the per-call plugin: one GET per pod and NAD, one status patch
    ("", "pods", None): {"get"},
    ("", "pods/status", None): {"patch"},
    ("k8s.cni.cncf.io", "network-attachment-definitions", None): {"get"},
}
NODE = {  # the daemon: the same, NAD and (its node's) pod list+watch caches, and Events on the pod
    **THIN_NODE,
    ("", "pods", None): {"get", "list", "watch"},
    ("k8s.cni.cncf.io", "network-attachment-definitions", None): {"get", "list", "watch"},
    ("", "events", None): {"create"},
}
WEBHOOK = {
    ("k8s.cni.cncf.io", "network-attachment-definitions", None): {"get", "list", "watch"},
    ("", "namespaces", None): {"get", "list", "watch"},
}
SELF_SIGNED_CLUSTER = {
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", ("netplex-mutating",)): {"get", "patch"},
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations", ("netplex-validating",)): {"get", "patch"},
}
SELF_SIGNED_SECRETS = {
    ("", "secrets", ("netplex-webhook-ca",)): {"get"},
    ("", "secrets", None): {"create"},  # a create cannot be limited by name
}


def flatten(role: dict) -> dict[tuple[str, str, tuple[str, ...] | None], set[str]]:
    out: dict[tuple[str, str, tuple[str, ...] | None], set[str]] = {}
    for rule in role["rules"]:
        assert "nonResourceURLs" not in rule, ref(role)
        names = tuple(rule["resourceNames"]) if rule.get("resourceNames") else None
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource, names), set()).update(rule["verbs"])
    return out


@pytest.mark.parametrize("variant", ALL)
def test_no_rbac_rule_has_a_wildcard(variant):
    roles = of_kind(rendered(variant), "ClusterRole") + of_kind(rendered(variant), "Role")
    assert roles
    for role in roles:
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                values = rule.get(field) or []
                assert not any("*" in v for v in values), f"{ref(role)}: {field} {values}"
        assert "aggregationRule" not in role, ref(role)


@pytest.mark.parametrize("variant", THICK_VARIANTS)
def test_the_daemon_may_read_pods_and_nads_patch_pod_status_and_create_events_only(variant):
    assert flatten(find(rendered(variant), "ClusterRole", "netplex-node")) == NODE


@pytest.mark.parametrize("variant", THIN_VARIANTS)
def test_the_thin_plugin_may_get_pods_and_nads_and_patch_pod_status_only(variant):
    """No daemon: no Events, no NAD or pod cache, so neither create on events nor list/watch."""
    assert flatten(find(rendered(variant), "ClusterRole", "netplex-node")) == THIN_NODE


@pytest.mark.parametrize("variant", ["base", "cert-manager", "thin", "cert-manager+thin"])
def test_the_webhook_may_read_and_watch_nads_and_namespaces_only(variant):
    assert flatten(find(rendered(variant), "ClusterRole", "netplex-webhook")) == WEBHOOK


def test_the_self_signed_webhook_may_touch_only_its_ca_secret_and_its_configurations():
    objects = rendered("base")
    assert flatten(find(objects, "ClusterRole", "netplex-webhook-self-signed")) == SELF_SIGNED_CLUSTER
    role = find(objects, "Role", "netplex-webhook-self-signed")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert flatten(role) == SELF_SIGNED_SECRETS


def test_with_cert_manager_the_webhook_has_no_secret_or_configuration_rights():
    for obj in rendered("cert-manager"):
        if obj["kind"] in ("Role", "ClusterRole"):
            resources = {r for rule in obj["rules"] for r in rule["resources"]}
            assert not resources & {"secrets", "mutatingwebhookconfigurations",
                                    "validatingwebhookconfigurations"}, ref(obj)


@pytest.mark.parametrize("variant", ALL)
def test_each_binding_grants_its_role_to_its_own_service_account_only(variant):
    objects = rendered(variant)
    bindings = of_kind(objects, "ClusterRoleBinding") + of_kind(objects, "RoleBinding")
    accounts = {o["metadata"]["name"] for o in of_kind(objects, "ServiceAccount")}
    for binding in bindings:
        role_kind = binding["roleRef"]["kind"]
        find(objects, role_kind, binding["roleRef"]["name"])  # the role exists in the same rendering
        (subject,) = binding["subjects"]
        assert subject["kind"] == "ServiceAccount", ref(binding)
        assert subject["namespace"] == NAMESPACE, ref(binding)
        assert subject["name"] in accounts, ref(binding)
        component = "node" if binding["roleRef"]["name"] == "netplex-node" else "webhook"
        assert subject["name"] == f"netplex-{component}", ref(binding)


@pytest.mark.parametrize("variant", ALL)
def test_pods_run_as_their_own_service_account(variant):
    objects = rendered(variant)
    for obj in of_kind(objects, "Deployment") + of_kind(objects, "DaemonSet"):
        account = obj["spec"]["template"]["spec"]["serviceAccountName"]
        assert account == obj["metadata"]["name"], ref(obj)
        find(objects, "ServiceAccount", account)
