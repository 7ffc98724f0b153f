"""The CEL matchConditions, evaluated against AdmissionReview-like requests.

Pods with and without the annotations, null and missing annotations, CREATE and UPDATE
(with oldObject), Namespaces and workloads: which webhook entries the API server would
call (:func:`tests.manifests.dispatch.called`), never an evaluation error, and that what
the conditions skip is what the webhook would admit anyway.
"""

from __future__ import annotations

from typing import Any

import pytest

from plugin.model import selection
from tests.manifests.dispatch import MatchConditionError, called, evaluate, review
from tests.manifests.rendering import find, rendered
from webhook import policy as policies
from webhook.admission import Admission
from webhook.index import MemoryIndex
from webhook.validators import WORKLOAD_TEMPLATE_PATHS

NETWORKS = selection.NETWORKS_ANNOTATION
DEFAULT_NETWORK = selection.DEFAULT_NETWORK_ANNOTATION
SKIP = policies.SKIP_DEFAULT_NETWORKS

def pod(annotations: Any = "absent", *, metadata: bool = True) -> dict[str, Any]:
    """A pod; ``annotations`` "absent" leaves the key out, None makes it JSON null."""
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod",
                            "spec": {"containers": [{"name": "app", "image": "busybox"}]}}
    if metadata:
        body["metadata"] = {"name": "p", "namespace": "default"}
        if annotations != "absent":
            body["metadata"]["annotations"] = annotations
    return body


def workload(kind: str, annotations: Any = "absent") -> dict[str, Any]:
    template: dict[str, Any] = {"metadata": {"labels": {"app": "x"}}, "spec": pod()["spec"]}
    if annotations != "absent":
        template["metadata"]["annotations"] = annotations
    spec: dict[str, Any] = {"template": template}
    for step in reversed(WORKLOAD_TEMPLATE_PATHS[kind][1:-1]):  # CronJob: jobTemplate.spec
        spec = {step: spec}
    return {"apiVersion": "v1", "kind": kind, "metadata": {"name": "w", "namespace": "default"}, "spec": spec}


def namespace_object(annotations: Any = "absent", name: str = "tenant-a") -> dict[str, Any]:
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    if annotations != "absent":
        body["metadata"]["annotations"] = annotations
    return body


MUTATE = "pods.mutate.netplex.io"
PODS = "pods.validate.netplex.io"
POD_UPDATES = "pod-updates.validate.netplex.io"
NADS = "network-attachment-definitions.validate.netplex.io"
NAMESPACES = "namespaces.validate.netplex.io"
WORKLOADS = "workloads.validate.netplex.io"
CRONJOBS = "cronjobs.validate.netplex.io"


# -- pod CREATE -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "annotations",
    [{NETWORKS: "macvlan-conf"}, {NETWORKS: ""}, {DEFAULT_NETWORK: "kube-system/cluster"},
     {SKIP: "true"}, {"netplex.io/max-networks": "1"}, {"other": "x", NETWORKS: "a,b"}],
    ids=["networks", "empty-networks", "default-network", "skip-default", "netplex-key", "mixed"],
)
def test_a_pod_with_network_annotations_is_validated_on_create(annotations):
    assert called(review("Pod", "CREATE", pod(annotations))) == [MUTATE, PODS]


@pytest.mark.parametrize(
    "body",
    [pod(), pod(None), pod({}), pod({"app.kubernetes.io/name": "web", "k8s.v1.cni.cncf.io/network-status": "[]"}),
     pod(metadata=False)],
    ids=["no-annotations", "null-annotations", "empty-annotations", "unrelated-annotations", "no-metadata"],
)
def test_a_pod_without_network_annotations_is_only_mutated_on_create(body):
    assert called(review("Pod", "CREATE", body)) == [MUTATE]


@pytest.mark.parametrize("namespace", ["kube-system", "netplex-system"])
def test_pods_in_the_system_namespaces_never_reach_the_webhook(namespace):
    assert called(review("Pod", "CREATE", pod({NETWORKS: "x"}), namespace=namespace)) == []
    assert called(review("Pod", "UPDATE", pod({NETWORKS: "y"}), pod({NETWORKS: "x"}), namespace=namespace)) == []


