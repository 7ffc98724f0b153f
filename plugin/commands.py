"""ADD, DEL, CHECK, GC and STATUS of the delegating plugin: the order of events.

ADD is transactional: the cache entry (every delegate's exact config and interface) is on
disk before the first delegate runs and is updated after each one; if a delegate fails,
every delegate already started is deleted again in reverse order, the failing one too,
and the error names the pod, the network and the delegate's own message.

DEL never needs the API server when the cache exists: every delegate gets DEL, in
reverse order, with its cached config and result; all errors are collected; the entry is
removed only when every DEL succeeded, so the runtime's retry can finish the job.

Exceptions: everything a command raises is a ``plugin.cni.CniError`` (the code and the
message the runtime sees); ``plugin.main`` renders it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from plugin import cache, chain, cni, resolve, selection, status
from plugin.config import PluginConfig
from plugin.delegate import DelegateError

log = logging.getLogger("netplex")

READINESS_POLL_SECONDS = 1.0


@dataclass
class Environment:
    """Everything a command touches outside its arguments (the test seam)."""

    environ: Mapping[str, str]
    client_factory: Callable[[str | None], Any] = field(default=lambda path: _default_client(path))
    exec_fn: Any = None
    readiness_timeout: float = 45.0
    pod_attempts: int = 10
    pod_delay: float = 0.3
    device_info_dir: str = "/var/run/k8s.cni.cncf.io/devinfo"


def _default_client(path: str | None) -> Any:
    from plugin import k8s

    return k8s.client_from_config(path)


@dataclass(frozen=True, slots=True)
class PodRef:
    namespace: str
    name: str
    uid: str

    @property
    def label(self) -> str:
        return f"{self.namespace}/{self.name}" + (f" (uid {self.uid})" if self.uid else "")


def pod_ref(args: Sequence[tuple[str, str]]) -> PodRef | None:
    values = dict(args)
    namespace, name = values.get("K8S_POD_NAMESPACE", ""), values.get("K8S_POD_NAME", "")
    if not namespace or not name:
        return None
    return PodRef(namespace, name, values.get("K8S_POD_UID", ""))


def delegate_cni_args(args: Sequence[tuple[str, str]]) -> str:
    """CNI_ARGS for delegates: the runtime's pairs once each, plus IgnoreUnknown (as Multus)."""
    pairs = [(k, v) for k, v in args if k != "IgnoreUnknown"]
    return cni.format_cni_args([("IgnoreUnknown", "true"), *pairs])


def dirs_of(cfg: PluginConfig, inv: cni.Invocation) -> list[str]:
    """``binDir`` first, then CNI_PATH, without repeats (Multus' order)."""
    seen: list[str] = []
    for d in (cfg.bin_dir, *inv.path):
        if d and d not in seen:
            seen.append(d)
    return seen


def wait_ready(cfg: PluginConfig, env: Environment, *, required: bool = True) -> None:
    """NPWG-32: with ``readinessindicatorfile``, wait for the cluster network to be ready."""
    path = cfg.readiness_indicator_file
    if not path:
        return
    deadline = time.monotonic() + env.readiness_timeout
    while not os.path.exists(path):
        if time.monotonic() >= deadline:
            if not required:
                log.warning("readiness indicator file %s is missing; continuing", path)
                return
            raise cni.CniError(
                cni.TRY_AGAIN_LATER,
                "cluster network not ready",
                f"readiness indicator file {path} did not appear within {env.readiness_timeout:.0f}s; "
                "has the default network been installed on this node?",
            )
        time.sleep(min(READINESS_POLL_SECONDS, max(0.0, deadline - time.monotonic())))


# ----------------------------------------------------------------------------------- ADD


@dataclass
class Plan:
    pod: PodRef | None
    delegates: list[resolve.Delegate]


