"""Executing one network configuration (a conflist) the way libcni does (cni.md §5, §10.4–10.8).

The plugin is a *runtime* toward its delegates; NPWG §7.1 requires that, without libcni,
it runs a configuration list exactly as the CNI spec says. This module is that runtime:
it picks the version, builds each plugin's request (:func:`build_request`, pure), and
walks the plugins in the order and with the error rules of each verb:

======  ========  ===============================  ==============================
verb    order     prevResult                        on a plugin error
======  ========  ===============================  ==============================
ADD     forward   none, then the previous result    stop, raise it (CNI-9, CNI-10)
DEL     reverse   the final ADD result (≥ 0.4.0)    stop, raise it (CNI-12)
CHECK   forward   the final ADD result              stop, raise it (CNI-13)
GC      forward   none; valid attachments injected  go on, raise all at the end
STATUS  forward   none                              stop, raise it
======  ========  ===============================  ==============================

Nothing is stripped from a plugin's object (CNI-5; libcni keeps ``capabilities`` too):
``name`` and ``cniVersion`` are set from the list (CNI-6, CNI-7, NPWG-33),
``runtimeConfig`` is replaced by the capability args the plugin declares (CNI-8), and
``prevResult`` is added when there is one.

Decisions where libcni leaves a choice:

- CHECK of a list below 0.4.0 raises ``CniError(1)`` with libcni's text (``configuration
  version "0.3.1" does not support the CHECK command``) instead of silently passing:
  the caller asked for something the configuration cannot do, and saying so is the
  only honest answer. The version is tested before ``disableCheck``, as in libcni.
- GC and STATUS of a list below 1.1.0 return silently (libcni), as does GC with
  ``disableGC``. libcni's GC first DELs the stale attachments of its own result
  cache; here that cache belongs to the caller (``plugin.cni.commands``), which does it.
- Every plugin's ``type`` is checked to be a bare file name before the first plugin
  runs (``CniError(7)``), so a list with one bad entry changes nothing on the node.
- A stored DEL ``prevResult`` that cannot be converted to the list's version is
  dropped with a warning (DEL is best-effort; libcni ≥ 1.3 does the same for a corrupt
  cache); CHECK raises instead.
- A list without ``cniVersion`` runs as ``0.1.0`` (CNI-46); libcni would send ``""``,
  which every skel plugin decodes as 0.1.0 anyway.

Exceptions::

    Exception
    ├── plugin.cni.protocol.CniError            the list itself is unusable (no plugins, a bad
    │                                  version, a bad flag), CHECK below 0.4.0, a plugin
    │                                  that cannot be found; GC and validate() raise one
    │                                  CniError that lists every plugin's failure
    └── plugin.cni.delegate.DelegateError  a plugin failed (ADD, DEL, CHECK, STATUS): its
                                       own code and message, with ``.plugin`` set
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from plugin.cni import delegate, logs, protocol
from plugin.cni.delegate import DelegateError, ExecFn
from plugin.model.names import plugin_type_problem
from plugin.model.records import field, record

TYPE_CHECKING = False  # typing is not imported at run time (~4 ms per start); mypy takes this as True
if TYPE_CHECKING:
    from typing import Any

log = logs.get_logger("netplex.delegate")

LEGACY_VERSION = "0.1.0"  # what a missing cniVersion means (libcni ParseVersion(""))
CHECK_SINCE = (0, 4, 0)
PREV_RESULT_ON_DEL_SINCE = (0, 4, 0)
GC_STATUS_SINCE = (1, 1, 0)
VALID_ATTACHMENTS_KEYS = ("cni.dev/valid-attachments", "cni.dev/attachments")  # main, spec-v1.1.0 tag


@record(frozen=True, slots=True)
class Attachment:
    """One network configuration applied to one container (cni.md §5.2).

    ``capability_args`` are the runtimeConfig candidates (``ips``, ``mac``,
    ``portMappings``, ``bandwidth``, ``infinibandGUID``, ``deviceID``,
    ``CNIDeviceInfoFile``, ...); each plugin sees only those it declares.
    ``netns`` is ``None`` when it is unknown or gone (DEL).
    """

    container_id: str
    netns: str | None
    ifname: str
    cni_args: str = ""
    capability_args: Mapping[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------- the request


def select_version(conflist: Mapping[str, Any]) -> str:
    """The version every request carries: the highest supported one of
    ``{cniVersion} ∪ cniVersions`` (CNI-6; libcni ``NetworkConfFromBytes``).

    Versions above the newest we know are left out; without ``cniVersions`` the
    ``cniVersion`` is used as written (a missing one meaning 0.1.0).
    """
    raw_version = conflist.get("cniVersion")
    if raw_version is not None and not isinstance(raw_version, str):
        raise protocol.CniError(protocol.INVALID_CONFIG, "cniVersion must be a string", f"got {json.dumps(raw_version)}")
    version = raw_version or LEGACY_VERSION
    listed = conflist.get("cniVersions")
    if listed is None:
        _parse(version, "cniVersion")
        return version
    if not isinstance(listed, list):
        raise protocol.CniError(protocol.INVALID_CONFIG, "cniVersions must be a list of version strings",
                           f"got {json.dumps(listed)}")
    newest = protocol.parse_version(protocol.LATEST_VERSION)
    candidates: list[tuple[tuple[int, int, int], str]] = []
    for position, entry in enumerate(listed):
        if not isinstance(entry, str):
            raise protocol.CniError(protocol.INVALID_CONFIG, f"cniVersions[{position}] must be a string",
                               f"got {json.dumps(entry)}")
        parsed = _parse(entry, f"cniVersions[{position}]")
        if parsed <= newest:
            candidates.append((parsed, entry))
    parsed_version = _parse(version, "cniVersion")
    if parsed_version <= newest:
        candidates.append((parsed_version, version))
    if not candidates:
        raise protocol.CniError(protocol.INCOMPATIBLE_VERSION, "no supported version in cniVersion and cniVersions",
                           f"got {json.dumps(version)} and {json.dumps(listed)}; "
                           f"supported: {', '.join(protocol.SUPPORTED_VERSIONS)}")
    return max(candidates)[1]


def _parse(version: str, where: str) -> tuple[int, int, int]:
    try:
        return protocol.parse_version(version)
    except protocol.CniError as exc:  # code 1, as protocol.parse_version decided
        raise protocol.CniError(exc.code, f"{where}: {exc.msg}", exc.details) from exc


def plugins_of(conflist: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The plugin objects in execution order.

    A single configuration (``type`` and no ``plugins``) counts as a list of itself
    (libcni ``ConfListFromConf``), so a caller holding either can run it. Every type is
    checked to be a bare file name here, before the first plugin runs.
    """
    plugins = [conflist] if "plugins" not in conflist and "type" in conflist else conflist.get("plugins")
    if not isinstance(plugins, list) or not plugins:
        raise protocol.CniError(protocol.INVALID_CONFIG, f"network {json.dumps(conflist.get('name'))} has no plugins",
                           "plugins must be a non-empty list of plugin objects")
    for position, plugin in enumerate(plugins):
        if not isinstance(plugin, Mapping):
            raise protocol.CniError(protocol.INVALID_CONFIG, f"plugins[{position}] must be an object",
                               f"got {json.dumps(plugin)}")
        if not isinstance(plugin.get("type"), str) or not plugin["type"]:
            raise protocol.CniError(protocol.INVALID_CONFIG, f"plugins[{position}].type must be a non-empty string",
                               f"got {json.dumps(plugin.get('type'))}")
        problem = plugin_type_problem(plugin["type"])
        if problem is not None:  # before any plugin runs: half a chain is worse than none
            raise protocol.CniError(protocol.INVALID_CONFIG,
                               f"plugins[{position}]: refusing to run plugin type {json.dumps(plugin['type'])}",
                               problem)
    return list(plugins)


