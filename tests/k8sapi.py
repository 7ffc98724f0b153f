"""An in-process Kubernetes API server test double: pods, NADs, namespaces, secrets, events and
webhook configurations over real HTTP(S).

CI cannot run a real API server, so tests talk to this one instead. It serves the few
endpoints netplex uses, with the real paths, status codes, resourceVersions, list/watch
shapes and ``Status`` error bodies, so that the official ``kubernetes`` client (and the
plugin's own small client) cannot tell the difference for the calls they make::

    with FakeApiServer(tls=True) as api:
        api.create(make_namespace("blue"))
        api.create(make_nad("macvlan-a", "blue", config={"cniVersion": "1.0.0", "type": "macvlan"}))
        kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
        ...  # run the code under test against kubeconfig
        assert [r.path for r in api.requests_matching("PATCH", r".*/pods/.*/status")]

Served (JSON only; ``/api/v1/watch/...`` legacy paths too):

- ``/api``, ``/apis``, ``/apis/k8s.cni.cncf.io``, ``/api/v1``, ``/apis/k8s.cni.cncf.io/v1``, ``/version``,
  ``/apis/admissionregistration.k8s.io``, ``/apis/admissionregistration.k8s.io/v1``
- ``/api/v1/namespaces[/{name}]``: get, list, watch, create, patch, put, delete
- ``/api/v1/pods`` and ``/apis/k8s.cni.cncf.io/v1/network-attachment-definitions``: all-namespace list, watch
- ``/api/v1/namespaces/{ns}/pods[/{name}]``: get, list, watch, create, patch, put, delete
- ``/api/v1/namespaces/{ns}/pods/{name}/status``: get, patch, put
- ``/apis/k8s.cni.cncf.io/v1/namespaces/{ns}/network-attachment-definitions[/{name}]``: same verbs as pods
- ``/api/v1/namespaces/{ns}/secrets[/{name}]`` (and ``/api/v1/secrets``): same verbs as pods, no status
- ``/api/v1/namespaces/{ns}/events[/{name}]`` (and ``/api/v1/events``): same verbs as secrets (core/v1
  Events, what client-go's legacy recorder posts and ``kubectl describe`` shows)
- ``/apis/admissionregistration.k8s.io/v1/{mutating,validating}webhookconfigurations[/{name}]``
  (cluster-scoped): get, list, watch, create, patch, put, delete

Behaviour kept from the real server (kube-apiserver 1.31 with the Multus NAD CRD):

- one global resourceVersion counter (a string on the wire), bumped by every write; a write
  that changes nothing is not a write (same resourceVersion, no watch event);
- lists are ``PodList``/``NamespaceList``/``NetworkAttachmentDefinitionList`` with
  ``metadata.resourceVersion``; built-in list items carry no kind/apiVersion, CR items do;
- errors are ``Status`` objects with the real code, reason, message and details;
- PUT/PATCH whose object carries a ``metadata.resourceVersion`` other than the stored one is
  ``409 Conflict``; a NAD PUT without one is ``422`` (CRs forbid unconditional updates); a
  ``metadata.uid`` in a PUT body is a precondition (``409``), changed by a patch it is ``422``;
- ``pods/status`` writes keep the old spec; writes to the pod itself keep the old status;
- NADs: ``spec.config`` must be a string (the CRD schema), unknown fields are pruned,
  ``metadata.generation`` starts at 1 and grows when anything outside metadata changes;
- strategic merge patch is refused for NADs with ``415``, as for every CR;
- Secrets: ``type`` defaults to ``Opaque`` and cannot change (``422``); ``stringData`` is merged
  into ``data`` and not stored; ``data`` keys must be config keys (``422``); ``kubernetes.io/tls``
  needs ``data[tls.crt]`` and ``data[tls.key]`` (``422``); a ``data`` value that is not base64 is
  ``400`` (it cannot be decoded into the ``[]byte`` field);
- webhook configurations: ``metadata.generation`` as for CRs (1, then +1 when ``webhooks``
  change); a ``clientConfig.caBundle`` that is not base64 is ``400``, as for Secret data;
- Events (core/v1), validated as kube-apiserver's ``legacyValidateEvent`` does for that API:
  without ``eventTime`` only ``involvedObject.namespace`` is checked (it must equal the event's
  namespace, or be empty in ``default``; so a missing ``involvedObject`` is ``422`` outside
  ``default``, a missing ``reason`` is accepted); with ``eventTime`` set, ``reportingComponent``
  (printed as ``reportingController``), ``reportingInstance``, ``action`` and ``reason`` are
  required and ``message`` is limited to 1024 bytes; names are only checked as path segments;
  a repeated name is ``409 AlreadyExists``; field selectors on ``involvedObject.*``, ``reason``,
  ``reportingComponent``, ``source`` and ``type`` work; a timestamp that is not RFC 3339 is ``400``;
- DELETE answers a Success Status for NADs, Secrets, Events and webhook configurations, the object for
  pods and namespaces;
- watches stream chunked JSON lines; a resourceVersion older than the kept history (bounded,
  ``history_limit`` events, or everything before ``compact()``) gets the real answer: HTTP 200
  and one ``ERROR`` event holding a ``410 Expired`` "too old resource version: N (M)" Status;
- an object that stops (starts) matching a watch's selectors is sent as DELETED (ADDED).

Not modelled (a test that depends on one of these needs a real cluster, or a change here):

- authorization (RBAC, 403s) beyond one bearer token; admission (webhooks, defaulting,
  pod spec immutability, quota); Pods are stored exactly as sent, with no defaulted fields,
  and their ``status`` is not reset on create;
- ``metadata.managedFields``, server-side apply (``application/apply-patch+yaml`` is ``415``
  with a message saying so), ``dryRun``, ``fieldValidation``, ``fieldManager``;
- strategic merge patch list semantics (patchMergeKey, ``$patch``, ``$retainKeys``...): here a
  strategic merge patch is a JSON merge patch, and one that holds a list or a ``$`` directive
  is answered with ``500`` naming the limit, so a test never passes by accident;
- graceful deletion and finalizers (objects go at once; deleting a namespace deletes its
  pods and NADs at once); ``deletecollection``; generation of pods;
- list ``resourceVersion``/``resourceVersionMatch`` (always the latest state); ``continue``
  tokens page through the *current* state, not a snapshot; watch from a resourceVersion
  newer than the server's waits for it instead of answering ``504``;
- periodic watch bookmarks (one is sent when ``allowWatchBookmarks`` and the watch reaches
  ``timeoutSeconds``, or when a test calls ``bookmark()``); a watch without
  ``timeoutSeconds`` lasts until the client goes or the server stops;
- label/annotation key and value validation, object size limits, protobuf/CBOR, HTTP/2;
- immutable Secrets (``immutable: true``), the other Secret types' required keys, and the
  validation of webhook entries (names, rules, clientConfig, sideEffects...) beyond caBundle;
- a watch that falls behind the kept history gets the 410 ERROR event (the real cacher
  just closes it; the client's next watch then gets the 410);
- Events: the TTL (the real server drops them after an hour), ``events.k8s.io/v1``, series and
  the count/lastTimestamp updates a recorder does with PATCH (they work as for any object).

Test controls beyond the store: ``fail_next`` and ``delay`` (below), ``compact()``, ``bookmark()``,
``drop_watches()`` (end every open watch stream, as a restart or a load balancer does; clients
resume) and ``restart()`` (stop, then serve again on the same port with the same objects).

Messages copied from the real server (safe to assert on): NotFound, AlreadyExists, Conflict
(stale resourceVersion and delete preconditions), Unauthorized, 415 UnsupportedMediaType,
422 Invalid for names, NAD ``spec.config`` type, CR unconditional update and watch-list
options, 422 for a failed JSON patch operation, ``json: cannot unmarshal ... jsonpatch.Patch``,
name/namespace mismatch, UID precondition and immutability, "resourceVersion should not be
set on objects to be created" (500, no reason), "too old resource version", "field label not
supported", Secret ``type`` immutability, required ``kubernetes.io/tls`` keys and config-key
names, Event namespace/required/length causes, and the generic 404/405 texts. Approximations (assert on code and reason only): bad JSON
bodies and patches, Secret data or caBundle that is not base64, bad label selectors, bad
``continue`` tokens, bad query numbers/booleans, Event timestamps that are not RFC 3339 and a
``reportingComponent`` that is not a qualified name, and the injected ``fail_next`` bodies (real reason and typical message for the code; 429 carries
``Retry-After: 1``). Failures injected by ``fail_next`` come before authentication.

Outages (test controls; the store stays, so a test can change objects while clients are cut off):

- ``down()``: the server goes away as a crashed or restarting kube-apiserver does, for as
  long as the test wants: the port refuses connections, every open connection (keep-alive
  ones too) is closed, and open watches end without their closing chunk; ``up()`` serves
  again on the same address (``restart()`` is both at once, without cutting connections).
- ``drop_watches(cut=True)``: every open watch is cut mid-stream (no closing chunk, no TLS
  close_notify), as a network failure does; other connections stay. Without ``cut`` the
  streams end cleanly.
- ``delay()``: slow answers (the server holds matching requests before answering).

Exceptions::

    Exception
     └── ApiError          a Status the double answers with (``.code``, ``.reason``, ``.status``);
                           raised by the Python API (``create``, ``update``...) the same way
                           the HTTP side would have answered
"""

from __future__ import annotations

import base64
import contextlib
import copy
import datetime as dt
import http.server
import json
import re
import secrets
import socket
import ssl
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import jsonpatch

