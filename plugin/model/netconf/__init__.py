"""CNI network configurations (a single plugin "conf" or a "conflist"), parsed and checked.

One parser serves both halves of netplex: the webhook runs it on a NAD's ``spec.config``
at ``kubectl apply`` time, and the CNI plugin runs it on the same text (or on an on-disk
file, or a ``delegates`` entry) before it executes anything. So whatever the plugin
would refuse is refused at admission, with the field path and the fix.

What it returns is a :class:`NetConfResult`: the normalized conflist that the plugin
executes, plus errors and warnings as :class:`plugin.model.problems.Problem` values. Nothing
here raises on bad input; arbitrary text and arbitrary JSON values give problems.

The checker is split by subject, one module each:

- ``document``: the entry points, JSON decoding (``_decode``), conf vs conflist, ``name``,
  ``plugins``, the flags, reserved and miscased keys, each plugin's generic CNI keys, and
  the normalized conflist;
- ``versions``: ``cniVersion`` and ``cniVersions``, and which version a config runs with;
- ``plugins``: the table from a plugin's ``type`` to the checker of its fields (macvlan,
  ipvlan, bridge, host-device, sriov, vlan): **add a CNI plugin type there**;
- ``ipam``: the table from ``ipam.type`` to the checker of that IPAM kind (host-local,
  static, whereabouts, dhcp), and the host-local overlap check;
- ``fields``: the field primitives the others are made of (integers, MTU, booleans,
  choices, interface names, string lists, IP and CIDR fields, routes, dns).
"""

from plugin.model.names import PLUGIN_TYPE_RE, plugin_type_problem
from plugin.model.netconf.document import NetConfResult, parse_netconf, parse_netconf_object
from plugin.model.netconf.versions import SUPPORTED_VERSIONS, VERSION_RULE

__all__ = [
    "PLUGIN_TYPE_RE",
    "SUPPORTED_VERSIONS",
    "VERSION_RULE",
    "NetConfResult",
    "parse_netconf",
    "parse_netconf_object",
    "plugin_type_problem",
]
