"""ADD, DEL, CHECK, GC and STATUS of the delegating plugin: the order of events.

What runs is decided in ``plugin.cni.resolve``, how one network configuration is executed in
``plugin.cni.chain``; this module puts them in order, keeps the per-sandbox cache
(``plugin.cni.cache``) and turns every failure into a ``plugin.cni.protocol.CniError`` that names
the pod, the network and the delegate's own message.

ADD is transactional. Every delegate is decided before the first one runs (a bad
selection, a missing NAD, a ``type`` that is a path, an undeclared capability change
nothing on the node). The cache entry, holding every delegate's exact configuration and
interface, is on disk before the first delegate runs and is rewritten after each one
with its result. If a delegate fails, every delegate already started is deleted again
in reverse order, the failing one too (CNI-18), and the same happens when a later step
fails (default route, network-status annotation). Then the cluster network's result is
returned, converted to the version the runtime asked for.

DEL never needs the API server when the cache entry exists: every attachment gets DEL
in reverse order with its cached configuration and result; errors are collected, none
stops the rest (NPWG-35); the entry is removed only when every DEL succeeded, otherwise
it keeps exactly the attachments that still need one, for the runtime's retry. CHECK
checks every cached attachment (Multus checks only its configured delegates). GC DELs
the attachments of cached containers the runtime no longer lists and passes GC on; an
entry it cannot read is logged and left for the container's DEL, not a GC error. GC's
error keeps the CNI code of its problems when they share one (999 for a mix).

Concurrency (CNI-17, NPWG-36): ADD, DEL and CHECK hold the container's lock, GC the
global one (``plugin.cni.cache.sandbox_lock``/``gc_lock``); a lock not obtained within
``Environment.lock_timeout`` is code 11 (try again later).

Decisions where Multus or the specs leave a choice:

- **Pod not found** after the retries (deleted while its sandbox was being made): the
  pod gets what the configuration alone decides, the cluster network and
  ``defaultNetworks``, with a warning, and no network-status is written. Multus returns
  a made-up empty result and attaches nothing, so the runtime believes a pod has a
  network that it does not have.
- **Pod UID**: ``K8S_POD_UID`` must be the pod's (static pods excepted, ``plugin.cni.k8s``);
  without it, the fetched pod's ``metadata.uid`` is used (device look-up, cache).
- **An earlier ADD's entry** still present: the ADD is refused until the runtime DELs
  (a second ADD would fail on the existing interfaces, and its rollback would delete
  the first ADD's interfaces).
- **Rollback**: a DEL error of the delegate whose ADD failed is reported but does not
  keep the entry (its ADD already failed; a configuration that cannot even be deleted,
  e.g. a macvlan master that does not exist, would otherwise make every later DEL fail).
  DEL errors of delegates that had been added keep exactly those in the entry.
- **DEL without a cache entry** (never added, rolled back, already deleted, or lost):
  the attachments are rebuilt from the API as ADD would make them (or, without the API
  or the pod, from the configuration alone: the cluster network and the extra
  ``delegates``) and deleted best-effort: errors are logged, not returned, because
  nothing says those attachments exist, and a DEL that fails makes the kubelet retry
  the teardown forever.
- **CNI_ARGS**: parsed on the first ``=`` (a value may hold ``=``, which breaks Multus).
  The delegates get each key once, with ``IgnoreUnknown=true``; a pair whose value
  holds ``=`` is not passed to them (with a warning), because libcni's ``LoadArgs`` in
  every Go plugin (host-local, bridge, ...) refuses the whole string with
  ``ARGS: invalid pair``.
- **systemNamespaces** are compared with the pod's *namespace* (Multus compares its
  name): pods there get no ``defaultNetworks`` and no network-status annotation.
- **default-route**: for each address family of the requested gateways (the first one
  per family; with an empty list, the attachment's own gateways), every default route
  in the pod is deleted and one is added via that gateway on that attachment's
  interface, so the pod ends with exactly one per family. The cached results (and the
  returned cluster result) are updated the same way, so CHECK of the other attachments
  does not expect the default route they no longer have.
- **network-status** is one JSON merge patch of ``pods/status``; a 404 (the pod went
  away meanwhile) is only logged, any other failure fails (and rolls back) the ADD.
- **Device info** (NPWG-40..44): an attachment with a device ID gets its own CNI
  device-info file under ``<device_info_dir>/cni/`` (passed as ``CNIDeviceInfoFile`` to
  plugins that declare the capability); when the NAD has a resourceName and the device
  plugin left ``dp/<resource>-<device>-device.json``, it is copied there before the
  delegate runs; after ADD its content is the status entry's ``device-info``; it is
  deleted on DEL.
- **Readiness** (``readinessindicatorfile``): ADD waits for the file (NPWG-32); STATUS
  reports its absence at once (code 50); DEL only warns; GC does not look.

Exceptions: everything a command raises on purpose is a ``plugin.cni.protocol.CniError`` (the
code and message the runtime sees); ``plugin.cni.main`` renders it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

from plugin.cni import cache, chain, logs, protocol
from plugin.cni.config import PluginConfig
from plugin.cni.delegate import DEFAULT_TIMEOUT, DelegateError, ExecFn
from plugin.model.names import parse_cidr
from plugin.model.records import record, replace

TYPE_CHECKING = False  # typing is not imported at run time (~4 ms per start); mypy takes this as True
if TYPE_CHECKING:  # imported where used: a DEL with a cache entry needs none of them
    from typing import Any

    from plugin.cni import resolve
    from plugin.model import selection

log = logs.get_logger("netplex")

READINESS_POLL_SECONDS = 1.0
DEVINFO_DIR = "/var/run/k8s.cni.cncf.io/devinfo"
DEFAULT_ROUTE_DST = {4: "0.0.0.0/0", 6: "::/0"}

ClientFactory = Callable[[str | None, Mapping[str, str]], "Any"]
"""``(kubeconfig path or None, environ) -> client`` (a ``plugin.cni.k8s.Client``); may raise
``plugin.cni.kubeconfig.KubeconfigError``."""


@record
class Environment:
    """Everything a command touches besides its arguments (the test seam).

    ``environ`` is the plugin's own environment (passed on to delegates, and where the
    in-cluster ``KUBERNETES_SERVICE_*`` variables are read); ``exec_fn`` runs a delegate
    (``plugin.cni.delegate.ExecFn``; None = a subprocess).
    """

    environ: Mapping[str, str]
    client_factory: ClientFactory | None = None
    client: Any = None
    """A ready API client shared by many commands (the netplex-node daemon's warm one);
    used instead of ``kubeconfig``, and never closed by a command."""
    observer: Observer | None = None
    exec_fn: ExecFn | None = None
    readiness_timeout: float = 45.0
    pod_attempts: int = 10
    pod_delay: float = 0.25
    delegate_timeout: float = DEFAULT_TIMEOUT
    lock_timeout: float = 120.0
    device_info_dir: str = DEVINFO_DIR


class Observer:
    """What a long-lived host (the netplex-node daemon) learns of a command, for Events
    and metrics. Called on the command's thread after the fact; must not raise or block."""

    def added(self, pod: PodRef, entries: Sequence[Mapping[str, Any]]) -> None:
        """ADD succeeded and wrote ``entries`` (network-status, in order) on ``pod``."""

    def add_failed(self, pod: PodRef | None, network: str | None, delegate: str, error: protocol.CniError) -> None:
        """ADD failed (and was rolled back); ``network`` and ``delegate`` when one was at fault."""


# ------------------------------------------------------------------------ shared parts


@record(frozen=True, slots=True)
class PodRef:
    namespace: str
    name: str
    uid: str

    @property
    def label(self) -> str:
        """``namespace/name/uid`` as Multus writes it in its messages."""
        return f"{self.namespace}/{self.name}" + (f"/{self.uid}" if self.uid else "")


def pod_ref(args: Sequence[tuple[str, str]]) -> PodRef | None:
    values = dict(args)
    namespace, name = values.get("K8S_POD_NAMESPACE", ""), values.get("K8S_POD_NAME", "")
    if not namespace or not name:
        return None
    return PodRef(namespace, name, values.get("K8S_POD_UID", ""))


def _who(pod: PodRef | None) -> str:
    return f"[{pod.label}]: " if pod else ""


def delegate_cni_args(args: Sequence[tuple[str, str]]) -> str:
    """CNI_ARGS for delegates: ``IgnoreUnknown=true`` and the runtime's pairs, once each.

    Pairs whose value holds ``=`` are left out (see the module docstring).
    """
    pairs: list[tuple[str, str]] = []
    for key, value in args:
        if key == "IgnoreUnknown":
            continue
        if "=" in value:
            log.warning("CNI_ARGS %s is not passed to the delegates: its value contains '=', which "
                        "libcni-based plugins refuse (ARGS: invalid pair)", key)
            continue
        pairs.append((key, value))
    return protocol.format_cni_args([("IgnoreUnknown", "true"), *pairs])


def dirs_of(cfg: PluginConfig, inv: protocol.Invocation) -> list[str]:
    """``binDir`` first, then CNI_PATH, without repeats (Multus' order)."""
    seen: list[str] = []
    for d in (cfg.bin_dir, *inv.path):
        if d and d not in seen:
            seen.append(d)
    return seen


def make_client(cfg: PluginConfig, env: Environment) -> Any:
    """The API client, or None when there is no Kubernetes (no ``kubeconfig`` and no
    in-cluster environment). Nothing of ``plugin.cni.k8s`` is imported in the second case."""
    if env.client is not None:
        return env.client
    in_cluster = bool(env.environ.get("KUBERNETES_SERVICE_HOST") and env.environ.get("KUBERNETES_SERVICE_PORT"))
    if not cfg.kubeconfig and not in_cluster:
        return None
    from plugin.cni import kubeconfig

    where = f"the kubeconfig {cfg.kubeconfig}" if cfg.kubeconfig else "the in-cluster service account"
    try:
        if env.client_factory is not None:
            return env.client_factory(cfg.kubeconfig, env.environ)
        from plugin.cni import k8s

        return k8s.client_from_config(cfg.kubeconfig, environ=env.environ)
    except kubeconfig.KubeconfigError as exc:
        raise protocol.CniError(protocol.INVALID_CONFIG, f"cannot use {where}", str(exc)) from exc


@contextlib.contextmanager
def _closing(client: Any, env: Environment) -> Iterator[Any]:
    try:
        yield client
    finally:
        close = getattr(client, "close", None) if client is not env.client else None
        if callable(close):
            close()


@contextlib.contextmanager
def _container_lock(cfg: PluginConfig, container_id: str, env: Environment) -> Iterator[None]:
    try:
        with cache.sandbox_lock(cfg.cni_dir, container_id, timeout=env.lock_timeout):
            yield
    except cache.LockTimeout as exc:
        raise protocol.CniError(protocol.TRY_AGAIN_LATER, f"container {container_id} is busy",
                           f"{exc} after {env.lock_timeout:g}s") from exc
    except cache.CacheDirError as exc:
        raise _cache_dir_failure(exc, f"cannot lock container {container_id}") from exc


def _cache_dir_failure(exc: cache.CacheDirError, what: str) -> protocol.CniError:
    """A configured ``cniDir`` that is no directory is bad config (7); the rest is I/O (5)."""
    return protocol.CniError(protocol.INVALID_CONFIG if exc.configured else protocol.IO_FAILURE, what, str(exc))


def _cni_dir_advice(exc: OSError, cfg: PluginConfig, what: str) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"nothing was {what}; free space in {cfg.cni_dir} (cniDir) and retry"
    return f"nothing was {what}; cniDir must name a directory that netplex can write"


def _api_failure(exc: Exception, what: str) -> protocol.CniError:
    """An API error as a CNI error: 11 when trying again may help, else 7."""
    status_code = getattr(exc, "status", 0)
    retry = status_code == 429 or status_code >= 500
    return protocol.CniError(protocol.TRY_AGAIN_LATER if retry else protocol.INVALID_CONFIG, what, str(exc))


def wait_ready(cfg: PluginConfig, env: Environment) -> None:
    """NPWG-32: with ``readinessindicatorfile``, wait for the cluster network to be ready."""
    path = cfg.readiness_indicator_file
    if not path:
        return
    deadline = time.monotonic() + env.readiness_timeout
    while not os.path.exists(path):
        if time.monotonic() >= deadline:
            raise protocol.CniError(
                protocol.TRY_AGAIN_LATER, "cluster network not ready",
                f"readiness indicator file {path} did not appear within {env.readiness_timeout:g}s; "
                "has the default network been installed on this node?")
        time.sleep(min(READINESS_POLL_SECONDS, max(0.0, deadline - time.monotonic())))


# ---------------------------------------------------------------------------- planning


@record(frozen=True)
class Plan:
    pod: PodRef | None
    delegates: list[resolve.Delegate]
    publish: bool = False  # write the network-status annotation


def plan_add(cfg: PluginConfig, inv: protocol.Invocation, env: Environment, client: Any, *,
             with_devices: bool = True) -> Plan:
    """Decide every delegate before anything runs (so a bad selection changes nothing)."""
    from plugin.cni import resolve
    from plugin.model import selection

    pod = pod_ref(inv.args)
    pod_obj: Mapping[str, Any] | None = None
    if client is not None and pod is not None:
        pod_obj = _read_pod(client, pod, env)
        if pod_obj is None:
            log.warning("%spod not found in the API after %d attempts; attaching only the cluster network and "
                        "defaultNetworks, without a network-status annotation", _who(pod), env.pod_attempts)
        elif not pod.uid:
            pod = replace(pod, uid=str((pod_obj.get("metadata") or {}).get("uid") or ""))
    get_nad = _nad_getter(client, pod)
    annotations = _annotations(pod_obj)
    try:
        override = None
        if pod_obj is not None and selection.DEFAULT_NETWORK_ANNOTATION in annotations:
            parsed_default = selection.parse_default_network(
                str(annotations[selection.DEFAULT_NETWORK_ANNOTATION]), cfg.multus_namespace)
            if not parsed_default.ok:
                raise _selection_error(pod, parsed_default)
            override = parsed_default.selections[0]
        configured = resolve.cluster_delegates(cfg, inv.ifname, get_nad, override)
        extras = configured[1:]
        if pod is not None:
            extras += resolve.default_network_refs(cfg, pod.namespace, get_nad)
        selected: list[resolve.Delegate] = []
        taken = {inv.ifname}
        if pod_obj is not None and pod is not None and get_nad is not None:
            value = annotations.get(selection.NETWORKS_ANNOTATION)
            parsed = selection.parse_networks(value if isinstance(value, str) else None, pod.namespace,
                                              reserved_interfaces=(inv.ifname,))
            if not parsed.ok:
                raise _selection_error(pod, parsed)
            allocator = _device_allocator(cfg, pod) if with_devices else None
            for sel in parsed.selections:
                selected.append(resolve.selection_delegate(sel, pod.namespace, cfg, get_nad, allocator))
                taken.add(sel.interface)
        extras = resolve.name_extra_interfaces(extras, taken)
    except resolve.ResolveError as exc:
        raise protocol.CniError(protocol.INVALID_CONFIG, f"{_who(pod)}cannot resolve the pod's networks", str(exc)) from exc
    publish = (client is not None and pod is not None and pod_obj is not None
               and pod.namespace not in cfg.system_namespaces)
    return Plan(pod, [configured[0], *extras, *selected], publish)


def _read_pod(client: Any, pod: PodRef, env: Environment) -> Mapping[str, Any] | None:
    from plugin.cni import k8s

    try:
        found: Mapping[str, Any] | None = k8s.wait_for_pod(
            client, pod.namespace, pod.name, pod.uid or None, attempts=env.pod_attempts, delay=env.pod_delay)
    except k8s.PodUidMismatch as exc:
        raise protocol.CniError(protocol.INVALID_CONFIG, f"{_who(pod)}{exc.message}", exc.hint) from exc
    except k8s.ApiError as exc:
        raise _api_failure(exc, f"{_who(pod)}error getting pod") from exc
    return found


def _annotations(pod: Mapping[str, Any] | None) -> Mapping[str, Any]:
    meta = pod.get("metadata") if pod else None
    annotations = meta.get("annotations") if isinstance(meta, Mapping) else None
    return annotations if isinstance(annotations, Mapping) else {}


def _selection_error(pod: PodRef | None, parsed: selection.SelectionResult) -> protocol.CniError:
    return protocol.CniError(protocol.INVALID_CONFIG, f"{_who(pod)}invalid network selection",
                        "; ".join(str(p) for p in parsed.errors))


def _nad_getter(client: Any, pod: PodRef | None) -> resolve.GetNad | None:
    if client is None:
        return None

    def get_nad(namespace: str, name: str) -> Mapping[str, Any] | None:
        from plugin.cni import k8s

        try:
            nad: Mapping[str, Any] = client.get_nad(namespace, name)
        except k8s.ApiError as exc:
            if exc.status == 404:
                return None
            raise _api_failure(exc, f"{_who(pod)}error getting network-attachment-definition "
                                    f"{namespace}/{name}") from exc
        return nad

    return get_nad


def _device_allocator(cfg: PluginConfig, pod: PodRef) -> resolve.NextDevice:
    """Read the kubelet checkpoint only when a selected NAD needs a device."""
    state: dict[str, Any] = {}

    def next_device(resource: str, network: str) -> str:
        from plugin.cni import devices, resolve

        try:
            if "allocator" not in state:
                state["allocator"] = devices.DeviceAllocator(devices.device_ids(cfg.device_checkpoint, pod.uid))
            device: str = state["allocator"].next(resource, network)
        except devices.DeviceError as exc:
            raise resolve.ResolveError(str(exc)) from exc
        return device

    return next_device


def _with_device_info(delegates: Sequence[resolve.Delegate], container_id: str,
                      env: Environment) -> list[resolve.Delegate]:
    """Each attachment with a device ID gets its CNI device-info path (NPWG-41, NPWG-43)."""
    from plugin.cni import devices

    out = []
    for d in delegates:
        if d.device_id is None:
            out.append(d)
            continue
        path = devices.cni_device_info_path(d.network, container_id, d.ifname, devinfo_dir=env.device_info_dir)
        out.append(replace(d, device_info_file=path,
                           capability_args={**d.capability_args, "CNIDeviceInfoFile": path}))
    return out


def _copy_device_info(d: resolve.Delegate, env: Environment) -> None:
    """NPWG-42: the device plugin's file for this device, copied to the attachment's own."""
    if d.device_info_file is None or d.resource is None or d.device_id is None:
        return
    from plugin.cni import devices

    source = devices.dp_device_info_path(d.resource, d.device_id, devinfo_dir=env.device_info_dir)
    try:
        with open(source, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return
    except OSError as exc:
        log.warning("cannot read device-info file %s: %s", source, exc)
        return
    directory = os.path.dirname(d.device_info_file)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    partial = f"{d.device_info_file}.tmp"
    with open(partial, "wb") as handle:
        handle.write(data)
    os.replace(partial, d.device_info_file)


def _read_device_info(path: str | None) -> Mapping[str, Any] | None:
    if path is None:
        return None
    try:
        with open(path, "rb") as handle:
            data = json.loads(handle.read())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("device-info file %s is unreadable, left out of network-status: %s", path, exc)
        return None
    if not isinstance(data, dict):
        log.warning("device-info file %s is not a JSON object, left out of network-status", path)
        return None
    return data


# --------------------------------------------------------------------------------- ADD


def cmd_add(cfg: PluginConfig, inv: protocol.Invocation, env: Environment, request_version: str) -> dict[str, Any]:
    wait_ready(cfg, env)
    client = make_client(cfg, env)
    with _closing(client, env), _container_lock(cfg, inv.container_id, env):
        _refuse_earlier_entry(cfg, inv)
        try:
            plan = plan_add(cfg, inv, env, client)
        except protocol.CniError as exc:  # nothing ran yet: a missing NAD, a bad selection, ...
            if env.observer is not None:
                env.observer.add_failed(pod_ref(inv.args), None, "", exc)
            raise
        delegates = _with_device_info(plan.delegates, inv.container_id, env)
        cni_args = delegate_cni_args(inv.args)
        entry = cache.SandboxEntry(
            container_id=inv.container_id, netns=inv.netns,
            pod_namespace=plan.pod.namespace if plan.pod else "", pod_name=plan.pod.name if plan.pod else "",
            pod_uid=plan.pod.uid if plan.pod else "",
            attachments=tuple(_cached(d, cni_args) for d in delegates),
        )
        _write_first_entry(cfg, entry)
        dirs = dirs_of(cfg, inv)
        results: list[dict[str, Any]] = []
        for position, d in enumerate(delegates):
            try:
                _copy_device_info(d, env)
                result = chain.add(d.conflist, _attachment(inv.container_id, d, cni_args, inv.netns), dirs=dirs,
                                   environ=env.environ, exec_fn=env.exec_fn, timeout=env.delegate_timeout)
            except (DelegateError, protocol.CniError, OSError) as exc:
                raise _add_failed(exc, plan.pod, d, entry, position + 1, cfg, inv, env, dirs) from exc
            results.append(result)
            entry = entry.with_result(position, result)
            try:  # after the first write, no fsync: results only add prevResult (plugin.cni.cache)
                cache.write(cfg.cni_dir, entry, durable=False)
            except OSError as exc:
                raise _add_failed(exc, plan.pod, None, entry, position + 1, cfg, inv, env, dirs) from exc
        try:
            results, routes = _apply_default_routes(delegates, results, inv.netns)
            if routes:
                for position, result in enumerate(results):
                    entry = entry.with_result(position, result)
                cache.write(cfg.cni_dir, entry, durable=False)
            entries = _publish_status(client, plan, delegates, results, routes, inv.netns) if plan.publish else []
        except (protocol.CniError, OSError) as exc:
            raise _add_failed(exc, plan.pod, None, entry, len(delegates), cfg, inv, env, dirs) from exc
        if env.observer is not None and plan.pod is not None and entries:
            env.observer.added(plan.pod, entries)
        return protocol.convert_result(results[0], request_version)


def _write_first_entry(cfg: PluginConfig, entry: cache.SandboxEntry) -> None:
    """The entry that lets a DEL undo a crashed ADD; without it nothing may run (a full
    disk must not turn into attached networks that no DEL can find)."""
    try:
        cache.write(cfg.cni_dir, entry)
    except OSError as exc:
        raise protocol.CniError(
            protocol.IO_FAILURE,
            f"cannot write the cache entry {cache.entry_path(cfg.cni_dir, entry.container_id)} before running any "
            f"delegate: {exc}", _cni_dir_advice(exc, cfg, "attached")) from exc


def _refuse_earlier_entry(cfg: PluginConfig, inv: protocol.Invocation) -> None:
    try:
        earlier = cache.read(cfg.cni_dir, inv.container_id)
    except cache.CacheError as exc:
        raise protocol.CniError(protocol.INVALID_CONFIG, f"container {inv.container_id} has an unreadable cache entry",
                           f"{exc}; the runtime must DEL the container before it ADDs it again") from exc
    if earlier is not None and earlier.attachments:
        networks = ", ".join(f"{a.network} ({a.ifname})" for a in earlier.attachments)
        raise protocol.CniError(
            protocol.INVALID_CONFIG, f"container {inv.container_id} already has networks from an earlier ADD",
            f"{cache.entry_path(cfg.cni_dir, inv.container_id)} lists {networks}; the runtime must DEL "
            "the container before it ADDs it again")


def _cached(d: resolve.Delegate, cni_args: str) -> cache.CachedAttachment:
    return cache.CachedAttachment(d.network, d.ifname, d.config_bytes(), cni_args, dict(d.capability_args),
                                  default=d.default, device_info_file=d.device_info_file)


def _attachment(container_id: str, d: resolve.Delegate, cni_args: str, netns: str | None) -> chain.Attachment:
    return chain.Attachment(container_id=container_id, netns=netns, ifname=d.ifname, cni_args=cni_args,
                            capability_args=dict(d.capability_args))


def _add_failed(exc: Exception, pod: PodRef | None, failed: resolve.Delegate | None, entry: cache.SandboxEntry,
                attempted: int, cfg: PluginConfig, inv: protocol.Invocation, env: Environment,
                dirs: list[str]) -> protocol.CniError:
    """Roll back the ``attempted`` first attachments; the error the runtime sees."""
    problems, kept = _rollback(entry, attempted, cfg, inv, env, dirs)
    code = getattr(exc, "code", 0) or (protocol.IO_FAILURE if isinstance(exc, OSError) else protocol.INTERNAL)
    text = exc.msg if isinstance(exc, protocol.CniError) else str(exc)
    if failed is not None:
        msg = f'{_who(pod)}error adding network "{failed.network}" (interface {failed.ifname}): {text}'
    else:  # a later step; its message names the pod already
        msg = text
    details = [exc.details] if isinstance(exc, protocol.CniError) and exc.details else []
    undone = attempted - len(kept)
    if kept:
        details.append(f"rollback failed for {', '.join(kept)} (kept in the cache for the runtime's DEL): "
                       + "; ".join(problems))
    else:
        details.append(f"rolled back: {undone} network{'s' if undone != 1 else ''} deleted again"
                       + (f" ({'; '.join(problems)})" if problems else ""))
    error = protocol.CniError(code, msg, "; ".join(details))
    if env.observer is not None:
        env.observer.add_failed(pod, failed.network if failed else None, getattr(exc, "plugin", "") or "", error)
    return error


def _rollback(entry: cache.SandboxEntry, attempted: int, cfg: PluginConfig, inv: protocol.Invocation,
              env: Environment, dirs: list[str]) -> tuple[list[str], list[str]]:
    """DEL the attempted attachments in reverse; (problems, networks kept in the entry)."""
    problems: list[str] = []
    left: list[cache.CachedAttachment] = []
    for att, problem in _delete_attachments(entry.attachments[:attempted], inv.container_id, entry.netns,
                                            env, dirs):
        if problem is None:
            continue
        if att.result is None:  # its ADD failed: report, but do not keep (module docstring)
            problems.append(f"{problem} (ignored: its ADD had failed)")
        else:
            problems.append(problem)
            left.insert(0, att)
    if left:
        cache.write(cfg.cni_dir, replace(entry, attachments=tuple(left)))
    else:
        cache.remove(cfg.cni_dir, inv.container_id)
    return problems, [f"{a.network} ({a.ifname})" for a in left]


def _apply_default_routes(delegates: Sequence[resolve.Delegate], results: Sequence[Mapping[str, Any]],
                          netns: str) -> tuple[list[dict[str, Any]], dict[int, tuple[str, ...]]]:
    """``default-route`` (NPWG §4.1.2.1.9): one default route per family, via the requested
    gateway; the results updated to match, and the gateways used (by delegate position)."""
    updated = [dict(r) for r in results]
    chosen = next((i for i, d in enumerate(delegates) if d.default_route is not None), None)
    if chosen is None:
        return updated, {}
    d = delegates[chosen]
    gateways: dict[int, str] = {}
    for gw in list(d.default_route or ()) or _result_gateways(results[chosen]):
        gateways.setdefault(6 if ":" in gw else 4, gw)
    if not gateways:
        log.warning('network "%s" asks for the default route but has no gateway; routes left as they are',
                    d.network)
        return updated, {}
    from plugin.cni import netns as nets

    for family, gw in sorted(gateways.items()):
        try:
            nets.delete_default_routes(netns, family, except_ifname=None)
            nets.set_default_route(netns, d.ifname, gw, family)
        except nets.NetnsError as exc:
            raise protocol.CniError(protocol.INTERNAL, f'cannot make {gw} on {d.ifname} (network "{d.network}") the '
                               "default route", str(exc)) from exc
    for i, result in enumerate(updated):
        routes = result.get("routes")
        if isinstance(routes, list):
            result["routes"] = [r for r in routes if _default_family(r) not in gateways]
        if i == chosen and "ips" in result:  # a 0.3.0+ result (0.1/0.2 ones are left as they are)
            result["routes"] = [*result.get("routes", []),
                                *({"dst": DEFAULT_ROUTE_DST[f], "gw": gw} for f, gw in sorted(gateways.items()))]
    return updated, {chosen: tuple(gw for _, gw in sorted(gateways.items()))}


def _default_family(route: Any) -> int | None:
    """4 or 6 for a default route (``0.0.0.0/0``, ``::/0``), else None."""
    dst = route.get("dst") if isinstance(route, Mapping) else None
    parsed = parse_cidr(dst) if isinstance(dst, str) else None
    return parsed.version if parsed is not None and parsed.network.prefixlen == 0 else None


def _result_gateways(result: Mapping[str, Any]) -> list[str]:
    out = []
    for ip in result.get("ips") or ():
        gw = ip.get("gateway") if isinstance(ip, Mapping) else None
        if isinstance(gw, str) and gw:
            out.append(gw)
    return out


def _publish_status(client: Any, plan: Plan, delegates: Sequence[resolve.Delegate],
                    results: Sequence[Mapping[str, Any]], routes: Mapping[int, tuple[str, ...]],
                    netns: str) -> list[dict[str, Any]]:
    """network-status (NPWG §5): one entry per attachment, one merge patch of pods/status;
    the entries written (none when the pod is gone)."""
    from plugin.cni import k8s, status

    pod = plan.pod
    assert pod is not None
    entries = []
    for position, (d, result) in enumerate(zip(delegates, results, strict=True)):
        try:
            entries.append(status.from_cni_result(
                result, name=d.network, ifname=d.ifname, netns=netns, default=d.default,
                device_info=_read_device_info(d.device_info_file), default_route=routes.get(position, ())))
        except status.StatusError as exc:
            raise protocol.CniError(protocol.DECODE_FAILURE, f'{_who(pod)}cannot describe network "{d.network}" in '
                               "network-status", str(exc)) from exc
    try:
        client.patch_pod_status_annotations(pod.namespace, pod.name,
                                            {status.NETWORK_STATUS_ANNOTATION: status.dumps(entries)})
    except k8s.ApiError as exc:
        if exc.status == 404:
            log.warning("%spod is gone; network-status not written: %s", _who(pod), exc)
            return []
        raise _api_failure(exc, f"{_who(pod)}error setting the network-status annotation") from exc
    return [e.to_dict() for e in entries]


# --------------------------------------------------------------------------------- DEL


def _delete_attachments(attachments: Sequence[cache.CachedAttachment], container_id: str, netns: str | None,
                        env: Environment, dirs: list[str]
                        ) -> list[tuple[cache.CachedAttachment, str | None]]:
    """DEL each attachment in reverse order; every one is tried (NPWG-35). Returns each
    attachment with its problem (None when its DEL succeeded, which also removes its
    device-info file)."""
    usable_netns = netns if netns and os.path.exists(netns) else None  # CNI-28: gone is fine
    done: list[tuple[cache.CachedAttachment, str | None]] = []
    for att in reversed(attachments):
        problem = None
        try:
            conflist = _decode(att.config)
            chain.delete(conflist, chain.Attachment(container_id, usable_netns, att.ifname, att.cni_args,
                                                    dict(att.capability_args)),
                         att.result, dirs=dirs, environ=env.environ, exec_fn=env.exec_fn,
                         timeout=env.delegate_timeout)
        except DelegateError as exc:
            problem = f'network "{att.network}" ({att.ifname}): {exc}'
        except (protocol.CniError, ValueError) as exc:
            problem = f'network "{att.network}" ({att.ifname}): {exc}'
        if problem is None and att.device_info_file:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(att.device_info_file)  # NPWG-44
        done.append((att, problem))
    return done


def _decode(raw: bytes) -> dict[str, Any]:
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("the cached configuration is not a JSON object")
    return data


def cmd_del(cfg: PluginConfig, inv: protocol.Invocation, env: Environment) -> None:
    path = cfg.readiness_indicator_file
    if path and not os.path.exists(path):
        log.warning("readiness indicator file %s is missing; deleting anyway", path)
    dirs = dirs_of(cfg, inv)
    with _container_lock(cfg, inv.container_id, env):
        try:
            entry = cache.read(cfg.cni_dir, inv.container_id)
        except cache.CacheError as exc:
            log.warning("%s; deleting without it", exc)
            entry = None
        if entry is None:
            _delete_without_cache(cfg, inv, env, dirs)
            _remove_entry(cfg, inv.container_id)
            return
        outcome = _delete_attachments(entry.attachments, inv.container_id, inv.netns or entry.netns, env, dirs)
        failed = [(att, problem) for att, problem in outcome if problem is not None]
        if not failed:
            _remove_entry(cfg, inv.container_id)
            return
        left = tuple(att for att in entry.attachments if any(att is f for f, _ in failed))
        cache.write(cfg.cni_dir, replace(entry, attachments=left))
        pod = PodRef(entry.pod_namespace, entry.pod_name, entry.pod_uid) if entry.pod_name else pod_ref(inv.args)
        raise protocol.CniError(protocol.INTERNAL,
                           f"{_who(pod)}error deleting {len(failed)} of {len(entry.attachments)} networks",
                           "; ".join(str(problem) for _, problem in failed))


def _remove_entry(cfg: PluginConfig, container_id: str) -> None:
    """After the networks were deleted: an entry that cannot be removed (a directory in its
    place, a read-only cniDir) is logged, not a DEL error the kubelet would retry forever;
    the next ADD names it."""
    try:
        cache.remove(cfg.cni_dir, container_id)
    except OSError as exc:
        log.warning("DEL of container %s: cannot remove its cache entry: %s", container_id, exc)


def _delete_without_cache(cfg: PluginConfig, inv: protocol.Invocation, env: Environment, dirs: list[str]) -> None:
    """No entry: rebuild what ADD would have made and DEL it best-effort (module docstring)."""
    from plugin.cni import resolve

    plan: Plan | None = None
    try:
        client = make_client(cfg, env)
    except protocol.CniError as exc:
        log.warning("DEL without a cache entry cannot use the API: %s", exc)
        client = None
    with _closing(client, env):
        if client is not None and pod_ref(inv.args) is not None:
            try:
                plan = plan_add(cfg, inv, replace(env, pod_attempts=1, pod_delay=0.0), client, with_devices=False)
            except protocol.CniError as exc:
                log.warning("cannot rebuild the networks of container %s for DEL: %s", inv.container_id, exc)
        if plan is None:
            try:
                get_nad = _nad_getter(client, None) if client is not None else None
                configured = resolve.cluster_delegates(cfg, inv.ifname, get_nad, None)
                extras = resolve.name_extra_interfaces(configured[1:], {inv.ifname})  # as ADD names them
                plan = Plan(None, [configured[0], *extras])
            except (resolve.ResolveError, protocol.CniError) as exc:
                log.warning("DEL of container %s without a cache entry: cannot resolve the cluster network, "
                            "nothing deleted: %s", inv.container_id, exc)
                return
    cni_args = delegate_cni_args(inv.args)
    attachments = [_cached(d, cni_args) for d in plan.delegates]
    for att, problem in _delete_attachments(attachments, inv.container_id, inv.netns, env, dirs):
        if problem is not None:
            log.warning("DEL without a cache entry (ignored): %s", problem)
        else:
            log.info('DEL without a cache entry: network "%s" (%s) deleted', att.network, att.ifname)


# ------------------------------------------------------------------------------- CHECK


def cmd_check(cfg: PluginConfig, inv: protocol.Invocation, env: Environment) -> None:
    """Every cached attachment, not only the cluster network (Multus checks only that)."""
    with _container_lock(cfg, inv.container_id, env):
        try:
            entry = cache.read(cfg.cni_dir, inv.container_id)
        except cache.CacheError as exc:
            raise protocol.CniError(protocol.IO_FAILURE, "cannot read the cached attachments", str(exc)) from exc
        if entry is None:
            raise protocol.CniError(protocol.UNKNOWN_CONTAINER, f"container {inv.container_id} has no cached attachments",
                               "CHECK needs an earlier successful ADD")
        dirs = dirs_of(cfg, inv)
        for att in entry.attachments:
            if att.result is None:
                raise protocol.CniError(protocol.INVALID_CONFIG,
                                   f'network "{att.network}" ({att.ifname}) was never added successfully')
            conflist = _decode(att.config)
            version = chain.select_version(conflist)
            if protocol.parse_version(version) < chain.CHECK_SINCE:
                continue  # CNI-14: no CHECK below 0.4.0
            try:
                chain.check(conflist, chain.Attachment(inv.container_id, inv.netns, att.ifname, att.cni_args,
                                                       dict(att.capability_args)),
                            att.result, dirs=dirs, environ=env.environ, exec_fn=env.exec_fn,
                            timeout=env.delegate_timeout)
            except (DelegateError, protocol.CniError) as exc:
                detail = str(exc) if isinstance(exc, DelegateError) else exc.msg
                raise protocol.CniError(exc.code or protocol.INTERNAL,
                                   f'CHECK of network "{att.network}" ({att.ifname}) failed: {detail}',
                                   exc.details if isinstance(exc, protocol.CniError) else "") from exc


# ------------------------------------------------------------------------ GC and STATUS


def valid_attachments(raw: Mapping[str, Any]) -> list[dict[str, str]]:
    """``cni.dev/valid-attachments`` (spec main) or ``cni.dev/attachments`` (spec tag)."""
    value = raw.get("cni.dev/valid-attachments", raw.get("cni.dev/attachments"))
    if value is None:
        return []
    if not isinstance(value, list):
        raise protocol.CniError(protocol.INVALID_CONFIG, "cni.dev/valid-attachments must be a list",
                           f"got {json.dumps(value)[:80]}")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping) or not isinstance(item.get("containerID"), str):
            raise protocol.CniError(protocol.INVALID_CONFIG, f"cni.dev/valid-attachments[{i}] needs a containerID string",
                               f"got {json.dumps(item)[:80]}")
        out.append({"containerID": item["containerID"], "ifname": str(item.get("ifname", ""))})
    return out


def _current_cluster(cfg: PluginConfig, env: Environment) -> resolve.Delegate:
    """The cluster network as configured now; the API is asked only when
    ``clusterNetwork`` is a bare name (it may be a NAD in ``multusNamespace``)."""
    from plugin.cni import resolve

    needs_api = cfg.cluster_network is not None and "/" not in cfg.cluster_network
    client = make_client(cfg, env) if needs_api else None
    with _closing(client, env):
        try:
            return resolve.cluster_delegates(cfg, "", _nad_getter(client, None), None)[0]
        except resolve.ResolveError as exc:
            raise protocol.CniError(protocol.INVALID_CONFIG, "cannot resolve the cluster network", str(exc)) from exc


def cmd_gc(cfg: PluginConfig, inv: protocol.Invocation, env: Environment) -> None:
    """CNI-33: DEL every cached container the runtime does not list, then GC the networks.

    The cluster network gets GC with the runtime's list; every other network of a kept
    entry gets GC with the kept attachments that use it (by CNI network name), so an
    IPAM that supports GC can drop reservations nothing refers to.
    """
    valid = valid_attachments(cfg.raw)
    try:
        with cache.gc_lock(cfg.cni_dir, timeout=env.lock_timeout):
            errors = _collect_garbage(cfg, inv, env, valid)
    except cache.LockTimeout as exc:
        raise protocol.CniError(protocol.TRY_AGAIN_LATER, "garbage collection must wait",
                           f"{exc} after {env.lock_timeout:g}s") from exc
    except cache.CacheDirError as exc:
        raise _cache_dir_failure(exc, "cannot lock the cache for garbage collection") from exc
    if errors:
        codes = {code for code, _ in errors}  # one cause (a bad clusterNetwork: 7) keeps its code
        raise protocol.CniError(codes.pop() if len(codes) == 1 else protocol.INTERNAL,
                                f"garbage collection finished with {len(errors)} error{'s' if len(errors) != 1 else ''}",
                                "; ".join(text for _, text in errors))


def _collect_garbage(cfg: PluginConfig, inv: protocol.Invocation, env: Environment,
                     valid: list[dict[str, str]]) -> list[tuple[int, str]]:
    """Every problem met, with its CNI code (999 where none says more)."""
    keep = {v["containerID"] for v in valid}
    dirs = dirs_of(cfg, inv)
    errors: list[tuple[int, str]] = []
    kept: list[cache.SandboxEntry] = []
    for container_id in cache.container_ids(cfg.cni_dir):
        try:
            entry = cache.read(cfg.cni_dir, container_id)
        except cache.CacheError as exc:  # GC knows no netns or ifname to delete without it: DEL will
            log.warning("GC: %s; left in place", exc)  # (a GC failing on it forever would help nobody)
            continue
        if entry is None:
            continue
        if container_id in keep:
            kept.append(entry)
            continue
        outcome = _delete_attachments(entry.attachments, container_id, entry.netns, env, dirs)
        failed = [(att, problem) for att, problem in outcome if problem is not None]
        if failed:
            errors.extend((protocol.INTERNAL, f"container {container_id}: {problem}") for _, problem in failed)
            left = tuple(att for att in entry.attachments if any(att is f for f, _ in failed))
            cache.write(cfg.cni_dir, replace(entry, attachments=left))
        else:
            log.info("GC: container %s is no longer valid; its networks were deleted", container_id)
            cache.remove(cfg.cni_dir, container_id)
    cache.prune_locks(cfg.cni_dir)
    for conflist, attachments in _gc_targets(cfg, env, valid, kept, errors):
        try:
            chain.gc(conflist, attachments, dirs=dirs, environ=env.environ, exec_fn=env.exec_fn,
                     timeout=env.delegate_timeout)
        except (DelegateError, protocol.CniError) as exc:
            errors.append((exc.code, f'GC of network "{conflist.get("name")}": {exc}'))
    return errors


def _gc_targets(cfg: PluginConfig, env: Environment, valid: list[dict[str, str]],
                kept: Sequence[cache.SandboxEntry], errors: list[tuple[int, str]]
                ) -> list[tuple[Mapping[str, Any], list[dict[str, str]]]]:
    targets: list[tuple[Mapping[str, Any], list[dict[str, str]]]] = []
    cluster_name = None
    try:
        cluster = _current_cluster(cfg, env)
        cluster_name = cluster.conflist.get("name")
        targets.append((cluster.conflist, list(valid)))
    except protocol.CniError as exc:
        errors.append((exc.code, f"GC of the cluster network: {exc}"))
    others: dict[str, tuple[Mapping[str, Any], list[dict[str, str]]]] = {}
    for entry in kept:
        for att in entry.attachments:
            if att.default:
                continue
            try:
                conflist = _decode(att.config)
            except ValueError:
                continue
            name = str(conflist.get("name", ""))
            if name == cluster_name:
                continue
            target = others.setdefault(name, (conflist, []))
            target[1].append({"containerID": entry.container_id, "ifname": att.ifname})
    targets.extend(others[name] for name in sorted(others))
    return targets


def cmd_status(cfg: PluginConfig, inv: protocol.Invocation, env: Environment) -> None:
    """Ready when the readiness file exists and the cluster network answers STATUS."""
    path = cfg.readiness_indicator_file
    if path and not os.path.exists(path):
        raise protocol.CniError(protocol.NOT_AVAILABLE, "cluster network not ready",
                           f"readiness indicator file {path} does not exist")
    try:
        cluster = _current_cluster(cfg, env)
    except protocol.CniError as exc:
        raise protocol.CniError(protocol.NOT_AVAILABLE, exc.msg, exc.details) from exc
    try:
        chain.status(cluster.conflist, dirs=dirs_of(cfg, inv), environ=env.environ, exec_fn=env.exec_fn,
                     timeout=env.delegate_timeout)
    except (DelegateError, protocol.CniError) as exc:
        code = exc.code if exc.code in (protocol.NOT_AVAILABLE, protocol.NOT_AVAILABLE_LIMITED) else protocol.NOT_AVAILABLE
        detail = str(exc) if isinstance(exc, DelegateError) else exc.msg
        raise protocol.CniError(code, f'cluster network "{cluster.network}" is not available: {detail}',
                           exc.details if isinstance(exc, protocol.CniError) else "") from exc
