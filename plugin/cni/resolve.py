"""From a pod's selections and the plugin's configuration to the list of delegates to run.

Everything that decides *what* runs lives here; *running* it is ``plugin.cni.chain`` and the
order of events is ``plugin.cni.commands``. Inputs that need I/O (the API client, files in
``confDir``, the kubelet checkpoint) are passed in, so each rule is testable on its own.

Order of the delegates (as Multus): the cluster network (``clusterNetwork`` or
``delegates[0]``, or the pod's ``v1.multus-cni.io/default-network``), then
``defaultNetworks`` / ``delegates[1:]``, then the pod's selections in annotation order.

Interface names: the cluster network gets the runtime's ``CNI_IFNAME``; the selections
get the names the shared selection parser gives them (the webhook computes the same
ones); the configured extra networks then take the first ``netN`` nobody uses
(:func:`name_extra_interfaces`). Multus numbers every delegate by its position in one
list instead, so names can differ from Multus' (see ``plugin.model.selection``).

What is injected into a network's configuration (everything else is kept as written):
the NAD's name when the config has none (NPWG-5), the selection's ``cni-args`` into every
plugin's ``args.cni`` (NPWG-19), and for a NAD with a resourceName the allocated device as
``deviceID`` and ``pciBusID`` (as Multus). Selection requests (``ips``, ``mac``, ...)
travel as capability args and reach only the plugins that declare them (CNI-8); a
request that no plugin declares is refused (NPWG-14..18).

Exceptions::

    ResolveError(Exception)   a network cannot be resolved or is not allowed; the message
                              names the pod's network and the reason (CNI code 7)
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Mapping, Sequence

from plugin.cni.config import PluginConfig
from plugin.model import limits, netconf, selection
from plugin.model.records import field, record, replace

TYPE_CHECKING = False  # typing is not imported at run time (~4 ms per start); mypy takes this as True
if TYPE_CHECKING:
    from typing import Any

RESOURCE_NAME_ANNOTATION = "k8s.v1.cni.cncf.io/resourceName"
CONF_EXTENSIONS = (".conf", ".json")
LIST_EXTENSION = ".conflist"

# Selection field -> CNI capability that must be declared for runtimeConfig to reach a
# plugin (NPWG-14..18); libcni would otherwise drop the request silently.
class ResolveError(Exception):
    pass


@record(frozen=True, slots=True)
class Delegate:
    """One attachment to make: which network, on which interface, with what."""

    network: str  # network-status name: "ns/nad", or the cluster network's CNI name
    ifname: str
    conflist: Mapping[str, Any]
    capability_args: Mapping[str, Any] = field(default_factory=dict)
    default: bool = False
    default_route: tuple[str, ...] | None = None
    resource: str | None = None
    device_id: str | None = None
    device_info_file: str | None = None  # the attachment's CNI device-info file (NPWG-41)

    def config_bytes(self) -> bytes:
        return json.dumps(self.conflist, separators=(",", ":"), sort_keys=True).encode("utf-8")


GetNad = Callable[[str, str], "Mapping[str, Any] | None"]  # (namespace, name) -> NAD or None (404)
NextDevice = Callable[[str, str], str]  # (resource, network) -> device ID


def _decode_file(path: str) -> Any:
    """A CNI config file; ``OSError`` when unreadable, ``ValueError`` when it is not JSON or
    nests deeper than :data:`plugin.model.limits.MAX_DEPTH` (checked on the text, before
    the decoder recurses), so that callers can skip one bad file and go on."""
    with open(path, "rb") as handle:
        raw = handle.read()
    text = raw.decode(json.detect_encoding(raw))  # as json.loads(bytes) would, UTF-8/16/32
    problem = limits.depth_problem(limits.text_depth(text))
    if problem:
        raise ValueError(f"the file {problem}")
    return json.loads(text)


def find_conf_by_name(conf_dir: str, name: str) -> tuple[Mapping[str, Any] | None, list[str]]:
    """NPWG-4 / CNI-44: a conflist named ``name`` first, then a single conf, name order.

    Unlike libcni, one unreadable file does not hide every network: it is skipped and
    reported (second value) so the final error can mention it.
    """
    try:
        entries = sorted(os.listdir(conf_dir))
    except OSError:
        return None, []
    skipped: list[str] = []
    for extensions in ((LIST_EXTENSION,), CONF_EXTENSIONS):
        for entry in entries:
            if os.path.splitext(entry)[1] not in extensions:
                continue
            path = os.path.join(conf_dir, entry)
            try:
                data = _decode_file(path)
            except (OSError, ValueError) as exc:
                skipped.append(f"{path} ({exc})")
                continue
            if isinstance(data, Mapping) and data.get("name") == name:
                return data, skipped
    return None, skipped


def _normalize(obj: Any, name: str | None, where: str) -> dict[str, Any]:
    result = netconf.parse_netconf_object(obj, name, path=where)
    if not result.ok or result.conflist is None:
        raise ResolveError(f"invalid CNI configuration {where}: " + "; ".join(str(p) for p in result.errors))
    return dict(result.conflist)


def _load_path(path: str) -> dict[str, Any]:
    """``clusterNetwork`` given as a path: a directory (first config file) or a file."""
    if os.path.isdir(path):
        files = sorted(e for e in os.listdir(path) if os.path.splitext(e)[1] in (LIST_EXTENSION, ".conf"))
        if not files:
            raise ResolveError(f"no .conf or .conflist file in directory {path}")
        path = os.path.join(path, files[0])
    try:
        data = _decode_file(path)
    except (OSError, ValueError) as exc:
        raise ResolveError(f"cannot load CNI configuration {path}: {exc}") from exc
    return _normalize(data, None, path)


def resolve_network_ref(value: str, cfg: PluginConfig, get_nad: GetNad | None) -> tuple[str, dict[str, Any]]:
    """clusterNetwork / defaultNetworks entries, in Multus' order (reference/multus.md §5.1).

    Without ``/``: a NAD in ``multusNamespace``, then a CNI config in ``confDir`` named so.
    With ``/``: a file or a directory. Returns (network-status name, conflist).
    """
    if "/" in value:
        conflist = _load_path(value)
        return str(conflist.get("name", value)), conflist
    if get_nad is not None:
        nad = get_nad(cfg.multus_namespace, value)
        if nad is not None:
            return f"{cfg.multus_namespace}/{value}", conflist_of_nad(nad, cfg)
    data, skipped = find_conf_by_name(cfg.conf_dir, value)
    if data is None:
        extra = f" (unreadable files skipped: {', '.join(skipped)})" if skipped else ""
        where = f'no NetworkAttachmentDefinition "{value}" in namespace "{cfg.multus_namespace}" and ' if get_nad else ""
        raise ResolveError(f'cannot find network "{value}": {where}no CNI config named "{value}" in {cfg.conf_dir}{extra}')
    return value, _normalize(data, None, f"{cfg.conf_dir} ({value})")


_PARSED: dict[tuple[str, str], netconf.NetConfResult] = {}
PARSED_KEPT = 512


def _parse_nad_config(config: object, name: str) -> netconf.NetConfResult:
    """``parse_netconf``, remembered by (text, NAD name) for a process that serves many
    pods (the netplex-node daemon: the same NADs, pod after pod; a parse is 1-2 ms). The
    result is pure and never mutated here: callers get copies of its conflist."""
    if not isinstance(config, str):
        return netconf.parse_netconf(config, name)
    key = (config, name)
    parsed = _PARSED.get(key)
    if parsed is None:
        parsed = netconf.parse_netconf(config, name)
        if len(_PARSED) >= PARSED_KEPT:
            _PARSED.clear()
        _PARSED[key] = parsed
    return parsed


def conflist_of_nad(nad: Mapping[str, Any], cfg: PluginConfig) -> dict[str, Any]:
    """A NAD's config (name injected, NPWG-5), or the on-disk one when spec.config is empty (NPWG-4)."""
    meta = nad.get("metadata") or {}
    name = str(meta.get("name", ""))
    namespace = str(meta.get("namespace", ""))
    spec = nad.get("spec") if isinstance(nad.get("spec"), Mapping) else {}
    parsed = _parse_nad_config(spec.get("config") if isinstance(spec, Mapping) else None, name)
    if parsed.kind == "empty":
        data, skipped = find_conf_by_name(cfg.conf_dir, name)
        if data is None:
            extra = f" (unreadable files skipped: {', '.join(skipped)})" if skipped else ""
            raise ResolveError(
                f'network-attachment-definition "{namespace}/{name}" has an empty spec.config and no CNI '
                f'config named "{name}" exists in {cfg.conf_dir} on this node{extra}'
            )
        return _normalize(data, name, f"{cfg.conf_dir} ({name})")
    if not parsed.ok or parsed.conflist is None:
        raise ResolveError(
            f'network-attachment-definition "{namespace}/{name}" has an invalid spec.config: '
            + "; ".join(str(p) for p in parsed.errors)
        )
    copied: dict[str, Any] = json.loads(json.dumps(parsed.conflist))  # the memo's copy stays as parsed
    return copied


