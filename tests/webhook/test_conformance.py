"""Issue 12: agree with Multus and the reference tools where users depend on it.

- An empty (or whitespace-only) ``k8s.v1.cni.cncf.io/networks`` means "no extra networks"
  (Multus: ``NoK8sNetworkError``, the cluster network only; both admission controllers
  admit it): admitted with a warning, by the webhook and by ``netplexctl check``.
- ``v1.multus-cni.io/default-network: ""`` stays refused: Multus fails such a pod at
  sandbox creation (``pod annotation does not have "network" as key``).
- A NAD's ``k8s.v1.cni.cncf.io/nodeSelector`` is one label, read as the
  network-resources-injector reads it, and checked with the Kubernetes label rules; its
  ``resourceName`` (and every configured resource-name key) is checked as an extended
  resource name. A pod never gets a patch the API server would refuse: it is denied at
  /validate, naming the NAD.

Each rule is run through a Pod, a workload's pod template and ``netplexctl check``.
"""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
import yaml

from plugin.model import names
from webhook import ctl
from webhook import policy as policies
from webhook.admission import Admission
from webhook.index import MemoryIndex
from webhook.nad_annotations import NODE_SELECTOR_FORM
from webhook.verdicts import Verdict

NETWORKS = "k8s.v1.cni.cncf.io/networks"
DEFAULT_NETWORK = "v1.multus-cni.io/default-network"
NODE_SELECTOR = "k8s.v1.cni.cncf.io/nodeSelector"
RESOURCE_NAME = "k8s.v1.cni.cncf.io/resourceName"
NP = f"metadata.annotations[{NETWORKS}]"
TP = f"spec.template.metadata.annotations[{NETWORKS}]"
EMPTY_WARNING = (
    'is empty (got {got}), so it selects no extra network and the pod gets the cluster network only '
    '(plus any default networks); remove the annotation, or list networks as "net-a,other-ns/net-b@net2" '
    'or as JSON [{{"name":"net-a"}}]'
)
CONFIG = json.dumps({"cniVersion": "0.3.1", "type": "macvlan", "master": "eth0", "ipam": {"type": "static"}})


def nad(name: str, namespace: str = "default", **annotations: str) -> dict[str, Any]:
    return {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
            "spec": {"config": CONFIG}}


def pod(annotations: dict[str, str], node_selector: dict[str, str] | None = None, name: str = "app") -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": "nginx", "resources": {}}]}
    if node_selector is not None:
        spec["nodeSelector"] = node_selector
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "annotations": annotations}, "spec": spec}


def deployment(annotations: dict[str, str], node_selector: dict[str, str] | None = None) -> dict[str, Any]:
    """What ``helm template`` renders for a chart whose networks value is a template."""
    template = pod(annotations, node_selector)
    del template["apiVersion"], template["kind"]
    template["metadata"] = {"labels": {"app": "web"}, "annotations": annotations}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"helm.sh/chart": "web-1.0.0"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": template}}


GROUPS = {"Pod": "", "Deployment": "apps", "NetworkAttachmentDefinition": "k8s.cni.cncf.io"}


def request(obj: dict[str, Any]) -> dict[str, Any]:
    kind = obj["kind"]
    return {"uid": "u", "kind": {"group": GROUPS[kind], "version": "v1", "kind": kind}, "operation": "CREATE",
            "namespace": obj["metadata"].get("namespace", ""), "object": obj}


def admission(*objects: dict[str, Any], **policy: Any) -> Admission:
    parsed, problems = policies.parse_cluster_policy(policy)
    assert problems == []
    return Admission(MemoryIndex(objects), lambda: parsed)


def validate(handler: Admission, obj: dict[str, Any]) -> Verdict:
    return handler.validate(request(obj))


