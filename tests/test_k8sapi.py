"""The API server double (tests.k8sapi), refereed by the official ``kubernetes`` client.

If the official client reads the double's answers the way it reads a real server's (typed
models, ``ApiException`` status and body, watch events, its own 410 handling), the double is
honest for the calls netplex makes. Raw ``http.client`` tests pin the wire format itself.
"""

from __future__ import annotations

import base64
import http.client
import json
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from tests.k8sapi import (
    ApiError,
    FakeApiServer,
    iter_watch_lines,
    make_nad,
    make_namespace,
    make_pod,
    make_tls_material,
)

GROUP, VERSION, PLURAL = "k8s.cni.cncf.io", "v1", "network-attachment-definitions"
NAD_PATH = f"/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}"
MODIFIED = "the object has been modified; please apply your changes to the latest version and try again"
UNAUTHORIZED = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "Unauthorized", "reason": "Unauthorized", "code": 401}


@dataclass
class Clients:
    core: client.CoreV1Api
    custom: client.CustomObjectsApi


def connect(api: FakeApiServer, tmp_path: Path, name: str = "kubeconfig", **kubeconfig: Any) -> Clients:
    """Official clients configured only from a kubeconfig the double wrote."""
    return clients_from(api.kubeconfig(tmp_path / name, **kubeconfig))


def clients_from(path: Path) -> Clients:
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(path), client_configuration=configuration)
    configuration.retries = 0  # a refused TLS handshake must fail now, not after urllib3's retries
    api_client = client.ApiClient(configuration)
    return Clients(client.CoreV1Api(api_client), client.CustomObjectsApi(api_client))


def status_of(exc: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body)
    return body


def raw(api: FakeApiServer, method: str, path: str, body: bytes | None = None,
        headers: dict[str, str] | None = None, token: str | None = "test-token") -> tuple[int, Any, http.client.HTTPResponse]:
    host, port = api.address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    sent = dict(headers or {})
    if token:
        sent["Authorization"] = f"Bearer {token}"
    conn.request(method, path, body=body, headers=sent)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    streamed = response.getheader("Transfer-Encoding") == "chunked"
    return response.status, data if streamed or not data else json.loads(data), response


def take(stream: Iterator[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """The first ``count`` events, then hang up (no waiting for the watch's timeout)."""
    events = []
    for event in stream:
        events.append(event)
        if len(events) == count:
            break
    return events


def watch_in_background(stream: Callable[[], Iterator[dict[str, Any]]], stop_after: int) -> tuple[list[Any], threading.Thread]:
    events: list[Any] = []

    def run() -> None:
        try:
            for event in stream():
                events.append(event)
                if len(events) >= stop_after:
                    return
        except ApiException as exc:
            events.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return events, thread


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with FakeApiServer() as server:
        yield server


@pytest.fixture
def k8s(api: FakeApiServer, tmp_path: Path) -> Clients:
    return connect(api, tmp_path)


# --------------------------------------------------------------------------- NADs


def test_nad_created_with_custom_objects_api_reads_back_with_server_set_metadata(api: FakeApiServer, k8s: Clients) -> None:
    sent = make_nad("macvlan-a", config={"cniVersion": "1.0.0", "type": "macvlan", "master": "eth0"})
    created = k8s.custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, sent)
    read = k8s.custom.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "macvlan-a")
    assert read == created == api.get(PLURAL, "default", "macvlan-a")
    meta = read["metadata"]
    assert meta["resourceVersion"] == api.resource_version and meta["resourceVersion"].isdigit()
    assert meta["generation"] == 1 and meta["namespace"] == "default"
    assert len(meta["uid"]) == 36 and meta["creationTimestamp"].endswith("Z")
    assert read["spec"] == sent["spec"]
    assert api.requests_matching("POST", NAD_PATH)[0].status == 201


def test_nad_list_is_a_typed_list_that_carries_the_collection_resource_version(api: FakeApiServer, k8s: Clients) -> None:
    api.create(make_namespace("blue"))
    api.create(make_nad("a", "default", config="{}"))
    api.create(make_nad("b", "blue", config="{}"))
    one = k8s.custom.list_namespaced_custom_object(GROUP, VERSION, "blue", PLURAL)
    every = k8s.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
    assert [i["metadata"]["name"] for i in one["items"]] == ["b"]
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in every["items"]] == [("blue", "b"), ("default", "a")]
    assert every["kind"] == "NetworkAttachmentDefinitionList" and every["apiVersion"] == f"{GROUP}/{VERSION}"
    assert every["metadata"]["resourceVersion"] == api.resource_version
    assert all(i["kind"] == "NetworkAttachmentDefinition" for i in every["items"])  # CR items keep their kind


def test_nad_merge_patch_bumps_generation_only_when_something_outside_metadata_changes(api: FakeApiServer, k8s: Clients) -> None:
    created = api.create(make_nad("a", config='{"type":"bridge"}'))
    labelled = k8s.custom.patch_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "a",
                                                         {"metadata": {"labels": {"tier": "data"}}})
    reconfigured = k8s.custom.patch_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "a",
                                                             {"spec": {"config": '{"type":"macvlan"}'}})
    assert api.requests_matching("PATCH")[0].header("Content-Type") == "application/merge-patch+json"
    assert labelled["metadata"]["generation"] == 1 and reconfigured["metadata"]["generation"] == 2
    assert int(created["metadata"]["resourceVersion"]) < int(labelled["metadata"]["resourceVersion"]) \
        < int(reconfigured["metadata"]["resourceVersion"])
    assert reconfigured["metadata"]["labels"] == {"tier": "data"}


