"""core/v1 Events in the API test double (tests.k8sapi), refereed by the official ``kubernetes``
client: what the node daemon's EventPoster relies on, with kube-apiserver's own rules."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from plugin.cni import k8s
from plugin.cni.kubeconfig import Connection
from tests.k8sapi import FakeApiServer, make_event, make_namespace, make_pod


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with FakeApiServer() as server:
        server.create(make_namespace("blue"))
        yield server


@pytest.fixture
def core(api: FakeApiServer, tmp_path: Path) -> client.CoreV1Api:
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(api.kubeconfig(tmp_path / "kubeconfig")),
                            client_configuration=configuration)
    configuration.retries = 0
    return client.CoreV1Api(client.ApiClient(configuration))


def post_raw(api: FakeApiServer, namespace: str, event: dict[str, Any]) -> dict[str, Any]:
    """POST as plain JSON (the official client refuses to send some of the bodies tested here)."""
    plain = k8s.Client(Connection(server=api.url, token="test-token"), attempts=1)
    return plain.call("POST", f"/api/v1/namespaces/{namespace}/events", body=json.dumps(event).encode())


def status_of(exc: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body)
    return body


def pod_event(api: FakeApiServer, namespace: str = "blue", **changes: Any) -> dict[str, Any]:
    pod = api.get("pods", namespace, "web") or api.create(make_pod("web", namespace))
    event = make_event(pod, "AddedInterface", "Add net1 [10.1.1.5/24] from blue/macvlan-conf")
    event.update(changes)
    return event


def test_an_event_is_created_read_and_listed_in_its_namespace_and_across_namespaces(
        api: FakeApiServer, core: client.CoreV1Api) -> None:
    event = pod_event(api)
    created = core.create_namespaced_event("blue", event)
    assert created.metadata.uid and created.metadata.resource_version
    assert created.involved_object.name == "web" and created.reason == "AddedInterface"
    read = core.read_namespaced_event(event["metadata"]["name"], "blue")
    assert read.message == "Add net1 [10.1.1.5/24] from blue/macvlan-conf"
    assert read.count == 1 and read.event_time is None
    core.create_namespaced_event("default", pod_event(api, "default"))
    assert [e.metadata.namespace for e in core.list_namespaced_event("blue").items] == ["blue"]
    assert sorted(e.metadata.namespace for e in core.list_event_for_all_namespaces().items) == ["blue", "default"]


def test_events_are_found_by_field_selector_on_the_pod_and_the_reason(api: FakeApiServer,
                                                                     core: client.CoreV1Api) -> None:
    core.create_namespaced_event("blue", pod_event(api))
    core.create_namespaced_event("blue", pod_event(api, reason="NoNetworkFound", type="Warning"))
    found = core.list_namespaced_event("blue", field_selector="involvedObject.name=web,reason=NoNetworkFound")
    assert [(e.reason, e.type) for e in found.items] == [("NoNetworkFound", "Warning")]
    by_source = core.list_namespaced_event("blue", field_selector="source=tests")
    assert len(by_source.items) == 2
    assert core.list_namespaced_event("blue", field_selector="involvedObject.name=other").items == []


def test_a_repeated_event_name_is_409_already_exists(api: FakeApiServer, core: client.CoreV1Api) -> None:
    event = pod_event(api)
    core.create_namespaced_event("blue", event)
    with pytest.raises(ApiException) as info:
        core.create_namespaced_event("blue", event)
    assert info.value.status == 409
    assert status_of(info.value)["reason"] == "AlreadyExists"
    assert status_of(info.value)["message"] == f'events "{event["metadata"]["name"]}" already exists'


def test_an_event_whose_involved_object_is_in_another_namespace_is_422(api: FakeApiServer,
                                                                      core: client.CoreV1Api) -> None:
    event = pod_event(api)
    event["involvedObject"]["namespace"] = "default"
    with pytest.raises(ApiException) as info:
        core.create_namespaced_event("blue", event)
    status = status_of(info.value)
    assert (info.value.status, status["reason"]) == (422, "Invalid")
    assert status["message"] == (f'Event "{event["metadata"]["name"]}" is invalid: involvedObject.namespace: '
                                 'Invalid value: "default": does not match event.namespace')
    assert status["details"]["causes"] == [{"reason": "FieldValueInvalid", "field": "involvedObject.namespace",
                                            "message": 'Invalid value: "default": does not match event.namespace'}]


def test_a_missing_involved_object_is_422_outside_default_and_accepted_in_default(
        api: FakeApiServer, core: client.CoreV1Api) -> None:
    """legacyValidateEvent: an empty involvedObject.namespace only fits event namespace "" or default."""
    event = pod_event(api)
    del event["involvedObject"]
    with pytest.raises(k8s.ApiError) as info:
        post_raw(api, "blue", event)
    assert (info.value.status, info.value.reason) == (422, "Invalid")
    assert info.value.message == (f'Event "{event["metadata"]["name"]}" is invalid: involvedObject.namespace: '
                                  'Invalid value: "": does not match event.namespace')
    event["metadata"]["namespace"] = "default"
    assert post_raw(api, "default", event)["metadata"]["namespace"] == "default"


def test_a_legacy_event_without_reason_is_accepted_as_the_real_server_does(api: FakeApiServer,
                                                                          core: client.CoreV1Api) -> None:
    event = pod_event(api)
    del event["reason"]
    assert core.create_namespaced_event("blue", event).reason is None


def test_an_event_with_event_time_needs_the_reporting_fields_action_and_reason(
        api: FakeApiServer, core: client.CoreV1Api) -> None:
    event = pod_event(api, eventTime="2026-12-04T16:18:15.123456Z", message="x" * 1025)
    del event["reason"]
    with pytest.raises(ApiException) as info:
        core.create_namespaced_event("blue", event)
    causes = [(c["field"], c["message"]) for c in status_of(info.value)["details"]["causes"]]
    assert info.value.status == 422
    assert causes == [("reportingController", "Required value"), ("reportingInstance", "Required value"),
                      ("action", "Required value"), ("reason", "Required value"),
                      ("message", 'Invalid value: "": can have at most 1024 characters')]
    complete = pod_event(api, eventTime="2026-12-04T16:18:15.123456Z", reportingComponent="netplex-node",
                         reportingInstance="node-1", action="Add")
    assert core.create_namespaced_event("blue", complete).action == "Add"


def test_an_event_in_a_missing_namespace_is_404_naming_the_namespace(api: FakeApiServer,
                                                                     core: client.CoreV1Api) -> None:
    event = pod_event(api)
    event["metadata"]["namespace"] = "nowhere"
    event["involvedObject"]["namespace"] = "nowhere"
    with pytest.raises(ApiException) as info:
        core.create_namespaced_event("nowhere", event)
    assert (info.value.status, status_of(info.value)["message"]) == (404, 'namespaces "nowhere" not found')


def test_a_timestamp_that_is_not_rfc3339_is_400(api: FakeApiServer, core: client.CoreV1Api) -> None:
    event = pod_event(api, firstTimestamp="yesterday")
    with pytest.raises(k8s.ApiError) as info:
        post_raw(api, "blue", event)
    assert (info.value.status, info.value.reason) == (400, "BadRequest")
    assert info.value.message == ('Event in version "v1" cannot be handled as a Event: firstTimestamp: '
                                  'parsing time "yesterday" as RFC 3339 failed')
    assert api.list_objects("events", "blue") == []


def test_event_names_are_checked_as_path_segments_only(api: FakeApiServer, core: client.CoreV1Api) -> None:
    ok = pod_event(api)
    ok["metadata"]["name"] = "Web_Pod.ABC"  # not a DNS subdomain, still a valid Event name
    assert core.create_namespaced_event("blue", ok).metadata.name == "Web_Pod.ABC"
    bad = pod_event(api)
    bad["metadata"]["name"] = "a%b"
    with pytest.raises(ApiException) as info:
        core.create_namespaced_event("blue", bad)
    assert status_of(info.value)["message"] == 'Event "a%b" is invalid: metadata.name: Invalid value: "a%b": may not contain \'%\''


def test_deleting_an_event_answers_a_success_status(api: FakeApiServer, core: client.CoreV1Api) -> None:
    event = pod_event(api)
    core.create_namespaced_event("blue", event)
    gone = core.delete_namespaced_event(event["metadata"]["name"], "blue")
    assert gone["status"] == "Success"
    assert gone["details"]["kind"] == "events"
    assert api.list_objects("events", "blue") == []
