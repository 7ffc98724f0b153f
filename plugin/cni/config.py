"""The netplex plugin's own configuration (its stdin), with Multus' key names.

A Multus user switches by changing ``"type": "multus"`` to ``"type": "netplex"``: every key
below means what it means in Multus (see shared/reference/multus.md §2), keys match
case-insensitively as Go's encoding/json does, and unknown keys are ignored. Unlike
Multus, a value of the wrong type names the key and the expected type, and
``globalNamespaces`` also accepts a list.

Two defaults differ from Multus on purpose: ``cniDir`` is ``/var/lib/cni/netplex`` (our
cache format is not Multus' scratch cache, so the two must not share a directory), and
``logLevel`` defaults to ``error`` rather than ``panic`` (Multus' default logs nothing).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from plugin.model.problems import show, type_name
from plugin.model.records import field, record

TYPE_CHECKING = False  # typing is not imported at run time (~4 ms per start); mypy takes this as True
if TYPE_CHECKING:
    from typing import Any

DEFAULT_CONF_DIR = "/etc/cni/multus/net.d"
DEFAULT_CNI_DIR = "/var/lib/cni/netplex"
DEFAULT_BIN_DIR = "/opt/cni/bin"
DEFAULT_CHECKPOINT = "/var/lib/kubelet/device-plugins/kubelet_internal_checkpoint"
LOG_LEVELS = ("debug", "verbose", "info", "error", "panic")


@record(frozen=True, slots=True)
class PluginConfig:
    cni_version: str
    name: str
    kubeconfig: str | None = None
    cluster_network: str | None = None
    delegates: tuple[Mapping[str, Any], ...] = ()
    default_networks: tuple[str, ...] = ()
    conf_dir: str = DEFAULT_CONF_DIR
    cni_dir: str = DEFAULT_CNI_DIR
    bin_dir: str = DEFAULT_BIN_DIR
    namespace_isolation: bool = False
    global_namespaces: tuple[str, ...] = ("default",)
    system_namespaces: tuple[str, ...] = ("kube-system",)
    multus_namespace: str = "kube-system"
    readiness_indicator_file: str | None = None
    log_level: str = "error"
    log_file: str | None = None
    log_to_stderr: bool = True
    device_checkpoint: str = DEFAULT_CHECKPOINT
    runtime_config: Mapping[str, Any] = field(default_factory=dict)
    prev_result: Mapping[str, Any] | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


class ConfigError(ValueError):
    """The message names the key, the value and the expected type."""


def _lookup(data: Mapping[str, Any], key: str) -> tuple[bool, Any]:
    """Go's encoding/json matching: the exact key first, then any case-insensitive match."""
    if key in data:
        return True, data[key]
    lowered = key.lower()
    for candidate, value in data.items():
        if isinstance(candidate, str) and candidate.lower() == lowered:
            return True, value
    return False, None


def _wrong(key: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f'"{key}" must be {expected} (got {type_name(value)} {show(value)})')


def _str(data: Mapping[str, Any], key: str, default: str | None = None) -> str | None:
    found, value = _lookup(data, key)
    if not found or value is None:
        return default
    if not isinstance(value, str):
        raise _wrong(key, value, "a string")
    return value if value != "" else default


NAME_MAX = 255  # bytes in one path component (Linux)
PATH_MAX = 4095  # bytes in a whole path, without the final NUL


def path_problem(value: str) -> str | None:
    """Why the kernel would refuse ``value`` as a path, in the words of a message; None when fine.

    Checked here, where the key is known, so that a path that can never work is a
    configuration error naming the key (CNI code 7), not an ``OSError``/``ValueError`` from
    deep inside the cache, the logger or a file read."""
    if "\0" in value:
        return f"contains a NUL character (got {show(value)}); a path cannot contain NUL"
    try:
        raw = os.fsencode(value)
    except UnicodeEncodeError:
        return f"is not valid Unicode text (got {show(value)}); write the path in UTF-8"
    if len(raw) > PATH_MAX:
        return f"is {len(raw)} bytes long (got {show(value)}); a path has at most {PATH_MAX} bytes"
    longest = max(len(part) for part in raw.split(b"/"))
    if longest > NAME_MAX:
        return (f"has a name of {longest} bytes between two '/' (got {show(value)}); each name in a path has "
                f"at most {NAME_MAX} bytes")
    return None


