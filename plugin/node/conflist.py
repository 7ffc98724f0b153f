"""The node's primary CNI config, and the netplex conflist generated from it (pure decisions).

The node installer (``plugin.node.install``) reads the files; this module only decides. It is
standard library only like the rest of ``plugin/``, and checks the primary with the
plugin's own parser (``plugin.model.netconf``): the primary is what netplex will run as the
cluster network on every ADD, so if the plugin would refuse it, the installer refuses it
first and says so, instead of every pod on the node failing later (one parser, one verdict).

Decisions:

- **Which file is the primary.** The container runtime uses the lexically first
  ``.conf``/``.conflist``/``.json`` file of the conf dir (libcni's rule), so the primary is
  the first such file that is not ours (:data:`OUR_CONFLIST`). Ours is ``00-…`` so that it
  sorts before the usual ``05-cilium``/``10-calico``/``10-flannel`` files; a primary that
  still sorts before ours means the runtime never calls netplex, which is reported
  (:func:`shadowing_problem`).
- **The primary is inlined as ``delegates[0]``**, verbatim, rather than referenced as
  ``clusterNetwork: <path>``. The runtime then sees one self-consistent document: the
  capabilities we declare are those of exactly the config netplex will run, and an ADD
  does not read a second file that the primary's own installer may be rewriting at that
  moment (several write it in place, not atomically). The cost is that a change of the
  primary reaches netplex only at the installer's next reconcile (``--interval``), which
  regenerates the conflist. It is also what a Multus thin-plugin user has today.
- **Capabilities**: the union of the capabilities the primary's plugins enable, declared
  on the netplex plugin, so that the runtime sends their ``runtimeConfig``
  (``portMappings``, ``bandwidth``, …) to netplex, which hands it to the cluster network.
  Without this, hostPorts would silently stop working when netplex is installed.
- **cniVersion**: the primary's, when the installed plugin supports it. It is the version
  the runtime already speaks for this node; for an older primary the conflist is refused
  with the versions netplex accepts rather than silently upgraded.
- Nothing else is added: no ``binDir``, ``confDir`` or log settings. The runtime passes
  ``CNI_PATH`` (where it found netplex, hence the primary's plugins too), and the plugin's
  defaults apply.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from plugin.model import netconf
from plugin.model.problems import type_name

OUR_CONFLIST = "00-netplex.conflist"
NETWORK_NAME = "netplex"
PLUGIN_TYPE = "netplex"
CONFIG_EXTENSIONS = (".conf", ".conflist", ".json")


@dataclass(frozen=True, slots=True)
class Generated:
    """The conflist to write (``content``) and what it was made from, for log lines."""

    content: bytes
    primary: str
    primary_sha256: str
    cni_version: str
    capabilities: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Refused:
    """Why no conflist can be generated from the primary; one line, naming the file."""

    reason: str


def is_config_name(name: str) -> bool:
    """A file name the container runtime would load as a network config."""
    return os.path.splitext(name)[1] in CONFIG_EXTENSIONS


def choose_primary(names: Iterable[str]) -> str | None:
    """The first config file name in byte order that is not ours, or None.

    ``names`` are the regular files of the conf dir; the caller leaves out directories
    (our own ``netplex.d`` kubeconfig directory lives there too).
    """
    candidates = sorted(n for n in names if is_config_name(n) and n != OUR_CONFLIST)
    return candidates[0] if candidates else None


def shadowing_problem(primary: str) -> str | None:
    """Why the runtime would never call netplex: the primary sorts before our file."""
    if primary < OUR_CONFLIST:
        return (
            f"{primary} sorts before {OUR_CONFLIST} (got {json.dumps(primary)}), so the container "
            f"runtime uses it and never calls netplex; rename or remove it so that {OUR_CONFLIST} "
            "comes first"
        )
    return None


def generate(primary: str, text: bytes, kubeconfig: str | None, supported_versions: Sequence[str]) -> Generated | Refused:
    """The netplex conflist for primary file ``primary`` holding ``text``.

    ``kubeconfig`` is the kubeconfig's path *on the host* (the plugin runs there), or None
    in thick mode without ``--thin-fallback``: the daemon uses its own credentials, and a
    conflist without one makes the shim's fallback refuse ADD rather than run it without
    API access. ``supported_versions`` is what the installed plugin answered to VERSION.
    """
    try:
        data = json.loads(text)
    except UnicodeDecodeError as exc:
        return Refused(f"primary CNI config {primary} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                       "fix or replace the file")
    except json.JSONDecodeError as exc:
        return Refused(f"primary CNI config {primary} is not valid JSON (line {exc.lineno} column {exc.colno}: "
                       f"{exc.msg}); fix the file, netplex waits for a valid primary")
    if not isinstance(data, dict):
        return Refused(f"primary CNI config {primary} must be a JSON object (got a JSON {type_name(data)})")
    if primary.endswith(".conflist") and "plugins" not in data:
        return Refused(f'primary CNI config {primary} is a .conflist without a "plugins" list; '
                       "the runtime refuses it too: add \"plugins\" or rename the file to .conf")
    parsed = netconf.parse_netconf_object(data, None, path=primary)
    if not parsed.ok or parsed.cni_version is None:
        problems = "; ".join(str(p) for p in parsed.errors) or "no cniVersion"
        return Refused(f"primary CNI config {primary} would be refused by the netplex plugin: {problems}")
    if PLUGIN_TYPE in parsed.plugin_types:
        return Refused(f'primary CNI config {primary} already runs the "{PLUGIN_TYPE}" plugin; netplex cannot '
                       "delegate to itself: point it at the node's own network config instead")
    if parsed.cni_version not in supported_versions:
        return Refused(f"primary CNI config {primary} has cniVersion {parsed.cni_version} (got "
                       f"{json.dumps(parsed.cni_version)}), which the netplex plugin does not accept; "
                       f"use one of {', '.join(supported_versions)} in the primary config")
    capabilities = tuple(sorted(parsed.capabilities))
    conflist = render(parsed.cni_version, data, capabilities, kubeconfig)
    return Generated(conflist, primary, hashlib.sha256(text).hexdigest(), parsed.cni_version, capabilities)


def render(cni_version: str, primary: Mapping[str, Any], capabilities: Sequence[str], kubeconfig: str | None) -> bytes:
    """The conflist text: stable (same inputs, same bytes), so unchanged means no rewrite."""
    plugin: dict[str, Any] = {"type": PLUGIN_TYPE}
    if capabilities:
        plugin["capabilities"] = {name: True for name in capabilities}
    if kubeconfig is not None:
        plugin["kubeconfig"] = kubeconfig
    plugin["delegates"] = [primary]
    document = {"cniVersion": cni_version, "name": NETWORK_NAME, "plugins": [plugin]}
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")

