"""Validators for the names and addresses users write in annotations and NADs.

Each ``check_*`` function returns ``None`` when the value is valid, or the message part
of a :class:`plugin.model.problems.Problem`: what is wrong, with the value, and what would be
accepted. Callers add the field path. The rules and where they come from:

- DNS-1123 label (NAD names, namespaces, selection parts): NPWG-3, Kubernetes
  ``IsDNS1123Label``; subdomain: Kubernetes ``IsDNS1123Subdomain``.
- CNI network name and container ID: CNI-1, CNI-39 (libcni ``ValidateNetworkName``,
  ``ValidateContainerID``).
- Interface names: NPWG-11, CNI-40 (libcni ``ValidateInterfaceName``, the kernel's
  ``dev_valid_name``); NUL is refused too, it cannot cross the netlink API.
- MAC: NPWG-10 (a 6-byte Ethernet address since NPWG v1.2), unicast only, because the
  kernel refuses a multicast or all-zero address on an interface.
- InfiniBand GUID: NPWG-16 (8 bytes).
- Label keys and values (a NAD's ``k8s.v1.cni.cncf.io/nodeSelector``) and extended
  resource names (its ``k8s.v1.cni.cncf.io/resourceName``): Kubernetes
  ``IsQualifiedName``, ``IsValidLabelValue`` and ``IsExtendedResourceName``, so what
  the webhook injects into a pod is what the API server accepts.
- Plugin ``type``: a bare file name in the CNI bin directories (issue 4 §6). It lives
  here rather than in :mod:`plugin.model.netconf` because every delegate execution checks it,
  and a cached DEL should not load the NAD parser (nor ``ipaddress``) to do so.
"""

from __future__ import annotations

import re
import string

from plugin.model.problems import show, type_name

TYPE_CHECKING = False  # typing is not imported at run time (~4 ms per start); mypy takes this as True
if TYPE_CHECKING:
    import ipaddress  # imported where used: a cached DEL needs no address parsing

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
IFNAME_MAX_BYTES = 15

_DNS1123_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
CNI_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")
PLUGIN_TYPE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_HEX = frozenset(string.hexdigits)

LABEL_RULE = (
    "use lowercase letters, digits and '-', starting and ending with a letter or digit, "
    f"at most {DNS1123_LABEL_MAX} characters"
)
SUBDOMAIN_RULE = (
    "use lowercase letters, digits, '-' and '.', each dot-separated part starting and ending "
    f"with a letter or digit, at most {DNS1123_SUBDOMAIN_MAX} characters"
)
CNI_NAME_RULE = "use letters, digits, '_', '.' and '-', starting with a letter or digit"
IFNAME_RULE = (
    f"use 1-{IFNAME_MAX_BYTES} bytes, not '.' or '..', and no '/', ':', whitespace or NUL"
)
MAC_RULE = "use a 6-byte unicast Ethernet address such as 02:00:00:00:00:01"
GUID_RULE = "use an 8-byte GUID such as 00:11:22:33:44:55:66:77"
TYPE_RULE = (
    'type is the bare file name of a plugin in the CNI bin directory, e.g. "bridge" or '
    '"macvlan": letters, digits, "_", "." and "-", starting with a letter or digit, '
    'no "/" and no ".."'
)


def _label_reason(value: str) -> str | None:
    """Why ``value`` breaks the DNS-1123 label rule, in the user's terms."""
    if value == "":
        return "is empty"
    if len(value) > DNS1123_LABEL_MAX:
        return f"has {len(value)} characters, more than {DNS1123_LABEL_MAX}"
    for ch in value:
        if ch.isupper():
            return f"contains uppercase {ch!r}"
        if ch == ".":
            return "contains '.'"
        if not (ch.isascii() and (ch.isalnum() or ch == "-")):
            return f"contains {ch!r}"
    if value.startswith("-"):
        return "starts with '-'"
    if value.endswith("-"):
        return "ends with '-'"
    return None


def check_dns1123_label(value: object, what: str = "name") -> str | None:
    """A Kubernetes DNS-1123 label: NAD names (NPWG-3) and namespaces.

    The API server checks custom-resource names only as subdomains, so ``my.net`` gets
    past it; the NPWG spec wants a label, which only this check enforces.
    """
    if not isinstance(value, str):
        return f"{show(value)} is not a valid {what} (not a string); {LABEL_RULE}"
    reason = _label_reason(value)
    if reason is None:
        return None
    return f"{show(value)} is not a valid {what} (a DNS-1123 label: it {reason}); {LABEL_RULE}"


