"""Admission's memo of pod CREATE verdicts: only while nothing the verdict read has changed."""

from __future__ import annotations

import json
from typing import Any

from webhook import policy as policies
from webhook.admission import Admission
from webhook.index import IndexedNad, MemoryIndex

NETWORKS = "k8s.v1.cni.cncf.io/networks"


def nad(name: str, namespace: str = "default") -> dict[str, Any]:
    return {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"config": json.dumps({"cniVersion": "1.0.0", "type": "macvlan", "master": "eth0"})}}


def request(networks: str, namespace: str = "default", **annotations: str) -> dict[str, Any]:
    return {"uid": "u", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "operation": "CREATE",
            "namespace": namespace,
            "object": {"metadata": {"name": "p", "annotations": {NETWORKS: networks, **annotations}},
                       "spec": {"containers": [{"name": "c"}]}}}


class CountingIndex(MemoryIndex):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.lookups = 0

    def get_nad(self, namespace: str, name: str) -> IndexedNad | None:
        self.lookups += 1
        return super().get_nad(namespace, name)


def test_the_same_question_is_answered_from_the_memo() -> None:
    index = CountingIndex([nad("a"), nad("b")])
    admission = Admission(index)

    first = admission.validate(request("a, b"))
    lookups = index.lookups
    second = admission.validate(request("a, b"))

    assert first.allowed and second == first
    assert lookups > 0 and index.lookups == lookups  # no rule ran again


def test_a_change_to_the_index_invalidates_the_memo() -> None:
    index = MemoryIndex([nad("a")])
    admission = Admission(index)
    assert admission.validate(request("a")).allowed

    index.delete(nad("a"))
    verdict = admission.validate(request("a"))

    assert not verdict.allowed
    assert 'no NetworkAttachmentDefinition "a" in namespace "default"' in verdict.message


def test_a_new_policy_object_invalidates_the_memo() -> None:
    index = MemoryIndex([nad("a", "third")])
    current = [policies.ClusterPolicy()]
    admission = Admission(index, lambda: current[0])
    assert admission.validate(request("third/a", "other")).allowed

    current[0], problems = policies.parse_cluster_policy({"namespaceIsolation": True})
    assert problems == []
    verdict = admission.validate(request("third/a", "other"))

    assert not verdict.allowed and "refers to another namespace while namespace isolation is on" in verdict.message


def test_denials_are_not_kept_so_every_miss_is_confirmed_again() -> None:
    asked: list[tuple[str, str]] = []

    def confirm(namespace: str, name: str) -> IndexedNad | None:
        asked.append((namespace, name))
        return None

    admission = Admission(MemoryIndex([nad("a")]), confirm_missing=confirm)
    assert not admission.validate(request("nope")).allowed
    assert not admission.validate(request("nope")).allowed
    assert asked == [("default", "nope"), ("default", "nope")]


def test_the_key_holds_namespace_and_every_annotation_the_rules_read() -> None:
    index = MemoryIndex([nad("a"), nad("a", "other")])
    admission = Admission(index)
    assert admission.validate(request("a")).allowed

    assert admission.validate(request("a", "other")).allowed
    typo = admission.validate(request("a", **{"netplex.io/skip-default-networks": "yes"}))
    assert not typo.allowed and 'must be "true" or "false" (got "yes")' in typo.message
    moved = admission.validate(request("a", **{"v1.multus-cni.io/default-network": "missing"}))
    assert not moved.allowed and 'no NetworkAttachmentDefinition "missing"' in moved.message
    # an annotation no rule reads does not split the memo, and does not change the answer
    assert admission.validate(request("a", unrelated="x")) == admission.validate(request("a"))


# -- mutation plans -------------------------------------------------------------------------

RES = "intel.com/sriov"


def sriov(name: str) -> dict[str, Any]:
    obj = nad(name)
    obj["metadata"]["annotations"] = {"k8s.v1.cni.cncf.io/resourceName": RES}
    return obj


def tenant(defaults: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "default", "annotations": {"netplex.io/default-networks": defaults}}}


def applied(admission: Admission, req: dict[str, Any]) -> dict[str, Any]:
    import jsonpatch

    verdict = admission.mutate(req)
    assert verdict.allowed
    return jsonpatch.apply_patch(req["object"], list(verdict.patch))


def test_one_plan_serves_pods_with_the_same_annotation_and_each_pod_keeps_its_own_spec() -> None:
    index = CountingIndex([sriov("a"), sriov("b")])
    admission = Admission(index)
    plain = request("a, b")
    asked_more = request("a, b")
    asked_more["object"]["spec"]["containers"][0]["resources"] = {"requests": {RES: "5"}, "limits": {RES: "5"}}

    first = applied(admission, plain)
    lookups = index.lookups
    second = applied(admission, asked_more)

    assert index.lookups == lookups  # the plan came from the memo
    assert first["spec"]["containers"][0]["resources"] == {"requests": {RES: "2"}, "limits": {RES: "2"}}
    assert second["spec"]["containers"][0]["resources"] == {"requests": {RES: "5"}, "limits": {RES: "5"}}


def test_a_new_namespace_default_reaches_the_next_pod_and_the_opt_out_is_part_of_the_question() -> None:
    index = MemoryIndex([nad("a"), nad("b"), tenant("b")])
    admission = Admission(index)
    assert applied(admission, request("a"))["metadata"]["annotations"][NETWORKS] == "a,default/b"

    index.put(tenant(""))
    assert applied(admission, request("a"))["metadata"]["annotations"][NETWORKS] == "a"

    index.put(tenant("b"))
    skipping = request("a", **{"netplex.io/skip-default-networks": "true"})
    assert applied(admission, skipping)["metadata"]["annotations"][NETWORKS] == "a"
    assert applied(admission, request("a"))["metadata"]["annotations"][NETWORKS] == "a,default/b"
