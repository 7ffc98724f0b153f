"""``netplex-install``: put the netplex plugin on a node and keep it configured.

Runs in the plugin DaemonSet's container (as root, with the host's ``/`` at
``--host-root``), never on the host itself::

    netplex-install run         install, then reconcile every --interval seconds until
                                SIGTERM/SIGINT (exit 0); --once reconciles once (exit 0
                                when ready, 1 when not)
    netplex-install ready       readiness probe: exit 0 iff the last reconcile succeeded,
                                else 1 with the reason on stdout
    netplex-install uninstall   remove our conflist, kubeconfig and both binaries from the host

Two modes (DESIGN.md, "The node side"), chosen with ``--mode``:

- ``thick`` (the default): ``<cni-bin-dir>/netplex`` is the shim (``plugin/node/shim.py``)
  that hands each call to the netplex-node daemon over ``--socket``; the plugin zipapp is
  installed beside it as ``netplex-thin``, which the shim runs in-process when the daemon
  cannot be reached. No API credentials are written to the host, so ADD then fails
  (code 11, the runtime retries) while DEL, CHECK, GC and STATUS still work from the
  local cache; ``--thin-fallback`` writes the kubeconfig too and names it in the
  conflist, so that ADD also runs without the daemon.
- ``thin``: ``<cni-bin-dir>/netplex`` is the plugin zipapp itself, with its kubeconfig:
  two interpreter starts per pod, no daemon.

Switching modes rewrites the files; what only the other mode needs (``netplex-thin`` in
thin mode, the kubeconfig in thick mode without ``--thin-fallback``) is removed once the
conflist no longer refers to it.

One reconcile, in order (each step is skipped when nothing changed; the first failing
step makes the node not ready, with one log line saying why and what to do):

1. copy the plugin zipapp (``--plugin``, built by ``python -m plugin.node.pack``) to
   ``<cni-bin-dir>/netplex`` (thin) or ``<cni-bin-dir>/netplex-thin`` (thick),
   atomically, mode 0755;
2. run it inside the host exactly as the runtime will (``plugin.node.host``); a host
   that cannot run it (no python3 >= 3.11, chroot impossible) gets no netplex config:
   ours is removed if present, because a conflist naming a plugin that cannot start
   would break every pod sandbox on the node. In thick mode the check also finds the
   host's python3 by its absolute path; the shim is written for that interpreter
   (``#!<python3> -IS``) and then run the same way (VERSION: answered by the daemon,
   or by netplex-thin while the daemon is not up yet);
3. thin mode or ``--thin-fallback``: write the kubeconfig (token and CA inline, 0600)
   from the pod's service account (``plugin.node.credentials``), warning when the token
   nears expiry unrotated;
4. generate ``00-netplex.conflist`` from the node's primary CNI config
   (``plugin.node.conflist``). With no primary at all, ours is removed too: the node's
   network readiness then stays what the primary network plugin says (Cilium, for one,
   removes its config on purpose while its agent is down). A primary that is invalid
   only for a moment (a non-atomic rewrite) keeps our last good conflist.

Readiness lives in ``<state-dir>/state.json`` (the probe runs as a separate process).
With ``--cleanup-on-exit`` (or ``NETPLEX_CLEANUP_ON_EXIT=true``) ``run`` uninstalls on
SIGTERM. It is off by default: on a DaemonSet rollout it would remove the config between
the old pod and the new one, and pods created in that gap would get no extra networks.
Uninstalling on a node with running pods leaves their secondary IPAM allocations behind
(their DEL no longer reaches netplex): drain the node first.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import logging
import os
import shutil
import signal
import stat
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any, TextIO

from plugin.node import conflist, credentials, host, wire
from plugin.node.credentials import ServiceAccount

DEFAULT_PLUGIN = "/usr/local/lib/netplex/netplex"  # where the Dockerfile builds the zipapp
DEFAULT_HOST_ROOT = "/host"
DEFAULT_BIN_DIR = "/opt/cni/bin"
DEFAULT_CONF_DIR = "/etc/cni/net.d"
DEFAULT_STATE_DIR = "/run/netplex"
DEFAULT_SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_INTERVAL = 10.0
DEFAULT_TOKEN_MARGIN = 300.0
KUBECONFIG_DIR_NAME = "netplex.d"
BINARY_NAME = "netplex"
THIN_BINARY_NAME = "netplex-thin"  # thick mode: the zipapp the shim falls back to
THICK, THIN = "thick", "thin"
MODES = (THICK, THIN)
DEFAULT_SOCKET = "/run/netplex/netplex.sock"  # netplex-node's default --socket
# How long the shim waits for the daemon's answer. An ADD's delegates (IPAM, the cluster
# network) may take tens of seconds; kubelet's own CNI timeout is in the runtime (containerd
# gives a sandbox a few minutes), so 300 s only cuts off a daemon that is stuck.
DEFAULT_SHIM_TIMEOUT = 300.0
MAX_SHIM_TIMEOUT = 3600.0  # plugin.node.wire.render_shim's limit
SHIM_UNSAFE = frozenset(' "\\\n\r\t\0')  # what the shim's string literals cannot hold as they are
STATE_FILE = "state.json"
CLEANUP_ENV = "NETPLEX_CLEANUP_ON_EXIT"
TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off", "")

log = logging.getLogger("netplex.install")


@dataclass(frozen=True, slots=True)
class Options:
    """The command line, with every host path still a host path (see ``plugin.node.host``)."""

    host_root: str = DEFAULT_HOST_ROOT
    bin_dir: str = DEFAULT_BIN_DIR
    conf_dir: str = DEFAULT_CONF_DIR
    kubeconfig_dir: str = f"{DEFAULT_CONF_DIR}/{KUBECONFIG_DIR_NAME}"
    plugin: str = DEFAULT_PLUGIN
    state_dir: str = DEFAULT_STATE_DIR
    service_account_dir: str = DEFAULT_SERVICE_ACCOUNT_DIR
    interval: float = DEFAULT_INTERVAL
    token_margin: float = DEFAULT_TOKEN_MARGIN
    cleanup_on_exit: bool = False
    once: bool = False
    mode: str = THICK
    socket: str = DEFAULT_SOCKET
    shim_timeout: float = DEFAULT_SHIM_TIMEOUT
    thin_fallback: bool = False

    @property
    def binary(self) -> str:
        return f"{self.bin_dir.rstrip('/')}/{BINARY_NAME}"

    @property
    def thin_binary(self) -> str:
        return f"{self.bin_dir.rstrip('/')}/{THIN_BINARY_NAME}"

    @property
    def writes_kubeconfig(self) -> bool:
        """Thin mode always needs API credentials on the host; thick mode only to fall back on ADD."""
        return self.mode == THIN or self.thin_fallback

    @property
    def conflist(self) -> str:
        return f"{self.conf_dir.rstrip('/')}/{conflist.OUR_CONFLIST}"

    @property
    def kubeconfig(self) -> str:
        return f"{self.kubeconfig_dir.rstrip('/')}/{credentials.KUBECONFIG_NAME}"

    def local(self, host_path: str) -> str:
        """Where this process opens ``host_path``."""
        return host.on_host(self.host_root, host_path)


@dataclass(frozen=True, slots=True)
class NotReady:
    """Why a step cannot go on: one line that says what is wrong and what to do."""

    reason: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """One reconcile: ready or not (and why), what it changed, what it warns about.

    ``warnings`` are ``(key, text)``: the loop logs a key once, so a token that keeps
    nearing expiry is reported once, not every interval.
    """

    ready: bool
    reason: str
    changes: tuple[str, ...] = ()
    warnings: tuple[tuple[str, str], ...] = ()
    primary: str | None = None
    primary_sha256: str | None = None


# ------------------------------------------------------------------------ one reconcile


Probe = Callable[[str, str], host.HostCheck]  # (host root, plugin's host path) -> verdict


def host_probe() -> Probe:
    """The real probe: :func:`plugin.node.host.check_host` with this container's chroot."""
    return functools.partial(host.check_host, chroot=shutil.which("chroot"))


