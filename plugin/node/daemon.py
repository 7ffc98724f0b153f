"""netplex-node: the resident node daemon of thick mode (DESIGN.md, "The node side").

The runtime executes the shim (``plugin/node/shim.py``) for every pod sandbox; the shim
sends the ``CNI_*`` environment and the stdin bytes over a unix socket, and this daemon
answers with exactly what the thin plugin would have printed, because it runs the thin
plugin's own code: :func:`plugin.cni.main.main`, the same ADD/DEL/CHECK/GC/STATUS, the
same per-container file locks (shared with a thin-path fallback on the same node), the
same cache. What it adds is only what a process that stays up can do:

- imports done once, and one API client per request thread with its keep-alive
  connection, instead of an interpreter start, ~85 ms of imports and a TLS handshake
  per call;
- NADs from a list+watch cache (a miss is confirmed with a GET, so a NAD created a
  moment ago still works), and the pod from a list+watch cache of this node's pods
  when the cached pod has the sandbox's ``K8S_POD_UID`` (else a GET, as the thin
  plugin does);
- Events on the pod and Prometheus metrics, posted and counted off the request path.

Trust: the socket is created mode 0600 in a directory only root can enter, and every
connection's peer credentials (``SO_PEERCRED``) must be uid 0; a request larger than
``--max-request-bytes`` is refused from its header. Requests are served concurrently,
one thread each, up to ``--max-concurrent`` at once (the rest wait in the backlog).
SIGTERM/SIGINT: stop accepting, let requests in flight finish (``--shutdown-timeout``),
exit 0.

Delegates are started by :func:`delegate_runner`: in the host's root with ``--chroot``
(as Multus thick's ``chrootDir``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import shutil
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from plugin.cni import commands, delegate, main, protocol
from plugin.node import wire

log = logging.getLogger("netplex-node")  # not under "netplex": requests own that logger (plugin.cni.main)

DEFAULT_SOCKET = "/run/netplex/netplex.sock"
DEFAULT_MAX_REQUEST_BYTES = 4 << 20  # a conflist with many inlined delegates is tens of KiB
DEFAULT_MAX_CONCURRENT = 64
DEFAULT_SHUTDOWN_TIMEOUT = 90.0
DEFAULT_METRICS_ADDRESS = "127.0.0.1:9091"  # Multus thick's metricsPort in its examples
PEER_UID = 0
VERBS = ("ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION")

Runner = Callable[[dict[str, str], bytes], tuple[int, bytes, bytes]]
"""``(CNI_* environment, stdin) -> (exit status, stdout bytes, stderr bytes)``."""


# ----------------------------------------------------------------------------- hooks


class Hooks:
    """Where the daemon reports what it does (metrics, Events); the default does nothing."""

    def request_started(self, verb: str) -> None: ...

    def request_finished(self, verb: str, status: int, seconds: float) -> None: ...

    def request_refused(self, reason: str) -> None: ...

    def observer(self) -> commands.Observer | None:
        return None


class NodeObserver(commands.Observer):
    """What a command tells the daemon, turned into Events (queued, never waited for) and
    the delegate-failure metric."""

    def __init__(self, *, events: Any = None, metrics: Any = None, node: str = "") -> None:
        self._events = events
        self._metrics = metrics
        self._node = node

    def added(self, pod: commands.PodRef, entries: Sequence[Mapping[str, Any]]) -> None:
        if self._events is None:
            return
        from plugin.node import events

        try:
            self._events.enqueue_all(events.added_interface_events(pod, entries, node=self._node))
        except Exception:  # an Event is never worth failing a pod for
            log.exception("cannot queue the AddedInterface events of %s/%s", pod.namespace, pod.name)

    def add_failed(self, pod: commands.PodRef | None, network: str | None, delegate: str,
                   error: protocol.CniError) -> None:
        if self._metrics is not None and network:
            self._metrics.delegate_failed(network)
        if self._events is None or pod is None:
            return
        from plugin.node import events

        try:
            self._events.enqueue(events.add_failed_event(pod, error, node=self._node, network=network,
                                                         delegate=delegate or None))
        except Exception:
            log.exception("cannot queue the failure event of %s/%s", pod.namespace, pod.name)


class Activity:
    """How many requests are in flight, for background work that should wait for a quiet
    moment (the Event poster) rather than compete with pods being set up."""

    def __init__(self) -> None:
        self._in_flight = 0
        self._changed = threading.Condition()

    def started(self) -> None:
        with self._changed:
            self._in_flight += 1

    def finished(self) -> None:
        with self._changed:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._changed.notify_all()

    def wait_quiet(self, timeout: float) -> bool:
        """True once no request is in flight; False if ``timeout`` seconds passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: self._in_flight == 0, timeout)


