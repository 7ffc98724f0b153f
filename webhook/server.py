"""``netplex-webhook``: serve the admission webhook over HTTPS with uvicorn.

    netplex-webhook --tls-cert tls.crt --tls-key tls.key [--nads DIR | --kubeconfig FILE]
    netplex-webhook --self-signed --nads DIR         # laptop: prints the CA to trust

TLS is always on. With ``--tls-cert/--tls-key`` the pair is followed on disk and a
renewed certificate is served without a restart (:class:`webhook.tls.CertReloader`).
With ``--self-signed`` a CA and a serving certificate are made in memory; the CA (PEM
and base64, for ``clientConfig.caBundle``) is printed on stdout. With API access the CA
is shared through a Secret and the webhook configurations' caBundle is set at start
instead (:mod:`webhook.selfsigned`). Logs go to stderr.

Shutdown: SIGTERM (or SIGINT) stops accepting connections, lets requests in flight
finish for up to ``--shutdown-timeout`` seconds, and exits 0. A connection is let go as
soon as its last response is sent, without waiting for the client's TLS close_notify:
the API server keeps idle keep-alive connections to its webhooks and answers a
close_notify only when it next uses one, so waiting (asyncio's 30 s TLS shutdown
timeout) held every stop for the whole ``--shutdown-timeout``. Exit codes: 0 after a
clean stop, 1 when the server cannot start (bad certificate, port in use, handler
failed to build), 2 for usage errors.

``--workers N`` forks N worker processes after the socket is bound and the certificate
is made (:mod:`webhook.workers`): one Python process decides on one core at a time, so
more workers keep latency low under bursts. Each worker builds its own handler (its own
NAD watch: N watches on the API server) and app; request metrics are summed across
workers through prometheus-client's multiprocess files in a private temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import importlib
import logging
import os
import queue
import re
import signal
import socket
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import IO, TYPE_CHECKING, Any, TextIO, cast

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI

    from webhook.app import Handler

log = logging.getLogger("netplex.webhook")

DEFAULT_SHUTDOWN_TIMEOUT = 25  # below the kubelet's default 30 s grace period
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
MAX_WORKERS = 64

BuildHandler = Callable[[argparse.Namespace], "Handler"]


def build_parser() -> argparse.ArgumentParser:
    from webhook.reviews import DEFAULT_MAX_BODY  # not webhook.app: see _share_metrics

    p = argparse.ArgumentParser(
        prog="netplex-webhook",
        description="Serve the netplex admission webhook (validate and mutate) over HTTPS.",
    )
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=8443, help="port to listen on; 0 picks a free one (default: %(default)s)")
    tls = p.add_argument_group("TLS (exactly one of --tls-cert with --tls-key, or --self-signed)")
    tls.add_argument("--tls-cert", metavar="FILE", help="PEM serving certificate (chain); reloaded when it changes")
    tls.add_argument("--tls-key", metavar="FILE", help="PEM private key of --tls-cert")
    tls.add_argument(
        "--self-signed",
        action="store_true",
        help="generate the serving certificate: from an in-memory CA printed on stdout; with API access "
        "(--kubeconfig or in-cluster, no --nads) from the CA in Secret netplex-webhook-ca, setting "
        "the webhook configurations' caBundle",
    )
    from webhook import selfsigned

    selfsigned.add_arguments(tls)
    tls.add_argument(
        "--cert-reload-interval",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how often to look for a renewed --tls-cert/--tls-key (default: %(default)s)",
    )
    src = p.add_argument_group("where NADs, Namespaces and policy come from")
    src.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig (default: in-cluster config)")
    src.add_argument("--nads", metavar="DIR", help="read NADs and Namespaces from YAML files instead of a cluster")
    src.add_argument("--policy", metavar="FILE", help="cluster-wide policy file (YAML); reloaded on change")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes forked after binding, each with its own NAD watch (default: %(default)s)",
    )
    p.add_argument(
        "--max-body",
        type=int,
        default=DEFAULT_MAX_BODY,
        metavar="BYTES",
        help="largest AdmissionReview accepted (default: %(default)s)",
    )
    p.add_argument(
        "--shutdown-timeout",
        type=int,
        default=DEFAULT_SHUTDOWN_TIMEOUT,
        metavar="SECONDS",
        help="on SIGTERM, how long requests in flight may take to finish (default: %(default)s)",
    )
    p.add_argument("--log-level", default="info", type=str.lower, choices=LOG_LEVELS, help="(default: %(default)s)")
    p.add_argument("--access-log", action="store_true", help="log every HTTP request (off by default)")
    return p


def main(
    argv: list[str] | None = None,
    *,
    build_handler: BuildHandler | None = None,
    stdout: TextIO | None = None,
) -> int:
    """Run the webhook until SIGTERM/SIGINT; return the exit code.

    ``build_handler`` and ``stdout`` are test seams; by default the handler comes from
    ``webhook.wiring.build_handler`` (imported only here: it pulls in the Kubernetes
    client) and the CA bundle goes to ``sys.stdout``.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    problem = usage_problem(args)
    if problem:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: {problem}", file=sys.stderr)
        return 2

    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    from webhook import tls

    reloader: tls.CertReloader | tls.CertRenewer | None = None
    ca: bytes | None = None
    try:
        if args.self_signed:
            from webhook.selfsigned import serving_pair

            issued = serving_pair(args, _hosts_for(args.host))
            ctx = tls.context_from_pem(issued.pair.cert, issued.pair.key)
            ca = None if issued.in_cluster else issued.pair.ca
            reloader = tls.CertRenewer(ctx, issued.pair.cert, issued.renew)
        else:
            ctx = tls.server_ssl_context(args.tls_cert, args.tls_key)
            reloader = tls.CertReloader(ctx, args.tls_cert, args.tls_key, interval=args.cert_reload_interval)
    except tls.CertificateError as exc:
        log.error("cannot start: %s", exc)
        return 1

    if build_handler is None:
        # Imported by name: it pulls in the Kubernetes client, which only this path needs.
        try:
            wiring = importlib.import_module("webhook.wiring")
        except ImportError as exc:
            log.error("cannot start: the handler wiring cannot be imported: %s", exc)
            return 1
        build_handler = cast(BuildHandler, wiring.build_handler)
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        log.error("cannot start: cannot listen on %s port %d: %s", args.host, args.port, exc)
        return 1
    url = _url(args.host, sock.getsockname()[1])
    if ca is not None:
        print_ca_bundle(ca, url, stdout or sys.stdout)
    make = build_handler

    def run() -> int:
        return _serve_worker(args, make, ctx, reloader, sock, url)

    if args.workers == 1:
        code = run()
    else:
        from webhook.workers import run_workers

        with _share_metrics() as mark_dead:
            code = run_workers(args.workers, run, on_exit=mark_dead)
        sock.close()
    return code


