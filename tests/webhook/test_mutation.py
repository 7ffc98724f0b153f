"""Pod mutation: default networks, device resources, podnetinfo, node selectors."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch
import pytest

from webhook import policy as policies
from webhook.admission import Admission
from webhook.index import MemoryIndex
from webhook.mutation import mutate_pod


def nad(name: str, namespace: str = "default", **annotations: str) -> dict[str, Any]:
    return {
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "spec": {"config": json.dumps({"cniVersion": "0.3.1", "type": "macvlan", "master": "eth0",
                                        "capabilities": {"ips": True}, "ipam": {"type": "static"}})},
    }


def ns(name: str, **annotations: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "annotations": annotations}}


def pod(networks: str | None = None, **annotations: str) -> dict[str, Any]:
    if networks is not None:
        annotations["k8s.v1.cni.cncf.io/networks"] = networks
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "annotations": annotations},
        "spec": {"containers": [{"name": "app", "image": "nginx", "resources": {}},
                                {"name": "sidecar", "image": "envoy", "resources": {}}]},
    }


RES = "intel.com/sriov"


@pytest.fixture
def index() -> MemoryIndex:
    return MemoryIndex([
        nad("macvlan-conf"),
        nad("sriov-a", **{"k8s.v1.cni.cncf.io/resourceName": RES}),
        nad("sriov-b", **{"k8s.v1.cni.cncf.io/resourceName": RES,
                          "k8s.v1.cni.cncf.io/nodeSelector": "sriov=true"}),
        nad("storage-net", "shared"),
        ns("tenant", **{"netplex.io/default-networks": "shared/storage-net"}),
        ns("json-tenant", **{"netplex.io/default-networks": '[{"name": "storage-net", "namespace": "shared", "ips": ["10.9.0.5/24"]}]'}),
    ])


def make_policy(**raw: Any) -> policies.ClusterPolicy:
    parsed, problems = policies.parse_cluster_policy(raw)
    assert problems == []
    return parsed


def networks_of(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"])


def test_namespace_default_networks_are_appended_in_short_form(index: MemoryIndex) -> None:
    result = mutate_pod(pod("macvlan-conf"), "tenant", index, make_policy())
    assert networks_of(result.pod) == "macvlan-conf,shared/storage-net"


def test_default_networks_are_added_to_a_pod_without_annotation(index: MemoryIndex) -> None:
    result = mutate_pod(pod(), "tenant", index, make_policy())
    assert networks_of(result.pod) == "shared/storage-net"


def test_default_already_selected_is_not_added_twice(index: MemoryIndex) -> None:
    original = pod("shared/storage-net@st0")
    result = mutate_pod(original, "tenant", index, make_policy())
    assert result.pod == original


def test_json_form_is_kept_when_either_side_needs_it(index: MemoryIndex) -> None:
    result = mutate_pod(pod('[{"name": "macvlan-conf", "interface": "data0"}]'), "tenant", index, make_policy())
    assert json.loads(networks_of(result.pod)) == [
        {"name": "macvlan-conf", "interface": "data0"},
        {"name": "storage-net", "namespace": "shared"},
    ]
    result = mutate_pod(pod("macvlan-conf"), "json-tenant", index, make_policy())
    assert json.loads(networks_of(result.pod)) == [
        {"name": "macvlan-conf"},
        {"name": "storage-net", "namespace": "shared", "ips": ["10.9.0.5/24"]},
    ]


def test_pod_can_opt_out_of_default_networks(index: MemoryIndex) -> None:
    original = pod("macvlan-conf", **{"netplex.io/skip-default-networks": "true"})
    assert mutate_pod(original, "tenant", index, make_policy()).pod == original


def test_cluster_default_networks_come_after_the_namespace_ones(index: MemoryIndex) -> None:
    result = mutate_pod(pod(), "tenant", index, make_policy(defaultNetworks="default/macvlan-conf"))
    assert networks_of(result.pod) == "shared/storage-net,default/macvlan-conf"


def test_cluster_defaults_skip_system_namespaces(index: MemoryIndex) -> None:
    original = pod()
    result = mutate_pod(original, "kube-system", index, make_policy(defaultNetworks="default/macvlan-conf"))
    assert result.pod == original


def test_invalid_annotation_is_left_for_the_validating_webhook(index: MemoryIndex) -> None:
    original = pod("a/b/c")
    assert mutate_pod(original, "tenant", index, make_policy()).pod == original


def test_device_resources_are_counted_per_attachment_on_the_first_container(index: MemoryIndex) -> None:
    result = mutate_pod(pod("sriov-a, sriov-b, sriov-a"), "default", index, make_policy())
    resources = result.pod["spec"]["containers"][0]["resources"]
    assert resources == {"requests": {RES: "3"}, "limits": {RES: "3"}}
    assert result.pod["spec"]["containers"][1]["resources"] == {}


def test_device_resources_can_target_a_named_container_or_all(index: MemoryIndex) -> None:
    named = mutate_pod(pod("sriov-a"), "default", index, make_policy(resourceContainer="sidecar"))
    assert named.pod["spec"]["containers"][0]["resources"] == {}
    assert named.pod["spec"]["containers"][1]["resources"]["limits"] == {RES: "1"}
    every = mutate_pod(pod("sriov-a"), "default", index, make_policy(resourceAllContainers=True))
    assert [c["resources"]["limits"] for c in every.pod["spec"]["containers"]] == [{RES: "1"}, {RES: "1"}]
    missing = mutate_pod(pod("sriov-a"), "default", index, make_policy(resourceContainer="nope"))
    assert missing.pod["spec"]["containers"][0]["resources"]["limits"] == {RES: "1"}
    assert 'has no container named "nope"' in missing.warnings[0].message


def test_user_resource_values_are_never_lowered(index: MemoryIndex) -> None:
    original = pod("sriov-a")
    original["spec"]["containers"][0]["resources"] = {"requests": {RES: "4"}, "limits": {RES: "4"}}
    result = mutate_pod(original, "default", index, make_policy())
    assert result.pod["spec"]["containers"][0]["resources"]["limits"] == {RES: "4"}
    assert result.warnings == []


def test_user_resource_value_below_the_count_is_a_warning(index: MemoryIndex) -> None:
    original = pod("sriov-a, sriov-b")
    original["spec"]["containers"][0]["resources"] = {"limits": {RES: "1"}}
    result = mutate_pod(original, "default", index, make_policy())
    assert result.pod["spec"]["containers"][0]["resources"]["limits"] == {RES: "1"}
    assert [str(w) for w in result.warnings] == [
        f"spec.containers[0].resources.requests[{RES}]: is 1 but the pod's networks need 2 (got 1); "
        "the pod will get fewer devices than attachments and fail at start; set it to 2 or remove it "
        "to let netplex set it"
    ]


def test_honor_resources_adds_to_the_user_value_once(index: MemoryIndex) -> None:
    original = pod("sriov-a")
    original["spec"]["containers"][0]["resources"] = {"limits": {RES: "2"}}
    policy = make_policy(honorResources=True)
    first = mutate_pod(original, "default", index, policy)
    assert first.pod["spec"]["containers"][0]["resources"]["limits"] == {RES: "3"}
    second = mutate_pod(first.pod, "default", index, policy)
    assert second.pod == first.pod


def test_mutation_is_idempotent(index: MemoryIndex) -> None:
    policy = make_policy(injectPodnetinfo=True, injectNodeSelector=True, defaultNetworks="default/sriov-b")
    once = mutate_pod(pod("sriov-a"), "tenant", index, policy).pod
    twice = mutate_pod(once, "tenant", index, policy).pod
    assert twice == once


def test_node_selector_of_selected_nads_is_merged(index: MemoryIndex) -> None:
    policy = make_policy(injectNodeSelector=True)
    result = mutate_pod(pod("sriov-b"), "default", index, policy)
    assert result.pod["spec"]["nodeSelector"] == {"sriov": "true"}
    conflicting = pod("sriov-b")
    conflicting["spec"]["nodeSelector"] = {"sriov": "false"}
    result = mutate_pod(conflicting, "default", index, policy)
    # the pod's own value is never overwritten; /validate denies the pod naming the NAD
    # (tests/webhook/test_node_selectors.py)
    assert result.pod["spec"]["nodeSelector"] == {"sriov": "false"}
    assert result.pod["spec"]["nodeSelector"] is conflicting["spec"]["nodeSelector"] and result.warnings == []


def test_podnetinfo_volume_is_mounted_in_every_container(index: MemoryIndex) -> None:
    result = mutate_pod(pod("macvlan-conf"), "default", index, make_policy(injectPodnetinfo=True))
    spec = result.pod["spec"]
    assert spec["volumes"] == [{"name": "podnetinfo", "downwardAPI": {"items": [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
    ]}}]
    assert [c["volumeMounts"] for c in spec["containers"]] == [
        [{"name": "podnetinfo", "mountPath": "/etc/podnetinfo", "readOnly": True}]
    ] * 2


def test_podnetinfo_is_not_added_for_pods_without_networks(index: MemoryIndex) -> None:
    original = pod()
    assert mutate_pod(original, "default", index, make_policy(injectPodnetinfo=True)).pod == original


def review_request(obj: dict[str, Any], namespace: str = "tenant", operation: str = "CREATE") -> dict[str, Any]:
    return {"uid": "u1", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "operation": operation,
            "namespace": namespace, "object": obj}


def test_admission_answers_a_json_patch_that_applies_to_the_original(index: MemoryIndex) -> None:
    original = pod("default/macvlan-conf, default/sriov-a")
    verdict = Admission(index).mutate(review_request(copy.deepcopy(original)))
    assert verdict.allowed
    ops = list(verdict.patch)
    assert {"op": "replace", "path": "/metadata/annotations/k8s.v1.cni.cncf.io~1networks",
            "value": "default/macvlan-conf,default/sriov-a,shared/storage-net"} in ops
    patched = jsonpatch.apply_patch(original, ops)
    assert patched["spec"]["containers"][0]["resources"]["limits"] == {RES: "1"}


def test_admission_sends_no_patch_when_nothing_changes(index: MemoryIndex) -> None:
    verdict = Admission(index).mutate(review_request(pod("macvlan-conf"), namespace="default"))
    assert verdict.allowed and verdict.patch == ()


def test_admission_mutates_only_pod_creation(index: MemoryIndex) -> None:
    assert Admission(index).mutate(review_request(pod(), operation="UPDATE")).patch == ()
    request = review_request(pod())
    request["kind"] = {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert Admission(index).mutate(request).patch == ()


ALL_STEPS = {"injectPodnetinfo": True, "injectNodeSelector": True, "honorResources": True,
             "defaultNetworks": "shared/storage-net"}


@pytest.mark.parametrize("policy_raw", [{}, ALL_STEPS, {**ALL_STEPS, "resourceAllContainers": True}])
@pytest.mark.parametrize("networks", ["sriov-a, sriov-b", "macvlan-conf", None, '[{"name": "sriov-a"}]'])
@pytest.mark.parametrize("namespace", ["default", "tenant"])
def test_mutation_copies_on_write_and_never_modifies_the_request(
    index: MemoryIndex, policy_raw: dict[str, Any], networks: str | None, namespace: str
) -> None:
    original = pod(networks)
    original["spec"]["containers"][0]["resources"] = {"requests": {RES: "1", "cpu": "1"}}
    original["spec"]["containers"][1]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    original["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}]
    snapshot = copy.deepcopy(original)

    result = mutate_pod(original, namespace, index, make_policy(**policy_raw))
    verdict = Admission(index, lambda: make_policy(**policy_raw)).mutate(review_request(original, namespace))

    assert original == snapshot
    assert jsonpatch.apply_patch(snapshot, list(verdict.patch)) == result.pod
    # what no step touched is shared, not copied (that is what keeps the diff cheap)
    assert result.pod["apiVersion"] is original["apiVersion"]
    if result.pod.get("spec") is not original["spec"]:
        assert result.pod["spec"]["containers"][1]["image"] is original["spec"]["containers"][1]["image"]