def plan_add(cfg: PluginConfig, inv: cni.Invocation, env: Environment, client: Any) -> Plan:
    """Decide every delegate before anything runs (so a bad selection changes nothing)."""
    pod = pod_ref(inv.args)
    pod_obj: Mapping[str, Any] | None = None
    if client is not None and pod is not None:
        from plugin import k8s

        try:
            pod_obj = k8s.wait_for_pod(client, pod.namespace, pod.name, pod.uid or None,
                                       attempts=env.pod_attempts, delay=env.pod_delay)
        except k8s.ApiError as exc:
            raise cni.CniError(cni.TRY_AGAIN_LATER if exc.status >= 500 else cni.INVALID_CONFIG,
                               f"[{pod.label}]: cannot read the pod", str(exc)) from exc
    get_nad = _nad_getter(client, pod)
    annotations = _annotations(pod_obj)
    override = None
    if pod_obj is not None and selection.DEFAULT_NETWORK_ANNOTATION in annotations:
        parsed_default = selection.parse_default_network(
            str(annotations[selection.DEFAULT_NETWORK_ANNOTATION]), cfg.multus_namespace)
        if not parsed_default.ok:
            raise _selection_error(pod, parsed_default)
        override = parsed_default.selections[0]
    try:
        delegates = resolve.cluster_delegates(cfg, inv.ifname, get_nad, override)
        extras = delegates[1:] + (resolve.default_network_refs(cfg, pod.namespace, get_nad) if pod else [])
        selected: list[resolve.Delegate] = []
        taken = {inv.ifname}
        if pod_obj is not None and pod is not None:
            value = annotations.get(selection.NETWORKS_ANNOTATION)
            parsed = selection.parse_networks(value if isinstance(value, str) else None, pod.namespace,
                                              reserved_interfaces=(inv.ifname,))
            if not parsed.ok:
                raise _selection_error(pod, parsed)
            allocator = _device_allocator(cfg, pod, parsed.selections, get_nad)
            for sel in parsed.selections:
                assert get_nad is not None
                selected.append(resolve.selection_delegate(sel, pod.namespace, cfg, get_nad, allocator))
                taken.add(sel.interface)
        extras = resolve.name_extra_interfaces(extras, taken)
    except resolve.ResolveError as exc:
        who = f"[{pod.label}]: " if pod else ""
        raise cni.CniError(cni.INVALID_CONFIG, f"{who}cannot resolve the pod's networks", str(exc)) from exc
    return Plan(pod, [delegates[0], *extras, *selected])


def _annotations(pod: Mapping[str, Any] | None) -> Mapping[str, Any]:
    meta = pod.get("metadata") if pod else None
    annotations = meta.get("annotations") if isinstance(meta, Mapping) else None
    return annotations if isinstance(annotations, Mapping) else {}


def _selection_error(pod: PodRef | None, parsed: selection.SelectionResult) -> cni.CniError:
    who = f"[{pod.label}]: " if pod else ""
    return cni.CniError(cni.INVALID_CONFIG, f"{who}invalid network selection",
                        "; ".join(str(p) for p in parsed.errors))


def _nad_getter(client: Any, pod: PodRef | None) -> resolve.GetNad | None:
    if client is None:
        return None
    from plugin import k8s

    def get_nad(namespace: str, name: str) -> Mapping[str, Any] | None:
        try:
            nad: Mapping[str, Any] = client.get_nad(namespace, name)
            return nad
        except k8s.ApiError as exc:
            if exc.status == 404:
                return None
            who = f"[{pod.label}]: " if pod else ""
            raise cni.CniError(cni.TRY_AGAIN_LATER, f"{who}cannot read network-attachment-definition "
                               f"{namespace}/{name}", str(exc)) from exc

    return get_nad


def _device_allocator(cfg: PluginConfig, pod: PodRef, selections: Sequence[selection.Selection],
                      get_nad: resolve.GetNad | None) -> resolve.NextDevice | None:
    """Read the kubelet checkpoint only when some selected NAD needs a device."""
    if get_nad is None:
        return None
    state: dict[str, Any] = {}

    def next_device(resource: str, network: str) -> str:
        from plugin import devices

        if "allocator" not in state:
            try:
                state["allocator"] = devices.DeviceAllocator(devices.device_ids(cfg.device_checkpoint, pod.uid))
            except devices.DeviceError as exc:
                raise resolve.ResolveError(str(exc)) from exc
        try:
            device: str = state["allocator"].next(resource, network)
        except devices.DeviceError as exc:
            raise resolve.ResolveError(str(exc)) from exc
        return device

    return next_device


def _attachment(inv: cni.Invocation, d: resolve.Delegate, cni_args: str, netns: str | None) -> chain.Attachment:
    return chain.Attachment(container_id=inv.container_id, netns=netns, ifname=d.ifname,
                            cni_args=cni_args, capability_args=dict(d.capability_args))


