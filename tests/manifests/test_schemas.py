"""Rendered objects against the Kubernetes OpenAPI schemas, offline.

Built-in kinds go through ``kubernetes-validate`` in strict mode (unknown fields are
errors, so a misspelt key fails here instead of being dropped by the API server) for the
newest Kubernetes version the package ships. Kinds it has no schema for are checked
here instead:

- cert-manager's ``Issuer`` and ``Certificate``: a minimal structural check written for
  these tests from cert-manager's v1 API (the fields netplex uses and their types and
  values), not cert-manager's own CRD schema, which is not available offline;
- NetworkAttachmentDefinitions (none are rendered; the README's and the seed documents'
  NADs are checked against the openAPIV3Schema of the CRD that netplex installs).
"""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate import utils as kv_utils

from tests.manifests.rendering import NAD_CRD, REPO, VARIANTS, crd_schema, find, ref, rendered

K8S_VERSION = kv_utils.latest_version()
LOCAL = {("cert-manager.io/v1", "Issuer"), ("cert-manager.io/v1", "Certificate")}

_DURATION = {"type": "string", "pattern": r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"}
_ISSUER_REF = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {"name": {"type": "string", "minLength": 1},
                   "kind": {"enum": ["Issuer", "ClusterIssuer"]},
                   "group": {"type": "string"}},
}
_METADATA = {
    "type": "object",
    "required": ["name", "namespace"],
    "properties": {"name": {"type": "string", "minLength": 1}, "namespace": {"type": "string", "minLength": 1}},
}
CERT_MANAGER_SCHEMAS = {
    "Issuer": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "minProperties": 1,
                "maxProperties": 1,  # exactly one issuer type
                "additionalProperties": False,
                "properties": {
                    "selfSigned": {"type": "object"},
                    "ca": {"type": "object", "required": ["secretName"], "additionalProperties": False,
                           "properties": {"secretName": {"type": "string", "minLength": 1},
                                          "crlDistributionPoints": {"type": "array"},
                                          "ocspServers": {"type": "array"},
                                          "issuingCertificateURLs": {"type": "array"}}},
                    "acme": {"type": "object"},
                    "vault": {"type": "object"},
                    "venafi": {"type": "object"},
                },
            },
        },
    },
    "Certificate": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "required": ["secretName", "issuerRef"],
                "anyOf": [{"required": ["dnsNames"]}, {"required": ["commonName"]}],
                "additionalProperties": False,
                "properties": {
                    "secretName": {"type": "string", "minLength": 1},
                    "issuerRef": _ISSUER_REF,
                    "commonName": {"type": "string", "maxLength": 64},
                    "dnsNames": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
                    "duration": _DURATION,
                    "renewBefore": _DURATION,
                    "isCA": {"type": "boolean"},
                    "usages": {"type": "array", "items": {"enum": [
                        "signing", "digital signature", "content commitment", "key encipherment",
                        "key agreement", "data encipherment", "cert sign", "crl sign", "encipher only",
                        "decipher only", "any", "server auth", "client auth", "code signing",
                        "email protection", "s/mime", "ipsec end system", "ipsec tunnel", "ipsec user",
                        "timestamping", "ocsp signing", "microsoft sgc", "netscape sgc"]}},
                    "privateKey": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {"algorithm": {"enum": ["RSA", "ECDSA", "Ed25519"]},
                                       "size": {"type": "integer"},
                                       "encoding": {"enum": ["PKCS1", "PKCS8"]},
                                       "rotationPolicy": {"enum": ["Never", "Always"]}},
                        "if": {"properties": {"algorithm": {"const": "ECDSA"}}, "required": ["algorithm"]},
                        "then": {"properties": {"size": {"enum": [256, 384, 521]}}},
                    },
                    "secretTemplate": {"type": "object"},
                    "subject": {"type": "object"},
                    "ipAddresses": {"type": "array", "items": {"type": "string"}},
                    "uris": {"type": "array", "items": {"type": "string"}},
                    "emailAddresses": {"type": "array", "items": {"type": "string"}},
                    "revisionHistoryLimit": {"type": "integer", "minimum": 1},
                },
            },
        },
    },
}


def check_locally(obj: dict) -> None:
    jsonschema.validate(obj, CERT_MANAGER_SCHEMAS[obj["kind"]])


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_rendered_object_is_valid_for_the_newest_kubernetes(variant):
    checked_locally = []
    for obj in rendered(variant):
        if (obj["apiVersion"], obj["kind"]) in LOCAL:
            check_locally(obj)
            checked_locally.append(ref(obj))
            continue
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{ref(obj)} is invalid for Kubernetes {K8S_VERSION} at {where}: {exc.message}")
    assert bool(checked_locally) == (variant == "cert-manager"), checked_locally