def _serve_worker(
    args: argparse.Namespace,
    build_handler: BuildHandler,
    ctx: ssl.SSLContext,
    reloader: Any,
    sock: socket.socket,
    url: str,
) -> int:
    """One serving process: handler, app, certificate follower, uvicorn until a signal."""
    try:
        handler = build_handler(args)
    except Exception:
        log.exception("cannot start: building the admission handler failed")
        return 1

    from webhook.app import create_app

    app = create_app(handler, max_body=args.max_body)
    # What exists now (index, modules, app) lives as long as the process: keep the
    # collector from walking it again on every full collection (tail latency).
    gc.collect()
    gc.freeze()
    if reloader is not None:
        # Now, not one interval from now: a worker forked to replace another serves the
        # certificate the supervisor loaded at start, which may have been rotated since.
        reloader.check()
        reloader.start()
    try:
        return serve(
            app,
            ctx,
            sock,
            url=url,
            shutdown_timeout=args.shutdown_timeout,
            access_log=args.access_log,
            log_level=args.log_level,
        )
    finally:
        if reloader is not None:
            reloader.stop()
        close = getattr(handler, "close", None)
        if callable(close):
            close()


@contextlib.contextmanager
def _share_metrics() -> Iterator[Callable[[int], None]]:
    """A private PROMETHEUS_MULTIPROC_DIR for the workers; yields ``mark_process_dead``.

    prometheus-client picks its value storage when it is first imported, so this must
    run before anything imports it (hence DEFAULT_MAX_BODY comes from webhook.reviews).
    """
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before the workers' metrics directory was set")
    with tempfile.TemporaryDirectory(prefix="netplex-metrics-") as directory:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        from prometheus_client import multiprocess

        try:
            yield lambda pid: multiprocess.mark_process_dead(pid, directory)
        finally:
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]


def usage_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with a combination of flags argparse cannot check, or None."""
    has_files = args.tls_cert is not None or args.tls_key is not None
    if args.self_signed and has_files:
        return "--self-signed cannot be combined with --tls-cert/--tls-key; choose one"
    if not args.self_signed:
        if not has_files:
            return "TLS is required: give --tls-cert and --tls-key, or --self-signed"
        if args.tls_cert is None or args.tls_key is None:
            missing = "--tls-key" if args.tls_key is None else "--tls-cert"
            return f"--tls-cert and --tls-key go together; {missing} is missing"
    if not 1 <= args.workers <= MAX_WORKERS:
        return f"--workers {args.workers}: must be between 1 and {MAX_WORKERS}"
    if not 0 <= args.port <= 65535:
        return f"--port {args.port}: must be between 0 and 65535"
    if args.max_body <= 0:
        return f"--max-body {args.max_body}: must be a positive number of bytes"
    if args.shutdown_timeout < 0:
        return f"--shutdown-timeout {args.shutdown_timeout}: must be 0 or more seconds"
    if args.cert_reload_interval <= 0:
        return f"--cert-reload-interval {args.cert_reload_interval}: must be more than 0 seconds"
    return None


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (so the real port is known before uvicorn starts)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


def make_server(
    app: FastAPI,
    ctx: ssl.SSLContext,
    *,
    shutdown_timeout: int = DEFAULT_SHUTDOWN_TIMEOUT,
    access_log: bool = False,
    log_level: str = "info",
) -> uvicorn.Server:
    """The uvicorn server for ``app``, serving TLS with ``ctx`` (not started)."""
    import uvicorn

    config = uvicorn.Config(
        app,
        ssl_context_factory=lambda _config, _default: ctx,
        http="auto",  # httptools when installed, else h11
        loop="auto",  # uvloop when installed
        ws="none",
        lifespan="off",
        access_log=access_log,
        log_config=None,  # keep our logging setup
        log_level=log_level,
        server_header=False,
        timeout_graceful_shutdown=shutdown_timeout,
    )
    return _server_class()(config)


def _server_class() -> type[uvicorn.Server]:
    """uvicorn's Server whose graceful stop drops connections once their answer is sent."""
    import uvicorn

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            reaper = asyncio.create_task(release_finished_connections(self.server_state.connections))
            try:
                await super().shutdown(sockets)
            finally:
                reaper.cancel()

    return Server


