"""Fuzzing the webhook app and ``netplexctl check`` (issue 11 §5), bounded for CI.

The webhook's ASGI app runs in this process, called through the ASGI interface with random
AdmissionReviews: random reviews around random objects, pods with random values at the
places the webhook reads (annotations, containers, resources, nodeSelector), wrong types
everywhere, long and deeply nested values, random Unicode with unpaired surrogates, random
bytes. Property: never a 5xx and never a logged traceback; a 200 is a well-formed
AdmissionReview answering the request's uid, and its patch, when there is one, applies to
the object (jsonpatch). ``netplexctl check`` gets random YAML documents on stdin: exit 0, 1
or 2 with output, never a traceback.

A failure prints the ``@reproduce_failure`` blob (``print_blob``); CI runs are derandomized
(the same inputs every run, so a red CI run is red again locally). ``bench/fuzz.py`` runs the
same properties for 100,000+ inputs each.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
from typing import Any

import jsonpatch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webhook import ctl
from webhook import policy as policies
from webhook.admission import Admission
from webhook.app import create_app
from webhook.index import MemoryIndex

NETWORKS = "k8s.v1.cni.cncf.io/networks"
KNOWN_KEYS = [NETWORKS, "v1.multus-cni.io/default-network", "k8s.v1.cni.cncf.io/network-status",
              "netplex.io/injected-resources", "netplex.io/policy-mode", "netplex.io/default-networks",
              "netplex.io/max-networks", "k8s.v1.cni.cncf.io/resourceName", "k8s.v1.cni.cncf.io/nodeSelector"]

CI = settings(max_examples=400, deadline=None, derandomize=True, print_blob=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# ---------------------------------------------------------------------- strategies

any_char = st.characters(codec=None, exclude_categories=())  # surrogates included
text = st.text(any_char, max_size=40) | st.sampled_from(
    ["", "a", "default/a", "a@eth1", "a, a", "[]", "{}", '[{"name":"a"}]', "9" * 5000, "x" * 70_000, " ",
     "\ud800", "a/b/c", "-1", "0", "a" * 64, "Pod", "v1", "default"])
scalar = st.none() | st.booleans() | st.integers() | st.integers(min_value=10**30, max_value=10**60) \
    | st.floats(allow_nan=True) | text
json_value = st.recursive(scalar, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(text, inner, max_size=4), max_leaves=12)


def deep(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"a": value}
    return value


weird = json_value | st.integers(30, 120).map(deep)
networks_value = st.one_of(
    st.lists(st.sampled_from(["a", "b", "default/a", "a@net9", "other/c", "A", "a@", "@", ""]), max_size=5)
    .map(", ".join),
    st.lists(st.fixed_dictionaries({"name": st.sampled_from(["a", "b", "c"]) | text},
                                   optional={"namespace": text, "interface": text, "ips": weird, "mac": weird,
                                             "default-route": weird, "cni-args": weird, "infiniband-guid": weird}),
             max_size=3).map(lambda v: json.dumps(v)),
    text, weird.map(json.dumps),
)
annotations = st.dictionaries(st.sampled_from(KNOWN_KEYS) | text, networks_value | text, max_size=4) | weird
container = st.fixed_dictionaries({"name": text}, optional={
    "image": text, "resources": st.fixed_dictionaries({}, optional={
        "requests": st.dictionaries(st.sampled_from(["intel.com/sriov", "cpu"]) | text, weird, max_size=2) | weird,
        "limits": st.dictionaries(st.sampled_from(["intel.com/sriov", "cpu"]) | text, weird, max_size=2) | weird,
    }) | weird})
pod_spec = st.fixed_dictionaries({}, optional={
    "containers": st.lists(container | weird, max_size=3) | weird,
    "initContainers": st.lists(container, max_size=2) | weird,
    "nodeSelector": st.dictionaries(text, text, max_size=2) | weird,
    "volumes": weird,
})
metadata = st.fixed_dictionaries({}, optional={"name": text | weird, "namespace": st.sampled_from(["default", "blue"])
                                               | text | weird, "annotations": annotations, "labels": weird})
pod = st.fixed_dictionaries({"apiVersion": st.just("v1") | text, "kind": st.just("Pod") | text,
                             "metadata": metadata | weird}, optional={"spec": pod_spec | weird})
workload = st.fixed_dictionaries({
    "apiVersion": st.sampled_from(["apps/v1", "batch/v1"]), "kind": st.sampled_from(
        ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"]),
    "metadata": metadata, "spec": st.fixed_dictionaries({}, optional={
        "template": st.fixed_dictionaries({}, optional={"metadata": metadata | weird, "spec": pod_spec | weird})
        | weird, "jobTemplate": weird})})
cni_plugin = st.fixed_dictionaries({"type": st.sampled_from(["bridge", "macvlan", "../x", ""]) | text}, optional={
    "cniVersion": st.sampled_from(["1.0.0", "0.3.1", "9" * 30, "9" * 5000, "1.0", ""]) | text | weird,
    "name": text | weird, "ipam": weird, "capabilities": weird, "master": text | weird,
    "cniVersions": st.lists(text, max_size=3) | weird})
cni_config = cni_plugin | st.fixed_dictionaries({"plugins": st.lists(cni_plugin, max_size=3) | weird}, optional={
    "cniVersion": st.sampled_from(["1.0.0", "9" * 5000]) | text | weird, "name": text | weird,
    "cniVersions": st.lists(st.sampled_from(["1.0.0", "9" * 5000]) | text, max_size=3) | weird})
nad = st.fixed_dictionaries({
    "apiVersion": st.just("k8s.cni.cncf.io/v1"), "kind": st.just("NetworkAttachmentDefinition"),
    "metadata": metadata, "spec": st.fixed_dictionaries({}, optional={
        "config": text | weird.map(json.dumps) | weird | st.just('{"cniVersion":"1.0.0","type":"bridge"}')
        | cni_config.map(json.dumps)})})
namespace = st.fixed_dictionaries({"apiVersion": st.just("v1"), "kind": st.just("Namespace"), "metadata": metadata})
k8s_object = pod | workload | nad | namespace | weird


def mostly(draw: st.DrawFn, valid: st.SearchStrategy[Any], wrong: st.SearchStrategy[Any], one_in: int = 12) -> Any:
    """A valid value, but a wrong one about once in ``one_in`` draws (else the envelope
    would nearly always be refused before the object is even looked at)."""
    return draw(wrong) if draw(st.integers(0, one_in - 1)) == one_in // 2 else draw(valid)  # not 0: the
    # simplest value, which hypothesis draws far more often than 1 in one_in


@st.composite
def reviews(draw: st.DrawFn) -> tuple[bytes, Any, Any]:
    """(body, the object, the uid) of one review; the body may also be no JSON at all."""
    obj = draw(k8s_object)
    uid = mostly(draw, st.uuids().map(str), text | weird)
    request: Any = {"uid": uid, "object": obj,
                    "operation": mostly(draw, st.sampled_from(["CREATE", "UPDATE"]), text | weird),
                    "namespace": mostly(draw, st.sampled_from(["default", "blue", ""]), text | weird),
                    "kind": mostly(draw, st.just({"group": "", "version": "v1", "kind": "Pod"}),
                                   st.fixed_dictionaries({"group": text, "version": text, "kind": text}) | weird),
                    "resource": mostly(draw, st.just({"group": "", "version": "v1", "resource": "pods"}),
                                       st.fixed_dictionaries({"group": text, "version": text, "resource": text})
                                       | weird)}
    if draw(st.booleans()):
        request["oldObject"] = draw(k8s_object)
    request = mostly(draw, st.just(request), weird, 30)
    review: Any = {"apiVersion": mostly(draw, st.sampled_from(["admission.k8s.io/v1", "admission.k8s.io/v1beta1"]),
                                        text),
                   "kind": mostly(draw, st.just("AdmissionReview"), text), "request": request}
    review = mostly(draw, st.just(review), weird, 30)
    shape = draw(st.integers(0, 39))
    if shape == 17:
        return draw(st.binary(max_size=200)), obj, uid
    if shape == 18:  # deep nesting as text, past any decoder's recursion limit
        return ('{"request":' + "[" * 5000 + "]" * 5000 + "}").encode(), obj, uid
    return json.dumps(review).encode(), obj, uid


# ---------------------------------------------------------------------- the app

def index() -> MemoryIndex:
    return MemoryIndex([
        {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
         "metadata": {"name": "a", "namespace": "default",
                      "annotations": {"k8s.v1.cni.cncf.io/resourceName": "intel.com/sriov"}},
         "spec": {"config": '{"cniVersion":"1.0.0","type":"bridge"}'}},
        {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
         "metadata": {"name": "b", "namespace": "default"}, "spec": {"config": '{"cniVersion":"1.0.0","type":"x"}'}},
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": "blue", "annotations": {"netplex.io/default-networks": "default/a"}}},
    ])


POLICY, _ = policies.parse_cluster_policy({"honorResources": True, "injectNodeSelector": True,
                                            "injectPodnetinfo": True})


def make_app() -> Any:
    return create_app(Admission(index(), lambda: POLICY))


async def _call(app: Any, path: str, body: bytes) -> tuple[int, bytes]:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"webhook.test"), (b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 40000), "server": ("webhook.test", 443)}
    pending = [{"type": "http.request", "body": body, "more_body": False}]
    status, chunks = 0, []

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


class Tracebacks(logging.Handler):
    """Every log record that carries an exception."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)