JSON = dict[str, Any]

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
NAD_GROUP, NAD_VERSION, NAD_PLURAL = "k8s.cni.cncf.io", "v1", "network-attachment-definitions"
ADMISSION_GROUP, ADMISSION_VERSION = "admissionregistration.k8s.io", "v1"
INITIAL_EVENTS_END = "k8s.io/initial-events-end"

_MERGE = "application/merge-patch+json"
_STRATEGIC = "application/strategic-merge-patch+json"
_JSON_PATCH = "application/json-patch+json"
_APPLY = "application/apply-patch+yaml"

_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    r"validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
    "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)


# --------------------------------------------------------------------------- resources


@dataclass(frozen=True)
class Resource:
    """One served resource: how it is named on the wire and which real rules apply to it."""

    plural: str
    singular: str
    kind: str
    group: str  # "" is the core group
    version: str
    namespaced: bool
    short_names: tuple[str, ...]
    field_labels: frozenset[str]
    name_is_label: bool = False  # namespaces: RFC 1123 label, others: subdomain
    has_status: bool = False  # pods/status subresource
    is_custom: bool = False  # a CRD: no strategic merge, items keep kind, generation, pruning
    returns_deleted_object: bool = True
    unconditional_update: bool = True
    has_generation: bool = False  # metadata.generation without being a CR (webhook configurations)

    @property
    def tracks_generation(self) -> bool:
        return self.is_custom or self.has_generation

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``pods`` or ``network-attachment-definitions.k8s.cni.cncf.io`` (messages use this)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def prefix(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def patch_types(self) -> tuple[str, ...]:
        base = (_JSON_PATCH, _MERGE, _APPLY)
        return base if self.is_custom else (*base, _STRATEGIC)

    def details(self, name: str) -> JSON:
        out: JSON = {"name": name}
        if self.group:
            out["group"] = self.group
        out["kind"] = self.plural
        return out


_META_FIELDS = frozenset({"metadata.name", "metadata.namespace"})
PODS = Resource(
    "pods", "pod", "Pod", "", "v1", True, ("po",),
    _META_FIELDS | {
        "spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
        "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName",
    },
    has_status=True,
)
NAMESPACES = Resource(
    "namespaces", "namespace", "Namespace", "", "v1", False, ("ns",),
    frozenset({"metadata.name", "status.phase"}), name_is_label=True,
)
NADS = Resource(
    NAD_PLURAL, "network-attachment-definition", "NetworkAttachmentDefinition", NAD_GROUP,
    NAD_VERSION, True, ("net-attach-def",), _META_FIELDS,
    is_custom=True, returns_deleted_object=False, unconditional_update=False,
)
SECRETS = Resource(
    "secrets", "secret", "Secret", "", "v1", True, (), _META_FIELDS | {"type"}, returns_deleted_object=False,
)
MUTATING_WEBHOOKS = Resource(
    "mutatingwebhookconfigurations", "mutatingwebhookconfiguration", "MutatingWebhookConfiguration",
    ADMISSION_GROUP, ADMISSION_VERSION, False, (), _META_FIELDS, returns_deleted_object=False, has_generation=True,
)
VALIDATING_WEBHOOKS = Resource(
    "validatingwebhookconfigurations", "validatingwebhookconfiguration", "ValidatingWebhookConfiguration",
    ADMISSION_GROUP, ADMISSION_VERSION, False, (), _META_FIELDS, returns_deleted_object=False, has_generation=True,
)
EVENTS = Resource(  # core/v1 Events (what client-go's legacy recorder and kubectl describe use)
    "events", "event", "Event", "", "v1", True, ("ev",),
    _META_FIELDS | {
        "involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
        "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
        "reason", "reportingComponent", "source", "type",
    },
    returns_deleted_object=False,
)
RESOURCES: dict[str, Resource] = {
    r.plural: r for r in (PODS, NAMESPACES, NADS, SECRETS, MUTATING_WEBHOOKS, VALIDATING_WEBHOOKS, EVENTS)
}
_BY_KIND: dict[str, Resource] = {r.kind: r for r in RESOURCES.values()}


def resource_named(plural: str) -> Resource:
    try:
        return RESOURCES[plural]
    except KeyError:
        raise KeyError(f"unknown resource {plural!r}; served: {', '.join(sorted(RESOURCES))}") from None


# --------------------------------------------------------------------------- errors


class ApiError(Exception):
    """A ``Status`` failure, exactly as the double puts it on the wire."""

    def __init__(self, code: int, reason: str, message: str, details: JSON | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.details = details
        self.headers = headers or {}

    @property
    def status(self) -> JSON:
        body: JSON = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": self.message}
        if self.reason:
            body["reason"] = self.reason
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


def not_found(res: Resource, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{res.qualified} "{name}" not found', res.details(name))


def already_exists(res: Resource, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{res.qualified} "{name}" already exists', res.details(name))


def conflict(res: Resource, name: str, why: str) -> ApiError:
    message = f'Operation cannot be fulfilled on {res.qualified} "{name}": {why}'
    return ApiError(409, "Conflict", message, res.details(name))


_MODIFIED = "the object has been modified; please apply your changes to the latest version and try again"


def invalid(res: Resource, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """422 Invalid; ``causes`` are (cause type, field, message) as field.Error renders them."""
    return invalid_kind(res.group, res.kind, name, causes)


def invalid_kind(group: str, kind: str, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    text = ", ".join(f"{f}: {m}" for _, f, m in causes)
    if len(causes) > 1:
        text = f"[{text}]"
    details: JSON = {"name": name} if name else {}
    if group:
        details["group"] = group
    details["kind"] = kind
    details["causes"] = [{"reason": r, "message": m, "field": f} for r, f, m in causes]
    qualified = f"{kind}.{group}" if group else kind
    return ApiError(422, "Invalid", f'{qualified} "{name}" is invalid: {text}', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def unsupported_media_type(accepted: Iterable[str]) -> ApiError:
    message = ("the body of the request was in an unknown format - accepted media types include: "
               + ", ".join(accepted))
    return ApiError(415, "UnsupportedMediaType", message)


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def method_not_allowed() -> ApiError:
    return ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource",
                    {})


def no_such_path() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def not_modelled(what: str) -> ApiError:
    """The double's own limit, loud: a 500 so no test passes by accident."""
    message = f"Internal error occurred: tests.k8sapi does not model {what}"
    return ApiError(500, "InternalError", message, {"causes": [{"message": message}]})


_INJECTED: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "the server rejected our request for an unknown reason"),
    401: ("Unauthorized", "Unauthorized"),
    403: ("Forbidden", "forbidden: injected by tests.k8sapi"),
    404: ("NotFound", "the server could not find the requested resource"),
    409: ("Conflict", _MODIFIED),
    410: ("Expired", "too old resource version"),
    429: ("TooManyRequests", "Too many requests, please try again later."),
    500: ("InternalError", "Internal error occurred: injected by tests.k8sapi"),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
    504: ("Timeout", "Timeout: request did not complete within the allotted timeout"),
}


def injected_error(status: int, message: str | None) -> ApiError:
    reason, default = _INJECTED.get(status, ("", f"injected status {status}"))
    details: JSON | None = None
    headers: dict[str, str] = {}
    if status == 429:
        details, headers = {"retryAfterSeconds": 1}, {"Retry-After": "1"}
    if status == 500:
        details = {"causes": [{"message": message or "injected by tests.k8sapi"}]}
    return ApiError(status, reason, message or default, details, headers)


# --------------------------------------------------------------------------- object helpers


def make_namespace(name: str, *, annotations: dict[str, str] | None = None,
                   labels: dict[str, str] | None = None) -> JSON:
    meta: JSON = {"name": name}
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def make_pod(name: str, namespace: str = "default", *, annotations: dict[str, str] | None = None,
             labels: dict[str, str] | None = None, node_name: str | None = None) -> JSON:
    meta: JSON = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    spec: JSON = {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.9"}]}
    if node_name:
        spec["nodeName"] = node_name
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def make_secret(name: str, namespace: str = "default", *, data: dict[str, bytes] | None = None,
                type: str | None = None) -> JSON:
    """A Secret with ``data`` base64-encoded, as the wire wants it; no ``type``: the server's default."""
    obj: JSON = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace}}
    if type is not None:
        obj["type"] = type
    if data is not None:
        obj["data"] = {k: base64.b64encode(v).decode() for k, v in data.items()}
    return obj


def make_webhook_configuration(kind: Literal["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"],
                               name: str, webhook_names: Iterable[str], *, ca_bundle: str | None = None,
                               annotations: dict[str, str] | None = None) -> JSON:
    """A webhook configuration whose entries call Service netplex-system/netplex-webhook."""
    meta: JSON = {"name": name}
    if annotations:
        meta["annotations"] = dict(annotations)
    webhooks: list[JSON] = []
    for hook in webhook_names:
        client_config: JSON = {"service": {"namespace": "netplex-system", "name": "netplex-webhook",
                                           "path": "/mutate" if kind.startswith("Mutating") else "/validate",
                                           "port": 443}}
        if ca_bundle is not None:
            client_config["caBundle"] = ca_bundle
        webhooks.append({"name": hook, "clientConfig": client_config, "admissionReviewVersions": ["v1"],
                         "sideEffects": "None", "failurePolicy": "Fail", "timeoutSeconds": 5,
                         "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                                    "resources": ["pods"], "scope": "Namespaced"}]})
    return {"apiVersion": f"{ADMISSION_GROUP}/{ADMISSION_VERSION}", "kind": kind, "metadata": meta,
            "webhooks": webhooks}


def make_nad(name: str, namespace: str = "default", *, config: JSON | str | None = None,
             annotations: dict[str, str] | None = None) -> JSON:
    """A NetworkAttachmentDefinition; a dict ``config`` is serialised, as the CRD wants a string."""
    meta: JSON = {"name": name, "namespace": namespace}
    if annotations:
        meta["annotations"] = dict(annotations)
    obj: JSON = {"apiVersion": f"{NAD_GROUP}/{NAD_VERSION}", "kind": "NetworkAttachmentDefinition",
                 "metadata": meta}
    if config is not None:
        obj["spec"] = {"config": config if isinstance(config, str) else json.dumps(config)}
    return obj


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch; returns a new value, ``target`` is not touched."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _check_strategic(patch: Any, path: str = "") -> None:
    """Strategic merge = merge patch here, which is only true for maps of scalars."""
    if isinstance(patch, list):
        raise not_modelled(f"strategic-merge-patch list semantics (list at {path or '.'}); "
                           "send a merge or JSON patch")
    if isinstance(patch, dict):
        for key, value in patch.items():
            if key.startswith("$"):
                raise not_modelled(f"strategic-merge-patch directive {key} (at {path or '.'})")
            _check_strategic(value, f"{path}.{key}" if path else key)


_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_CONFIG_KEY_MSG = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or "
    "'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
)
_BASE64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


def _check_bytes(res: Resource, field: str, value: Any) -> None:
    """A ``[]byte`` field holds base64 on the wire; anything else fails decoding (400)."""
    if value is None:
        return
    prefix = f'{res.kind} in version "{res.version}" cannot be handled as a {res.kind}'
    if not isinstance(value, str):
        raise bad_request(f"{prefix}: json: cannot unmarshal {_json_type(value)} into Go struct field "
                          f"{field} of type []uint8")
    try:
        base64.b64decode(value, validate=True)
    except ValueError:
        offset = next((i for i, ch in enumerate(value) if ch not in _BASE64), len(value) - len(value) % 4)
        raise bad_request(f"{prefix}: illegal base64 data at input byte {offset}") from None


def _normalise_secret(obj: JSON) -> list[tuple[str, str, str]]:
    """What the API server does to a Secret on every write; returns the 422 causes.

    ``stringData`` is folded into ``data`` (and not stored), ``type`` defaults to ``Opaque``,
    ``data`` keys must be config keys, and ``kubernetes.io/tls`` needs its two keys.
    """
    data = obj.get("data") or {}
    if not isinstance(data, dict):
        raise bad_request(f'Secret in version "v1" cannot be handled as a Secret: json: cannot unmarshal '
                          f"{_json_type(data)} into Go struct field Secret.data of type map[string][]uint8")
    for value in data.values():
        _check_bytes(SECRETS, "Secret.data", value)
    string_data = obj.pop("stringData", None) or {}
    for key, value in string_data.items():
        if not isinstance(value, str):
            raise bad_request(f'Secret in version "v1" cannot be handled as a Secret: json: cannot unmarshal '
                              f"{_json_type(value)} into Go struct field Secret.stringData of type string")
        data[key] = base64.b64encode(value.encode()).decode()
    if data:
        obj["data"] = data
    else:
        obj.pop("data", None)
    if not obj.get("type"):
        obj["type"] = "Opaque"
    causes = [("FieldValueInvalid", f"data[{key}]", f'Invalid value: "{key}": {_CONFIG_KEY_MSG}')
              for key in data if not _CONFIG_KEY.fullmatch(key)]
    if obj["type"] == "kubernetes.io/tls":
        causes += [("FieldValueRequired", f"data[{key}]", "Required value")
                   for key in ("tls.crt", "tls.key") if key not in data]
    return causes


def _json_type(value: Any) -> str:
    """The JSON type name the API server's messages use for a decoded value."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    return "null" if value is None else "number"


_EVENT_LIMITS = (("reportingInstance", 128), ("action", 128), ("reason", 128), ("message", 1024))
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


def _event_causes(event: JSON) -> list[tuple[str, str, str]]:
    """kube-apiserver's validation of a core/v1 Event create (``legacyValidateEvent``).

    Without ``eventTime`` (the legacy recorder's events) only the namespaces are checked:
    ``involvedObject.namespace`` must equal the event's (or be empty in ``default``), so
    a missing ``involvedObject`` is refused outside ``default`` while a missing ``reason``
    is accepted. With ``eventTime`` set, the reporting fields, action and reason are
    required and lengths are limited. Messages are the real ones; field names are the
    internal ones the real server prints (``reportingController``).
    """
    involved = event.get("involvedObject") if isinstance(event.get("involvedObject"), dict) else {}
    namespace = _meta(event).get("namespace") or ""
    involved_ns = str(involved.get("namespace") or "")
    causes: list[tuple[str, str, str]] = []
    mismatch = ("FieldValueInvalid", "involvedObject.namespace",
                f'Invalid value: "{involved_ns}": does not match event.namespace')
    if not event.get("eventTime"):
        if (not involved_ns and namespace not in ("", "default")) or (involved_ns and involved_ns != namespace):
            causes.append(mismatch)
        return causes
    if not involved_ns and namespace not in ("default", "kube-system"):
        causes.append(mismatch)
    controller = str(event.get("reportingComponent") or "")
    if not controller:
        causes.append(("FieldValueRequired", "reportingController", "Required value"))
    elif len(controller.rpartition("/")[2]) > 63 or not _QUALIFIED_NAME.fullmatch(controller.rpartition("/")[2]):
        causes.append(("FieldValueInvalid", "reportingController",
                       f'Invalid value: "{controller}": name part must consist of alphanumeric characters, '
                       "'-', '_' or '.', and must start and end with an alphanumeric character"))
    for field, limit in _EVENT_LIMITS:
        value = str(event.get(field) or "")
        if not value and field != "message":
            causes.append(("FieldValueRequired", field, "Required value"))
        elif len(value.encode()) > limit:
            causes.append(("FieldValueInvalid", field, f'Invalid value: "": can have at most {limit} characters'))
    return causes


def _check_event_times(event: JSON) -> None:
    """Timestamps that are not RFC 3339 cannot be decoded into metav1.Time (400)."""
    for field in ("firstTimestamp", "lastTimestamp", "eventTime"):
        value = event.get(field)
        if value is not None and not (isinstance(value, str) and _RFC3339.fullmatch(value)):
            raise bad_request(f'Event in version "v1" cannot be handled as a Event: {field}: '
                              f"parsing time {json.dumps(value)} as RFC 3339 failed")


def _path_segment_problems(name: str) -> list[str]:
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]


def make_event(pod: JSON, reason: str, message: str, *, type: str = "Normal", name: str | None = None,
               component: str = "tests") -> JSON:
    """A core/v1 Event about ``pod`` as client-go's legacy recorder writes one."""
    meta = pod.get("metadata") or {}
    now = _now()
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name or f"{meta.get('name')}.{time.time_ns():016x}",
                     "namespace": meta.get("namespace") or "default"},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": meta.get("namespace") or "default",
                           "name": meta.get("name"), "uid": meta.get("uid")},
        "reason": reason, "message": message, "type": type, "source": {"component": component},
        "firstTimestamp": now, "lastTimestamp": now, "count": 1, "eventTime": None,
    }


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _meta(obj: JSON) -> JSON:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
        obj["metadata"] = meta
    return meta


def _parse_int(query: dict[str, str], key: str) -> int | None:
    if not query.get(key):
        return None
    try:
        return int(query[key])
    except ValueError:
        raise bad_request(f'strconv.ParseInt: parsing "{query[key]}": invalid syntax') from None


def _parse_bool(text: str) -> bool:
    """Go's strconv.ParseBool, which the API server uses for query flags."""
    if text in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if text in ("", "0", "f", "F", "false", "FALSE", "False"):
        return False
    raise bad_request(f'strconv.ParseBool: parsing "{text}": invalid syntax')


# --------------------------------------------------------------------------- selectors


@dataclass(frozen=True)
class Requirement:
    key: str
    op: Literal["=", "!=", "in", "notin", "exists", "!"]
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "=":
            return present and value == self.values[0]
        if self.op == "!=":
            return not present or value != self.values[0]
        if self.op == "in":
            return present and value in self.values
        if self.op == "notin":
            return not present or value not in self.values
        if self.op == "exists":
            return present
        return not present


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside parentheses (``a in (x,y),b=c``)."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


_SET_REQ = re.compile(r"^([^\s!=()]+)\s+(in|notin)\s+\(([^)]*)\)$")


def parse_label_selector(text: str) -> tuple[Requirement, ...]:
    reqs: list[Requirement] = []
    for part in _split_top_level(text):
        if m := _SET_REQ.match(part):
            values = tuple(v.strip() for v in m.group(3).split(",") if v.strip())
            reqs.append(Requirement(m.group(1), "in" if m.group(2) == "in" else "notin", values))
        elif "!=" in part:
            key, value = (s.strip() for s in part.split("!=", 1))
            reqs.append(Requirement(key, "!=", (value,)))
        elif "=" in part:
            key, value = (s.strip() for s in part.replace("==", "=", 1).split("=", 1))
            reqs.append(Requirement(key, "=", (value,)))
        elif part.startswith("!"):
            reqs.append(Requirement(part[1:].strip(), "!"))
        elif re.fullmatch(r"[^\s!=(),]+", part):
            reqs.append(Requirement(part, "exists"))
        else:
            raise bad_request(f"unable to parse requirement: found '{part}', expected: in, notin, =, ==, !=, gt, lt")
    return tuple(reqs)


def _field_value(obj: JSON, path: str) -> str:
    if path == "source":  # events: source.component, else reportingComponent (the event strategy's rule)
        source = obj.get("source") if isinstance(obj.get("source"), dict) else {}
        return str(source.get("component") or obj.get("reportingComponent") or "")
    node: Any = obj
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if path == "spec.hostNetwork":
        return "true" if node is True else "false"
    return "" if node is None else str(node)


@dataclass(frozen=True)
class Selector:
    labels: tuple[Requirement, ...] = ()
    fields: tuple[tuple[str, bool, str], ...] = ()  # (field, equal?, value)

    @classmethod
    def parse(cls, res: Resource, label_text: str, field_text: str) -> Selector:
        fields: list[tuple[str, bool, str]] = []
        for part in _split_top_level(field_text):
            if "!=" in part:
                key, value = part.split("!=", 1)
                equal = False
            elif "=" in part:
                key, value = part.replace("==", "=", 1).split("=", 1)
                equal = True
            else:
                raise bad_request(f"invalid selector: '{field_text}'; can't understand '{part}'")
            key = key.strip()
            if key not in res.field_labels:
                raise bad_request(f'field label not supported: {key}')
            fields.append((key, equal, value.strip()))
        return cls(parse_label_selector(label_text), tuple(fields))

    def matches(self, obj: JSON) -> bool:
        meta = obj.get("metadata") or {}
        labels = meta.get("labels") or {}
        if not all(r.matches(labels) for r in self.labels):
            return False
        return all((_field_value(obj, f) == v) == eq for f, eq, v in self.fields)


# --------------------------------------------------------------------------- state


@dataclass(frozen=True)
class Event:
    """One write, kept in the bounded history that watches replay from."""

    rv: int
    type: Literal["ADDED", "MODIFIED", "DELETED"]
    resource: Resource
    namespace: str
    obj: JSON
    old: JSON | None


@dataclass
class Subscription:
    """One open watch: what it wants and how far it has read."""

    resource: Resource
    namespace: str | None
    selector: Selector
    cursor: int
    bookmarks: bool
    bookmark_seq: int
    done: bool = False
    drop_seq: int = 0  # ClusterState.drop_watches() ends the subscriptions opened before it
    cut: bool = False  # ended by drop_watches(cut=True): close without the last chunk


def wire(res: Resource, obj: JSON) -> JSON:
    """The object as the server puts it on the wire: kind and apiVersion first."""
    out: JSON = {"kind": res.kind, "apiVersion": res.api_version}
    out.update((k, v) for k, v in obj.items() if k not in ("kind", "apiVersion"))
    return out


class ClusterState:
    """The store, its resourceVersion counter and watch history; thread-safe, no HTTP.

    Every method raises :class:`ApiError` where the real API server would answer with a
    failure Status, and returns deep copies, never the stored dicts.
    """

    def __init__(self, *, namespaces: Iterable[str] = DEFAULT_NAMESPACES, history_limit: int = 1000) -> None:
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._rv = 0
        self._objects: dict[tuple[str, str, str], JSON] = {}
        self._history: deque[Event] = deque()
        self._history_limit = history_limit
        self._compacted = 0  # events with rv <= this are gone
        self._bookmark_seq = 0
        self._drop_seq = 0
        self._drop_cuts = False  # whether the last drop_watches() was a cut
        self._watches = 0
        self._stopping = False
        for name in namespaces:
            self.create(make_namespace(name))

    # -- reading

    @property
    def resource_version(self) -> str:
        with self._lock:
            return str(self._rv)

    def get(self, res: Resource, namespace: str | None, name: str) -> JSON:
        with self._lock:
            obj = self._objects.get((res.plural, namespace or "", name))
            if obj is None:
                raise not_found(res, name)
            return wire(res, copy.deepcopy(obj))

    def list_objects(self, res: Resource, namespace: str | None, selector: Selector | None = None,
                     limit: int = 0, token: str = "") -> JSON:
        selector = selector or Selector()
        with self._lock:
            start = self._decode_continue(token) if token else ("", "")
            keys = sorted(k for k in self._objects if k[0] == res.plural
                          and (namespace is None or k[1] == namespace))
            matching = [k for k in keys if (k[1], k[2]) > start and selector.matches(self._objects[k])]
            meta: JSON = {"resourceVersion": str(self._rv)}
            if limit and len(matching) > limit:
                last = matching[limit - 1]
                meta["continue"] = self._encode_continue(f"{last[1]}/{last[2]}")
                if not selector.labels and not selector.fields:
                    meta["remainingItemCount"] = len(matching) - limit
                matching = matching[:limit]
            items = []
            for key in matching:
                item = copy.deepcopy(self._objects[key])
                items.append(wire(res, item) if res.is_custom else
                             {k: v for k, v in item.items() if k not in ("kind", "apiVersion")})
            return {"kind": f"{res.kind}List", "apiVersion": res.api_version, "metadata": meta, "items": items}

    def _encode_continue(self, start: str) -> str:
        raw = json.dumps({"v": "meta.k8s.io/v1", "rv": self._rv, "start": start + "\x00"})
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    def _decode_continue(self, token: str) -> tuple[str, str]:
        try:
            data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            rv = int(data["rv"])
            ns, _, name = str(data["start"]).rstrip("\x00").rpartition("/")
        except (ValueError, KeyError, TypeError) as exc:
            raise bad_request(f"continue key is not valid: {exc}") from None
        if rv < self._compacted:
            raise expired("The provided continue parameter is too old to display a consistent list result. "
                          "You can start a new list without the continue parameter.")
        return ns, name

    # -- writing

    def create(self, obj: JSON, namespace: str | None = None) -> JSON:
        """POST: ``namespace`` is the URL's; None takes the object's (or ``default``)."""
        res = self._resource_of(obj)
        new = copy.deepcopy(obj)
        meta = _meta(new)
        with self._lock:
            ns = self._namespace_for(res, meta, namespace)
            name = meta.get("name") or ""
            if not name and meta.get("generateName"):
                name = meta["generateName"] + "".join(secrets.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
                meta["name"] = name
            self._validate(res, new, name)
            if ns and (NAMESPACES.plural, "", ns) not in self._objects:
                raise not_found(NAMESPACES, ns)
            if (res.plural, ns, name) in self._objects:
                raise already_exists(res, name)
            if meta.get("resourceVersion"):  # etcd's storage error, passed through as a bare 500
                raise ApiError(500, "", "resourceVersion should not be set on objects to be created")
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now())
            if res.tracks_generation:
                meta["generation"] = 1
            if res is NAMESPACES:
                meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = name
                new.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
                new["status"] = {"phase": "Active"}
            return self._commit(res, ns, name, new, None)

    def replace(self, res: Resource, namespace: str | None, name: str, obj: JSON,
                subresource: str = "", as_given: bool = False) -> JSON:
        """PUT (``as_given``: the Python ``update()``, which may change spec and status alike)."""
        new = copy.deepcopy(obj)
        meta = _meta(new)
        with self._lock:
            old = self._stored(res, namespace, name)
            uid = old["metadata"].get("uid")
            if meta.get("uid") and meta["uid"] != uid:  # a UID in a PUT body is a precondition
                raise conflict(res, name, f"Precondition failed: UID in precondition: {meta['uid']}, "
                                          f"UID in object meta: {uid}")
            self._check_identity(res, namespace, name, meta)
            if not as_given and not res.unconditional_update and not meta.get("resourceVersion"):
                raise invalid(res, name, [("FieldValueInvalid", "metadata.resourceVersion",
                                           "Invalid value: 0x0: must be specified for an update")])
            return self._update(res, namespace or "", name, old, new, subresource, as_given)

    def patch(self, res: Resource, namespace: str | None, name: str, content_type: str, body: bytes,
              subresource: str = "") -> JSON:
        if content_type not in res.patch_types():
            raise unsupported_media_type(res.patch_types())
        if content_type == _APPLY:
            raise ApiError(415, "UnsupportedMediaType",
                           "tests.k8sapi does not model server-side apply (application/apply-patch+yaml); "
                           "the real API server accepts it")
        with self._lock:
            old = self._stored(res, namespace, name)
            target = wire(res, copy.deepcopy(old))
            new = self._apply_patch(content_type, body, target)
            if not isinstance(new, dict):
                raise bad_request("the patch did not produce a JSON object")
            self._check_identity(res, namespace, name, _meta(new))
            uid = _meta(new).get("uid")
            if uid != old["metadata"].get("uid"):  # in a patch it is an immutable field
                raise invalid(res, name, [("FieldValueInvalid", "metadata.uid",
                                           f'Invalid value: "{uid}": field is immutable')])
            return self._update(res, namespace or "", name, old, new, subresource, False)

    def delete(self, res: Resource, namespace: str | None, name: str, options: JSON | None = None) -> JSON:
        """DELETE; the answer is the object (pods, namespaces) or a Success Status (CRs)."""
        with self._lock:
            old = self._stored(res, namespace, name)
            pre = (options or {}).get("preconditions") or {}
            meta = old["metadata"]
            if pre.get("uid") and pre["uid"] != meta.get("uid"):
                raise conflict(res, name, f"Precondition failed: UID in precondition: {pre['uid']}, "
                                          f"UID in object meta: {meta.get('uid')}")
            if pre.get("resourceVersion") and pre["resourceVersion"] != meta.get("resourceVersion"):
                raise conflict(res, name, f"the ResourceVersion in the precondition ({pre['resourceVersion']}) "
                                          f"does not match the ResourceVersion in record "
                                          f"({meta.get('resourceVersion')}). The object might have been modified")
            if res is NAMESPACES:
                for key in [k for k in self._objects if k[1] == name and k[0] != NAMESPACES.plural]:
                    self._commit(RESOURCES[key[0]], key[1], key[2], None, self._objects[key])
            gone = self._commit(res, namespace or "", name, None, old)
            if res.returns_deleted_object:
                return gone
            details = res.details(name) | {"uid": meta.get("uid")}
            return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}

    def _resource_of(self, obj: JSON) -> Resource:
        kind = obj.get("kind")
        if kind not in _BY_KIND:
            raise ValueError(f"cannot store kind {kind!r}; served kinds: {', '.join(sorted(_BY_KIND))}")
        return _BY_KIND[kind]

    def _namespace_for(self, res: Resource, meta: JSON, url_ns: str | None) -> str:
        if not res.namespaced:
            meta.pop("namespace", None)
            return ""
        given = meta.get("namespace") or ""
        if url_ns is not None and given and given != url_ns:
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        ns = url_ns if url_ns is not None else (given or "default")
        meta["namespace"] = ns
        return ns

    def _validate(self, res: Resource, obj: JSON, name: str) -> None:
        causes: list[tuple[str, str, str]] = []
        if res is SECRETS:
            causes.extend(_normalise_secret(obj))
        elif res in (MUTATING_WEBHOOKS, VALIDATING_WEBHOOKS):
            for hook in obj.get("webhooks") or []:
                _check_bytes(res, "clientConfig.caBundle", ((hook or {}).get("clientConfig") or {}).get("caBundle"))
        if res is EVENTS:
            _check_event_times(obj)
            if event_causes := _event_causes(obj):  # the event strategy runs before the generic meta checks
                raise invalid(res, name, event_causes)
        if not name:
            causes.append(("FieldValueRequired", "metadata.name", "Required value: name or generateName is required"))
        elif res is EVENTS:  # names of core/v1 Events are only checked as path segments
            causes.extend(("FieldValueInvalid", "metadata.name", f'Invalid value: "{name}": {m}')
                          for m in _path_segment_problems(name))
        else:
            pattern, msg, limit = (_LABEL, _LABEL_MSG, 63) if res.name_is_label else (_SUBDOMAIN, _SUBDOMAIN_MSG, 253)
            if len(name) > limit:
                causes.append(("FieldValueInvalid", "metadata.name",
                               f'Invalid value: "{name}": must be no more than {limit} characters'))
            if not pattern.fullmatch(name):
                causes.append(("FieldValueInvalid", "metadata.name", f'Invalid value: "{name}": {msg}'))
        if res is NADS:
            for key in [k for k in obj if k not in ("apiVersion", "kind", "metadata", "spec")]:
                del obj[key]  # structural-schema pruning
            spec = obj.get("spec")
            if isinstance(spec, dict):
                for key in [k for k in spec if k != "config"]:
                    del spec[key]
                config = spec.get("config")
                if config is not None and not isinstance(config, str):
                    got = _json_type(config)
                    causes.append(("FieldValueTypeInvalid", "spec.config",
                                   f'Invalid value: "{got}": spec.config in body must be of type string: "{got}"'))
            elif spec is not None:
                causes.append(("FieldValueTypeInvalid", "spec",
                               'Invalid value: "string": spec in body must be of type object: "string"'))
        if causes:
            raise invalid(res, name, causes)

    def _stored(self, res: Resource, namespace: str | None, name: str) -> JSON:
        obj = self._objects.get((res.plural, namespace or "", name))
        if obj is None:
            raise not_found(res, name)
        return obj

    def _check_identity(self, res: Resource, namespace: str | None, name: str, meta: JSON) -> None:
        if meta.get("name", "") != name:
            raise bad_request(f"the name of the object ({meta.get('name', '')}) does not match the name on the URL ({name})")
        if res.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
            meta["namespace"] = namespace

    def _apply_patch(self, content_type: str, body: bytes, target: JSON) -> Any:
        try:
            patch = json.loads(body or b"null")
        except ValueError as exc:
            raise bad_request(f"error decoding patch: {exc}") from None
        if content_type == _JSON_PATCH:
            if not isinstance(patch, list):
                kind = _json_type(patch)
                raise bad_request(f"json: cannot unmarshal {kind} into Go value of type jsonpatch.Patch")
            try:
                return jsonpatch.JsonPatch(patch).apply(target)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, KeyError, TypeError,
                    IndexError, ValueError):
                raise ApiError(422, "Invalid", "the server rejected our request due to an error in our request",
                               {}) from None
        if not isinstance(patch, dict):
            raise bad_request("the patch is not a JSON object")
        if content_type == _STRATEGIC:
            _check_strategic(patch)
        return merge_patch(target, patch)

    def _update(self, res: Resource, ns: str, name: str, old: JSON, new: JSON, subresource: str,
                as_given: bool) -> JSON:
        meta, old_meta = _meta(new), old["metadata"]
        given_rv = meta.get("resourceVersion")
        if given_rv and given_rv != old_meta.get("resourceVersion"):
            raise conflict(res, name, _MODIFIED)
        self._validate(res, new, name)
        for key in ("uid", "creationTimestamp", "generation"):
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        if not as_given and res.has_status:
            if subresource == "status":
                for key in ("spec",):
                    if key in old:
                        new[key] = copy.deepcopy(old[key])
                    else:
                        new.pop(key, None)
                for key in ("ownerReferences", "deletionTimestamp"):
                    if key in old_meta:
                        meta[key] = copy.deepcopy(old_meta[key])
                    else:
                        meta.pop(key, None)
            elif "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        if res is NAMESPACES:
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = name
            if not as_given:  # namespace strategy: status and spec.finalizers are the server's
                new["status"] = copy.deepcopy(old.get("status", {}))
                new.setdefault("spec", {})["finalizers"] = copy.deepcopy(old.get("spec", {}).get("finalizers", []))
        if res is SECRETS and new.get("type") != old.get("type"):
            raise invalid(res, name, [("FieldValueInvalid", "type",
                                       f'Invalid value: "{new.get("type")}": field is immutable')])
        meta["resourceVersion"] = old_meta.get("resourceVersion")
        strip = ("kind", "apiVersion")
        if {k: v for k, v in new.items() if k not in strip} == {k: v for k, v in old.items() if k not in strip}:
            return wire(res, copy.deepcopy(old))  # a no-op write is not a write
        if res.tracks_generation:
            changed = {k: v for k, v in new.items() if k not in (*strip, "metadata")} != \
                      {k: v for k, v in old.items() if k not in (*strip, "metadata")}
            meta["generation"] = int(old_meta.get("generation", 1)) + (1 if changed else 0)
        return self._commit(res, ns, name, new, old)

    def _commit(self, res: Resource, ns: str, name: str, new: JSON | None, old: JSON | None) -> JSON:
        """Bump the resourceVersion, store (or remove), record the event, wake the watches."""
        self._rv += 1
        key = (res.plural, ns, name)
        if new is None:
            assert old is not None
            final = copy.deepcopy(old)
            final["metadata"]["resourceVersion"] = str(self._rv)
            del self._objects[key]
            event = Event(self._rv, "DELETED", res, ns, final, old)
        else:
            new["metadata"]["resourceVersion"] = str(self._rv)
            final = new
            self._objects[key] = new
            event = Event(self._rv, "ADDED" if old is None else "MODIFIED", res, ns, new, old)
        self._history.append(event)
        while len(self._history) > self._history_limit:
            self._compacted = self._history.popleft().rv
        self._cond.notify_all()
        return wire(res, copy.deepcopy(final))

    # -- watching

    def compact(self) -> None:
        """Forget all history, as etcd compaction does: older resourceVersions now get 410."""
        with self._lock:
            self._compacted = self._rv
            self._history.clear()
            self._cond.notify_all()

    def bookmark(self) -> None:
        """Send a BOOKMARK to every open watch that asked for bookmarks."""
        with self._lock:
            self._bookmark_seq += 1
            self._cond.notify_all()

    def stop_watches(self) -> None:
        with self._lock:
            self._stopping = True
            self._cond.notify_all()

    def resume_watches(self) -> None:
        """Serve watches again after :meth:`stop_watches` (the server was restarted)."""
        with self._lock:
            self._stopping = False

    def drop_watches(self, *, cut: bool = False) -> None:
        """End every open watch stream, as an API server restart or a load balancer does;
        ``cut``: without the closing chunk, as a network failure does."""
        with self._lock:
            self._drop_seq += 1
            self._drop_cuts = cut
            self._cond.notify_all()

    @property
    def open_watches(self) -> int:
        with self._lock:
            return self._watches

    def wait_for_watches(self, count: int, timeout: float) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self._watches >= count, timeout):
                raise TimeoutError(f"{self._watches} watches open after {timeout}s, wanted {count}")

    def open_watch(self, res: Resource, namespace: str | None, selector: Selector, rv: str,
                   send_initial: bool | None, bookmarks: bool) -> tuple[list[JSON], Subscription]:
        """Start a watch; returns the synthetic initial events and the subscription.

        Raises ApiError(410) for a compacted resourceVersion; the caller sends it as an
        ERROR event, as the real server does once the watch is accepted.
        """
        with self._lock:
            initial: list[JSON] = []
            if send_initial or (send_initial is None and rv in ("", "0")):
                for key in sorted(k for k in self._objects if k[0] == res.plural
                                  and (namespace is None or k[1] == namespace)):
                    if selector.matches(self._objects[key]):
                        initial.append({"type": "ADDED", "object": wire(res, copy.deepcopy(self._objects[key]))})
                if send_initial:
                    initial.append(self._bookmark(res, self._rv, initial_end=True))
                cursor = self._rv
            elif rv in ("", "0"):
                cursor = self._rv
            else:
                try:
                    cursor = int(rv)
                except ValueError:
                    raise bad_request(f'invalid resource version "{rv}"') from None
                if cursor < self._compacted:
                    raise expired(f"too old resource version: {cursor} ({self._compacted})")
            self._watches += 1
            self._cond.notify_all()
            return initial, Subscription(res, namespace, selector, cursor, bookmarks, self._bookmark_seq,
                                         drop_seq=self._drop_seq)

    def close_watch(self, sub: Subscription) -> None:
        with self._lock:
            self._watches -= 1
            self._cond.notify_all()

    def next_events(self, sub: Subscription, timeout: float) -> list[JSON] | None:
        """Events for ``sub`` after its cursor, waiting up to ``timeout``; None once stopping
        or dropped (``sub.cut`` set when the drop was a cut)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if sub.drop_seq != self._drop_seq:
                    sub.cut = self._drop_cuts
                    return None
                if self._stopping:
                    return None
                if sub.cursor < self._compacted:
                    sub.done = True
                    status = expired(f"too old resource version: {sub.cursor} ({self._compacted})").status
                    return [{"type": "ERROR", "object": status}]
                out: list[JSON] = []
                pending: list[Event] = []
                for event in reversed(self._history):
                    if event.rv <= sub.cursor:
                        break
                    pending.append(event)
                for event in reversed(pending):
                    if (translated := self._translate(sub, event)) is not None:
                        out.append(translated)
                sub.cursor = max(sub.cursor, self._rv)  # all writes so far were seen (or not this watch's)
                if sub.bookmarks and sub.bookmark_seq != self._bookmark_seq:
                    sub.bookmark_seq = self._bookmark_seq
                    out.append(self._bookmark(sub.resource, sub.cursor))
                if out:
                    return out
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._cond.wait(remaining)

    def closing_bookmark(self, sub: Subscription) -> JSON:
        """The BOOKMARK sent as a watch reaches its timeout: everything up to it was delivered."""
        return self._bookmark(sub.resource, sub.cursor)

    @staticmethod
    def _bookmark(res: Resource, rv: int, initial_end: bool = False) -> JSON:
        meta: JSON = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {INITIAL_EVENTS_END: "true"}
        return {"type": "BOOKMARK", "object": {"kind": res.kind, "apiVersion": res.api_version, "metadata": meta}}

    @staticmethod
    def _translate(sub: Subscription, event: Event) -> JSON | None:
        if event.resource is not sub.resource or (sub.namespace is not None and event.namespace != sub.namespace):
            return None
        now = event.type != "DELETED" and sub.selector.matches(event.obj)
        before = event.old is not None and sub.selector.matches(event.old)
        kind: str | None
        if event.type == "DELETED":
            kind = "DELETED" if before else None
        elif now and before:
            kind = "MODIFIED"
        elif now:
            kind = "ADDED"
        elif before:
            kind = "DELETED"
        else:
            kind = None
        if kind is None:
            return None
        return {"type": kind, "object": wire(sub.resource, copy.deepcopy(event.obj))}


# --------------------------------------------------------------------------- TLS


@dataclass(frozen=True)
class TlsMaterial:
    """PEM bytes of a CA and a serving certificate (with key) that the CA signed."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes


