"""The real ``netplex-webhook`` process with its real rules, over HTTPS on loopback.

The README's run command (``--self-signed --nads examples/``) is started as a user
would start it; the reviews are shaped like the API server's (tests/webhook/conftest.py).
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.webhook.conftest import admission_review
from webhook.server import read_ca_banner
from webhook.workers import children_of

REPO = Path(__file__).resolve().parents[2]
NETWORKS = "k8s.v1.cni.cncf.io/networks"


class Webhook:
    def __init__(self, args: list[str], tmp_path: Path) -> None:
        self.stderr_path = tmp_path / "webhook.log"
        self._stderr = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "webhook.server", "--self-signed", "--host", "127.0.0.1", "--port", "0", *args],
            cwd=REPO, stdout=subprocess.PIPE, stderr=self._stderr,
        )
        assert self.proc.stdout is not None
        banner = read_ca_banner(self.proc.stdout, timeout=30)
        if banner is None:
            raise AssertionError(f"webhook did not start:\n{self.stderr_path.read_text()}")
        url, pem = banner
        self.ca_pem = pem
        self.client = httpx.Client(base_url=url, verify=ssl.create_default_context(cadata=pem), timeout=20)

    def review(self, endpoint: str, obj: dict[str, Any], **kw: Any) -> dict[str, Any]:
        response = self.client.post(endpoint, json=admission_review(obj, **kw))
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()["response"]
        return answer

    def close(self) -> None:
        self.client.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self._stderr.close()


@pytest.fixture(scope="module")
def webhook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webhook]:
    server = Webhook(["--nads", "examples"], tmp_path_factory.mktemp("webhook"))
    try:
        yield server
    finally:
        server.close()


def pod(networks: str | None, namespace: str = "default", name: str = "app") -> dict[str, Any]:
    annotations = {NETWORKS: networks} if networks is not None else {}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "spec": {"containers": [{"name": "app", "image": "nginx", "resources": {}}]},
    }


def test_pod_with_a_typo_is_denied_with_the_field_and_a_suggestion(webhook: Webhook) -> None:
    answer = webhook.review("/validate", pod("macvlan-cnf"))
    assert answer["allowed"] is False
    assert answer["status"]["message"] == (
        'metadata.annotations[k8s.v1.cni.cncf.io/networks][0].name: no NetworkAttachmentDefinition '
        '"macvlan-cnf" in namespace "default"; did you mean "macvlan-conf"?'
    )
    assert answer["status"]["details"]["causes"][0]["field"] == (
        "metadata.annotations[k8s.v1.cni.cncf.io/networks][0].name"
    )


def test_pod_selecting_example_networks_is_allowed(webhook: Webhook) -> None:
    answer = webhook.review("/validate", pod("macvlan-conf, bridge-conf@data0"))
    assert answer == {"uid": answer["uid"], "allowed": True}


def test_v1beta1_reviews_get_the_same_verdict(webhook: Webhook) -> None:
    response = webhook.client.post("/validate", json=admission_review(pod("a/b/c"), api_version="admission.k8s.io/v1beta1"))
    body = response.json()
    assert body["apiVersion"] == "admission.k8s.io/v1beta1"
    assert body["response"]["allowed"] is False
    assert '"a/b/c"' in body["response"]["status"]["message"]


def test_namespace_allow_list_from_examples_is_enforced(webhook: Webhook) -> None:
    answer = webhook.review("/validate", pod("default/macvlan-conf", namespace="tenant-a"))
    assert answer["allowed"] is False
    assert 'network "default/macvlan-conf" is not allowed in namespace "tenant-a"' in answer["status"]["message"]


def test_namespace_default_networks_are_injected_by_the_mutating_endpoint(webhook: Webhook) -> None:
    original = pod(None, namespace="tenant-a")
    answer = webhook.review("/mutate", copy.deepcopy(original))
    assert answer["patchType"] == "JSONPatch"
    ops = json.loads(base64.b64decode(answer["patch"]))
    assert ops == [{"op": "add", "path": "/metadata/annotations/k8s.v1.cni.cncf.io~1networks",
                    "value": "shared/storage-net"}]


def test_device_resources_are_injected_for_sriov_networks(webhook: Webhook) -> None:
    answer = webhook.review("/mutate", pod("sriov-net, sriov-net@net5"))
    ops = json.loads(base64.b64decode(answer["patch"]))
    assert {"op": "add", "path": "/spec/containers/0/resources/requests",
            "value": {"intel.com/sriov_netdevice": "2"}} in ops
    assert {"op": "add", "path": "/spec/containers/0/resources/limits",
            "value": {"intel.com/sriov_netdevice": "2"}} in ops


def test_pod_without_networks_gets_no_patch(webhook: Webhook) -> None:
    answer = webhook.review("/mutate", pod(None))
    assert "patch" not in answer and answer["allowed"] is True


def test_nad_with_a_path_as_type_is_denied(webhook: Webhook) -> None:
    nad = {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
           "metadata": {"name": "evil", "namespace": "default"},
           "spec": {"config": '{"cniVersion": "0.3.1", "type": "../../bin/sh"}'}}
    answer = webhook.review("/validate", nad)
    assert answer["allowed"] is False
    assert answer["status"]["message"].startswith(
        'spec.config.type: plugin type must be a bare file name, not a path (got "../../bin/sh")'
    )


def test_deployment_template_is_checked_at_apply(webhook: Webhook) -> None:
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
                  "spec": {"template": {"metadata": {"annotations": {NETWORKS: "macvlan-conf@eth0"}}, "spec": {}}}}
    answer = webhook.review("/validate", deployment)
    assert answer["allowed"] is False
    assert answer["status"]["message"].startswith(
        "spec.template.metadata.annotations[k8s.v1.cni.cncf.io/networks][0].interface:"
    )


def test_namespace_policy_typo_is_denied(webhook: Webhook) -> None:
    namespace = {"apiVersion": "v1", "kind": "Namespace",
                 "metadata": {"name": "team", "annotations": {"netplex.io/max-networks": "lots"}}}
    answer = webhook.review("/validate", namespace)
    assert answer["allowed"] is False
    assert 'is not a whole number (got "lots")' in answer["status"]["message"]


def test_changing_networks_of_a_running_pod_is_denied(webhook: Webhook) -> None:
    review = admission_review(pod("bridge-conf"), operation="UPDATE")
    review["request"]["oldObject"] = pod("macvlan-conf")
    answer = webhook.client.post("/validate", json=review).json()["response"]
    assert answer["allowed"] is False
    assert "cannot be changed on an existing pod" in answer["status"]["message"]


def test_ready_and_metrics_reflect_the_example_index(webhook: Webhook) -> None:
    assert webhook.client.get("/readyz").status_code == 200
    metrics = webhook.client.get("/metrics").text
    assert "netplex_webhook_index_size 5.0" in metrics
    assert re.search(r'netplex_webhook_requests_total\{endpoint="validate",kind="Pod",operation="CREATE",'
                     r'outcome="denied"\} [1-9]', metrics)


def test_the_sample_reviews_in_examples_give_what_the_readme_shows(webhook: Webhook) -> None:
    bad = json.loads((REPO / "examples" / "review-bad-pod.json").read_text())
    answer = webhook.client.post("/validate", json=bad).json()["response"]
    assert answer["allowed"] is False
    assert answer["status"]["message"].startswith(
        "metadata.annotations[k8s.v1.cni.cncf.io/networks][0].interface: \"data/1\" is not a valid interface name"
    )
    good = json.loads((REPO / "examples" / "review-mutate-pod.json").read_text())
    answer = webhook.client.post("/mutate", json=good).json()["response"]
    assert json.loads(base64.b64decode(answer["patch"]))[0]["value"] == "tenant-a/data-net@data0,shared/storage-net"


def test_two_workers_share_the_socket_the_certificate_and_the_request_counts(tmp_path: Path) -> None:
    server = Webhook(["--nads", "examples", "--workers", "2"], tmp_path)
    try:
        # the CA is printed before the workers are forked: wait for them
        deadline = time.monotonic() + 30
        while len(workers := children_of(server.proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(workers) == 2
        verify = ssl.create_default_context(cadata=server.ca_pem)

        def burst(count: int) -> None:  # fresh connections: any worker may take each
            for _ in range(count):
                with httpx.Client(base_url=str(server.client.base_url), verify=verify, timeout=20) as fresh:
                    response = fresh.post("/validate", json=admission_review(pod("macvlan-conf")))
                    assert response.status_code == 200 and response.json()["response"]["allowed"] is True

        # Each worker in turn is paused, so both certainly answer some of the requests.
        for paused, count in zip(workers, (7, 5), strict=True):
            os.kill(paused, signal.SIGSTOP)
            try:
                burst(count)
            finally:
                os.kill(paused, signal.SIGCONT)

        def counted() -> float:
            text = httpx.get(f"{server.client.base_url}/metrics", verify=verify, timeout=20).text
            return sum(
                s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
                if s.name == "netplex_webhook_requests_total" and s.labels.get("endpoint") == "validate"
            )

        # whichever worker answers the scrape counts the requests of both
        assert [counted() for _ in range(4)] == [12, 12, 12, 12]
    finally:
        server.client.close()  # an idle TLS connection would hold a worker's graceful stop
        server.proc.terminate()
        assert server.proc.wait(timeout=30) == 0
        server._stderr.close()
    log = server.stderr_path.read_text()
    assert "supervising 2 workers" in log and "stopped by SIGTERM" in log
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]


# -- issue 12: conformance and bad input, one case each over real HTTPS ------------------------

NODE_SELECTOR = "k8s.v1.cni.cncf.io/nodeSelector"
RESOURCE_NAME = "k8s.v1.cni.cncf.io/resourceName"
RES = "intel.com/sriov_netdevice"
CONF = '{"cniVersion": "0.3.1", "type": "bridge"}'


def nad(name: str, **annotations: str) -> dict[str, Any]:
    return {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": name, "namespace": "default", "annotations": annotations},
            "spec": {"config": CONF}}


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Webhook, Path]]:
    """A webhook with injectNodeSelector and honorResources, whose NADs were admitted before
    issue 12's rules (so some are invalid), and a Namespace with a 5000-digit max-networks."""
    import yaml

    root = tmp_path_factory.mktemp("strict")
    nads = root / "nads"
    nads.mkdir()
    objects = [
        nad("racked", **{NODE_SELECTOR: "rack=r1", RESOURCE_NAME: RES}),
        nad("old-selector", **{NODE_SELECTOR: "rack=r1=a"}),
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": "big", "annotations": {"netplex.io/max-networks": "9" * 5000}}},
    ]
    (nads / "objects.yaml").write_text(yaml.safe_dump_all(objects))
    policy = root / "policy.yaml"
    policy.write_text("injectNodeSelector: true\nhonorResources: true\n")
    server = Webhook(["--nads", str(nads), "--policy", str(policy)], root)
    try:
        yield server, policy
    finally:
        server.close()