def check_review(app: Any, body: bytes, obj: Any, uid: Any, loop: asyncio.AbstractEventLoop) -> None:
    """The property, for /validate and /mutate."""
    watcher = Tracebacks()
    root = logging.getLogger()
    root.addHandler(watcher)
    try:
        for path in ("/validate", "/mutate"):
            status, raw = loop.run_until_complete(_call(app, path, body))
            assert 200 <= status < 500, (path, status, raw[:2000])
            answer = json.loads(raw)
            if status != 200:
                assert isinstance(answer.get("error"), str) and answer["error"], (path, status, answer)
                continue
            assert answer["kind"] == "AdmissionReview", answer
            assert answer["apiVersion"] in ("admission.k8s.io/v1", "admission.k8s.io/v1beta1"), answer
            response = answer["response"]
            assert response["uid"] == uid, (response, uid)
            assert isinstance(response["allowed"], bool), response
            if not response["allowed"]:
                assert isinstance(response["status"]["message"], str) and response["status"]["message"], response
            if "patch" in response:
                assert path == "/mutate" and response["patchType"] == "JSONPatch", response
                ops = json.loads(base64.b64decode(response["patch"], validate=True))
                jsonpatch.apply_patch(obj, ops)  # raises when it does not apply
    finally:
        root.removeHandler(watcher)
    assert not watcher.records, [(r.getMessage(), r.exc_info) for r in watcher.records]