def declared_capabilities(conflist: Mapping[str, Any]) -> frozenset[str]:
    caps: set[str] = set()
    for plugin in conflist.get("plugins") or ():
        declared = plugin.get("capabilities") if isinstance(plugin, Mapping) else None
        if isinstance(declared, Mapping):
            caps.update(k for k, v in declared.items() if v is True)
    return frozenset(caps)


def capability_args_of(sel: selection.Selection) -> dict[str, Any]:
    """runtimeConfig candidates from one selection element (NPWG-14..18)."""
    args: dict[str, Any] = {}
    if sel.ips:
        args["ips"] = list(sel.ips)
    if sel.mac is not None:
        args["mac"] = sel.mac
    if sel.port_mappings:
        args["portMappings"] = [pm.to_json() for pm in sel.port_mappings]
    if sel.bandwidth is not None:
        args["bandwidth"] = sel.bandwidth.to_json()
    if sel.infiniband_guid is not None:
        args["infinibandGUID"] = sel.infiniband_guid
    return args


def check_capabilities(sel: selection.Selection, conflist: Mapping[str, Any]) -> None:
    declared = declared_capabilities(conflist)
    for key, capability in selection.requested_capabilities(sel):
        if capability not in declared:
            raise ResolveError(
                f'network "{sel.ref}" (interface {sel.interface}): the selection sets "{key}" but no plugin '
                f'in its config declares the "{capability}" capability, so it cannot be applied '
                f'(NPWG); add "capabilities": {{"{capability}": true}} to a plugin that supports it'
            )