def runtime_config(plugin: Mapping[str, Any], capability_args: Mapping[str, Any]) -> dict[str, Any]:
    """The capability args this plugin declared ``true`` (CNI-8, cni.md §5.5)."""
    declared = plugin.get("capabilities")
    if not isinstance(declared, Mapping):
        return {}
    return {key: value for key, value in capability_args.items() if declared.get(key) is True}


def build_request(plugin: Mapping[str, Any], conflist: Mapping[str, Any], *, capability_args: Mapping[str, Any],
                  prev_result: Mapping[str, Any] | None, extra: Mapping[str, Any] | None = None) -> bytes:
    """The stdin of one plugin: its object with the list's ``name`` and version injected,
    ``runtimeConfig`` (only when non-empty; it replaces a stored one), ``prevResult``
    when given, and ``extra`` keys (GC's valid attachments). Pure."""
    request = dict(plugin)
    request["name"] = conflist.get("name", plugin.get("name", ""))
    request["cniVersion"] = select_version(conflist)
    if prev_result is not None:
        request["prevResult"] = prev_result
    config = runtime_config(plugin, capability_args)
    if config:
        request["runtimeConfig"] = config
    if extra:
        request.update(extra)
    return json.dumps(request, ensure_ascii=False).encode("utf-8")


# ------------------------------------------------------------------------ the verbs