def test_e2e_an_empty_networks_annotation_is_admitted_with_a_warning(webhook: Webhook) -> None:
    answer = webhook.review("/validate", pod(""))
    assert answer["allowed"] is True
    assert answer["warnings"][0].startswith(
        f'metadata.annotations[{NETWORKS}]: is empty (got ""), so it selects no extra network')


def test_e2e_a_helm_style_deployment_with_an_empty_networks_value_is_admitted_with_a_warning(webhook: Webhook) -> None:
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": "web", "namespace": "default", "labels": {"helm.sh/chart": "web-1.0.0"}},
                  "spec": {"selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}, "annotations": {NETWORKS: ""}},
                                        "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}
    answer = webhook.review("/validate", deployment)
    assert answer["allowed"] is True
    assert answer["warnings"][0].startswith(f"spec.template.metadata.annotations[{NETWORKS}]: is empty")


def test_e2e_an_empty_default_network_annotation_is_denied(webhook: Webhook) -> None:
    obj = pod(None)
    obj["metadata"]["annotations"]["v1.multus-cni.io/default-network"] = ""
    answer = webhook.review("/validate", obj)
    assert answer["status"]["message"].startswith(
        'metadata.annotations[v1.multus-cni.io/default-network]: is empty (got ""); remove the annotation')


def test_e2e_a_nad_with_an_invalid_node_selector_is_denied(webhook: Webhook) -> None:
    answer = webhook.review("/validate", nad("placed", **{NODE_SELECTOR: "rack=r1=a"}))
    assert answer["status"]["code"] == 422
    assert answer["status"]["details"]["causes"][0]["field"] == f"metadata.annotations[{NODE_SELECTOR}]"
    assert answer["status"]["message"].startswith(
        f"metadata.annotations[{NODE_SELECTOR}]: has more than one '=' (got \"rack=r1=a\"); write one node label")


def test_e2e_a_nad_with_an_invalid_resource_name_is_denied(webhook: Webhook) -> None:
    answer = webhook.review("/validate", nad("dev", **{RESOURCE_NAME: "sriov"}))
    assert answer["status"]["message"].startswith(
        f'metadata.annotations[{RESOURCE_NAME}]: has an invalid resource name (got "sriov"): "sriov" is not a '
        "valid extended resource name (it has no domain prefix")


def test_e2e_a_nad_selector_is_injected_and_a_contradiction_or_an_old_invalid_one_denies_the_pod(
    strict: tuple[Webhook, Path]
) -> None:
    server, _ = strict
    ops = json.loads(base64.b64decode(server.review("/mutate", pod("racked"))["patch"]))
    assert {"op": "add", "path": "/spec/nodeSelector", "value": {"rack": "r1"}} in ops
    contradicting = pod("racked")
    contradicting["spec"]["nodeSelector"] = {"rack": "r2"}
    answer = server.review("/validate", contradicting)
    assert answer["status"]["message"].startswith(
        'spec.nodeSelector[rack]: contradicts the node label that network "default/racked" needs (got "r2"')
    old = server.review("/mutate", pod("old-selector"))
    assert "patch" not in old  # never a nodeSelector the API server would refuse
    answer = server.review("/validate", pod("old-selector"))
    assert answer["status"]["message"].startswith(
        f'metadata.annotations[{NETWORKS}][0].name: network "default/old-selector" cannot be attached: its '
        f"NetworkAttachmentDefinition's annotation {NODE_SELECTOR} has more than one '='")


def test_e2e_unpaired_surrogates_get_a_400_or_an_escaped_denial(webhook: Webhook) -> None:
    review = admission_review(pod("\ud800"))
    escaped = json.dumps(review).encode()  # ASCII JSON: the surrogate travels as its escape
    answer = webhook.client.post("/validate", content=escaped, headers={"content-type": "application/json"})
    assert answer.status_code == 200
    assert '"\\ud800" is not a valid network name' in answer.json()["response"]["status"]["message"]
    review["request"]["uid"] = "\udfff"
    refused = webhook.client.post("/validate", content=json.dumps(review).encode(),
                                  headers={"content-type": "application/json"})
    assert refused.status_code == 400
    assert refused.json()["error"].endswith('request.uid must be valid Unicode text, got "\\udfff" (an unpaired surrogate)')


def test_e2e_a_repeated_key_hiding_a_deep_value_is_denied(webhook: Webhook) -> None:
    answer = webhook.review("/validate", pod('[{"name":"macvlan-conf","cni-args":{"x":' + deep(600) + ',"x":{}}}]'))
    assert answer["status"]["message"].startswith(
        f"metadata.annotations[{NETWORKS}]: is nested more than 32 levels deep; at most 32 levels")


def test_e2e_odd_resource_records_and_values_are_answered(strict: tuple[Webhook, Path]) -> None:
    server, _ = strict
    obj = pod("racked")
    obj["metadata"]["annotations"]["netplex.io/injected-resources"] = '{"x":' + deep(3000) + "}"
    assert server.review("/mutate", obj)["allowed"] is True
    obj = pod("racked")
    obj["spec"]["containers"][0]["resources"] = {"requests": {RES: "²"}}
    answer = server.review("/mutate", obj)
    assert answer["warnings"] == [
        f'spec.containers[0].resources.requests[{RES}]: is not a whole number (got "²"); netplex did not add the '
        '1 device(s) the pod\'s networks need: write a count such as "1"']


def test_e2e_a_5000_digit_max_networks_is_denied_and_its_pods_are_answered(
    webhook: Webhook, strict: tuple[Webhook, Path]
) -> None:
    namespace = {"apiVersion": "v1", "kind": "Namespace",
                 "metadata": {"name": "big", "annotations": {"netplex.io/max-networks": "9" * 5000}}}
    answer = webhook.review("/validate", namespace)
    assert answer["status"]["message"].startswith(
        "metadata.annotations[netplex.io/max-networks]: has 5000 digits, more than 18")
    server, _ = strict
    in_big = pod("default/racked", namespace="big")
    assert server.review("/validate", in_big)["allowed"] is True
    assert server.review("/mutate", in_big)["allowed"] is True


def test_e2e_a_policy_replaced_by_a_deep_one_keeps_the_last_good_policy(strict: tuple[Webhook, Path]) -> None:
    server, policy = strict
    good = policy.read_text()
    policy.write_text("globalNamespaces: " + deep(600) + "\n")
    try:
        time.sleep(1.2)  # the policy file is checked at most once a second
        ops = json.loads(base64.b64decode(server.review("/mutate", pod("racked"))["patch"]))
        assert {"op": "add", "path": "/spec/nodeSelector", "value": {"rack": "r1"}} in ops  # still injectNodeSelector
        deadline = time.monotonic() + 10
        while "policy not reloaded" not in server.stderr_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "is nested more than 100 levels deep" in server.stderr_path.read_text()
    finally:
        policy.write_text(good)