def with_cni_args(conflist: Mapping[str, Any], cni_args: Mapping[str, Any]) -> dict[str, Any]:
    """NPWG-19: the selection's ``cni-args`` go into every plugin's ``args.cni`` and win."""
    out = copy.deepcopy(dict(conflist))
    for plugin in out.get("plugins") or ():
        args = plugin.get("args")
        args = dict(args) if isinstance(args, Mapping) else {}
        existing = args.get("cni")
        merged = dict(existing) if isinstance(existing, Mapping) else {}
        merged.update(copy.deepcopy(dict(cni_args)))
        args["cni"] = merged
        plugin["args"] = args
    return out


def with_device(conflist: Mapping[str, Any], device_id: str) -> dict[str, Any]:
    """As Multus: ``deviceID`` (and sriov-cni's older ``pciBusID``) into every plugin."""
    out = copy.deepcopy(dict(conflist))
    for plugin in out.get("plugins") or ():
        plugin["deviceID"] = device_id
        plugin["pciBusID"] = device_id
    return out


def check_isolation(sel: selection.Selection, pod_namespace: str, cfg: PluginConfig) -> None:
    """NPWG-37 / Multus ``namespaceIsolation``: own namespace and ``globalNamespaces`` only."""
    if not cfg.namespace_isolation or sel.namespace == pod_namespace:
        return
    if sel.namespace in cfg.global_namespaces:
        return
    raise ResolveError(
        f"namespace isolation is on: pod in namespace \"{pod_namespace}\" may not use network "
        f"\"{sel.ref}\" (allowed: its own namespace and {', '.join(cfg.global_namespaces) or 'none'})"
    )


