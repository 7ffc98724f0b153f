"""AdmissionReview in, AdmissionReview out: the only module that knows the wire format.

:func:`parse_review` checks the envelope of a decoded request body and keeps the request
as the plain dict the API server sent (never a typed model: unknown fields would be lost
and a patch computed from it would delete them). :func:`render` turns a
:class:`~webhook.verdicts.Verdict` into the response document.

Choices made here, each pinned by ``tests/webhook/test_reviews.py``:

- The response carries ``response`` only; the request is never echoed back (the
  reference webhooks echo it, ~1.6 KB per trivial pod). ``apiVersion`` is the request's.
- A denial is ``status: {status: Failure, code: 422, reason: Invalid, message, details:
  {causes: [...]}}``: what the API server itself answers for an object that fails
  validation (``apierrors.NewInvalid``), so ``kubectl`` prints
  ``Error from server (Invalid)`` and clients' ``IsInvalid()`` recognise it. The API
  server passes code, reason and causes through to the client (it only raises codes
  below 400 to 400). controller-runtime's ``Denied()`` uses 403/Forbidden, which reads
  as an RBAC problem; our denials are about field values. ``message`` is one line per
  problem.
- ``warnings``: the API server drops a warning that contains a control character
  (``net.NewWarningHeader``), dedupes, and once a request's warnings pass 4096
  characters cuts each to 256 and drops the rest, from *all* webhooks together. So we
  replace control characters with spaces, dedupe, cut each warning to 256 characters
  (ending in ``...``), and keep at most 4096 characters in total, ending with a line
  that says how many were left out.
- A patch is rendered only for an allowed verdict with operations: ``patchType:
  JSONPatch`` and the base64 of the JSON list. No operations: neither key (never
  ``base64("null")`` as NRI sends).

- Any decoded request can be answered. Python's JSON decoder accepts an unpaired
  surrogate escape (``"\\ud800"``), which no UTF-8 encoder can write: messages escape it
  (``plugin.model.problems.show``), and :func:`dumps` falls back to ASCII JSON, where it
  stays an escape. A ``request.uid`` holding one is refused (400): the API server, which
  encodes from Go strings, never sends one, and the answer must echo the uid exactly.

Exceptions: :class:`BadReview` (a ``ValueError``) with a reason fit for an HTTP 400 body.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Any

import orjson

from plugin.model.problems import printable, show, type_name
from webhook.verdicts import Verdict

# Largest AdmissionReview body accepted by default; above it the answer is HTTP 413.
# Here, not in webhook.app, so the CLI can read it without importing prometheus_client.
DEFAULT_MAX_BODY = 7 * 1024 * 1024
API_VERSIONS = ("admission.k8s.io/v1", "admission.k8s.io/v1beta1")
KIND = "AdmissionReview"

DENIED_CODE = 422
DENIED_REASON = "Invalid"
CAUSE_REASON = "FieldValueInvalid"

WARNING_MAX_CHARS = 256
WARNINGS_TOTAL_CHARS = 4096

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class BadReview(ValueError):
    """The body is not an AdmissionReview this webhook can answer."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ReviewRequest:
    """The checked envelope: the version to answer in and the request, as sent."""

    api_version: str
    request: dict[str, Any]

    @property
    def uid(self) -> str:
        uid: str = self.request["uid"]
        return uid

    @property
    def kind(self) -> str:
        """``request.kind.kind`` (``Pod``, ``Deployment``...), or ``""`` when absent."""
        gvk = self.request.get("kind")
        kind = gvk.get("kind") if isinstance(gvk, dict) else None
        return kind if isinstance(kind, str) else ""

    @property
    def operation(self) -> str:
        op = self.request.get("operation")
        return op if isinstance(op, str) else ""