def reconcile(opts: Options, environ: Mapping[str, str], now: float, probe: Probe) -> Outcome:
    """Bring the host in line with ``opts``; I/O here, every decision in the helpers.

    ``probe`` answers "can the host run the plugin" (injected: tests of file behaviour
    use a temporary host root, where no Python exists to run it).
    """
    changes: list[str] = []
    warnings: list[tuple[str, str]] = []

    def not_ready(reason: str, **extra: Any) -> Outcome:
        return Outcome(False, reason, tuple(changes), tuple(warnings), **extra)

    plugin = _read_plugin(opts.plugin)
    if isinstance(plugin, NotReady):
        return not_ready(plugin.reason)
    os.makedirs(opts.local(opts.bin_dir), exist_ok=True)
    check = install_thick(opts, plugin, probe, changes) if opts.mode == THICK else install_thin(opts, plugin, probe,
                                                                                                 changes)
    if not check.ok:
        if host.remove(opts.local(opts.conflist)):
            changes.append(f"removed {opts.conflist}: netplex must not be configured where it cannot run")
        retire_other_mode(opts, changes)
        return not_ready(check.reason)

    kubeconfig: str | None = None
    if opts.writes_kubeconfig:
        account = read_service_account(opts.service_account_dir)
        if isinstance(account, NotReady):
            return not_ready(account.reason)
        server = api_server(environ)
        if isinstance(server, NotReady):
            return not_ready(server.reason)
        os.makedirs(opts.local(opts.kubeconfig_dir), mode=0o700, exist_ok=True)
        if host.sync_file(opts.local(opts.kubeconfig), credentials.render(server, account), 0o600):
            changes.append(f"wrote {opts.kubeconfig} (service account token sha256 {_short(account.token.encode())})")
        warning = credentials.expiry_warning(credentials.token_expiry(account.token), now, opts.token_margin)
        if warning is not None:
            warnings.append((f"token-expiry:{_short(account.token.encode())}", warning))
        kubeconfig = opts.kubeconfig

    primary = _primary_name(opts.local(opts.conf_dir))
    if primary is None:
        if host.remove(opts.local(opts.conflist)):
            changes.append(f"removed {opts.conflist}: there is no primary CNI config any more")
        retire_other_mode(opts, changes)
        return not_ready(f"no primary CNI config in {opts.conf_dir} yet (no .conf, .conflist or .json file other "
                         f"than {conflist.OUR_CONFLIST}); waiting for the node's network plugin to write one")
    primary_path = opts.local(f"{opts.conf_dir.rstrip('/')}/{primary}")
    text = host.read_bytes(primary_path)
    if text is None:
        return not_ready(f"primary CNI config {primary} disappeared while being read; retrying")
    generated = conflist.generate(primary, text, kubeconfig, check.supported_versions)
    if isinstance(generated, conflist.Refused):
        return not_ready(generated.reason, primary=primary, primary_sha256=hashlib.sha256(text).hexdigest())
    mode = stat.S_IMODE(os.stat(primary_path).st_mode) & 0o666  # our file holds the primary: no wider access
    if host.sync_file(opts.local(opts.conflist), generated.content, mode):
        caps = ", ".join(generated.capabilities) or "none"
        changes.append(f"wrote {opts.conflist} from {primary} (sha256 {generated.primary_sha256[:12]}, "
                       f"cniVersion {generated.cni_version}, capabilities {caps})")
    retire_other_mode(opts, changes)
    extra = {"primary": primary, "primary_sha256": generated.primary_sha256}
    shadowed = conflist.shadowing_problem(primary)
    if shadowed is not None:
        return not_ready(shadowed, **extra)
    return Outcome(True, f"{opts.conflist} delegates to {primary}; {_runs(opts, check)}", tuple(changes),
                   tuple(warnings), **extra)