def cmd_add(cfg: PluginConfig, inv: cni.Invocation, env: Environment, request_version: str) -> dict[str, Any]:
    wait_ready(cfg, env)
    client = env.client_factory(cfg.kubeconfig)
    plan = plan_add(cfg, inv, env, client)
    cni_args = delegate_cni_args(inv.args)
    dirs = dirs_of(cfg, inv)
    entry = cache.SandboxEntry(
        container_id=inv.container_id, netns=inv.netns,
        pod_namespace=plan.pod.namespace if plan.pod else "", pod_name=plan.pod.name if plan.pod else "",
        pod_uid=plan.pod.uid if plan.pod else "",
        attachments=tuple(cache.CachedAttachment(d.network, d.ifname, d.config_bytes(), cni_args,
                                                 dict(d.capability_args), default=d.default)
                          for d in plan.delegates),
    )
    cache.write(cfg.cni_dir, entry)
    results: list[dict[str, Any]] = []
    for position, d in enumerate(plan.delegates):
        try:
            result = chain.add(d.conflist, _attachment(inv, d, cni_args, inv.netns), dirs=dirs,
                               environ=env.environ, exec_fn=env.exec_fn)
        except (DelegateError, cni.CniError) as exc:
            rollback = _rollback(entry, cfg, inv, env, dirs, upto=position)
            who = f"[{plan.pod.label}]: " if plan.pod else ""
            msg = exc.msg if isinstance(exc, DelegateError | cni.CniError) else str(exc)
            details = f"{getattr(exc, 'details', '')}".strip()
            text = f"{who}error adding network \"{d.network}\" on interface {d.ifname}: {msg}"
            if details:
                text += f": {details}"
            if rollback:
                text += "; rollback also failed: " + "; ".join(rollback)
            raise cni.CniError(getattr(exc, "code", cni.INTERNAL) or cni.INTERNAL, text, "") from exc
        results.append(result)
        entry = entry.with_result(position, result)
        cache.write(cfg.cni_dir, entry)
    _apply_default_routes(plan.delegates, results, inv)
    if client is not None and plan.pod is not None:
        _publish_status(client, plan, results, inv)
    return cni.convert_result(results[0], request_version)


def _rollback(entry: cache.SandboxEntry, cfg: PluginConfig, inv: cni.Invocation, env: Environment,
              dirs: list[str], *, upto: int) -> list[str]:
    """DEL delegates ``upto`` (the failing one) down to 0; the entry goes when all succeed."""
    errors = _delete_attachments(entry.attachments[: upto + 1], inv, env, dirs, entry.netns)
    if not errors:
        cache.remove(cfg.cni_dir, inv.container_id)
    return errors


def _apply_default_routes(delegates: Sequence[resolve.Delegate], results: Sequence[Mapping[str, Any]],
                          inv: cni.Invocation) -> None:
    """``default-route`` (NPWG §4.1.2.1.9): one default route per family, via the requested gateway."""
    chosen = [(d, r) for d, r in zip(delegates, results, strict=True) if d.default_route is not None]
    if not chosen:
        return
    from plugin import netns as nets

    delegate, result = chosen[0]
    gateways = list(delegate.default_route or ()) or _result_gateways(result)
    try:
        for family in sorted({6 if ":" in gw else 4 for gw in gateways}):
            gateway = next(gw for gw in gateways if (":" in gw) == (family == 6))
            nets.delete_default_routes(inv.netns, family, except_ifname=None)
            nets.set_default_route(inv.netns, delegate.ifname, gateway, family)
    except nets.NetnsError as exc:
        raise cni.CniError(cni.INTERNAL, f"cannot set the default route via {delegate.network}", str(exc)) from exc


def _result_gateways(result: Mapping[str, Any]) -> list[str]:
    out = []
    for ip in result.get("ips") or ():
        gw = ip.get("gateway") if isinstance(ip, Mapping) else None
        if isinstance(gw, str) and gw:
            out.append(gw)
    return out


