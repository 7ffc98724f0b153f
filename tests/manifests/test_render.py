"""Every YAML file parses, every kustomization renders, and each variant holds what it should."""

from __future__ import annotations

import pytest
import yaml

from tests.manifests.rendering import (
    ALL,
    BASE,
    CERT_MANAGER,
    IMAGE,
    MANIFESTS,
    NAMESPACE,
    PLUGIN_ONLY,
    THIN,
    VARIANTS,
    container,
    find,
    of_kind,
    ref,
    rendered,
)

YAML_FILES = sorted(p for p in MANIFESTS.rglob("*") if p.suffix in (".yaml", ".yml"))

CORE = {
    "Namespace/netplex-system",
    "ResourceQuota/netplex-system/netplex-critical-pods",
    "CustomResourceDefinition/network-attachment-definitions.k8s.cni.cncf.io",
    "ServiceAccount/netplex-system/netplex-node",
    "ClusterRole/netplex-node",
    "ClusterRoleBinding/netplex-node",
    "DaemonSet/netplex-system/netplex-node",
}
WEBHOOK = {
    "ServiceAccount/netplex-system/netplex-webhook",
    "ClusterRole/netplex-webhook",
    "ClusterRoleBinding/netplex-webhook",
    "ConfigMap/netplex-system/netplex-policy",
    "Deployment/netplex-system/netplex-webhook",
    "Service/netplex-system/netplex-webhook",
    "PodDisruptionBudget/netplex-system/netplex-webhook",
    "MutatingWebhookConfiguration/netplex-mutating",
    "ValidatingWebhookConfiguration/netplex-validating",
}
SELF_SIGNED = {
    "Role/netplex-system/netplex-webhook-self-signed",
    "RoleBinding/netplex-system/netplex-webhook-self-signed",
    "ClusterRole/netplex-webhook-self-signed",
    "ClusterRoleBinding/netplex-webhook-self-signed",
}
CERTIFICATES = {
    "Issuer/netplex-system/netplex-selfsigned",
    "Certificate/netplex-system/netplex-ca",
    "Issuer/netplex-system/netplex-ca",
    "Certificate/netplex-system/netplex-webhook",
}
EXPECTED = {
    BASE: CORE | WEBHOOK | SELF_SIGNED,
    CERT_MANAGER: CORE | WEBHOOK | CERTIFICATES,
    PLUGIN_ONLY: CORE,
    THIN: CORE | WEBHOOK | SELF_SIGNED,
    "thin-plugin-only+thin": CORE,
    "cert-manager+thin": CORE | WEBHOOK | CERTIFICATES,
}


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(MANIFESTS)))
def test_every_yaml_file_parses_into_objects_with_kind(path):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs, f"{path}: no YAML document"
    for doc in docs:
        assert isinstance(doc, dict), f"{path}: a document is {type(doc).__name__}, not a mapping"
        assert doc.get("kind"), f"{path}: a document has no kind"
        assert doc.get("apiVersion"), f"{path}: {doc['kind']} has no apiVersion"


def test_the_manifest_tree_has_yaml_files_to_check():
    names = {str(p.relative_to(MANIFESTS)) for p in YAML_FILES}
    assert {"kustomization.yaml", "overlays/cert-manager/kustomization.yaml",
            "overlays/thin-plugin-only/kustomization.yaml", "overlays/thin/kustomization.yaml",
            "components/thin/kustomization.yaml"} <= names


@pytest.mark.parametrize("variant", ALL)
def test_each_variant_renders_exactly_its_objects(variant):
    objects = rendered(variant)
    refs = [ref(o) for o in objects]
    assert len(refs) == len(set(refs)), f"duplicates: {sorted(r for r in refs if refs.count(r) > 1)}"
    assert set(refs) == EXPECTED[variant]


@pytest.mark.parametrize("variant", ALL)
def test_namespaced_objects_live_in_netplex_system(variant):
    cluster_scoped = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding",
                      "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}
    for obj in rendered(variant):
        if obj["kind"] in cluster_scoped:
            assert "namespace" not in obj["metadata"], f"{ref(obj)} is cluster-scoped"
        else:
            assert obj["metadata"].get("namespace") == NAMESPACE, ref(obj)


@pytest.mark.parametrize("variant", ALL)
def test_every_object_is_labelled_part_of_netplex(variant):
    for obj in rendered(variant):
        assert obj["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") == "netplex", ref(obj)


@pytest.mark.parametrize("variant", ALL)
def test_every_container_runs_the_one_netplex_image(variant):
    for obj in of_kind(rendered(variant), "Deployment") + of_kind(rendered(variant), "DaemonSet"):
        for c in obj["spec"]["template"]["spec"]["containers"]:
            assert c["image"] == IMAGE, f"{ref(obj)} container {c['name']}"