def add(conflist: Mapping[str, Any], att: Attachment, *, dirs: Sequence[str], environ: Mapping[str, str],
        exec_fn: ExecFn | None = None, timeout: float = delegate.DEFAULT_TIMEOUT,
        retry_interval: float = delegate.RETRY_INTERVAL) -> dict[str, Any]:
    """ADD every plugin in order; the last result, in the list's version.

    Nothing is rolled back here: the caller owns the transaction (and must DEL even a
    failed ADD, CNI-18).
    """
    version = select_version(conflist)
    prev: dict[str, Any] | None = None
    for plugin in plugins_of(conflist):
        request = build_request(plugin, conflist, capability_args=att.capability_args, prev_result=prev)
        result = delegate.invoke(
            plugin["type"], "ADD", request, dirs=dirs, environ=environ, request_version=version,
            container_id=att.container_id, netns=att.netns, ifname=att.ifname, cni_args=att.cni_args,
            timeout=timeout, exec_fn=exec_fn, retry_interval=retry_interval)
        assert result is not None
        prev = _as_version(result, version, plugin["type"])
    assert prev is not None
    return prev


def delete(conflist: Mapping[str, Any], att: Attachment, prev_result: Mapping[str, Any] | None, *,
           dirs: Sequence[str], environ: Mapping[str, str], exec_fn: ExecFn | None = None,
           timeout: float = delegate.DEFAULT_TIMEOUT, retry_interval: float = delegate.RETRY_INTERVAL) -> None:
    """DEL every plugin in reverse order, stopping at the first error (CNI-12).

    ``prev_result`` (the final ADD result) is sent only to lists of 0.4.0 and later,
    converted to the list's version.
    """
    version = select_version(conflist)
    prev: dict[str, Any] | None = None
    if prev_result is not None and _parse(version, "cniVersion") >= PREV_RESULT_ON_DEL_SINCE:
        try:
            prev = protocol.convert_result(prev_result, version)
        except protocol.CniError as exc:
            log.warning("deleting %s without prevResult: the stored result cannot be converted to %s: %s",
                        conflist.get("name"), version, getattr(exc, "msg", exc))
    for plugin in reversed(plugins_of(conflist)):
        _run(plugin, conflist, "DEL", att, prev, version, dirs=dirs, environ=environ, exec_fn=exec_fn,
             timeout=timeout, retry_interval=retry_interval)


