"""The plugin's API client against the Kubernetes API test double, over real HTTPS."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plugin.cni import k8s
from plugin.cni.k8s import ApiError, BadKubeconfig, Client, ConnectionFailed, PodUidMismatch
from plugin.cni.kubeconfig import Connection, KubeconfigError
from tests.k8sapi import FakeApiServer, make_nad, make_namespace, make_pod, make_tls_material

REPO = Path(__file__).resolve().parents[2]
STATUS = "k8s.v1.cni.cncf.io/network-status"


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with FakeApiServer(tls=True) as server:
        server.create(make_namespace("blue"))
        yield server


@pytest.fixture
def kubeconfig_path(api: FakeApiServer, tmp_path: Path) -> str:
    return str(api.kubeconfig(tmp_path / "kubeconfig"))


def client_for(path: str, **kw: Any) -> Client:
    sleeps: list[float] = []
    kw.setdefault("sleep", sleeps.append)
    client = k8s.client_from_config(path, **kw)
    assert client is not None
    return client


def uid_of(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["uid"])


# ------------------------------------------------------------------ GET


def test_pod_is_read_over_https_with_the_ca_data_and_token_of_the_kubeconfig(
    api: FakeApiServer, kubeconfig_path: str,
) -> None:
    created = api.create(make_pod("web", "blue", annotations={"a": "b"}))
    pod = client_for(kubeconfig_path).get_pod("blue", "web")
    assert pod["metadata"]["uid"] == uid_of(created)
    assert pod["metadata"]["annotations"] == {"a": "b"}
    [request] = api.requests
    assert (request.method, request.path) == ("GET", "/api/v1/namespaces/blue/pods/web")
    assert request.header("Authorization") == "Bearer test-token"
    assert request.header("Accept") == "application/json"
    assert request.header("User-Agent") == "netplex-cni"


def test_nad_is_read_from_its_api_group_path(api: FakeApiServer, kubeconfig_path: str) -> None:
    api.create(make_nad("macvlan-a", "blue", config={"cniVersion": "1.0.0", "type": "macvlan"}))
    nad = client_for(kubeconfig_path).get_nad("blue", "macvlan-a")
    assert json.loads(nad["spec"]["config"]) == {"cniVersion": "1.0.0", "type": "macvlan"}
    assert api.requests[-1].path == "/apis/k8s.cni.cncf.io/v1/namespaces/blue/network-attachment-definitions/macvlan-a"


def test_json_kubeconfig_works_the_same(api: FakeApiServer, tmp_path: Path) -> None:
    api.create(make_pod("web"))
    path = str(api.kubeconfig(tmp_path / "kubeconfig.json", fmt="json"))
    assert client_for(path).get_pod("default", "web")["metadata"]["name"] == "web"


def test_missing_pod_is_api_error_404_with_the_api_message(api: FakeApiServer, kubeconfig_path: str) -> None:
    with pytest.raises(ApiError) as info:
        client_for(kubeconfig_path).get_pod("default", "nope")
    assert (info.value.status, info.value.reason, info.value.message) == (404, "NotFound", 'pods "nope" not found')
    assert str(info.value) == 'GET /api/v1/namespaces/default/pods/nope: 404 NotFound: pods "nope" not found'
    assert len(api.requests) == 1  # a 404 is an answer, not weather


def test_missing_nad_names_the_qualified_resource(api: FakeApiServer, kubeconfig_path: str) -> None:
    with pytest.raises(ApiError) as info:
        client_for(kubeconfig_path).get_nad("blue", "absent")
    assert info.value.message == 'network-attachment-definitions.k8s.cni.cncf.io "absent" not found'


# ------------------------------------------------------------------ credentials


def test_rotated_token_works_once_the_kubeconfig_is_rewritten_without_a_new_client(
    api: FakeApiServer, tmp_path: Path,
) -> None:
    api.create(make_pod("web"))
    path = api.kubeconfig(tmp_path / "kubeconfig")
    client = client_for(str(path))
    assert client.get_pod("default", "web")["metadata"]["name"] == "web"
    api.set_token("rotated-token")
    with pytest.raises(ApiError) as info:
        client.get_pod("default", "web")
    assert info.value.status == 401
    api.kubeconfig(path)  # what the token refresher on the node does
    assert client.get_pod("default", "web")["metadata"]["name"] == "web"
    assert api.requests[-1].header("Authorization") == "Bearer rotated-token"


def test_rotated_token_file_is_picked_up_too(api: FakeApiServer, tmp_path: Path) -> None:
    api.create(make_pod("web"))
    path = api.kubeconfig(tmp_path / "kubeconfig", fmt="json")
    doc = json.loads(path.read_text())
    doc["users"][0]["user"] = {"tokenFile": "token"}
    path.write_text(json.dumps(doc))
    (tmp_path / "token").write_text("test-token")
    client = client_for(str(path))
    client.get_pod("default", "web")
    api.set_token("second")
    (tmp_path / "token").write_text("second\n")
    client.get_pod("default", "web")
    assert [r.header("Authorization") for r in api.requests] == ["Bearer test-token", "Bearer second"]


def test_unauthorized_says_the_token_may_have_expired_and_that_the_kubeconfig_is_reread(
    api: FakeApiServer, tmp_path: Path,
) -> None:
    path = api.kubeconfig(tmp_path / "kubeconfig", token="stale")
    with pytest.raises(ApiError) as info:
        client_for(str(path)).get_pod("default", "web")
    assert (info.value.status, info.value.reason, info.value.message) == (401, "Unauthorized", "Unauthorized")
    assert str(info.value) == (
        "GET /api/v1/namespaces/default/pods/web: 401 Unauthorized: Unauthorized; the token may have "
        f"expired or been rotated; netplex re-reads kubeconfig {path} (and its token file) on each call, "
        "so putting a valid token there fixes this without a restart")
    assert len(api.requests) == 1  # not retried


def test_forbidden_names_the_permissions_the_plugin_needs(api: FakeApiServer, kubeconfig_path: str) -> None:
    api.fail_next("GET", r"/api/v1/namespaces/default/pods/web", 403)
    with pytest.raises(ApiError) as info:
        client_for(kubeconfig_path).get_pod("default", "web")
    assert str(info.value) == (
        "GET /api/v1/namespaces/default/pods/web: 403 Forbidden: forbidden: injected by tests.k8sapi; the "
        "plugin's identity needs get on pods and network-attachment-definitions and patch on pods/status")


def test_kubeconfig_broken_after_the_client_was_made_is_reported_per_call(
    api: FakeApiServer, tmp_path: Path,
) -> None:
    path = api.kubeconfig(tmp_path / "kubeconfig")
    client = client_for(str(path))
    path.write_text("current-context: gone\n")
    with pytest.raises(BadKubeconfig) as info:
        client.get_pod("default", "web")
    assert str(info.value) == (
        f"GET /api/v1/namespaces/default/pods/web: kubeconfig {path}: context \"gone\" not found in "
        "contexts (defined: none)")


# ------------------------------------------------------------------ retries


def test_injected_500_is_retried_and_the_call_succeeds(api: FakeApiServer, kubeconfig_path: str) -> None:
    api.create(make_pod("web"))
    api.fail_next("GET", r".*/pods/web", 500)
    sleeps: list[float] = []
    pod = client_for(kubeconfig_path, sleep=sleeps.append, backoff=0.05).get_pod("default", "web")
    assert pod["metadata"]["name"] == "web"
    assert [r.status for r in api.requests] == [500, 200]
    assert sleeps == [0.05]


def test_persistent_503_gives_up_after_three_attempts_with_the_last_status(
    api: FakeApiServer, kubeconfig_path: str,
) -> None:
    api.fail_next("GET", r".*/pods/web", 503, times=5)
    sleeps: list[float] = []
    with pytest.raises(ApiError) as info:
        client_for(kubeconfig_path, sleep=sleeps.append, backoff=0.05).get_pod("default", "web")
    assert str(info.value) == ("GET /api/v1/namespaces/default/pods/web: 503 ServiceUnavailable: "
                               "the server is currently unable to handle the request")
    assert len(api.requests) == 3
    assert sleeps == [0.05, 0.1]


def test_429_waits_for_retry_after(api: FakeApiServer, kubeconfig_path: str) -> None:
    api.create(make_pod("web"))
    api.fail_next("GET", r".*/pods/web", 429)
    sleeps: list[float] = []
    client_for(kubeconfig_path, sleep=sleeps.append, backoff=0.05).get_pod("default", "web")
    assert sleeps == [1.0]


def test_retries_stop_at_the_deadline(api: FakeApiServer, kubeconfig_path: str) -> None:
    api.fail_next("GET", r".*/pods/web", 500, times=5)
    with pytest.raises(ApiError) as info:
        client_for(kubeconfig_path, backoff=5.0, deadline=1.0).get_pod("default", "web")
    assert info.value.status == 500
    assert len(api.requests) == 1


def test_unreachable_server_is_retried_then_reported(tmp_path: Path) -> None:
    with FakeApiServer(tls=True) as gone:
        path = str(gone.kubeconfig(tmp_path / "kubeconfig"))
        url = gone.url
    sleeps: list[float] = []
    with pytest.raises(ConnectionFailed) as info:
        client_for(path, sleep=sleeps.append).get_pod("default", "web")
    assert info.value.status == 503
    assert str(info.value) == (
        f"GET /api/v1/namespaces/default/pods/web: 503 ServiceUnavailable: cannot reach the API server "
        f"{url} after 3 attempts: [Errno 111] Connection refused")
    assert sleeps == [0.2, 0.4]


def test_slow_server_times_out_with_the_configured_timeout(api: FakeApiServer, kubeconfig_path: str) -> None:
    api.delay(0.5, "GET")
    with pytest.raises(ConnectionFailed) as info:
        client_for(kubeconfig_path, timeout=0.1, attempts=1).get_pod("default", "web")
    assert str(info.value) == (
        f"GET /api/v1/namespaces/default/pods/web: 503 ServiceUnavailable: cannot reach the API server "
        f"{api.url}: timed out (The read operation timed out)")


def test_keep_alive_connection_closed_while_idle_is_replaced_without_using_a_retry(
    api: FakeApiServer, kubeconfig_path: str,
) -> None:
    import socket

    api.create(make_pod("web"))
    client = client_for(kubeconfig_path, attempts=1)
    client.get_pod("default", "web")
    transport = client.transport
    assert isinstance(transport, k8s.HttpTransport)
    assert transport._conn is not None and transport._conn.sock is not None
    transport._conn.sock.shutdown(socket.SHUT_RDWR)  # as when the server drops an idle connection
    assert client.get_pod("default", "web")["metadata"]["name"] == "web"
    assert [r.status for r in api.requests] == [200, 200]
    client.close()


# ------------------------------------------------------------------ TLS


def test_server_certificate_from_another_ca_is_refused_without_retrying(api: FakeApiServer, tmp_path: Path) -> None:
    other = make_tls_material()
    path = api.kubeconfig(tmp_path / "kubeconfig", fmt="json")
    doc = json.loads(path.read_text())
    import base64

    doc["clusters"][0]["cluster"]["certificate-authority-data"] = base64.b64encode(other.ca_pem).decode()
    path.write_text(json.dumps(doc))
    with pytest.raises(ConnectionFailed) as info:
        client_for(str(path)).get_pod("default", "web")
    message = str(info.value)
    assert message.startswith(f"GET /api/v1/namespaces/default/pods/web: 503 ServiceUnavailable: cannot reach "
                              f"the API server {api.url}: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    assert message.endswith(f"; check the TLS settings in kubeconfig {path}")


def test_tls_server_name_is_used_for_sni_and_the_certificate_check(api: FakeApiServer, tmp_path: Path) -> None:
    api.create(make_pod("web"))
    path = api.kubeconfig(tmp_path / "kubeconfig", fmt="json")
    doc = json.loads(path.read_text())
    doc["clusters"][0]["cluster"]["tls-server-name"] = "localhost"  # server URL stays 127.0.0.1
    path.write_text(json.dumps(doc))
    assert client_for(str(path)).get_pod("default", "web")["metadata"]["name"] == "web"
    doc["clusters"][0]["cluster"]["tls-server-name"] = "kubernetes.default.svc"
    path.write_text(json.dumps(doc))
    with pytest.raises(ConnectionFailed) as info:
        client_for(str(path)).get_pod("default", "web")
    assert "Hostname mismatch, certificate is not valid for 'kubernetes.default.svc'" in str(info.value)


def test_ssl_context_requires_tls_1_2_and_loads_a_client_certificate_from_a_removed_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tempfile

    material = make_tls_material()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    conn = Connection(server="https://127.0.0.1:1", ca_data=material.ca_pem,
                      client_cert_data=material.cert_pem, client_key_data=material.key_pem)
    context = k8s.ssl_context(conn)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert list(tmp_path.iterdir()) == []


def test_client_key_that_does_not_match_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    one, two = make_tls_material(), make_tls_material()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    conn = Connection(server="https://127.0.0.1:1", client_cert_data=one.cert_pem, client_key_data=two.key_pem,
                      source="kubeconfig /x")
    with pytest.raises(k8s.TransportError) as info:
        k8s.ssl_context(conn)
    assert str(info.value).startswith("the client certificate and key from kubeconfig /x cannot be loaded: "
                                      "[X509: KEY_VALUES_MISMATCH] key values mismatch")
    assert not info.value.retryable
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ PATCH pods/status


def test_status_annotations_are_merge_patched_into_the_pod_status_subresource(
    api: FakeApiServer, kubeconfig_path: str,
) -> None:
    api.create(make_pod("web", annotations={"keep": "me", "drop": "me"}))
    value = json.dumps([{"name": "clusternet", "interface": "eth0", "default": True}])
    answer = client_for(kubeconfig_path).patch_pod_status_annotations(
        "default", "web", {STATUS: value, "drop": None})
    assert answer["metadata"]["annotations"] == {"keep": "me", STATUS: value}
    stored = api.get("pods", "default", "web")
    assert stored is not None and stored["metadata"]["annotations"] == {"keep": "me", STATUS: value}
    [patch] = api.requests_matching("PATCH")
    assert patch.path == "/api/v1/namespaces/default/pods/web/status"
    assert patch.header("Content-Type") == "application/merge-patch+json"
    assert patch.json() == {"metadata": {"annotations": {STATUS: value, "drop": None}}}


def test_status_patch_is_sent_again_on_conflict(api: FakeApiServer, kubeconfig_path: str) -> None:
    api.create(make_pod("web"))
    api.fail_next("PATCH", r".*/pods/web/status", 409, times=2)
    client_for(kubeconfig_path).patch_pod_status_annotations("default", "web", {STATUS: "[]"})
    assert [r.status for r in api.requests_matching("PATCH")] == [409, 409, 200]


def test_status_patch_gives_up_after_repeated_conflicts(api: FakeApiServer, kubeconfig_path: str) -> None:
    api.create(make_pod("web"))
    api.fail_next("PATCH", r".*/pods/web/status", 409, times=10)
    with pytest.raises(ApiError) as info:
        client_for(kubeconfig_path, conflict_attempts=3).patch_pod_status_annotations("default", "web", {STATUS: "[]"})
    assert str(info.value) == (
        "PATCH /api/v1/namespaces/default/pods/web/status: 409 Conflict: the object has been modified; "
        "please apply your changes to the latest version and try again")
    assert len(api.requests_matching("PATCH")) == 3


def test_status_patch_of_a_missing_pod_is_404(api: FakeApiServer, kubeconfig_path: str) -> None:
    with pytest.raises(ApiError) as info:
        client_for(kubeconfig_path).patch_pod_status_annotations("default", "gone", {STATUS: "[]"})
    assert (info.value.status, info.value.message) == (404, 'pods "gone" not found')


# ------------------------------------------------------------------ wait_for_pod


def test_wait_for_pod_retries_a_404_until_the_pod_is_visible(api: FakeApiServer, kubeconfig_path: str) -> None:
    created = api.create(make_pod("web"))
    api.fail_next("GET", r".*/pods/web", 404, times=2)
    sleeps: list[float] = []
    pod = k8s.wait_for_pod(client_for(kubeconfig_path), "default", "web", uid_of(created),
                           attempts=5, delay=0.25, sleep=sleeps.append)
    assert pod is not None and uid_of(pod) == uid_of(created)
    assert sleeps == [0.25, 0.25]


def test_wait_for_pod_returns_none_when_the_pod_never_appears(api: FakeApiServer, kubeconfig_path: str) -> None:
    sleeps: list[float] = []
    assert k8s.wait_for_pod(client_for(kubeconfig_path), "default", "web", None,
                            attempts=3, delay=0.1, sleep=sleeps.append) is None
    assert len(api.requests) == 3
    assert sleeps == [0.1, 0.1]


def test_pod_with_another_uid_is_refused_with_multus_wording(api: FakeApiServer, kubeconfig_path: str) -> None:
    created = api.create(make_pod("web"))
    with pytest.raises(PodUidMismatch) as info:
        k8s.wait_for_pod(client_for(kubeconfig_path), "default", "web", "old-uid", attempts=3, delay=0)
    assert str(info.value) == (
        f'GET /api/v1/namespaces/default/pods/web: 409 PodUidMismatch: expected pod UID "old-uid" but got '
        f'"{uid_of(created)}" from Kube API; the pod was deleted and re-created under the same name '
        "(e.g. by a StatefulSet); this sandbox belongs to the old one")
    assert len(api.requests) == 1


def test_static_pod_uid_is_not_compared(api: FakeApiServer, kubeconfig_path: str) -> None:
    api.create(make_pod("etcd-node1", "kube-system", annotations={"kubernetes.io/config.source": "file"}))
    pod = k8s.wait_for_pod(client_for(kubeconfig_path), "kube-system", "etcd-node1", "kubelet-uid",
                           attempts=1, delay=0)
    assert pod is not None


def test_wait_for_pod_passes_other_errors_on(api: FakeApiServer, tmp_path: Path) -> None:
    path = str(api.kubeconfig(tmp_path / "kubeconfig", token="stale"))
    with pytest.raises(ApiError) as info:
        k8s.wait_for_pod(client_for(path), "default", "web", None, attempts=5, delay=0)
    assert info.value.status == 401
    assert len(api.requests) == 1


# ------------------------------------------------------------------ configuration


def test_no_kubeconfig_and_no_in_cluster_env_gives_no_client() -> None:
    assert k8s.client_from_config(None, environ={}) is None


def test_in_cluster_service_account_reaches_the_api(api: FakeApiServer, tmp_path: Path) -> None:
    api.create(make_pod("web"))
    assert api.ca_pem is not None
    (tmp_path / "token").write_text("test-token")
    (tmp_path / "ca.crt").write_bytes(api.ca_pem)
    host, port = api.address.split(":")
    client = k8s.client_from_config(
        None, environ={"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port},
        token_path=str(tmp_path / "token"), ca_path=str(tmp_path / "ca.crt"))
    assert client is not None
    assert client.get_pod("default", "web")["metadata"]["name"] == "web"


def test_broken_kubeconfig_fails_when_the_client_is_made(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text("users:\n- name: u\n  user:\n    exec:\n      command: x\ncurrent-context: c\n"
                    "contexts:\n- name: c\n  context: {}\n")
    with pytest.raises(KubeconfigError) as info:
        k8s.client_from_config(str(path))
    assert str(info.value) == f'kubeconfig {path}: context "c" names no cluster (got null)'


def test_plain_http_server_is_supported_for_kubectl_proxy_style_setups(tmp_path: Path) -> None:
    with FakeApiServer(tls=False) as plain:
        plain.create(make_pod("web"))
        path = str(plain.kubeconfig(tmp_path / "kubeconfig"))
        assert client_for(path).get_pod("default", "web")["metadata"]["name"] == "web"


# ------------------------------------------------------------------ injected transport


class ScriptedTransport:
    """Answers from a script: a Response, or an exception to raise."""

    def __init__(self, *answers: k8s.Response | BaseException) -> None:
        self.answers = list(answers)
        self.requests: list[k8s.Request] = []

    def __call__(self, request: k8s.Request) -> k8s.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


CONN = Connection(server="https://api.example:6443", token="t")


def ok(obj: Any) -> k8s.Response:
    return k8s.Response(200, {"content-type": "application/json"}, json.dumps(obj).encode())


def test_connection_reset_is_retried_through_an_injected_transport() -> None:
    transport = ScriptedTransport(ConnectionResetError(104, "Connection reset by peer"), ok({"kind": "Pod"}))
    client = Client(CONN, transport=transport, sleep=lambda s: None)
    assert client.get_pod("ns", "p") == {"kind": "Pod"}
    assert [r.url for r in transport.requests] == ["https://api.example:6443/api/v1/namespaces/ns/pods/p"] * 2
    assert transport.requests[0].timeout == 10.0


def test_error_without_a_status_body_uses_the_http_reason_and_body() -> None:
    transport = ScriptedTransport(*[k8s.Response(502, {}, b"<html>bad gateway</html>")] * 3)
    with pytest.raises(ApiError) as info:
        Client(CONN, transport=transport, sleep=lambda s: None).get_nad("ns", "n")
    assert str(info.value) == (
        "GET /apis/k8s.cni.cncf.io/v1/namespaces/ns/network-attachment-definitions/n: 502 BadGateway: "
        "<html>bad gateway</html>")


def test_answer_that_is_not_json_is_reported() -> None:
    transport = ScriptedTransport(k8s.Response(200, {}, b"not json"))
    with pytest.raises(ApiError) as info:
        Client(CONN, transport=transport).get_pod("ns", "p")
    assert str(info.value) == ("GET /api/v1/namespaces/ns/pods/p: 200 InvalidResponse: the answer is not JSON "
                               "(Expecting value: line 1 column 1 (char 0))")


def test_path_segments_are_escaped() -> None:
    transport = ScriptedTransport(ok({}))
    Client(CONN, transport=transport).get_pod("ns", "a/b c")
    assert transport.requests[0].url.endswith("/namespaces/ns/pods/a%2Fb%20c")


def test_non_retryable_transport_error_is_not_retried() -> None:
    transport = ScriptedTransport(k8s.TransportError("bad CA", retryable=False))
    with pytest.raises(ConnectionFailed) as info:
        Client(CONN, transport=transport).get_pod("ns", "p")
    assert str(info.value) == ("GET /api/v1/namespaces/ns/pods/p: 503 ServiceUnavailable: cannot reach the API "
                               "server https://api.example:6443: bad CA; check the TLS settings in the kubeconfig")


# ------------------------------------------------------------------ import cost


def test_importing_the_node_side_modules_loads_neither_ssl_nor_http_client_nor_third_party() -> None:
    probe = (
        "import json, sys\n"
        "before = set(sys.modules)\n"
        "import plugin.cni.k8s, plugin.cni.kubeconfig, plugin.cni.devices\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO)
    loaded = json.loads(out.stdout)
    assert "plugin.cni.k8s" in loaded
    assert not [m for m in loaded if m in ("ssl", "_ssl", "http.client") or m.startswith("http.client")]
    third_party = [m for m in loaded if m.split(".")[0] not in sys.stdlib_module_names and not m.startswith("plugin")]
    assert third_party == []