def install_thin(opts: Options, plugin: bytes, probe: Probe, changes: list[str]) -> host.HostCheck:
    """Thin mode: the zipapp is ``netplex`` itself; the runtime runs it for every call."""
    if host.sync_file(opts.local(opts.binary), plugin, 0o755):
        changes.append(f"installed {opts.binary} (sha256 {_short(plugin)})")
    return probe(opts.host_root, opts.binary)


def install_thick(opts: Options, plugin: bytes, probe: Probe, changes: list[str]) -> host.HostCheck:
    """Thick mode: the zipapp as ``netplex-thin``, checked on the host first (it is what the
    shim falls back to, and its check finds the host's python3); then the shim written for
    that python3 as ``netplex``, and checked the way the runtime will run it."""
    if host.sync_file(opts.local(opts.thin_binary), plugin, 0o755):
        changes.append(f"installed {opts.thin_binary} (sha256 {_short(plugin)})")
    thin = probe(opts.host_root, opts.thin_binary)
    if not thin.ok:
        return thin
    if not thin.executable.startswith("/"):
        return host.HostCheck(False, f"the host's python3 did not report its absolute path (got "
                                     f"{json.dumps(thin.executable)}); the shim {opts.binary} needs it for its #! "
                                     "line: install python3 as a regular file on the host's PATH")
    try:
        shim = wire.render_shim(socket_path=opts.socket, thin=opts.thin_binary, timeout=opts.shim_timeout,
                                python=thin.executable).encode("utf-8")
    except ValueError as exc:
        return host.HostCheck(False, f"cannot write the shim {opts.binary}: {exc}")
    if host.sync_file(opts.local(opts.binary), shim, 0o755):
        changes.append(f"installed {opts.binary} (the shim to netplex-node at {opts.socket}, "
                       f"#!{thin.executable} -IS, sha256 {_short(shim)})")
    return probe(opts.host_root, opts.binary)


