"""Rotation of a running webhook without a restart, end to end.

The real ``netplex-webhook`` process serves files written by the real ``netplexctl certs``
(both console scripts, as an admin runs them). Each rotation is seen from outside: a
fresh TLS handshake that verifies the server for the name the API server calls presents
the new serial, and the process is the same one (same PID, never exited).
"""

from __future__ import annotations

import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from tests.webhook.test_cluster import eventually

from .conftest import SERVICE_HOST, WebhookProcess, verified_certificate


def netplexctl_certs(out: Path, *extra: str) -> None:
    script = Path(sys.executable).with_name("netplexctl")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "webhook.ctl"]
    done = subprocess.run([*command, "certs", "--out-dir", str(out), *extra], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def served_serial(port: int, ca_pem: bytes) -> int | None:
    """The serial served to a client trusting only ``ca_pem``; None while it does not verify."""
    try:
        return verified_certificate(port, ca_pem).serial_number
    except ssl.SSLCertVerificationError:
        return None


def file_serial(path: Path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    out = tmp_path / "pki"
    netplexctl_certs(out)
    return out


@pytest.fixture
def webhook(pki: Path, tmp_path: Path) -> Iterator[WebhookProcess]:
    proc = WebhookProcess(tmp_path, ["--tls-cert", str(pki / "tls.crt"), "--tls-key", str(pki / "tls.key"),
                                     "--nads", "examples/", "--host", "127.0.0.1", "--port", "0",
                                     "--cert-reload-interval", "0.1"])
    yield proc
    proc.close()


def test_a_new_serving_certificate_and_then_a_new_ca_are_served_by_the_same_process(
    pki: Path, webhook: WebhookProcess
) -> None:
    port = webhook.port()
    pid = webhook.proc.pid
    first_ca = (pki / "ca.crt").read_bytes()
    first = verified_certificate(port, first_ca).serial_number
    assert first == file_serial(pki / "tls.crt")

    netplexctl_certs(pki)  # same CA, new serving certificate
    second = file_serial(pki / "tls.crt")
    assert second != first and (pki / "ca.crt").read_bytes() == first_ca
    assert eventually(lambda: served_serial(port, first_ca) == second), webhook.log()

    netplexctl_certs(pki, "--new-ca")  # a new CA: the old one no longer verifies the server
    new_ca, third = (pki / "ca.crt").read_bytes(), file_serial(pki / "tls.crt")
    assert new_ca != first_ca
    assert eventually(lambda: served_serial(port, new_ca) == third), webhook.log()

    with pytest.raises(ssl.SSLCertVerificationError) as refused:
        verified_certificate(port, first_ca)
    assert refused.value.verify_message == "unable to get local issuer certificate"
    assert webhook.proc.poll() is None and webhook.proc.pid == pid
    log = webhook.log()
    assert log.count(f"certificate reload: now serving CN={SERVICE_HOST} ") == 3  # the first pair, then two
    assert "Traceback" not in log