def test_duplicate_nad_is_409_already_exists_naming_the_group_qualified_resource(api: FakeApiServer, k8s: Clients) -> None:
    api.create(make_nad("a", config="{}"))
    with pytest.raises(ApiException) as caught:
        k8s.custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, make_nad("a", config="{}"))
    assert caught.value.status == 409
    assert status_of(caught.value) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "code": 409,
        "message": f'{PLURAL}.{GROUP} "a" already exists', "reason": "AlreadyExists",
        "details": {"name": "a", "group": GROUP, "kind": PLURAL},
    }


def test_missing_nad_is_404_naming_the_group_qualified_resource(k8s: Clients) -> None:
    with pytest.raises(ApiException) as caught:
        k8s.custom.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "ghost")
    assert caught.value.status == 404
    body = status_of(caught.value)
    assert (body["reason"], body["message"]) == ("NotFound", f'{PLURAL}.{GROUP} "ghost" not found')
    assert body["details"] == {"name": "ghost", "group": GROUP, "kind": PLURAL}


def test_strategic_merge_patch_of_a_nad_is_415_as_for_every_custom_resource(api: FakeApiServer, k8s: Clients) -> None:
    api.create(make_nad("a", config="{}"))
    with pytest.raises(ApiException) as caught:
        k8s.custom.patch_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "a", {"metadata": {"labels": {"x": "y"}}},
                                                  _content_type="application/strategic-merge-patch+json")
    assert caught.value.status == 415
    assert status_of(caught.value)["reason"] == "UnsupportedMediaType"
    assert status_of(caught.value)["message"] == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml")


def test_nad_whose_config_is_not_a_string_is_422_invalid_with_the_crd_schema_message(k8s: Clients) -> None:
    bad = make_nad("a")
    bad["spec"] = {"config": {"type": "bridge"}, "unknownField": 1}
    with pytest.raises(ApiException) as caught:
        k8s.custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, bad)
    assert caught.value.status == 422
    body = status_of(caught.value)
    assert body["message"] == (f'NetworkAttachmentDefinition.{GROUP} "a" is invalid: spec.config: '
                               'Invalid value: "object": spec.config in body must be of type string: "object"')
    assert body["details"]["causes"] == [{"reason": "FieldValueTypeInvalid", "field": "spec.config",
                                          "message": 'Invalid value: "object": spec.config in body must be of type string: "object"'}]


def test_nad_unknown_fields_are_pruned_like_the_crd_structural_schema_does(k8s: Clients) -> None:
    sent = make_nad("a", config="{}")
    sent["spec"]["unknownField"] = 1
    sent["extra"] = True
    created = k8s.custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, sent)
    assert created["spec"] == {"config": "{}"} and "extra" not in created


def test_nad_replace_without_resource_version_is_422_because_crds_forbid_unconditional_updates(api: FakeApiServer, k8s: Clients) -> None:
    api.create(make_nad("a", config="{}"))
    with pytest.raises(ApiException) as caught:
        k8s.custom.replace_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "a", make_nad("a", config='{"x":1}'))
    assert caught.value.status == 422
    assert status_of(caught.value)["message"] == (
        f'NetworkAttachmentDefinition.{GROUP} "a" is invalid: metadata.resourceVersion: '
        "Invalid value: 0x0: must be specified for an update")


def test_deleting_a_nad_answers_a_success_status_while_deleting_a_pod_answers_the_pod(api: FakeApiServer, k8s: Clients) -> None:
    nad = api.create(make_nad("a", config="{}"))
    api.create(make_pod("p"))
    status = k8s.custom.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "a")
    pod = k8s.core.delete_namespaced_pod("p", "default")
    assert status == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                      "details": {"name": "a", "group": GROUP, "kind": PLURAL, "uid": nad["metadata"]["uid"]}}
    assert pod.metadata.name == "p" and pod.metadata.resource_version == api.resource_version
    assert api.get(PLURAL, "default", "a") is None and api.get("pods", "default", "p") is None


# --------------------------------------------------------------------------- pods


def test_pod_is_stored_exactly_as_the_client_wrote_it_plus_server_metadata(api: FakeApiServer, k8s: Clients) -> None:
    sent = make_pod("web", annotations={"k8s.v1.cni.cncf.io/networks": "macvlan-a"}, labels={"app": "web"})
    k8s.core.create_namespaced_pod("default", sent)
    stored = api.get("pods", "default", "web")
    assert stored is not None
    server_fields = {"uid", "resourceVersion", "creationTimestamp"}
    assert set(stored["metadata"]) - set(sent["metadata"]) == server_fields
    assert {k: v for k, v in stored["metadata"].items() if k not in server_fields} == sent["metadata"]
    assert stored["spec"] == sent["spec"] and "status" not in stored  # no defaulting, no status
    assert api.requests_matching("POST")[0].json() == sent
    listed = json.loads(k8s.core.list_namespaced_pod("default", _preload_content=False).data)
    assert listed["kind"] == "PodList" and "kind" not in listed["items"][0]  # built-in items carry no kind


def test_missing_pod_is_404_not_found_with_the_real_status_body(k8s: Clients) -> None:
    with pytest.raises(ApiException) as caught:
        k8s.core.read_namespaced_pod("ghost", "default")
    assert caught.value.status == 404
    assert status_of(caught.value) == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                       "message": 'pods "ghost" not found', "reason": "NotFound",
                                       "details": {"name": "ghost", "kind": "pods"}, "code": 404}


def test_pod_create_in_a_missing_namespace_is_404_for_the_namespace(k8s: Clients) -> None:
    with pytest.raises(ApiException) as caught:
        k8s.core.create_namespaced_pod("nowhere", make_pod("p", "nowhere"))
    assert caught.value.status == 404
    assert status_of(caught.value)["message"] == 'namespaces "nowhere" not found'


