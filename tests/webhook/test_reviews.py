"""webhook.reviews: the AdmissionReview envelope in, the response document out (pure)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugin.model.problems import Problem
from webhook import reviews
from webhook.reviews import BadReview, parse_review, render, render_warnings
from webhook.verdicts import allowed, denied, patched

from .conftest import PATCH_OPS, admission_review, pod

V1 = "admission.k8s.io/v1"
V1BETA1 = "admission.k8s.io/v1beta1"


def test_v1_review_is_parsed_and_its_request_kept_as_the_very_same_dict() -> None:
    body = admission_review(pod("web"), uid="0b7c7ab2-4a8e-4e59-9d0c-7a1b9b3f0e11")

    review = parse_review(body)

    assert review.api_version == V1
    assert review.request is body["request"]
    assert review.uid == "0b7c7ab2-4a8e-4e59-9d0c-7a1b9b3f0e11"
    assert (review.kind, review.operation) == ("Pod", "CREATE")


def test_v1beta1_review_is_accepted() -> None:
    review = parse_review(admission_review(pod("web"), api_version=V1BETA1))

    assert review.api_version == V1BETA1


def test_unknown_fields_in_the_request_survive_parsing() -> None:
    body = admission_review(pod("web"))
    body["request"]["object"]["spec"]["futureField"] = {"x": [1, 2]}

    review = parse_review(body)

    assert review.request["object"]["spec"]["futureField"] == {"x": [1, 2]}


def test_kind_and_operation_read_as_empty_when_absent_or_malformed() -> None:
    review = parse_review({"apiVersion": V1, "kind": "AdmissionReview", "request": {"uid": "u", "kind": "Pod", "operation": 7}})

    assert (review.kind, review.operation) == ("", "")


def _review(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"apiVersion": V1, "kind": "AdmissionReview", "request": {"uid": "u-1"}}
    for key, value in changes.items():
        if value is _DROP:
            body.pop(key)
        else:
            body[key] = value
    return body


_DROP = object()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([1, 2], "body must be a JSON object (an AdmissionReview), got list"),
        ("AdmissionReview", "body must be a JSON object (an AdmissionReview), got string"),
        (None, "body must be a JSON object (an AdmissionReview), got null"),
        (
            _review(apiVersion=_DROP),
            "apiVersion is missing; expected admission.k8s.io/v1 or admission.k8s.io/v1beta1",
        ),
        (
            _review(apiVersion="admission.k8s.io/v2"),
            'apiVersion "admission.k8s.io/v2" is not supported; expected admission.k8s.io/v1 or admission.k8s.io/v1beta1',
        ),
        (
            _review(apiVersion="v1"),
            'apiVersion "v1" is not supported; expected admission.k8s.io/v1 or admission.k8s.io/v1beta1',
        ),
        (_review(kind=_DROP), "kind is missing; expected AdmissionReview"),
        (_review(kind="Pod"), 'kind "Pod" is not supported; expected AdmissionReview'),
        (_review(request=_DROP), "request is missing; an AdmissionReview sent to a webhook must carry one"),
        (_review(request=None), "request is missing; an AdmissionReview sent to a webhook must carry one"),
        (_review(request=["uid"]), "request must be an object, got list"),
        (_review(request={"name": "web"}), "request.uid is missing; the response must echo it"),
        (_review(request={"uid": 42}), "request.uid must be a non-empty string, got 42"),
        (_review(request={"uid": ""}), 'request.uid must be a non-empty string, got ""'),
    ],
    ids=[
        "list",
        "string",
        "null",
        "no-apiVersion",
        "apiVersion-v2",
        "apiVersion-core-v1",
        "no-kind",
        "kind-Pod",
        "no-request",
        "null-request",
        "list-request",
        "no-uid",
        "number-uid",
        "empty-uid",
    ],
)
def test_malformed_review_is_refused_with_the_reason(body: object, message: str) -> None:
    with pytest.raises(BadReview) as caught:
        parse_review(body)

    assert caught.value.reason == message
    assert str(caught.value) == message


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(
    st.one_of(
        _json,
        st.fixed_dictionaries(
            {"apiVersion": st.sampled_from([V1, V1BETA1]) | _json, "kind": st.just("AdmissionReview") | _json},
            optional={"request": _json | st.fixed_dictionaries({}, optional={"uid": _json})},
        ),
    )
)
def test_any_json_value_is_either_parsed_or_refused_with_bad_review(body: object) -> None:
    try:
        review = parse_review(body)
    except BadReview as exc:
        assert exc.reason
    else:
        assert isinstance(review.uid, str) and review.uid


# -- render ----------------------------------------------------------------------------


def test_allowed_verdict_renders_only_uid_and_allowed() -> None:
    assert render(V1, "u-1", allowed()) == {
        "apiVersion": V1,
        "kind": "AdmissionReview",
        "response": {"uid": "u-1", "allowed": True},
    }


def test_response_is_in_the_request_api_version() -> None:
    assert render(V1BETA1, "u-1", allowed())["apiVersion"] == V1BETA1


def test_response_never_echoes_the_request() -> None:
    doc = render(V1, "u-1", denied([Problem("metadata.name", "bad")]))

    assert set(doc) == {"apiVersion", "kind", "response"}
    assert "request" not in doc["response"]


def test_denial_renders_422_invalid_with_one_line_per_problem_and_a_cause_each() -> None:
    verdict = denied(
        [
            Problem("metadata.name", '"bad-web" starts with "bad"'),
            Problem("metadata.annotations[k8s.v1.cni.cncf.io/networks][1].interface", '"data/1" contains \'/\''),
        ]
    )

    response = render(V1, "u-1", verdict)["response"]

    assert response["allowed"] is False
    assert response["status"] == {
        "status": "Failure",
        "code": 422,
        "reason": "Invalid",
        "message": (
            'metadata.name: "bad-web" starts with "bad"\n'
            "metadata.annotations[k8s.v1.cni.cncf.io/networks][1].interface: \"data/1\" contains '/'"
        ),
        "details": {
            "causes": [
                {"reason": "FieldValueInvalid", "message": '"bad-web" starts with "bad"', "field": "metadata.name"},
                {
                    "reason": "FieldValueInvalid",
                    "message": "\"data/1\" contains '/'",
                    "field": "metadata.annotations[k8s.v1.cni.cncf.io/networks][1].interface",
                },
            ]
        },
    }


def test_cause_of_a_problem_without_a_path_has_no_field() -> None:
    response = render(V1, "u-1", denied([Problem("", "namespace policy forbids this network")]))["response"]

    assert response["status"]["message"] == "namespace policy forbids this network"
    assert response["status"]["details"]["causes"] == [
        {"reason": "FieldValueInvalid", "message": "namespace policy forbids this network"}
    ]


def test_denial_without_problems_still_says_invalid_and_has_no_empty_message() -> None:
    status = render(V1, "u-1", denied([]))["response"]["status"]

    assert status == {"status": "Failure", "code": 422, "reason": "Invalid"}


def test_warnings_render_as_path_colon_message() -> None:
    response = render(V1, "u-1", allowed(Problem("metadata.labels", "no app label")))["response"]

    assert response["warnings"] == ["metadata.labels: no app label"]


def test_denial_carries_its_warnings_too() -> None:
    verdict = denied([Problem("a", "wrong")], warnings=(Problem("b", "odd"),))

    assert render(V1, "u-1", verdict)["response"]["warnings"] == ["b: odd"]


def test_patch_renders_as_base64_of_the_json_patch_list() -> None:
    response = render(V1, "u-1", patched(PATCH_OPS))["response"]

    assert response["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(response["patch"])) == PATCH_OPS


def test_allowed_verdict_without_operations_has_neither_patch_nor_patch_type() -> None:
    response = render(V1, "u-1", patched([]))["response"]

    assert "patch" not in response
    assert "patchType" not in response


def test_denied_verdict_never_carries_a_patch() -> None:
    verdict = denied([Problem("a", "wrong")])
    verdict = type(verdict)(False, verdict.errors, (), tuple(PATCH_OPS))

    response = render(V1, "u-1", verdict)["response"]

    assert "patch" not in response and "patchType" not in response


def test_patch_keeps_non_ascii_and_escaped_json_pointer_paths() -> None:
    ops = [{"op": "add", "path": "/metadata/annotations/netplex.io~1note", "value": "réseau"}]

    response = render(V1, "u-1", patched(ops))["response"]

    assert json.loads(base64.b64decode(response["patch"]).decode("utf-8")) == ops


# -- warnings limits ----------------------------------------------------------------------


def test_warning_longer_than_256_characters_is_cut_and_marked() -> None:
    (out,) = render_warnings(["x" * 300])

    assert len(out) == 256
    assert out.endswith("...")
    assert out.startswith("x" * 253)


def test_warning_of_exactly_256_characters_is_kept_whole() -> None:
    assert render_warnings(["y" * 256]) == ["y" * 256]


def test_control_characters_in_a_warning_become_spaces_because_the_api_server_drops_such_warnings() -> None:
    assert render_warnings(["spec.x: line one\nline\ttwo\x00\x7f end"]) == ["spec.x: line one line two   end"]


def test_duplicate_and_empty_warnings_are_left_out() -> None:
    assert render_warnings(["a: same", "", "a: same", " \n ", "b: other"]) == ["a: same", "b: other"]


def test_warnings_beyond_4096_characters_end_with_a_count_of_those_left_out() -> None:
    texts = [f"w{i:02d}: " + "z" * 245 for i in range(20)]  # 20 x 250 characters

    out = render_warnings(texts)

    # 16 x 250 = 4000 characters, plus the note, fit in 4096; a 17th would not
    assert out == [*texts[:16], "4 more warnings not shown (warnings are limited to 4096 characters)"]
    assert sum(map(len, out)) <= reviews.WARNINGS_TOTAL_CHARS


def test_a_single_warning_left_out_is_counted_in_the_singular() -> None:
    texts = [f"{i:03d}" + "q" * 253 for i in range(17)]  # 17 x 256 characters

    out = render_warnings(texts)

    assert out[-1] == "2 more warnings not shown (warnings are limited to 4096 characters)"
    assert render_warnings([*texts[:15], "tiny", *texts[15:16]])[-1].startswith("1 more warning not shown")


def test_warnings_that_fit_exactly_in_4096_characters_are_all_kept() -> None:
    texts = [f"{i:03d}" + "q" * 253 for i in range(16)]  # 16 x 256 = 4096

    assert render_warnings(texts) == texts


@given(st.lists(st.text(max_size=400), max_size=40))
def test_rendered_warnings_always_fit_the_api_server_limits(texts: list[str]) -> None:
    out = render_warnings(texts)

    assert sum(map(len, out)) <= reviews.WARNINGS_TOTAL_CHARS
    assert all(0 < len(w) <= reviews.WARNING_MAX_CHARS for w in out)
    assert not any(ch < " " or "\x7f" <= ch <= "\x9f" for w in out for ch in w)
    assert len(out) == len(set(out))