def check(conflist: Mapping[str, Any], att: Attachment, prev_result: Mapping[str, Any] | None, *,
          dirs: Sequence[str], environ: Mapping[str, str], exec_fn: ExecFn | None = None,
          timeout: float = delegate.DEFAULT_TIMEOUT, retry_interval: float = delegate.RETRY_INTERVAL) -> None:
    """CHECK every plugin in order with the final ADD result (CNI-13, CNI-14).

    ``att`` must carry the ADD's parameters. A ``None`` ``prev_result`` is sent as no
    prevResult, as libcni does without a cache file; plugins then fail on their own.
    """
    version = select_version(conflist)
    if _parse(version, "cniVersion") < CHECK_SINCE:
        raise protocol.CniError(protocol.INCOMPATIBLE_VERSION,
                           f"configuration version {json.dumps(version)} does not support the CHECK command",
                           "CHECK exists since CNI 0.4.0")
    if flag(conflist, "disableCheck"):
        return
    prev = None
    if prev_result is not None:
        try:
            prev = protocol.convert_result(prev_result, version)
        except protocol.CniError as exc:
            raise protocol.CniError(exc.code, f"the stored result cannot be converted to {version}: {exc.msg}",
                               exc.details) from exc
    for plugin in plugins_of(conflist):
        _run(plugin, conflist, "CHECK", att, prev, version, dirs=dirs, environ=environ, exec_fn=exec_fn,
             timeout=timeout, retry_interval=retry_interval)


def gc(conflist: Mapping[str, Any], valid_attachments: Sequence[Mapping[str, str]], *, dirs: Sequence[str],
       environ: Mapping[str, str], exec_fn: ExecFn | None = None, timeout: float = delegate.DEFAULT_TIMEOUT,
       retry_interval: float = delegate.RETRY_INTERVAL) -> None:
    """GC every plugin, telling each which attachments are still valid (CNI-15, CNI-16).

    Both key names are sent (the spec tag and main differ; libcni sends both). A
    failing plugin does not stop the others; all failures come back in one CniError.
    """
    if flag(conflist, "disableGC"):
        return
    version = select_version(conflist)
    if _parse(version, "cniVersion") < GC_STATUS_SINCE:
        return
    valid = [{"containerID": str(a.get("containerID", "")), "ifname": str(a.get("ifname", ""))}
             for a in valid_attachments]
    extra = dict.fromkeys(VALID_ATTACHMENTS_KEYS, valid)
    plugins = plugins_of(conflist)
    failures: list[protocol.CniError | DelegateError] = []
    for plugin in plugins:
        request = build_request(plugin, conflist, capability_args={}, prev_result=None, extra=extra)
        try:
            delegate.invoke(plugin["type"], "GC", request, dirs=dirs, environ=environ, request_version=version,
                            timeout=timeout, exec_fn=exec_fn, retry_interval=retry_interval)
        except (DelegateError, protocol.CniError) as exc:
            log.warning("GC of %s: %s: %s", conflist.get("name"), plugin["type"], exc)
            failures.append(exc)
    if failures:
        raise joined_error(f"GC of network {json.dumps(conflist.get('name'))}", plugins, failures)


def status(conflist: Mapping[str, Any], *, dirs: Sequence[str], environ: Mapping[str, str],
           exec_fn: ExecFn | None = None, timeout: float = delegate.DEFAULT_TIMEOUT,
           retry_interval: float = delegate.RETRY_INTERVAL) -> None:
    """STATUS every plugin in order, stopping at the first that is not ready (1.1.0+)."""
    version = select_version(conflist)
    if _parse(version, "cniVersion") < GC_STATUS_SINCE:
        return
    for plugin in plugins_of(conflist):
        request = build_request(plugin, conflist, capability_args={}, prev_result=None)
        delegate.invoke(plugin["type"], "STATUS", request, dirs=dirs, environ=environ, request_version=version,
                        timeout=timeout, exec_fn=exec_fn, retry_interval=retry_interval)


