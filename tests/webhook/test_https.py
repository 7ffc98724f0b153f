"""The webhook over real HTTPS on loopback, and ``netplex-webhook`` (webhook.server.main).

In-process tests run the production uvicorn server in a thread (``https_server``);
the subprocess tests run ``main()`` itself, print-the-CA, signals and exit code included.
"""

from __future__ import annotations

import base64
import json
import logging
import queue
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from webhook import server, tls
from webhook.app import create_app

from .conftest import (
    PATCH_OPS,
    RunningServer,
    ScriptedHandler,
    admission_review,
    make_leaf,
    pod,
    presented_fingerprint,
    running_server,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def client(https_server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=https_server.url, verify=https_server.client_context(), timeout=10) as c:
        yield c


def post(client: httpx.Client, path: str, review: dict[str, Any]) -> httpx.Response:
    return client.post(path, content=json.dumps(review), headers={"content-type": "application/json"})


# -- AdmissionReview round trips ----------------------------------------------------------


def test_v1_review_is_answered_in_v1_with_the_uid_echoed_and_no_request(client: httpx.Client) -> None:
    resp = post(client, "/validate", admission_review(pod("web"), uid="6f1c1d3e-0c2b-4d59-a1a8-1f0b3e7e9a10"))

    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    assert resp.json() == {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": "6f1c1d3e-0c2b-4d59-a1a8-1f0b3e7e9a10", "allowed": True},
    }


def test_v1beta1_review_is_answered_in_v1beta1(client: httpx.Client) -> None:
    resp = post(client, "/mutate", admission_review(pod("web"), api_version="admission.k8s.io/v1beta1", uid="b-1"))

    body = resp.json()
    assert body["apiVersion"] == "admission.k8s.io/v1beta1"
    assert body["response"]["uid"] == "b-1"
    assert "request" not in body and "request" not in body["response"]


def test_denied_pod_gets_one_line_per_problem_a_cause_each_and_its_warnings(client: httpx.Client) -> None:
    resp = post(client, "/validate", admission_review(pod("bad-web"), uid="d-1"))

    response = resp.json()["response"]
    assert response["allowed"] is False
    assert response["status"]["code"] == 422
    assert response["status"]["reason"] == "Invalid"
    assert response["status"]["message"].splitlines() == [
        'metadata.name: "bad-web" starts with "bad"; pick another name',
        "metadata.annotations[k8s.v1.cni.cncf.io/networks][1].interface: "
        "\"data/1\" is not a valid interface name (contains '/'); use at most 15 characters",
    ]
    assert [c["field"] for c in response["status"]["details"]["causes"]] == [
        "metadata.name",
        "metadata.annotations[k8s.v1.cni.cncf.io/networks][1].interface",
    ]
    assert response["warnings"] == ["metadata.labels: no app label; this pod is hard to select"]


def test_allowed_pod_with_a_warning_carries_it(client: httpx.Client) -> None:
    response = post(client, "/validate", admission_review(pod("warn-me"))).json()["response"]

    assert response["allowed"] is True
    assert response["warnings"] == ['metadata.annotations[k8s.v1.cni.cncf.io/networks]: network "lan" is selected twice']


def test_mutated_pod_patch_decodes_to_the_handler_operations(client: httpx.Client) -> None:
    response = post(client, "/mutate", admission_review(pod("patch-me"), uid="m-1")).json()["response"]

    assert response["uid"] == "m-1"
    assert response["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(response["patch"])) == PATCH_OPS


def test_pod_without_changes_gets_no_patch_at_all(client: httpx.Client) -> None:
    response = post(client, "/mutate", admission_review(pod("web"))).json()["response"]

    assert response == {"uid": response["uid"], "allowed": True}


# -- HTTP errors, JSON bodies -------------------------------------------------------------


def test_handler_failure_is_an_http_500_with_a_json_reason_not_an_allow(client: httpx.Client) -> None:
    resp = post(client, "/mutate", admission_review(pod("boom"), uid="x-500"))

    assert resp.status_code == 500
    assert resp.headers["content-type"] == "application/json"
    assert resp.json() == {"error": "internal error while handling request x-500; see the webhook log", "uid": "x-500"}


def test_review_without_request_is_an_http_400_with_the_reason(client: httpx.Client) -> None:
    resp = post(client, "/validate", {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"})

    assert resp.status_code == 400
    assert resp.json() == {
        "error": "not an AdmissionReview this webhook can answer: "
        "request is missing; an AdmissionReview sent to a webhook must carry one"
    }


def test_text_plain_is_an_http_415_with_the_reason(client: httpx.Client) -> None:
    resp = client.post("/validate", content=b"{}", headers={"content-type": "text/plain; charset=utf-8"})

    assert resp.status_code == 415
    assert resp.json() == {"error": "Content-Type 'text/plain; charset=utf-8' is not supported; expected application/json"}


def test_body_over_the_limit_is_an_http_413_and_the_connection_stays_usable(cert_pair: tls.CertPair, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(cert_pair.ca)
    app = create_app(ScriptedHandler(), max_body=64 * 1024)
    ctx = tls.context_from_pem(cert_pair.cert, cert_pair.key)

    with (
        running_server(app, ctx) as port,
        httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=ssl.create_default_context(cafile=str(ca))) as c,
    ):
        big = c.post("/validate", content=b" " * (64 * 1024 + 1), headers={"content-type": "application/json"})
        after = c.get("/healthz")

    assert big.status_code == 413
    assert big.json() == {"error": "request body of 65537 bytes is larger than the limit of 65536 bytes"}
    assert after.status_code == 200


# -- TLS ----------------------------------------------------------------------------------


def _old_protocol_client(maximum: ssl.TLSVersion) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = maximum
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let OpenSSL 3 actually offer TLS 1.0/1.1
    return ctx


def test_tls_1_1_client_is_refused_while_the_same_client_at_tls_1_2_is_served(https_server: RunningServer) -> None:
    with pytest.raises(ssl.SSLError) as caught:  # noqa: SIM117
        with socket.create_connection(("127.0.0.1", https_server.port), timeout=5) as raw:
            _old_protocol_client(ssl.TLSVersion.TLSv1_1).wrap_socket(raw)

    # asyncio/uvloop close the connection without a protocol_version alert
    assert caught.value.reason == "UNEXPECTED_EOF_WHILE_READING"
    assert "EOF occurred in violation of protocol" in str(caught.value)
    with (
        socket.create_connection(("127.0.0.1", https_server.port), timeout=5) as raw,
        _old_protocol_client(ssl.TLSVersion.TLSv1_2).wrap_socket(raw) as conn,
    ):
        assert conn.version() == "TLSv1.2"


def test_plain_http_on_the_https_port_gets_no_http_answer(https_server: RunningServer) -> None:
    with socket.create_connection(("127.0.0.1", https_server.port), timeout=5) as raw:
        raw.sendall(b"GET /healthz HTTP/1.1\r\nHost: webhook\r\n\r\n")
        answer = raw.recv(100)

    assert not answer.startswith(b"HTTP/")


def test_server_certificate_is_verified_with_the_ca_bundle_for_127_0_0_1(https_server: RunningServer) -> None:
    with httpx.Client(verify=ssl.create_default_context()) as stranger, pytest.raises(httpx.ConnectError) as caught:
        stranger.get(f"{https_server.url}/healthz")

    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    with httpx.Client(verify=https_server.client_context()) as trusting:
        assert trusting.get(f"{https_server.url}/healthz").status_code == 200


# -- health, readiness, metrics -----------------------------------------------------------


def test_healthz_answers_ok(client: httpx.Client) -> None:
    resp = client.get("/healthz")

    assert (resp.status_code, resp.text) == (200, "ok")


def test_readyz_turns_from_503_to_200_when_the_index_syncs(client: httpx.Client, https_server: RunningServer) -> None:
    https_server.handler.is_ready = False
    before = client.get("/readyz")
    https_server.handler.is_ready = True
    after = client.get("/readyz")

    assert (before.status_code, before.json()["reason"]) == (503, "the NetworkAttachmentDefinition index has not synced yet")
    assert (after.status_code, after.json()) == (200, {"ready": True})


def test_metrics_show_preinitialised_series_and_count_requests(client: httpx.Client) -> None:
    post(client, "/validate", admission_review(pod("bad-web")))

    text = client.get("/metrics").text

    assert 'netplex_webhook_requests_total{endpoint="mutate",kind="NetworkAttachmentDefinition",operation="UPDATE",outcome="patched"} 0.0' in text
    assert 'netplex_webhook_requests_total{endpoint="validate",kind="Namespace",operation="CREATE",outcome="error"} 0.0' in text
    assert 'netplex_webhook_requests_total{endpoint="validate",kind="Pod",operation="CREATE",outcome="denied"} 1.0' in text
    assert 'netplex_webhook_request_duration_seconds_bucket{endpoint="validate",le="0.0005"}' in text
    assert "netplex_webhook_index_size 3.0" in text
    assert "netplex_webhook_ready 1.0" in text


# -- main(): flags --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "TLS is required: give --tls-cert and --tls-key, or --self-signed"),
        (["--tls-cert", "c.pem"], "--tls-cert and --tls-key go together; --tls-key is missing"),
        (["--tls-key", "k.pem"], "--tls-cert and --tls-key go together; --tls-cert is missing"),
        (
            ["--self-signed", "--tls-cert", "c.pem", "--tls-key", "k.pem"],
            "--self-signed cannot be combined with --tls-cert/--tls-key; choose one",
        ),
        (["--self-signed", "--workers", "0"], "--workers 0: must be between 1 and 64"),
        (["--self-signed", "--port", "70000"], "--port 70000: must be between 0 and 65535"),
        (["--self-signed", "--max-body", "0"], "--max-body 0: must be a positive number of bytes"),
        (["--self-signed", "--cert-reload-interval", "0"], "--cert-reload-interval 0.0: must be more than 0 seconds"),
    ],
    ids=["no-tls", "cert-only", "key-only", "both", "workers", "port", "max-body", "reload-interval"],
)
def test_main_refuses_bad_flag_combinations_with_exit_2_and_a_usage_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = server.main(argv, build_handler=lambda args: pytest.fail("must not build a handler"))

    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("usage: netplex-webhook")
    assert err.rstrip().endswith(f"netplex-webhook: error: {message}")


def test_main_refuses_an_unknown_flag_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert server.main(["--self-signed", "--frobnicate"]) == 2
    assert "netplex-webhook: error: unrecognized arguments: --frobnicate" in capsys.readouterr().err


def test_main_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert server.main(["--help"]) == 0
    assert "--self-signed" in capsys.readouterr().out


def test_main_with_an_unusable_certificate_exits_1_and_says_why(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="netplex.webhook"):
        code = server.main(
            ["--tls-cert", str(tmp_path / "missing.crt"), "--tls-key", str(tmp_path / "missing.key")],
            build_handler=lambda args: pytest.fail("must not build a handler"),
        )

    assert code == 1
    assert caplog.messages == [
        f"cannot start: cannot load certificate '{tmp_path}/missing.crt' with key "
        f"'{tmp_path}/missing.key': [Errno 2] No such file or directory"
    ]


def test_main_exits_1_when_the_handler_cannot_be_built(caplog: pytest.LogCaptureFixture) -> None:
    def broken(args: Any) -> Any:
        raise FileNotFoundError("nads/ does not exist")

    with caplog.at_level(logging.ERROR, logger="netplex.webhook"):
        code = server.main(["--self-signed", "--port", "0"], build_handler=broken)

    assert code == 1
    assert caplog.messages == ["cannot start: building the admission handler failed"]
    assert str(caplog.records[0].exc_info[1]) == "nads/ does not exist"  # type: ignore[index]


def test_main_exits_1_when_the_port_is_taken(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.ERROR, logger="netplex.webhook"):
            code = server.main(
                ["--self-signed", "--host", "127.0.0.1", "--port", str(port)],
                build_handler=lambda args: ScriptedHandler(),
            )

    assert code == 1
    assert caplog.messages == [f"cannot start: cannot listen on 127.0.0.1 port {port}: [Errno 98] Address already in use"]


def test_main_hands_the_parsed_flags_to_the_handler_builder(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[Any] = []

    def build(args: Any) -> Any:
        seen.append(args)
        raise RuntimeError("stop here")

    with caplog.at_level(logging.CRITICAL, logger="netplex.webhook"):
        server.main(["--self-signed", "--nads", "examples/nads", "--policy", "p.yaml", "--kubeconfig", "kc"], build_handler=build)

    (args,) = seen
    assert (args.nads, args.policy, args.kubeconfig, args.workers) == ("examples/nads", "p.yaml", "kc", 1)


# -- main(): the real process -------------------------------------------------------------

LAUNCHER = """
import sys
from tests.webhook.conftest import ScriptedHandler
from webhook import server
handler = ScriptedHandler(slow_seconds=float(sys.argv[1]), started_marker=sys.argv[2])
sys.exit(server.main(sys.argv[3:], build_handler=lambda args: handler))
"""


class Process:
    """``netplex-webhook`` in a subprocess with the scripted handler; stdout read by lines."""

    def __init__(self, tmp_path: Path, args: list[str], *, slow_seconds: float = 2.5) -> None:
        self.marker = tmp_path / "slow-started"
        self.stderr_path = tmp_path / "stderr.log"
        self._stderr = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, str(slow_seconds), str(self.marker), *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self._lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)

    def line(self, timeout: float = 15) -> str:
        try:
            return self._lines.get(timeout=timeout).decode()
        except queue.Empty:
            raise AssertionError(f"no output from the server; stderr:\n{self.stderr()}") from None

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_for_log(self, pattern: str, timeout: float = 15) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.stderr())
            if found:
                return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} not logged; stderr:\n{self.stderr()}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self._stderr.close()