def test_pod_with_an_invalid_name_is_422_invalid_naming_the_field(k8s: Clients) -> None:
    with pytest.raises(ApiException) as caught:
        k8s.core.create_namespaced_pod("default", make_pod("Bad_Name"))
    body = status_of(caught.value)
    assert caught.value.status == 422 and body["reason"] == "Invalid"
    assert body["message"].startswith('Pod "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": '
                                      "a lowercase RFC 1123 subdomain must consist of")
    assert body["details"]["causes"][0]["field"] == "metadata.name"


def test_replace_with_a_stale_resource_version_is_409_conflict(api: FakeApiServer, k8s: Clients) -> None:
    api.create(make_pod("p"))
    stale = k8s.core.read_namespaced_pod_status("p", "default")
    k8s.core.patch_namespaced_pod("p", "default", {"metadata": {"labels": {"moved": "on"}}})
    stale.metadata.annotations = {"k8s.v1.cni.cncf.io/network-status": "[]"}
    with pytest.raises(ApiException) as caught:
        k8s.core.replace_namespaced_pod_status("p", "default", stale)
    assert caught.value.status == 409
    body = status_of(caught.value)
    assert (body["reason"], body["message"]) == ("Conflict", f'Operation cannot be fulfilled on pods "p": {MODIFIED}')
    assert body["details"] == {"name": "p", "kind": "pods"}


def test_patch_carrying_a_stale_resource_version_is_409_and_a_current_one_applies(api: FakeApiServer, k8s: Clients) -> None:
    created = api.create(make_pod("p"))
    old_rv = created["metadata"]["resourceVersion"]
    current = k8s.core.patch_namespaced_pod("p", "default", {"metadata": {"labels": {"a": "1"}}}).metadata.resource_version
    with pytest.raises(ApiException) as caught:
        k8s.core.patch_namespaced_pod_status(
            "p", "default", {"metadata": {"resourceVersion": old_rv, "annotations": {"x": "y"}}},
            _content_type="application/merge-patch+json")
    assert caught.value.status == 409 and status_of(caught.value)["message"].endswith(MODIFIED)
    applied = k8s.core.patch_namespaced_pod_status(
        "p", "default", {"metadata": {"resourceVersion": current, "annotations": {"x": "y"}}},
        _content_type="application/merge-patch+json")
    assert applied.metadata.annotations == {"x": "y"}


def test_uid_in_a_put_is_a_precondition_and_in_a_patch_an_immutable_field(api: FakeApiServer, k8s: Clients) -> None:
    api.create(make_pod("p"))
    other = "00000000-0000-0000-0000-000000000000"
    pod = k8s.core.read_namespaced_pod("p", "default")
    real = pod.metadata.uid
    pod.metadata.uid = other
    with pytest.raises(ApiException) as put:
        k8s.core.replace_namespaced_pod("p", "default", pod)
    assert put.value.status == 409 and status_of(put.value)["message"] == (
        f'Operation cannot be fulfilled on pods "p": Precondition failed: UID in precondition: {other}, '
        f"UID in object meta: {real}")
    with pytest.raises(ApiException) as patch:
        k8s.core.patch_namespaced_pod_status("p", "default", {"metadata": {"uid": other, "annotations": {"a": "1"}}},
                                             _content_type="application/merge-patch+json")
    assert patch.value.status == 422 and status_of(patch.value)["message"] == (
        f'Pod "p" is invalid: metadata.uid: Invalid value: "{other}": field is immutable')
    same = k8s.core.patch_namespaced_pod_status("p", "default", {"metadata": {"uid": real, "annotations": {"a": "1"}}},
                                                _content_type="application/merge-patch+json")
    assert same.metadata.annotations == {"a": "1"}


def test_merge_patch_of_pod_status_annotations_keeps_other_keys_and_null_deletes_one(api: FakeApiServer, k8s: Clients) -> None:
    api.create(make_pod("p", annotations={"keep": "1", "drop": "2"}))
    patched = k8s.core.patch_namespaced_pod_status(
        "p", "default", {"metadata": {"annotations": {"drop": None, "k8s.v1.cni.cncf.io/network-status": "[]"}}},
        _content_type="application/merge-patch+json")
    assert patched.metadata.annotations == {"keep": "1", "k8s.v1.cni.cncf.io/network-status": "[]"}
    assert api.requests_matching("PATCH", r"/api/v1/namespaces/default/pods/p/status")[0].header(
        "Content-Type") == "application/merge-patch+json"


def test_json_patch_of_pod_status_annotations_adds_a_slash_escaped_key(api: FakeApiServer, k8s: Clients) -> None:
    api.create(make_pod("p", annotations={"keep": "1"}))
    ops = [{"op": "add", "path": "/metadata/annotations/k8s.v1.cni.cncf.io~1network-status", "value": "[]"}]
    patched = k8s.core.patch_namespaced_pod_status("p", "default", ops)
    assert patched.metadata.annotations == {"keep": "1", "k8s.v1.cni.cncf.io/network-status": "[]"}
    assert api.requests_matching("PATCH")[0].header("Content-Type") == "application/json-patch+json"


def test_failed_json_patch_test_operation_is_422_invalid_with_the_generic_message(api: FakeApiServer, k8s: Clients) -> None:
    api.create(make_pod("p", annotations={"a": "1"}))
    ops = [{"op": "test", "path": "/metadata/annotations/a", "value": "2"},
           {"op": "replace", "path": "/metadata/annotations/a", "value": "3"}]
    with pytest.raises(ApiException) as caught:
        k8s.core.patch_namespaced_pod("p", "default", ops)
    assert caught.value.status == 422
    body = status_of(caught.value)
    assert (body["reason"], body["message"]) == ("Invalid", "the server rejected our request due to an error in our request")
    unchanged = api.get("pods", "default", "p")
    assert unchanged is not None and unchanged["metadata"]["annotations"] == {"a": "1"}


