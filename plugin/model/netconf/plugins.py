"""Per-plugin-type rules: a table from a plugin's ``type`` to the function that checks its fields.

**This is where a contributor adds a CNI plugin type.** The generic CNI keys of every
plugin object (``type``, ``capabilities``, ``args``, ``dns``, ``mtu``, ``ipam`` ...) are
checked in :mod:`.document`; then the plugin's ``type`` is looked up in
:data:`PLUGIN_CHECKS` (at the bottom of this module) and, if it is there, its function
checks the fields that plugin reads, the way the plugin reads them when it loads its
config, so a mistake surfaces at admission instead of at pod start. A type that is not in
the table is run as is: its own fields are the plugin's business.

To add a type:

1. write ``_check_<type>(ch, p, path)``: ``ch`` is a :class:`.fields.Fields` (integer,
   mtu, boolean, choice, interface, string lists, IP and CIDR fields ...), ``p`` the
   plugin object, ``path`` its field path for messages; say in the docstring which code
   of the plugin the rules come from, and call ``_vlan_id`` if the plugin reads ``vlanId``;
2. add ``"<type>": _check_<type>`` to :data:`PLUGIN_CHECKS`;
3. add a passing and a failing case per rule to ``tests/plugin/test_netconf.py``, each
   failing case asserting the field path and the message.

:data:`KNOWN_TYPES` (the table's types and other common plugins) is only used to warn
about a type written in the wrong case.
"""

from __future__ import annotations

from collections.abc import Callable

from plugin.model.netconf.fields import Fields, a_type, at, safe_show

# typing is not imported at run time (~4 ms per start); mypy takes this as True
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _check_macvlan(ch: Fields, p: dict[str, Any], path: str) -> None:
    """macvlan ``modeFromString``: an unknown mode fails ADD; an empty one means bridge."""
    ch.choice(p, "mode", path, "macvlan mode", ("bridge", "private", "vepa", "passthru", "source"))
    ch.interface(p, "master", path)
    _vlan_id(ch, p, path)


def _check_ipvlan(ch: Fields, p: dict[str, Any], path: str) -> None:
    """ipvlan ``modeFromString`` and ``flagFromString``."""
    ch.choice(p, "mode", path, "ipvlan mode", ("l2", "l3", "l3s"))
    ch.choice(p, "flag", path, "ipvlan flag", ("bridge", "private", "vepa"))
    ch.interface(p, "master", path)
    _vlan_id(ch, p, path)


def _check_bridge(ch: Fields, p: dict[str, Any], path: str) -> None:
    """bridge ``loadNetConf``: the VLAN range, trunks, and its boolean switches."""
    ch.interface(p, "bridge", path)
    if "vlan" in p:
        ch.integer(p["vlan"], at(path, "vlan"), "VLAN ID", 0, 4094, "0 means no VLAN tag")
    for key in (
        "isGateway",
        "isDefaultGateway",
        "forceAddress",
        "ipMasq",
        "hairpinMode",
        "promiscMode",
    ):
        ch.boolean(p, key, path)
    if "vlanTrunk" in p:
        _check_vlan_trunk(ch, p["vlanTrunk"], at(path, "vlanTrunk"))
    _vlan_id(ch, p, path)


