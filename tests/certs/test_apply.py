"""``netplexctl certs --apply`` against the Kubernetes API double: the Secret and caBundle."""

from __future__ import annotations

import base64
from pathlib import Path

from cryptography import x509

from tests.k8sapi import FakeApiServer, make_secret, make_webhook_configuration

from .conftest import MUTATING_HOOKS, VALIDATING_HOOKS, ca_bundles, run_ctl

ALL_HOOKS = [*MUTATING_HOOKS, *VALIDATING_HOOKS]


def apply(kubeconfig: Path, out: Path, *extra: str) -> tuple[int, str, str]:
    return run_ctl("certs", "--out-dir", str(out), "--apply", "--kubeconfig", str(kubeconfig), *extra)


def bundle_serials(text: str | None) -> list[int]:
    assert text is not None
    return [c.serial_number for c in x509.load_pem_x509_certificates(base64.b64decode(text))]


def serial(pem: bytes) -> int:
    return x509.load_pem_x509_certificate(pem).serial_number


def test_apply_creates_the_tls_secret_and_sets_every_ca_bundle(
    api: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    out = tmp_path / "pki"

    code, stdout, stderr = apply(kubeconfig, out)

    assert (code, stderr) == (0, "")
    secret = api.get("secrets", "netplex-system", "netplex-webhook-tls")
    assert secret is not None and secret["type"] == "kubernetes.io/tls"
    assert {k: base64.b64decode(v) for k, v in secret["data"].items()} == {
        "tls.crt": (out / "tls.crt").read_bytes(),
        "tls.key": (out / "tls.key").read_bytes(),
        "ca.crt": (out / "ca.crt").read_bytes(),
    }
    expected = (out / "ca-bundle.b64").read_text().strip()
    assert ca_bundles(api) == dict.fromkeys(ALL_HOOKS, expected)
    assert stdout.splitlines()[-3:] == [
        "Secret netplex-system/netplex-webhook-tls: created",
        "MutatingWebhookConfiguration netplex-mutating: caBundle set on 2 of its webhooks",
        "ValidatingWebhookConfiguration netplex-validating: caBundle set on 2 of its webhooks",
    ]
    patches = api.requests_matching("PATCH", r"/apis/admissionregistration\.k8s\.io/v1/.*")
    assert [p.header("Content-Type") for p in patches] == ["application/json-patch+json"] * 2
    assert patches[0].json()[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "6"}


def test_rotating_with_the_same_ca_replaces_the_secret_and_leaves_the_bundle(
    api: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    out = tmp_path / "pki"
    apply(kubeconfig, out)
    first = api.get("secrets", "netplex-system", "netplex-webhook-tls")
    bundles = ca_bundles(api)
    writes = len(api.requests_matching("PATCH"))

    code, stdout, _ = apply(kubeconfig, out)

    second = api.get("secrets", "netplex-system", "netplex-webhook-tls")
    assert code == 0 and first is not None and second is not None
    assert second["metadata"]["uid"] == first["metadata"]["uid"]
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    assert serial(base64.b64decode(second["data"]["tls.crt"])) != serial(base64.b64decode(first["data"]["tls.crt"]))
    assert second["data"]["ca.crt"] == first["data"]["ca.crt"]
    assert ca_bundles(api) == bundles
    assert len(api.requests_matching("PATCH")) == writes  # an unchanged bundle is not written
    assert stdout.splitlines()[-3:] == [
        "Secret netplex-system/netplex-webhook-tls: replaced",
        "MutatingWebhookConfiguration netplex-mutating: caBundle already up to date",
        "ValidatingWebhookConfiguration netplex-validating: caBundle already up to date",
    ]


def test_a_new_ca_is_trusted_next_to_the_previous_one_unless_dropped(
    api: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    out = tmp_path / "pki"
    apply(kubeconfig, out)
    old_ca = serial((out / "ca.crt").read_bytes())

    assert apply(kubeconfig, out, "--new-ca")[0] == 0
    new_ca = serial((out / "ca.crt").read_bytes())
    assert new_ca != old_ca
    assert {h: bundle_serials(b) for h, b in ca_bundles(api).items()} == {key: [new_ca, old_ca] for key in ALL_HOOKS}

    assert apply(kubeconfig, out, "--drop-previous-ca")[0] == 0
    assert {h: bundle_serials(b) for h, b in ca_bundles(api).items()} == {key: [new_ca] for key in ALL_HOOKS}


def test_the_secret_keeps_labels_and_annotations_others_put_on_it(
    api: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    existing = make_secret("netplex-webhook-tls", "netplex-system", type="kubernetes.io/tls",
                           data={"tls.crt": b"old", "tls.key": b"old"})
    existing["metadata"].update(labels={"team": "net"}, annotations={"note": "keep me"})
    api.create(existing)

    code, stdout, _ = apply(kubeconfig, tmp_path / "pki")

    secret = api.get("secrets", "netplex-system", "netplex-webhook-tls")
    assert code == 0 and secret is not None
    assert secret["metadata"]["labels"] == {"team": "net", "app.kubernetes.io/name": "netplex",
                                            "app.kubernetes.io/component": "webhook"}
    assert secret["metadata"]["annotations"] == {"note": "keep me"}
    assert base64.b64decode(secret["data"]["tls.crt"]) == (tmp_path / "pki" / "tls.crt").read_bytes()
    assert "Secret netplex-system/netplex-webhook-tls: replaced" in stdout


def test_a_secret_of_another_type_is_not_replaced(api: FakeApiServer, kubeconfig: Path, tmp_path: Path) -> None:
    api.create(make_secret("netplex-webhook-tls", "netplex-system", data={"password": b"x"}))

    code, _, stderr = apply(kubeconfig, tmp_path / "pki")

    assert code == 2
    assert stderr == ("netplexctl certs: Secret netplex-system/netplex-webhook-tls has type Opaque, not "
                      "kubernetes.io/tls (the type of a Secret cannot change); delete it, then run again\n")
    secret = api.get("secrets", "netplex-system", "netplex-webhook-tls")
    assert secret is not None and secret["data"] == {"password": "eA=="}


def test_a_conflicting_write_of_the_secret_is_retried(api: FakeApiServer, kubeconfig: Path, tmp_path: Path) -> None:
    api.create(make_secret("netplex-webhook-tls", "netplex-system", type="kubernetes.io/tls",
                           data={"tls.crt": b"old", "tls.key": b"old"}))
    api.fail_next("PUT", r"/api/v1/namespaces/netplex-system/secrets/netplex-webhook-tls", 409)

    code, _, stderr = apply(kubeconfig, tmp_path / "pki")

    assert (code, stderr) == (0, "")
    assert [r.status for r in api.requests_matching("PUT")] == [409, 200]


def test_a_bundle_patch_that_loses_the_race_is_read_again_and_retried(
    api: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    api.fail_next("PATCH", r".*/mutatingwebhookconfigurations/netplex-mutating", 409)

    code, _, stderr = apply(kubeconfig, tmp_path / "pki")

    assert (code, stderr) == (0, "")
    assert [r.status for r in api.requests_matching("PATCH", r".*/netplex-mutating")] == [409, 200]
    assert len(api.requests_matching("GET", r".*/mutatingwebhookconfigurations/netplex-mutating")) == 2


def test_a_missing_configuration_is_named_and_fails_the_run_after_the_rest_is_done(
    api: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    api.delete("validatingwebhookconfigurations", None, "netplex-validating")

    code, stdout, stderr = apply(kubeconfig, tmp_path / "pki")

    assert code == 2
    assert stderr == ("netplexctl certs: ValidatingWebhookConfiguration netplex-validating not found: its caBundle "
                      "cannot be set; apply the manifests first (kubectl apply -k manifests/), then run again\n")
    assert "MutatingWebhookConfiguration netplex-mutating: caBundle set on 2 of its webhooks" in stdout
    assert api.get("secrets", "netplex-system", "netplex-webhook-tls") is not None


def test_a_configuration_cert_manager_injects_is_left_alone(
    api: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    api.delete("mutatingwebhookconfigurations", None, "netplex-mutating")
    api.create(make_webhook_configuration(
        "MutatingWebhookConfiguration", "netplex-mutating", MUTATING_HOOKS, ca_bundle="",
        annotations={"cert-manager.io/inject-ca-from": "netplex-system/netplex-webhook"}))

    code, stdout, _ = apply(kubeconfig, tmp_path / "pki")

    assert code == 0
    assert ("MutatingWebhookConfiguration netplex-mutating: not patched, it has cert-manager.io/inject-ca-from "
            "(cert-manager injects its caBundle)") in stdout
    assert {h: b for h, b in ca_bundles(api).items() if h in MUTATING_HOOKS} == dict.fromkeys(MUTATING_HOOKS, "")


def test_a_missing_namespace_is_the_api_servers_message(api: FakeApiServer, kubeconfig: Path, tmp_path: Path) -> None:
    code, _, stderr = apply(kubeconfig, tmp_path / "pki", "--namespace", "nowhere")

    assert code == 2
    assert stderr == ('netplexctl certs: create Secret nowhere/netplex-webhook-tls: namespaces "nowhere" not found '
                      "(404 NotFound)\n")


def test_a_refused_token_is_the_api_servers_message(api: FakeApiServer, tmp_path: Path) -> None:
    stale = api.kubeconfig(tmp_path / "stale", token="expired-token")

    code, _, stderr = apply(stale, tmp_path / "pki")

    assert code == 2
    assert stderr == ("netplexctl certs: create Secret netplex-system/netplex-webhook-tls: Unauthorized "
                      "(401 Unauthorized)\n")


def test_an_unreadable_kubeconfig_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    code, stdout, stderr = apply(tmp_path / "missing-kubeconfig", tmp_path / "pki")

    assert (code, stdout) == (2, "")
    assert stderr == (f"netplexctl certs: cannot use the kubeconfig {tmp_path / 'missing-kubeconfig'}: "
                      "Invalid kube-config file. No configuration found.\n")
    assert not (tmp_path / "pki").exists()


def test_apply_without_out_dir_says_the_ca_key_is_not_kept(api: FakeApiServer, kubeconfig: Path) -> None:
    code, stdout, stderr = run_ctl("certs", "--apply", "--kubeconfig", str(kubeconfig))

    assert code == 0
    assert stderr == ("netplexctl certs: note: without --out-dir the new CA's key is not kept; the next run makes "
                      "another CA (the previous one stays in caBundle until it expires)\n")
    assert "Secret netplex-system/netplex-webhook-tls: created" in stdout