def validate(conflist: Mapping[str, Any], *, dirs: Sequence[str], environ: Mapping[str, str],
             exec_fn: ExecFn | None = None, timeout: float = delegate.DEFAULT_TIMEOUT,
             retry_interval: float = delegate.RETRY_INTERVAL) -> frozenset[str]:
    """libcni ``ValidateNetworkList`` (CNI-47): every plugin exists and supports the list's
    version; the union of the capabilities the plugins enable.

    All failures are collected into one CniError, so a node operator sees every
    missing or too-old plugin at once.
    """
    version = select_version(conflist)
    plugins = plugins_of(conflist)
    failures: list[protocol.CniError | DelegateError] = []
    capabilities: set[str] = set()
    for plugin in plugins:
        declared = plugin.get("capabilities")
        if isinstance(declared, Mapping):
            capabilities.update(k for k, v in declared.items() if v is True)
        try:
            supported = delegate.version_info(plugin["type"], dirs=dirs, environ=environ, timeout=timeout,
                                              exec_fn=exec_fn, retry_interval=retry_interval)
        except (DelegateError, protocol.CniError) as exc:
            failures.append(exc)
            continue
        if version not in supported:
            failures.append(DelegateError(protocol.INCOMPATIBLE_VERSION,
                                          f"plugin {plugin['type']} does not support config version "
                                          f"{json.dumps(version)}",
                                          f"it supports {', '.join(supported)}",
                                          plugin=plugin["type"], command="VERSION"))
    if failures:
        raise joined_error(f"network {json.dumps(conflist.get('name'))}", plugins, failures)
    return frozenset(capabilities)


# ------------------------------------------------------------------------- helpers


def flag(conflist: Mapping[str, Any], key: str) -> bool:
    """``disableCheck``/``disableGC``: a JSON bool or "true"/"false" in any case (CNI-45)."""
    value = conflist.get(key, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise protocol.CniError(protocol.INVALID_CONFIG, f"{key} must be true or false",
                       f'got {json.dumps(value)}; use a boolean or the strings "true"/"false"')


def joined_error(what: str, plugins: Sequence[Mapping[str, Any]],
                 failures: Sequence[protocol.CniError | DelegateError]) -> protocol.CniError:
    """One error for several plugins: their shared code (999 when they differ), a count,
    and each plugin's own message in ``details``."""
    codes = {f.code for f in failures}
    code = codes.pop() if len(codes) == 1 else protocol.INTERNAL
    lines = []
    for f in failures:
        who = f.plugin if isinstance(f, DelegateError) and f.plugin else "plugin"
        text = f"{who}: {f.msg}"
        lines.append(f"{text}: {f.details}" if f.details else text)
    return protocol.CniError(code or protocol.INTERNAL, f"{what}: {len(failures)} of {len(plugins)} plugins failed",
                        "; ".join(lines))


def _as_version(result: dict[str, Any], version: str, plugin_type: str) -> dict[str, Any]:
    """A plugin's result in the list's version, ready to be the next prevResult."""
    try:
        return protocol.convert_result(result, version)
    except protocol.CniError as exc:
        raise DelegateError(exc.code, f'plugin "{plugin_type}" returned a result that cannot be read as '
                            f"{version}: {exc.msg}", exc.details, plugin=plugin_type, command="ADD") from exc


def _run(plugin: Mapping[str, Any], conflist: Mapping[str, Any], command: str, att: Attachment,
         prev: Mapping[str, Any] | None, version: str, *, dirs: Sequence[str], environ: Mapping[str, str],
         exec_fn: ExecFn | None, timeout: float, retry_interval: float) -> None:
    request = build_request(plugin, conflist, capability_args=att.capability_args, prev_result=prev)
    delegate.invoke(plugin["type"], command, request, dirs=dirs, environ=environ, request_version=version,
                    container_id=att.container_id, netns=att.netns, ifname=att.ifname, cni_args=att.cni_args,
                    timeout=timeout, exec_fn=exec_fn, retry_interval=retry_interval)
