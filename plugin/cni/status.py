"""The ``k8s.v1.cni.cncf.io/network-status`` annotation: one map per attachment (NPWG §5).

The plugin builds one :class:`NetworkStatus` per attachment from the delegate's CNI
result (:func:`from_cni_result`) and writes the list with :func:`dumps`; the webhook and
``netplexctl`` read one back with :func:`loads` and judge it with :func:`check_statuses`.

Two levels of strictness, on purpose:

- :func:`loads` / :meth:`NetworkStatus.from_dict` check the *shape*: JSON types, so
  every value can be held and written back. They accept what other writers really
  produce: Multus leaves out ``"default": false`` and always writes ``"dns": {}``;
  ``null`` and empty values read as absent, and keys we do not model are kept verbatim
  in ``extra``.
- :func:`check_statuses` checks the *rules* (NPWG-22, 26, 28, 29, 45, 46, plus valid
  addresses and interface names). It returns problems and never raises, because a
  status written by someone else is a finding, not a crash.

Exceptions::

    ValueError
    └── StatusError     carries .problems (plugin.model.problems.Problem), one line each
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence

from plugin.cni import protocol
from plugin.model.names import check_interface_name, check_ip, check_ip_or_cidr, parse_cidr
from plugin.model.problems import ANNOTATION_PATH, Problem, show, type_name
from plugin.model.records import record

TYPE_CHECKING = False  # typing is not imported at run time (~4 ms per start); mypy takes this as True
if TYPE_CHECKING:
    from typing import Any

NETWORK_STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status"
STATUS_PATH = ANNOTATION_PATH.format(key=NETWORK_STATUS_ANNOTATION)
MAX_DEPTH = 32  # nesting allowed inside dns, device-info and unknown keys
MAX_MTU = 2**32 - 1

_KNOWN_KEYS = frozenset(
    {"name", "interface", "ips", "mac", "mtu", "default", "dns", "gateway",
     "default-route", "device-info"}
)
_DEVICE_TYPES = ("pci", "vdpa", "vhost-user", "memif")
_SEMVER_RE = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")
# PCI address "domain:bus:device.function"; VMD domains have more than 4 hex digits.
_BDF_RE = re.compile(r"^[0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-1][0-9a-fA-F]\.[0-7]$")
_BDF_HINT = "use a PCI address such as 0000:18:02.5"


class StatusError(ValueError):
    """A network-status text, entry or CNI result that cannot be read.

    ``problems`` holds one :class:`Problem` per fault (all of them, not just the
    first), so the webhook can report them as causes; ``str()`` is one line each.
    """

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def _at(where: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


def _json_problem(value: object) -> str | None:
    """Why ``value`` is not plain JSON we can hold, or ``None``.

    Iterative on purpose: the check must not itself overflow the stack on the deep
    nesting it exists to refuse. After it passes, the recursive helpers are safe.
    """
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"is nested more than {MAX_DEPTH} levels deep"
        if isinstance(item, Mapping):
            for key, inner in item.items():
                if not isinstance(key, str):
                    return f"has a key {key!r} that is not a string"
                stack.append((inner, depth + 1))
        elif isinstance(item, list | tuple):
            stack.extend((inner, depth + 1) for inner in item)
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"contains {item!r}, which JSON cannot represent"
        elif not (item is None or isinstance(item, str | int)):
            return f"contains a {type(item).__name__}, which JSON cannot represent"
    return None


def _plain(value: Any) -> Any:
    """A fresh dict/list copy, so callers never share mutable state with a frozen value."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@record(frozen=True, slots=True)
