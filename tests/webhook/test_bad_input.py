"""Issue 12's bad-input list: each input gets the answer its kind deserves, never a 500 or a traceback.

The webhook answers a bad *object* with a denial (422, the field path, the value escaped so
that it can be sent) and a malformed *request* with a 4xx; ``netplexctl check`` answers
with a finding (exit 1) or a message (exit 2). Each case is the one the issue reports,
reproduced as described, through the real ASGI app and the real admission handler.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import jsonpatch
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webhook import ctl, wiring
from webhook import policy as policies
from webhook.admission import Admission
from webhook.app import create_app
from webhook.index import MemoryIndex

from .conftest import admission_review

REPO = Path(__file__).resolve().parents[2]
NETWORKS = "k8s.v1.cni.cncf.io/networks"
RES = "intel.com/sriov"
TOO_DEEP = "is nested more than 32 levels deep; at most 32 levels of objects and lists are accepted"


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def repeated_key_deep(depth: int = 600) -> str:
    """The issue's (b): a repeated key hides a ~600-level value from a check on the decoded object."""
    return '[{"name":"a","cni-args":{"x":' + nested(depth) + ',"x":{}}}]'


def nad(name: str, namespace: str = "default", **annotations: str) -> dict[str, Any]:
    return {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
            "spec": {"config": '{"cniVersion":"0.3.1","type":"bridge"}'}}


def namespace(name: str, **annotations: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "annotations": annotations}}


def pod(annotations: dict[str, str], ns: str = "default", resources: Any = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": ns, "annotations": annotations},
            "spec": {"containers": [{"name": "c", "image": "i", "resources": resources or {}}]}}


BIG = "9" * 5000  # past Python's 4,300-digit integer-string limit


def index() -> MemoryIndex:
    return MemoryIndex([
        nad("a", **{"k8s.v1.cni.cncf.io/resourceName": RES}),
        namespace("big", **{"netplex.io/max-networks": BIG}),
        namespace("deep-defaults", **{"netplex.io/default-networks": repeated_key_deep()}),
    ])


POLICY, _ = policies.parse_cluster_policy({"honorResources": True, "injectNodeSelector": True,
                                            "injectPodnetinfo": True})


@pytest.fixture
def app() -> Any:
    return create_app(Admission(index(), lambda: POLICY))


def post(app: Any, path: str, body: str | bytes) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://webhook.test") as client:
            data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
            return await client.post(path, content=data, headers={"content-type": "application/json"})

    return asyncio.run(go())


def review_text(obj: dict[str, Any], **fields: Any) -> str:
    """The review as JSON text (ASCII: a lone surrogate is sent as the escape the issue used)."""
    review = admission_review(obj, uid="uid-1")
    review.update(fields.pop("top", {}))
    review["request"].update(fields)
    return json.dumps(review)