def _check_vlan_trunk(ch: Fields, value: object, path: str) -> None:
    """bridge ``vlanTrunk``: {id} or {minID, maxID}, VLANs 1-4094 (``collectVlanTrunk``)."""
    example = 'e.g. "vlanTrunk": [{"id": 42}, {"minID": 100, "maxID": 200}]'
    if not isinstance(value, list):
        ch.c.error(
            path,
            f"vlanTrunk must be a list of trunk objects "
            f"(got {safe_show(value)}, {a_type(value)}); {example}",
        )
        return
    for i, item in enumerate(value):
        where = at(path, i)
        if not isinstance(item, dict):
            ch.c.error(
                where,
                f"a trunk entry must be a JSON object (got {safe_show(item)}, {a_type(item)}); "
                f"{example}",
            )
            continue
        if not any(key in item for key in ("id", "minID", "maxID")):
            ch.c.error(
                where,
                f'a trunk entry needs "id", or "minID" and "maxID" (got {safe_show(item)}); '
                f"{example}",
            )
            continue
        if "id" in item:
            ch.integer(item["id"], at(where, "id"), "trunk VLAN ID", 1, 4094)
        if ("minID" in item) != ("maxID" in item):
            missing = "maxID" if "minID" in item else "minID"
            ch.c.error(
                at(where, missing),
                f'minID and maxID go together (got {safe_show(item)}, without "{missing}"); '
                f"set both, {example}",
            )
            continue
        if "minID" in item:
            low = ch.integer(item["minID"], at(where, "minID"), "trunk minID", 1, 4094)
            high = ch.integer(item["maxID"], at(where, "maxID"), "trunk maxID", 1, 4094)
            if low is not None and high is not None and low > high:
                ch.c.error(
                    at(where, "maxID"),
                    f"maxID is lower than minID (got minID {low}, maxID {high}); "
                    "minID must be lower "
                    "than or equal to maxID",
                )


def _check_host_device(ch: Fields, p: dict[str, Any], path: str) -> None:
    """host-device moves ``device`` into the pod: it must be a name the kernel accepts."""
    ch.interface(p, "device", path)
    _vlan_id(ch, p, path)


def _check_sriov(ch: Fields, p: dict[str, Any], path: str) -> None:
    """sriov-cni ``LoadConf``: vlan 0-4094, vlanQoS 0-7 (and only with a VLAN), link_state."""
    vlan = (
        ch.integer(p["vlan"], at(path, "vlan"), "VLAN ID", 0, 4094, "0 means no VLAN tag")
        if "vlan" in p
        else 0
    )
    if "vlanQoS" in p:
        qos = ch.integer(p["vlanQoS"], at(path, "vlanQoS"), "VLAN QoS", 0, 7)
        if qos and vlan == 0:
            ch.c.error(
                at(path, "vlanQoS"),
                f"a VLAN QoS needs a VLAN (got vlanQoS {qos} with vlan "
                f"{safe_show(p.get('vlan', 0))}); "
                "set a non-zero vlan, or vlanQoS 0",
            )
    ch.choice(p, "link_state", path, "link_state", ("auto", "enable", "disable"))
    _vlan_id(ch, p, path)


def _check_vlan(ch: Fields, p: dict[str, Any], path: str) -> None:
    """vlan makes a sub-interface of ``master``, tagged with ``vlanId``."""
    ch.interface(p, "master", path)
    _vlan_id(ch, p, path)


def _vlan_id(ch: Fields, p: dict[str, Any], path: str) -> None:
    """``vlanId``: a VLAN ID from 0 to 4094, for each type above whose checker calls this."""
    if "vlanId" in p:
        ch.integer(p["vlanId"], at(path, "vlanId"), "VLAN ID", 0, 4094, "0 means no VLAN tag")


# type -> its rules. Add a CNI plugin type here (see the module docstring).
PLUGIN_CHECKS: dict[str, Callable[[Fields, dict[str, Any], str], None]] = {
    "macvlan": _check_macvlan,
    "ipvlan": _check_ipvlan,
    "bridge": _check_bridge,
    "host-device": _check_host_device,
    "sriov": _check_sriov,
    "vlan": _check_vlan,
}

# Plugins shipped with containernetworking-plugins and the common add-ons; used only to
# warn about a wrong case ("MacVlan"), because binary file names are case-sensitive.
KNOWN_TYPES = frozenset(PLUGIN_CHECKS) | frozenset(
    {
        "ptp",
        "loopback",
        "tuning",
        "portmap",
        "bandwidth",
        "firewall",
        "sbr",
        "vrf",
        "dummy",
        "tap",
        "host-local",
        "static",
        "dhcp",
        "whereabouts",
        "cnv-bridge",
        "ovs",
        "ib-sriov",
    }
)
KNOWN_TYPES_BY_LOWER = {t.lower(): t for t in KNOWN_TYPES}
