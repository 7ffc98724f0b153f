"""Thick mode for tests: a netplex-node daemon and the shim a runtime would execute.

:class:`InProcessDaemon` serves the daemon's socket from a thread of the test process
(the same :class:`plugin.node.daemon.Server` and runner as ``netplex-node``), so tests can
give it the short timeouts the thin harness uses; :func:`start_daemon_process` runs the
real ``netplex-node`` command for the tests that kill or signal it. :func:`write_shim`
renders the shim exactly as the installer does, and :func:`run_shim` executes it as a
runtime does (``python3 -IS``, the ``CNI_*`` environment, the config on stdin).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from plugin.node import daemon, pack, wire

REPO = Path(__file__).resolve().parents[2]
HOST_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def write_shim(directory: Path, socket_path: Path, *, timeout: float = 30.0, thin: Path | None = None) -> Path:
    """``<directory>/netplex``, the shim, and (unless ``thin`` is given) the thin zipapp
    beside it as ``netplex-thin``, built for the interpreter that runs the shim."""
    directory.mkdir(parents=True, exist_ok=True)
    if thin is None:
        thin = directory / "netplex-thin"
        if not thin.exists():
            pack.build(thin, interpreter=HOST_PYTHON)
    shim = directory / "netplex"
    shim.write_text(wire.render_shim(socket_path=str(socket_path), thin=str(thin), timeout=timeout,
                                     python=HOST_PYTHON))
    shim.chmod(0o755)
    return shim


def run_shim(shim: Path, environ: Mapping[str, str], stdin: bytes, *, timeout: float = 120.0,
             user: int | None = None) -> subprocess.CompletedProcess[bytes]:
    """Execute the shim as a runtime does (directly: its ``#!`` line says ``python3 -IS``)."""
    return subprocess.run([str(shim)], input=stdin, env=dict(environ), capture_output=True, timeout=timeout,
                          check=False, user=user)


class InProcessDaemon:
    """netplex-node's server on a thread of this process."""

    def __init__(self, socket_path: Path, *, kubeconfig: Path | None, base_environ: Mapping[str, str],
                 hooks: daemon.Hooks | None = None, environment_kw: Mapping[str, Any] | None = None,
                 max_request_bytes: int = daemon.DEFAULT_MAX_REQUEST_BYTES) -> None:
        self.socket = socket_path
        self.hooks = hooks or daemon.Hooks()
        factory = daemon.api_client_factory(str(kubeconfig), base_environ) if kubeconfig else None
        runner = daemon.make_runner(base_environ=base_environ, clients=daemon.ClientPool(factory) if factory else None,
                                    hooks=self.hooks,
                                    environment_kw=environment_kw)
        self.server = daemon.Server(str(socket_path), runner, hooks=self.hooks, max_request_bytes=max_request_bytes)
        self._thread: threading.Thread | None = None

    def __enter__(self) -> InProcessDaemon:
        self.server.bind()
        self._thread = threading.Thread(target=self.server.serve, name="test-daemon", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
        self.server.drain(30.0)
        if self._thread is not None:
            self._thread.join(5.0)


class DaemonProcess:
    """A real ``netplex-node run`` process."""

    def __init__(self, proc: subprocess.Popen[bytes], socket_path: Path) -> None:
        self.proc = proc
        self.socket = socket_path

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> tuple[int, str]:
        _, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err.decode(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


def start_daemon_process(socket_path: Path, *, kubeconfig: Path | None, environ: Mapping[str, str],
                         extra: tuple[str, ...] = ()) -> DaemonProcess:
    if "--metrics-address" not in extra:
        extra = (*extra, "--metrics-address", "")  # tests run many daemons: no fixed port
    argv = [sys.executable, "-m", "plugin.node.daemon", "run", "--socket", str(socket_path), *extra]
    if kubeconfig is not None:
        argv += ["--kubeconfig", str(kubeconfig)]
    proc = subprocess.Popen(argv, env={**environ, "PYTHONPATH": str(REPO)}, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"netplex-node exited with {proc.returncode}: {proc.stderr.read().decode()}")  # type: ignore[union-attr]
        try:
            if daemon.ask(str(socket_path), {"CNI_COMMAND": "VERSION"}, timeout=1.0)[0] == 0:
                return DaemonProcess(proc, socket_path)
        except (OSError, EOFError):
            pass  # not listening yet
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("netplex-node did not answer within 20 s")
