"""The ASGI app: HTTP guardrails around a :class:`Handler`, and the webhook's metrics.

Endpoints::

    POST /validate   AdmissionReview v1 or v1beta1 -> handler.validate -> AdmissionReview
    POST /mutate     AdmissionReview v1 or v1beta1 -> handler.mutate   -> AdmissionReview
    GET  /healthz    200 "ok" while the process serves
    GET  /readyz     200 once handler.ready() (NAD index synced), else 503 + JSON reason
    GET  /metrics    Prometheus text format

Two families of errors, two channels. A bad *object* is an ``allowed: false`` review
(the handler's business). A bad *webhook request* is an HTTP error with a JSON body
``{"error": "..."}`` and the API server's ``failurePolicy`` decides:

    415  Content-Type is not application/json (parameters such as charset=utf-8 are fine)
    413  body larger than ``max_body`` (Content-Length checked first, then counted while
         reading; the body is never read past the limit)
    400  empty body, not JSON, or not an AdmissionReview (see webhook.reviews)
    500  the handler raised, or returned something that cannot be sent: logged on the
         ``netplex.webhook`` logger with the request uid; never an allow, never a crash

``POST /validate`` and ``POST /mutate`` are served on raw ASGI before FastAPI's own
``__call__`` (:class:`WebhookApp`): its middleware stack, routing, dependency solving and
``Request`` object cost more than a whole admission decision. The FastAPI routes of the
same paths remain, for every other method (405) and as the documented surface. Decoding, the handler call and encoding run
together: on the event loop when the handler declares ``decides_inline`` (CPU-only
decisions; see :mod:`webhook.blocking` for how one that must wait for the API server
steps aside) and the body is small, else in one worker thread, so a slow handler or a
large body never stalls the event loop, ``/healthz`` or the other requests.

Metrics live in a registry owned by the app (:attr:`app.state.registry`), so many apps
can coexist in one process (tests). With several worker processes (``--workers``, which
sets ``PROMETHEUS_MULTIPROC_DIR`` before this module is imported) the request counters
and the latency histogram are shared through prometheus-client's multiprocess files, so
a scrape answered by any worker counts the requests of all of them; the gauges and the
process/GC collectors describe the worker that answered. Label values are bounded: kinds and operations
outside the known sets are counted as ``other``; a request that could not be parsed is
``unknown``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import orjson
from fastapi import FastAPI, Request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    gc_collector,
    generate_latest,
    multiprocess,
    platform_collector,
    process_collector,
)
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import PlainTextResponse, Response
from starlette.types import Message, Receive, Scope, Send

from plugin.model import limits
from plugin.model.problems import printable
from webhook import blocking, reviews
from webhook.verdicts import Verdict

log = logging.getLogger("netplex.webhook")

DEFAULT_MAX_BODY = reviews.DEFAULT_MAX_BODY
INLINE_MAX_BODY = 256 * 1024  # larger reviews are decoded in a worker thread
# Nesting allowed in a body that orjson refused (it stops at 1,024 levels itself) and the
# standard library must decode: well inside the interpreter's recursion limit.
BODY_MAX_DEPTH = 512
JSON = "application/json"
_JSON_HEADERS = [(b"content-type", JSON.encode())]

ENDPOINTS = ("validate", "mutate")
KINDS = (
    "Pod",
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "ReplicationController",
    "NetworkAttachmentDefinition",
    "Namespace",
)
OPERATIONS = ("CREATE", "UPDATE", "DELETE", "CONNECT")
PREINITIALISED_OPERATIONS = ("CREATE", "UPDATE")
OUTCOMES = ("allowed", "denied", "patched", "error", "bad_request")
OTHER = "other"
UNKNOWN = "unknown"
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

_KINDS = frozenset(KINDS)
_OPERATIONS = frozenset(OPERATIONS)


class Handler(Protocol):
    """What the transport needs from the admission logic (built by ``webhook.wiring``)."""

    def validate(self, request: dict[str, Any]) -> Verdict: ...

    def mutate(self, request: dict[str, Any]) -> Verdict: ...

    def ready(self) -> bool:
        """True once the NAD/Namespace index has synced."""
        ...

    def index_size(self) -> int:
        """Number of NADs known, for the ``netplex_webhook_index_size`` gauge."""
        ...


# A handler may also set ``decides_inline = True``: its decisions are CPU-only unless they
# call ``webhook.blocking.may_block`` first, so the app runs them on the event loop.


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: bytes
    outcome: str
    kind: str = UNKNOWN
    operation: str = UNKNOWN


class Metrics:
    """The app's Prometheus series, in a registry of their own."""

    def __init__(self, handler: Handler) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        process_collector.ProcessCollector(registry=self.registry)
        platform_collector.PlatformCollector(registry=self.registry)
        gc_collector.GCCollector(registry=self.registry)
        shared_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        self.shared: CollectorRegistry | None = None
        if shared_dir:
            self.shared = CollectorRegistry()
            multiprocess.MultiProcessCollector(self.shared, path=shared_dir)
        per_request = None if shared_dir else self.registry  # shared: read back from the files
        self.requests = Counter(
            "netplex_webhook_requests_total",
            "Admission requests answered, by endpoint, object kind, operation and outcome.",
            ["endpoint", "kind", "operation", "outcome"],
            registry=per_request,
        )
        self.duration = Histogram(
            "netplex_webhook_request_duration_seconds",
            "Time from request headers to response, by endpoint.",
            ["endpoint"],
            buckets=DURATION_BUCKETS,
            registry=per_request,
        )
        self.index_size = Gauge(
            "netplex_webhook_index_size",
            "NetworkAttachmentDefinitions known to the webhook (read at scrape time).",
            registry=self.registry,
        )
        self.ready = Gauge(
            "netplex_webhook_ready",
            "1 when the webhook's index has synced and it answers /readyz with 200.",
            registry=self.registry,
        )
        self.index_size.set_function(lambda: _probe(handler.index_size, "index_size"))
        self.ready.set_function(lambda: _probe(lambda: 1.0 if handler.ready() else 0.0, "ready"))
        for endpoint in ENDPOINTS:
            self.duration.labels(endpoint)
            self.requests.labels(endpoint, UNKNOWN, UNKNOWN, "bad_request")
            for kind in KINDS:
                for operation in PREINITIALISED_OPERATIONS:
                    for outcome in OUTCOMES:
                        if outcome != "bad_request":
                            self.requests.labels(endpoint, kind, operation, outcome)

        # Children resolved once: ``labels()`` takes a lock and builds a tuple per call.
        self._counted: dict[tuple[str, str, str, str], Any] = {}
        self._timed = {endpoint: self.duration.labels(endpoint) for endpoint in ENDPOINTS}

    def exposition(self) -> bytes:
        """The text a scrape gets: all workers' request series, then this worker's own."""
        own = generate_latest(self.registry)
        return own if self.shared is None else generate_latest(self.shared) + own

    def observe(self, endpoint: str, answer: _Answer, seconds: float) -> None:
        key = (endpoint, answer.kind, answer.operation, answer.outcome)
        counter = self._counted.get(key)
        if counter is None:
            counter = self._counted[key] = self.requests.labels(*key)
        counter.inc()
        self._timed[endpoint].observe(seconds)