class NetworkStatus:
    """One attachment's entry in the network-status list.

    Field names are the JSON keys in Python spelling (``default-route`` →
    ``default_route``). ``gateway`` and ``mtu`` are not in the NPWG spec but are what
    Multus and the NAD client write, and consumers read them; ``default_route`` is the
    spec's key, set only when the selection asked for it. The constructor trusts its
    typed caller; untrusted data goes through :meth:`from_dict`. Instances holding
    ``dns``/``device_info``/``extra`` mappings compare by value but are not hashable.
    """

    name: str
    default: bool = False
    interface: str | None = None
    ips: tuple[str, ...] = ()
    mac: str | None = None
    mtu: int | None = None
    dns: Mapping[str, Any] | None = None
    gateway: tuple[str, ...] = ()
    default_route: tuple[str, ...] = ()
    device_info: Mapping[str, Any] | None = None
    extra: tuple[tuple[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON map: ``default`` always (NPWG-27), optional keys only when set.

        An ``extra`` key that collides with a modelled key is not written: the field
        is the authority.
        """
        out: dict[str, Any] = {"name": self.name}
        if self.interface:
            out["interface"] = self.interface
        if self.ips:
            out["ips"] = list(self.ips)
        if self.mac:
            out["mac"] = self.mac
        if self.mtu is not None:
            out["mtu"] = self.mtu
        out["default"] = self.default
        if self.dns:
            out["dns"] = _plain(self.dns)
        if self.gateway:
            out["gateway"] = list(self.gateway)
        if self.default_route:
            out["default-route"] = list(self.default_route)
        if self.device_info:
            out["device-info"] = _plain(self.device_info)
        for key, value in self.extra:
            out.setdefault(key, _plain(value))
        return out

    @classmethod
    def from_dict(cls, data: object, *, where: str = "") -> NetworkStatus:
        """Read one entry, checking JSON types; every fault is reported at once.

        ``where`` prefixes the paths in messages (``loads`` passes
        ``metadata.annotations[...][i]``). ``default`` may be missing (Multus omits
        ``false``); ``null`` and empty values mean absent.
        """
        reader = _EntryReader(where)
        status = reader.read(data)
        if reader.problems or status is None:
            raise StatusError(reader.problems)
        return status


class _EntryReader:
    """Walks one status map, collecting problems instead of stopping at the first."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.problems: list[Problem] = []

    def fail(self, key: str, message: str) -> None:
        self.problems.append(Problem(_at(self.where, key), message))

    def read(self, data: object) -> NetworkStatus | None:
        if not isinstance(data, Mapping):
            self.problems.append(
                Problem(
                    self.where,
                    f"is a {type_name(data)}, not an object (got {show(data)}); "
                    'each entry is a map such as {"name": "ns/net1", "default": false}',
                )
            )
            return None
        name = data.get("name")
        if not isinstance(name, str) or name == "":
            got = "missing" if "name" not in data else f"got {show(name)}"
            self.fail(
                "name",
                f"is required and must be a non-empty string ({got}); "
                "use the network's namespace/name",
            )
        default = data.get("default")
        if default is not None and not isinstance(default, bool):
            self.fail("default", f"must be true or false (got {show(default)})")
        mtu = data.get("mtu")
        if mtu is not None and (
            not isinstance(mtu, int) or isinstance(mtu, bool) or not 0 <= mtu <= MAX_MTU
        ):
            self.fail("mtu", f"must be a non-negative integer (got {show(mtu)}); e.g. 1500")
        extra: list[tuple[str, Any]] = []
        for key, value in data.items():
            if not isinstance(key, str):
                self.problems.append(
                    Problem(self.where, f"has a key {key!r} that is not a string")
                )
            elif key not in _KNOWN_KEYS:
                problem = _json_problem(value)
                if problem is not None:
                    self.fail(key, problem)
                extra.append((key, _plain(value) if problem is None else None))
        status = NetworkStatus(
            name=name if isinstance(name, str) else "",
            default=default is True,
            interface=self.string(data, "interface"),
            ips=self.strings(data, "ips"),
            mac=self.string(data, "mac"),
            mtu=mtu if isinstance(mtu, int) and not isinstance(mtu, bool) and mtu >= 0 else None,
            dns=self.dns(data),
            gateway=self.strings(data, "gateway"),
            default_route=self.strings(data, "default-route"),
            device_info=self.mapping(data, "device-info"),
            extra=tuple(extra),
        )
        return None if self.problems else status

    def string(self, data: Mapping[str, Any], key: str) -> str | None:
        value = data.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            self.fail(key, f"must be a string (got {type_name(value)} {show(value)})")
            return None
        return value

    def strings(
        self, data: Mapping[str, Any], key: str, *, path: str | None = None
    ) -> tuple[str, ...]:
        value = data.get(key)
        if value is None:
            return ()
        where = path or key
        if not isinstance(value, list):
            self.fail(where, f"must be a list of strings (got {type_name(value)} {show(value)})")
            return ()
        out: list[str] = []
        for i, item in enumerate(value):
            if isinstance(item, str):
                out.append(item)
            else:
                self.fail(f"{where}[{i}]", f"must be a string (got {type_name(item)} {show(item)})")
        return tuple(out)

    def mapping(self, data: Mapping[str, Any], key: str) -> dict[str, Any] | None:
        value = data.get(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            self.fail(key, f"must be an object (got {type_name(value)} {show(value)})")
            return None
        problem = _json_problem(value)
        if problem is not None:
            self.fail(key, problem)
            return None
        copied: dict[str, Any] = _plain(value)
        return copied or None

    def dns(self, data: Mapping[str, Any]) -> dict[str, Any] | None:
        dns = self.mapping(data, "dns")
        if dns is None:
            return None
        for key in ("nameservers", "search", "options"):
            self.strings(dns, key, path=f"dns.{key}")
        domain = dns.get("domain")
        if domain is not None and not isinstance(domain, str):
            self.fail("dns.domain", f"must be a string (got {type_name(domain)} {show(domain)})")
        return dns


# ------------------------------------------------------------------------ list I/O


def dumps(statuses: Sequence[NetworkStatus]) -> str:
    """The annotation value: a compact JSON list, ASCII-escaped so it survives any
    transport (a lone surrogate from a caller becomes an escape, not an encode error)."""
    try:
        return json.dumps(
            [s.to_dict() for s in statuses], separators=(",", ":"), allow_nan=False
        )
    except (TypeError, ValueError) as err:
        raise StatusError(
            [Problem(STATUS_PATH, f"cannot be written as JSON ({err})")]
        ) from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads(text: str, *, where: str = STATUS_PATH) -> tuple[NetworkStatus, ...]:
    """Parse an annotation value; all faults of all entries come in one StatusError."""
    example = '[{"name":"ns/net1","interface":"net1","default":false}]'
    if not isinstance(text, str):
        raise StatusError([Problem(where, f"is a {type(text).__name__}, not text")])
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as err:
        raise StatusError(
            [
                Problem(
                    where,
                    f"is not valid JSON ({err.msg} at line {err.lineno} column {err.colno}); "
                    f"write a JSON list such as {example}",
                )
            ]
        ) from None
    except (ValueError, RecursionError) as err:
        reason = "nested too deeply" if isinstance(err, RecursionError) else str(err)
        raise StatusError(
            [Problem(where, f"is not valid JSON ({reason}); write a JSON list such as {example}")]
        ) from None
    if not isinstance(data, list):
        hint = "wrap the entry in [ ]" if isinstance(data, dict) else f"write e.g. {example}"
        raise StatusError(
            [Problem(where, f"must be a JSON list of objects (got a {type_name(data)}); {hint}")]
        )
    statuses: list[NetworkStatus] = []
    problems: list[Problem] = []
    for i, item in enumerate(data):
        try:
            statuses.append(NetworkStatus.from_dict(item, where=_at(where, i)))
        except StatusError as err:
            problems.extend(err.problems)
    if problems:
        raise StatusError(problems)
    return tuple(statuses)


# -------------------------------------------------------------------------- the rules


def check_statuses(statuses: Sequence[NetworkStatus], *, where: str = STATUS_PATH) -> list[str]:
    """The NPWG rules an entry list must follow, as ``<path>: <problem>`` lines.

    NPWG-26 exactly one ``default: true``; NPWG-28 ``mac`` only with ``interface``;
    NPWG-29/45/46 ``device-info`` shape; NPWG-22 unknown keys carry a ``.``. Also:
    addresses are IPs (``ips`` may carry a prefix), so Multus's ``"gateway": ["<nil>"]``
    is caught; interface names are valid and not used twice.
    """
    problems: list[Problem] = []
    defaults = [i for i, s in enumerate(statuses) if s.default]
    if not defaults:
        problems.append(
            Problem(
                where,
                "no entry has \"default\": true; the cluster default network's entry must "
                "(NPWG-26)",
            )
        )
    elif len(defaults) > 1:
        listed = ", ".join(str(i) for i in defaults)
        problems.append(
            Problem(
                where,
                f"entries {listed} all have \"default\": true; only the cluster default "
                "network's entry may (NPWG-26)",
            )
        )
    seen_interfaces: dict[str, int] = {}
    for i, status in enumerate(statuses):
        entry = _at(where, i)
        problems.extend(_entry_problems(status, entry))
        if status.interface:
            first = seen_interfaces.setdefault(status.interface, i)
            if first != i:
                problems.append(
                    Problem(
                        _at(entry, "interface"),
                        f"{show(status.interface)} is also the interface of entry {first}; "
                        "each attachment has its own interface in the pod",
                    )
                )
    return [str(p) for p in problems]


def _entry_problems(status: NetworkStatus, entry: str) -> list[Problem]:
    problems: list[Problem] = []

    def add(key: str, message: str) -> None:
        problems.append(Problem(_at(entry, key), message))

    if not status.name:
        add("name", "is empty; use the network's namespace/name")
    if status.interface:
        message = check_interface_name(status.interface)
        if message is not None:
            add("interface", message)
    if status.mac and not status.interface:
        add("mac", f"{show(status.mac)} is set without \"interface\"; name the interface (NPWG-28)")
    for i, ip in enumerate(status.ips):
        message = check_ip_or_cidr(ip)
        if message is not None:
            add(f"ips[{i}]", message)
    for key, values in (("gateway", status.gateway), ("default-route", status.default_route)):
        for i, ip in enumerate(values):
            message = check_ip(ip, "gateway address")
            if message is not None:
                add(f"{key}[{i}]", message)
    if status.device_info is not None:
        for key, message in _device_info_problems(status.device_info):
            add(key, message)
    for key, _ in status.extra:
        if "." not in key:
            add(
                key,
                "is not a network-status key; keys an implementation adds must contain a "
                "'.' (reverse-DNS style, e.g. example.com/" + key + ") (NPWG-22)",
            )
    return problems


def _device_info_problems(info: Mapping[str, Any]) -> list[tuple[str, str]]:
    """NPWG-29/45/46: the Device Info map (Device Info spec 1.1.0 §3)."""
    out: list[tuple[str, str]] = []
    base = "device-info"
    dtype = info.get("type")
    if dtype not in _DEVICE_TYPES:
        got = "missing" if "type" not in info else f"got {show(dtype)}"
        out.append((f"{base}.type", f"must be one of {', '.join(_DEVICE_TYPES)} ({got}) (NPWG-45)"))
    version = info.get("version")
    if not isinstance(version, str) or _SEMVER_RE.match(version) is None:
        got = "missing" if "version" not in info else f"got {show(version)}"
        out.append(
            (
                f"{base}.version",
                f'must be a MAJOR.MINOR.PATCH string such as "1.1.0" ({got}) (NPWG-45)',
            )
        )
    if not isinstance(dtype, str) or dtype not in _DEVICE_TYPES:
        return out
    section = info.get(dtype)
    if not isinstance(section, Mapping):
        got = "missing" if dtype not in info else f"got {show(section)}"
        out.append(
            (
                f"{base}.{dtype}",
                f"is required for type {show(dtype)} and must be an object ({got}) (NPWG-46)",
            )
        )
        return out

    def need(
        key: str, allowed: tuple[str, ...] = (), *, pci: bool = False, absolute: bool = False
    ) -> None:
        path = f"{base}.{dtype}.{key}"
        value = section.get(key)
        if not isinstance(value, str) or value == "":
            got = "missing" if key not in section else f"got {show(value)}"
            hint = f"; use one of {', '.join(allowed)}" if allowed else ""
            out.append((path, f"is required for type {show(dtype)} ({got}){hint} (NPWG-46)"))
        elif allowed and value not in allowed:
            out.append((path, f"must be one of {', '.join(allowed)} (got {show(value)}) (NPWG-46)"))
        elif pci and _BDF_RE.match(value) is None:
            out.append((path, f"{show(value)} is not a PCI address; {_BDF_HINT} (NPWG-46)"))
        elif absolute and not value.startswith("/"):
            out.append(
                (path, f"{show(value)} is not an absolute path; e.g. /dev/vhost-vdpa-4 (NPWG-46)")
            )

    if dtype == "pci":
        need("pci-address", pci=True)
        pf = section.get("pf-pci-address")
        if pf is not None and (not isinstance(pf, str) or _BDF_RE.match(pf) is None):
            out.append(
                (f"{base}.pci.pf-pci-address", f"{show(pf)} is not a PCI address; {_BDF_HINT}")
            )
    elif dtype == "vdpa":
        need("parent-device")
        need("driver", ("vhost", "virtio"))
        need("path", absolute=True)
    elif dtype == "vhost-user":
        need("mode", ("client", "server"))
        need("path")
    else:  # memif; "punt" is the NAD client's spelling of the spec's "inject-punt"
        need("role", ("master", "slave"))
        need("path")
        need("mode", ("ethernet", "ip", "inject-punt", "punt"))
    return out


# -------------------------------------------------------------- from a CNI result


def from_cni_result(
    result: Mapping[str, Any],
    *,
    name: str,
    ifname: str,
    netns: str | None,
    default: bool,
    device_info: Mapping[str, Any] | None = None,
    default_route: Sequence[str] = (),
) -> NetworkStatus:
    """One attachment's entry from its CNI result, any version (NPWG §5, sourcing rules).

    - ``interface``/``mac``/``mtu``: the first ``interfaces[]`` entry with a non-empty
      ``sandbox`` (the one whose sandbox equals ``netns`` when there is one: it is
      certainly the pod's). Host-side entries (bridge lists ``cni0`` and the veth
      first) are never used. No sandbox entry: the one named ``ifname``. A result with
      no interfaces at all (IPAM-only, 0.1.0/0.2.0): ``ifname``.
    - ``ips``: addresses whose ``interface`` index points at that interface; when none
      do, those without an index (or with a negative one), never a host-side address.
      Kept *with* their prefix, as the spec's examples show (``192.0.2.2/24``); the
      NAD client and Multus write bare IPs. We chose the spec's form: the prefix is
      information a reader cannot get back.
    - ``gateway``: for each default route (``0.0.0.0/0``, ``::/0``) its ``gw``, else the
      ``gateway`` of this attachment's address of the same family. Never ``"<nil>"``
      or ``""`` (Multus writes ``["<nil>"]`` for a route without ``gw``); with no
      gateway to find, the key is absent.
    - ``dns``: copied without its empty keys, and only when something is left.
    - ``device_info`` and ``default_route`` are passed through.

    Raises :class:`StatusError` when the result cannot be decoded.
    """
    try:
        canonical = protocol.convert_result(result, protocol.LATEST_VERSION)
    except protocol.CniError as err:
        raise StatusError(
            [Problem("", f"the CNI result for {show(name)} cannot be read ({err})")]
        ) from None
    device: dict[str, Any] | None = None
    if device_info is not None:
        problem = (
            _json_problem(device_info)
            if isinstance(device_info, Mapping)
            else f"is a {type_name(device_info)}, not an object"
        )
        if problem is not None:
            raise StatusError([Problem("device-info", problem)])
        device = _plain(device_info) or None

    interfaces: list[dict[str, Any]] = canonical.get("interfaces") or []
    chosen = _pick_interface(interfaces, ifname, netns)
    interface: str | None = None
    mac: str | None = None
    mtu: int | None = None
    if chosen is not None:
        itf = interfaces[chosen]
        interface = itf.get("name") or None
        mac = itf.get("mac") or None
        mtu = itf.get("mtu") or None
    elif not interfaces:
        interface = ifname or None

    all_ips: list[dict[str, Any]] = canonical.get("ips") or []
    mine = [ip for ip in all_ips if chosen is not None and ip.get("interface") == chosen]
    if not mine:
        mine = [ip for ip in all_ips if _unindexed(ip)]

    return NetworkStatus(
        name=name,
        default=default,
        interface=interface,
        ips=tuple(ip["address"] for ip in mine),
        mac=mac,
        mtu=mtu,
        dns=_dns(canonical.get("dns")),
        gateway=_gateways(canonical.get("routes") or [], mine),
        default_route=tuple(default_route),
        device_info=device,
    )


def _pick_interface(
    interfaces: list[dict[str, Any]], ifname: str, netns: str | None
) -> int | None:
    sandboxed = [i for i, itf in enumerate(interfaces) if itf.get("sandbox")]
    if netns:
        for i in sandboxed:
            if interfaces[i]["sandbox"] == netns:
                return i
    if sandboxed:
        return sandboxed[0]
    for i, itf in enumerate(interfaces):
        if ifname and itf.get("name") == ifname:
            return i
    return None


def _unindexed(ip: Mapping[str, Any]) -> bool:
    index = ip.get("interface")
    return index is None or index < 0


def _gateways(routes: list[dict[str, Any]], mine: list[dict[str, Any]]) -> tuple[str, ...]:
    found: list[str] = []
    for route in routes:
        dst = parse_cidr(route["dst"])
        if dst is None or dst.network.prefixlen != 0:
            continue
        gw = route.get("gw")
        if not (isinstance(gw, str) and check_ip(gw) is None):
            gw = next(
                (
                    ip["gateway"]
                    for ip in mine
                    if isinstance(ip.get("gateway"), str)
                    and check_ip(ip["gateway"]) is None
                    and _version(ip["address"]) == dst.version
                ),
                None,
            )
        if gw is not None and gw not in found:
            found.append(gw)
    return tuple(found)


def _version(cidr: str) -> int | None:
    parsed = parse_cidr(cidr)
    return parsed.version if parsed is not None else None


def _dns(dns: Any) -> dict[str, Any] | None:
    if not isinstance(dns, Mapping):
        return None
    kept = {k: v for k, v in dns.items() if v not in (None, "", [], {})}
    return kept or None
