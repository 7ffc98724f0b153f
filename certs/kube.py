"""The cluster side of certificates: two Secrets and the webhook configurations' caBundle.

- ``netplex-webhook-tls`` (type ``kubernetes.io/tls``: ``tls.crt``, ``tls.key``, ``ca.crt``)
  holds the serving pair the webhook Deployment mounts. :func:`apply_tls_secret` creates
  it or, when it exists, replaces its data (keeping its labels and annotations), with
  the resourceVersion read just before, so a concurrent writer is not overwritten blindly.
- ``netplex-webhook-ca`` (``ca.crt``, ``ca.key``) holds the CA of the webhook's in-cluster
  ``--self-signed`` mode. :func:`get_or_create_ca` creates it; when another replica was
  first (``409 AlreadyExists``), it reads that one, so every replica serves a certificate
  from the same CA and one ``caBundle`` fits them all.
- :func:`patch_ca_bundles` writes the CA into every ``webhooks[].clientConfig.caBundle``
  of ``netplex-mutating`` and ``netplex-validating`` with a JSON patch guarded by a
  ``test`` of the resourceVersion (the entries are addressed by index, so the patch must
  apply to the object that was read). A configuration annotated
  ``cert-manager.io/inject-ca-from`` is left to cert-manager's CA injector: two writers
  would undo each other.

The API client is passed in (built by :func:`webhook.cluster.load_api_client`); objects
travel as plain dicts (``_preload_content=False``), never through the client's models.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from certs import CertsError, ClusterError
from certs.authority import Authority, CertPair, load_authority
from certs.bundle import PREVIOUS_CAS_KEPT, decode, encode, rotated_bundle

NAMESPACE = "netplex-system"
SERVICE = "netplex-webhook"
TLS_SECRET = "netplex-webhook-tls"
CA_SECRET = "netplex-webhook-ca"
MUTATING, VALIDATING = "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"
WEBHOOK_CONFIGURATIONS: tuple[tuple[str, str], ...] = ((MUTATING, "netplex-mutating"), (VALIDATING, "netplex-validating"))
INJECT_CA_FROM = "cert-manager.io/inject-ca-from"
LABELS = {"app.kubernetes.io/name": "netplex", "app.kubernetes.io/component": "webhook"}
ATTEMPTS = 3  # optimistic-concurrency retries before giving up on a busy object

_JSON_PATCH = "application/json-patch+json"

JSON = dict[str, Any]


# -- objects (pure) -----------------------------------------------------------------------


def tls_secret(pair: CertPair, *, namespace: str, name: str = TLS_SECRET) -> JSON:
    """The serving pair as a ``kubernetes.io/tls`` Secret, ``ca.crt`` included."""
    data = {"tls.crt": pair.cert, "tls.key": pair.key, "ca.crt": pair.ca}
    return _secret(name, namespace, "kubernetes.io/tls", data)


def ca_secret(ca: Authority, *, namespace: str, name: str = CA_SECRET) -> JSON:
    """The CA (certificate and key) of the in-cluster ``--self-signed`` mode."""
    return _secret(name, namespace, "Opaque", {"ca.crt": ca.cert_pem, "ca.key": ca.key_pem})


def authority_from_secret(secret: Mapping[str, Any], *, now: datetime.datetime) -> Authority:
    """The CA kept in a ``netplex-webhook-ca`` Secret, checked as any CA is."""
    ref = _ref(secret)
    data = secret.get("data") or {}
    pems: list[bytes] = []
    for key in ("ca.crt", "ca.key"):
        value = data.get(key)
        if not isinstance(value, str) or not value:
            raise CertsError(f"Secret {ref} has no data[{key}]")
        try:
            pems.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            raise CertsError(f"Secret {ref} data[{key}] is not base64") from None
    return load_authority(pems[0], pems[1], now=now, cert_source=f"Secret {ref} data[ca.crt]",
                          key_source=f"Secret {ref} data[ca.key]")


def bundle_patch(config: Mapping[str, Any], ca_pem: bytes, *, now: datetime.datetime,
                 keep: int = PREVIOUS_CAS_KEPT) -> list[JSON]:
    """JSON patch setting each webhook's caBundle (see :func:`certs.bundle.rotated_bundle`).

    Empty when every entry already holds that bundle: no change, no write. Otherwise the
    first operation tests ``metadata.resourceVersion``, so the indexes still point at the
    entries that were read.
    """
    ops: list[JSON] = []
    for i, hook in enumerate(config.get("webhooks") or []):
        current = str((hook.get("clientConfig") or {}).get("caBundle") or "")
        try:
            previous = decode(current, "") if current else b""
        except CertsError:
            previous = b""
        wanted = encode(rotated_bundle(ca_pem, previous, now=now, keep=keep))
        if wanted != current:
            ops.append({"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": wanted})
    if not ops:
        return []
    version = str((config.get("metadata") or {}).get("resourceVersion", ""))
    return [{"op": "test", "path": "/metadata/resourceVersion", "value": version}, *ops]


# -- outcomes -----------------------------------------------------------------------------

SecretWrite = Literal["created", "replaced", "unchanged"]


@dataclass(frozen=True, slots=True)
class BundleOutcome:
    """What happened to one webhook configuration's caBundle."""

    kind: str
    name: str
    state: Literal["patched", "unchanged", "missing", "cert-manager"]
    webhooks: int = 0

    @property
    def ok(self) -> bool:
        return self.state != "missing"

    def text(self) -> str:
        who = f"{self.kind} {self.name}"
        if self.state == "patched":
            return f"{who}: caBundle set on {self.webhooks} of its webhooks"
        if self.state == "unchanged":
            return f"{who}: caBundle already up to date"
        if self.state == "cert-manager":
            return f"{who}: not patched, it has {INJECT_CA_FROM} (cert-manager injects its caBundle)"
        return (f'{who} not found: its caBundle cannot be set; apply the manifests first '
                "(kubectl apply -k manifests/), then run again")


