"""The CNI protocol as the plugin speaks it: error values, the environment, CNI_ARGS,
versions and result shapes (CNI spec 1.1.0; notes in ``spec/cni.md``).

netplex plays two CNI roles. Toward kubelet/containerd it is a *plugin*: it reads the
``CNI_*`` environment (:func:`read_invocation`) and answers with a result or an error
(:class:`CniError`). Toward bridge, macvlan & co. it is a *runtime*: it formats their
``CNI_ARGS`` (:func:`format_cni_args`), checks an attachment before executing a delegate
(:func:`validate_attachment`), and converts their results between spec versions
(:func:`convert_result`). Everything here is a pure function of its arguments; nothing
reads ``os.environ`` (the caller passes it in, which is the test seam).

Exceptions::

    Exception
    └── CniError        code + msg + details; printed on stdout as the error JSON (§7.4)

Every function here raises only :class:`CniError` on bad input, with a spec code:
``INVALID_ENV`` (4) for the environment and CNI_ARGS, ``INCOMPATIBLE_VERSION`` (1) for
version strings, ``DECODE_FAILURE`` (6) for a result of the wrong shape.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from plugin.model.names import check_container_id, check_interface_name, check_ip, parse_cidr
from plugin.model.problems import show, type_name
from plugin.model.records import record

TYPE_CHECKING = False  # typing is not imported at run time (~4 ms per start); mypy takes this as True
if TYPE_CHECKING:
    from typing import Any

# Every version libcni knows (``version.All``): a delegate may speak any of them, and
# results are converted between all of them.
SUPPORTED_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
# What netplex itself accepts as the request version from a container runtime, and what
# VERSION advertises. Not 0.1.0/0.2.0: those results cannot carry more than one address
# per family nor the interface list the network-status annotation is sourced from.
PLUGIN_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
LATEST_VERSION = "1.1.0"

# Well-known error codes (spec §5 "Error", plus libcni's 999). 0-99 are reserved.
INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
UNKNOWN_CONTAINER = 3
INVALID_ENV = 4
IO_FAILURE = 5
DECODE_FAILURE = 6
INVALID_CONFIG = 7
TRY_AGAIN_LATER = 11
NOT_AVAILABLE = 50
NOT_AVAILABLE_LIMITED = 51
INTERNAL = 999

VERBS = ("ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC")

# What netplex *requires* per verb (CNI_COMMAND is always required and checked first).
# The spec makes CNI_PATH optional for ADD/DEL/CHECK; skel, which every Go plugin uses,
# requires it for them, and we do too: a delegating plugin cannot do anything without
# it. STATUS is the exception: skel requires CNI_PATH there, the spec lists it optional,
# and libcni's STATUS call may send none, so we accept its absence. DEL does not require
# CNI_NETNS (the namespace may be gone; CNI-28). GC has no attachment parameters at all.
REQUIRED_ENV: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
        "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
        "DEL": ("CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"),
        "GC": ("CNI_PATH",),
        "STATUS": (),
        "VERSION": (),
    }
)

_ENV_MEANING = {
    "CNI_CONTAINERID": "the container ID",
    "CNI_NETNS": "the path of the container's network namespace",
    "CNI_IFNAME": "the interface name to create in the container",
    "CNI_PATH": "the ':'-separated directories holding the CNI plugin binaries",
}
_ATTACHMENT_VERBS = frozenset({"ADD", "CHECK", "DEL"})
_MAX_LISTED = 5  # problems spelled out in one ``details`` before "and N more"

# 1.1.0-only fields (spec §7.1), dropped when converting to an older version.
_INTERFACE_1_1_FIELDS = ("mtu", "socketPath", "pciID")
_ROUTE_1_1_FIELDS = ("mtu", "advmss", "priority", "table", "scope")


class CniError(Exception):
    """A CNI error result (spec §7.4): the plugin prints it on stdout and exits 1.

    ``msg`` is short and names what failed (for code 4, the variable); ``details`` says
    what was seen and what would be accepted, one line per problem.
    """

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(code, msg, details)
        self.code = code
        self.msg = msg
        self.details = details

    def __str__(self) -> str:
        return f"{self.msg}: {self.details}" if self.details else self.msg

    def to_dict(self, cni_version: str) -> dict[str, Any]:
        """The error object; ``cniVersion`` is left out when unknown (empty).

        An error raised before the request's stdin was read has no version to report,
        and an empty string would read as 0.1.0; libcni ignores the key when decoding.
        """
        out: dict[str, Any] = {}
        if cni_version:
            out["cniVersion"] = cni_version
        out["code"] = self.code
        out["msg"] = self.msg
        if self.details:
            out["details"] = self.details
        return out

    def to_json(self, cni_version: str) -> str:
        """The error JSON as skel prints it (indented with four spaces)."""
        return json.dumps(self.to_dict(cni_version), indent=4)


def _listed(lines: list[str]) -> str:
    """Join problem lines for ``details``, cut after a few so one error stays readable."""
    if len(lines) <= _MAX_LISTED:
        return "\n".join(lines)
    return "\n".join([*lines[:_MAX_LISTED], f"... and {len(lines) - _MAX_LISTED} more"])


# --------------------------------------------------------------------------- environment


@record(frozen=True, slots=True)
class Invocation:
    """One execution of the plugin, as the ``CNI_*`` environment describes it.

    ``netns``, ``container_id`` and ``ifname`` are ``""`` when the verb does not carry
    them; ``args`` is the parsed ``CNI_ARGS`` (only read for ADD, CHECK and DEL) and
    ``path`` the ``CNI_PATH`` directories in order, empty entries dropped.
    """

    command: str
    container_id: str
    netns: str
    ifname: str
    args: tuple[tuple[str, str], ...]
    path: tuple[str, ...]


def read_invocation(environ: Mapping[str, str]) -> Invocation:
    """Read and check the environment up front, reporting every missing name at once.

    A variable set to the empty string counts as missing, as in skel. So an empty
    ``CNI_CONTAINERID`` is code 4 here, never libcni's code 3 "missing containerID":
    code 3 tells the runtime that no cleanup is needed, which is the wrong signal for a
    runtime that forgot a variable. (The runtime-side check, :func:`validate_attachment`,
    keeps libcni's code 3.) ``CNI_CONTAINERID`` and ``CNI_IFNAME`` are validated for
    ADD, CHECK and DEL (CNI-39, CNI-40), as skel does.

    On DEL a malformed ``CNI_ARGS`` does not fail the call: its bad pairs are skipped.
    ADD refused the same value, so there is nothing the pairs could identify, and a DEL
    that fails makes kubelet retry the teardown forever.
    """
    command = _env(environ, "CNI_COMMAND")
    if not command:
        raise CniError(
            INVALID_ENV,
            "required env variables [CNI_COMMAND] missing",
            f"set CNI_COMMAND to one of {', '.join(VERBS)}",
        )
    if command not in VERBS:
        raise CniError(
            INVALID_ENV, f"unknown CNI_COMMAND: {command}", f"use one of {', '.join(VERBS)}"
        )
    missing = [name for name in REQUIRED_ENV[command] if not _env(environ, name)]
    if missing:
        raise CniError(
            INVALID_ENV,
            f"required env variables [{','.join(missing)}] missing",
            f"{command} needs "
            + "; ".join(f"{name} ({_ENV_MEANING[name]})" for name in missing),
        )
    container_id = _env(environ, "CNI_CONTAINERID")
    ifname = _env(environ, "CNI_IFNAME")
    args: tuple[tuple[str, str], ...] = ()
    if command in _ATTACHMENT_VERBS:
        bad = _attachment_problems(container_id, ifname)
        if bad:
            names = ",".join(name for name, _ in bad)
            raise CniError(
                INVALID_ENV,
                f"invalid env variables [{names}]",
                "\n".join(f"{name}: {message}" for name, message in bad),
            )
        args = _parse_cni_args(_env(environ, "CNI_ARGS"), skip_bad=command == "DEL")
    path = tuple(p for p in _env(environ, "CNI_PATH").split(os.pathsep) if p)
    return Invocation(
        command=command,
        container_id=container_id,
        netns=_env(environ, "CNI_NETNS"),
        ifname=ifname,
        args=args,
        path=path,
    )


def _env(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "")
    return value if isinstance(value, str) else ""


def _attachment_problems(container_id: str, ifname: str) -> list[tuple[str, str]]:
    bad: list[tuple[str, str]] = []
    message = check_container_id(container_id)
    if message is not None:
        bad.append(("CNI_CONTAINERID", message))
    message = check_interface_name(ifname)
    if message is not None:
        bad.append(("CNI_IFNAME", message))
    return bad


def validate_attachment(container_id: str, ifname: str) -> None:
    """The runtime-side check libcni makes before it executes a delegate's ADD.

    Codes as libcni: an empty container ID is 3 ``missing containerID``; bad characters
    in it, or a bad interface name, are 4 and name the variable.
    """
    if container_id == "":
        raise CniError(
            UNKNOWN_CONTAINER,
            "missing containerID",
            "CNI_CONTAINERID is empty; the runtime must give the container's ID",
        )
    bad = _attachment_problems(container_id, ifname)
    if bad:
        raise CniError(
            INVALID_ENV,
            f"invalid env variables [{','.join(name for name, _ in bad)}]",
            "\n".join(f"{name}: {message}" for name, message in bad),
        )


# ----------------------------------------------------------------------------- CNI_ARGS

_ARGS_RULE = (
    "write KEY=VALUE pairs separated by ';', e.g. K8S_POD_NAMESPACE=prod;K8S_POD_NAME=web-0"
)


def parse_cni_args(text: str) -> tuple[tuple[str, str], ...]:
    """``CNI_ARGS`` (``K=V;K2=V2``) as ordered pairs.

    Each pair splits on its *first* ``=``, so a value may contain ``=`` (libcni's
    ``LoadArgs`` refuses that, and Multus fails ADD and DEL on it). Empty segments
    (``A=1;;B=2``, a trailing ``;``) are skipped. A repeated key keeps its first
    position and takes the last value, which is what the later-wins environment
    semantics of the Go runtime produce. Keys and values are kept verbatim (no
    trimming): the runtime's bytes are the contract.
    """
    return _parse_cni_args(text, skip_bad=False)


def _parse_cni_args(text: str, *, skip_bad: bool) -> tuple[tuple[str, str], ...]:
    if not isinstance(text, str):
        raise CniError(
            INVALID_ENV, "invalid CNI_ARGS", f"CNI_ARGS is a {type_name(text)}, not text"
        )
    pairs: dict[str, str] = {}
    bad: list[str] = []
    for segment in text.split(";"):
        if segment == "":
            continue
        key, sep, value = segment.partition("=")
        if not sep:
            bad.append(f"pair {show(segment)} has no '='; {_ARGS_RULE}")
        elif key == "":
            bad.append(f"pair {show(segment)} has an empty key; {_ARGS_RULE}")
        else:
            pairs[key] = value
    if bad and not skip_bad:
        raise CniError(INVALID_ENV, "invalid CNI_ARGS", _listed(bad))
    return tuple(pairs.items())


def format_cni_args(pairs: Iterable[tuple[str, str]]) -> str:
    """``K=V`` pairs joined by ``;`` (CNI-21), one per key: a later pair replaces an
    earlier one in place, so delegates never see Multus's duplicated keys.

    Raises code 4 for what ``CNI_ARGS`` cannot represent: a ``;`` anywhere, an ``=`` or
    nothing in a key, or a NUL (an environment variable cannot hold one).
    """
    merged: dict[str, str] = {}
    bad: list[str] = []
    for pair in pairs:
        if not (isinstance(pair, tuple | list) and len(pair) == 2):
            bad.append(f"{show(pair)} is not a (key, value) pair")
            continue
        key, value = pair
        if not isinstance(key, str) or not isinstance(value, str):
            bad.append(f"key {show(key)} and value {show(value)} must both be strings")
            continue
        problem = _arg_problem(key, value)
        if problem is not None:
            bad.append(problem)
            continue
        merged[key] = value
    if bad:
        raise CniError(INVALID_ENV, "cannot build CNI_ARGS", _listed(bad))
    return ";".join(f"{key}={value}" for key, value in merged.items())


def _arg_problem(key: str, value: str) -> str | None:
    if key == "":
        return f"key of value {show(value)} is empty; every pair needs a key"
    for what, text, forbidden in (("key", key, ";=\0"), ("value", value, ";\0")):
        for ch in forbidden:
            if ch in text:
                shown = "NUL" if ch == "\0" else repr(ch)
                return (
                    f"{what} {show(text)} contains {shown}, which CNI_ARGS cannot carry; "
                    "pass it in the config's args instead"
                )
    return None


# ----------------------------------------------------------------------------- versions


def parse_version(v: str) -> tuple[int, int, int]:
    """A CNI version string as numbers, as libcni's ``ParseVersion``.

    ``""`` means 0.1.0 (CNI-46); missing parts are 0 (``"1"`` is 1.0.0). Unlike Go's
    ``Atoi`` we refuse signs and non-ASCII digits. An unreadable version is reported as
    code 1 (incompatible version), not 6: it is what skel answers for a config whose
    ``cniVersion`` it cannot match, and the runtime's fix is the same.
    """
    if not isinstance(v, str):
        raise CniError(
            INCOMPATIBLE_VERSION,
            "invalid CNI version",
            f"{show(v)} is a {type_name(v)}, not a version string such as \"1.1.0\"",
        )
    if v == "":
        return (0, 1, 0)
    parts = v.split(".")
    if len(parts) > 3:
        raise CniError(
            INCOMPATIBLE_VERSION,
            "invalid CNI version",
            f"{show(v)} has {len(parts)} parts; use at most 3, such as \"1.1.0\"",
        )
    numbers: list[int] = []
    for part in parts:
        if not (part.isascii() and part.isdigit()):
            raise CniError(
                INCOMPATIBLE_VERSION,
                "invalid CNI version",
                f"{show(v)} has part {show(part)}, not a number; use a version such as \"1.1.0\"",
            )
        if len(part) > 18:  # Go's Atoi overflows; Python's int() would refuse 4300+ digits
            raise CniError(
                INCOMPATIBLE_VERSION,
                "invalid CNI version",
                f"{show(v)} has a part of {len(part)} digits, too large for a version number",
            )
        numbers.append(int(part))
    while len(numbers) < 3:
        numbers.append(0)
    return (numbers[0], numbers[1], numbers[2])


def version_result(cni_version: str) -> dict[str, Any]:
    """The VERSION answer: what netplex accepts as a request version.

    This is :data:`PLUGIN_VERSIONS`, not :data:`SUPPORTED_VERSIONS`: we can convert a
    delegate's result to and from any version, but we refuse 0.1.0/0.2.0 requests.
    ``cniVersion`` echoes the request's version when it is one we know (the spec's
    "should"); otherwise it is 1.1.0, as skel always answers. An unknown or empty echo
    would break libcni's decoder.
    """
    echoed = cni_version if cni_version in SUPPORTED_VERSIONS else LATEST_VERSION
    return {"cniVersion": echoed, "supportedVersions": list(PLUGIN_VERSIONS)}


# ------------------------------------------------------------------------------ results


def convert_result(result: Mapping[str, Any], to_version: str) -> dict[str, Any]:
    """A CNI result in the shape of ``to_version`` (spec §7.1, libcni ``GetAsVersion``).

    The source version is the result's ``cniVersion``. When that is missing or empty
    (CNI-46 says: the request's version), the shape decides: ``ip4``/``ip6`` mean
    0.2.0, anything else 1.1.0; a caller that knows the request's version should set it
    first. Conversions:

    - 1.1.0 → 1.0.0 and below: interface ``mtu``/``socketPath``/``pciID`` and route
      ``mtu``/``advmss``/``priority``/``table``/``scope`` are dropped;
    - → 0.3.x/0.4.0: every ``ips`` entry gets ``version`` ("4"/"6", from its address);
      → 1.x: ``version`` is removed;
    - → 0.1.0/0.2.0: ``ip4``/``ip6`` = ``{ip, gateway, routes}`` built from the *first*
      address of each family (those versions hold one per family; the rest are
      dropped, as libcni does), routes sorted by the family of their ``dst``;
      interfaces are dropped. A result with no address at all cannot be expressed
      (code 1, as libcni's "no valid IP addresses").
    - 0.1.0/0.2.0 →: addresses become ``ips`` without an ``interface`` index.

    Keys this module does not know are carried over unchanged wherever the structure
    survives (0.3.0 … 1.1.0 entries, and the top level always); ``ip4``/``ip6`` are
    rebuilt from their known fields. Values are validated as Go would decode them
    (addresses are CIDRs, gateways IPs, numbers integers); a bad shape is code 6 with
    one line per problem.
    """
    if not isinstance(to_version, str) or to_version not in SUPPORTED_VERSIONS:
        raise CniError(
            INCOMPATIBLE_VERSION,
            f"cannot convert a result to CNI version {show(to_version)}",
            f"use one of {', '.join(SUPPORTED_VERSIONS)}",
        )
    try:
        canonical = _Decoder().decode(result)
        return _encode(canonical, to_version)
    except RecursionError:
        raise CniError(
            DECODE_FAILURE, "cannot decode the CNI result", "it is nested too deeply"
        ) from None


def _copy(value: Any) -> Any:
    """A fresh copy of a JSON value, so a converted result never aliases its source."""
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(v) for v in value]
    return value


@record(slots=True)
class _Canonical:
    """A result in 1.1.0 terms; ``None`` for a top-level key the source did not have."""

    interfaces: list[dict[str, Any]] | None
    ips: list[dict[str, Any]] | None
    routes: list[dict[str, Any]] | None
    dns: dict[str, Any] | None
    extra: dict[str, Any]


class _Decoder:
    """Validates a result of any version into :class:`_Canonical`, collecting problems."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def decode(self, result: object) -> _Canonical:
        if not isinstance(result, Mapping):
            raise CniError(
                DECODE_FAILURE,
                "cannot decode the CNI result",
                f"it is a {type_name(result)}, not a JSON object",
            )
        canonical = self._legacy(result) if self._is_legacy(result) else self._current(result)
        if self.problems:
            raise CniError(DECODE_FAILURE, "cannot decode the CNI result", _listed(self.problems))
        return canonical

    def _is_legacy(self, result: Mapping[str, Any]) -> bool:
        version = result.get("cniVersion")
        has_legacy = "ip4" in result or "ip6" in result
        current_keys = [k for k in ("interfaces", "ips", "routes") if k in result]
        if version is None or version == "":
            if has_legacy and current_keys:
                raise CniError(
                    DECODE_FAILURE,
                    "cannot decode the CNI result",
                    f"it mixes ip4/ip6 (0.2.0 and older) with {', '.join(current_keys)} "
                    "(0.3.0 and newer); set cniVersion and use one shape",
                )
            return has_legacy
        if not isinstance(version, str) or version not in SUPPORTED_VERSIONS:
            raise CniError(
                INCOMPATIBLE_VERSION,
                f"unsupported CNI result version {show(version)}",
                f"use one of {', '.join(SUPPORTED_VERSIONS)}",
            )
        legacy = parse_version(version) < (0, 3, 0)
        if legacy and current_keys:
            raise CniError(
                DECODE_FAILURE,
                "cannot decode the CNI result",
                f"cniVersion {show(version)} results have ip4/ip6, not "
                f"{', '.join(current_keys)}; set cniVersion to the version of the shape",
            )
        if not legacy and has_legacy:
            raise CniError(
                DECODE_FAILURE,
                "cannot decode the CNI result",
                f"cniVersion {show(version)} results have ips, not ip4/ip6; "
                "set cniVersion to the version of the shape",
            )
        return legacy

    # -- shared field checks

    def _string(self, path: str, value: Any) -> None:
        if value is not None and not isinstance(value, str):
            self.fail(path, f"must be a string (got {type_name(value)} {show(value)})")

    def _integer(self, path: str, value: Any, *, unsigned: bool) -> None:
        if value is None:
            return
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail(path, f"must be an integer (got {type_name(value)} {show(value)})")
        elif unsigned and value < 0:
            self.fail(path, f"must not be negative (got {value})")

    def _cidr(self, path: str, value: Any) -> int | None:
        """IP version of an address-with-prefix, or ``None`` (problem recorded)."""
        if not isinstance(value, str) or (parsed := parse_cidr(value)) is None:
            hint = "use address/prefix, e.g. 10.1.0.5/24 or 2001:db8::5/64"
            self.fail(path, f"is not a CIDR (got {show(value)}); {hint}")
            return None
        return parsed.version

    def _ip(self, path: str, value: Any) -> None:
        # Go decodes "" (and null) into a nil net.IP without complaint: accept both.
        if value is None or value == "":
            return
        message = check_ip(value)
        if message is not None:
            self.fail(path, message)

    def _entries(self, path: str, value: Any) -> list[Mapping[str, Any]]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(path, f"must be a list (got {type_name(value)})")
            return []
        entries: list[Mapping[str, Any]] = []
        for i, item in enumerate(value):
            if isinstance(item, Mapping):
                entries.append(item)
            else:
                self.fail(f"{path}[{i}]", f"must be an object (got {type_name(item)})")
        return entries

    def _strings(self, path: str, value: Any) -> None:
        if value is None:
            return
        if not isinstance(value, list):
            self.fail(path, f"must be a list of strings (got {type_name(value)})")
            return
        for i, item in enumerate(value):
            self._string(f"{path}[{i}]", item)

    def _dns(self, value: Any) -> dict[str, Any] | None:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            self.fail("dns", f"must be an object (got {type_name(value)})")
            return None
        for key in ("nameservers", "search", "options"):
            self._strings(f"dns.{key}", value.get(key))
        self._string("dns.domain", value.get("domain"))
        copied: dict[str, Any] = _copy(value)
        return copied

    def _route(self, path: str, route: Mapping[str, Any]) -> dict[str, Any]:
        self._cidr(f"{path}.dst", route.get("dst"))
        self._ip(f"{path}.gw", route.get("gw"))
        for key in _ROUTE_1_1_FIELDS:
            self._integer(f"{path}.{key}", route.get(key), unsigned=key in ("mtu", "advmss"))
        copied: dict[str, Any] = _copy(route)
        return copied

    # -- 0.3.0 and newer

    def _current(self, result: Mapping[str, Any]) -> _Canonical:
        interfaces = None
        if "interfaces" in result:
            interfaces = []
            for i, itf in enumerate(self._entries("interfaces", result["interfaces"])):
                path = f"interfaces[{i}]"
                for key in ("name", "mac", "sandbox", "socketPath", "pciID"):
                    self._string(f"{path}.{key}", itf.get(key))
                self._integer(f"{path}.mtu", itf.get("mtu"), unsigned=True)
                interfaces.append(_copy(itf))
        ips = None
        if "ips" in result:
            ips = []
            for i, ip in enumerate(self._entries("ips", result["ips"])):
                path = f"ips[{i}]"
                self._cidr(f"{path}.address", ip.get("address"))
                self._ip(f"{path}.gateway", ip.get("gateway"))
                self._integer(f"{path}.interface", ip.get("interface"), unsigned=False)
                ips.append({k: _copy(v) for k, v in ip.items() if k != "version"})
        routes = None
        if "routes" in result:
            routes = [
                self._route(f"routes[{i}]", route)
                for i, route in enumerate(self._entries("routes", result["routes"]))
            ]
        known = ("cniVersion", "interfaces", "ips", "routes", "dns")
        extra = {k: _copy(v) for k, v in result.items() if k not in known}
        return _Canonical(interfaces, ips, routes, self._dns(result.get("dns")), extra)

    # -- 0.1.0 / 0.2.0

    def _legacy(self, result: Mapping[str, Any]) -> _Canonical:
        ips: list[dict[str, Any]] = []
        routes: list[dict[str, Any]] = []
        for family in ("ip4", "ip6"):
            config = result.get(family)
            if config is None:
                continue
            if not isinstance(config, Mapping):
                self.fail(family, f"must be an object (got {type_name(config)})")
                continue
            self._cidr(f"{family}.ip", config.get("ip"))
            self._ip(f"{family}.gateway", config.get("gateway"))
            entry: dict[str, Any] = {"address": config.get("ip")}
            if config.get("gateway"):
                entry["gateway"] = config["gateway"]
            ips.append(entry)
            for i, route in enumerate(self._entries(f"{family}.routes", config.get("routes"))):
                path = f"{family}.routes[{i}]"
                self._cidr(f"{path}.dst", route.get("dst"))
                self._ip(f"{path}.gw", route.get("gw"))
                converted: dict[str, Any] = {"dst": route.get("dst")}
                if route.get("gw"):
                    converted["gw"] = route["gw"]
                routes.append(converted)
        known = ("cniVersion", "ip4", "ip6", "dns")
        extra = {k: _copy(v) for k, v in result.items() if k not in known}
        return _Canonical(
            None, ips or None, routes or None, self._dns(result.get("dns")), extra
        )


def _family(cidr: Any) -> int:
    """4 or 6; only called on values the decoder has already accepted as CIDRs."""
    parsed = parse_cidr(cidr)
    return parsed.version if parsed is not None else 4


def _encode(canonical: _Canonical, to_version: str) -> dict[str, Any]:
    target = parse_version(to_version)
    out: dict[str, Any] = {"cniVersion": to_version}
    if target < (0, 3, 0):
        _encode_legacy(canonical, out, to_version)
    else:
        old = target < (1, 1, 0)
        if canonical.interfaces is not None:
            out["interfaces"] = [
                {k: v for k, v in itf.items() if not (old and k in _INTERFACE_1_1_FIELDS)}
                for itf in canonical.interfaces
            ]
        if canonical.ips is not None:
            if target < (1, 0, 0):
                out["ips"] = [
                    {"version": str(_family(ip.get("address"))), **ip} for ip in canonical.ips
                ]
            else:
                out["ips"] = [dict(ip) for ip in canonical.ips]
        if canonical.routes is not None:
            out["routes"] = [
                {k: v for k, v in route.items() if not (old and k in _ROUTE_1_1_FIELDS)}
                for route in canonical.routes
            ]
    if canonical.dns is not None:
        out["dns"] = canonical.dns
    for key, value in canonical.extra.items():
        out.setdefault(key, value)
    return out


def _encode_legacy(canonical: _Canonical, out: dict[str, Any], to_version: str) -> None:
    configs: dict[int, dict[str, Any]] = {}
    for ip in canonical.ips or ():
        family = _family(ip.get("address"))
        if family in configs:
            continue  # 0.1.0/0.2.0 hold one address per family: the first wins
        config: dict[str, Any] = {"ip": ip.get("address")}
        if ip.get("gateway"):
            config["gateway"] = ip["gateway"]
        configs[family] = config
    if not configs:
        raise CniError(
            INCOMPATIBLE_VERSION,
            f"cannot convert the CNI result to version {to_version}",
            "it has no IP address, and 0.1.0/0.2.0 results consist of ip4/ip6 addresses",
        )
    for route in canonical.routes or ():
        owner = configs.get(_family(route.get("dst")))
        if owner is None:
            continue  # no address of that family to hang the route on
        legacy_route: dict[str, Any] = {"dst": route.get("dst")}
        if route.get("gw"):
            legacy_route["gw"] = route["gw"]
        owner.setdefault("routes", []).append(legacy_route)
    for family in (4, 6):
        if family in configs:
            out[f"ip{family}"] = configs[family]