def test_client_default_dict_patch_is_strategic_merge_and_a_list_in_it_is_refused_as_not_modelled(api: FakeApiServer, k8s: Clients) -> None:
    api.create(make_pod("p"))
    patched = k8s.core.patch_namespaced_pod("p", "default", {"metadata": {"annotations": {"a": "1"}}})
    assert patched.metadata.annotations == {"a": "1"}
    assert api.requests_matching("PATCH")[0].header("Content-Type") == "application/strategic-merge-patch+json"
    with pytest.raises(ApiException) as caught:
        k8s.core.patch_namespaced_pod("p", "default", {"spec": {"containers": [{"name": "app", "image": "x"}]}})
    assert caught.value.status == 500
    assert status_of(caught.value)["message"] == (
        "Internal error occurred: tests.k8sapi does not model strategic-merge-patch list semantics "
        "(list at spec.containers); send a merge or JSON patch")


def test_status_subresource_keeps_the_spec_and_the_pod_endpoint_keeps_the_status(api: FakeApiServer, k8s: Clients) -> None:
    api.create(make_pod("p") | {"status": {"phase": "Pending"}})
    merge = "application/merge-patch+json"
    k8s.core.patch_namespaced_pod_status("p", "default", {"spec": {"nodeName": "n1"}, "status": {"phase": "Running"},
                                                          "metadata": {"annotations": {"via": "status"}}}, _content_type=merge)
    k8s.core.patch_namespaced_pod("p", "default", {"status": {"phase": "Failed"}, "metadata": {"labels": {"via": "pod"}}},
                                  _content_type=merge)
    stored = api.get("pods", "default", "p")
    assert stored is not None
    assert "nodeName" not in stored["spec"] and stored["status"] == {"phase": "Running"}
    assert stored["metadata"]["annotations"] == {"via": "status"} and stored["metadata"]["labels"] == {"via": "pod"}


def test_patch_that_changes_nothing_keeps_the_resource_version_and_sends_no_event(api: FakeApiServer, k8s: Clients) -> None:
    before = api.create(make_pod("p", annotations={"a": "1"}))["metadata"]["resourceVersion"]
    after = k8s.core.patch_namespaced_pod("p", "default", {"metadata": {"annotations": {"a": "1"}}})
    assert after.metadata.resource_version == before == api.resource_version
    api.create(make_pod("q"))
    stream = watch.Watch().stream(k8s.core.list_namespaced_pod, "default", resource_version=before, timeout_seconds=5)
    assert [(e["type"], e["object"].metadata.name) for e in take(stream, 1)] == [("ADDED", "q")]


def test_all_namespace_pod_list_filters_by_label_and_field_selectors(api: FakeApiServer, k8s: Clients) -> None:
    api.create(make_namespace("blue"))
    api.create(make_pod("a", labels={"app": "web", "tier": "front"}, node_name="n1"))
    api.create(make_pod("b", "blue", labels={"app": "web"}, node_name="n2"))
    api.create(make_pod("c", "blue", labels={"app": "db"}, node_name="n1"))

    def names(**selectors: str) -> list[str]:
        return [p.metadata.name for p in k8s.core.list_pod_for_all_namespaces(**selectors).items]

    assert names() == ["b", "c", "a"]  # sorted by namespace/name, as etcd keys are
    assert names(label_selector="app=web") == ["b", "a"]
    assert names(label_selector="app in (web,db),!tier") == ["b", "c"]
    assert names(field_selector="spec.nodeName=n1,metadata.namespace!=default") == ["c"]
    assert names(field_selector="metadata.name=a") == ["a"]
    with pytest.raises(ApiException) as caught:
        names(field_selector="spec.color=red")
    assert caught.value.status == 400 and status_of(caught.value)["message"] == "field label not supported: spec.color"


def test_list_pages_with_limit_and_continue_in_key_order(api: FakeApiServer, k8s: Clients) -> None:
    for ns in ("a", "a-b"):
        api.create(make_namespace(ns))
    for ns, name in (("a", "x"), ("a", "y"), ("a-b", "z")):
        api.create(make_pod(name, ns))
    first = k8s.core.list_pod_for_all_namespaces(limit=2)
    rest = k8s.core.list_pod_for_all_namespaces(limit=2, _continue=first.metadata._continue)
    assert [p.metadata.name for p in first.items] == ["x", "y"] and first.metadata.remaining_item_count == 1
    assert [p.metadata.name for p in rest.items] == ["z"] and not rest.metadata._continue


# --------------------------------------------------------------------------- authentication


def test_rotated_token_turns_the_old_kubeconfig_into_401_unauthorized(api: FakeApiServer, k8s: Clients, tmp_path: Path) -> None:
    k8s.core.list_namespace()
    api.set_token("rotated")
    with pytest.raises(ApiException) as caught:
        k8s.core.list_namespace()
    assert caught.value.status == 401 and status_of(caught.value) == UNAUTHORIZED
    fresh = connect(api, tmp_path, name="fresh")
    assert "default" in [n.metadata.name for n in fresh.core.list_namespace().items]


def test_server_without_a_token_accepts_a_kubeconfig_without_credentials(tmp_path: Path) -> None:
    with FakeApiServer(token=None) as api:
        clients = connect(api, tmp_path)
        assert yaml.safe_load((tmp_path / "kubeconfig").read_text())["users"] == [{"name": "k8sapi", "user": {}}]
        assert [n.metadata.name for n in clients.core.list_namespace().items] == [
            "default", "kube-node-lease", "kube-public", "kube-system"]
        assert api.requests[-1].header("Authorization") is None


# --------------------------------------------------------------------------- watch