def test_self_signed_server_prints_its_ca_and_finishes_a_request_in_flight_on_sigterm_then_exits_0(tmp_path: Path) -> None:
    proc = Process(tmp_path, ["--self-signed", "--host", "127.0.0.1", "--port", "0"])
    try:
        head = proc.line()
        url = re.fullmatch(r"# save the PEM below as ca\.pem, then: curl --cacert ca\.pem (https://127\.0\.0\.1:\d+)/healthz\n", proc.line())
        pem = "".join(iter(proc.line, "-----END CERTIFICATE-----\n")) + "-----END CERTIFICATE-----\n"
        bundle_note, bundle = proc.line(), proc.line().strip()

        assert head == "# netplex-webhook --self-signed: CA generated for this run only\n"
        assert url is not None
        assert pem.startswith("-----BEGIN CERTIFICATE-----\n")
        assert bundle_note == "# caBundle (base64 of the PEM above, for a webhook configuration's clientConfig.caBundle):\n"
        assert base64.b64decode(bundle).decode() == pem
        trust = ssl.create_default_context(cadata=pem)

        with httpx.Client(base_url=url.group(1), verify=trust, timeout=20) as c:
            assert c.get("/healthz").text == "ok"
            result: dict[str, Any] = {}

            def slow_request() -> None:
                result["response"] = post(c, "/validate", admission_review(pod("slow"), uid="in-flight"))

            caller = threading.Thread(target=slow_request)
            caller.start()
            deadline = time.monotonic() + 10
            while not proc.marker.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            assert proc.marker.exists(), proc.stderr()

            proc.proc.send_signal(signal.SIGTERM)
            port = int(url.group(1).rsplit(":", 1)[1])
            refused = _wait_until_refused(port, timeout=2.0)
            caller.join(timeout=20)

        assert refused, "the listening socket stayed open after SIGTERM"
        assert result["response"].status_code == 200
        assert result["response"].json()["response"] == {"uid": "in-flight", "allowed": True}
        assert proc.proc.wait(timeout=30) == 0
        assert "stopped by SIGTERM" in proc.stderr()
    finally:
        proc.close()