def _publish_status(client: Any, plan: Plan, results: Sequence[Mapping[str, Any]], inv: cni.Invocation) -> None:
    assert plan.pod is not None
    entries = []
    for d, result in zip(plan.delegates, results, strict=True):
        entries.append(status.from_cni_result(
            result, name=d.network, ifname=d.ifname, netns=inv.netns, default=d.default,
            default_route=tuple(d.default_route or ()),
        ))
    try:
        client.patch_pod_status_annotations(
            plan.pod.namespace, plan.pod.name, {status.NETWORK_STATUS_ANNOTATION: status.dumps(entries)})
    except Exception as exc:  # the interfaces exist; the runtime will DEL on our error
        raise cni.CniError(cni.TRY_AGAIN_LATER, f"[{plan.pod.label}]: cannot write the network-status annotation",
                           str(exc)) from exc


# ----------------------------------------------------------------------------------- DEL


def _delete_attachments(attachments: Sequence[cache.CachedAttachment], inv: cni.Invocation,
                        env: Environment, dirs: list[str], netns: str | None) -> list[str]:
    """DEL each attachment in reverse order; every error is collected, none stops the rest."""
    errors: list[str] = []
    usable_netns = netns if netns and os.path.exists(netns) else None
    for att in reversed(attachments):
        try:
            conflist = _decode(att.config)
            chain.delete(conflist, chain.Attachment(inv.container_id, usable_netns, att.ifname, att.cni_args,
                                                    dict(att.capability_args)),
                         att.result, dirs=dirs, environ=env.environ, exec_fn=env.exec_fn)
        except (DelegateError, cni.CniError, ValueError) as exc:
            details = getattr(exc, "details", "")
            errors.append(f"{att.network} ({att.ifname}): {getattr(exc, 'msg', exc)}"
                          + (f": {details}" if details else ""))
    return errors


def _decode(raw: bytes) -> dict[str, Any]:
    import json

    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("cached config is not an object")
    return data


def cmd_del(cfg: PluginConfig, inv: cni.Invocation, env: Environment) -> None:
    wait_ready(cfg, env, required=False)
    dirs = dirs_of(cfg, inv)
    try:
        entry = cache.read(cfg.cni_dir, inv.container_id)
    except cache.CacheError as exc:
        log.warning("%s; deleting without it", exc)
        cache.remove(cfg.cni_dir, inv.container_id)
        entry = None
    if entry is None:
        entry = _entry_without_cache(cfg, inv, env)
    errors = _delete_attachments(entry.attachments, inv, env, dirs, inv.netns or entry.netns)
    if errors:
        raise cni.CniError(cni.INTERNAL, f"error deleting {len(errors)} of {len(entry.attachments)} networks",
                           "; ".join(errors))
    cache.remove(cfg.cni_dir, inv.container_id)


def _entry_without_cache(cfg: PluginConfig, inv: cni.Invocation, env: Environment) -> cache.SandboxEntry:
    """No cache (never added, or lost): rebuild from the API if the pod is still there,
    else at least the cluster network, so its IPAM releases the address."""
    client = None
    try:
        client = env.client_factory(cfg.kubeconfig)
    except Exception as exc:  # DEL must make progress without the API
        log.warning("no Kubernetes client for DEL without cache: %s", exc)
    plan = None
    if client is not None and pod_ref(inv.args) is not None:
        try:
            quick = replace(env, pod_attempts=1, pod_delay=0.0)
            plan = plan_add(cfg, inv, quick, client)
        except cni.CniError as exc:
            log.warning("cannot rebuild the networks of %s for DEL: %s %s", inv.container_id, exc.msg, exc.details)
    if plan is None:
        try:
            plan = Plan(None, resolve.cluster_delegates(cfg, inv.ifname, None, None)[:1])
        except resolve.ResolveError as exc:
            raise cni.CniError(cni.INVALID_CONFIG, "cannot resolve the cluster network for DEL", str(exc)) from exc
    cni_args = delegate_cni_args(inv.args)
    return cache.SandboxEntry(
        container_id=inv.container_id, netns=inv.netns,
        attachments=tuple(cache.CachedAttachment(d.network, d.ifname, d.config_bytes(), cni_args,
                                                 dict(d.capability_args), default=d.default)
                          for d in plan.delegates),
    )


# --------------------------------------------------------------------------------- CHECK