def retire_other_mode(opts: Options, changes: list[str]) -> None:
    """Remove what only the other mode needs, once our conflist no longer refers to it."""
    if opts.mode == THIN:
        if host.remove(opts.local(opts.thin_binary)):
            changes.append(f"removed {opts.thin_binary}: thin mode runs {opts.binary} itself")
        return
    if opts.writes_kubeconfig:
        return
    if host.remove(opts.local(opts.kubeconfig)):
        changes.append(f"removed {opts.kubeconfig}: thick mode keeps API credentials off the host "
                       "(--thin-fallback keeps them for ADD without the daemon)")
        with contextlib.suppress(OSError):  # our directory when empty; a shared or non-empty one stays
            os.rmdir(opts.local(opts.kubeconfig_dir))


def _runs(opts: Options, check: host.HostCheck) -> str:
    """The end of the readiness line: what the runtime executes on this node."""
    python = f"Python {check.python or 'unknown'}"
    if opts.mode == THIN:
        return f"the host runs {opts.binary} with {python}"
    verbs = "every verb (ADD with the --thin-fallback kubeconfig)" if opts.thin_fallback else \
        "DEL, CHECK, GC, STATUS and VERSION"
    return (f"the host runs {opts.binary}, the shim to netplex-node at {opts.socket} that falls back to "
            f"{opts.thin_binary} for {verbs}, with {python} ({check.executable or 'path unknown'})")


def _read_plugin(path: str) -> bytes | NotReady:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        return NotReady(f"cannot read the plugin to install, {path} ({exc.strerror or exc}); the image builds "
                        f"it with `python -m plugin.node.pack --output {DEFAULT_PLUGIN}` (or pass --plugin)")


def _primary_name(conf_dir: str) -> str | None:
    """The primary among the regular files of ``conf_dir`` (None also when it is missing)."""
    try:
        with os.scandir(conf_dir) as entries:
            names = [e.name for e in entries if e.is_file()]
    except FileNotFoundError:
        return None
    return conflist.choose_primary(names)