def test_watch_from_a_list_resource_version_delivers_added_modified_deleted_in_order(api: FakeApiServer, k8s: Clients) -> None:
    rv = k8s.core.list_namespaced_pod("default").metadata.resource_version
    events, thread = watch_in_background(lambda: watch.Watch().stream(
        k8s.core.list_namespaced_pod, "default", resource_version=rv, timeout_seconds=5), stop_after=3)
    api.wait_for_watches(1)
    k8s.core.create_namespaced_pod("default", make_pod("p"))
    k8s.core.patch_namespaced_pod("p", "default", {"metadata": {"labels": {"a": "1"}}})
    k8s.core.delete_namespaced_pod("p", "default")
    thread.join(5)
    assert [(e["type"], e["object"].metadata.name) for e in events] == [("ADDED", "p"), ("MODIFIED", "p"), ("DELETED", "p")]
    versions = [int(e["object"].metadata.resource_version) for e in events]
    assert versions == sorted(versions) and versions[-1] == int(api.resource_version)


def test_watch_without_resource_version_starts_with_synthetic_added_events(api: FakeApiServer, k8s: Clients) -> None:
    api.create(make_nad("a", config="{}"))
    api.create(make_nad("b", config="{}"))
    events, thread = watch_in_background(lambda: watch.Watch().stream(
        k8s.custom.list_namespaced_custom_object, GROUP, VERSION, "default", PLURAL, timeout_seconds=5), stop_after=3)
    api.wait_for_watches(1)
    api.create(make_nad("c", config="{}"))
    thread.join(5)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "a"), ("ADDED", "b"), ("ADDED", "c")]


def test_watch_from_a_resource_version_not_yet_written_waits_for_it(api: FakeApiServer, k8s: Clients) -> None:
    future = str(int(api.resource_version) + 1)
    events, thread = watch_in_background(lambda: watch.Watch().stream(
        k8s.core.list_namespaced_pod, "default", resource_version=future, timeout_seconds=5), stop_after=1)
    api.wait_for_watches(1)
    api.create(make_pod("at-the-version"))
    api.create(make_pod("after-it"))
    thread.join(5)
    assert [e["object"].metadata.name for e in events] == ["after-it"]


def test_watch_from_a_compacted_resource_version_raises_410_expired(api: FakeApiServer, k8s: Clients) -> None:
    rv = k8s.core.list_namespaced_pod("default").metadata.resource_version
    api.create(make_pod("p"))
    api.compact()
    with pytest.raises(ApiException) as caught:
        list(watch.Watch().stream(k8s.core.list_namespaced_pod, "default", resource_version=rv, timeout_seconds=2))
    assert caught.value.status == 410
    assert caught.value.reason == f"Expired: too old resource version: {rv} ({api.resource_version})"


def test_history_limit_expires_resource_versions_older_than_the_kept_events(tmp_path: Path) -> None:
    with FakeApiServer(history_limit=2) as api:
        clients = connect(api, tmp_path)
        start = api.resource_version
        for name in ("a", "b", "c"):
            api.create(make_pod(name))
        kept = str(int(api.resource_version) - 2)
        replay = watch.Watch().stream(clients.core.list_namespaced_pod, "default", resource_version=kept, timeout_seconds=5)
        assert [e["object"].metadata.name for e in take(replay, 2)] == ["b", "c"]
        with pytest.raises(ApiException) as caught:
            list(watch.Watch().stream(clients.core.list_namespaced_pod, "default", resource_version=start, timeout_seconds=1))
        assert caught.value.status == 410 and "too old resource version" in str(caught.value.reason)


def test_watch_with_a_label_selector_sees_an_object_that_stops_matching_as_deleted(api: FakeApiServer, k8s: Clients) -> None:
    rv = api.resource_version
    events, thread = watch_in_background(lambda: watch.Watch().stream(
        k8s.core.list_namespaced_pod, "default", resource_version=rv, label_selector="app=web", timeout_seconds=5),
        stop_after=2)
    api.wait_for_watches(1)
    api.create(make_pod("other", labels={"app": "db"}))
    api.create(make_pod("p", labels={"app": "web"}))
    k8s.core.patch_namespaced_pod("p", "default", {"metadata": {"labels": {"app": "db"}}})
    thread.join(5)
    assert [(e["type"], e["object"].metadata.name, e["object"].metadata.labels) for e in events] == [
        ("ADDED", "p", {"app": "web"}), ("DELETED", "p", {"app": "db"})]