class NodeHooks(Hooks):
    """Metrics of every request (when ``metrics`` is given), the requests in flight
    (``activity``) and the observer above."""

    def __init__(self, *, metrics: Any = None, events: Any = None, node: str = "",
                 activity: Activity | None = None) -> None:
        self.metrics = metrics
        self.activity = activity or Activity()
        self._observer = NodeObserver(events=events, metrics=metrics, node=node)

    def request_started(self, verb: str) -> None:
        self.activity.started()
        if self.metrics is not None:
            self.metrics.request_started(verb)

    def request_finished(self, verb: str, status: int, seconds: float) -> None:
        self.activity.finished()
        if self.metrics is not None:
            self.metrics.request_finished(verb, status, seconds)

    def request_refused(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.request_refused(reason)

    def observer(self) -> commands.Observer | None:
        return self._observer


# ---------------------------------------------------------------------------- running


def delegate_runner(chroot: str | None = None, chroot_program: str = "chroot") -> delegate.ExecFn:
    """How the daemon starts a delegate: as the thin plugin does, or, with ``--chroot``,
    inside the host's root (``chroot <root> <plugin>``, as Multus thick's ``chrootDir``):
    the cluster network's plugins expect the host's files (Flannel's
    ``/run/flannel/subnet.env``, Calico's ``/var/lib/calico``, Cilium's socket, the
    ``iptables`` that portmap runs), exactly what a runtime would have given them.

    The ``chroot`` program rather than ``os.chroot`` in a ``preexec_fn``: a ``preexec_fn``
    makes Python fork the whole daemon instead of vfork (~3 ms more per delegate), more
    than the program's own start. Delegates outlive a daemon killed mid-ADD only outside
    a container: in the DaemonSet the runtime kills every process of the container with
    it, and a runtime's DEL after the failed ADD removes whatever a finished one attached.
    """
    prefix = [chroot_program, chroot] if chroot else []

    def run(path: str, env: Mapping[str, str], stdin: bytes, timeout: float) -> tuple[int, bytes, bytes]:
        return delegate.subprocess_exec(path, env, stdin, timeout, argv=[*prefix, path] if prefix else None)

    return run


class ClientPool:
    """API clients lent to one request at a time and kept between requests, each with
    its keep-alive connection (the plugin's client is not thread-safe, and a client per
    request would pay a TLS handshake per pod). At most ``keep`` idle ones are kept."""

    def __init__(self, factory: Callable[[], Any], keep: int = 8) -> None:
        self._factory = factory
        self._keep = keep
        self._idle: list[Any] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def lease(self) -> Iterator[Any]:
        with self._lock:
            client = self._idle.pop() if self._idle else None
        if client is None:
            client = self._factory()
        try:
            yield client
        finally:
            with self._lock:
                kept = len(self._idle) < self._keep
                if kept:
                    self._idle.append(client)
            if not kept:
                client.close()


Lookup = Callable[[str, str], Mapping[str, Any] | None]
"""``lookup(namespace, name)``: a watch cache's ``get``."""


class CachedReads:
    """The plugin client's interface, with reads served from the daemon's watch caches
    where that cannot change the answer.

    - ``get_nad``: from the NAD cache when it has the NAD; a miss is a GET (a NAD created
      a moment ago may not be in the cache yet).
    - ``get_pod``: from the node's pod cache only when the cached pod's UID is the
      ``uid`` the command expects (the sandbox's ``K8S_POD_UID``). Otherwise a GET, so
      every other case reads exactly what the thin plugin reads: no UID given, a pod not
      in the cache (yet: not synced, or not bound here as far as the watch knows), a
      cached pod of another UID (re-created under the same name; or a static pod, whose
      mirror pod has a UID of its own and which ``plugin.cni.k8s`` then accepts).
    """

    def __init__(self, client: Any, nads: Lookup | None = None, pods: Lookup | None = None) -> None:
        self._client = client
        self._nads = nads
        self._pods = pods

    def get_nad(self, namespace: str, name: str) -> Mapping[str, Any]:
        found = self._nads(namespace, name) if self._nads is not None else None
        if found is not None:
            return found
        nad: Mapping[str, Any] = self._client.get_nad(namespace, name)  # a NAD created a moment ago
        return nad

    def get_pod(self, namespace: str, name: str, *, uid: str | None = None) -> Mapping[str, Any]:
        found = self._pods(namespace, name) if uid and self._pods is not None else None
        meta = found.get("metadata") if found is not None else None
        if found is not None and isinstance(meta, Mapping) and meta.get("uid") == uid:
            return found
        pod: Mapping[str, Any] = self._client.get_pod(namespace, name)
        return pod

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def make_runner(*, base_environ: Mapping[str, str], clients: ClientPool | None,
                hooks: Hooks, exec_fn: delegate.ExecFn | None = None,
                environment_kw: Mapping[str, Any] | None = None) -> Runner:
    """The thin plugin's ``main`` for one request: the daemon's own environment (PATH, the
    in-cluster variables) with the request's ``CNI_*`` variables on top.
    ``environment_kw`` sets the other :class:`~plugin.cni.commands.Environment` fields
    (timeouts; tests)."""
    inherited = {k: v for k, v in base_environ.items() if not k.startswith("CNI_") and k != main.DAEMON_DOWN}
    run_delegate = exec_fn or delegate_runner()

    def run(cni_env: dict[str, str], stdin: bytes) -> tuple[int, bytes, bytes]:
        environ = {**inherited, **cni_env}
        out, err = io.StringIO(), io.StringIO()
        with clients.lease() if clients else contextlib.nullcontext() as client:

            def environment(env: Mapping[str, str]) -> commands.Environment:
                return commands.Environment(env, client=client, observer=hooks.observer(), exec_fn=run_delegate,
                                            **(environment_kw or {}))

            status = main.main(environ, io.BytesIO(stdin), out, err, env_factory=environment)
        return status, out.getvalue().encode("utf-8", "surrogateescape"), err.getvalue().encode(
            "utf-8", "backslashreplace")

    return run


# ---------------------------------------------------------------------------- serving


def refusal(message: str, details: str = "") -> bytes:
    """An answer the shim prints as the plugin's own CNI error."""
    error = protocol.CniError(protocol.INVALID_CONFIG, message, details)
    return wire.answer(1, (error.to_json("") + "\n").encode(), b"")


def peer_uid(conn: socket.socket) -> int:
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", raw)
    return int(uid)


class Server:
    """The unix socket, its accept loop and the request threads."""

    def __init__(self, path: str, runner: Runner, *, hooks: Hooks | None = None,
                 max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
                 max_concurrent: int = DEFAULT_MAX_CONCURRENT, peer_uid: int = PEER_UID) -> None:
        self.path = path
        self.runner = runner
        self.hooks = hooks or Hooks()
        self.max_request_bytes = max_request_bytes
        self.peer_uid = peer_uid
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._stopping = threading.Event()
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None

    # -- lifecycle

    def bind(self) -> None:
        """Create the socket, mode 0600, in a root-only directory; a stale socket from a
        daemon that died is replaced, a live one is an error (two daemons on one node)."""
        directory = os.path.dirname(self.path) or "."
        os.makedirs(directory, mode=0o700, exist_ok=True)
        if os.path.exists(self.path):
            if _answers(self.path):
                raise OSError(f"another netplex-node is already serving {self.path}")
            os.unlink(self.path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            listener.bind(self.path)
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)
        listener.listen(128)
        listener.settimeout(0.2)
        self._listener = listener

    def serve(self) -> None:
        """Accept until :meth:`stop`; each connection gets a thread."""
        assert self._listener is not None, "bind() first"
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stopping.is_set():
                    break
                raise
            self._slots.acquire()
            thread = threading.Thread(target=self._serve_one, args=(conn,), name="netplex-request", daemon=True)
            with self._lock:
                self._threads.add(thread)
            thread.start()

    def stop(self) -> None:
        """Stop accepting: the socket file goes at once, so a new shim falls back or waits
        for the next daemon instead of queueing behind one that is leaving."""
        self._stopping.set()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            self._listener.close()

    def drain(self, timeout: float) -> int:
        """Wait for requests in flight; how many were still running at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                alive = [t for t in self._threads if t.is_alive()]
            if not alive or time.monotonic() >= deadline:
                return len(alive)
            alive[0].join(max(0.0, min(0.5, deadline - time.monotonic())))

    # -- one connection

    def _serve_one(self, conn: socket.socket) -> None:
        try:
            with conn:
                conn.settimeout(30.0)  # reading the request; the shim sends it at once
                uid = peer_uid(conn)
                if uid != self.peer_uid:
                    self.hooks.request_refused("peer")
                    conn.sendall(refusal(f"netplex-node accepts requests only from uid {self.peer_uid} "
                                         f"(the container runtime), not from uid {uid}"))
                    return
                try:
                    cni_env, stdin = wire.read_request(conn, self.max_request_bytes)
                except wire.WireError as exc:
                    self.hooks.request_refused("request")
                    conn.sendall(refusal("netplex-node refused the request", str(exc)))
                    return
                except (EOFError, OSError) as exc:
                    log.warning("a shim hung up before its request was complete: %s", exc)
                    return
                conn.settimeout(None)
                verb = cni_env.get("CNI_COMMAND", "")
                self.hooks.request_started(verb)
                start = time.monotonic()
                status = 1
                seconds: float | None = None
                try:
                    status, out, err = self.runner(cni_env, stdin)
                    seconds = time.monotonic() - start
                    try:
                        conn.sendall(wire.answer(status, out, err))
                    except OSError as exc:  # the shim timed out or was killed: the runtime will retry
                        log.warning("%s for container %s finished after its shim left: %s", verb,
                                    cni_env.get("CNI_CONTAINERID", "?"), exc)
                finally:  # after the answer is out: what this wakes (the Event poster) must not delay it
                    self.hooks.request_finished(verb, status, seconds if seconds is not None
                                                else time.monotonic() - start)
        except Exception:
            log.exception("request failed unexpectedly")
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())
            self._slots.release()


def _answers(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def ask(path: str, cni_env: Mapping[str, str], stdin: bytes = b"", *, timeout: float = 5.0) -> tuple[int, bytes, bytes]:
    """One request as the shim sends it (readiness probe, tests)."""
    raw_env = b"\0".join(f"{k}={v}".encode("utf-8", "surrogateescape") for k, v in cni_env.items())
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(wire.REQUEST.pack(wire.MAGIC, len(raw_env), len(stdin)) + raw_env + stdin)
        magic, status, out_len, err_len = wire.ANSWER.unpack(wire.recv_exact(sock, wire.ANSWER.size))
        if magic != wire.MAGIC:
            raise OSError(f"{path} answered in a foreign format")
        return status, wire.recv_exact(sock, out_len), wire.recv_exact(sock, err_len)


# ------------------------------------------------------------------------- command line


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="netplex-node", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="serve the socket until SIGTERM (the default)")
    ready = sub.add_parser("ready", help="readiness probe: exit 0 when the daemon answers on its socket")
    for p in (parser, run, ready):
        p.add_argument("--socket", default=DEFAULT_SOCKET, help=f"unix socket path (default {DEFAULT_SOCKET})")
    for p in (parser, run):
        p.add_argument("--kubeconfig", default=None,
                       help="kubeconfig for the API server (default: the in-cluster service account)")
        p.add_argument("--max-request-bytes", type=_positive_int, default=DEFAULT_MAX_REQUEST_BYTES)
        p.add_argument("--max-concurrent", type=_positive_int, default=DEFAULT_MAX_CONCURRENT)
        p.add_argument("--shutdown-timeout", type=float, default=DEFAULT_SHUTDOWN_TIMEOUT,
                       help="seconds to let requests in flight finish after SIGTERM")
        p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")
        p.add_argument("--metrics-address", default=DEFAULT_METRICS_ADDRESS, type=_address,
                       help=f"HOST:PORT of /metrics (default {DEFAULT_METRICS_ADDRESS}); '' turns it off")
        p.add_argument("--node-name", default=os.environ.get("NODE_NAME") or socket.gethostname(),
                       help="the node named in Events and whose pods are watched for ADD "
                            "(default: $NODE_NAME, else the host name)")
        p.add_argument("--no-events", action="store_true", help="post no Events on pods")
        p.add_argument("--chroot", default=None, metavar="DIR",
                       help="run the delegates inside this directory (the host's / mounted in the container)")
    ready.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args(argv)
    args.command = args.command or "run"
    return args


def _address(text: str) -> tuple[str, int] | None:
    if text == "":
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"must be HOST:PORT with a port from 0 to 65535, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def probe(path: str, timeout: float) -> int:
    try:
        status, out, _ = ask(path, {"CNI_COMMAND": "VERSION"}, timeout=timeout)
    except (OSError, EOFError) as exc:
        print(f"netplex-node is not answering on {path}: {exc}", file=sys.stderr)
        return 1
    if status != 0 or b"supportedVersions" not in out:
        print(f"netplex-node on {path} answered VERSION with status {status}: {out[:200]!r}", file=sys.stderr)
        return 1
    return 0


def api_client_factory(kubeconfig: str | None, environ: Mapping[str, str],
                       **client_kw: Any) -> Callable[[], Any] | None:
    """A factory of API clients, or None when there is no API server to talk to (the
    daemon then serves what the thin plugin serves without one)."""
    from plugin.cni import k8s

    if k8s.client_from_config(kubeconfig, environ=environ) is None:
        return None
    return lambda: k8s.client_from_config(kubeconfig, environ=environ, **client_kw)


class Node:
    """The daemon's long-lived parts: API clients (behind the NAD and pod caches), Events,
    metrics."""

    def __init__(self, args: argparse.Namespace, environ: Mapping[str, str]) -> None:
        self.factory = api_client_factory(args.kubeconfig, environ)
        self.activity = Activity()  # requests in flight: the Event poster waits for a quiet moment
        self.metrics: Any = None
        self.nads: Any = None
        self.pods: Any = None
        self.events: Any = None
        self.metrics_server: Any = None
        if args.metrics_address is not None:
            from plugin.node import metrics

            self.metrics = metrics.DaemonMetrics()
        if self.factory is not None:
            from plugin.node import nadcache, podcache

            connection = self.factory().connection
            self.nads = nadcache.NadCache(connection)
            try:
                self.pods = podcache.PodCache(connection, args.node_name)
            except ValueError as exc:  # e.g. a host name with capitals: still serve, with a GET per pod
                log.warning("--node-name: %s; without a pod cache, every ADD GETs its pod", exc)
            if not args.no_events:
                from plugin.node import events

                poster_client = api_client_factory(args.kubeconfig, environ, timeout=5.0, attempts=2,
                                                   deadline=10.0)
                assert poster_client is not None
                self.events = events.EventPoster(poster_client(), quiet=self.activity.wait_quiet)
        if self.metrics is not None:
            if self.nads is not None:
                self.metrics.bind_nad_cache(*_cache_readings(self.nads))
            if self.pods is not None:
                self.metrics.bind_pod_cache(*_cache_readings(self.pods))
            if self.events is not None:
                poster = self.events
                self.metrics.bind_events(lambda: poster.posted, lambda: poster.dropped, lambda: poster.failed)
        self.hooks = NodeHooks(metrics=self.metrics, events=self.events, node=args.node_name,
                               activity=self.activity)
        self.address = args.metrics_address

    def clients(self) -> ClientPool | None:
        if self.factory is None:
            return None
        factory = self.factory
        nads = self.nads.get if self.nads is not None else None
        pods = self.pods.get if self.pods is not None else None
        return ClientPool(lambda: CachedReads(factory(), nads, pods))

    def caches(self) -> list[Any]:
        return [cache for cache in (self.nads, self.pods) if cache is not None]

    def start(self) -> None:
        for cache in self.caches():
            cache.start()
        if self.metrics is not None and self.address is not None:
            self.metrics_server, _ = self.metrics.serve(*self.address)

    def stop(self) -> None:
        if self.events is not None:
            left = self.events.stop(5.0)
            if left:
                log.warning("%d event(s) were not posted before the daemon stopped", left)
        for cache in self.caches():
            cache.stop()
        if self.metrics_server is not None:
            self.metrics_server.shutdown()


def _cache_readings(cache: Any) -> tuple[Callable[[], float], Callable[[], float], Callable[[], float]]:
    """A watch cache's size, restarts and synced, as the metrics read them at scrape time."""
    return cache.size, lambda: cache.restarts, lambda: cache.synced


def warm() -> None:
    """Import now what requests import lazily (the thin plugin defers them to keep its
    start-up small; here the first pod must not pay ~50 ms of imports), then freeze the
    start-up objects out of the cyclic GC: a daemon's full collections would otherwise
    walk every module and class at random moments inside requests."""
    import gc
    import pkgutil

    import plugin.cni
    import plugin.model

    for package in (plugin.cni, plugin.model):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            __import__(info.name)  # as an import statement does (-X importtime shows it)
    gc.collect()
    gc.freeze()


def main_run(args: argparse.Namespace) -> int:
    chroot_program = shutil.which("chroot") or ""
    if args.chroot is not None and not os.path.isdir(os.path.join(args.chroot, "proc")):
        log.error("--chroot %s does not hold a root file system (no proc directory): mount the host's / there",
                  args.chroot)
        return 2
    if args.chroot is not None and not chroot_program:
        log.error("--chroot needs the chroot program (coreutils) on PATH, and there is none")
        return 2
    node = Node(args, os.environ)
    runner = make_runner(base_environ=os.environ, clients=node.clients(), hooks=node.hooks,
                         exec_fn=delegate_runner(args.chroot, chroot_program))
    server = Server(args.socket, runner, hooks=node.hooks, max_request_bytes=args.max_request_bytes,
                    max_concurrent=args.max_concurrent)
    server.bind()
    try:
        node.start()
    except OSError as exc:
        log.error("cannot serve metrics on %s:%d: %s (--metrics-address)", *args.metrics_address, exc.strerror or exc)
        server.stop()
        node.stop()
        return 1
    warm()
    stop_signal: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        stop_signal.append(signum)
        server.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("netplex-node serving %s (API: %s; metrics: %s)", args.socket,
             args.kubeconfig or ("in-cluster" if node.factory else "none"),
             "off" if args.metrics_address is None else "http://{}:{}/metrics".format(*args.metrics_address))
    try:
        server.serve()
        left = server.drain(args.shutdown_timeout)
    finally:
        node.stop()
    name = signal.Signals(stop_signal[0]).name if stop_signal else "stop"
    if left:
        log.error("stopped by %s with %d request(s) still running after %.0f s", name, left, args.shutdown_timeout)
        return 1
    log.info("stopped by %s", name)
    return 0


def main_cli(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "ready":
        return probe(args.socket, args.timeout)
    logging.basicConfig(level=getattr(logging, args.log_level.upper()), stream=sys.stderr,
                        format="%(asctime)s [%(levelname)s] %(name)s: %(message)s")
    netplex = logging.getLogger("netplex")
    netplex.setLevel(1)  # each request's handlers filter by its own logLevel (plugin.cni.main)
    from plugin.cni.kubeconfig import KubeconfigError

    try:
        return main_run(args)
    except KubeconfigError as exc:
        where = f"--kubeconfig {args.kubeconfig}" if args.kubeconfig else "the in-cluster service account"
        log.error("cannot use %s: %s", where, exc)
        return 2
    except OSError as exc:
        log.error("cannot serve %s: %s", args.socket, exc)
        return 1


if __name__ == "__main__":
    sys.exit(main_cli())