def answer(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["response"]
    return result


# ------------------------------------------------------------ (a) unpaired surrogates


def test_a_surrogate_in_an_annotation_is_denied_with_the_value_escaped(app: Any) -> None:
    text = review_text(pod({NETWORKS: "\ud800"}))
    assert '"\\ud800"' in text  # what the API server would have to send (it never does)
    denied = answer(post(app, "/validate", text))
    assert denied["allowed"] is False
    assert denied["status"]["code"] == 422
    assert denied["status"]["message"] == (
        f'metadata.annotations[{NETWORKS}][0].name: "\\ud800" is not a valid network name (a DNS-1123 '
        "label: it contains '\\ud800'); use lowercase letters, digits and '-', starting and ending with a "
        "letter or digit, at most 63 characters"
    )
    assert denied["status"]["details"]["causes"][0]["field"] == f"metadata.annotations[{NETWORKS}][0].name"
    assert answer(post(app, "/mutate", text))["allowed"] is True


def test_a_surrogate_in_a_warning_is_sent_escaped(app: Any) -> None:
    text = review_text(pod({"netplex.io/\udc80": "x"}))
    allowed = answer(post(app, "/validate", text))
    assert allowed["allowed"] is True
    assert allowed["warnings"] == [
        'metadata.annotations[netplex.io/\\udc80]: unknown netplex annotation (got "netplex.io/\\udc80"), ignored; '
        'did you mean "netplex.io/policy-mode"?'
    ]


def test_a_surrogate_in_the_uid_is_a_400_naming_the_field(app: Any) -> None:
    response = post(app, "/validate", review_text(pod({}), uid="\ud800"))
    assert response.status_code == 400
    assert response.json() == {"error": "not an AdmissionReview this webhook can answer: request.uid must be "
                                        'valid Unicode text, got "\\ud800" (an unpaired surrogate)'}


def test_a_400_about_a_surrogate_in_the_api_version_stays_a_400(app: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="netplex.webhook"):
        response = post(app, "/mutate", review_text(pod({}), top={"apiVersion": "admission.k8s.io/\ud800"}))
    assert response.status_code == 400
    assert response.json() == {"error": 'not an AdmissionReview this webhook can answer: apiVersion '
                                        '"admission.k8s.io/\\ud800" is not supported; expected '
                                        "admission.k8s.io/v1 or admission.k8s.io/v1beta1"}
    assert caplog.messages[-1].endswith('apiVersion "admission.k8s.io/\\ud800" is not supported; expected '
                                        "admission.k8s.io/v1 or admission.k8s.io/v1beta1")


# ------------------------------------------------------------ (b) repeated key hiding a deep value


def test_a_repeated_key_hiding_a_deep_value_in_a_pod_is_denied_not_a_500(app: Any) -> None:
    text = review_text(pod({NETWORKS: repeated_key_deep()}))
    denied = answer(post(app, "/validate", text))
    assert denied["allowed"] is False
    assert denied["status"]["message"].startswith(f"metadata.annotations[{NETWORKS}]: {TOO_DEEP} (got ")
    assert "patch" not in answer(post(app, "/mutate", text))


def test_the_same_in_a_workload_template_is_denied_at_the_template_path(app: Any) -> None:
    web = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
           "spec": {"template": {"metadata": {"annotations": {NETWORKS: repeated_key_deep()}}, "spec": {}}}}
    denied = answer(post(app, "/validate", review_text(web)))
    assert denied["status"]["message"].startswith(f"spec.template.metadata.annotations[{NETWORKS}]: {TOO_DEEP} (got ")


def test_the_same_in_a_namespace_default_networks_annotation_is_denied(app: Any) -> None:
    text = review_text(namespace("team", **{"netplex.io/default-networks": repeated_key_deep()}))
    denied = answer(post(app, "/validate", text))
    assert denied["status"]["message"].startswith(
        f"metadata.annotations[netplex.io/default-networks]: {TOO_DEEP} (got ")


def test_pods_of_a_namespace_indexed_with_it_are_still_answered(app: Any) -> None:
    text = review_text(pod({NETWORKS: "default/a"}, ns="deep-defaults"))
    mutated = answer(post(app, "/mutate", text))
    assert mutated["allowed"] is True  # the broken default is not injected (the Namespace was refused)
    ops = json.loads(base64.b64decode(mutated["patch"]))
    assert not any(op["path"].endswith("k8s.v1.cni.cncf.io~1networks") for op in ops)
    assert answer(post(app, "/validate", text))["allowed"] is True


# ------------------------------------------------------------ (c) deep injected-resources, honorResources


def test_a_deeply_nested_injected_resources_record_is_ignored_with_honor_resources(app: Any) -> None:
    record = '{"' + RES + '":' + nested(3000) + "}"
    text = review_text(pod({NETWORKS: "a", "netplex.io/injected-resources": record}))
    mutated = answer(post(app, "/mutate", text))
    ops = json.loads(base64.b64decode(mutated["patch"]))
    assert {"op": "add", "path": "/spec/containers/0/resources/requests", "value": {RES: "1"}} in ops
    assert {"op": "replace", "path": "/metadata/annotations/netplex.io~1injected-resources",
            "value": '{"' + RES + '":1}'} in ops


