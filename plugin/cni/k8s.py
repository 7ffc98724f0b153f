"""A tiny Kubernetes API client: GET a pod or a NAD, merge-patch a pod's status annotations.

The plugin needs three calls per ADD, so a client library (and its import time, on every
pod sandbox) is not worth it. What the calls must get right, from Multus' bug reports:

- **Expiring tokens** (``error getting pod: Unauthorized``, Multus #852/#1263): the
  connection is re-resolved from the kubeconfig, and its token file, before *every*
  request, so a rotated token works without restarting anything; a 401 says so.
- **Short deadlines** (``context deadline exceeded``, #1461): each request gets
  ``timeout`` seconds (10 by default, not 250 ms), connection errors, 429 and 5xx are
  retried with a small backoff, a few times, within ``deadline``.
- **Cold paths stay cheap**: ``ssl`` and ``http.client`` are imported inside
  :class:`HttpTransport` only, when the API server is actually called (STYLE.md).

HTTP happens in a *transport*, a callable doing one request (:data:`Transport`);
:class:`HttpTransport` is the real one and tests may pass their own.

The status annotations are written with a JSON merge patch of ``pods/status``
(``{"metadata":{"annotations":{...}}}``): only the keys given change, nothing else of the
pod is sent back, and no read-modify-write race exists (Multus does GET + UpdateStatus).
RBAC therefore needs ``get`` on pods and network-attachment-definitions and ``patch``
on ``pods/status``.

Exceptions::

    ApiError(Exception)               status, reason, message (the API's Status when it sent one)
     ├── ConnectionFailed             no HTTP answer after the retries, or TLS refused (status 503)
     ├── BadKubeconfig                the kubeconfig, re-read for this call, is unusable (status 0)
     └── PodUidMismatch               the pod by that name is another pod (status 409)
    TransportError(Exception)         raised by a Transport when there is no HTTP answer;
                                      the Client turns it into ConnectionFailed
    plugin.cni.kubeconfig.KubeconfigError raised by client_from_config for an unusable config
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Mapping
from urllib.parse import quote, urlsplit

from plugin.cni import kubeconfig
from plugin.cni.kubeconfig import Connection
from plugin.model.records import KW_ONLY, field, record

TYPE_CHECKING = False  # typing is not imported at run time (~4 ms per start); mypy takes this as True
if TYPE_CHECKING:
    import http.client
    import ssl
    from typing import Any

USER_AGENT = "netplex-cni"
MERGE_PATCH = "application/merge-patch+json"
NAD_GROUP_VERSION = "k8s.cni.cncf.io/v1"
RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
STATIC_POD_SOURCE_ANNOTATION = "kubernetes.io/config.source"


# --------------------------------------------------------------------------- errors


class ApiError(Exception):
    """The API server answered with an error, or could not be asked.

    ``status``, ``reason`` and ``message`` come from the ``Status`` body when the server
    sent one (``404``, ``NotFound``, ``pods "x" not found``); ``str()`` is one line
    naming the request, those three and, where it helps, what to do.
    """

    def __init__(self, status: int, reason: str, message: str, *, method: str = "", path: str = "",
                 hint: str = "") -> None:
        self.status = status
        self.reason = reason
        self.message = message
        self.method = method
        self.path = path
        self.hint = hint
        super().__init__(self._line())

    def _line(self) -> str:
        where = f"{self.method} {self.path}: " if self.method else ""
        code = f"{self.status} {self.reason}" if self.status else self.reason
        text = f"{where}{code}: {self.message}" if code else f"{where}{self.message}"
        return f"{text}; {self.hint}" if self.hint else text


class ConnectionFailed(ApiError):
    """No HTTP answer (refused, reset, timed out, TLS handshake refused)."""


class BadKubeconfig(ApiError):
    """The kubeconfig changed under us and can no longer be used."""


class PodUidMismatch(ApiError):
    """The pod by that name is not the sandbox's pod (deleted and re-created meanwhile)."""


class TransportError(Exception):
    """A transport got no HTTP answer; ``retryable`` is False when trying again cannot help."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


# ------------------------------------------------------------------------ transport


@record(frozen=True, slots=True)
class Request:
    """One HTTP request, with the connection settings it must be sent with."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None
    timeout: float
    connection: Connection


@record(frozen=True, slots=True)
class Response:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes


Transport = Callable[[Request], Response]