def _wait_until_refused(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except ConnectionRefusedError:
            return True
        time.sleep(0.05)
    return False


def test_server_started_from_files_serves_a_renewed_certificate_without_restart(tmp_path: Path) -> None:
    first, second = make_leaf("first"), make_leaf("second")
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_bytes(first.cert)
    key.write_bytes(first.key)
    proc = Process(
        tmp_path,
        ["--tls-cert", str(cert), "--tls-key", str(key), "--host", "127.0.0.1", "--port", "0", "--cert-reload-interval", "0.1"],
    )
    try:
        port = int(proc.wait_for_log(r"serving on https://127\.0\.0\.1:(\d+)").group(1))
        assert presented_fingerprint(port) == first.fingerprint

        key.write_bytes(second.key)  # half-way: mismatched pair, still the first certificate
        proc.wait_for_log(r"do not form a usable pair")
        assert presented_fingerprint(port) == first.fingerprint
        cert.write_bytes(second.cert)
        proc.wait_for_log(r"now serving CN=second")

        assert presented_fingerprint(port) == second.fingerprint
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(timeout=30) == 0
    finally:
        proc.close()


def test_process_exits_0_on_sigint_too(tmp_path: Path) -> None:
    proc = Process(tmp_path, ["--self-signed", "--host", "127.0.0.1", "--port", "0"])
    try:
        proc.wait_for_log(r"serving on https://")
        proc.proc.send_signal(signal.SIGINT)

        assert proc.proc.wait(timeout=30) == 0
        assert "stopped by SIGINT" in proc.stderr()
        assert "Traceback" not in proc.stderr()
    finally:
        proc.close()


def test_read_ca_banner_returns_the_url_and_pem_or_none_when_the_banner_never_completes() -> None:
    import io

    from webhook.server import print_ca_bundle, read_ca_banner

    ca = tls.self_signed([]).ca
    written = io.StringIO()
    print_ca_bundle(ca, "https://127.0.0.1:8443", written)

    banner = read_ca_banner(io.BytesIO(written.getvalue().encode()), timeout=5)
    assert banner is not None
    url, pem = banner
    assert url == "https://127.0.0.1:8443" and pem.encode().startswith(ca)
    half = written.getvalue().split("-----END")[0]
    assert read_ca_banner(io.BytesIO(half.encode()), timeout=0.5) is None