def check_ctl(document: str) -> None:
    """``netplexctl check -`` on ``document``: 0, 1 or 2, something said, no traceback."""
    out, err = io.StringIO(), io.StringIO()
    stdin = io.TextIOWrapper(io.BytesIO(document.encode("utf-8", "surrogatepass")), encoding="utf-8")
    code = ctl.main(["check", "-"], stdout=out, stderr=err, stdin=stdin)
    assert code in (0, 1, 2), (code, out.getvalue(), err.getvalue())
    assert out.getvalue() or err.getvalue()
    assert "Traceback" not in out.getvalue() + err.getvalue()


yaml_scalar = st.sampled_from(["~", "null", "true", "no", "0x1f", "1e400", "9" * 5000, "'\\ud800'", '"\\ud800"',
                               "&a x", "*a", "*nope", "!!binary aGk=", "!!python/object:os.system x",
                               "!!set {a}", "<<: *a", "|\n  text", ">-\n  folded", "[", "{", "]", "'", '"',
                               "-", "---", "...", "? x", ": x", "%YAML 1.1", "\t", "2001-12-14", "=", "@"]) | text
yaml_documents = st.lists(
    st.one_of(
        k8s_object.map(lambda o: json.dumps(o, ensure_ascii=False)),
        k8s_object.map(lambda o: json.dumps(o)),
        st.lists(st.tuples(st.sampled_from(["kind", "apiVersion", "metadata", "spec", "name", "  ", "- "]) | text,
                           yaml_scalar), max_size=6)
        .map(lambda pairs: "\n".join(f"{k}: {v}" for k, v in pairs)),
        st.lists(yaml_scalar, max_size=8).map(" ".join),
        st.integers(30, 200).map(lambda n: "a: " + "[" * n + "]" * n),
    ), max_size=4).map("\n---\n".join)


# ---------------------------------------------------------------------- the tests


@CI
@given(case=reviews())
def test_random_admission_reviews_get_a_well_formed_answer_whose_patch_applies(case: tuple[bytes, Any, Any]) -> None:
    body, obj, uid = case
    loop = asyncio.new_event_loop()
    try:
        check_review(APP, body, obj, uid, loop)
    finally:
        loop.close()


@settings(CI, max_examples=300)
@given(document=yaml_documents)
def test_netplexctl_check_on_random_yaml_exits_0_1_or_2_with_output(document: str) -> None:
    check_ctl(document)


APP = make_app()


# ---------------------------------------------------------------------- what the fuzz found


def test_a_nad_whose_cni_version_has_5000_digits_is_denied_not_a_500() -> None:
    """Found by the fuzz (through the plugin, which shares the NAD parser): a ``cniVersion``
    of 5000 digits made /validate answer 500 (Python's int() refuses 4300+ digits). A part
    of more than 18 digits is no version number (Go's Atoi overflows): denied, named."""
    nad = {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
           "metadata": {"name": "n", "namespace": "default"},
           "spec": {"config": json.dumps({"cniVersion": "9" * 5000, "type": "bridge"})}}
    body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                       "request": {"uid": "u", "operation": "CREATE", "object": nad,
                                   "kind": {"group": "k8s.cni.cncf.io", "version": "v1",
                                            "kind": "NetworkAttachmentDefinition"}}}).encode()
    loop = asyncio.new_event_loop()
    try:
        status, raw = loop.run_until_complete(_call(APP, "/validate", body))
    finally:
        loop.close()
    assert status == 200, raw
    response = json.loads(raw)["response"]
    assert response["allowed"] is False
    assert response["status"]["message"].startswith(
        'spec.config.cniVersion: cniVersion is not a CNI spec version (got "999999')
    assert response["status"]["message"].endswith(
        '; use one of 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0, e.g. "0.3.1" or "1.0.0"')