class HttpTransport:
    """The real transport: ``http.client`` over TLS from an ``ssl.SSLContext``.

    One keep-alive connection is reused while the server, the TLS settings and the
    timeout stay the same; SSL contexts are cached per TLS settings for the life of this
    object (one plugin invocation), never at module level, so rotated credentials are
    never served from an old process-wide cache.
    """

    def __init__(self) -> None:
        self._contexts: dict[tuple[Any, ...], ssl.SSLContext] = {}
        self._conn: http.client.HTTPConnection | None = None
        self._conn_key: tuple[Any, ...] | None = None

    def __call__(self, request: Request) -> Response:
        import http.client

        parts = urlsplit(request.url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn, reused = self._connection(request)
        try:
            conn.request(request.method, target, body=request.body, headers=dict(request.headers))
            resp = conn.getresponse()
            body = resp.read()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
            self.close()
            if reused:  # the server closed an idle keep-alive connection: one fresh try
                return self(request)
            raise TransportError(_describe(exc)) from exc
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise TransportError(_describe(exc), retryable=_retryable(exc)) from exc
        if resp.will_close:
            self.close()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        self._conn_key = None

    def _connection(self, request: Request) -> tuple[http.client.HTTPConnection, bool]:
        import http.client

        c = request.connection
        parts = urlsplit(request.url)
        host = parts.hostname or ""
        tls_key = (c.ca_data, c.insecure, c.client_cert_data, c.client_key_data, c.tls_server_name)
        key = (parts.scheme, host, parts.port, request.timeout, tls_key)
        if self._conn is not None and self._conn_key == key:
            return self._conn, True
        self.close()
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            context = self._contexts.get(tls_key)
            if context is None:
                context = self._contexts[tls_key] = ssl_context(c)
            conn = https_connection(host, parts.port or 443, request.timeout, context,
                                     c.tls_server_name or host)
        elif parts.scheme == "http":
            conn = http.client.HTTPConnection(host, parts.port or 80, timeout=request.timeout)
        else:
            raise TransportError(f"unsupported URL scheme in {request.url}", retryable=False)
        self._conn, self._conn_key = conn, key
        return conn, False


def https_connection(host: str, port: int, timeout: float, context: ssl.SSLContext,
                      server_name: str) -> http.client.HTTPConnection:
    """An HTTPS connection whose SNI and certificate check use ``server_name``
    (kubeconfig ``tls-server-name``), which ``http.client`` cannot do by itself."""
    import http.client

    class _Https(http.client.HTTPSConnection):
        def connect(self) -> None:
            http.client.HTTPConnection.connect(self)
            self.sock = context.wrap_socket(self.sock, server_hostname=server_name)

    return _Https(host, port, timeout=timeout, context=context)


def ssl_context(c: Connection) -> ssl.SSLContext:
    """TLS ≥ 1.2, the kubeconfig's CA (or the system's), and the client certificate.

    ``load_cert_chain`` reads only files, so certificate and key data go to a temp file
    created 0600 and removed as soon as they are loaded.
    """
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if c.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif c.ca_data:
        try:
            if b"-----BEGIN" in c.ca_data:
                context.load_verify_locations(cadata=c.ca_data.decode("ascii", "replace"))
            else:
                context.load_verify_locations(cadata=c.ca_data)
        except (ssl.SSLError, ValueError) as exc:
            raise TransportError(f"the certificate authority from {c.source or 'the connection'} "
                                 f"cannot be loaded: {exc}", retryable=False) from exc
    else:
        context.load_default_certs()
    if c.client_cert_data and c.client_key_data:
        _load_client_certificate(context, c)
    return context


def _load_client_certificate(context: ssl.SSLContext, c: Connection) -> None:
    import os
    import ssl
    import tempfile

    assert c.client_cert_data is not None and c.client_key_data is not None
    fd, path = tempfile.mkstemp(prefix="netplex-client-", suffix=".pem")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(c.client_cert_data.rstrip(b"\n") + b"\n" + c.client_key_data)
        context.load_cert_chain(path)
    except (ssl.SSLError, OSError) as exc:
        raise TransportError(f"the client certificate and key from {c.source or 'the connection'} "
                             f"cannot be loaded: {exc}", retryable=False) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError) or "timed out" in text:
        return f"timed out ({text})"
    return text


def _retryable(exc: BaseException) -> bool:
    """Certificate verification failures are configuration, not weather."""
    import ssl

    return not isinstance(exc, ssl.SSLCertVerificationError)


# --------------------------------------------------------------------------- client


ConnectionSource = Connection | Callable[[], Connection]