def check_dns1123_subdomain(value: object, what: str = "name") -> str | None:
    """A Kubernetes DNS-1123 subdomain (the API server's rule for most object names)."""
    if not isinstance(value, str):
        return f"{show(value)} is not a valid {what} (not a string); {SUBDOMAIN_RULE}"
    reason = _subdomain_reason(value)
    if reason is None:
        return None
    return f"{show(value)} is not a valid {what} (a DNS-1123 subdomain: it {reason}); {SUBDOMAIN_RULE}"


def _subdomain_reason(value: str, limit: int = DNS1123_SUBDOMAIN_MAX) -> str | None:
    if value == "":
        return "is empty"
    if len(value) > limit:
        return f"has {len(value)} characters, more than {limit}"
    for part in value.split("."):
        if part == "":
            return "has an empty part between dots"
        part_reason = _label_reason(part)
        if part_reason is not None and len(part) <= DNS1123_LABEL_MAX:
            return f"has a part {show(part)} that {part_reason}"
    return None


QUALIFIED_NAME_MAX = 63
LABEL_VALUE_MAX = 63
# Kubernetes' quota names are "requests." + the resource name, and must still be
# qualified names, so an extended resource's domain has 253 - len("requests.") characters.
RESOURCE_PREFIX_MAX = DNS1123_SUBDOMAIN_MAX - len("requests.")
_NAME_PART_RULE = (
    f"at most {QUALIFIED_NAME_MAX} letters, digits, '-', '_' and '.', starting and ending "
    "with a letter or digit"
)
LABEL_KEY_RULE = (
    "use [prefix/]name, e.g. \"topology.kubernetes.io/zone\" or \"rack\": an optional "
    f"DNS subdomain prefix of at most {DNS1123_SUBDOMAIN_MAX} characters, and a name of "
    f"{_NAME_PART_RULE}"
)
LABEL_VALUE_RULE = f"use {_NAME_PART_RULE}, or an empty value"
RESOURCE_NAME_RULE = (
    "use <domain>/<name>, e.g. \"intel.com/sriov_netdevice\": a DNS subdomain of at most "
    f"{RESOURCE_PREFIX_MAX} characters outside kubernetes.io, '/', and a name of "
    f"{_NAME_PART_RULE}"
)


def _name_part_reason(value: str, limit: int = QUALIFIED_NAME_MAX) -> str | None:
    """Why a label value or the name part of a qualified name is refused (``value`` non-empty)."""
    if len(value) > limit:
        return f"has {len(value)} characters, more than {limit}"
    for ch in value:
        if not (ch.isascii() and (ch.isalnum() or ch in "-_.")):
            return f"contains {ch!r}"
    if not value[0].isalnum():
        return f"starts with {value[0]!r}"
    if not value[-1].isalnum():
        return f"ends with {value[-1]!r}"
    return None


def _qualified_reason(value: str, prefix_limit: int = DNS1123_SUBDOMAIN_MAX) -> str | None:
    """Kubernetes ``IsQualifiedName``: ``[prefix/]name``."""
    parts = value.split("/")
    if len(parts) > 2:
        return "contains more than one '/'"
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if prefix == "":
            return "has an empty prefix before '/'"
        reason = _subdomain_reason(prefix, prefix_limit)
        if reason is not None:
            return f"has a prefix {show(prefix)} that is not a DNS subdomain: it {reason}"
    if name == "":
        return "has an empty name part" if len(parts) == 2 else "is empty"
    reason = _name_part_reason(name)
    if reason is not None:
        return f"has a name part {show(name)} that {reason}" if len(parts) == 2 else reason
    return None


def check_label_key(value: object, what: str = "label key") -> str | None:
    """A Kubernetes label key (``IsQualifiedName``), as in a pod's ``nodeSelector``."""
    if not isinstance(value, str):
        return f"{show(value)} is not a valid {what} (not a string); {LABEL_KEY_RULE}"
    reason = _qualified_reason(value)
    if reason is None:
        return None
    return f"{show(value)} is not a valid {what} (it {reason}); {LABEL_KEY_RULE}"


def check_label_value(value: object, what: str = "label value") -> str | None:
    """A Kubernetes label value (``IsValidLabelValue``); the empty value is valid."""
    if not isinstance(value, str):
        return f"{show(value)} is not a valid {what} (not a string); {LABEL_VALUE_RULE}"
    reason = _name_part_reason(value) if value else None
    if reason is None:
        return None
    return f"{show(value)} is not a valid {what} (it {reason}); {LABEL_VALUE_RULE}"