def read_service_account(directory: str) -> ServiceAccount | NotReady:
    """Token, CA and namespace of the installer pod; a string says what is missing."""
    hint = "the installer pod needs its service account token mounted (automountServiceAccountToken: true)"
    try:
        with open(os.path.join(directory, "token"), encoding="utf-8") as f:
            token = f.read().strip()
        with open(os.path.join(directory, "ca.crt"), "rb") as f:
            ca = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        what = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        where = exc.filename if isinstance(exc, OSError) and exc.filename else directory
        return NotReady(f"cannot read the service account from {where} ({what}); {hint}")
    if not token:
        return NotReady(f"the service account token {os.path.join(directory, 'token')} is empty; {hint}")
    try:
        with open(os.path.join(directory, "namespace"), encoding="utf-8") as f:
            namespace = f.read().strip()
    except (OSError, UnicodeDecodeError):
        namespace = ""  # only the kubeconfig's default namespace; the plugin names namespaces itself
    return ServiceAccount(token=token, ca=ca, namespace=namespace)


def api_server(environ: Mapping[str, str]) -> str | NotReady:
    """The API server URL from the in-cluster environment kubelet gives every pod."""
    host = environ.get("KUBERNETES_SERVICE_HOST", "")
    port = environ.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        return NotReady(f"KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must both be set (got host "
                        f"{json.dumps(host)}, port {json.dumps(port)}); kubelet sets them in a pod, or set "
                        "them to an API server address that the node can reach")
    return credentials.server_url(host, port)


