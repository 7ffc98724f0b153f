"""Shared pieces of the certificate tests.

- :func:`run_ctl`: ``netplexctl`` in process (``webhook.ctl.main``), output captured.
- ``api``: the Kubernetes API double (HTTPS) with namespace ``netplex-system`` and both
  webhook configurations, two webhooks each, no caBundle yet; ``kubeconfig`` points at it.
- :func:`verified_certificate`: a real TLS handshake that verifies the server against a
  CA for the name the API server uses, and returns the certificate it presented.
- :class:`WebhookProcess`: the installed ``netplex-webhook`` console script, for tests
  that need the real process (rotation without restart, self-signed start).
"""

from __future__ import annotations

import datetime
import io
import re
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from tests.k8sapi import (
    DEFAULT_NAMESPACES,
    FakeApiServer,
    make_namespace,
    make_webhook_configuration,
)
from webhook import ctl

REPO = Path(__file__).resolve().parents[2]
SERVICE_HOST = "netplex-webhook.netplex-system.svc"
NOW = datetime.datetime(2026, 3, 1, 12, 0, 0, tzinfo=datetime.UTC)
MUTATING_HOOKS = ("pods.mutate.netplex.io", "workloads.mutate.netplex.io")
VALIDATING_HOOKS = ("pods.validate.netplex.io", "nads.validate.netplex.io")


def run_ctl(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = ctl.main(list(argv), stdout=out, stderr=err, stdin=io.StringIO(""))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with FakeApiServer(tls=True, namespaces=DEFAULT_NAMESPACES) as server:
        server.create(make_namespace("netplex-system"))
        server.create(make_webhook_configuration("MutatingWebhookConfiguration", "netplex-mutating", MUTATING_HOOKS))
        server.create(make_webhook_configuration("ValidatingWebhookConfiguration", "netplex-validating",
                                                 VALIDATING_HOOKS))
        yield server


@pytest.fixture
def kubeconfig(api: FakeApiServer, tmp_path: Path) -> Path:
    return api.kubeconfig(tmp_path / "kubeconfig")


def ca_bundles(api: FakeApiServer) -> dict[str, str | None]:
    """``webhook name -> clientConfig.caBundle`` over both configurations."""
    found: dict[str, str | None] = {}
    for plural, name in (("mutatingwebhookconfigurations", "netplex-mutating"),
                         ("validatingwebhookconfigurations", "netplex-validating")):
        config = api.get(plural, None, name)
        assert config is not None
        for hook in config["webhooks"]:
            found[hook["name"]] = hook["clientConfig"].get("caBundle")
    return found


def verified_certificate(port: int, ca_pem: bytes, hostname: str = SERVICE_HOST) -> x509.Certificate:
    """Handshake with 127.0.0.1:``port`` as a strict client trusting only ``ca_pem``."""
    ctx = ssl.create_default_context(cadata=ca_pem.decode())
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname=hostname) as conn:
        der = conn.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


class WebhookProcess:
    """``netplex-webhook ARGS`` as installed (the console script), logs to a file."""

    def __init__(self, tmp_path: Path, args: list[str]) -> None:
        script = Path(sys.executable).with_name("netplex-webhook")
        command = [str(script)] if script.exists() else [sys.executable, "-m", "webhook.server"]
        self.log_path, self.stdout_path = tmp_path / "webhook.log", tmp_path / "webhook.out"
        self._log, self._stdout = self.log_path.open("wb"), self.stdout_path.open("wb")
        self.proc = subprocess.Popen([*command, *args], cwd=REPO, stdout=self._stdout, stderr=self._log)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def wait_for_log(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            found = re.search(pattern, self.log())
            if found:
                return found
            time.sleep(0.05)
        found = re.search(pattern, self.log())
        if found:
            return found
        raise AssertionError(f"{pattern!r} not logged (exit {self.proc.poll()}); log:\n{self.log()}")

    def port(self) -> int:
        return int(self.wait_for_log(r"serving on https://127\.0\.0\.1:(\d+)").group(1))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
        self._stdout.close()