# -- API calls ----------------------------------------------------------------------------


def apply_tls_secret(api_client: Any, secret: JSON) -> SecretWrite:
    """Create the Secret, or replace its data when it exists (rotation)."""
    api = _Api(api_client)
    meta = secret["metadata"]
    try:
        api.create_secret(meta["namespace"], secret)
        return "created"
    except ClusterError as exc:
        if exc.reason != "AlreadyExists":
            raise
    attempt = 0
    while True:
        attempt += 1
        current = api.read_secret(meta["namespace"], meta["name"])
        if current.get("type", "Opaque") != secret["type"]:
            raise CertsError(
                f"Secret {_ref(current)} has type {current.get('type', 'Opaque')}, not {secret['type']} "
                "(the type of a Secret cannot change); delete it, then run again"
            )
        if current.get("data") == secret["data"]:
            return "unchanged"
        wanted = copy.deepcopy(current)
        wanted["data"] = secret["data"]
        wanted["metadata"]["labels"] = {**(current["metadata"].get("labels") or {}), **meta.get("labels", {})}
        try:
            api.replace_secret(meta["namespace"], meta["name"], wanted)
            return "replaced"
        except ClusterError as exc:
            if exc.reason != "Conflict" or attempt == ATTEMPTS:
                raise


def get_or_create_ca(
    api_client: Any,
    *,
    namespace: str,
    make: Callable[[], Authority],
    now: datetime.datetime,
    name: str = CA_SECRET,
) -> tuple[Authority, bool]:
    """The shared CA and whether this call created it.

    Create first and read on ``409 AlreadyExists``: of two replicas starting together,
    exactly one create succeeds and the other reads what it wrote.
    """
    api = _Api(api_client)
    made = make()
    try:
        api.create_secret(namespace, ca_secret(made, namespace=namespace, name=name))
        return made, True
    except ClusterError as exc:
        if exc.reason != "AlreadyExists":
            raise
    return authority_from_secret(api.read_secret(namespace, name), now=now), False