def test_the_validation_uses_a_recent_kubernetes():
    major, minor = (int(x) for x in K8S_VERSION.split(".")[:2])
    assert (major, minor) >= (1, 30), f"kubernetes-validate ships schemas only up to {K8S_VERSION}"


def test_strict_validation_catches_a_misspelt_field():
    deployment = copy.deepcopy(find(rendered("base"), "Deployment", "netplex-webhook"))
    pod = deployment["spec"]["template"]["spec"]
    pod["containers"][0]["securityContex"] = pod["containers"][0].pop("securityContext")
    with pytest.raises(kubernetes_validate.ValidationError) as caught:
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)
    assert "'securityContex' was unexpected" in caught.value.message


def test_strict_validation_catches_a_value_of_the_wrong_type():
    config = copy.deepcopy(find(rendered("base"), "ValidatingWebhookConfiguration", "netplex-validating"))
    config["webhooks"][0]["timeoutSeconds"] = "5s"
    with pytest.raises(kubernetes_validate.ValidationError) as caught:
        kubernetes_validate.validate(config, K8S_VERSION, strict=True)
    assert "'5s' is not of type 'integer'" in caught.value.message


def test_the_local_certificate_check_catches_a_misspelt_field_and_a_bad_key_size():
    certificate = copy.deepcopy(find(rendered("cert-manager"), "Certificate", "netplex-webhook"))
    certificate["spec"]["dnsName"] = certificate["spec"].pop("dnsNames")
    with pytest.raises(jsonschema.ValidationError) as caught:
        check_locally(certificate)
    assert "'dnsName' was unexpected" in caught.value.message
    certificate = copy.deepcopy(find(rendered("cert-manager"), "Certificate", "netplex-webhook"))
    certificate["spec"]["privateKey"]["size"] = 2048
    with pytest.raises(jsonschema.ValidationError) as caught:
        check_locally(certificate)
    assert "2048 is not one of [256, 384, 521]" in caught.value.message


def test_the_local_issuer_check_wants_exactly_one_issuer_type():
    issuer = copy.deepcopy(find(rendered("cert-manager"), "Issuer", "netplex-ca"))
    issuer["spec"]["selfSigned"] = {}
    with pytest.raises(jsonschema.ValidationError) as caught:
        check_locally(issuer)
    assert "has too many properties" in caught.value.message


def test_the_crd_is_the_npwg_network_attachment_definition():
    crd = find(rendered("thin-plugin-only"), "CustomResourceDefinition", NAD_CRD)
    spec = crd["spec"]
    assert spec["group"] == "k8s.cni.cncf.io"
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "plural": "network-attachment-definitions",
        "singular": "network-attachment-definition",
        "kind": "NetworkAttachmentDefinition",
        "shortNames": ["net-attach-def"],
    }
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1", True, True)
    schema = version["schema"]["openAPIV3Schema"]
    assert schema["properties"]["spec"]["properties"]["config"]["type"] == "string"


def test_the_crd_schema_is_structural():
    """Every node declares a type: the API server refuses a non-structural v1 CRD."""

    def walk(node: dict, path: str) -> None:
        assert "type" in node, f"{path}: no type"
        for key, child in node.get("properties", {}).items():
            walk(child, f"{path}.{key}")

    walk(crd_schema(), "openAPIV3Schema")


def _seed_nads() -> list[dict]:
    text = (REPO / "tests" / "fixtures" / "seeds" / "nads.yaml").read_text()
    return [d for d in yaml.safe_load_all(text) if d and d.get("kind") == "NetworkAttachmentDefinition"]


def test_the_seed_documents_nads_fit_the_crd_schema():
    nads = _seed_nads()
    assert nads
    for nad in nads:
        jsonschema.validate(nad, crd_schema())


def test_the_crd_schema_refuses_a_config_that_is_not_a_string():
    nad = copy.deepcopy(_seed_nads()[0])
    nad["spec"]["config"] = {"type": "macvlan"}
    with pytest.raises(jsonschema.ValidationError) as caught:
        jsonschema.validate(nad, crd_schema())
    assert "is not of type 'string'" in caught.value.message


def test_examples_nads_fit_the_crd_schema():
    for path in sorted(Path(REPO / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "NetworkAttachmentDefinition":
                jsonschema.validate(doc, crd_schema())