def _short(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


# ------------------------------------------------------------------------ state (readiness)


def save_state(state_dir: str, outcome: Outcome, now: float) -> None:
    os.makedirs(state_dir, exist_ok=True)
    state = {"ready": outcome.ready, "reason": outcome.reason, "time": now,
             "primary": outcome.primary, "primary_sha256": outcome.primary_sha256}
    host.atomic_write(os.path.join(state_dir, STATE_FILE),
                              (json.dumps(state, indent=2) + "\n").encode("utf-8"), 0o644)


def ready(state_dir: str, out: TextIO) -> int:
    """The readiness probe: 0 when the last reconcile succeeded, else 1 and the reason."""
    path = os.path.join(state_dir, STATE_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
    except FileNotFoundError:
        out.write(f"not ready: no reconcile has finished yet ({path} does not exist)\n")
        return 1
    except (OSError, ValueError) as exc:
        out.write(f"not ready: cannot read {path} ({exc})\n")
        return 1
    if not isinstance(state, dict) or state.get("ready") is not True:
        reason = state.get("reason") if isinstance(state, dict) else None
        out.write(f"not ready: {reason or 'the state file says so without a reason'}\n")
        return 1
    out.write(f"ready: {state.get('reason', '')}\n")
    return 0


# ------------------------------------------------------------------------ uninstall


def uninstall(opts: Options) -> int:
    """Remove the conflist first (the runtime stops calling netplex), then the rest: the
    files of either mode, whichever this node had."""
    failures: list[str] = []
    for host_path in (opts.conflist, opts.kubeconfig, opts.binary, opts.thin_binary):
        try:
            if host.remove(opts.local(host_path)):
                log.info("removed %s", host_path)
        except OSError as exc:
            failures.append(f"cannot remove {host_path}: {exc.strerror or exc}")
    try:
        os.rmdir(opts.local(opts.kubeconfig_dir))
        log.info("removed %s", opts.kubeconfig_dir)
    except FileNotFoundError:
        pass
    except OSError as exc:  # not empty: someone else's files, or a shared directory; leave it
        log.warning("kept %s: %s", opts.kubeconfig_dir, exc.strerror or exc)
    for failure in failures:
        log.error("%s", failure)
    try:
        save_state(opts.state_dir, Outcome(False, "netplex was uninstalled from this node"), time.time())
    except OSError as exc:
        log.warning("cannot record the uninstall in %s: %s", opts.state_dir, exc.strerror or exc)
    return 1 if failures else 0


# ------------------------------------------------------------------------ the loop


def run(opts: Options, environ: Mapping[str, str], stop: threading.Event, probe: Probe, *,
        clock: Callable[[], float] = time.time) -> int:
    """Reconcile until ``stop`` is set (0), or once with ``opts.once`` (0 ready, 1 not)."""
    previous: Outcome | None = None
    logged: set[str] = set()
    while True:
        now = clock()
        outcome = _reconcile_logged(opts, environ, now, probe, previous, logged)
        save_state(opts.state_dir, outcome, now)
        previous = outcome
        if opts.once:
            return 0 if outcome.ready else 1
        if stop.wait(opts.interval):
            break
    if opts.cleanup_on_exit:
        log.info("stopping: uninstalling netplex from this node (cleanup on exit)")
        uninstall(opts)
    else:
        log.info("stopping; netplex stays installed on this node")
    return 0


def _reconcile_logged(opts: Options, environ: Mapping[str, str], now: float, probe: Probe,
                      previous: Outcome | None, logged: set[str]) -> Outcome:
    """One reconcile, logging changes, new warnings and changes of readiness only."""
    try:
        outcome = reconcile(opts, environ, now, probe)
    except OSError as exc:
        outcome = Outcome(False, f"cannot update the host: {exc}")
    except Exception as exc:  # a bug: keep the loop alive and the reason visible
        log.exception("reconcile failed unexpectedly")
        outcome = Outcome(False, f"internal error: {type(exc).__name__}: {exc}")
    for change in outcome.changes:
        log.info("%s", change)
    for key, text in outcome.warnings:
        if key not in logged:
            logged.add(key)
            log.warning("%s", text)
    if previous is None or (previous.ready, previous.reason) != (outcome.ready, outcome.reason):
        if outcome.ready:
            log.info("ready: %s", outcome.reason)
        else:
            log.error("not ready: %s", outcome.reason)
    return outcome


# ------------------------------------------------------------------------ command line


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--host-root", default=DEFAULT_HOST_ROOT,
                        help="where the host's / is mounted; every host path is inside it (default: %(default)s)")
    common.add_argument("--cni-bin-dir", default=DEFAULT_BIN_DIR, help="host CNI bin dir (default: %(default)s)")
    common.add_argument("--cni-conf-dir", default=DEFAULT_CONF_DIR, help="host CNI conf dir (default: %(default)s)")
    common.add_argument("--kubeconfig-dir", help=f"host dir of the plugin's kubeconfig "
                                                 f"(default: <cni-conf-dir>/{KUBECONFIG_DIR_NAME})")
    common.add_argument("--plugin", default=DEFAULT_PLUGIN,
                        help="the plugin zipapp to install, in this container (default: %(default)s)")
    common.add_argument("--state-dir", default=DEFAULT_STATE_DIR,
                        help="where readiness is recorded, in this container (default: %(default)s)")
    common.add_argument("--service-account-dir", default=DEFAULT_SERVICE_ACCOUNT_DIR,
                        help="token, ca.crt and namespace of this pod (default: %(default)s)")
    common.add_argument("--interval", type=_positive, default=DEFAULT_INTERVAL,
                        help="seconds between reconciles (default: %(default)s)")
    common.add_argument("--token-expiry-margin", type=_positive, default=DEFAULT_TOKEN_MARGIN,
                        help="warn when the token expires within this many seconds unrotated (default: %(default)s)")
    common.add_argument("--cleanup-on-exit", action="store_true",
                        help=f"uninstall on SIGTERM/SIGINT (also {CLEANUP_ENV}=true)")
    common.add_argument("--once", action="store_true", help="run: reconcile once; exit 0 when ready, 1 when not")
    common.add_argument("--mode", choices=MODES, default=THICK,
                        help="thick: <cni-bin-dir>/netplex is the shim to the netplex-node daemon, the plugin is "
                             f"{THIN_BINARY_NAME} beside it; thin: netplex is the plugin itself, with a kubeconfig "
                             "on the host (default: %(default)s)")
    common.add_argument("--socket", default=DEFAULT_SOCKET,
                        help="thick: host path of netplex-node's socket, written into the shim (default: %(default)s)")
    common.add_argument("--shim-timeout", type=_shim_timeout, default=DEFAULT_SHIM_TIMEOUT,
                        help="thick: seconds the shim waits for the daemon's answer before failing the call with "
                             f"code 11, at most {MAX_SHIM_TIMEOUT:g} (default: %(default)s)")
    common.add_argument("--thin-fallback", action="store_true",
                        help="thick: also write the plugin kubeconfig and name it in the conflist, so that ADD runs "
                             f"through {THIN_BINARY_NAME} while the daemon is down (API credentials on the host)")
    parser = argparse.ArgumentParser(prog="netplex-install", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="{run,ready,uninstall}")
    commands.add_parser("run", parents=[common], help="install and keep reconciling")
    commands.add_parser("ready", parents=[common], help="readiness probe")
    commands.add_parser("uninstall", parents=[common], help="remove netplex from the host")
    return parser


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds (got {text!r})") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds (got {text!r})")
    return value