# ------------------------------------------------------------ (d) resource values


@pytest.mark.parametrize("value", ["²", "٣", "1e3", BIG, -1, True])
def test_a_resource_value_that_is_not_a_count_is_left_alone_with_a_warning(app: Any, value: Any) -> None:
    text = review_text(pod({NETWORKS: "a"}, resources={"requests": {RES: value}}))
    mutated = answer(post(app, "/mutate", text))
    shown = json.dumps(value, ensure_ascii=False)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    assert mutated["warnings"] == [
        f"spec.containers[0].resources.requests[{RES}]: is not a whole number (got {shown}); netplex did not "
        'add the 1 device(s) the pod\'s networks need: write a count such as "1"'
    ]
    ops = json.loads(base64.b64decode(mutated["patch"])) if "patch" in mutated else []
    after = jsonpatch.apply_patch(json.loads(text)["request"]["object"], ops)
    assert after["spec"]["containers"][0]["resources"]["requests"] == {RES: value}  # left alone
    assert RES not in after["spec"]["containers"][0]["resources"].get("limits", {})


def test_a_resource_value_nested_a_thousand_levels_is_left_alone(app: Any) -> None:
    text = review_text(pod({NETWORKS: "a"}, resources={"requests": {RES: "PLACE"}})).replace('"PLACE"', nested(1000))
    mutated = answer(post(app, "/mutate", text))
    assert mutated["warnings"] == [
        f"spec.containers[0].resources.requests[{RES}]: is not a whole number (got <list nested more than 32 "
        'levels deep>); netplex did not add the 1 device(s) the pod\'s networks need: write a count such as "1"'
    ]


def test_the_users_count_is_still_honoured() -> None:
    handler = Admission(index(), lambda: POLICY)
    request = json.loads(review_text(pod({NETWORKS: "a"}, resources={"requests": {RES: "2"}, "limits": {RES: 2}})))
    ops = handler.mutate(request["request"]).patch
    assert {"op": "replace", "path": f"/spec/containers/0/resources/requests/{RES.replace('/', '~1')}",
            "value": "3"} in ops


# ------------------------------------------------------------ (e) max-networks past the digit limit


def test_a_namespace_with_a_5000_digit_max_networks_is_denied(app: Any) -> None:
    denied = answer(post(app, "/validate", review_text(namespace("team", **{"netplex.io/max-networks": BIG}))))
    assert denied["status"]["message"] == (
        f'metadata.annotations[netplex.io/max-networks]: has 5000 digits, more than 18 (got "{"9" * 76}...); '
        'use a count such as "2" ("0" forbids secondary networks)'
    )


def test_pods_of_a_namespace_indexed_with_it_are_answered_on_both_endpoints(app: Any) -> None:
    text = review_text(pod({NETWORKS: "default/a"}, ns="big"))
    assert answer(post(app, "/validate", text))["allowed"] is True
    assert answer(post(app, "/mutate", text))["allowed"] is True


# ------------------------------------------------------------ (f) a policy file replaced by a deep one


def deep_yaml(depth: int) -> str:
    return "globalNamespaces: " + nested(depth) + "\n"


@pytest.mark.parametrize("depth", [500, 990, 5000])
def test_a_deep_policy_file_is_refused_with_the_limit(tmp_path: Path, depth: int) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(deep_yaml(depth))
    parsed, problems = policies.load_cluster_policy(path)
    assert parsed == policies.ClusterPolicy()
    if depth < 1000:  # read, then measured
        expected = (f"{path}: cannot read policy: the document is nested more than 100 levels deep; "
                    "at most 100 levels of objects and lists are accepted")
    else:  # libyaml's own limit
        expected = f"{path}: cannot read policy: line 1: exceeded maximum nesting depth"
    assert problems == [expected]