def check_extended_resource_name(value: object, what: str = "extended resource name") -> str | None:
    """Kubernetes ``IsExtendedResourceName``: what a device plugin's resource may be called.

    A name the API server would refuse in a container's ``resources`` must not reach the
    pod patch, where the refusal would not mention the NAD it came from.
    """
    if not isinstance(value, str):
        return f"{show(value)} is not a valid {what} (not a string); {RESOURCE_NAME_RULE}"
    reason: str | None
    if "/" not in value:
        reason = "has no domain prefix; names without one are Kubernetes' own, such as cpu"
    elif "kubernetes.io/" in value:
        reason = "is in the kubernetes.io domain, which Kubernetes keeps for its own resources"
    elif value.startswith("requests."):
        reason = 'starts with "requests.", which Kubernetes keeps for resource quotas'
    else:
        reason = _qualified_reason(value, RESOURCE_PREFIX_MAX)
    if reason is None:
        return None
    return f"{show(value)} is not a valid {what} (it {reason}); {RESOURCE_NAME_RULE}"


def check_cni_name(value: object, what: str = "CNI network name") -> str | None:
    """CNI-1: the network ``name`` in a conf or conflist (libcni ``ValidateNetworkName``)."""
    if not isinstance(value, str):
        return f"{show(value)} is not a valid {what} (not a string); {CNI_NAME_RULE}"
    if value == "":
        return f"{what} is empty; {CNI_NAME_RULE}"
    if CNI_NAME_RE.match(value) is None or "\n" in value:
        bad = _first_bad_cni_char(value)
        return f"{show(value)} is not a valid {what} ({bad}); {CNI_NAME_RULE}"
    return None


def _first_bad_cni_char(value: str) -> str:
    if not (value[0].isascii() and value[0].isalnum()):
        return f"starts with {value[0]!r}"
    for ch in value:
        if not (ch.isascii() and (ch.isalnum() or ch in "_.-")):
            return f"contains {ch!r}"
    return "does not match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"


def check_container_id(value: object) -> str | None:
    """CNI-39: ``CNI_CONTAINERID`` (same character rule as a network name)."""
    return check_cni_name(value, what="container ID")


def check_interface_name(value: object) -> str | None:
    """NPWG-11 / CNI-40: a Linux interface name the kernel will accept.

    The limit is 15 *bytes* (IFNAMSIZ minus the NUL), so ``"ünïcödé-net1"`` can be too
    long at 12 characters.
    """
    if not isinstance(value, str):
        return f"{show(value)} is not a valid interface name (not a string); {IFNAME_RULE}"
    reason: str | None = None
    size = len(value.encode("utf-8", "surrogatepass"))
    if value == "":
        reason = "empty"
    elif size > IFNAME_MAX_BYTES:
        reason = f"{size} bytes long"
    elif value in (".", ".."):
        reason = f"{value!r} is reserved"
    else:
        for ch in value:
            if ch in "/:":
                reason = f"contains {ch!r}"
                break
            if ch == "\0":
                reason = "contains NUL"
                break
            if ch.isspace():
                reason = "contains whitespace"
                break
    if reason is None:
        return None
    return f"{show(value)} is not a valid interface name ({reason}); {IFNAME_RULE}"


def _hardware_bytes(value: str) -> bytes | None:
    """Parse the hardware-address notations Go's ``net.ParseMAC`` accepts.

    ``aa:bb:..``, ``aa-bb-..`` (two hex digits a group) and ``aabb.ccdd.eeff`` (four a
    group), for 6, 8 or 20 bytes. Returns ``None`` when the notation is not one of them.
    """
    if len(value) < 14:
        return None
    if value[2] in ":-":
        sep = value[2]
        groups = value.split(sep)
        if any(len(g) != 2 for g in groups):
            return None
    elif value[4] == ".":
        parts = value.split(".")
        if any(len(p) != 4 for p in parts):
            return None
        groups = [p[i : i + 2] for p in parts for i in (0, 2)]
    else:
        return None
    if len(groups) not in (6, 8, 20) or any(not set(g) <= _HEX for g in groups):
        return None
    return bytes(int(g, 16) for g in groups)


def check_mac(value: object) -> str | None:
    """NPWG-10: ``mac`` of a selection element is a 6-byte unicast Ethernet MAC."""
    if not isinstance(value, str):
        return f"{show(value)} is not a valid MAC address (not a string); {MAC_RULE}"
    raw = _hardware_bytes(value)
    if raw is None:
        return f"{show(value)} is not a valid MAC address (not hex bytes separated by ':'); {MAC_RULE}"
    if len(raw) != 6:
        kind = "an InfiniBand GUID" if len(raw) == 8 else "an IPoIB hardware address"
        return (
            f"{show(value)} is not a valid MAC address ({len(raw)} bytes, {kind}; NPWG v1.2 allows "
            f"only 6-byte Ethernet MACs here, use infiniband-guid for InfiniBand); {MAC_RULE}"
        )
    if raw[0] & 1:
        return (
            f"{show(value)} is not a valid MAC address (a multicast address: the lowest bit of the "
            f"first byte 0x{raw[0]:02x} is set, and an interface cannot use it); {MAC_RULE}"
        )
    if raw == bytes(6):
        return f"{show(value)} is not a valid MAC address (all zeros); {MAC_RULE}"
    return None