def test_watch_with_bookmarks_gets_one_carrying_the_latest_resource_version(api: FakeApiServer, k8s: Clients) -> None:
    rv = api.resource_version
    w = watch.Watch()
    events, thread = watch_in_background(lambda: w.stream(
        k8s.core.list_namespaced_pod, "default", resource_version=rv, allow_watch_bookmarks=True, timeout_seconds=5),
        stop_after=2)
    api.wait_for_watches(1)
    api.create(make_pod("p"))
    api.create(make_nad("n", config="{}"))  # another resource's write moves the bookmark on too
    api.bookmark()
    thread.join(5)
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    assert events[1]["raw_object"] == {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": api.resource_version}}
    assert w.resource_version == api.resource_version


def test_watch_list_sends_initial_events_then_the_initial_events_end_bookmark(api: FakeApiServer, k8s: Clients) -> None:
    api.create(make_pod("a"))
    events = take(watch.Watch().stream(k8s.core.list_namespaced_pod, "default", send_initial_events=True,
                                       resource_version_match="NotOlderThan", allow_watch_bookmarks=True,
                                       timeout_seconds=5), 2)
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    assert events[1]["raw_object"]["metadata"] == {"resourceVersion": api.resource_version,
                                                   "annotations": {"k8s.io/initial-events-end": "true"}}
    with pytest.raises(ApiException) as caught:
        list(watch.Watch().stream(k8s.core.list_namespaced_pod, "default", send_initial_events=True, timeout_seconds=1))
    assert caught.value.status == 422
    assert status_of(caught.value)["message"] == (
        'ListOptions.meta.k8s.io "" is invalid: [resourceVersionMatch: Forbidden: sendInitialEvents requires '
        "setting resourceVersionMatch to NotOlderThan, allowWatchBookmarks: Forbidden: sendInitialEvents requires "
        "setting allowWatchBookmarks to true]")


def test_concurrent_writers_get_distinct_resource_versions_and_the_watch_sees_them_in_order(
        api: FakeApiServer, k8s: Clients) -> None:
    for name in ("a", "b", "c", "d"):
        api.create(make_pod(name))
    start = api.resource_version
    events, watcher = watch_in_background(lambda: watch.Watch().stream(
        k8s.core.list_namespaced_pod, "default", resource_version=start, timeout_seconds=10), stop_after=40)
    api.wait_for_watches(1)

    def write(name: str) -> None:
        for i in range(10):
            k8s.core.patch_namespaced_pod(name, "default", {"metadata": {"annotations": {"i": str(i)}}})

    writers = [threading.Thread(target=write, args=(name,)) for name in ("a", "b", "c", "d")]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join(10)
    watcher.join(10)
    versions = [int(e["object"].metadata.resource_version) for e in events]
    assert versions == list(range(int(start) + 1, int(start) + 41))
    assert all(p["metadata"]["annotations"] == {"i": "9"} for p in api.list_objects("pods", "default"))


# --------------------------------------------------------------------------- test controls


def test_fail_next_answers_429_with_retry_after_then_recovers(api: FakeApiServer, k8s: Clients) -> None:
    api.fail_next("GET", r"/api/v1/namespaces/default/pods/.*", 429)
    api.create(make_pod("p"))
    with pytest.raises(ApiException) as caught:
        k8s.core.read_namespaced_pod("p", "default")
    assert caught.value.status == 429 and caught.value.headers["Retry-After"] == "1"
    assert status_of(caught.value)["message"] == "Too many requests, please try again later."
    assert status_of(caught.value)["details"] == {"retryAfterSeconds": 1}
    assert k8s.core.read_namespaced_pod("p", "default").metadata.name == "p"
    assert [r.status for r in api.requests_matching("GET", r".*/pods/p")] == [429, 200]


def test_fail_next_500_counts_down_its_times_and_keeps_a_custom_message(api: FakeApiServer, k8s: Clients) -> None:
    api.fail_next("*", r"/api/v1/namespaces", 500, times=2, message="etcdserver: leader changed")
    for _ in range(2):
        with pytest.raises(ApiException) as caught:
            k8s.core.list_namespace()
        assert caught.value.status == 500
        assert status_of(caught.value)["message"] == "etcdserver: leader changed"
        assert status_of(caught.value)["reason"] == "InternalError"
    assert len(k8s.core.list_namespace().items) == 4


def test_fail_next_410_on_a_watch_arrives_as_an_error_event_like_the_real_server(api: FakeApiServer) -> None:
    api.fail_next("GET", r"/api/v1/namespaces", 410)
    code, body, response = raw(api, "GET", "/api/v1/namespaces?watch=1&resourceVersion=1")
    assert code == 200 and response.getheader("Transfer-Encoding") == "chunked"
    assert list(iter_watch_lines(body)) == [{"type": "ERROR", "object": {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "too old resource version", "reason": "Expired", "code": 410}}]


def test_requests_are_recorded_so_a_test_can_count_calls(api: FakeApiServer, k8s: Clients) -> None:
    api.create(make_pod("p"))
    k8s.core.read_namespaced_pod("p", "default")
    k8s.core.patch_namespaced_pod_status("p", "default", {"metadata": {"annotations": {"a": "1"}}})
    k8s.core.list_namespaced_pod("default", label_selector="app=web")
    gets = api.requests_matching("GET", r"/api/v1/namespaces/default/pods/p")
    assert len(gets) == 1 and gets[0].header("authorization") == "Bearer test-token"
    (patch,) = api.requests_matching("PATCH", r".*/pods/[^/]+/status")
    assert patch.json() == {"metadata": {"annotations": {"a": "1"}}} and patch.status == 200
    (listing,) = api.requests_matching("GET", r"/api/v1/namespaces/default/pods")
    assert listing.param("labelSelector") == "app=web"


def test_delay_holds_matching_requests_until_cleared(api: FakeApiServer, k8s: Clients) -> None:
    api.delay(0.3, "GET", r"/api/v1/namespaces")
    started = time.monotonic()
    k8s.core.list_namespace()
    assert time.monotonic() - started >= 0.3
    api.delay(0)
    started = time.monotonic()
    k8s.core.list_namespace()
    assert time.monotonic() - started < 0.3


def test_python_api_raises_the_status_the_http_side_would_answer(api: FakeApiServer) -> None:
    created = api.create(make_pod("p"))
    api.update(created | {"status": {"phase": "Running"}})  # the test plays the kubelet
    with pytest.raises(ApiError) as caught:
        api.update(created)
    assert caught.value.code == 409 and str(caught.value) == f'Operation cannot be fulfilled on pods "p": {MODIFIED}'
    with pytest.raises(ApiError) as duplicate:
        api.create(make_pod("p"))
    assert duplicate.value.status["reason"] == "AlreadyExists" and str(duplicate.value) == 'pods "p" already exists'
    assert api.get("pods", "default", "ghost") is None and api.delete("pods", "default", "ghost") is None
    with pytest.raises(ValueError, match="cannot store kind 'Service'; served kinds: Event, MutatingWebhookConfiguration, Namespace, "
                       "NetworkAttachmentDefinition, Pod, Secret, ValidatingWebhookConfiguration"):
        api.create({"kind": "Service", "metadata": {"name": "s"}})


def test_deleting_a_namespace_deletes_its_pods_and_nads(api: FakeApiServer, k8s: Clients) -> None:
    api.create(make_namespace("blue", annotations={"netplex.io/max-networks": "2"}))
    api.create(make_pod("p", "blue"))
    api.create(make_nad("n", "blue", config="{}"))
    ns = k8s.core.read_namespace("blue")
    assert ns.metadata.labels == {"kubernetes.io/metadata.name": "blue"} and ns.status.phase == "Active"
    k8s.core.delete_namespace("blue")
    assert api.list_objects("pods", "blue") == [] and api.list_objects(PLURAL, "blue") == []
    assert api.get("namespaces", None, "blue") is None


# --------------------------------------------------------------------------- HTTPS


def test_https_client_trusts_the_ca_from_the_kubeconfig(tmp_path: Path) -> None:
    with FakeApiServer(tls=True) as api:
        assert api.url.startswith("https://127.0.0.1:") and api.ca_pem is not None
        clients = connect(api, tmp_path)
        clients.core.create_namespaced_pod("default", make_pod("p"))
        assert clients.core.read_namespaced_pod("p", "default").metadata.name == "p"
        events = take(watch.Watch().stream(clients.core.list_namespaced_pod, "default", timeout_seconds=5), 1)
        assert [(e["type"], e["object"].metadata.name) for e in events] == [("ADDED", "p")]


def test_https_server_is_refused_by_a_client_that_does_not_trust_its_ca(tmp_path: Path) -> None:
    with FakeApiServer(tls=True) as api:
        path = api.kubeconfig(tmp_path / "kubeconfig")
        doc = yaml.safe_load(path.read_text())
        doc["clusters"][0]["cluster"]["certificate-authority-data"] = base64.b64encode(make_tls_material().ca_pem).decode()
        path.write_text(yaml.safe_dump(doc))  # a kubeconfig naming another CA
        clients = clients_from(path)
        with pytest.raises(urllib3.exceptions.MaxRetryError) as caught:
            clients.core.list_namespace()
        assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
        host, port = api.address.rsplit(":", 1)
        conn = http.client.HTTPSConnection(host, int(port), context=ssl.create_default_context(), timeout=5)
        with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
            conn.request("GET", "/version")


def test_json_kubeconfig_is_read_by_the_official_client(api: FakeApiServer, tmp_path: Path) -> None:
    clients = connect(api, tmp_path, fmt="json")
    doc = json.loads((tmp_path / "kubeconfig").read_text())
    assert doc["clusters"][0]["cluster"]["server"] == api.url and doc["users"][0]["user"] == {"token": "test-token"}
    assert len(clients.core.list_namespace().items) == 4


# --------------------------------------------------------------------------- wire format


POD_PATH = "/api/v1/namespaces/default/pods"
STATUS_CASES = {
    "missing pod is 404 naming it": (
        "GET", f"{POD_PATH}/ghost", None, {}, 404, "NotFound", 'pods "ghost" not found'),
    "unknown resource is 404 for the path": (
        "GET", "/api/v1/namespaces/default/widgets", None, {}, 404, "NotFound",
        "the server could not find the requested resource"),
    "patch with a plain json content type is 415": (
        "PATCH", f"{POD_PATH}/p", b"{}", {"Content-Type": "application/json"}, 415, "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, "
        "application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json"),
    "json patch that is an object is 400": (
        "PATCH", f"{POD_PATH}/p", b"{}", {"Content-Type": "application/json-patch+json"}, 400, "BadRequest",
        "json: cannot unmarshal object into Go value of type jsonpatch.Patch"),
    "create with a body that is not json is 400": (
        "POST", POD_PATH, b"{not json", {"Content-Type": "application/json"}, 400, "BadRequest",
        "the object provided is unrecognized (must be of type Pod): couldn't get version/kind; json parse error: "
        "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
    "create carrying a resourceVersion is a bare 500 from storage": (
        "POST", POD_PATH, b'{"metadata":{"name":"x","resourceVersion":"3"}}', {}, 500, None,
        "resourceVersion should not be set on objects to be created"),
    "create without a name is 422 invalid": (
        "POST", POD_PATH, b'{"metadata":{}}', {"Content-Type": "application/json"}, 422, "Invalid",
        'Pod "" is invalid: metadata.name: Required value: name or generateName is required'),
    "create with another namespace in the body is 400": (
        "POST", POD_PATH, b'{"metadata":{"name":"x","namespace":"blue"}}', {}, 400, "BadRequest",
        "the namespace of the provided object does not match the namespace sent on the request"),
    "put with another name in the body is 400": (
        "PUT", f"{POD_PATH}/p", b'{"metadata":{"name":"q"}}', {}, 400, "BadRequest",
        "the name of the object (q) does not match the name on the URL (p)"),
    "deletecollection is 405": (
        "DELETE", POD_PATH, None, {}, 405, "MethodNotAllowed",
        "the server does not allow this method on the requested resource"),
    "server-side apply is 415 saying it is not modelled": (
        "PATCH", f"{POD_PATH}/p", b"{}", {"Content-Type": "application/apply-patch+yaml"}, 415, "UnsupportedMediaType",
        "tests.k8sapi does not model server-side apply (application/apply-patch+yaml); the real API server accepts it"),
    "delete with a stale precondition is 409": (
        "DELETE", f"{POD_PATH}/p", b'{"preconditions":{"resourceVersion":"1"}}', {}, 409, "Conflict",
        'Operation cannot be fulfilled on pods "p": the ResourceVersion in the precondition (1) does not match '
        "the ResourceVersion in record (5). The object might have been modified"),
}


@pytest.mark.parametrize(("method", "path", "body", "headers", "code", "reason", "message"),
                         list(STATUS_CASES.values()), ids=list(STATUS_CASES))
def test_raw_error_bodies_are_real_status_objects(api: FakeApiServer, method: str, path: str, body: bytes | None,
                                                  headers: dict[str, str], code: int, reason: str | None,
                                                  message: str) -> None:
    api.create(make_pod("p"))
    assert api.resource_version == "5"  # four default namespaces, then the pod
    got_code, got, _ = raw(api, method, path, body, headers)
    assert got_code == code
    assert {k: got.get(k) for k in ("kind", "apiVersion", "status", "code", "reason", "message")} == {
        "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": message}


def test_raw_request_with_a_wrong_or_missing_token_is_401_with_the_exact_body(api: FakeApiServer) -> None:
    for token in ("wrong", None):
        code, body, _ = raw(api, "GET", "/api/v1/namespaces", token=token)
        assert (code, body) == (401, UNAUTHORIZED)


def test_raw_watch_is_chunked_json_lines_ending_at_its_timeout_with_a_bookmark(api: FakeApiServer) -> None:
    api.create(make_pod("p"))
    started = time.monotonic()
    code, body, response = raw(api, "GET", f"{POD_PATH}?watch=true&timeoutSeconds=1&allowWatchBookmarks=true")
    assert 0.9 < time.monotonic() - started < 3
    assert code == 200 and response.getheader("Content-Type") == "application/json"
    assert response.getheader("Transfer-Encoding") == "chunked"
    added, bookmark = iter_watch_lines(body)
    assert added["type"] == "ADDED" and added["object"]["kind"] == "Pod" and added["object"]["metadata"]["name"] == "p"
    assert bookmark == {"type": "BOOKMARK", "object": {"kind": "Pod", "apiVersion": "v1",
                                                       "metadata": {"resourceVersion": api.resource_version}}}


def test_raw_watch_timeout_must_be_an_integer_as_on_the_real_server(api: FakeApiServer) -> None:
    code, body, _ = raw(api, "GET", f"{POD_PATH}?watch=1&timeoutSeconds=0.5")
    assert (code, body["reason"], body["message"]) == (400, "BadRequest", 'strconv.ParseInt: parsing "0.5": invalid syntax')


def test_discovery_documents_list_the_served_resources(api: FakeApiServer) -> None:
    assert raw(api, "GET", "/api")[1]["versions"] == ["v1"]
    assert raw(api, "GET", "/version")[1]["gitVersion"].startswith("v1.")
    groups = raw(api, "GET", "/apis")[1]["groups"]
    assert [g["preferredVersion"]["groupVersion"] for g in groups] == ["admissionregistration.k8s.io/v1",
                                                                        f"{GROUP}/{VERSION}"]
    core = {r["name"]: r for r in raw(api, "GET", "/api/v1")[1]["resources"]}
    assert set(core) == {"pods", "pods/status", "namespaces", "secrets", "events"} and core["namespaces"]["namespaced"] is False
    admission = raw(api, "GET", "/apis/admissionregistration.k8s.io/v1")[1]["resources"]
    assert [(r["name"], r["namespaced"]) for r in admission] == [("mutatingwebhookconfigurations", False),
                                                                 ("validatingwebhookconfigurations", False)]
    nads = raw(api, "GET", f"/apis/{GROUP}/{VERSION}")[1]["resources"]
    assert [(r["name"], r["kind"], r["shortNames"]) for r in nads] == [(PLURAL, "NetworkAttachmentDefinition", ["net-attach-def"])]


# ----------------------------------------------------- command line (python -m tests.k8sapi)

REPO = Path(__file__).resolve().parents[1]


def test_command_line_serves_the_loaded_objects_and_logs_each_request_until_sigterm(tmp_path: Path) -> None:
    """For trying netplex by hand (README): objects from YAML and JSON files, a kubeconfig the
    official client works with, the CA for curl, one line per request, exit 0 on SIGTERM."""
    (tmp_path / "objects.yaml").write_text(yaml.safe_dump_all([
        make_namespace("blue"), make_nad("n1", "blue", config={"cniVersion": "1.0.0", "type": "bridge"})]))
    (tmp_path / "pod.json").write_text(json.dumps(make_pod("web", "blue")))
    kubeconfig, ca = tmp_path / "kubeconfig", tmp_path / "ca.pem"
    proc = subprocess.Popen([sys.executable, "-m", "tests.k8sapi", "--kubeconfig", str(kubeconfig), "--ca-file",
                             str(ca), "--load", str(tmp_path / "objects.yaml"), str(tmp_path / "pod.json")],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while not kubeconfig.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the double did not start"
            time.sleep(0.05)
        pod = clients_from(kubeconfig).core.read_namespaced_pod("web", "blue")
        assert pod.metadata.uid and pod.metadata.namespace == "blue"
        assert ca.read_text().startswith("-----BEGIN CERTIFICATE-----")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, out
    lines = out.splitlines()
    assert lines[:3] == ["created Namespace blue", "created NetworkAttachmentDefinition blue/n1",
                         "created Pod blue/web"]
    assert lines[3].startswith("serving https://127.0.0.1:") and lines[3].endswith(f"; kubeconfig: {kubeconfig}")
    assert lines[4:] == ["GET /api/v1/namespaces/blue/pods/web 200", "stopped"]


def test_command_line_refuses_an_object_with_the_doubles_own_message_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "nad.json"
    bad.write_text(json.dumps({**make_nad("n1"), "spec": {"config": {"type": "bridge"}}}))
    done = subprocess.run([sys.executable, "-m", "tests.k8sapi", "--kubeconfig", str(tmp_path / "kubeconfig"),
                           "--load", str(bad)], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr.startswith(f"python -m tests.k8sapi: {bad}: 422 Invalid: ")
    assert "spec.config" in done.stderr
    assert not (tmp_path / "kubeconfig").exists()