def parse_review(body: object) -> ReviewRequest:
    """Check the envelope of a decoded AdmissionReview; raise :class:`BadReview` if wrong."""
    accepted = " or ".join(API_VERSIONS)
    if not isinstance(body, dict):
        raise BadReview(f"body must be a JSON object (an AdmissionReview), got {type_name(body)}")
    api_version = body.get("apiVersion")
    if api_version is None:
        raise BadReview(f"apiVersion is missing; expected {accepted}")
    if api_version not in API_VERSIONS:
        raise BadReview(f"apiVersion {show(api_version)} is not supported; expected {accepted}")
    kind = body.get("kind")
    if kind is None:
        raise BadReview(f"kind is missing; expected {KIND}")
    if kind != KIND:
        raise BadReview(f"kind {show(kind)} is not supported; expected {KIND}")
    request = body.get("request")
    if request is None:
        raise BadReview("request is missing; an AdmissionReview sent to a webhook must carry one")
    if not isinstance(request, dict):
        raise BadReview(f"request must be an object, got {type_name(request)}")
    uid = request.get("uid")
    if uid is None:
        raise BadReview("request.uid is missing; the response must echo it")
    if not isinstance(uid, str) or not uid:
        raise BadReview(f"request.uid must be a non-empty string, got {show(uid)}")
    if printable(uid) != uid:
        raise BadReview(f"request.uid must be valid Unicode text, got {show(uid)} (an unpaired surrogate)")
    return ReviewRequest(api_version, request)


def render(api_version: str, uid: str, verdict: Verdict) -> dict[str, Any]:
    """The AdmissionReview answering request ``uid`` in ``api_version``."""
    response: dict[str, Any] = {"uid": uid, "allowed": verdict.allowed}
    if not verdict.allowed:
        status: dict[str, Any] = {
            "status": "Failure",
            "code": DENIED_CODE,
            "reason": DENIED_REASON,
        }
        message = verdict.message
        if message:
            status["message"] = message
        if verdict.errors:
            status["details"] = {"causes": [_cause(p.path, p.message) for p in verdict.errors]}
        response["status"] = status
    warnings = render_warnings([str(p) for p in verdict.warnings])
    if warnings:
        response["warnings"] = warnings
    if verdict.allowed and verdict.patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = encode_patch(verdict.patch)
    return {"apiVersion": api_version, "kind": KIND, "response": response}


def encode_patch(ops: tuple[dict[str, Any], ...] | list[dict[str, Any]]) -> str:
    """base64 of the JSON list of RFC 6902 operations."""
    return base64.b64encode(dumps(list(ops))).decode("ascii")


def dumps(doc: Any) -> bytes:
    """Compact UTF-8 JSON: orjson (~15x faster on an answer), the standard library for
    what orjson refuses (integers beyond 64 bits, non-string keys, unpaired surrogates),
    so the output is the same JSON either way; a text that holds an unpaired surrogate is
    written as ASCII JSON, where it is the escape ``\\ud800``. Raises
    ``TypeError``/``ValueError`` for what neither encodes.
    """
    try:
        return orjson.dumps(doc)
    except TypeError:
        text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(doc, separators=(",", ":")).encode()


def render_warnings(texts: list[str]) -> list[str]:
    """Warnings as the API server will pass them on intact (see the module docstring)."""
    unique: dict[str, None] = {}
    for text in texts:
        text = _CONTROL.sub(" ", text).strip()
        if len(text) > WARNING_MAX_CHARS:
            text = text[: WARNING_MAX_CHARS - 3] + "..."
        if text:
            unique.setdefault(text, None)
    kept = list(unique)
    if sum(map(len, kept)) <= WARNINGS_TOTAL_CHARS:
        return kept
    out: list[str] = []
    total = 0
    for i, text in enumerate(kept):
        note = _omitted(len(kept) - i)
        if total + len(text) + len(_omitted(len(kept) - i - 1)) > WARNINGS_TOTAL_CHARS:
            out.append(note)
            break
        out.append(text)
        total += len(text)
    return out


def _omitted(count: int) -> str:
    return f"{count} more warning{'' if count == 1 else 's'} not shown (warnings are limited to {WARNINGS_TOTAL_CHARS} characters)"


def _cause(field: str, message: str) -> dict[str, str]:
    cause = {"reason": CAUSE_REASON, "message": message}
    if field:
        cause["field"] = field
    return cause