def _path(data: Mapping[str, Any], key: str, default: str | None = None) -> str | None:
    """A string key that names a file or directory (see :func:`path_problem`)."""
    value = _str(data, key, default)
    if value is not None and value != default:
        problem = path_problem(value)
        if problem:
            raise ConfigError(f'"{key}" {problem}')
    return value


def _bool(data: Mapping[str, Any], key: str, default: bool) -> bool:
    found, value = _lookup(data, key)
    if not found or value is None:
        return default
    if not isinstance(value, bool):
        raise _wrong(key, value, "true or false")
    return value


def _str_list(data: Mapping[str, Any], key: str, default: tuple[str, ...], *, comma: bool = False) -> tuple[str, ...]:
    found, value = _lookup(data, key)
    if not found or value is None:
        return default
    if comma and isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _wrong(key, value, "a comma-separated string or a list of strings" if comma else "a list of strings")
    return tuple(value)


def _object(data: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    found, value = _lookup(data, key)
    if not found or value is None:
        return None
    if not isinstance(value, Mapping):
        raise _wrong(key, value, "an object")
    return value


def parse_plugin_config(data: Any) -> PluginConfig:
    """Read the plugin's stdin (already JSON-decoded); raises ConfigError."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"the netplex configuration must be a JSON object (got {type_name(data)})")
    found, delegates = _lookup(data, "delegates")
    if found and delegates is not None and (
        not isinstance(delegates, list) or not all(isinstance(d, Mapping) for d in delegates)
    ):
        raise _wrong("delegates", delegates, "a list of CNI configuration objects")
    cluster_network = _str(data, "clusterNetwork")
    delegate_list = tuple(delegates or ()) if cluster_network is None else ()
    if cluster_network is None and not delegate_list:
        raise ConfigError(
            'set "clusterNetwork" (a NAD name, a CNI network name in confDir, or a file or directory path) '
            'or "delegates" (a list with the cluster network\'s CNI configuration first)'
        )
    log_level = (_str(data, "logLevel", "error") or "error").lower()
    if log_level not in LOG_LEVELS:
        raise ConfigError(f'"logLevel" must be one of {", ".join(LOG_LEVELS)} (got {show(log_level)})')
    cache_dir = _path(data, "cniDir") or _path(data, "cacheDir") or DEFAULT_CNI_DIR
    return PluginConfig(
        cni_version=_str(data, "cniVersion", "") or "",
        name=_str(data, "name", "") or "",
        kubeconfig=_path(data, "kubeconfig"),
        cluster_network=cluster_network,
        delegates=delegate_list,
        default_networks=_str_list(data, "defaultNetworks", ()),
        conf_dir=_path(data, "confDir", DEFAULT_CONF_DIR) or DEFAULT_CONF_DIR,
        cni_dir=cache_dir,
        bin_dir=_path(data, "binDir", DEFAULT_BIN_DIR) or DEFAULT_BIN_DIR,
        namespace_isolation=_bool(data, "namespaceIsolation", False),
        global_namespaces=_str_list(data, "globalNamespaces", ("default",), comma=True),
        system_namespaces=_str_list(data, "systemNamespaces", ("kube-system",)),
        multus_namespace=_str(data, "multusNamespace", "kube-system") or "kube-system",
        readiness_indicator_file=_path(data, "readinessindicatorfile"),
        log_level=log_level,
        log_file=_path(data, "logFile"),
        log_to_stderr=_bool(data, "logToStderr", True),
        device_checkpoint=_path(data, "deviceCheckpointFile", DEFAULT_CHECKPOINT) or DEFAULT_CHECKPOINT,
        runtime_config=_object(data, "runtimeConfig") or {},
        prev_result=_object(data, "prevResult"),
        raw=data,
    )