def patch_ca_bundles(
    api_client: Any,
    ca_pem: bytes,
    *,
    now: datetime.datetime,
    keep: int = PREVIOUS_CAS_KEPT,
    configurations: tuple[tuple[str, str], ...] = WEBHOOK_CONFIGURATIONS,
) -> list[BundleOutcome]:
    """Set the caBundle of every webhook of each configuration; one outcome each.

    A missing configuration is an outcome (``missing``), not an exception: the caller
    decides whether that fails the command or is a warning at the webhook's start.
    """
    api = _Api(api_client)
    outcomes: list[BundleOutcome] = []
    for kind, name in configurations:
        for attempt in range(ATTEMPTS):
            try:
                config = api.read_configuration(kind, name)
            except ClusterError as exc:
                if exc.status != 404:
                    raise
                outcomes.append(BundleOutcome(kind, name, "missing"))
                break
            if INJECT_CA_FROM in ((config.get("metadata") or {}).get("annotations") or {}):
                outcomes.append(BundleOutcome(kind, name, "cert-manager"))
                break
            ops = bundle_patch(config, ca_pem, now=now, keep=keep)
            if not ops:
                outcomes.append(BundleOutcome(kind, name, "unchanged", len(config.get("webhooks") or [])))
                break
            try:
                api.patch_configuration(kind, name, ops)
            except ClusterError as exc:
                # 422: the resourceVersion test failed (changed since read); 409: the same, seen later
                if exc.status not in (409, 422) or attempt == ATTEMPTS - 1:
                    raise
                continue
            outcomes.append(BundleOutcome(kind, name, "patched", len(ops) - 1))
            break
    return outcomes


def connect(load: Callable[[str | None], Any], kubeconfig: str | None) -> Any:
    """``load(kubeconfig)`` (None: in-cluster), with its failures as one :class:`CertsError`.

    The client raises ``ConfigException``, ``OSError`` or YAML errors for a file that is
    missing or wrong, and for a pod without a service account; all mean "cannot connect".
    """
    try:
        return load(kubeconfig)
    except Exception as exc:
        where = f"kubeconfig {kubeconfig}" if kubeconfig else "in-cluster configuration (no kubeconfig given or found)"
        raise CertsError(f"cannot use the {where}: {exc}") from None


class _Api:
    """The few calls made here, as dicts in and out, errors as :class:`ClusterError`."""

    def __init__(self, api_client: Any) -> None:
        from kubernetes import client

        self._core = client.CoreV1Api(api_client)
        self._admission = client.AdmissionregistrationV1Api(api_client)

    def create_secret(self, namespace: str, body: JSON) -> JSON:
        name = f"{namespace}/{body['metadata']['name']}"
        return self._call("create", f"Secret {name}", self._core.create_namespaced_secret, namespace, body)

    def read_secret(self, namespace: str, name: str) -> JSON:
        return self._call("read", f"Secret {namespace}/{name}", self._core.read_namespaced_secret, name, namespace)

    def replace_secret(self, namespace: str, name: str, body: JSON) -> JSON:
        call = self._core.replace_namespaced_secret
        return self._call("replace", f"Secret {namespace}/{name}", call, name, namespace, body)

    def read_configuration(self, kind: str, name: str) -> JSON:
        call = (self._admission.read_mutating_webhook_configuration if kind == MUTATING
                else self._admission.read_validating_webhook_configuration)
        return self._call("read", f"{kind} {name}", call, name)

    def patch_configuration(self, kind: str, name: str, ops: list[JSON]) -> JSON:
        call = (self._admission.patch_mutating_webhook_configuration if kind == MUTATING
                else self._admission.patch_validating_webhook_configuration)
        return self._call("patch", f"{kind} {name}", call, name, ops, _content_type=_JSON_PATCH)

    @staticmethod
    def _call(verb: str, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> JSON:
        from kubernetes.client.rest import ApiException
        from urllib3.exceptions import HTTPError

        try:
            response = fn(*args, _preload_content=False, **kwargs)
        except ApiException as exc:
            raise _api_error(verb, what, exc) from None
        except (HTTPError, OSError) as exc:
            raise ClusterError(f"{verb} {what}: cannot reach the API server: {exc}") from None
        result: JSON = json.loads(response.data)
        return result


def _api_error(verb: str, what: str, exc: Any) -> ClusterError:
    """``verb what: <Status message> (<code> <reason>)`` from an ApiException."""
    reason, message = str(exc.reason or ""), ""
    try:
        status = json.loads(exc.body or "")
        if isinstance(status, dict):
            reason = str(status.get("reason") or reason)
            message = str(status.get("message") or "")
    except ValueError:
        message = str(exc.body or "").strip()[:200]
    text = f"{verb} {what}: {message or 'no message'} ({exc.status} {reason})"
    return ClusterError(text.replace(" )", ")"), status=exc.status, reason=reason)


def _secret(name: str, namespace: str, kind: str, data: Mapping[str, bytes]) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(LABELS)},
        "type": kind,
        "data": {key: base64.b64encode(value).decode("ascii") for key, value in data.items()},
    }


def _ref(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}" if meta.get("namespace") else str(meta.get("name"))