def check_infiniband_guid(value: object) -> str | None:
    """NPWG-16: ``infiniband-guid`` is the low 8 bytes of an IPoIB address."""
    if not isinstance(value, str):
        return f"{show(value)} is not a valid InfiniBand GUID (not a string); {GUID_RULE}"
    raw = _hardware_bytes(value)
    if raw is None:
        return (
            f"{show(value)} is not a valid InfiniBand GUID (not hex bytes separated by ':'); "
            f"{GUID_RULE}"
        )
    if len(raw) != 8:
        return f"{show(value)} is not a valid InfiniBand GUID ({len(raw)} bytes, not 8); {GUID_RULE}"
    return None


def plugin_type_problem(value: object) -> str | None:
    """Why ``value`` is not a usable plugin (or IPAM) ``type``, or ``None`` when it is.

    The type is joined to a directory to find the binary, so it must be a bare file
    name: a path would let whoever writes a NAD run any executable on the node.
    """
    if not isinstance(value, str):
        return f"plugin type must be a string (got {show(value)}, {_with_article(value)}); {TYPE_RULE}"
    if value == "":
        return f'plugin type is empty (got ""); {TYPE_RULE}'
    if "/" in value or "\\" in value or ".." in value:
        return (
            f"plugin type must be a bare file name, not a path (got {show(value)}); a NAD "
            f"must not choose a binary outside the configured CNI bin directories: {TYPE_RULE}"
        )
    if PLUGIN_TYPE_RE.fullmatch(value) is None:
        if not (value[0].isascii() and value[0].isalnum()):
            reason = f"starts with {value[0]!r}"
        else:
            bad = next(ch for ch in value if not (ch.isascii() and (ch.isalnum() or ch in "_.-")))
            reason = f"contains {bad!r}"
        return (
            f"plugin type is not a valid file name (got {show(value)}, which {reason}); "
            f"{TYPE_RULE}"
        )
    return None


def _with_article(value: object) -> str:
    """ "a number", "an object": the JSON type of a value with its article."""
    name = type_name(value)
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if "%" in value or value.strip() != value:
        return None  # zone IDs and padding: Go's net.ParseIP refuses both
    import ipaddress

    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def check_ip(value: object, what: str = "IP address") -> str | None:
    """A bare IPv4 or IPv6 address (no prefix): gateways, range bounds, routes' ``gw``."""
    if not isinstance(value, str):
        return f"{show(value)} is not a valid {what} (not a string); use an IPv4 or IPv6 address"
    if _ip(value) is not None:
        return None
    if "/" in value and check_cidr(value) is None:
        return (
            f"{show(value)} is not a valid {what} (has a prefix length); "
            f"use the address alone, e.g. {show(value.split('/', 1)[0])}"
        )
    return (
        f"{show(value)} is not a valid {what}; use an IPv4 address like 192.0.2.10 "
        "or an IPv6 address like 2001:db8::10"
    )


def parse_cidr(value: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface | None:
    """An address with a prefix length; host bits may be set (as Go's ``ParseCIDR``)."""
    if "/" not in value:
        return None
    addr, _, prefix = value.partition("/")
    if _ip(addr) is None or not prefix.isdigit() or (len(prefix) > 1 and prefix[0] == "0"):
        return None
    import ipaddress

    try:
        return ipaddress.ip_interface(value)
    except ValueError:
        return None


def check_cidr(value: object, what: str = "CIDR") -> str | None:
    """An address or subnet with a prefix length, v4 or v6 (``10.1.0.0/16``, ``2001:db8::/64``)."""
    if not isinstance(value, str):
        return f"{show(value)} is not a valid {what} (not a string); use address/prefix, e.g. 10.1.0.0/16"
    if parse_cidr(value) is not None:
        return None
    if _ip(value) is not None:
        bits = 32 if ":" not in value else 128
        return (
            f"{show(value)} is not a valid {what} (no prefix length); "
            f"add one, e.g. {show(value + ('/24' if bits == 32 else '/64'))}"
        )
    return f"{show(value)} is not a valid {what}; use address/prefix, e.g. 10.1.0.0/16 or 2001:db8::/64"


def check_ip_or_cidr(value: object, what: str = "IP address") -> str | None:
    """NPWG-9: a selection's ``ips`` entry, an address with an optional prefix."""
    if value == "":
        return f"{what} is empty; use an address like 10.1.1.11 or 10.1.1.11/24"
    if isinstance(value, str) and "/" in value:
        return check_cidr(value, what)
    return check_ip(value, what)


def closest(name: str, candidates: list[str] | tuple[str, ...] | set[str]) -> str | None:
    """The candidate a typo most likely meant, for "did you mean" hints."""
    import difflib  # only on the error path

    matches = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None
