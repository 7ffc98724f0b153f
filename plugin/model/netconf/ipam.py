"""IPAM kinds: the ``ipam`` object, and a table from ``ipam.type`` to the rules of that kind.

:func:`check_ipam` checks the object itself (a JSON object; no ``type`` means "no IPAM";
``type`` is a bare file name), then looks ``ipam.type`` up in :data:`IPAM_CHECKS`, at the
bottom of this module. Each entry checks its kind's fields the way that IPAM plugin reads
them when it loads its config; a kind that is not in the table is only name-checked.

To check one more IPAM kind, write ``_<kind>(ch, ipam, path, caps)`` next to the others
(``ch`` is an :class:`IpamFields`: the field primitives of :mod:`.fields` plus the ranges
seen so far) and add it to :data:`IPAM_CHECKS`; its tests go in
``tests/plugin/test_netconf.py``.

host-local ranges are also checked across the whole config: no two ranges, even in
different plugins of one conflist, may overlap (:meth:`IpamFields.check_overlaps`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from plugin.model.names import check_cidr, check_ip, parse_cidr, plugin_type_problem
from plugin.model.netconf.fields import (
    Fields,
    IPAddress,
    IPNetwork,
    a_type,
    at,
    case_hint,
    family,
    run_check,
    safe_show,
)
from plugin.model.problems import Collector, show
from plugin.model.records import record

# typing is not imported at run time (~4 ms per start); mypy takes this as True
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@record(frozen=True, slots=True)
class _Pool:
    """The addresses one host-local range hands out, for the overlap check."""

    path: str
    order: int
    network: IPNetwork
    first: IPAddress
    last: IPAddress


class IpamFields(Fields):
    """The field primitives, plus the host-local ranges seen so far in one config."""

    def __init__(self, collector: Collector) -> None:
        super().__init__(collector)
        self.pools: list[_Pool] = []

    def check_overlaps(self) -> None:
        """No two host-local ranges of the config may hand out the same address."""
        ordered = sorted(self.pools, key=lambda p: (p.network.version, int(p.first), p.order))
        widest: _Pool | None = None
        for pool in ordered:
            if (
                widest is not None
                and widest.network.version == pool.network.version
                and int(pool.first) <= int(widest.last)
            ):
                later, earlier = (pool, widest) if pool.order > widest.order else (widest, pool)
                self.c.error(
                    later.path,
                    f"this range overlaps the range at {earlier.path} "
                    f"(got {later.first}-{later.last}, "
                    f"which overlaps {earlier.first}-{earlier.last}); ranges must not overlap, "
                    "host-local refuses it: make them disjoint",
                )
            if (
                widest is None
                or widest.network.version != pool.network.version
                or int(pool.last) > int(widest.last)
            ):
                widest = pool


def check_ipam(ch: IpamFields, value: object, path: str, caps: set[str]) -> None:
    """``ipam``: an object whose ``type`` picks the IPAM binary, then that type's fields.

    An ``ipam`` without a type is how plugins say "no IPAM" (bridge and macvlan run
    IPAM only when ``ipam.type`` is non-empty), so it is not an error. ``caps`` are the
    plugin's enabled capabilities: host-local may get its ranges at run time instead.
    """
    if not isinstance(value, dict):
        ch.c.error(
            path,
            f"ipam must be a JSON object (got {safe_show(value)}, {a_type(value)}); e.g. "
            '"ipam": {"type": "host-local", "subnet": "10.1.0.0/24"}',
        )
        return
    if value.get("type", "") == "":
        settings = [k for k in value if k != "type"]
        if settings:
            ch.c.warn(
                path,
                f"ipam has settings but no type (got keys {safe_show(settings)}"
                f'{case_hint(value, "type")}); no IPAM plugin runs without "type", so '
                'they are ignored: set "type", e.g. "host-local"',
            )
        return
    ipam_type = value["type"]
    problem = plugin_type_problem(ipam_type)
    if problem is not None:
        ch.c.error(at(path, "type"), problem.replace("plugin type", "IPAM type"))
        return
    check = IPAM_CHECKS.get(ipam_type)
    if check is not None:
        check(ch, value, path, caps)


def _routes(ch: IpamFields, ipam: dict[str, Any], path: str) -> None:
    """``routes``, in the shape all four kinds share (``types.Route``)."""
    if "routes" in ipam:
        ch.routes(ipam["routes"], at(path, "routes"))


def _host_local(ch: IpamFields, ipam: dict[str, Any], path: str, caps: set[str]) -> None:
    """host-local: ``subnet`` (+ range keys) or ``ranges`` (a list of range sets)."""
    _routes(ch, ipam, path)
    if "subnet" in ipam:
        _host_local_range(ch, ipam, path)
    else:
        for key in ("rangeStart", "rangeEnd", "gateway"):
            if key in ipam:
                ch.c.error(
                    at(path, key),
                    f'{key} has no effect without "subnet" next to it '
                    f"(got {safe_show(ipam[key])}); "
                    f'add "subnet", or move it into a range inside "ranges"',
                )
    if "ranges" in ipam:
        _range_sets(ch, ipam["ranges"], at(path, "ranges"))
    elif "subnet" not in ipam and "ipRanges" not in caps:
        ch.c.error(
            path,
            'host-local has no addresses to hand out (got neither "subnet" nor "ranges"); '
            'set "subnet": "10.1.0.0/24", or "ranges": [[{"subnet": "10.1.0.0/24"}]]',
        )


def _range_sets(ch: IpamFields, value: object, path: str) -> None:
    """``ranges``: one address per range set, each set of one address family."""
    example = 'e.g. "ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "2001:db8::/64"}]]'
    if not isinstance(value, list):
        ch.c.error(
            path,
            f"ranges must be a list of range sets (got {safe_show(value)}, {a_type(value)}); "
            f"{example}",
        )
        return
    for i, range_set in enumerate(value):
        where = at(path, i)
        if not isinstance(range_set, list) or not range_set:
            ch.c.error(
                where,
                "a range set must be a non-empty list of range objects "
                f"(got {safe_show(range_set)}); "
                f"{example}",
            )
            continue
        families: dict[int, str] = {}
        for j, item in enumerate(range_set):
            item_path = at(where, j)
            if not isinstance(item, dict):
                ch.c.error(
                    item_path,
                    f"a range must be a JSON object (got {safe_show(item)}, {a_type(item)}); "
                    f"{example}",
                )
                continue
            pool = _host_local_range(ch, item, item_path)
            if pool is not None:
                families.setdefault(pool.network.version, item_path)
        if len(families) > 1:
            ch.c.error(
                where,
                f"a range set mixes IPv4 and IPv6 (got IPv4 at {families[4]} and IPv6 at "
                f"{families[6]}); one range set hands out one address: put each family in "
                "its own range set",
            )


def _host_local_range(ch: IpamFields, obj: dict[str, Any], path: str) -> _Pool | None:
    """One host-local range: subnet, rangeStart, rangeEnd, gateway (as ``Canonicalize``)."""
    start = ch.ip_field(obj, "rangeStart", path)
    end = ch.ip_field(obj, "rangeEnd", path)
    gateway = ch.ip_field(obj, "gateway", path)
    if "subnet" not in obj:
        ch.c.error(
            at(path, "subnet"),
            f'a range needs a subnet (got no "subnet" key{case_hint(obj, "subnet")}); '
            'e.g. {"subnet": "10.1.0.0/24", "rangeStart": "10.1.0.10"}',
        )
        return None
    iface = ch.cidr_field(obj, "subnet", path, "subnet")
    if iface is None:
        return None
    network = iface.network
    if iface.ip != network.network_address:
        ch.c.warn(
            at(path, "subnet"),
            f"the subnet has host bits set (got {show(obj['subnet'])}); host-local uses the "
            f"network {network}: write that instead",
        )
    if network.prefixlen > network.max_prefixlen - 2:
        ch.c.error(
            at(path, "subnet"),
            f"the subnet is too small to allocate from (got {show(obj['subnet'])}); use a "
            f"prefix of at most /{network.max_prefixlen - 2}",
        )
        return None
    where = f"subnet {network}"
    ok_start = ch.inside(start, network, at(path, "rangeStart"), "rangeStart", "subnet")
    ok_end = ch.inside(end, network, at(path, "rangeEnd"), "rangeEnd", "subnet")
    ch.inside(gateway, network, at(path, "gateway"), "gateway", "subnet")
    if ("rangeStart" in obj and not ok_start) or ("rangeEnd" in obj and not ok_end):
        return None
    first = start if start is not None else network.network_address + 1
    last = (
        end
        if end is not None
        else (network.broadcast_address - 1 if network.version == 4 else network.broadcast_address)
    )
    if int(first) > int(last):
        key = "rangeEnd" if end is not None else "rangeStart"
        ch.c.error(
            at(path, key),
            f"rangeStart comes after rangeEnd in the {where} (got rangeStart {first}, rangeEnd "
            f"{last}); rangeStart must be lower than or equal to rangeEnd",
        )
        return None
    pool = _Pool(path, len(ch.pools), network, first, last)
    ch.pools.append(pool)
    return pool


def _static(ch: IpamFields, ipam: dict[str, Any], path: str, caps: set[str]) -> None:
    """static: ``addresses`` of {address: CIDR, gateway: optional IP}; ``dns``."""
    _routes(ch, ipam, path)
    if "dns" in ipam:
        ch.dns(ipam["dns"], at(path, "dns"))
    if "addresses" not in ipam:
        return
    value = ipam["addresses"]
    where = at(path, "addresses")
    example = 'e.g. "addresses": [{"address": "10.10.0.1/24", "gateway": "10.10.0.254"}]'
    if not isinstance(value, list):
        ch.c.error(
            where,
            f"addresses must be a list of address objects "
            f"(got {safe_show(value)}, {a_type(value)}); {example}",
        )
        return
    for i, entry in enumerate(value):
        entry_path = at(where, i)
        if not isinstance(entry, dict):
            ch.c.error(
                entry_path,
                f"an address entry must be a JSON object "
                f"(got {safe_show(entry)}, {a_type(entry)}); {example}",
            )
            continue
        address = _static_address(ch, entry, entry_path)
        gateway = ch.ip_field(entry, "gateway", entry_path)
        if address is not None and gateway is not None and gateway.version != address.version:
            ch.c.error(
                at(entry_path, "gateway"),
                f"the gateway is {family(gateway.version)} but the address "
                f"{entry['address']} is {family(address.version)} "
                f"(got {show(entry['gateway'])}); use a gateway of the same family",
            )


def _static_address(
    ch: IpamFields, entry: dict[str, Any], path: str
) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface | None:
    """static needs the prefix to configure the address; a bare IP is the usual slip."""
    where = at(path, "address")
    if "address" not in entry:
        ch.c.error(
            where,
            'an address entry needs an address (got no "address" key); '
            'e.g. {"address": "10.10.0.1/24"}',
        )
        return None
    value = entry["address"]
    if isinstance(value, str) and check_ip(value) is None:
        example = value + ("/24" if ":" not in value else "/64")
        ch.c.error(
            where,
            f"a static address needs a prefix length (got {show(value)}); add a prefix "
            f"length, e.g. {example}",
        )
        return None
    return ch.cidr_field(entry, "address", path, "static address")


def _whereabouts(ch: IpamFields, ipam: dict[str, Any], path: str, caps: set[str]) -> None:
    """whereabouts: ``range`` (CIDR or "A-B/prefix") and/or ``ipRanges``."""
    _routes(ch, ipam, path)
    if "range" in ipam:
        _whereabouts_range(ch, ipam, path)
    else:
        for key in ("range_start", "range_end", "exclude"):
            if key in ipam:
                ch.c.error(
                    at(path, key),
                    f'{key} has no effect without "range" next to it (got {safe_show(ipam[key])}); '
                    'add "range", or move it into an entry of "ipRanges"',
                )
    if "ipRanges" in ipam:
        value = ipam["ipRanges"]
        where = at(path, "ipRanges")
        example = 'e.g. "ipRanges": [{"range": "192.168.2.0/24", "exclude": ["192.168.2.0/28"]}]'
        if not isinstance(value, list):
            ch.c.error(
                where,
                f"ipRanges must be a list of range objects "
                f"(got {safe_show(value)}, {a_type(value)}); {example}",
            )
        else:
            for i, entry in enumerate(value):
                entry_path = at(where, i)
                if not isinstance(entry, dict):
                    ch.c.error(
                        entry_path,
                        f"an ipRanges entry must be a JSON object "
                        f"(got {safe_show(entry)}, {a_type(entry)}); {example}",
                    )
                elif "range" not in entry:
                    ch.c.error(
                        at(entry_path, "range"),
                        f'an ipRanges entry needs a range (got no "range" key); {example}',
                    )
                else:
                    _whereabouts_range(ch, entry, entry_path)
    elif "range" not in ipam:
        ch.c.error(
            path,
            'whereabouts has no addresses to hand out (got neither "range" nor "ipRanges"); '
            'set "range": "192.168.2.0/24" (or "192.168.2.225-192.168.2.230/28")',
        )


def _whereabouts_range(ch: IpamFields, obj: dict[str, Any], path: str) -> None:
    """``range`` with its ``range_start``, ``range_end`` and ``exclude``."""
    where = at(path, "range")
    value = obj["range"]
    hint = (
        'use a CIDR such as "192.168.2.0/24", or "first-last/prefix" such as '
        '"192.168.2.225-192.168.2.230/28"'
    )
    if not isinstance(value, str):
        ch.c.error(
            where, f"range must be a string (got {safe_show(value)}, {a_type(value)}); {hint}"
        )
        return
    if "-" in value:
        first_text, _, cidr_text = value.partition("-")
        first = None if check_ip(first_text) else ipaddress.ip_address(first_text)
        last_iface = parse_cidr(cidr_text)
        if first is None or last_iface is None:
            part = "first address" if first is None else "last address with prefix"
            ch.c.error(
                where,
                f"range is not valid: its {part} does not parse (got {show(value)}); {hint}",
            )
            return
        network = last_iface.network
        if not ch.inside(first, network, where, "the first address of the range", "range network"):
            return
        if int(first) > int(last_iface.ip):
            ch.c.error(
                where,
                f"the range starts after it ends (got {show(value)}); write the lower "
                "address first",
            )
            return
        for key in ("range_start", "range_end"):
            if key in obj:
                ch.c.warn(
                    at(path, key),
                    f"{key} is ignored when range has the first-last/prefix form (got "
                    f"{safe_show(obj[key])}); whereabouts takes both ends from {show(value)}: "
                    "remove it",
                )
    else:
        iface = ch.cidr_field(obj, "range", path, "range")
        if iface is None:
            return
        network = iface.network
    text = f"range {network}"
    start = ch.ip_field(obj, "range_start", path)
    end = ch.ip_field(obj, "range_end", path)
    ok_start = ch.inside(start, network, at(path, "range_start"), "range_start", "range")
    ok_end = ch.inside(end, network, at(path, "range_end"), "range_end", "range")
    if ok_start and ok_end and start is not None and end is not None and int(start) > int(end):
        ch.c.error(
            at(path, "range_end"),
            f"range_end comes before range_start in the {text} (got range_start {start}, "
            f"range_end {end}); range_start must be lower than or equal to range_end",
        )
    if "exclude" in obj:
        _excludes(ch, obj["exclude"], at(path, "exclude"), network)


def _excludes(ch: IpamFields, value: object, path: str, network: IPNetwork) -> None:
    """An exclude outside the range excludes nothing: it is a typo for something else."""
    example = (
        f'e.g. "exclude": ["{network[0]}/{min(network.prefixlen + 4, network.max_prefixlen)}"]'
    )
    if not isinstance(value, list):
        ch.c.error(
            path,
            f"exclude must be a list of CIDRs (got {safe_show(value)}, {a_type(value)}); {example}",
        )
        return
    for i, item in enumerate(value):
        where = at(path, i)
        problem = run_check(lambda v: check_cidr(v, "excluded CIDR"), item)
        if problem is not None:
            ch.c.error(where, problem)
            continue
        excluded = parse_cidr(str(item))
        if excluded is None:  # pragma: no cover - check_cidr accepted it
            continue
        inner = excluded.network
        same_family = inner.version == network.version
        if not same_family or not inner.subnet_of(network):  # type: ignore[arg-type]
            ch.c.error(
                where,
                f"the excluded CIDR is outside the range {network} (got {show(item)}); "
                f"exclude only addresses inside {network}",
            )


def _dhcp(ch: IpamFields, ipam: dict[str, Any], path: str, caps: set[str]) -> None:
    """dhcp: the address comes from a DHCP server at run time; only routes are checked."""
    _routes(ch, ipam, path)


# ipam.type -> its rules. Add an IPAM kind here (see the module docstring).
IPAM_CHECKS: dict[str, Callable[[IpamFields, dict[str, Any], str, set[str]], None]] = {
    "host-local": _host_local,
    "static": _static,
    "whereabouts": _whereabouts,
    "dhcp": _dhcp,
}