# -- pod UPDATE -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("absent", {NETWORKS: "macvlan-conf"}),
        ({NETWORKS: "macvlan-conf"}, "absent"),
        ({NETWORKS: "macvlan-conf"}, {}),
        ({NETWORKS: "macvlan-conf"}, None),
        (None, {NETWORKS: "macvlan-conf"}),
        ({NETWORKS: "macvlan-conf"}, {NETWORKS: "macvlan-conf@net2"}),
        ({NETWORKS: ""}, {}),
        ({DEFAULT_NETWORK: "a"}, {DEFAULT_NETWORK: "b"}),
        ({NETWORKS: "a", "team": "x"}, {DEFAULT_NETWORK: "a", "team": "x"}),
    ],
    ids=["added", "removed-key", "removed-to-empty", "removed-to-null", "added-from-null", "changed",
         "empty-removed", "default-network-changed", "moved-between-keys"],
)
def test_a_pod_update_that_changes_the_selection_is_validated(old, new):
    assert called(review("Pod", "UPDATE", pod(new), pod(old))) == [POD_UPDATES]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ({NETWORKS: "macvlan-conf"}, {NETWORKS: "macvlan-conf", "team": "blue"}),
        ({NETWORKS: "macvlan-cnf"}, {NETWORKS: "macvlan-cnf"}),
        ({SKIP: "true"}, {SKIP: "false"}),
        ("absent", {"team": "blue"}),
        (None, None),
        ("absent", "absent"),
        (None, {}),
    ],
    ids=["label-like-edit", "unchanged-invalid", "netplex-key-only", "unrelated", "both-null", "both-absent",
         "null-to-empty"],
)
def test_a_pod_update_that_keeps_the_selection_never_reaches_the_webhook(old, new):
    assert called(review("Pod", "UPDATE", pod(new), pod(old))) == []


def test_a_pod_update_with_a_null_old_object_does_not_fail_evaluation():
    assert called(review("Pod", "UPDATE", pod({NETWORKS: "a"}), None)) == [POD_UPDATES]
    assert called(review("Pod", "UPDATE", pod(), None)) == []


# -- NADs, namespaces, workloads ----------------------------------------------------------------


@pytest.mark.parametrize("operation", ["CREATE", "UPDATE"])
def test_every_nad_write_is_validated(operation):
    nad = {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
           "metadata": {"name": "n", "namespace": "default"}, "spec": {"config": ""}}
    assert called(review("NetworkAttachmentDefinition", operation, nad, nad if operation == "UPDATE" else None)) == [NADS]


@pytest.mark.parametrize("operation", ["CREATE", "UPDATE"])
def test_a_namespace_with_netplex_policy_is_validated(operation):
    body = namespace_object({"netplex.io/max-networks": "2"})
    old = namespace_object() if operation == "UPDATE" else None
    assert called(review("Namespace", operation, body, old)) == [NAMESPACES]


@pytest.mark.parametrize("annotations", ["absent", None, {}, {"owner": "team-a"}],
                         ids=["absent", "null", "empty", "unrelated"])
def test_a_namespace_without_netplex_policy_never_reaches_the_webhook(annotations):
    assert called(review("Namespace", "CREATE", namespace_object(annotations))) == []
    old = namespace_object({"netplex.io/max-networks": "2"})
    assert called(review("Namespace", "UPDATE", namespace_object(annotations), old)) == []


def test_the_system_namespaces_themselves_are_never_sent():
    for name in ("kube-system", "netplex-system"):
        body = namespace_object({"netplex.io/max-networks": "x"}, name=name)
        assert called(review("Namespace", "UPDATE", body, body)) == []


@pytest.mark.parametrize("kind", sorted(WORKLOAD_TEMPLATE_PATHS))
@pytest.mark.parametrize("operation", ["CREATE", "UPDATE"])
def test_a_workload_whose_template_selects_networks_is_validated(kind, operation):
    body = workload(kind, {NETWORKS: "macvlan-conf"})
    expected = CRONJOBS if kind == "CronJob" else WORKLOADS
    old = workload(kind) if operation == "UPDATE" else None
    assert called(review(kind, operation, body, old)) == [expected]


@pytest.mark.parametrize("kind", sorted(WORKLOAD_TEMPLATE_PATHS))
@pytest.mark.parametrize("annotations", ["absent", None, {}, {"team": "x"}], ids=["absent", "null", "empty", "unrelated"])
def test_a_workload_without_network_annotations_never_reaches_the_webhook(kind, annotations):
    assert called(review(kind, "CREATE", workload(kind, annotations))) == []
    assert called(review(kind, "UPDATE", workload(kind, annotations), workload(kind, {NETWORKS: "a"}))) == []