def test_a_policy_replaced_at_run_time_by_a_deep_one_keeps_the_last_good_policy(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("honorResources: true\n")
    source = wiring.PolicySource(path, interval=0)
    app = create_app(Admission(index(), source))
    path.write_text(deep_yaml(600))
    with caplog.at_level(logging.ERROR, logger="netplex.webhook"):
        response = post(app, "/mutate", review_text(pod({NETWORKS: "a"})))
    assert response.status_code == 200
    assert source().honor_resources is True
    assert f"policy not reloaded, keeping the previous one: {path}: cannot read policy: the document " \
           "is nested more than 100 levels deep" in caplog.text


# ------------------------------------------------------------ any value anywhere: never a 500


_garbage = st.one_of(
    st.just(nested(900)), st.just('"²"'), st.just('"\\ud800"'), st.just("9" * 30), st.just("null"),
    st.just('{"a":' + nested(500) + "}"), st.just("-1"), st.just("[]"), st.just("{}"), st.just('"1"'),
)
_places = st.sampled_from([
    ("metadata", "annotations"), ("metadata", "annotations", NETWORKS), ("metadata", "annotations", "netplex.io/injected-resources"),
    ("spec",), ("spec", "nodeSelector"), ("spec", "containers"), ("spec", "containers", 0, "resources"),
    ("spec", "containers", 0, "resources", "requests"), ("spec", "containers", 0, "resources", "limits", RES),
    ("spec", "volumes"), ("spec", "containers", 0, "volumeMounts"), ("metadata", "labels"),
])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(place=_places, value=_garbage, networks=st.sampled_from(["a", "a, a", '[{"name":"a"}]', "", None]))
def test_any_value_at_any_place_of_a_pod_is_answered_without_an_internal_error(
    app: Any, place: tuple[str | int, ...], value: str, networks: str | None
) -> None:
    obj = pod({NETWORKS: networks} if networks is not None else {}, ns="deep-defaults")
    node: Any = obj
    for step in place[:-1]:
        node = node.setdefault(step, {}) if isinstance(step, str) else node[step]
    if isinstance(node, dict):
        node[place[-1]] = "PLACE"
    elif isinstance(node, list):
        node[0] = "PLACE"
    text = review_text(obj).replace('"PLACE"', value)
    for endpoint in ("/validate", "/mutate"):
        response = post(app, endpoint, text)
        assert response.status_code == 200, response.text


# ------------------------------------------------------------ netplexctl check: never a traceback


def netplexctl(*argv: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "webhook.ctl", *argv], input=stdin, capture_output=True,
                          cwd=REPO, timeout=60, check=False)


def test_invalid_utf8_on_stdin_is_exit_2_with_the_byte_and_position() -> None:
    done = netplexctl("check", "-", stdin=b'kind: Pod\nmetadata: {name: "\xff"}\n')
    assert (done.returncode, done.stdout) == (2, b"")
    assert done.stderr == b"netplexctl: <stdin>: cannot read: is not valid UTF-8: byte 0xff at position 28\n"


def test_invalid_utf8_in_a_file_is_the_same_message(tmp_path: Path) -> None:
    path = tmp_path / "pod.yaml"
    path.write_bytes(b'kind: Pod\nmetadata: {name: "\xff"}\n')
    out, err = _run_ctl("check", str(path))
    assert out == (2, "")
    assert err == f"netplexctl: {path}: cannot read: is not valid UTF-8: byte 0xff at position 28\n"


def _run_ctl(*argv: str) -> tuple[tuple[int, str], str]:
    import io

    out, err = io.StringIO(), io.StringIO()
    code = ctl.main(list(argv), stdout=out, stderr=err, stdin=io.StringIO())
    return (code, out.getvalue()), err.getvalue()


