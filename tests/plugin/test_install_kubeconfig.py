"""The kubeconfig the node installer writes, and reading the service-account token's expiry."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from plugin.cni import kubeconfig
from plugin.node.credentials import (
    ServiceAccount,
    expiry_warning,
    render,
    server_url,
    token_expiry,
)

CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def jwt(claims: dict[str, Any] | str) -> str:
    """A token shaped like a JWT; the signature is never checked by the installer."""
    def part(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")
    header = part(json.dumps({"alg": "RS256"}).encode())
    payload = claims if isinstance(claims, str) else part(json.dumps(claims).encode())
    return f"{header}.{payload}.c2ln"


@pytest.mark.parametrize(("host", "url"), [
    ("10.96.0.1", "https://10.96.0.1:443"),
    ("fd00:10:96::1", "https://[fd00:10:96::1]:443"),
    ("[fd00::1]", "https://[fd00::1]:443"),
    ("kubernetes.default.svc", "https://kubernetes.default.svc:443"),
])
def test_server_url_brackets_ipv6_hosts(host: str, url: str) -> None:
    assert server_url(host, "443") == url


def test_rendered_kubeconfig_is_read_by_the_plugin_with_token_and_ca_inline(tmp_path: Path) -> None:
    token = jwt({"exp": 2_000_000_000})
    path = tmp_path / "netplex.kubeconfig"
    path.write_bytes(render("https://[fd00::1]:6443", ServiceAccount(token, CA, "netplex-system")))
    connection = kubeconfig.from_kubeconfig(str(path))
    assert (connection.server, connection.token, connection.ca_data) == ("https://[fd00::1]:6443", token, CA)
    assert not connection.insecure


def test_rendered_kubeconfig_is_the_yaml_kubectl_reads() -> None:
    text = render("https://10.96.0.1:443", ServiceAccount("tok", CA, "netplex-system"))
    assert yaml.safe_load(text) == {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "netplex", "cluster": {
            "server": "https://10.96.0.1:443",
            "certificate-authority-data": base64.b64encode(CA).decode(),
        }}],
        "users": [{"name": "netplex", "user": {"token": "tok"}}],
        "contexts": [{"name": "netplex", "context": {"cluster": "netplex", "user": "netplex",
                                                      "namespace": "netplex-system"}}],
        "current-context": "netplex",
    }


def test_namespace_is_left_out_when_unknown() -> None:
    text = render("https://10.96.0.1:443", ServiceAccount("tok", CA, ""))
    assert "namespace" not in yaml.safe_load(text)["contexts"][0]["context"]


def test_token_expiry_is_the_jwt_exp_claim() -> None:
    assert token_expiry(jwt({"exp": 1_700_000_000, "iat": 1_699_996_400})) == 1_700_000_000.0


@pytest.mark.parametrize("token", [
    "legacy-opaque-token",
    jwt({"iss": "kubernetes/serviceaccount"}),
    jwt({"exp": "soon"}),
    jwt({"exp": True}),
    jwt("%%%not-base64%%%"),
    jwt(base64.urlsafe_b64encode(b"[1, 2]").decode()),
])
def test_token_without_a_usable_exp_has_no_expiry(token: str) -> None:
    assert token_expiry(token) is None


def test_no_warning_while_the_token_has_more_than_the_margin_left() -> None:
    assert expiry_warning(1000.0, now=600.0, margin=300.0) is None
    assert expiry_warning(None, now=600.0, margin=300.0) is None


def test_warning_when_the_token_nears_expiry_unrotated() -> None:
    assert expiry_warning(1000.0, now=880.0, margin=300.0) == (
        "the service account token expires in 120s and has not been rotated (warning margin 300s); kubelet "
        "normally replaces a projected token at 80% of its life: check the kubelet on this node and the "
        "DaemonSet's token volume, or the plugin's API calls will fail with Unauthorized"
    )


def test_warning_says_when_the_token_has_expired() -> None:
    warning = expiry_warning(1000.0, now=1060.0, margin=300.0)
    assert warning is not None
    assert warning.startswith("the service account token expired 60s ago and has not been rotated")
