"""The webhook's decision functions (shared with netplexctl check)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from webhook import policy, validators
from webhook.index import MemoryIndex, index_nad


def nad(name: str, namespace: str = "default", config: Any = None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    if config is None:
        config = {"cniVersion": "0.3.1", "type": "macvlan", "master": "eth0",
                  "ipam": {"type": "host-local", "subnet": "10.1.0.0/24"}}
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        meta["annotations"] = annotations
    return {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": meta,
        "spec": {"config": config if isinstance(config, str) else json.dumps(config)},
    }


def pod(networks: str | None = None, namespace: str = "default", **extra: str) -> dict[str, Any]:
    annotations = dict(extra)
    if networks is not None:
        annotations["k8s.v1.cni.cncf.io/networks"] = networks
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": namespace, "annotations": annotations},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
    }


def namespace(name: str, **annotations: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "annotations": annotations}}


@pytest.fixture
def index() -> MemoryIndex:
    return MemoryIndex([
        nad("macvlan-conf"),
        nad("bridge-conf"),
        nad("shared-net", "shared"),
        nad("with-ips", config={"cniVersion": "0.3.1", "type": "macvlan", "master": "eth0",
                                "capabilities": {"ips": True}, "ipam": {"type": "static"}}),
        nad("from-disk", config=""),
        nad("default-net", "kube-system"),
    ])


def errors(findings: Any) -> list[str]:
    return [str(p) for p in findings.errors]


def test_pod_selecting_existing_networks_is_clean(index: MemoryIndex) -> None:
    findings = validators.check_object(pod("macvlan-conf, shared/shared-net@data0"), "default",
                                       validators.Context(index))
    assert findings.errors == () and findings.warnings == ()


def test_pod_without_annotations_is_clean(index: MemoryIndex) -> None:
    assert validators.check_object(pod(), "default", validators.Context(index)).errors == ()


def test_unknown_network_is_rejected_with_suggestion(index: MemoryIndex) -> None:
    findings = validators.check_object(pod("macvlan-cnf"), "default", validators.Context(index))
    assert errors(findings) == [
        'metadata.annotations[k8s.v1.cni.cncf.io/networks][0].name: no NetworkAttachmentDefinition '
        '"macvlan-cnf" in namespace "default"; did you mean "macvlan-conf"?'
    ]


def test_unknown_network_without_near_name_lists_what_exists(index: MemoryIndex) -> None:
    findings = validators.check_object(pod("zzz"), "default", validators.Context(index))
    assert errors(findings)[0].endswith(
        "networks in that namespace: bridge-conf, from-disk, macvlan-conf, with-ips"
    )


def test_unknown_network_in_empty_namespace_says_so(index: MemoryIndex) -> None:
    findings = validators.check_object(pod("nope/x"), "default", validators.Context(index))
    assert errors(findings)[0].endswith(
        'no NetworkAttachmentDefinition "x" in namespace "nope"; that namespace has no '
        "NetworkAttachmentDefinitions; create one first"
    )


def test_missing_network_policy_warn_and_ignore(index: MemoryIndex) -> None:
    warn = validators.Context(index, policies_from(missingNetworks="warn"))
    findings = validators.check_object(pod("zzz"), "default", warn)
    assert findings.errors == ()
    assert findings.warnings[0].message.endswith("(the pod will not start until it exists)")
    ignore = validators.Context(index, policies_from(missingNetworks="ignore"))
    findings = validators.check_object(pod("zzz"), "default", ignore)
    assert findings.errors == () and findings.warnings == ()


def test_missing_network_is_confirmed_once_before_denying(index: MemoryIndex) -> None:
    asked: list[tuple[str, str]] = []

    def confirm(ns: str, name: str) -> Any:
        asked.append((ns, name))
        return index_nad(nad(name, ns)) if name == "just-created" else None

    ctx = validators.Context(index, confirm_missing=confirm)
    assert validators.check_object(pod("just-created"), "default", ctx).errors == ()
    assert len(validators.check_object(pod("still-missing"), "default", ctx).errors) == 1
    assert asked == [("default", "just-created"), ("default", "still-missing")]


def policies_from(**raw: Any) -> policy.ClusterPolicy:
    parsed, problems = policy.parse_cluster_policy(raw)
    assert problems == []
    return parsed


def test_namespace_isolation_allows_own_and_global_namespaces(index: MemoryIndex) -> None:
    ctx = validators.Context(index, policies_from(namespaceIsolation=True, globalNamespaces="default"))
    assert validators.check_object(pod("default/macvlan-conf", namespace="default"), "default", ctx).errors == ()
    findings = validators.check_object(pod("shared/shared-net"), "default", ctx)
    assert errors(findings) == [
        "metadata.annotations[k8s.v1.cni.cncf.io/networks][0].namespace: refers to another namespace "
        'while namespace isolation is on (got "shared"); pods in "default" may use networks from: '
        "default"
    ]


def test_namespace_isolation_lets_tenants_reach_global_namespaces(index: MemoryIndex) -> None:
    ctx = validators.Context(index, policies_from(namespaceIsolation=True, globalNamespaces="shared"))
    assert validators.check_object(pod("shared/shared-net", namespace="tenant"), "tenant", ctx).errors == ()
    findings = validators.check_object(pod("default/macvlan-conf", namespace="tenant"), "tenant", ctx)
    assert 'pods in "tenant" may use networks from: tenant, shared' in errors(findings)[0]


def test_capability_request_without_a_declaring_plugin_is_rejected(index: MemoryIndex) -> None:
    value = '[{"name": "macvlan-conf", "ips": ["10.1.0.5/24"], "mac": "02:00:00:00:00:01"}]'
    findings = validators.check_object(pod(value), "default", validators.Context(index))
    assert [p.path for p in findings.errors] == [
        "metadata.annotations[k8s.v1.cni.cncf.io/networks][0].ips",
        "metadata.annotations[k8s.v1.cni.cncf.io/networks][0].mac",
    ]
    assert 'has no plugin that declares the "ips" capability' in findings.errors[0].message
    assert '"capabilities": {"ips": true}' in findings.errors[0].message


def test_capability_request_with_a_declaring_plugin_is_clean(index: MemoryIndex) -> None:
    value = '[{"name": "with-ips", "ips": ["10.1.0.5/24"]}]'
    assert validators.check_object(pod(value), "default", validators.Context(index)).errors == ()


def test_capability_is_not_judged_for_an_on_disk_config(index: MemoryIndex) -> None:
    value = '[{"name": "from-disk", "ips": ["10.1.0.5/24"]}]'
    assert validators.check_object(pod(value), "default", validators.Context(index)).errors == ()


def test_network_with_a_broken_config_fails_the_pod_early() -> None:
    idx = MemoryIndex([nad("broken", config='{"cniVersion": "0.3.1", "plugins": 5}')])
    findings = validators.check_object(pod("broken"), "default", validators.Context(idx))
    assert len(findings.errors) == 1
    assert findings.errors[0].message.startswith('network "default/broken" has an invalid spec.config')


def test_namespace_allow_list_is_enforced(index: MemoryIndex) -> None:
    index.put(namespace("tenant", **{"netplex.io/allowed-networks": "shared/*"}))
    ctx = validators.Context(index)
    assert validators.check_object(pod("shared/shared-net", namespace="tenant"), "tenant", ctx).errors == ()
    findings = validators.check_object(pod("default/macvlan-conf", namespace="tenant"), "tenant", ctx)
    assert errors(findings) == [
        "metadata.annotations[k8s.v1.cni.cncf.io/networks][0].name: network \"default/macvlan-conf\" is not "
        'allowed in namespace "tenant"; its netplex.io/allowed-networks annotation allows: shared/*'
    ]


def test_namespace_policy_in_warn_mode_only_warns(index: MemoryIndex) -> None:
    index.put(namespace("tenant", **{"netplex.io/allowed-networks": "shared/*",
                                     "netplex.io/max-networks": "1",
                                     "netplex.io/policy-mode": "warn"}))
    findings = validators.check_object(
        pod("default/macvlan-conf, shared/shared-net", namespace="tenant"), "tenant", validators.Context(index)
    )
    assert findings.errors == ()
    assert len(findings.warnings) == 2
    assert all(w.message.endswith("(policy-mode is warn: allowed for now)") for w in findings.warnings)


def test_max_networks_counts_selections(index: MemoryIndex) -> None:
    index.put(namespace("default", **{"netplex.io/max-networks": "1"}))
    findings = validators.check_object(pod("macvlan-conf, bridge-conf"), "default", validators.Context(index))
    assert errors(findings) == [
        "metadata.annotations[k8s.v1.cni.cncf.io/networks]: selects 2 networks, more than the 1 allowed "
        'in namespace "default" by netplex.io/max-networks; remove 1'
    ]


def test_default_network_annotation_is_looked_up_in_the_cluster_namespace(index: MemoryIndex) -> None:
    ctx = validators.Context(index)
    ok = pod(**{"v1.multus-cni.io/default-network": "default-net"})
    assert validators.check_object(ok, "default", ctx).errors == ()
    bad = pod(**{"v1.multus-cni.io/default-network": "macvlan-conf"})
    findings = validators.check_object(bad, "default", ctx)
    assert errors(findings)[0].startswith(
        "metadata.annotations[v1.multus-cni.io/default-network][0].name: no NetworkAttachmentDefinition "
        '"macvlan-conf" in namespace "kube-system"'
    )


def test_changing_networks_of_a_running_pod_is_denied_with_the_reason(index: MemoryIndex) -> None:
    old, new = pod("macvlan-conf"), pod("bridge-conf")
    findings = validators.check_object(new, "default", validators.Context(index), operation="UPDATE", old=old)
    assert errors(findings) == [
        'metadata.annotations[k8s.v1.cni.cncf.io/networks]: cannot be changed on an existing pod (got '
        '"macvlan-conf" -> "bridge-conf"); interfaces are attached only when the pod starts, so delete '
        "and recreate the pod (or change its Deployment) to use other networks"
    ]
    relaxed = validators.Context(index, policies_from(podNetworkUpdate="warn"))
    findings = validators.check_object(new, "default", relaxed, operation="UPDATE", old=old)
    assert findings.errors == () and len(findings.warnings) == 1


def test_unchanged_pod_update_is_clean(index: MemoryIndex) -> None:
    findings = validators.check_object(pod("nope"), "default", validators.Context(index),
                                       operation="UPDATE", old=pod("nope"))
    assert findings.errors == ()


@pytest.mark.parametrize(
    ("kind", "template_path"),
    [
        ("Deployment", "spec.template"),
        ("StatefulSet", "spec.template"),
        ("DaemonSet", "spec.template"),
        ("ReplicaSet", "spec.template"),
        ("Job", "spec.template"),
        ("CronJob", "spec.jobTemplate.spec.template"),
    ],
)
def test_workload_templates_get_the_pod_rules_with_template_paths(
    index: MemoryIndex, kind: str, template_path: str
) -> None:
    template = {"metadata": {"annotations": {"k8s.v1.cni.cncf.io/networks": "macvlan-cnf"}}, "spec": {}}
    obj: dict[str, Any] = {"kind": kind, "metadata": {"name": "w"}, "spec": {}}
    if kind == "CronJob":
        obj["spec"] = {"jobTemplate": {"spec": {"template": template}}}
    else:
        obj["spec"] = {"template": template}
    findings = validators.check_object(obj, "default", validators.Context(index))
    assert [p.path for p in findings.errors] == [
        f"{template_path}.metadata.annotations[k8s.v1.cni.cncf.io/networks][0].name"
    ]


def test_nad_name_must_be_a_dns_label() -> None:
    findings = validators.check_nad(nad("my.net", config=""))
    assert errors(findings)[0].startswith(
        'metadata.name: "my.net" is not a valid NetworkAttachmentDefinition name (a DNS-1123 label: '
        "it contains '.')"
    )


def test_nad_with_wrong_api_version_is_rejected() -> None:
    obj = nad("x")
    obj["apiVersion"] = "k8s.cni.cncf.io/v2"
    assert errors(validators.check_nad(obj))[0] == (
        'apiVersion: is not served (got "k8s.cni.cncf.io/v2"); use k8s.cni.cncf.io/v1'
    )


def test_nad_spec_must_be_an_object() -> None:
    obj = nad("x")
    obj["spec"] = "config"
    assert errors(validators.check_nad(obj)) == [
        "spec: must be an object (got \"config\"); use spec: {config: '<CNI JSON>'}"
    ]


def test_networks_annotation_must_be_a_string(index: MemoryIndex) -> None:
    obj = pod()
    obj["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"] = ["macvlan-conf"]
    findings = validators.check_object(obj, "default", validators.Context(index))
    assert errors(findings) == [
        'metadata.annotations[k8s.v1.cni.cncf.io/networks]: must be a string (got ["macvlan-conf"])'
    ]


def test_other_kinds_are_not_judged(index: MemoryIndex) -> None:
    assert validators.check_object({"kind": "ConfigMap"}, "default", validators.Context(index)).errors == ()