def cmd_check(cfg: PluginConfig, inv: cni.Invocation, env: Environment) -> None:
    """Every cached attachment, not only the cluster network (Multus checks only that)."""
    try:
        entry = cache.read(cfg.cni_dir, inv.container_id)
    except cache.CacheError as exc:
        raise cni.CniError(cni.IO_FAILURE, "cannot read the cached attachments", str(exc)) from exc
    if entry is None:
        raise cni.CniError(cni.UNKNOWN_CONTAINER, f"no attachments are cached for container {inv.container_id}",
                           "CHECK needs a previous ADD")
    dirs = dirs_of(cfg, inv)
    for att in entry.attachments:
        if att.result is None:
            raise cni.CniError(cni.INVALID_CONFIG, f"network \"{att.network}\" ({att.ifname}) was never added")
        conflist = _decode(att.config)
        if cni.parse_version(str(conflist.get("cniVersion", ""))) < (0, 4, 0):
            continue  # CNI-14: no CHECK below 0.4.0
        try:
            chain.check(conflist, chain.Attachment(inv.container_id, inv.netns, att.ifname, att.cni_args,
                                                   dict(att.capability_args)),
                        att.result, dirs=dirs, environ=env.environ, exec_fn=env.exec_fn)
        except (DelegateError, cni.CniError) as exc:
            raise cni.CniError(getattr(exc, "code", cni.INTERNAL),
                               f"CHECK of network \"{att.network}\" on {att.ifname} failed: {exc.msg}",
                               getattr(exc, "details", "")) from exc


# ------------------------------------------------------------------------ GC and STATUS


def valid_attachments(raw: Mapping[str, Any]) -> list[dict[str, str]]:
    """``cni.dev/valid-attachments`` (spec main) or ``cni.dev/attachments`` (spec tag)."""
    value = raw.get("cni.dev/valid-attachments", raw.get("cni.dev/attachments"))
    if value is None:
        return []
    if not isinstance(value, list):
        raise cni.CniError(cni.INVALID_CONFIG, "cni.dev/valid-attachments must be a list")
    out = []
    for item in value:
        if not isinstance(item, Mapping) or not isinstance(item.get("containerID"), str):
            raise cni.CniError(cni.INVALID_CONFIG, "each cni.dev/valid-attachments entry needs a containerID")
        out.append({"containerID": item["containerID"], "ifname": str(item.get("ifname", ""))})
    return out


def cmd_gc(cfg: PluginConfig, inv: cni.Invocation, env: Environment) -> None:
    valid = valid_attachments(cfg.raw)
    keep = {v["containerID"] for v in valid}
    dirs = dirs_of(cfg, inv)
    errors: list[str] = []
    for container_id in cache.container_ids(cfg.cni_dir):
        if container_id in keep:
            continue
        try:
            entry = cache.read(cfg.cni_dir, container_id)
        except cache.CacheError as exc:
            errors.append(str(exc))
            continue
        if entry is None:
            continue
        stale = replace(inv, container_id=container_id, netns=entry.netns or "")
        failed = _delete_attachments(entry.attachments, stale, env, dirs, entry.netns)
        if failed:
            errors.extend(f"{container_id}: {e}" for e in failed)
        else:
            cache.remove(cfg.cni_dir, container_id)
    try:
        cluster = resolve.cluster_delegates(cfg, "", None, None)[0]
        chain.gc(cluster.conflist, valid, dirs=dirs, environ=env.environ, exec_fn=env.exec_fn)
    except (resolve.ResolveError, DelegateError, cni.CniError) as exc:
        errors.append(f"GC of the cluster network: {getattr(exc, 'msg', exc)}")
    if errors:
        raise cni.CniError(cni.INTERNAL, "garbage collection finished with errors", "; ".join(errors))


def cmd_status(cfg: PluginConfig, inv: cni.Invocation, env: Environment) -> None:
    path = cfg.readiness_indicator_file
    if path and not os.path.exists(path):
        raise cni.CniError(cni.NOT_AVAILABLE, "cluster network not ready",
                           f"readiness indicator file {path} does not exist")
    try:
        cluster = resolve.cluster_delegates(cfg, "", None, None)[0]
    except resolve.ResolveError as exc:
        raise cni.CniError(cni.NOT_AVAILABLE, "cannot resolve the cluster network", str(exc)) from exc
    try:
        chain.status(cluster.conflist, dirs=dirs_of(cfg, inv), environ=env.environ, exec_fn=env.exec_fn)
    except (DelegateError, cni.CniError) as exc:
        raise cni.CniError(cni.NOT_AVAILABLE, f"cluster network \"{cluster.network}\" is not available: {exc.msg}",
                           getattr(exc, "details", "")) from exc
