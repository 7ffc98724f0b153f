"""``netplex-webhook --workers 2`` whose supervisor is killed with SIGKILL.

Before, both workers went on serving with parent PID 1 and held the port, so a new
``netplex-webhook`` could not bind it. Now the kernel's parent-death signal stops them
(webhook/workers.py). A client holds an idle keep-alive TLS connection, as the API server
does, so the bound also covers the graceful stop letting go of it (webhook/server.py).
Also: a worker that replaces a killed one serves the certificate files as they are now.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.webhook.conftest import make_leaf, presented_fingerprint
from tests.webhook.test_cluster import eventually
from tests.webhook.test_workers import alive
from webhook.server import read_ca_banner
from webhook.workers import children_of

REPO = Path(__file__).resolve().parents[2]
GONE_WITHIN = 5.0  # seconds from the SIGKILL until no worker is left


def command() -> list[str]:
    """The installed console script when there is one, else the same entry point by module."""
    script = Path(sys.executable).parent / "netplex-webhook"
    if script.exists():
        return [str(script)]
    found = shutil.which("netplex-webhook")
    return [found] if found else [sys.executable, "-m", "webhook.server"]


def private_tmp(directory: Path) -> dict[str, str]:
    """The environment with TMPDIR in the test's directory: a supervisor killed with SIGKILL
    leaves its metrics directory (netplex-metrics-*) behind, and not in the machine's /tmp."""
    return {**os.environ, "TMPDIR": str(directory)}


def start(port: int, log: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    proc = subprocess.Popen(
        [*command(), "--workers", "2", "--self-signed", "--nads", "examples/", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=log.open("wb"), env=private_tmp(log.parent),
    )
    assert proc.stdout is not None
    banner = read_ca_banner(proc.stdout, timeout=30)
    if banner is None:
        proc.kill()
        proc.wait()
        raise AssertionError(f"netplex-webhook did not start:\n{log.read_text()}")
    return proc, *banner


def test_workers_exit_when_the_supervisor_is_killed_and_a_new_webhook_binds_the_port(tmp_path: Path) -> None:
    proc, url, pem = start(0, tmp_path / "first.log")
    client = None
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 30
        while len(workers := children_of(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(workers) == 2
        client = httpx.Client(base_url=url, verify=ssl.create_default_context(cadata=pem), timeout=10)
        assert client.get("/healthz").text == "ok"  # and the connection stays open, idle

        killed = time.monotonic()
        proc.kill()
        proc.wait(timeout=10)
        while any(alive(pid) for pid in workers) and time.monotonic() - killed < 30:
            time.sleep(0.02)
        took = time.monotonic() - killed
        assert not any(alive(pid) for pid in workers), f"workers still alive 30 s after SIGKILL: {workers}"
        assert took < GONE_WITHIN, f"workers took {took:.1f}s to stop"
    finally:
        if client is not None:
            client.close()
        proc.kill()
        proc.wait()
        for pid in workers:  # only if the test failed: do not leak orphans on the port
            if alive(pid):
                os.kill(pid, signal.SIGKILL)

    port = int(url.rsplit(":", 1)[1])
    second, second_url, second_pem = start(port, tmp_path / "second.log")
    try:
        assert second_url == url
        with httpx.Client(base_url=url, verify=ssl.create_default_context(cadata=second_pem), timeout=10) as fresh:
            assert fresh.get("/healthz").text == "ok"
    finally:
        second.terminate()
        assert second.wait(timeout=30) == 0
    log = (tmp_path / "second.log").read_text()
    assert "cannot listen" not in log and "supervising 2 workers" in log


def test_a_worker_started_after_a_certificate_rotation_serves_the_new_certificate_at_once(tmp_path: Path) -> None:
    # The supervisor loaded the first pair before forking; a replacement worker used to
    # serve it until its first poll (--cert-reload-interval later).
    first, second = make_leaf("first"), make_leaf("second")
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_bytes(first.cert)
    key.write_bytes(first.key)
    port = free_port()
    log = tmp_path / "webhook.log"
    proc = subprocess.Popen(
        [*command(), "--workers", "2", "--tls-cert", str(cert), "--tls-key", str(key), "--nads", "examples/",
         "--host", "127.0.0.1", "--port", str(port), "--cert-reload-interval", "300"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=log.open("wb"), env=private_tmp(tmp_path),
    )
    stopped: list[int] = []
    try:
        assert eventually(lambda: len(children_of(proc.pid)) == 2 and serves(port), timeout=30), log.read_text()
        workers = children_of(proc.pid)
        cert.write_bytes(second.cert)
        key.write_bytes(second.key)
        os.kill(workers[0], signal.SIGKILL)
        assert eventually(lambda: len(set(children_of(proc.pid)) - set(workers)) == 1, timeout=15)
        os.kill(workers[1], signal.SIGSTOP)  # every new connection now goes to the replacement
        stopped.append(workers[1])
        assert eventually(lambda: serves(port), timeout=15)
        assert presented_fingerprint(port) == second.fingerprint
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
        proc.terminate()
        proc.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serves(port: int) -> bool:
    try:
        presented_fingerprint(port)
    except OSError:
        return False
    return True
