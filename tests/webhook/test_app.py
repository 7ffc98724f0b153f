"""webhook.app over ASGI (no sockets): guardrails, error bodies, logging and metrics."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from webhook import blocking
from webhook.app import INLINE_MAX_BODY, KINDS, create_app
from webhook.verdicts import Verdict, allowed, patched

from .conftest import PATCH_OPS, ScriptedHandler, admission_review, pod

JSON = {"content-type": "application/json"}


def call(app: Any, method: str, path: str, *, body: bytes = b"", headers: dict[str, str] | None = None) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://webhook.test") as client:
            return await client.request(method, path, content=body, headers=headers)

    return asyncio.run(go())


def post_review(app: Any, path: str, review: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
    return call(app, "POST", path, body=json.dumps(review).encode(), headers=headers or JSON)


def samples(app: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = call(app, "GET", "/metrics").text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def requests_total(app: Any, endpoint: str, kind: str, operation: str, outcome: str) -> float:
    key = (
        "netplex_webhook_requests_total",
        tuple(sorted({"endpoint": endpoint, "kind": kind, "operation": operation, "outcome": outcome}.items())),
    )
    return samples(app)[key]


@pytest.fixture
def app(handler: ScriptedHandler) -> Any:
    return create_app(handler)


# -- the happy path -----------------------------------------------------------------------


def test_validate_answers_a_v1_review_with_the_uid_echoed_as_json(app: Any) -> None:
    resp = post_review(app, "/validate", admission_review(pod("web"), uid="uid-7"))

    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    assert resp.json() == {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": "uid-7", "allowed": True},
    }


def test_handler_receives_the_request_exactly_as_sent(app: Any, handler: ScriptedHandler) -> None:
    review = admission_review(pod("web"))
    review["request"]["object"]["spec"]["unknownFutureField"] = [1, {"a": None}]

    post_review(app, "/mutate", review)

    assert handler.seen == [review["request"]]


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "Application/JSON;charset=UTF-8", 'application/json; charset="utf-8"'],
)
def test_json_content_type_is_accepted_with_or_without_parameters(app: Any, content_type: str) -> None:
    resp = post_review(app, "/validate", admission_review(pod("web")), headers={"content-type": content_type})

    assert resp.status_code == 200


# -- 415 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({}, "Content-Type is missing; expected application/json"),
        ({"content-type": "text/plain"}, "Content-Type 'text/plain' is not supported; expected application/json"),
        (
            {"content-type": "application/yaml; charset=utf-8"},
            "Content-Type 'application/yaml; charset=utf-8' is not supported; expected application/json",
        ),
        (
            {"content-type": "application/json; charset=latin-1"},
            "Content-Type 'application/json; charset=latin-1' is not supported; JSON must be encoded as utf-8",
        ),
    ],
    ids=["missing", "text-plain", "yaml", "latin-1"],
)
def test_other_content_types_are_refused_with_415_and_a_json_reason(
    app: Any, headers: dict[str, str], error: str
) -> None:
    resp = call(app, "POST", "/validate", body=json.dumps(admission_review(pod("web"))).encode(), headers=headers)

    assert resp.status_code == 415
    assert resp.headers["content-type"] == "application/json"
    assert resp.json() == {"error": error}


# -- 413: never read an unbounded body ------------------------------------------------------


class Feed:
    """An ASGI ``receive`` that sends the body in chunks and counts how often it is read."""

    def __init__(self, chunk: bytes, count: int | None) -> None:
        self.chunk = chunk
        self.count = count  # None: endless
        self.reads = 0

    async def __call__(self) -> dict[str, Any]:
        self.reads += 1
        more = self.count is None or self.reads < self.count
        return {"type": "http.request", "body": self.chunk, "more_body": more}


def drive(app: Any, headers: list[tuple[bytes, bytes]], receive: Feed) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": "/validate",
        "raw_path": b"/validate",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8443),
    }
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body


def test_declared_content_length_over_the_limit_is_refused_with_413_before_reading(handler: ScriptedHandler) -> None:
    app = create_app(handler, max_body=1024)
    feed = Feed(b"x" * 1024, None)

    status, body = drive(app, [(b"content-type", b"application/json"), (b"content-length", b"1025")], feed)

    assert status == 413
    assert json.loads(body) == {"error": "request body of 1025 bytes is larger than the limit of 1024 bytes"}
    assert feed.reads == 0


def test_endless_chunked_body_is_refused_with_413_after_reading_just_past_the_limit(handler: ScriptedHandler) -> None:
    app = create_app(handler, max_body=4096)
    feed = Feed(b"{" * 1000, None)

    status, body = drive(app, [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")], feed)

    assert status == 413
    assert json.loads(body) == {"error": "request body is larger than the limit of 4096 bytes"}
    assert feed.reads == 5


def test_body_of_exactly_the_limit_is_read_and_answered(handler: ScriptedHandler) -> None:
    review = json.dumps(admission_review(pod("web"))).encode()
    app = create_app(handler, max_body=len(review))

    resp = call(app, "POST", "/validate", body=review, headers=JSON)

    assert resp.status_code == 200


def test_body_sent_in_several_chunks_is_joined(handler: ScriptedHandler) -> None:
    review = json.dumps(admission_review(pod("web"), uid="chunked")).encode()
    third = len(review) // 3 + 1
    chunks = [review[i : i + third] for i in range(0, len(review), third)]
    sent = iter(chunks)

    class Chunks(Feed):
        async def __call__(self) -> dict[str, Any]:
            self.reads += 1
            return {"type": "http.request", "body": next(sent), "more_body": self.reads < len(chunks)}

    status, body = drive(create_app(handler), [(b"content-type", b"application/json")], Chunks(b"", None))

    assert status == 200
    assert json.loads(body)["response"]["uid"] == "chunked"


def test_content_length_that_is_not_a_number_is_refused_with_400(handler: ScriptedHandler) -> None:
    status, body = drive(
        create_app(handler), [(b"content-type", b"application/json"), (b"content-length", b"lots")], Feed(b"", 1)
    )

    assert status == 400
    assert json.loads(body) == {"error": "Content-Length 'lots' is not a number"}


def test_max_body_must_be_positive(handler: ScriptedHandler) -> None:
    with pytest.raises(ValueError, match="max_body must be positive, got 0"):
        create_app(handler, max_body=0)


# -- 400 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"", "request body is empty; expected an AdmissionReview JSON object"),
        (b"{not json", "request body is not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
        (b'{"apiVersion": NaN}', "request body is not valid JSON: NaN is not valid JSON"),
        (
            b"[" * 100_000 + b"]" * 100_000,
            "request body is nested more than 512 levels deep; at most 512 levels of objects and lists are accepted",
        ),
        (b'{"kind": "\xff"}', "request body is not valid UTF-8: byte 0xff at position 10"),
        (b"\xff\xfe{\x00}\x00", "request body is not valid UTF-8: byte 0xff at position 0"),
        (
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}',
            "not an AdmissionReview this webhook can answer: request is missing; an AdmissionReview sent to a webhook must carry one",
        ),
        (
            b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {}}',
            "not an AdmissionReview this webhook can answer: request.uid is missing; the response must echo it",
        ),
        (
            b'{"apiVersion": "apps/v1", "kind": "Deployment"}',
            'not an AdmissionReview this webhook can answer: apiVersion "apps/v1" is not supported; '
            "expected admission.k8s.io/v1 or admission.k8s.io/v1beta1",
        ),
    ],
    ids=["empty", "not-json", "nan", "deeply-nested", "latin-1", "utf-16", "no-request", "no-uid", "not-a-review"],
)
def test_bad_webhook_request_is_refused_with_400_and_the_reason(app: Any, body: bytes, error: str) -> None:
    resp = call(app, "POST", "/validate", body=body, headers=JSON)

    assert resp.status_code == 400
    assert resp.headers["content-type"] == "application/json"
    assert resp.json() == {"error": error}


def test_bad_request_is_logged_with_its_reason(app: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="netplex.webhook"):
        call(app, "POST", "/mutate", body=b"[]", headers=JSON)

    assert caplog.messages == [
        "mutate: HTTP 400: not an AdmissionReview this webhook can answer: "
        "body must be a JSON object (an AdmissionReview), got list"
    ]


# -- 500: never a crash, never an allow ---------------------------------------------------


def test_handler_exception_answers_500_and_is_logged_with_the_request_uid(
    app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="netplex.webhook"):
        resp = post_review(app, "/validate", admission_review(pod("boom"), uid="uid-boom"))

    assert resp.status_code == 500
    assert resp.json() == {"error": "internal error while handling request uid-boom; see the webhook log", "uid": "uid-boom"}
    (record,) = caplog.records
    assert record.name == "netplex.webhook"
    assert record.getMessage() == "validate: handler failed for request uid=uid-boom (CREATE Pod team-a/boom)"
    assert record.exc_info is not None and str(record.exc_info[1]) == "scripted failure"


def test_validating_handler_that_returns_a_patch_answers_500_because_the_api_server_would_reject_it(
    handler: ScriptedHandler, caplog: pytest.LogCaptureFixture
) -> None:
    handler.validate = lambda request: patched(PATCH_OPS)  # type: ignore[method-assign]
    app = create_app(handler)

    with caplog.at_level(logging.ERROR, logger="netplex.webhook"):
        resp = post_review(app, "/validate", admission_review(pod("web"), uid="uid-p"))

    assert resp.status_code == 500
    assert resp.json() == {
        "error": "internal error while handling request uid-p: a validating webhook may not return a patch",
        "uid": "uid-p",
    }
    assert caplog.messages == ["validate: handler returned a patch for request uid=uid-p; validating webhooks may not patch"]


def test_handler_that_returns_something_other_than_a_verdict_answers_500(
    handler: ScriptedHandler, caplog: pytest.LogCaptureFixture
) -> None:
    handler.mutate = lambda request: {"allowed": True}  # type: ignore[method-assign,assignment,return-value]
    app = create_app(handler)

    with caplog.at_level(logging.ERROR, logger="netplex.webhook"):
        resp = post_review(app, "/mutate", admission_review(pod("web"), uid="uid-d"))

    assert resp.status_code == 500
    assert resp.json()["error"] == "internal error while handling request uid-d; see the webhook log"
    assert caplog.messages == ["mutate: handler returned dict, not a Verdict, for request uid=uid-d"]


def test_patch_that_cannot_be_encoded_answers_500(handler: ScriptedHandler, caplog: pytest.LogCaptureFixture) -> None:
    handler.mutate = lambda request: patched([{"op": "add", "path": "/x", "value": object()}])  # type: ignore[method-assign]
    app = create_app(handler)

    with caplog.at_level(logging.ERROR, logger="netplex.webhook"):
        resp = post_review(app, "/mutate", admission_review(pod("web"), uid="uid-e"))

    assert resp.status_code == 500
    assert resp.json()["error"] == "internal error while encoding the answer to request uid-e; see the webhook log"
    assert caplog.messages == ["mutate: cannot encode the verdict for request uid=uid-e"]


# -- other routes -------------------------------------------------------------------------


def test_unknown_path_and_wrong_method_answer_with_json_errors(app: Any) -> None:
    missing = call(app, "GET", "/nope")
    wrong = call(app, "GET", "/validate")

    assert (missing.status_code, missing.json()) == (404, {"error": "Not Found"})
    assert (wrong.status_code, wrong.json()) == (405, {"error": "Method Not Allowed"})
    assert wrong.headers["allow"] == "POST"


def test_no_interactive_api_docs_are_served(app: Any) -> None:
    assert [call(app, "GET", p).status_code for p in ("/docs", "/redoc", "/openapi.json")] == [404, 404, 404]


def test_healthz_answers_ok(app: Any) -> None:
    resp = call(app, "GET", "/healthz")

    assert (resp.status_code, resp.text) == (200, "ok")


def test_readyz_answers_503_with_a_reason_until_the_index_has_synced(app: Any, handler: ScriptedHandler) -> None:
    handler.is_ready = False
    before = call(app, "GET", "/readyz")
    handler.is_ready = True
    after = call(app, "GET", "/readyz")

    assert (before.status_code, before.json()) == (
        503,
        {"ready": False, "reason": "the NetworkAttachmentDefinition index has not synced yet"},
    )
    assert (after.status_code, after.json()) == (200, {"ready": True})


def test_readyz_answers_503_when_the_readiness_check_itself_fails(handler: ScriptedHandler) -> None:
    def broken() -> bool:
        raise ConnectionError("api server gone")

    handler.ready = broken  # type: ignore[method-assign]

    resp = call(create_app(handler), "GET", "/readyz")

    assert (resp.status_code, resp.json()) == (503, {"ready": False, "reason": "readiness check failed: ConnectionError"})


# -- metrics ------------------------------------------------------------------------------


def test_metrics_series_exist_at_zero_before_any_request(app: Any) -> None:
    found = samples(app)

    for endpoint in ("validate", "mutate"):
        for kind in KINDS:
            for operation in ("CREATE", "UPDATE"):
                for outcome in ("allowed", "denied", "patched", "error"):
                    labels = {"endpoint": endpoint, "kind": kind, "operation": operation, "outcome": outcome}
                    assert found[("netplex_webhook_requests_total", tuple(sorted(labels.items())))] == 0
        bad = {"endpoint": endpoint, "kind": "unknown", "operation": "unknown", "outcome": "bad_request"}
        assert found[("netplex_webhook_requests_total", tuple(sorted(bad.items())))] == 0
        assert found[("netplex_webhook_request_duration_seconds_count", (("endpoint", endpoint),))] == 0


def test_metrics_count_each_outcome(app: Any) -> None:
    post_review(app, "/validate", admission_review(pod("web")))
    post_review(app, "/validate", admission_review(pod("bad-web")))
    post_review(app, "/mutate", admission_review(pod("patch-me"), operation="UPDATE"))
    post_review(app, "/mutate", admission_review(pod("boom")))
    call(app, "POST", "/mutate", body=b"{}", headers=JSON)

    found = samples(app)

    def count(endpoint: str, kind: str, operation: str, outcome: str) -> float:
        labels = {"endpoint": endpoint, "kind": kind, "operation": operation, "outcome": outcome}
        return found[("netplex_webhook_requests_total", tuple(sorted(labels.items())))]

    assert count("validate", "Pod", "CREATE", "allowed") == 1
    assert count("validate", "Pod", "CREATE", "denied") == 1
    assert count("mutate", "Pod", "UPDATE", "patched") == 1
    assert count("mutate", "Pod", "CREATE", "error") == 1
    assert count("mutate", "unknown", "unknown", "bad_request") == 1
    assert found[("netplex_webhook_request_duration_seconds_count", (("endpoint", "validate"),))] == 2
    assert found[("netplex_webhook_request_duration_seconds_count", (("endpoint", "mutate"),))] == 3


def test_kinds_and_operations_outside_the_known_sets_are_counted_as_other(app: Any) -> None:
    review = admission_review(pod("web"), operation="EXPLODE")
    review["request"]["kind"]["kind"] = "Frobnicator"

    post_review(app, "/validate", review)

    assert requests_total(app, "validate", "other", "other", "allowed") == 1


def test_index_size_and_ready_gauges_are_read_at_scrape_time(app: Any, handler: ScriptedHandler) -> None:
    handler.size, handler.is_ready = 41, False
    first = samples(app)
    handler.size, handler.is_ready = 42, True
    second = samples(app)

    assert (first[("netplex_webhook_index_size", ())], first[("netplex_webhook_ready", ())]) == (41, 0)
    assert (second[("netplex_webhook_index_size", ())], second[("netplex_webhook_ready", ())]) == (42, 1)


def test_two_apps_in_one_process_keep_separate_metrics(handler: ScriptedHandler) -> None:
    first, second = create_app(handler), create_app(handler)

    post_review(first, "/validate", admission_review(pod("web")))

    assert requests_total(first, "validate", "Pod", "CREATE", "allowed") == 1
    assert requests_total(second, "validate", "Pod", "CREATE", "allowed") == 0


def test_metrics_are_served_in_the_prometheus_text_format(app: Any) -> None:
    resp = call(app, "GET", "/metrics")

    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain; version=")
    assert "# TYPE netplex_webhook_request_duration_seconds histogram" in resp.text


# -- where decisions run ------------------------------------------------------------------


class InlineHandler(ScriptedHandler):
    """Declares CPU-only decisions; "needs-api" pods want a blocking GET first."""

    decides_inline = True

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[str] = []

    def validate(self, request: dict[str, Any]) -> Verdict:
        self.threads.append(threading.current_thread().name)
        if request["object"]["metadata"]["name"] == "needs-api":
            blocking.may_block("GET NetworkAttachmentDefinition team-a/x")
        return allowed()


def test_a_handler_that_decides_inline_runs_once_on_the_event_loop() -> None:
    handler = InlineHandler()

    resp = post_review(create_app(handler), "/validate", admission_review(pod("web")))

    assert resp.status_code == 200 and resp.json()["response"]["allowed"] is True
    assert handler.threads == [threading.main_thread().name]  # asyncio.run's loop thread


def test_a_decision_that_must_block_steps_off_the_loop_and_is_made_again_in_a_worker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler = InlineHandler()

    with caplog.at_level(logging.WARNING, logger="netplex.webhook"):
        resp = post_review(create_app(handler), "/validate", admission_review(pod("needs-api")))

    assert resp.status_code == 200 and resp.json()["response"]["allowed"] is True
    assert len(handler.threads) == 2
    assert handler.threads[0] == threading.main_thread().name
    assert handler.threads[1] != threading.main_thread().name
    assert caplog.records == []  # a signal, not an error
    assert blocking.may_block("outside any inline decision") is None


def test_large_reviews_and_handlers_that_do_not_declare_inline_run_in_a_worker_thread() -> None:
    handler = InlineHandler()
    big = admission_review(pod("web"))
    big["request"]["object"]["metadata"]["annotations"] = {"filler": "x" * INLINE_MAX_BODY}

    assert post_review(create_app(handler), "/validate", big).status_code == 200
    assert handler.threads[0] != threading.main_thread().name

    scripted = ScriptedHandler()
    seen: list[str] = []
    scripted.validate = lambda request: seen.append(threading.current_thread().name) or allowed()  # type: ignore[method-assign,func-returns-value]
    assert post_review(create_app(scripted), "/validate", admission_review(pod("web"))).status_code == 200
    assert seen and seen[0] != threading.main_thread().name


# -- JSON the fast decoder refuses --------------------------------------------------------


def test_json_that_orjson_refuses_but_json_allows_is_still_answered(app: Any) -> None:
    review = admission_review(pod("web"), uid="uid-s")
    text = json.dumps(review).replace('"name": "web"', '"name": "web", "note": "\\ud800", "big": 123456789012345678901234567890')

    resp = call(app, "POST", "/validate", body=text.encode(), headers={"content-type": "application/json"})

    assert resp.status_code == 200
    assert resp.json()["response"] == {"uid": "uid-s", "allowed": True}


def test_answers_are_encoded_exactly_whatever_the_encoder() -> None:
    from webhook.reviews import dumps

    assert dumps({"a": [1, "é", None]}) == '{"a":[1,"é",null]}'.encode()
    assert dumps({1: 123456789012345678901234567890}) == b'{"1":123456789012345678901234567890}'
    with pytest.raises(TypeError):
        dumps({"x": object()})