def _probe(read: Any, what: str) -> float:
    try:
        return float(read())
    except Exception:
        log.exception("metrics: handler.%s() failed", what)
        return float("nan")


class WebhookApp(FastAPI):
    """FastAPI, with the two review endpoints answered before its middleware stack."""

    REVIEW_PATHS: ClassVar[dict[str, str]] = {"/validate": "validate", "/mutate": "mutate"}

    def __init__(self, reviews: _Reviews, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reviews = reviews

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            endpoint = self.REVIEW_PATHS.get(scope["path"])
            if endpoint is not None:
                await self.reviews.respond(endpoint, scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(handler: Handler, *, max_body: int = DEFAULT_MAX_BODY) -> WebhookApp:
    """The webhook's ASGI app around ``handler``; metrics in ``app.state.registry``."""
    if max_body <= 0:
        raise ValueError(f"max_body must be positive, got {max_body}")
    metrics = Metrics(handler)
    served = _Reviews(handler, metrics, max_body)
    app = WebhookApp(
        served,
        title="netplex admission webhook",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.registry = metrics.registry
    app.state.metrics = metrics

    @app.post("/validate")
    async def validate(request: Request) -> Response:
        return _response(await served.answer("validate", request.scope["headers"], request.receive))

    @app.post("/mutate")
    async def mutate(request: Request) -> Response:
        return _response(await served.answer("mutate", request.scope["headers"], request.receive))

    @app.get("/healthz")
    async def healthz() -> Response:
        return PlainTextResponse("ok")

    @app.get("/readyz")
    async def readyz() -> Response:
        try:
            ready = bool(handler.ready())
        except Exception as exc:
            log.exception("readyz: handler.ready() failed")
            return _json(503, {"ready": False, "reason": f"readiness check failed: {type(exc).__name__}"})
        if ready:
            return _json(200, {"ready": True})
        return _json(503, {"ready": False, "reason": "the NetworkAttachmentDefinition index has not synced yet"})

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return Response(
            _error_body(str(exc.detail)),
            status_code=exc.status_code,
            media_type=JSON,
            headers=exc.headers,
        )

    return app


class _Reviews:
    """The review endpoints on raw ASGI: read within limits, decide, encode, count."""

    def __init__(self, handler: Handler, metrics: Metrics, max_body: int) -> None:
        self.handler = handler
        self.metrics = metrics
        self.max_body = max_body
        self.inline = getattr(handler, "decides_inline", False) is True

    async def answer(self, endpoint: str, headers: list[tuple[bytes, bytes]], receive: Receive) -> _Answer:
        started = time.perf_counter()
        try:
            answer = await self._answer(endpoint, headers, receive)
        except Exception:  # a bug in this module: still answer, still count
            log.exception("%s: unexpected error in the transport", endpoint)
            answer = _Answer(500, _error_body(f"internal error in the /{endpoint} transport"), "error")
        self.metrics.observe(endpoint, answer, time.perf_counter() - started)
        return answer

    async def respond(self, endpoint: str, scope: Scope, receive: Receive, send: Send) -> None:
        answer = await self.answer(endpoint, scope["headers"], receive)
        await send({
            "type": "http.response.start",
            "status": answer.status,
            "headers": [*_JSON_HEADERS, (b"content-length", str(len(answer.body)).encode())],
        })
        await send({"type": "http.response.body", "body": answer.body})

    async def _answer(self, endpoint: str, headers: list[tuple[bytes, bytes]], receive: Receive) -> _Answer:
        content_type = declared = None
        for name, value in headers:
            if name == b"content-type" and content_type is None:
                content_type = value.decode("latin-1")
            elif name == b"content-length" and declared is None:
                declared = value.decode("latin-1")
        problem = _check_content_type(content_type)
        if problem:
            return _refuse(endpoint, 415, problem)
        max_body = self.max_body
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                return _refuse(endpoint, 400, f"Content-Length {declared!r} is not a number")
            if size > max_body:
                return _refuse(endpoint, 413, f"request body of {size} bytes is larger than the limit of {max_body} bytes")
        chunks: list[bytes] = []
        received = 0
        while True:
            message: Message = await receive()
            if message["type"] != "http.request":  # http.disconnect
                return _refuse(endpoint, 400, "client disconnected before sending the whole body")
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > max_body:
                return _refuse(endpoint, 413, f"request body is larger than the limit of {max_body} bytes")
            if chunk:
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        if not received:
            return _refuse(endpoint, 400, "request body is empty; expected an AdmissionReview JSON object")
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if self.inline and received <= INLINE_MAX_BODY:
            try:
                with blocking.inline():
                    return _answer(endpoint, self.handler, body)
            except blocking.WouldBlock:
                pass  # it needs the API server: decide again where waiting is fine
        return await run_in_threadpool(_answer, endpoint, self.handler, body)


def _check_content_type(value: str | None) -> str | None:
    """None when acceptable, else what is wrong (for a 415)."""
    if not value:
        return f"Content-Type is missing; expected {JSON}"
    media_type, _, params = value.partition(";")
    if media_type.strip().lower() != JSON:
        return f"Content-Type {value!r} is not supported; expected {JSON}"
    for param in params.split(";"):
        name, _, arg = param.partition("=")
        if name.strip().lower() == "charset" and arg.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return f"Content-Type {value!r} is not supported; JSON must be encoded as utf-8"
    return None


def _answer(endpoint: str, handler: Handler, body: bytes) -> _Answer:
    """Decode, decide, encode: on the event loop or in a worker thread (see the module doc)."""
    try:
        # orjson is ~3x faster; what it refuses goes to the standard library, which says
        # precisely what is wrong (or accepts it: lone surrogates, integers beyond 64 bits,
        # neither of which the API server sends, since it encodes from Go types).
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            return _refuse(endpoint, 400, f"request body is not valid UTF-8: byte 0x{body[exc.start]:02x} at position {exc.start}")
        too_deep = limits.depth_problem(limits.text_depth(text, BODY_MAX_DEPTH), BODY_MAX_DEPTH)
        if too_deep is not None:  # the standard library's decoder recurses
            return _refuse(endpoint, 400, f"request body {too_deep}")
        try:
            decoded = json.loads(text, parse_constant=_reject_constant, parse_int=_bounded_int)
        except ValueError as exc:
            return _refuse(endpoint, 400, f"request body is not valid JSON: {_first_line(exc)}")
    try:
        review = reviews.parse_review(decoded)
    except reviews.BadReview as exc:
        return _refuse(endpoint, 400, f"not an AdmissionReview this webhook can answer: {exc.reason}")

    request = review.request
    kind = review.kind if review.kind in _KINDS else OTHER
    operation = review.operation if review.operation in _OPERATIONS else OTHER
    uid = review.uid

    def failed(reason: str) -> _Answer:
        return _Answer(500, _error_body(reason, uid=uid), "error", kind, operation)

    decide = handler.validate if endpoint == "validate" else handler.mutate
    try:
        verdict = decide(request)
    except blocking.WouldBlock:
        raise
    except Exception:
        log.exception(
            "%s: handler failed for request uid=%s (%s %s %s/%s)",
            endpoint,
            uid,
            review.operation or "?",
            review.kind or "?",
            request.get("namespace") or "-",
            request.get("name") or "-",
        )
        return failed(f"internal error while handling request {uid}; see the webhook log")
    if not isinstance(verdict, Verdict):
        log.error("%s: handler returned %s, not a Verdict, for request uid=%s", endpoint, type(verdict).__name__, uid)
        return failed(f"internal error while handling request {uid}; see the webhook log")
    if endpoint == "validate" and verdict.patch:
        log.error("validate: handler returned a patch for request uid=%s; validating webhooks may not patch", uid)
        return failed(f"internal error while handling request {uid}: a validating webhook may not return a patch")
    try:
        out = reviews.dumps(reviews.render(review.api_version, uid, verdict))
    except (TypeError, ValueError):
        log.exception("%s: cannot encode the verdict for request uid=%s", endpoint, uid)
        return failed(f"internal error while encoding the answer to request {uid}; see the webhook log")
    if not verdict.allowed:
        outcome = "denied"
    elif verdict.patch:
        outcome = "patched"
    else:
        outcome = "allowed"
    return _Answer(200, out, outcome, kind, operation)


def _refuse(endpoint: str, status: int, reason: str) -> _Answer:
    log.warning("%s: HTTP %d: %s", endpoint, status, printable(reason))
    return _Answer(status, _error_body(reason), "bad_request")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _bounded_int(text: str) -> int:
    problem = limits.int_problem(text)
    if problem is not None:
        raise ValueError(problem)
    return int(text)


def _first_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]


def _error_body(reason: str, *, uid: str | None = None) -> bytes:
    """``{"error": reason}``: ASCII JSON, so any reason can be sent (an unpaired surrogate
    from the request stays an escape instead of turning a 400 into a 500)."""
    doc: dict[str, Any] = {"error": reason}
    if uid is not None:
        doc["uid"] = uid
    return json.dumps(doc).encode()


def _response(answer: _Answer) -> Response:
    return Response(answer.body, status_code=answer.status, media_type=JSON)


def _json(status: int, doc: dict[str, Any]) -> Response:
    return Response(json.dumps(doc).encode(), status_code=status, media_type=JSON)