def test_selectors_match_their_pods_and_the_service_finds_the_webhook():
    objects = rendered(BASE)
    for kind, name in (("Deployment", "netplex-webhook"), ("DaemonSet", "netplex-node")):
        owner = find(objects, kind, name)
        labels = owner["spec"]["template"]["metadata"]["labels"]
        for key, value in owner["spec"]["selector"]["matchLabels"].items():
            assert labels.get(key) == value, f"{kind}/{name}: selector {key}={value} misses its pods"
    webhook_pods = find(objects, "Deployment", "netplex-webhook")["spec"]["template"]["metadata"]["labels"]
    node_pods = find(objects, "DaemonSet", "netplex-node")["spec"]["template"]["metadata"]["labels"]
    for selector in (
        find(objects, "Service", "netplex-webhook")["spec"]["selector"],
        find(objects, "PodDisruptionBudget", "netplex-webhook")["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= webhook_pods.items()
        assert not selector.items() <= node_pods.items(), "the selector would also pick the node pods"


def test_the_service_forwards_443_to_the_webhook_port():
    objects = rendered(BASE)
    (port,) = find(objects, "Service", "netplex-webhook")["spec"]["ports"]
    assert port["port"] == 443
    webhook = container(find(objects, "Deployment", "netplex-webhook"), "webhook")
    (container_port,) = webhook["ports"]
    assert port["targetPort"] == container_port["name"]
    assert container_port["containerPort"] == 8443
    assert "--port=8443" in webhook["args"]


@pytest.mark.parametrize("variant", [CERT_MANAGER, THIN])
def test_an_overlay_of_everything_lists_the_same_base_parts_as_the_base(variant):
    base = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())["resources"]
    overlay = yaml.safe_load((VARIANTS[variant] / "kustomization.yaml").read_text())["resources"]
    assert [r for r in overlay if r.startswith("../../")] == [f"../../{r}" for r in base]


def test_the_cert_manager_overlay_swaps_self_signed_for_the_mounted_certificate():
    base = container(find(rendered(BASE), "Deployment", "netplex-webhook"), "webhook")["args"]
    deployment = find(rendered(CERT_MANAGER), "Deployment", "netplex-webhook")
    overlay = container(deployment, "webhook")["args"]
    assert "--self-signed" in base
    assert "--self-signed" not in overlay
    tls = ["--tls-cert=/etc/netplex/tls/tls.crt", "--tls-key=/etc/netplex/tls/tls.key"]
    assert sorted(overlay) == sorted([a for a in base if a != "--self-signed"] + tls), (
        "the overlay's args must be the base's with only the TLS flags changed"
    )
    mounts = {m["name"]: m for m in container(deployment, "webhook")["volumeMounts"]}
    assert mounts["tls"]["mountPath"] == "/etc/netplex/tls"
    assert "subPath" not in mounts["tls"], "a subPath mount never sees a renewed certificate"
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "netplex-webhook-tls"
    certificate = find(rendered(CERT_MANAGER), "Certificate", "netplex-webhook")
    assert certificate["spec"]["secretName"] == "netplex-webhook-tls"


def test_cert_manager_injects_the_ca_of_the_serving_certificate_into_both_configurations():
    objects = rendered(CERT_MANAGER)
    certificate = find(objects, "Certificate", "netplex-webhook")
    expected = f"{certificate['metadata']['namespace']}/{certificate['metadata']['name']}"
    for kind, name in (("MutatingWebhookConfiguration", "netplex-mutating"),
                       ("ValidatingWebhookConfiguration", "netplex-validating")):
        config = find(objects, kind, name)
        assert config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == expected
        for hook in config["webhooks"]:
            assert "caBundle" not in hook["clientConfig"], f"{name} {hook['name']}: the injector owns caBundle"


def test_the_serving_certificate_names_the_service_and_chains_to_the_ca_issuer():
    objects = rendered(CERT_MANAGER)
    certificate = find(objects, "Certificate", "netplex-webhook")["spec"]
    service = find(objects, "Service", "netplex-webhook")["metadata"]
    dns = f"{service['name']}.{service['namespace']}.svc"
    assert dns in certificate["dnsNames"], "the API server connects to <service>.<namespace>.svc"
    assert certificate["issuerRef"]["name"] == "netplex-ca"
    ca_issuer = find(objects, "Issuer", "netplex-ca")["spec"]
    ca_certificate = find(objects, "Certificate", "netplex-ca")["spec"]
    assert ca_certificate["isCA"] is True
    assert ca_issuer["ca"]["secretName"] == ca_certificate["secretName"]
    assert ca_certificate["issuerRef"]["name"] == "netplex-selfsigned"
    assert "selfSigned" in find(objects, "Issuer", "netplex-selfsigned")["spec"]


def test_the_base_webhook_self_signs_with_no_certificate_files():
    args = container(find(rendered(BASE), "Deployment", "netplex-webhook"), "webhook")["args"]
    assert "--self-signed" in args
    assert not [a for a in args if a.startswith(("--tls-cert", "--tls-key"))]
