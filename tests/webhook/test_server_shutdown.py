"""A graceful stop of the production uvicorn server with keep-alive TLS connections open.

The API server keeps idle keep-alive connections to its webhooks. uvicorn closes them at
shutdown, but a TLS close waits for the client's close_notify, which an idle client never
sends: every stop lasted the whole shutdown timeout. These tests hold such a connection
open (a real TLS socket that sent one request and then stays silent).
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.webhook.conftest import ScriptedHandler, admission_review, pod
from webhook import server as webhook_server
from webhook import tls
from webhook.app import create_app

SHUTDOWN_TIMEOUT = 20  # seconds: what a stop must not wait for


@contextmanager
def serving(handler: ScriptedHandler, pair: tls.CertPair) -> Iterator[tuple[int, threading.Thread, list[float]]]:
    """The server in a thread; yields (port, thread, [seconds the stop took] once stopped)."""
    sock = webhook_server.bind("127.0.0.1", 0)
    srv = webhook_server.make_server(
        create_app(handler), tls.context_from_pem(pair.cert, pair.key),
        shutdown_timeout=SHUTDOWN_TIMEOUT, log_level="warning",
    )
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert srv.started
    took: list[float] = []
    try:
        yield sock.getsockname()[1], thread, took
    finally:
        began = time.monotonic()
        srv.should_exit = True
        thread.join(timeout=SHUTDOWN_TIMEOUT + 10)
        took.append(time.monotonic() - began)
        sock.close()


def idle_keep_alive_connection(port: int, ca: bytes) -> ssl.SSLSocket:
    """A TLS connection that got one keep-alive answer and then says nothing."""
    ctx = ssl.create_default_context(cadata=ca.decode())
    conn = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="webhook.test")
    conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: webhook.test\r\n\r\n")
    answer = b""
    while not answer.endswith(b"ok"):
        chunk = conn.recv(4096)
        assert chunk, answer
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 ")
    return conn


def test_an_idle_keep_alive_tls_connection_does_not_hold_the_stop(cert_pair: tls.CertPair) -> None:
    with serving(ScriptedHandler(), cert_pair) as (port, thread, took):
        conn = idle_keep_alive_connection(port, cert_pair.ca)
    try:
        assert not thread.is_alive()
        assert took[0] < 3, f"the stop took {took[0]:.1f}s"  # was SHUTDOWN_TIMEOUT
        conn.settimeout(5)
        assert conn.recv(4096) == b""  # the server let go of it
    finally:
        conn.close()


def test_a_request_in_flight_is_still_answered_whole_and_then_let_go(cert_pair: tls.CertPair, tmp_path: Path) -> None:
    marker = tmp_path / "started"
    handler = ScriptedHandler(slow_seconds=1.0, started_marker=str(marker))
    result: dict[str, httpx.Response] = {}
    with serving(handler, cert_pair) as (port, thread, took):
        idle = idle_keep_alive_connection(port, cert_pair.ca)
        client = httpx.Client(verify=ssl.create_default_context(cadata=cert_pair.ca.decode()), timeout=20)
        review = admission_review(pod("slow"), uid="in-flight")

        def call() -> None:
            result["response"] = client.post(f"https://127.0.0.1:{port}/validate", content=json.dumps(review),
                                             headers={"content-type": "application/json"})

        caller = threading.Thread(target=call)
        caller.start()
        deadline = time.monotonic() + 10
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert marker.exists()
    caller.join(timeout=10)
    assert not thread.is_alive()
    client.close()
    idle.close()
    assert result["response"].status_code == 200
    assert result["response"].json()["response"] == {"uid": "in-flight", "allowed": True}
    assert 0.5 < took[0] < 4, f"the stop took {took[0]:.1f}s"  # the slow answer, not the timeout
