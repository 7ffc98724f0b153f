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