def make_tls_material(hosts: Iterable[str] = ("127.0.0.1", "localhost"), *, days: int = 2) -> TlsMaterial:
    """A throwaway CA and a serving certificate for ``hosts`` (IPs or DNS names), EC P-256."""
    from certs.authority import issue_serving, new_authority
    from certs.names import parse_host

    ca = new_authority(days=days, common_name="tests.k8sapi CA")
    pair = issue_serving(ca, [parse_host(h) for h in hosts], days=days, common_name="kube-apiserver").pair
    return TlsMaterial(pair.ca, pair.cert, pair.key)


# --------------------------------------------------------------------------- HTTP


@dataclass
class Recorded:
    """One request as the double received it (``status`` is filled in once answered)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    status: int | None = None

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), None)

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class _Rule:
    method: str
    path: re.Pattern[str]
    status: int = 0
    remaining: int | None = None
    seconds: float = 0.0
    message: str | None = None

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method) and self.path.fullmatch(path) is not None


@dataclass(frozen=True)
class _Route:
    kind: Literal["collection", "item", "status"]
    resource: Resource
    namespace: str | None
    name: str = ""
    legacy_watch: bool = False


def _route(path: str) -> _Route | None:
    for res_prefix in sorted({r.prefix for r in RESOURCES.values()}):
        if path.startswith(res_prefix + "/"):
            parts = path[len(res_prefix) + 1:].split("/")
            break
    else:
        return None
    legacy = bool(parts) and parts[0] == "watch"
    if legacy:
        parts = parts[1:]
    served = {r.plural: r for r in RESOURCES.values() if r.prefix == res_prefix}
    namespace: str | None = None
    if len(parts) >= 3 and parts[0] == "namespaces" and parts[2] in served and served[parts[2]].namespaced:
        namespace, parts = parts[1], parts[2:]
    if not parts or parts[0] not in served:
        return None
    res = served[parts[0]]
    if res.namespaced and namespace is None:
        return _Route("collection", res, None, legacy_watch=legacy) if len(parts) == 1 else None
    if len(parts) == 1:
        return _Route("collection", res, namespace, legacy_watch=legacy)
    if len(parts) == 2 and parts[1]:
        return _Route("item", res, namespace, parts[1], legacy_watch=legacy)
    if len(parts) == 3 and parts[2] == "status" and res.has_status and not legacy:
        return _Route("status", res, namespace, parts[1])
    return None


def _discovery(path: str, address: str) -> JSON | None:
    def resources(group_version: str, rs: list[Resource]) -> JSON:
        entries: list[JSON] = []
        for r in rs:
            entries.append({"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
                            "kind": r.kind, "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                            "shortNames": list(r.short_names)})
            if r.has_status:
                entries.append({"name": f"{r.plural}/status", "singularName": "", "namespaced": r.namespaced,
                                "kind": r.kind, "verbs": ["get", "patch", "update"]})
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": entries}

    docs: dict[str, JSON] = {
        "/api": {"kind": "APIVersions", "versions": ["v1"],
                 "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}]},
        "/api/v1": resources("v1", [r for r in RESOURCES.values() if not r.group]),
    }
    groups: list[JSON] = []
    for group, version in ((ADMISSION_GROUP, ADMISSION_VERSION), (NAD_GROUP, NAD_VERSION)):  # built-ins first
        group_version = {"groupVersion": f"{group}/{version}", "version": version}
        doc = {"name": group, "versions": [group_version], "preferredVersion": group_version}
        groups.append(doc)
        docs[f"/apis/{group}"] = {"kind": "APIGroup", "apiVersion": "v1", **doc}
        docs[f"/apis/{group}/{version}"] = resources(f"{group}/{version}",
                                                     [r for r in RESOURCES.values() if r.group == group])
    docs |= {
        "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups},
        "/version": {"major": "1", "minor": "31", "gitVersion": "v1.31.0", "gitCommit": "tests.k8sapi",
                     "gitTreeState": "clean", "buildDate": "2024-08-13T00:00:00Z", "goVersion": "go1.22.5",
                     "compiler": "gc", "platform": "linux/amd64"},
    }
    return docs.get(path.rstrip("/") or "/")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HttpServer

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def setup(self) -> None:
        # headers and body are two writes: without NODELAY, Nagle + delayed ACK cost 40 ms a call
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.api._connections.add(self.request)
        super().setup()
        if isinstance(self.request, ssl.SSLSocket):  # handshake here, not in the accept loop
            self.request.settimeout(10)
            self.request.do_handshake()
            self.request.settimeout(None)

    def finish(self) -> None:
        self.server.api._connections.discard(self.request)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def version_string(self) -> str:
        return "tests.k8sapi"

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self, method: str) -> None:
        api = self.server.api
        body = self._read_body()
        split = urlsplit(self.path)
        path = split.path
        query = parse_qs(split.query, keep_blank_values=True)
        rec = Recorded(method, path, query, dict(self.headers.items()), body)
        api._record(rec)
        try:
            watching = "/watch/" in path or _parse_bool((query.get("watch") or [""])[-1])
            api._before(method, path, watching)
            api._authenticate(self.headers.get("Authorization"))
            if method == "GET" and (doc := _discovery(path, api.address)) is not None:
                self._send(rec, 200, doc)
                return
            route = _route(path)
            if route is None:
                raise no_such_path()
            self._serve(rec, method, route, query, body)
        except _InjectedWatchExpiry as exc:
            self._stream_error(rec, exc.status)
        except Exception as exc:
            if rec.status is not None:  # a stream already started: no second response on it
                self.close_connection = True
            elif isinstance(exc, ApiError):
                self._send(rec, exc.code, exc.status, exc.headers)
            else:  # a bug in the double: answer as the server would, loudly
                error = ApiError(500, "InternalError", f"Internal error occurred: tests.k8sapi: {exc!r}",
                                 {"causes": [{"message": repr(exc)}]})
                self._send(rec, 500, error.status)

    def _serve(self, rec: Recorded, method: str, route: _Route, query: dict[str, list[str]], body: bytes) -> None:
        cluster = self.server.api.cluster
        q = {k: v[-1] for k, v in query.items()}
        res, ns, name = route.resource, route.namespace, route.name
        is_watch = route.legacy_watch or _parse_bool(q.get("watch", ""))
        if route.kind == "collection":
            if method == "GET":
                selector = Selector.parse(res, q.get("labelSelector", ""), q.get("fieldSelector", ""))
                if is_watch:
                    self._watch(rec, res, ns, selector, q)
                    return
                limit = _parse_int(q, "limit") or 0
                self._send(rec, 200, cluster.list_objects(res, ns, selector, limit, q.get("continue", "")))
            elif method == "POST" and (ns is not None or not res.namespaced):
                obj = self._decode(res, body)
                if obj.get("kind") not in (None, "", res.kind):
                    raise bad_request(f"the object provided is unrecognized (must be of type {res.kind}): "
                                      f"kind {obj.get('kind')!r}")
                obj = {**obj, "kind": res.kind, "apiVersion": res.api_version}
                self._send(rec, 201, cluster.create(obj, ns if res.namespaced else None))
            else:
                raise method_not_allowed()
            return
        if method == "GET":
            if is_watch and route.kind == "item":
                selector = Selector.parse(res, q.get("labelSelector", ""), f"metadata.name={name}")
                self._watch(rec, res, ns, selector, q)
                return
            self._send(rec, 200, cluster.get(res, ns, name))
        elif method == "PUT":
            obj = self._decode(res, body)
            self._send(rec, 200, cluster.replace(res, ns, name, obj, route.kind if route.kind == "status" else ""))
        elif method == "PATCH":
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            subresource = "status" if route.kind == "status" else ""
            self._send(rec, 200, cluster.patch(res, ns, name, content_type, body, subresource))
        elif method == "DELETE" and route.kind == "item":
            try:
                options = json.loads(body) if body.strip() else None
            except ValueError as exc:
                raise bad_request(f"couldn't decode DeleteOptions: {exc}") from None
            self._send(rec, 200, cluster.delete(res, ns, name, options if isinstance(options, dict) else None))
        else:
            raise method_not_allowed()

    def _decode(self, res: Resource, body: bytes) -> JSON:
        content_type = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip().lower()
        if content_type not in ("application/json", "application/yaml"):
            raise unsupported_media_type(["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"])
        try:
            if content_type == "application/yaml":
                import yaml

                obj = yaml.safe_load(body)
            else:
                obj = json.loads(body)
        except ValueError as exc:
            raise bad_request(f"the object provided is unrecognized (must be of type {res.kind}): "
                              f"couldn't get version/kind; json parse error: {exc}") from None
        if not isinstance(obj, dict):
            raise bad_request(f"the object provided is unrecognized (must be of type {res.kind}): "
                              "couldn't get version/kind; json parse error: not a JSON object")
        return obj

    def _watch(self, rec: Recorded, res: Resource, ns: str | None, selector: Selector, q: dict[str, str]) -> None:
        cluster = self.server.api.cluster
        timeout = _parse_int(q, "timeoutSeconds")
        bookmarks = _parse_bool(q.get("allowWatchBookmarks", ""))
        send_initial: bool | None = None
        if "sendInitialEvents" in q:
            send_initial = _parse_bool(q["sendInitialEvents"])
            causes: list[tuple[str, str, str]] = []
            if send_initial and q.get("resourceVersionMatch") != "NotOlderThan":
                causes.append(("FieldValueForbidden", "resourceVersionMatch",
                               "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"))
            if send_initial and not bookmarks:
                causes.append(("FieldValueForbidden", "allowWatchBookmarks",
                               "Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true"))
            if causes:
                raise invalid_kind("meta.k8s.io", "ListOptions", "", causes)
        try:
            initial, sub = cluster.open_watch(res, ns, selector, q.get("resourceVersion", ""), send_initial, bookmarks)
        except ApiError as exc:
            if exc.code != 410:
                raise
            self._stream_error(rec, exc.status)
            return
        try:
            self._start_stream(rec)
            self._write_events(initial)
            deadline = time.monotonic() + timeout if timeout is not None else None
            while True:
                wait = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
                if wait <= 0:
                    if bookmarks:
                        self._write_events([cluster.closing_bookmark(sub)])
                    break
                events = cluster.next_events(sub, wait)
                if events is None and sub.cut:
                    self.close_connection = True  # cut: no closing chunk, no close_notify
                    self.request.shutdown(socket.SHUT_RDWR)
                    return
                if events is None:
                    self.close_connection = True  # the server is stopping
                    break
                self._write_events(events)
                if sub.done:
                    break
            self._end_stream()
        except OSError:  # the client went away (BrokenPipe, ConnectionReset, SSL EOF...)
            self.close_connection = True
        finally:
            cluster.close_watch(sub)

    def _stream_error(self, rec: Recorded, status: JSON) -> None:
        """What the real server does with a watch it accepted but cannot serve: 200 + one ERROR."""
        try:
            self._start_stream(rec)
            self._write_events([{"type": "ERROR", "object": status}])
            self._end_stream()
        except OSError:
            self.close_connection = True

    def _start_stream(self, rec: Recorded) -> None:
        rec.status = 200
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.flush()

    def _write_events(self, events: list[JSON]) -> None:
        for event in events:
            data = json.dumps(event, separators=(",", ":")).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _send(self, rec: Recorded, code: int, body: JSON, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body, separators=(",", ":")).encode()
        rec.status = code
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-cache, private")
            self.send_header("Audit-Id", str(uuid.uuid4()))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            self.close_connection = True


class _InjectedWatchExpiry(Exception):
    def __init__(self, status: JSON) -> None:
        super().__init__(status["message"])
        self.status = status


class _HttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    api: FakeApiServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up or fail the TLS handshake are not the double's problem


class FakeApiServer:
    """The double: a :class:`ClusterState` served over HTTP(S) on 127.0.0.1, plus test controls.

    ``tls=True`` makes a throwaway CA and certificate (``ca_pem`` is the CA); pass a
    :class:`TlsMaterial` to use your own. ``token=None`` serves without authentication.
    Like a new cluster it starts with the ``namespaces`` default, kube-system, kube-public and
    kube-node-lease (resourceVersions 1-4), so the first write of a test is resourceVersion 5.
    """

    def __init__(self, *, tls: bool | TlsMaterial = False, token: str | None = "test-token",
                 namespaces: Iterable[str] = DEFAULT_NAMESPACES, history_limit: int = 1000,
                 port: int = 0) -> None:
        self.cluster = ClusterState(namespaces=namespaces, history_limit=history_limit)
        self.port = port  # on 127.0.0.1; 0: any free port
        self.tls: TlsMaterial | None = make_tls_material() if tls is True else (tls or None)
        self.ca_pem: bytes | None = self.tls.ca_pem if self.tls else None
        self.requests: list[Recorded] = []
        self._token = token
        self._rules: list[_Rule] = []
        self._delays: list[_Rule] = []
        self._lock = threading.Lock()
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()  # open client connections, for down()
        self.url = ""
        self.address = ""

    # -- lifecycle

    def start(self) -> FakeApiServer:
        self.cluster.resume_watches()  # a restarted server serves watches again
        httpd = _HttpServer(("127.0.0.1", self.port), _Handler)
        httpd.api = self
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            with tempfile.TemporaryDirectory() as tmp:
                cert, key = Path(tmp, "tls.crt"), Path(tmp, "tls.key")
                cert.write_bytes(self.tls.cert_pem)
                key.write_bytes(self.tls.key_pem)
                context.load_cert_chain(cert, key)
            httpd.socket = context.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
        host, port = httpd.server_address[:2]
        self.address = f"{host!s}:{port}"
        self.url = f"{'https' if self.tls else 'http'}://{self.address}"
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01},
                                        name=f"k8sapi-{port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.cluster.stop_watches()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def restart(self) -> None:
        """Stop and start again on the same port, the stored objects kept (an API server
        restart: open watches end, connections are refused meanwhile, clients reconnect)."""
        port = int(self.address.rsplit(":", 1)[1])
        self.stop()
        self.port = port
        self.start()

    def down(self) -> None:
        """Go away until ``up()`` (see the module docstring, "Outages"): the port refuses
        connections, open watches are cut and kept-alive connections closed."""
        self.cluster.drop_watches(cut=True)
        self.stop()
        for conn in list(self._connections):  # keep-alive connections die with the server
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def up(self) -> FakeApiServer:
        """Serve again after ``down()``, on the same address, with the same store and history."""
        self.port = int(self.address.rsplit(":", 1)[1])
        return self.start()

    def __enter__(self) -> FakeApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- client configuration

    def kubeconfig(self, path: Path, *, fmt: Literal["yaml", "json"] = "yaml", token: str | None = None) -> Path:
        """Write a kubeconfig for this server: context ``k8sapi``, namespace ``default``.

        The cluster has ``certificate-authority-data`` (HTTPS) or ``insecure-skip-tls-verify``
        (plain HTTP, where it changes nothing). ``token`` None writes the server's current
        token; another string writes that one (a stale token); ``""`` writes no credentials.
        """
        cluster: JSON = {"server": self.url}
        if self.ca_pem is not None:
            cluster["certificate-authority-data"] = base64.b64encode(self.ca_pem).decode()
        else:
            cluster["insecure-skip-tls-verify"] = True
        chosen = self._token if token is None else token
        user: JSON = {"token": chosen} if chosen else {}
        doc: JSON = {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": "k8sapi", "cluster": cluster}],
            "users": [{"name": "k8sapi", "user": user}],
            "contexts": [{"name": "k8sapi", "context": {"cluster": "k8sapi", "user": "k8sapi", "namespace": "default"}}],
            "current-context": "k8sapi",
        }
        path = Path(path)
        if fmt == "json":
            path.write_text(json.dumps(doc, indent=2))
        else:
            import yaml

            path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    def set_token(self, token: str | None) -> None:
        """Rotate the accepted bearer token (None: accept anything, no authentication)."""
        with self._lock:
            self._token = token

    # -- the store, server side (same rules as over HTTP, minus authentication)

    def create(self, obj: JSON) -> JSON:
        """Store a new object (kind decides where); the namespace must exist, as over HTTP."""
        return self.cluster.create(obj)

    def get(self, kind_plural: str, namespace: str | None, name: str) -> JSON | None:
        try:
            return self.cluster.get(resource_named(kind_plural), namespace, name)
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise

    def list_objects(self, kind_plural: str, namespace: str | None = None) -> list[JSON]:
        """Stored objects of one resource (all namespaces when ``namespace`` is None), sorted."""
        res = resource_named(kind_plural)
        return [wire(res, item) for item in self.cluster.list_objects(res, namespace)["items"]]

    def update(self, obj: JSON) -> JSON:
        """Replace a stored object as given (spec and status alike: the test plays every
        controller); a ``metadata.resourceVersion`` in ``obj`` must match (else 409)."""
        res = self.cluster._resource_of(obj)
        meta = obj.get("metadata") or {}
        namespace = (meta.get("namespace") or "default") if res.namespaced else None
        obj = copy.deepcopy(obj)
        if res.namespaced:
            _meta(obj)["namespace"] = namespace
        return self.cluster.replace(res, namespace, meta.get("name", ""), obj, as_given=True)

    def delete(self, kind_plural: str, namespace: str | None, name: str) -> JSON | None:
        """Delete at once; returns the object as it was, or None if there was none."""
        res = resource_named(kind_plural)
        try:
            before = self.cluster.get(res, namespace, name)
            self.cluster.delete(res, namespace, name)
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise
        return before

    @property
    def resource_version(self) -> str:
        return self.cluster.resource_version

    def compact(self) -> None:
        self.cluster.compact()

    def bookmark(self) -> None:
        self.cluster.bookmark()

    def drop_watches(self, *, cut: bool = False) -> None:
        """End every open watch stream now; clients must reconnect (and resume). ``cut``:
        without the closing chunk or a TLS close_notify (see the module docstring, "Outages")."""
        self.cluster.drop_watches(cut=cut)

    def wait_for_watches(self, count: int = 1, timeout: float = 5.0) -> None:
        """Block until ``count`` watches are open (so a write cannot race the watch start)."""
        self.cluster.wait_for_watches(count, timeout)

    # -- test controls

    def fail_next(self, method: str, path_regex: str, status: int, times: int = 1, *,
                  message: str | None = None) -> None:
        """The next ``times`` requests matching ``method`` (or ``*``) and ``path_regex`` (a
        full match of the path, no query) get ``status`` with the real reason for that code.

        429 comes with ``Retry-After: 1``. A 410 on a watch arrives as the real one does:
        HTTP 200 and an ERROR event.
        """
        with self._lock:
            self._rules.append(_Rule(method.upper(), re.compile(path_regex), status, times, message=message))

    def delay(self, seconds: float, method: str = "*", path_regex: str = ".*") -> None:
        """Hold matching requests ``seconds`` before answering; ``delay(0)`` clears all delays."""
        with self._lock:
            if seconds <= 0:
                self._delays.clear()
            else:
                self._delays.append(_Rule(method.upper(), re.compile(path_regex), seconds=seconds))

    def requests_matching(self, method: str = "*", path_regex: str = ".*") -> list[Recorded]:
        rule = _Rule(method.upper(), re.compile(path_regex))
        with self._lock:
            return [r for r in self.requests if rule.matches(r.method, r.path)]

    # -- used by the handler

    def _record(self, rec: Recorded) -> None:
        with self._lock:
            self.requests.append(rec)

    def _before(self, method: str, path: str, watching: bool) -> None:
        with self._lock:
            pause = sum(r.seconds for r in self._delays if r.matches(method, path))
            rule = next((r for r in self._rules if r.matches(method, path)), None)
            if rule is not None:
                assert rule.remaining is not None
                rule.remaining -= 1
                if rule.remaining <= 0:
                    self._rules.remove(rule)
        if pause:
            time.sleep(pause)
        if rule is not None:
            error = injected_error(rule.status, rule.message)
            if rule.status == 410 and watching:
                raise _InjectedWatchExpiry(error.status)
            raise error

    def _authenticate(self, header: str | None) -> None:
        with self._lock:
            token = self._token
        if token is None:
            return
        scheme, _, given = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.strip(), token):
            raise unauthorized()


def iter_watch_lines(raw: bytes) -> Iterator[JSON]:
    """Decode a watch body (already de-chunked) into events; for raw-HTTP tests."""
    for line in raw.splitlines():
        if line.strip():
            yield json.loads(line)


# --------------------------------------------------------------------------- command line
#
# python -m tests.k8sapi --kubeconfig FILE [--load FILE ...] [--port N] [--ca-file FILE]
#
# Serves the double until SIGINT or SIGTERM, for trying netplex by hand (README, "Try the
# plugin by hand"). It creates the objects of the files given, starts serving, writes a
# kubeconfig for itself (replaced atomically, so a script can wait for the file), prints
# one line per request it answers, and exits 0 when stopped. Exit 2: a file cannot be
# read, an object is refused (with the double's own message), or the port is taken.


def load_objects(path: Path) -> list[JSON]:
    """The objects of a JSON or YAML file: one object, several YAML documents, or a ``List``."""
    import yaml

    objects: list[JSON] = []
    for doc in yaml.safe_load_all(path.read_text()):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ValueError(f"{path}: expected an object, got {type(doc).__name__}")
        if str(doc.get("kind", "")).endswith("List") and isinstance(doc.get("items"), list):
            objects.extend(doc["items"])
        else:
            objects.append(doc)
    return objects


def main(argv: list[str] | None = None) -> int:
    import argparse
    import os
    import signal
    import sys

    import yaml

    parser = argparse.ArgumentParser(
        prog="python -m tests.k8sapi",
        description="Serve the Kubernetes API test double on 127.0.0.1 until SIGINT or SIGTERM.")
    parser.add_argument("--kubeconfig", type=Path, required=True,
                        help="write a kubeconfig for the double here once it is serving")
    parser.add_argument("--load", type=Path, nargs="+", default=[], metavar="FILE",
                        help="create the objects of these JSON or YAML files, in order (Pods, NADs, Namespaces)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free port)")
    parser.add_argument("--ca-file", type=Path, help="also write the CA certificate here (PEM), for curl --cacert")
    parser.add_argument("--plain-http", action="store_true", help="serve HTTP instead of HTTPS")
    parser.add_argument("--token", default="test-token", help="the bearer token accepted (default: test-token)")
    args = parser.parse_args(argv)

    def say(line: str) -> None:
        print(line, flush=True)

    api = FakeApiServer(tls=not args.plain_http, token=args.token, port=args.port)
    for path in args.load:
        try:
            for obj in load_objects(path):
                api.create(obj)
                meta = obj.get("metadata") or {}
                where = "" if obj.get("kind") == "Namespace" else f"{meta.get('namespace') or 'default'}/"
                say(f"created {obj.get('kind')} {where}{meta.get('name')}")
        except (OSError, ValueError, yaml.YAMLError) as exc:
            print(f"python -m tests.k8sapi: cannot load {path}: {exc}", file=sys.stderr)
            return 2
        except ApiError as exc:
            print(f"python -m tests.k8sapi: {path}: {exc.code} {exc.reason}: {exc.message}", file=sys.stderr)
            return 2

    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        api.start()
    except OSError as exc:
        print(f"python -m tests.k8sapi: cannot listen on 127.0.0.1:{args.port}: {exc}", file=sys.stderr)
        return 2
    try:
        if args.ca_file is not None and api.ca_pem is not None:
            args.ca_file.write_bytes(api.ca_pem)
        partial = args.kubeconfig.with_name(f".{args.kubeconfig.name}.tmp")
        api.kubeconfig(partial)
        os.replace(partial, args.kubeconfig)
        say(f"serving {api.url} (bearer token {args.token}); kubeconfig: {args.kubeconfig}")
        shown = 0
        while True:
            stopping = stop.wait(0.05)
            received = api.requests_matching()
            while shown < len(received) and received[shown].status is not None:  # in order, once answered
                say(f"{received[shown].method} {received[shown].path} {received[shown].status}")
                shown += 1
            if stopping:
                break
    finally:
        api.stop()
    say("stopped")
    return 0


__all__ = [
    "DEFAULT_NAMESPACES", "EVENTS", "MUTATING_WEBHOOKS", "NADS", "NAMESPACES", "PODS", "SECRETS", "VALIDATING_WEBHOOKS",
    "ApiError", "ClusterState", "Event", "FakeApiServer", "Recorded", "Resource", "Selector", "TlsMaterial",
    "iter_watch_lines", "make_event", "make_nad", "make_namespace", "make_pod", "make_secret", "make_tls_material",
    "make_webhook_configuration", "merge_patch",
]


if __name__ == "__main__":
    raise SystemExit(main())