def test_a_deep_policy_file_is_exit_2_with_the_limit(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(deep_yaml(500))
    pod_file = tmp_path / "pod.yaml"
    pod_file.write_text("kind: Pod\nmetadata: {name: p}\n")
    assert _run_ctl("check", "--policy", str(policy), str(pod_file)) == (
        (2, ""), f"netplexctl: {policy}: cannot read policy: the document is nested more than 100 levels deep; "
                 "at most 100 levels of objects and lists are accepted\n")


@pytest.mark.parametrize(("depth", "message"), [
    (500, "{path}:1: the document is nested more than 100 levels deep; at most 100 levels of objects and lists are accepted"),
    (5000, "{path}:3: cannot parse YAML: exceeded maximum nesting depth"),
])
def test_a_deep_yaml_document_is_exit_2_with_the_limit(tmp_path: Path, depth: int, message: str) -> None:
    path = tmp_path / "pod.yaml"
    path.write_text("kind: Pod\nmetadata: {name: p}\nspec: " + nested(depth) + "\n")
    assert _run_ctl("check", str(path)) == ((2, ""), "netplexctl: " + message.format(path=path) + "\n")


def test_the_repeated_key_deep_annotation_in_a_file_is_a_finding(tmp_path: Path) -> None:
    path = tmp_path / "pod.yaml"
    path.write_text(json.dumps(pod({NETWORKS: repeated_key_deep()})))
    (code, out), _ = _run_ctl("check", str(path))
    assert code == 1
    assert out.startswith(f"{path}:1: Pod default/p: metadata.annotations[{NETWORKS}]: {TOO_DEEP} (got ")


def test_the_5000_digit_max_networks_in_a_file_is_a_finding(tmp_path: Path) -> None:
    path = tmp_path / "ns.yaml"
    path.write_text(json.dumps(namespace("team", **{"netplex.io/max-networks": BIG})))
    (code, out), _ = _run_ctl("check", str(path))
    assert code == 1
    assert out == (f'{path}:1: Namespace team: metadata.annotations[netplex.io/max-networks]: has 5000 digits, '
                   f'more than 18 (got "{"9" * 76}...); use a count such as "2" ("0" forbids secondary networks)\n')


def test_a_surrogate_escape_in_a_file_is_exit_2_with_the_yaml_reason(tmp_path: Path) -> None:
    path = tmp_path / "pod.json"
    path.write_text(json.dumps(pod({NETWORKS: "\ud800"})))
    done = netplexctl("check", str(path))
    assert (done.returncode, done.stdout) == (2, b"")
    assert done.stderr.decode() == f"netplexctl: {path}:1: cannot parse YAML: found invalid Unicode character escape code\n"


def test_a_5000_digit_integer_anywhere_in_a_yaml_file_is_exit_2_with_the_line(tmp_path: Path) -> None:
    path = tmp_path / "pod.yaml"
    path.write_text("kind: Pod\nmetadata: {name: p}\nspec: {x: " + BIG + "}\n")
    assert _run_ctl("check", str(path)) == ((2, ""), f"netplexctl: {path}:3: cannot parse YAML: a number has 5000 "
                                                     "digits (999999999999...); at most 100 digits are accepted\n")
    policy = tmp_path / "policy.yaml"
    policy.write_text("missingNetworks: " + BIG + "\n")
    assert policies.load_cluster_policy(policy)[1] == [
        f"{policy}: cannot read policy: line 1: a number has 5000 digits (999999999999...); at most 100 digits "
        "are accepted"]


def test_a_5000_digit_integer_in_a_review_is_a_400_with_a_message_for_users(app: Any) -> None:
    response = post(app, "/validate", review_text(pod({})).replace('"name": "p"', '"name": "p", "n": ' + BIG))
    assert response.status_code == 400
    assert response.json() == {"error": "request body is not valid JSON: a number has 5000 digits "
                                        "(999999999999...); at most 100 digits are accepted"}
