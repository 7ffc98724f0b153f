"""Pod security and availability settings of the webhook Deployment and the node DaemonSet."""

from __future__ import annotations

import pytest

from tests.manifests.rendering import (
    ALL,
    PLUGIN_ONLY,
    WITH_WEBHOOK,
    container,
    find,
    rendered,
)
from webhook.server import build_parser


def webhook(variant: str = "base") -> dict:
    return find(rendered(variant), "Deployment", "netplex-webhook")


def daemonset(variant: str = "base") -> dict:
    return find(rendered(variant), "DaemonSet", "netplex-node")


def effective(pod_spec: dict, ctr: dict, key: str):
    """A container setting, else the pod-level one (how the kubelet resolves them)."""
    if key in ctr.get("securityContext", {}):
        return ctr["securityContext"][key]
    return pod_spec.get("securityContext", {}).get(key)


@pytest.mark.parametrize("variant", WITH_WEBHOOK)
def test_the_webhook_runs_as_a_numeric_non_root_user_with_nothing_extra(variant):
    spec = webhook(variant)["spec"]["template"]["spec"]
    for ctr in spec["containers"]:
        assert effective(spec, ctr, "runAsNonRoot") is True
        assert effective(spec, ctr, "runAsUser") == 10001
        assert effective(spec, ctr, "runAsGroup") == 10001
        assert effective(spec, ctr, "seccompProfile") == {"type": "RuntimeDefault"}
        context = ctr["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context.get("privileged", False) is False
        assert context["capabilities"] == {"drop": ["ALL"]}
    assert spec.get("hostNetwork", False) is False
    assert not [v for v in spec["volumes"] if "hostPath" in v]


@pytest.mark.parametrize("variant", WITH_WEBHOOK)
def test_the_webhook_is_highly_available(variant):
    deployment = webhook(variant)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    (term,) = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    pdb = find(rendered(variant), "PodDisruptionBudget", "netplex-webhook")["spec"]
    assert pdb["minAvailable"] == 1
    assert pdb["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert pdb["minAvailable"] < deployment["spec"]["replicas"], "a PDB that allows no eviction blocks drains"


@pytest.mark.parametrize("variant", WITH_WEBHOOK)
def test_the_webhook_probes_health_and_readiness_over_https(variant):
    ctr = container(webhook(variant), "webhook")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = ctr[probe]["httpGet"]
        assert (get["path"], get["scheme"], get["port"]) == (path, "HTTPS", "https"), probe


@pytest.mark.parametrize("variant", WITH_WEBHOOK)
def test_the_webhook_finishes_requests_in_flight_before_it_is_killed(variant):
    deployment = webhook(variant)
    ctr = container(deployment, "webhook")
    sleep = ctr["lifecycle"]["preStop"]["sleep"]["seconds"]
    args = build_parser().parse_args(ctr["args"])
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert 3 <= sleep <= 10
    assert sleep + args.shutdown_timeout < grace, (
        f"preStop {sleep}s + --shutdown-timeout {args.shutdown_timeout}s must fit in {grace}s"
    )
    webhook_timeout = max(h["timeoutSeconds"] for h in find(
        rendered(variant), "ValidatingWebhookConfiguration", "netplex-validating")["webhooks"])
    assert args.shutdown_timeout >= webhook_timeout, "a request the API server still waits for is cut off"


@pytest.mark.parametrize("variant", ALL)
def test_every_container_has_requests_and_a_memory_limit(variant):
    for owner in [o for o in rendered(variant) if o["kind"] in ("Deployment", "DaemonSet")]:
        for ctr in owner["spec"]["template"]["spec"]["containers"]:
            resources = ctr["resources"]
            assert {"cpu", "memory"} <= resources["requests"].keys(), ctr["name"]
            assert "memory" in resources["limits"], ctr["name"]


def test_the_webhook_reads_the_policy_from_a_directory_mount_that_follows_the_configmap():
    deployment = webhook()
    ctr = container(deployment, "webhook")
    args = build_parser().parse_args(ctr["args"])
    mounts = {m["name"]: m for m in ctr["volumeMounts"]}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    policy_mount = mounts["policy"]
    assert "subPath" not in policy_mount, "a subPath mount is never updated when the ConfigMap changes"
    assert args.policy.startswith(policy_mount["mountPath"] + "/")
    key = args.policy.removeprefix(policy_mount["mountPath"] + "/")
    configmap = find(rendered("base"), "ConfigMap", volumes["policy"]["configMap"]["name"])
    assert key in configmap["data"]
    assert mounts["tmp"]["mountPath"] == "/tmp" and volumes["tmp"]["emptyDir"]["medium"] == "Memory"


@pytest.mark.parametrize("variant", ALL)
def test_the_node_pod_has_what_the_installer_needs_and_runs_everywhere(variant):
    ds = daemonset(variant)
    spec = ds["spec"]["template"]["spec"]
    ctr = container(ds, "install")
    assert ctr["securityContext"]["privileged"] is True
    assert ctr["securityContext"]["runAsUser"] == 0, "the image's default user cannot write /opt/cni/bin"
    assert spec["hostNetwork"] is True
    assert spec["priorityClassName"] == "system-node-critical"
    assert spec["tolerations"] == [{"operator": "Exists"}]
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in ctr["volumeMounts"]}
    assert volumes[mounts["/host"]]["hostPath"]["path"] == "/"
    assert "emptyDir" in volumes[mounts["/run/netplex"]]
    assert ctr["readinessProbe"]["exec"]["command"] == ["netplex-install", "ready"]
    assert ctr["command"] == ["netplex-install", "run"]
    env = {e["name"]: e.get("value") for e in ctr["env"]}
    assert env["NETPLEX_CLEANUP_ON_EXIT"] == "false", "a rollout must not drop the node's config"


def test_the_namespace_admits_the_privileged_node_pods():
    labels = find(rendered(PLUGIN_ONLY), "Namespace", "netplex-system")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"


def test_the_critical_pods_quota_covers_every_priority_class_used():
    objects = rendered("base")
    quota = find(objects, "ResourceQuota", "netplex-critical-pods")["spec"]
    (expression,) = quota["scopeSelector"]["matchExpressions"]
    assert (expression["scopeName"], expression["operator"]) == ("PriorityClass", "In")
    used = {o["spec"]["template"]["spec"].get("priorityClassName")
            for o in objects if o["kind"] in ("Deployment", "DaemonSet")}
    assert used <= set(expression["values"])
