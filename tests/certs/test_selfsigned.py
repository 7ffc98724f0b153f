"""``netplex-webhook --self-signed``: in memory on a laptop, a shared CA Secret in a cluster."""

from __future__ import annotations

import base64
import datetime
import logging
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from certs.authority import new_authority
from tests.k8sapi import FakeApiServer, make_secret
from webhook import server, tls
from webhook.selfsigned import has_api_access, service_namespace, serving_pair

from .conftest import (
    MUTATING_HOOKS,
    SERVICE_HOST,
    VALIDATING_HOOKS,
    WebhookProcess,
    ca_bundles,
    verified_certificate,
)

CA_SECRET = ("secrets", "netplex-system", "netplex-webhook-ca")
NO_CLUSTER: dict[str, str] = {}


def flags(*argv: str) -> Any:
    """The server's own parser, so the flags tested are the ones it has."""
    return server.build_parser().parse_args(["--self-signed", *argv])


def stored_ca(api: FakeApiServer) -> bytes:
    """The CA PEM in Secret netplex-system/netplex-webhook-ca."""
    secret = api.get(*CA_SECRET)
    assert secret is not None
    return base64.b64decode(secret["data"]["ca.crt"])


def never_connect(kubeconfig: str | None) -> Any:
    raise AssertionError("the laptop mode must not talk to a cluster")


def test_two_replicas_share_one_ca_and_the_bundle_is_set_once(api: FakeApiServer, kubeconfig: Path) -> None:
    args = flags("--kubeconfig", str(kubeconfig), "--service-namespace", "netplex-system")

    first = serving_pair(args, ["127.0.0.1"], environ=NO_CLUSTER)
    second = serving_pair(args, ["127.0.0.1"], environ=NO_CLUSTER)

    ca_pem = stored_ca(api)
    assert first.in_cluster and second.in_cluster
    assert first.pair.ca == second.pair.ca == ca_pem
    for pair in (first.pair, second.pair):
        cert = x509.load_pem_x509_certificate(pair.cert)
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_pem))
        assert SERVICE_HOST in cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value \
            .get_values_for_type(x509.DNSName)
    assert first.pair.cert != second.pair.cert
    assert [r.status for r in api.requests_matching("POST", r".*/secrets")] == [201, 409]
    assert ca_bundles(api) == dict.fromkeys([*MUTATING_HOOKS, *VALIDATING_HOOKS],
                                            base64.b64encode(first.pair.ca).decode())
    assert len(api.requests_matching("PATCH")) == 2  # the second replica found the bundle in place


def test_the_ca_secret_holds_the_ca_and_its_key(api: FakeApiServer, kubeconfig: Path) -> None:
    serving_pair(flags("--kubeconfig", str(kubeconfig)), [], environ=NO_CLUSTER,
                 namespace_file=Path("/nonexistent"))

    secret = api.get(*CA_SECRET)
    assert secret is not None and secret["type"] == "Opaque" and set(secret["data"]) == {"ca.crt", "ca.key"}
    assert x509.load_pem_x509_certificate(stored_ca(api)).extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True


def test_without_api_access_the_ca_lives_in_memory_only() -> None:
    issued = serving_pair(flags("--nads", "examples/"), ["127.0.0.1"], environ={"KUBERNETES_SERVICE_HOST": "10.0.0.1",
                                                                               "KUBERNETES_SERVICE_PORT": "443"},
                          connect=never_connect)

    assert issued.in_cluster is False
    x509.load_pem_x509_certificate(issued.pair.cert).verify_directly_issued_by(
        x509.load_pem_x509_certificate(issued.pair.ca))


