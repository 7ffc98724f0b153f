"""Shared fixtures for the webhook transport tests.

- :class:`ScriptedHandler`: a Handler whose verdict depends on the object's name
  ("bad..." denied, "patch-me" patched, "warn-me" warned, "boom" raises, "slow" sleeps).
- :func:`admission_review`: a real AdmissionReview document as the API server sends it.
- :func:`running_server`: the production uvicorn server (``webhook.server.make_server``)
  on a free loopback port in a thread, for real HTTPS.

``ScriptedHandler`` is imported by the subprocess started in ``test_https.py``.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import ipaddress
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from plugin.model.problems import Problem
from webhook import server as webhook_server
from webhook import tls
from webhook.app import create_app
from webhook.verdicts import Verdict, allowed, denied, patched

NETWORKS = "k8s.v1.cni.cncf.io/networks"
PATCH_OPS: list[dict[str, Any]] = [
    {"op": "add", "path": "/metadata/labels", "value": {"netplex.io/injected": "true"}},
    {"op": "add", "path": "/spec/containers/0/resources/requests/intel.com~1sriov", "value": "1"},
]


class ScriptedHandler:
    """Decides by ``request.object.metadata.name``; records what it was asked."""

    def __init__(self, *, slow_seconds: float = 1.5, started_marker: str | None = None) -> None:
        self.is_ready = True
        self.size = 3
        self.slow_seconds = slow_seconds
        self.started_marker = started_marker
        self.seen: list[dict[str, Any]] = []

    def validate(self, request: dict[str, Any]) -> Verdict:
        return self._decide(request, mutating=False)

    def mutate(self, request: dict[str, Any]) -> Verdict:
        return self._decide(request, mutating=True)

    def ready(self) -> bool:
        return self.is_ready

    def index_size(self) -> int:
        return self.size

    def _decide(self, request: dict[str, Any], *, mutating: bool) -> Verdict:
        self.seen.append(request)
        name = ((request.get("object") or {}).get("metadata") or {}).get("name", "")
        if name == "boom":
            raise RuntimeError("scripted failure")
        if name == "slow":
            if self.started_marker:
                Path(self.started_marker).write_text("started")
            time.sleep(self.slow_seconds)
            return allowed()
        if name.startswith("bad"):
            return denied(
                [
                    Problem("metadata.name", f'"{name}" starts with "bad"; pick another name'),
                    Problem(
                        f"metadata.annotations[{NETWORKS}][1].interface",
                        '"data/1" is not a valid interface name (contains \'/\'); use at most 15 characters',
                    ),
                ],
                warnings=(Problem("metadata.labels", "no app label; this pod is hard to select"),),
            )
        if name == "warn-me":
            return allowed(Problem(f"metadata.annotations[{NETWORKS}]", 'network "lan" is selected twice'))
        if name == "patch-me":
            if mutating:
                return patched(copy.deepcopy(PATCH_OPS))
            return allowed()
        return allowed()


def pod(name: str, namespace: str = "team-a") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": str(uuid.uuid4()),
            "annotations": {NETWORKS: "lan, data@net1"},
            "labels": {"app": "demo"},
        },
        "spec": {
            "containers": [
                {"name": "app", "image": "registry.example/app:1.2", "resources": {}},
            ],
            "restartPolicy": "Always",
        },
        "status": {},
    }


def admission_review(
    obj: dict[str, Any],
    *,
    api_version: str = "admission.k8s.io/v1",
    operation: str = "CREATE",
    uid: str | None = None,
) -> dict[str, Any]:
    """An AdmissionReview shaped like the API server's (fields as in k8s.io/api/admission/v1)."""
    group, _, version = obj["apiVersion"].rpartition("/")
    kind = obj["kind"]
    resource = {"Pod": "pods", "Namespace": "namespaces", "Deployment": "deployments"}.get(kind, kind.lower() + "s")
    gvk = {"group": group, "version": version, "kind": kind}
    gvr = {"group": group, "version": version, "resource": resource}
    return {
        "apiVersion": api_version,
        "kind": "AdmissionReview",
        "request": {
            "uid": uid or str(uuid.uuid4()),
            "kind": gvk,
            "resource": gvr,
            "requestKind": gvk,
            "requestResource": gvr,
            "name": obj["metadata"]["name"],
            "namespace": obj["metadata"].get("namespace", ""),
            "operation": operation,
            "userInfo": {
                "username": "kubernetes-admin",
                "groups": ["system:masters", "system:authenticated"],
            },
            "object": obj,
            "oldObject": None,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions", "fieldManager": "kubectl-client-side-apply"},
        },
    }


@pytest.fixture
def handler() -> ScriptedHandler:
    return ScriptedHandler()


@pytest.fixture(scope="session")
def cert_pair() -> tls.CertPair:
    return tls.self_signed(["webhook.test"])


@dataclass
class RunningServer:
    url: str
    port: int
    ca_file: Path
    handler: Any

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


@contextlib.contextmanager
def running_server(app: Any, ctx: ssl.SSLContext, *, shutdown_timeout: int = 5) -> Iterator[int]:
    """Run the production uvicorn server for ``app`` on 127.0.0.1 in a thread; yield the port."""
    sock = webhook_server.bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    srv = webhook_server.make_server(app, ctx, shutdown_timeout=shutdown_timeout, log_level="warning")
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    try:
        yield port
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def https_server(handler: ScriptedHandler, cert_pair: tls.CertPair, tmp_path: Path) -> Iterator[RunningServer]:
    """The webhook app with ``handler``, over real HTTPS with a self-signed certificate."""
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(cert_pair.ca)
    ctx = tls.context_from_pem(cert_pair.cert, cert_pair.key)
    with running_server(create_app(handler), ctx) as port:
        yield RunningServer(f"https://127.0.0.1:{port}", port, ca_file, handler)


# -- certificates for reload tests --------------------------------------------------------


@dataclass(frozen=True)
class Leaf:
    cert: bytes
    key: bytes
    fingerprint: bytes


def make_leaf(common_name: str, *, key_type: str = "ec", key: Any = None) -> Leaf:
    """A self-signed serving certificate for 127.0.0.1 (reuse ``key`` for a same-key renewal)."""
    if key is None:
        key = ec.generate_private_key(ec.SECP256R1()) if key_type == "ec" else rsa.generate_private_key(65537, 2048)
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Leaf(
        cert=cert.public_bytes(serialization.Encoding.PEM),
        key=key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        fingerprint=cert.fingerprint(hashes.SHA256()),
    )


def leaf_key(leaf: Leaf) -> Any:
    return serialization.load_pem_private_key(leaf.key, password=None)


def presented_certificate(port: int) -> x509.Certificate:
    """The certificate the server on 127.0.0.1:``port`` presents in a fresh TLS handshake."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, ctx.wrap_socket(raw) as conn:
        der = conn.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def presented_fingerprint(port: int) -> bytes:
    return presented_certificate(port).fingerprint(hashes.SHA256())