async def release_finished_connections(connections: set[Any], interval: float = 0.05) -> None:
    """Abort the transports of ``connections`` that are closing with nothing left to send.

    uvicorn closes a connection when its response is complete (at once for an idle one);
    for TLS, ``close()`` then waits for the peer's close_notify. Everything the client
    needs has been written by then, so an abort (the kernel still delivers what is in
    the socket buffer) ends the wait. Runs until cancelled.
    """
    while True:
        for connection in list(connections):
            transport = getattr(connection, "transport", None)
            if transport is not None and transport.is_closing() and not transport.get_write_buffer_size():
                transport.abort()
        await asyncio.sleep(interval)


def serve(
    app: FastAPI,
    ctx: ssl.SSLContext,
    sock: socket.socket,
    *,
    url: str = "",
    shutdown_timeout: int = DEFAULT_SHUTDOWN_TIMEOUT,
    access_log: bool = False,
    log_level: str = "info",
) -> int:
    """Serve ``app`` on ``sock`` with TLS context ``ctx`` until SIGTERM/SIGINT; return 0.

    uvicorn handles the signals while it runs, then re-raises them with the handlers it
    found at start. Ours note the signal instead of killing the process, so a stop by
    SIGTERM exits 0 after the graceful shutdown (the default action would exit 143).
    A signal that arrives before uvicorn took over is not lost either.
    """
    server = make_server(app, ctx, shutdown_timeout=shutdown_timeout, access_log=access_log, log_level=log_level)
    stopped_by: list[int] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        stopped_by.append(signum)
        server.should_exit = True

    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, stop)
    log.info("netplex-webhook serving on %s", url or sock.getsockname())
    try:
        server.run(sockets=[sock])
    except SystemExit as exc:  # uvicorn exits this way when startup fails
        code = exc.code if isinstance(exc.code, int) else 1
        log.error("server stopped during startup (exit %s)", code)
        return code or 1
    finally:
        for sig, action in previous.items():
            signal.signal(sig, action)
        sock.close()
    if stopped_by:
        log.info("stopped by %s", signal.Signals(stopped_by[0]).name)
    return 0


def print_ca_bundle(ca_pem: bytes, url: str, out: TextIO) -> None:
    """The self-signed CA on stdout: PEM for curl, base64 for ``caBundle``."""
    out.write(
        "# netplex-webhook --self-signed: CA generated for this run only\n"
        f"# save the PEM below as ca.pem, then: curl --cacert ca.pem {url}/healthz\n"
    )
    out.write(ca_pem.decode("ascii"))
    out.write("# caBundle (base64 of the PEM above, for a webhook configuration's clientConfig.caBundle):\n")
    out.write(base64.b64encode(ca_pem).decode("ascii") + "\n")
    out.flush()


def read_ca_banner(stdout: IO[bytes], timeout: float) -> tuple[str, str] | None:
    """(URL, CA PEM) from what :func:`print_ca_bundle` wrote on a child's stdout.

    For the programs that start ``netplex-webhook --self-signed`` (tests, benchmarks).
    None when the banner is not complete within ``timeout`` seconds or stdout ended. A
    daemon thread reads the pipe and keeps draining it, so the child never blocks on it.
    """
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for raw in stdout:
            lines.put(raw.decode())

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    text, url = "", None
    while "-----END CERTIFICATE-----" not in text:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None
        found = re.search(r"curl --cacert ca\.pem (https://\S+)/healthz", line)
        if found:
            url = found.group(1)
        text += line
    if url is None:
        return None
    return url, text[text.index("-----BEGIN CERTIFICATE-----"):]


def _hosts_for(host: str) -> list[str]:
    hosts = [socket.gethostname()]
    if host not in ("0.0.0.0", "::", ""):
        hosts.insert(0, host)
    return hosts


def _url(host: str, port: int) -> str:
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"https://{host}:{port}"


if __name__ == "__main__":
    sys.exit(main())
