"""The kubeconfig the node installer writes for the plugin, and the token's expiry (pure).

The plugin runs on the host, where the installer pod's projected service-account token
path (``/var/run/secrets/kubernetes.io/serviceaccount/token``) does not exist. So the
kubeconfig carries the token and the CA *inline*, and the installer rewrites it whenever
either changes: kubelet rotates a projected token at about 80% of its lifetime, and the
installer's next reconcile copies the new one. This is the fix for Multus' best-known
failure on long-running nodes, ``Unauthorized`` once a bound token written once has
expired (reference/multus.md §14.6).

Caveat that no file can fix: a bound token dies with its pod, so while a DaemonSet rollout
replaces the installer pod, the host kubeconfig holds a dead token until the new pod's
first reconcile (seconds).

The expiry is read from the token's JWT ``exp`` claim without verifying the signature:
it is our own token, and we only use it to warn when kubelet has not rotated it in time.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from plugin.cni.kubeconfig import service_url

KUBECONFIG_NAME = "netplex.kubeconfig"
CONTEXT = "netplex"


server_url = service_url  # the URL the plugin itself builds in-cluster (plugin.cni.kubeconfig)


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    """What the installer pod knows about itself, read from its service-account volume."""

    token: str
    ca: bytes
    namespace: str


def render(server: str, account: ServiceAccount) -> bytes:
    """The kubeconfig, as JSON: kubectl reads it (JSON is YAML), and the plugin reads it with
    ``json`` alone, which every plugin run imports anyway; the YAML reader
    (``plugin.cni.yamlreader``) is then never imported on a node's default path.

    Stable output (fixed key order) means no rewrite while nothing changed.
    """
    context: dict[str, str] = {"cluster": CONTEXT, "user": CONTEXT}
    if account.namespace:
        context["namespace"] = account.namespace
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {
            "server": server,
            "certificate-authority-data": base64.b64encode(account.ca).decode("ascii"),
        }}],
        "users": [{"name": CONTEXT, "user": {"token": account.token}}],
        "contexts": [{"name": CONTEXT, "context": context}],
        "current-context": CONTEXT,
    }
    return (json.dumps(config, indent=2) + "\n").encode("utf-8")


def token_expiry(token: str) -> float | None:
    """The JWT ``exp`` claim (seconds since the epoch), or None when there is none.

    A legacy (secret-based) token has no ``exp``; anything that is not a JWT with a
    numeric ``exp`` is treated the same: nothing to warn about.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (binascii.Error, ValueError, UnicodeError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    return float(exp)


def expiry_warning(expires_at: float | None, now: float, margin: float) -> str | None:
    """A warning when the current token expires within ``margin`` seconds (or has expired).

    The installer rewrites the kubeconfig as soon as the token file changes, so a token
    this close to its end means kubelet has not rotated it: the plugin's API calls will
    fail with ``Unauthorized`` once it expires.
    """
    if expires_at is None:
        return None
    left = expires_at - now
    if left > margin:
        return None
    when = f"expired {int(-left)}s ago" if left <= 0 else f"expires in {int(left)}s"
    return (
        f"the service account token {when} and has not been rotated (warning margin {int(margin)}s); "
        "kubelet normally replaces a projected token at 80% of its life: check the kubelet on this node "
        "and the DaemonSet's token volume, or the plugin's API calls will fail with Unauthorized"
    )
