"""The API double's Secrets and webhook configurations follow the real server's rules.

``certs.kube`` is only tested against the double, so the double's answers for these two
resources are checked here over raw HTTP: codes, reasons, messages, resourceVersions.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
from typing import Any

from tests.k8sapi import FakeApiServer, make_secret

SECRETS = "/api/v1/namespaces/netplex-system/secrets"
MUTATING = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"


def call(api: FakeApiServer, method: str, path: str, body: Any = None,
         content_type: str = "application/json") -> tuple[int, dict[str, Any]]:
    host, port = api.address.rsplit(":", 1)
    assert api.ca_pem is not None
    conn = http.client.HTTPSConnection(host, int(port), timeout=5,
                                       context=ssl.create_default_context(cadata=api.ca_pem.decode()))
    headers = {"Authorization": "Bearer test-token", "Content-Type": content_type}
    conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
    response = conn.getresponse()
    data = json.loads(response.read())
    conn.close()
    return response.status, data


def status(body: dict[str, Any]) -> tuple[str, str]:
    return body["reason"], body["message"]


def test_a_secret_is_created_with_the_default_type_and_string_data_folded_into_data(api: FakeApiServer) -> None:
    code, body = call(api, "POST", SECRETS, {"metadata": {"name": "s"}, "stringData": {"a": "hello"},
                                             "data": {"b": base64.b64encode(b"bye").decode()}})

    assert code == 201
    assert body["type"] == "Opaque" and "stringData" not in body
    assert body["data"] == {"a": "aGVsbG8=", "b": "Ynll"}
    assert body["metadata"]["resourceVersion"] == str(int(api.resource_version))
    assert "generation" not in body["metadata"]


def test_creating_it_twice_is_409_already_exists_and_a_missing_one_is_404(api: FakeApiServer) -> None:
    call(api, "POST", SECRETS, make_secret("s", "netplex-system"))

    code, body = call(api, "POST", SECRETS, make_secret("s", "netplex-system"))
    assert (code, status(body)) == (409, ("AlreadyExists", 'secrets "s" already exists'))
    assert body["details"] == {"name": "s", "kind": "secrets"}
    code, body = call(api, "GET", f"{SECRETS}/ghost")
    assert (code, status(body)) == (404, ("NotFound", 'secrets "ghost" not found'))


def test_a_tls_secret_needs_both_keys(api: FakeApiServer) -> None:
    code, body = call(api, "POST", SECRETS, make_secret("t", "netplex-system", type="kubernetes.io/tls",
                                                        data={"ca.crt": b"x"}))

    assert (code, status(body)) == (422, ("Invalid", 'Secret "t" is invalid: [data[tls.crt]: Required value, '
                                                     "data[tls.key]: Required value]"))
    assert [c["field"] for c in body["details"]["causes"]] == ["data[tls.crt]", "data[tls.key]"]


def test_a_secret_keeps_its_type(api: FakeApiServer) -> None:
    _, created = call(api, "POST", SECRETS, make_secret("s", "netplex-system", data={"tls.crt": b"c", "tls.key": b"k"}))
    changed = dict(created, type="kubernetes.io/tls")

    code, body = call(api, "PUT", f"{SECRETS}/s", changed)

    assert (code, status(body)) == (422, ("Invalid", 'Secret "s" is invalid: type: Invalid value: '
                                                     '"kubernetes.io/tls": field is immutable'))


def test_a_stale_resource_version_is_a_conflict(api: FakeApiServer) -> None:
    _, created = call(api, "POST", SECRETS, make_secret("s", "netplex-system", data={"k": b"1"}))
    call(api, "PUT", f"{SECRETS}/s", dict(created, data={"k": "Mg=="}))

    code, body = call(api, "PUT", f"{SECRETS}/s", dict(created, data={"k": "Mw=="}))

    assert (code, body["reason"]) == (409, "Conflict")
    assert body["message"] == ('Operation cannot be fulfilled on secrets "s": the object has been modified; '
                               "please apply your changes to the latest version and try again")


def test_data_that_is_not_base64_cannot_be_decoded(api: FakeApiServer) -> None:
    code, body = call(api, "POST", SECRETS, {"metadata": {"name": "s"}, "data": {"k": "not base64!"}})

    assert (code, body["reason"]) == (400, "BadRequest")


def test_a_data_key_must_be_a_config_key(api: FakeApiServer) -> None:
    code, body = call(api, "POST", SECRETS, {"metadata": {"name": "s"}, "stringData": {"a/b": "x"}})

    assert code == 422
    assert body["details"]["causes"] == [{"reason": "FieldValueInvalid", "field": "data[a/b]", "message": (
        "Invalid value: \"a/b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
        "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')")}]


def test_deleting_a_secret_answers_a_success_status(api: FakeApiServer) -> None:
    _, created = call(api, "POST", SECRETS, make_secret("s", "netplex-system"))

    code, body = call(api, "DELETE", f"{SECRETS}/s")

    assert code == 200
    assert body["status"] == "Success"
    assert body["details"] == {"name": "s", "kind": "secrets", "uid": created["metadata"]["uid"]}


def test_webhook_configurations_are_cluster_scoped_with_a_generation(api: FakeApiServer) -> None:
    code, config = call(api, "GET", f"{MUTATING}/netplex-mutating")
    assert code == 200 and "namespace" not in config["metadata"]
    assert config["metadata"]["generation"] == 1

    code, patched = call(api, "PATCH", f"{MUTATING}/netplex-mutating",
                         [{"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": "Y2E="}],
                         "application/json-patch+json")
    assert code == 200 and patched["metadata"]["generation"] == 2
    assert int(patched["metadata"]["resourceVersion"]) > int(config["metadata"]["resourceVersion"])

    code, listing = call(api, "GET", MUTATING)
    assert [(i.get("kind"), i["metadata"]["name"]) for i in listing["items"]] == [(None, "netplex-mutating")]
    code, body = call(api, "GET", f"{MUTATING}/ghost")
    assert (code, status(body)) == (404, ("NotFound", 'mutatingwebhookconfigurations.admissionregistration.k8s.io '
                                                      '"ghost" not found'))


def test_a_json_patch_whose_resource_version_test_fails_is_422(api: FakeApiServer) -> None:
    code, body = call(api, "PATCH", f"{MUTATING}/netplex-mutating",
                      [{"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
                       {"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": "Y2E="}],
                      "application/json-patch+json")

    assert (code, body["reason"]) == (422, "Invalid")
    _, config = call(api, "GET", f"{MUTATING}/netplex-mutating")
    assert "caBundle" not in config["webhooks"][0]["clientConfig"]


def test_a_ca_bundle_that_is_not_base64_cannot_be_decoded(api: FakeApiServer) -> None:
    code, body = call(api, "PATCH", f"{MUTATING}/netplex-mutating",
                      [{"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": "-----BEGIN"}],
                      "application/json-patch+json")

    assert (code, body["reason"]) == (400, "BadRequest")