@pytest.mark.parametrize(
    ("argv", "environ", "expected"),
    [
        ([], {}, False),
        (["--kubeconfig", "kc"], {}, True),
        ([], {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}, True),
        ([], {"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, False),
        (["--kubeconfig", "kc", "--nads", "examples/"], {}, False),
    ],
)
def test_api_access_means_a_kubeconfig_or_the_in_cluster_environment_and_no_nads(
    argv: list[str], environ: dict[str, str], expected: bool
) -> None:
    assert has_api_access(flags(*argv), environ) is expected


def test_the_namespace_comes_from_the_flag_then_the_pod_then_the_default(tmp_path: Path) -> None:
    pod_namespace = tmp_path / "namespace"
    pod_namespace.write_text("tenant-webhooks\n")

    assert service_namespace("given", pod_namespace) == "given"
    assert service_namespace(None, pod_namespace) == "tenant-webhooks"
    assert service_namespace(None, tmp_path / "missing") == "netplex-system"


def test_an_expired_ca_in_the_secret_stops_the_start_with_what_to_do(api: FakeApiServer, kubeconfig: Path) -> None:
    long_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=30)
    old = new_authority(now=long_ago, days=10)
    api.create(make_secret("netplex-webhook-ca", "netplex-system", data={"ca.crt": old.cert_pem, "ca.key": old.key_pem}))

    with pytest.raises(tls.CertificateError) as caught:
        serving_pair(flags("--kubeconfig", str(kubeconfig), "--service-namespace", "netplex-system"), [],
                     environ=NO_CLUSTER)

    assert str(caught.value) == (
        "--self-signed with the cluster's CA Secret: Secret netplex-system/netplex-webhook-ca data[ca.crt]: "
        f"CN=netplex-webhook CA expired on {old.cert.not_valid_after_utc.isoformat()}; delete Secret "
        "netplex-system/netplex-webhook-ca and restart the webhook to have a new CA made"
    )


def test_a_forbidden_secret_write_stops_the_start_with_the_api_message(api: FakeApiServer, kubeconfig: Path) -> None:
    api.fail_next("POST", r".*/secrets", 403)

    with pytest.raises(tls.CertificateError) as caught:
        serving_pair(flags("--kubeconfig", str(kubeconfig), "--service-namespace", "netplex-system"), [],
                     environ=NO_CLUSTER)

    assert str(caught.value) == ("--self-signed with the cluster's CA Secret: create Secret "
                                 "netplex-system/netplex-webhook-ca: forbidden: injected by tests.k8sapi "
                                 "(403 Forbidden)")


def test_missing_configurations_are_warnings_at_start(
    api: FakeApiServer, kubeconfig: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api.delete("mutatingwebhookconfigurations", None, "netplex-mutating")

    with caplog.at_level(logging.INFO, logger="netplex.webhook"):
        issued = serving_pair(flags("--kubeconfig", str(kubeconfig), "--service-namespace", "netplex-system"), [],
                              environ=NO_CLUSTER)

    assert issued.in_cluster
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["--self-signed: MutatingWebhookConfiguration netplex-mutating not found: its caBundle "
                        "cannot be set; apply the manifests first (kubectl apply -k manifests/), then run again"]


def test_a_hostname_that_cannot_be_a_san_is_left_out_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="netplex.webhook"):
        issued = serving_pair(flags("--nads", "examples/"), ["build_host_01", "ok.example"], environ=NO_CLUSTER)

    sans = x509.load_pem_x509_certificate(issued.pair.cert).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost", "ok.example"]
    assert caplog.messages == [
        "--self-signed: \"build_host_01\" is not a valid DNS name (a DNS-1123 subdomain: it has a part \"build_host_01\" "
        "that contains '_'); use lowercase letters, digits, '-' and '.', each dot-separated part starting and ending "
        "with a letter or digit, at most 253 characters; left out of the certificate"
    ]


def test_the_webhook_process_serves_from_the_shared_ca_and_patches_the_bundle(
    api: FakeApiServer, kubeconfig: Path, tmp_path: Path
) -> None:
    proc = WebhookProcess(tmp_path, ["--self-signed", "--kubeconfig", str(kubeconfig), "--host", "127.0.0.1",
                                     "--port", "0", "--service-namespace", "netplex-system"])
    try:
        port = proc.port()
        ca_pem = stored_ca(api)
        served = verified_certificate(port, ca_pem)

        served.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_pem))
        proc.wait_for_log(r"--self-signed: CA created in Secret netplex-system/netplex-webhook-ca; serving "
                          r"CN=netplex-webhook\.netplex-system\.svc")
        assert set(ca_bundles(api).values()) == {base64.b64encode(ca_pem).decode()}
        assert "CA generated for this run only" not in proc.stdout()
    finally:
        proc.close()
    assert proc.proc.returncode == 0