def selection_delegate(
    sel: selection.Selection,
    pod_namespace: str,
    cfg: PluginConfig,
    get_nad: GetNad,
    next_device: NextDevice | None,
) -> Delegate:
    check_isolation(sel, pod_namespace, cfg)
    nad = get_nad(sel.namespace, sel.name)
    if nad is None:
        raise ResolveError(
            f'cannot find a network-attachment-definition ({sel.name}) in namespace ({sel.namespace})'
        )
    conflist = conflist_of_nad(nad, cfg)
    check_capabilities(sel, conflist)
    capability_args = capability_args_of(sel)
    meta = nad.get("metadata") or {}
    annotations = meta.get("annotations") if isinstance(meta.get("annotations"), Mapping) else {}
    resource = annotations.get(RESOURCE_NAME_ANNOTATION) if isinstance(annotations, Mapping) else None
    device_id = None
    if isinstance(resource, str) and resource.strip() and next_device is not None:
        device_id = next_device(resource.strip(), sel.ref)
    elif sel.device_id is not None:
        device_id = sel.device_id
    if device_id is not None:
        capability_args["deviceID"] = device_id
        if isinstance(resource, str) and resource.strip():
            conflist = with_device(conflist, device_id)
    if sel.cni_args is not None:
        conflist = with_cni_args(conflist, sel.cni_args)
    return Delegate(
        network=sel.ref,
        ifname=sel.interface,
        conflist=conflist,
        capability_args=capability_args,
        default_route=sel.default_route,
        resource=resource if isinstance(resource, str) and resource.strip() else None,
        device_id=device_id,
    )


def cluster_delegates(
    cfg: PluginConfig,
    ifname: str,
    get_nad: GetNad | None,
    default_override: selection.Selection | None,
) -> list[Delegate]:
    """The cluster network on the runtime's interface, then the configured extra networks."""
    runtime_caps = dict(cfg.runtime_config)  # NPWG-38: the runtime's runtimeConfig, cluster only
    extras: list[tuple[str, dict[str, Any]]] = []
    if default_override is not None:
        if get_nad is None:
            raise ResolveError("the pod sets v1.multus-cni.io/default-network but no Kubernetes API is configured")
        nad = get_nad(default_override.namespace, default_override.name)
        if nad is None:
            raise ResolveError(
                f"cannot find a network-attachment-definition ({default_override.name}) in namespace "
                f"({default_override.namespace}) for v1.multus-cni.io/default-network"
            )
        cluster = (default_override.ref, conflist_of_nad(nad, cfg))
    elif cfg.cluster_network is not None:
        cluster = resolve_network_ref(cfg.cluster_network, cfg, get_nad)
    else:
        first = _normalize(cfg.delegates[0], None, "delegates[0]")
        cluster = (str(first.get("name", "")), first)
    if cfg.cluster_network is None:
        for i, raw in enumerate(cfg.delegates[1:], start=1):
            conflist = _normalize(raw, None, f"delegates[{i}]")
            extras.append((str(conflist.get("name", "")), conflist))
    delegates = [Delegate(network=cluster[0], ifname=ifname, conflist=cluster[1],
                          capability_args=runtime_caps, default=True)]
    delegates.extend(Delegate(network=name, ifname="", conflist=conflist) for name, conflist in extras)
    return delegates


def default_network_refs(cfg: PluginConfig, pod_namespace: str, get_nad: GetNad | None) -> list[Delegate]:
    """``defaultNetworks``: for every pod except those in ``systemNamespaces``."""
    if pod_namespace in cfg.system_namespaces:
        return []
    out = []
    for value in cfg.default_networks:
        name, conflist = resolve_network_ref(value, cfg, get_nad)
        out.append(Delegate(network=name, ifname="", conflist=conflist))
    return out


def name_extra_interfaces(delegates: Sequence[Delegate], taken: set[str]) -> list[Delegate]:
    """Give unnamed extra delegates ``netN`` names not used by anything else in the pod."""
    out = []
    for d in delegates:
        if d.ifname:
            out.append(d)
            continue
        n = 1
        while f"net{n}" in taken:
            n += 1
        taken.add(f"net{n}")
        out.append(replace(d, ifname=f"net{n}"))
    return out