def _shim_timeout(text: str) -> float:
    value = _positive(text)
    if value > MAX_SHIM_TIMEOUT:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_SHIM_TIMEOUT:g} seconds (got {text!r}); the shim "
                                         "only needs to outlast the slowest ADD")
    return value


def options_from(args: argparse.Namespace, environ: Mapping[str, str]) -> Options | str:
    """The parsed command line and environment as Options, or a usage error."""
    for flag, value in (("--cni-bin-dir", args.cni_bin_dir), ("--cni-conf-dir", args.cni_conf_dir),
                        ("--kubeconfig-dir", args.kubeconfig_dir), ("--socket", args.socket)):
        if value is not None and not value.startswith("/"):
            return f"{flag} must be an absolute host path (got {value!r})"
    for flag, value in (("--socket", args.socket), ("--cni-bin-dir", args.cni_bin_dir)):
        if args.mode == THICK and any(c in value for c in SHIM_UNSAFE):
            return (f"{flag} must not contain spaces, quotes, backslashes or control characters (got {value!r}); "
                    "the shim holds it as a literal")
    if args.thin_fallback and args.mode == THIN:
        return "--thin-fallback applies to --mode thick only (got --mode thin, which always writes the kubeconfig)"
    cleanup_env = environ.get(CLEANUP_ENV, "").strip().lower()
    if cleanup_env not in TRUE_WORDS + FALSE_WORDS:
        return f"{CLEANUP_ENV} must be true or false (got {environ[CLEANUP_ENV]!r})"
    conf_dir = args.cni_conf_dir.rstrip("/") or "/"
    return Options(
        host_root=args.host_root,
        bin_dir=args.cni_bin_dir,
        conf_dir=conf_dir,
        kubeconfig_dir=args.kubeconfig_dir or f"{conf_dir.rstrip('/')}/{KUBECONFIG_DIR_NAME}",
        plugin=args.plugin,
        state_dir=args.state_dir,
        service_account_dir=args.service_account_dir,
        interval=args.interval,
        token_margin=args.token_expiry_margin,
        cleanup_on_exit=args.cleanup_on_exit or cleanup_env in TRUE_WORDS,
        once=args.once,
        mode=args.mode,
        socket=args.socket,
        shim_timeout=args.shim_timeout,
        thin_fallback=args.thin_fallback,
    )


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None,
         stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Entry point of ``netplex-install``; the arguments are the test seam."""
    env = os.environ if environ is None else environ
    out = sys.stdout if stdout is None else stdout
    parser = build_parser()
    args = parser.parse_args(argv)
    opts = options_from(args, env)
    if isinstance(opts, str):
        parser.error(opts)
    if args.command == "ready":
        return ready(opts.state_dir, out)
    handler = logging.StreamHandler(sys.stderr if stderr is None else stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        if args.command == "uninstall":
            return uninstall(opts)
        return _run_until_signalled(opts, env)
    finally:
        log.removeHandler(handler)


def _run_until_signalled(opts: Options, environ: Mapping[str, str]) -> int:
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return run(opts, environ, stop, host_probe())
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