def mutated(handler: Admission, obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` after the mutating webhook's patch, as the API server would apply it."""
    verdict = handler.mutate(request(copy.deepcopy(obj)))
    assert verdict.allowed
    result: dict[str, Any] = jsonpatch.apply_patch(obj, list(verdict.patch))
    return result


def lines(verdict: Verdict) -> list[str]:
    return [str(p) for p in verdict.errors]


def warnings(verdict: Verdict) -> list[str]:
    return [str(p) for p in verdict.warnings]


def check(tmp_path: Path, *objects: dict[str, Any], policy: dict[str, Any] | None = None,
          strict: bool = False, nads: list[dict[str, Any]] | None = None) -> tuple[int, list[dict[str, Any]]]:
    """``netplexctl check -o json`` on the objects written as one YAML file."""
    path = tmp_path / "objects.yaml"
    path.write_text(yaml.safe_dump_all(objects))
    argv = ["check", "-o", "json", str(path)]
    if nads is not None:
        (tmp_path / "nads").mkdir(exist_ok=True)
        (tmp_path / "nads" / "nads.yaml").write_text(yaml.safe_dump_all(nads))
        argv += ["--nads", str(tmp_path / "nads")]
    if policy is not None:
        policy_path = tmp_path / "policy.yaml"
        policy_path.write_text(yaml.safe_dump(policy))
        argv += ["--policy", str(policy_path)]
    if strict:
        argv.append("--strict")
    out, err = io.StringIO(), io.StringIO()
    code = ctl.main(argv, stdout=out, stderr=err, stdin=io.StringIO())
    return code, json.loads(out.getvalue())["findings"]


def found(findings: list[dict[str, Any]], severity: str) -> list[str]:
    return [f"{f['path']}: {f['message']}" for f in findings if f["severity"] == severity]


# ------------------------------------------------------------ empty networks annotation


@pytest.mark.parametrize("value", ["", "  ", "\n"])
def test_a_pod_with_an_empty_networks_annotation_is_admitted_with_a_warning(value: str) -> None:
    handler = admission(nad("macvlan-conf"))
    verdict = validate(handler, pod({NETWORKS: value}))
    assert verdict.allowed
    assert warnings(verdict) == [f"{NP}: " + EMPTY_WARNING.format(got=json.dumps(value))]
    assert handler.mutate(request(pod({NETWORKS: value}))).patch == ()  # nothing to add, nothing removed


def test_a_helm_style_deployment_with_an_empty_networks_value_is_admitted_with_a_warning(tmp_path: Path) -> None:
    web = deployment({NETWORKS: ""})
    verdict = validate(admission(), web)
    assert verdict.allowed
    assert warnings(verdict) == [f"{TP}: " + EMPTY_WARNING.format(got='""')]

    code, findings = check(tmp_path, web)
    assert code == 0
    assert found(findings, "error") == []
    assert found(findings, "warning") == [f"{TP}: " + EMPTY_WARNING.format(got='""')]
    assert check(tmp_path, web, strict=True)[0] == 1  # --strict: warnings fail


def test_netplexctl_prints_the_empty_annotation_as_a_warning_and_exits_0(tmp_path: Path) -> None:
    path = tmp_path / "pod.yaml"
    path.write_text(yaml.safe_dump(pod({NETWORKS: ""})))
    out, err = io.StringIO(), io.StringIO()
    assert ctl.main(["check", str(path)], stdout=out, stderr=err, stdin=io.StringIO()) == 0
    assert out.getvalue() == f"{path}:1: Pod default/app: {NP}: warning: " + EMPTY_WARNING.format(got='""') + "\n"
    assert err.getvalue() == "1 objects checked: 0 errors, 1 warnings\n"


def test_namespace_default_networks_still_apply_to_a_pod_with_an_empty_annotation() -> None:
    tenant = {"apiVersion": "v1", "kind": "Namespace",
              "metadata": {"name": "tenant", "annotations": {"netplex.io/default-networks": "shared/storage"}}}
    handler = admission(nad("storage", "shared"), tenant)
    empty = pod({NETWORKS: ""})
    empty["metadata"]["namespace"] = "tenant"
    after = mutated(handler, empty)
    assert after["metadata"]["annotations"][NETWORKS] == "shared/storage"
    assert validate(handler, after).allowed


@pytest.mark.parametrize("value", ["", " "])
def test_an_empty_default_network_annotation_is_refused_as_multus_fails_it(tmp_path: Path, value: str) -> None:
    path = f"metadata.annotations[{DEFAULT_NETWORK}]"
    message = (f"{path}: is empty (got {json.dumps(value)}); remove the annotation, or name one network as "
               '"net-a", "other-ns/net-a" or [{"name":"net-a"}]')
    assert lines(validate(admission(), pod({DEFAULT_NETWORK: value}))) == [message]
    assert lines(validate(admission(), deployment({DEFAULT_NETWORK: value}))) == ["spec.template." + message]
    code, findings = check(tmp_path, pod({DEFAULT_NETWORK: value}))
    assert code == 1 and found(findings, "error") == [message]


# ------------------------------------------------------------ NAD nodeSelector


NS_PATH = f"metadata.annotations[{NODE_SELECTOR}]"


@pytest.mark.parametrize(
    ("value", "label"),
    [
        ("rack=r1", ("rack", "r1")),
        ("kubernetes.io/hostname=kind-worker2", ("kubernetes.io/hostname", "kind-worker2")),
        (" rack = r1 ", ("rack", "r1")),  # the injector trims key and value
        ("master", ("master", "")),  # one part: a key with the empty value, as the injector reads it
        ("gpu=", ("gpu", "")),
    ],
)
def test_a_valid_node_selector_is_admitted_and_injected_as_one_label(tmp_path: Path, value: str, label: tuple[str, str]) -> None:
    net = nad("placed", **{NODE_SELECTOR: value})
    assert validate(admission(), net).allowed
    handler = admission(net, injectNodeSelector=True)
    after = mutated(handler, pod({NETWORKS: "placed"}))
    assert after["spec"]["nodeSelector"] == dict([label])
    assert validate(handler, after).allowed  # /validate runs after /mutate and agrees
    assert check(tmp_path, net, pod({NETWORKS: "placed"}), policy={"injectNodeSelector": True}) == (0, [])


BAD_SELECTORS = [
    ("rack=r1=a", f"has more than one '=' (got \"rack=r1=a\"); {NODE_SELECTOR_FORM}"),
    ("a=b,c=d", f"has more than one '=' (got \"a=b,c=d\"); {NODE_SELECTOR_FORM}"),
    ("rack=r1,r2", 'has an invalid label value (got "rack=r1,r2"): ' + str(names.check_label_value("r1,r2"))),
    ("rack=" + "v" * 64, f'has an invalid label value (got {names.show("rack=" + "v" * 64)}): '
                         + str(names.check_label_value("v" * 64))),
    ("my rack=r1", 'has an invalid label key (got "my rack=r1"): ' + str(names.check_label_key("my rack"))),
    ("=r1", 'has an invalid label key (got "=r1"): ' + str(names.check_label_key(""))),
    ("", 'has an invalid label key (got ""): ' + str(names.check_label_key(""))),
]


@pytest.mark.parametrize(("value", "message"), BAD_SELECTORS)
def test_a_nad_with_an_invalid_node_selector_is_rejected_naming_the_pair(tmp_path: Path, value: str, message: str) -> None:
    net = nad("placed", **{NODE_SELECTOR: value})
    assert lines(validate(admission(), net)) == [f"{NS_PATH}: {message}"]
    code, findings = check(tmp_path, net)
    assert code == 1 and found(findings, "error") == [f"{NS_PATH}: {message}"]


def test_the_rule_messages_name_the_bad_part_and_what_is_accepted() -> None:
    assert BAD_SELECTORS[2][1] == (
        'has an invalid label value (got "rack=r1,r2"): "r1,r2" is not a valid label value (it contains \',\'); '
        "use at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit, or an empty value"
    )


def test_a_pod_selecting_a_nad_admitted_with_an_invalid_selector_is_denied_and_never_patched() -> None:
    # The NAD predates the rule (it is in the index, not re-admitted).
    handler = admission(nad("placed", **{NODE_SELECTOR: "rack=r1=a"}), injectNodeSelector=True)
    web = pod({NETWORKS: "placed"})
    assert "nodeSelector" not in mutated(handler, web)["spec"]
    assert lines(validate(handler, web)) == [
        f'{NP}[0].name: network "default/placed" cannot be attached: its NetworkAttachmentDefinition\'s '
        f"annotation {NODE_SELECTOR} {BAD_SELECTORS[0][1]}; fix the NetworkAttachmentDefinition"
    ]
    assert lines(validate(handler, deployment({NETWORKS: "placed"}))) == [
        f'spec.template.{NP}[0].name: network "default/placed" cannot be attached: its NetworkAttachmentDefinition\'s '
        f"annotation {NODE_SELECTOR} {BAD_SELECTORS[0][1]}; fix the NetworkAttachmentDefinition"
    ]
    # without injectNodeSelector the label is never read, so it cannot break the pod
    assert validate(admission(nad("placed", **{NODE_SELECTOR: "rack=r1=a"})), web).allowed


def test_a_pod_whose_own_node_selector_contradicts_a_nad_is_denied_naming_the_nad_and_the_key(tmp_path: Path) -> None:
    net = nad("placed", **{NODE_SELECTOR: "rack=r1"})
    handler = admission(net, injectNodeSelector=True)
    message = (
        'contradicts the node label that network "default/placed" needs (got "r2", its '
        f'{NODE_SELECTOR} annotation asks for rack="r1"); no node matches both: set rack to "r1", '
        "remove it, or select another network"
    )
    web = pod({NETWORKS: "placed"}, node_selector={"rack": "r2", "zone": "a"})
    after = mutated(handler, web)
    assert after["spec"]["nodeSelector"] == {"rack": "r2", "zone": "a"}  # the pod's value is never overwritten
    assert lines(validate(handler, after)) == [f"spec.nodeSelector[rack]: {message}"]
    template = deployment({NETWORKS: "placed"}, node_selector={"rack": "r2"})
    assert lines(validate(handler, template)) == [f"spec.template.spec.nodeSelector[rack]: {message}"]
    code, findings = check(tmp_path, net, web, policy={"injectNodeSelector": True})
    assert code == 1 and found(findings, "error") == [f"spec.nodeSelector[rack]: {message}"]


def test_two_nads_that_need_different_values_of_one_label_deny_the_pod(tmp_path: Path) -> None:
    east = nad("east", **{NODE_SELECTOR: "rack=r1"})
    west = nad("west", **{NODE_SELECTOR: "rack=r2"})
    handler = admission(east, west, nad("plain"), injectNodeSelector=True)
    web = pod({NETWORKS: "east, plain, west"})
    message = (
        f'{NP}[2].name: network "default/west" needs node label rack="r2" but network "default/east" '
        f'(element [0]) needs rack="r1" (their {NODE_SELECTOR} annotations); no node matches both: '
        "select networks whose node labels agree"
    )
    assert "nodeSelector" not in mutated(handler, web)["spec"]
    assert lines(validate(handler, web)) == [message]
    assert lines(validate(handler, deployment({NETWORKS: "east, plain, west"}))) == ["spec.template." + message]
    code, findings = check(tmp_path, east, west, nad("plain"), web, policy={"injectNodeSelector": True})
    assert code == 1 and found(findings, "error") == [message]
    # the same label with the same value twice is fine
    same = admission(east, nad("east2", **{NODE_SELECTOR: "rack=r1"}), injectNodeSelector=True)
    after = mutated(same, pod({NETWORKS: "east, east2"}))
    assert after["spec"]["nodeSelector"] == {"rack": "r1"} and validate(same, after).allowed


# ------------------------------------------------------------ resource names


RN_PATH = f"metadata.annotations[{RESOURCE_NAME}]"


@pytest.mark.parametrize("value", ["sriov", "intel.com/sriov netdevice", "kubernetes.io/sriov", "a/b/c"])
def test_a_nad_with_an_invalid_resource_name_is_rejected(tmp_path: Path, value: str) -> None:
    net = nad("dev", **{RESOURCE_NAME: value})
    message = f"{RN_PATH}: has an invalid resource name (got {names.show(value)}): {names.check_extended_resource_name(value)}"
    assert lines(validate(admission(), net)) == [message]
    code, findings = check(tmp_path, net)
    assert code == 1 and found(findings, "error") == [message]


def test_every_configured_resource_name_key_is_checked(tmp_path: Path) -> None:
    key = "example.com/bridgeName"
    net = nad("ovs", **{key: "br 0", RESOURCE_NAME: "intel.com/sriov"})
    message = (f"metadata.annotations[{key}]: has an invalid resource name (got \"br 0\"): "
               f"{names.check_extended_resource_name('br 0')}")
    assert lines(validate(admission(resourceNameKeys=[RESOURCE_NAME, key]), net)) == [message]
    assert validate(admission(), net).allowed  # not a key this webhook reads
    code, findings = check(tmp_path, net, policy={"resourceNameKeys": [RESOURCE_NAME, key]})
    assert code == 1 and found(findings, "error") == [message]


def test_an_empty_resource_name_is_a_warning_because_it_injects_nothing() -> None:
    verdict = validate(admission(), nad("dev", **{RESOURCE_NAME: ""}))
    assert verdict.allowed
    assert warnings(verdict) == [
        f'{RN_PATH}: is empty (got ""), so pods selecting this network get no device resource from it; name '
        'the device plugin\'s resource, e.g. "intel.com/sriov_netdevice", or remove the annotation'
    ]


def test_a_pod_selecting_a_nad_with_an_invalid_resource_name_is_denied_and_gets_no_resource(tmp_path: Path) -> None:
    old = nad("dev", **{RESOURCE_NAME: "sriov"})
    handler = admission(old)
    web = pod({NETWORKS: "dev"})
    assert mutated(handler, web) == web  # nothing the API server would refuse
    message = (
        f'{NP}[0].name: network "default/dev" cannot be attached: its NetworkAttachmentDefinition\'s annotation '
        f'{RESOURCE_NAME} has an invalid resource name (got "sriov"): {names.check_extended_resource_name("sriov")}; '
        "fix the NetworkAttachmentDefinition"
    )
    assert lines(validate(handler, web)) == [message]
    assert lines(validate(handler, deployment({NETWORKS: "dev"}))) == ["spec.template." + message]
    code, findings = check(tmp_path, web, nads=[old])  # netplexctl check --nads DIR: NADs not judged themselves
    assert code == 1 and found(findings, "error") == [message]
    good = admission(nad("dev", **{RESOURCE_NAME: "intel.com/sriov"}))
    after = mutated(good, web)
    assert after["spec"]["containers"][0]["resources"] == {"requests": {"intel.com/sriov": "1"},
                                                           "limits": {"intel.com/sriov": "1"}}
    assert validate(good, after).allowed


def test_a_remembered_verdict_is_not_reused_for_a_pod_with_another_node_selector() -> None:
    # Pod CREATE verdicts are memoized (every replica asks the same question); the pod's
    # own nodeSelector is part of the question now.
    handler = admission(nad("placed", **{NODE_SELECTOR: "rack=r1"}), injectNodeSelector=True)
    assert validate(handler, pod({NETWORKS: "placed"}, node_selector={"rack": "r1"})).allowed
    assert validate(handler, pod({NETWORKS: "placed"}, node_selector={"rack": "r1"})).allowed
    assert not validate(handler, pod({NETWORKS: "placed"}, node_selector={"rack": "r2"})).allowed
    assert not validate(handler, pod({NETWORKS: "placed"}, node_selector={"rack": ["r1"]})).allowed  # type: ignore[dict-item]