def test_annotations_on_the_workload_itself_do_not_count():
    body = workload("Deployment")
    body["metadata"]["annotations"] = {NETWORKS: "macvlan-conf"}
    assert called(review("Deployment", "CREATE", body)) == []


# -- the conditions and the webhook agree ---------------------------------------------------------


def test_the_conditions_name_exactly_the_annotations_the_webhook_reads():
    config = find(rendered("base"), "ValidatingWebhookConfiguration", "netplex-validating")
    expressions = {h["name"]: h["matchConditions"][0]["expression"] for h in config["webhooks"] if "matchConditions" in h}
    for name in (PODS, WORKLOADS, CRONJOBS):
        for needle in (f"'{NETWORKS}'", f"'{DEFAULT_NETWORK}'", f"startsWith('{policies.PREFIX}')"):
            assert needle in expressions[name], f"{name} does not test {needle}"
    assert f"'{NETWORKS}', '{DEFAULT_NETWORK}'" in expressions[POD_UPDATES]
    assert f"startsWith('{policies.PREFIX}')" in expressions[NAMESPACES]
    for kind, path in WORKLOAD_TEMPLATE_PATHS.items():
        name = CRONJOBS if kind == "CronJob" else WORKLOADS
        assert f"object.{'.'.join(path)}.metadata.annotations" in expressions[name], kind


def _index() -> MemoryIndex:
    nad = {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
           "metadata": {"name": "macvlan-conf", "namespace": "default"},
           "spec": {"config": '{"cniVersion": "0.3.1", "type": "macvlan", "master": "eth0"}'}}
    strict = namespace_object({"netplex.io/max-networks": "0"}, name="default")
    return MemoryIndex([nad, strict])


SKIPPED = [
    review("Pod", "CREATE", pod()),
    review("Pod", "CREATE", pod(None)),
    review("Pod", "CREATE", pod({"team": "x"})),
    review("Pod", "UPDATE", pod({NETWORKS: "macvlan-cnf", "team": "y"}), pod({NETWORKS: "macvlan-cnf"})),
    review("Pod", "UPDATE", pod({NETWORKS: "a,,b"}), pod({NETWORKS: "a,,b"})),
    review("Namespace", "CREATE", namespace_object({"team": "x"})),
    review("Namespace", "UPDATE", namespace_object(), namespace_object({"netplex.io/max-networks": "two"})),
    review("Deployment", "CREATE", workload("Deployment", {"team": "x"})),
    review("CronJob", "UPDATE", workload("CronJob"), workload("CronJob", {NETWORKS: "macvlan-cnf"})),
]


@pytest.mark.parametrize("request_", SKIPPED, ids=lambda r: f"{r['kind']['kind']}-{r['operation']}")
def test_what_the_conditions_skip_the_webhook_would_admit_anyway(request_):
    assert [n for n in called(request_) if n != MUTATE] == []
    verdict = Admission(_index()).validate(request_)
    assert verdict.allowed, verdict.message


def test_what_the_conditions_send_the_webhook_can_refuse():
    """The same kinds of objects, with the annotation changed: sent, and refused."""
    sent = [
        (review("Pod", "CREATE", pod({NETWORKS: "macvlan-cnf"})), 'no NetworkAttachmentDefinition "macvlan-cnf"'),
        (review("Pod", "UPDATE", pod({NETWORKS: "macvlan-conf@net2"}), pod({NETWORKS: "macvlan-conf"})),
         "cannot be changed on an existing pod"),
        (review("Namespace", "UPDATE", namespace_object({"netplex.io/max-networks": "two"}), namespace_object()),
         "is not a whole number"),
    ]
    for request_, message in sent:
        assert [n for n in called(request_) if n != MUTATE], request_["operation"]
        verdict = Admission(_index()).validate(request_)
        assert not verdict.allowed
        assert message in verdict.message


def test_the_harness_reports_an_unguarded_expression_as_an_error():
    unguarded = f"object.metadata.annotations.exists(k, k == '{NETWORKS}')"
    with pytest.raises(MatchConditionError) as caught:
        evaluate(unguarded, review("Pod", "CREATE", pod(None)))
    assert "cannot be evaluated" in str(caught.value)
    with pytest.raises(MatchConditionError) as caught:
        evaluate("object.metadata.name", review("Pod", "CREATE", pod()))
    assert "is not a bool (got StringType 'p')" in str(caught.value)