@record
class Client:
    """GET pods and NADs, merge-patch pod status annotations.

    ``connection`` is a :class:`Connection` or a callable returning one; the callable
    (what :func:`client_from_config` passes) is called before each request, which is
    how a rewritten kubeconfig or a rotated token file takes effect immediately.
    """

    connection: ConnectionSource
    _: KW_ONLY
    timeout: float = 10.0
    transport: Transport | None = None
    attempts: int = 3
    backoff: float = 0.2
    deadline: float = 30.0
    conflict_attempts: int = 5
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    def __post_init__(self) -> None:
        if self.transport is None:
            self.transport = HttpTransport()

    def close(self) -> None:
        """Close a kept-alive connection (the process exiting does the same)."""
        close = getattr(self.transport, "close", None)
        if callable(close):
            close()

    # -- the three calls

    def get_pod(self, namespace: str, name: str, *, uid: str | None = None) -> dict[str, Any]:
        """The pod, always from the API. ``uid`` (the sandbox's ``K8S_POD_UID``) is what
        :func:`wait_for_pod` expects to find: this client ignores it; the node daemon's
        wrapper (:class:`plugin.node.daemon.CachedReads`) answers from its pod cache
        only when the cached pod has that UID."""
        return self.call("GET", f"/api/v1/namespaces/{_seg(namespace)}/pods/{_seg(name)}")

    def get_nad(self, namespace: str, name: str) -> dict[str, Any]:
        return self.call("GET", f"/apis/{NAD_GROUP_VERSION}/namespaces/{_seg(namespace)}"
                                f"/network-attachment-definitions/{_seg(name)}")

    def patch_pod_status_annotations(self, namespace: str, name: str,
                                     annotations: Mapping[str, str | None]) -> dict[str, Any]:
        """Set (or, with None, remove) these annotations and nothing else; 409 is retried.

        A merge patch carries no resourceVersion, so a conflict is rare; when an API
        server still answers 409 the same patch is simply sent again.
        """
        body = json.dumps({"metadata": {"annotations": dict(annotations)}}).encode()
        path = f"/api/v1/namespaces/{_seg(namespace)}/pods/{_seg(name)}/status"
        for attempt in range(1, self.conflict_attempts + 1):
            try:
                return self.call("PATCH", path, body=body, content_type=MERGE_PATCH)
            except ApiError as exc:
                if exc.status != 409 or isinstance(exc, PodUidMismatch) or attempt == self.conflict_attempts:
                    raise
                self.sleep(0.01 * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- the one request loop

    def call(self, method: str, path: str, *, body: bytes | None = None,
             content_type: str | None = None) -> dict[str, Any]:
        """One API call with retries: the decoded JSON object of a 2xx answer, else ApiError."""
        assert self.transport is not None
        start = self.clock()
        attempt = 0
        while True:
            attempt += 1
            conn = self._resolve(method, path)
            headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
            if conn.token:
                headers["Authorization"] = f"Bearer {conn.token}"
            if body is not None:
                headers["Content-Type"] = content_type or "application/json"
            remaining = self.deadline - (self.clock() - start)
            request = Request(method, conn.server + path, headers, body,
                              max(0.1, min(self.timeout, remaining)), conn)
            try:
                response = self.transport(request)
            except (TransportError, OSError) as exc:
                retryable = getattr(exc, "retryable", True)
                if retryable and self._may_retry(attempt, start, None):
                    continue
                tries = f" after {attempt} attempts" if attempt > 1 else ""
                hint = "" if retryable else f"check the TLS settings in {conn.source or 'the kubeconfig'}"
                raise ConnectionFailed(503, "ServiceUnavailable",
                                       f"cannot reach the API server {conn.server}{tries}: {exc}",
                                       method=method, path=path, hint=hint) from exc
            if 200 <= response.status < 300:
                return _decode_object(response, method, path)
            if response.status in RETRIED_STATUSES and self._may_retry(attempt, start, response):
                continue
            raise api_error(response, method, path, conn)

    def _resolve(self, method: str, path: str) -> Connection:
        if isinstance(self.connection, Connection):
            return self.connection
        try:
            return self.connection()
        except kubeconfig.KubeconfigError as exc:
            raise BadKubeconfig(0, "", str(exc), method=method, path=path) from exc

    def _may_retry(self, attempt: int, start: float, response: Response | None) -> bool:
        """Sleep the backoff (or a short Retry-After) and say yes, if attempts and time remain."""
        if attempt >= self.attempts:
            return False
        pause = self.backoff * (2 ** (attempt - 1))
        if response is not None:
            with contextlib.suppress(ValueError):
                pause = max(pause, min(float(response.headers.get("retry-after", "0")), 2.0))
        if self.clock() - start + pause >= self.deadline:
            return False
        self.sleep(pause)
        return True


def _seg(value: str) -> str:
    return quote(value, safe="")


def _decode_object(response: Response, method: str, path: str) -> dict[str, Any]:
    try:
        data = json.loads(response.body)
    except ValueError as exc:
        raise ApiError(response.status, "InvalidResponse", f"the answer is not JSON ({exc})",
                       method=method, path=path) from exc
    if not isinstance(data, dict):
        raise ApiError(response.status, "InvalidResponse",
                       f"expected a JSON object, got {type(data).__name__}", method=method, path=path)
    return data


def api_error(response: Response, method: str, path: str, conn: Connection) -> ApiError:
    """ApiError from a ``Status`` body when there is one, from the status line otherwise."""
    from http import HTTPStatus

    try:
        phrase = HTTPStatus(response.status).phrase.replace(" ", "")
    except ValueError:
        phrase = "Unknown"
    reason, message = phrase, response.body.decode("utf-8", "replace").strip()[:300]
    try:
        status = json.loads(response.body)
    except ValueError:
        status = None
    if isinstance(status, dict) and status.get("kind") == "Status":
        reason = str(status.get("reason") or phrase)
        message = str(status.get("message") or message)
    hint = ""
    if response.status == 401:
        source = conn.source or "the kubeconfig"
        hint = (f"the token may have expired or been rotated; netplex re-reads {source} (and its "
                "token file) on each call, so putting a valid token there fixes this without a restart")
    elif response.status == 403:
        hint = ("the plugin's identity needs get on pods and network-attachment-definitions "
                "and patch on pods/status")
    return ApiError(response.status, reason, message or phrase, method=method, path=path, hint=hint)


# ----------------------------------------------------------------------- entry points


def client_from_config(
    kubeconfig_path: str | None,
    *,
    environ: Mapping[str, str] | None = None,
    token_path: str = kubeconfig.IN_CLUSTER_TOKEN,
    ca_path: str = kubeconfig.IN_CLUSTER_CA,
    **kw: Any,
) -> Client | None:
    """A client for ``kubeconfig_path`` (or in-cluster), or None when there is no Kubernetes.

    The configuration is resolved now, so a broken kubeconfig fails here with a
    :class:`~plugin.cni.kubeconfig.KubeconfigError`, and again before every request.
    ``kw`` goes to :class:`Client` (timeout, transport, attempts, ...).
    """
    first = kubeconfig.resolve(kubeconfig_path, environ=environ, token_path=token_path, ca_path=ca_path)
    if first is None:
        return None
    env = dict(environ) if environ is not None else None

    def current() -> Connection:
        conn = kubeconfig.resolve(kubeconfig_path, environ=env, token_path=token_path, ca_path=ca_path)
        if conn is None:
            raise kubeconfig.KubeconfigError("the in-cluster environment (KUBERNETES_SERVICE_HOST/PORT) is gone")
        return conn

    return Client(current, **kw)


def wait_for_pod(client: Client, namespace: str, name: str, uid: str | None, *,
                 attempts: int = 10, delay: float = 0.25,
                 sleep: Callable[[float], None] = time.sleep) -> Mapping[str, Any] | None:
    """The pod, retrying a 404 (the sandbox can start before the pod is visible here).

    None when it is still not found after ``attempts`` GETs: Multus then returns an empty
    result and does nothing, and the caller decides the same way. With ``uid`` (from
    ``K8S_POD_UID``) the pod must be that pod, except static pods, whose API object (the
    mirror pod) has a UID of its own. The pod may be a read-only mapping (the daemon's
    pod cache): callers read it, never change it.
    """
    for attempt in range(1, max(1, attempts) + 1):
        try:
            pod: Mapping[str, Any] = client.get_pod(namespace, name, uid=uid)
        except ApiError as exc:
            if exc.status != 404 or isinstance(exc, PodUidMismatch):
                raise
            if attempt >= attempts:
                return None
            sleep(delay)
            continue
        _check_uid(pod, namespace, name, uid)
        return pod
    return None  # pragma: no cover


def _check_uid(pod: Mapping[str, Any], namespace: str, name: str, uid: str | None) -> None:
    if not uid:
        return
    meta = pod.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    annotations = meta.get("annotations")
    source = annotations.get(STATIC_POD_SOURCE_ANNOTATION) if isinstance(annotations, Mapping) else None
    if source not in (None, "api"):
        return  # a static pod: the kubelet's UID is not the mirror pod's
    got = meta.get("uid")
    if got != uid:
        raise PodUidMismatch(
            409, "PodUidMismatch", f"expected pod UID \"{uid}\" but got \"{got}\" from Kube API",
            method="GET", path=f"/api/v1/namespaces/{namespace}/pods/{name}",
            hint="the pod was deleted and re-created under the same name (e.g. by a StatefulSet); "
                 "this sandbox belongs to the old one",
        )
