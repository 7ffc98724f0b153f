"""CNI network configurations (a single plugin "conf" or a "conflist"), parsed and checked.

One parser serves both halves of netplex: the webhook runs it on a NAD's ``spec.config``
at ``kubectl apply`` time, and the CNI plugin runs it on the same text (or on an on-disk
file, or a ``delegates`` entry) before it executes anything. So whatever the plugin
would refuse is refused at admission, with the field path and the fix.

What it returns is a :class:`NetConfResult`: the normalized conflist that the plugin
executes, plus errors and warnings as :class:`plugin.model.problems.Problem` values. Nothing
here raises on bad input; arbitrary text and arbitrary JSON values give problems.

The rules and where they come from (spec/cni.md, spec/npwg.md):

- conf vs conflist is decided by the presence of the ``plugins`` key, never by "try a
  list, then a conf" (cni.md trap 6: libcni >= 1.2 parses a conf as a list of zero
  plugins). A conf is up-converted the way libcni's ``ConfListFromConf`` does (§10.3).
- ``name``: CNI-1; injected from the NAD name when missing or ``""`` (NPWG-5).
- ``type`` / ``ipam.type``: CNI-2, and a bare file name, so that a NAD cannot pick a
  binary outside the CNI bin directories (``"../../bin/sh"``).
- ``plugins``: CNI-3; ``loadOnlyInlinedPlugins``: CNI-4; unknown keys kept: CNI-5;
  the boolean flags accept ``"true"``/``"false"`` strings: CNI-45; a missing
  ``cniVersion`` means 0.1.0: CNI-46; version selection: §2.4.
- IPAM (host-local, static, whereabouts, dhcp) and the fields of the common plugins
  (macvlan, ipvlan, bridge, host-device, sriov, vlan) are checked the way those plugins
  check them when they load their config, so a mistake surfaces at admission instead
  of at pod start.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from plugin.model.names import (
    CNI_NAME_RULE,
    TYPE_RULE,
    check_cidr,
    check_cni_name,
    check_interface_name,
    check_ip,
    closest,
    parse_cidr,
    plugin_type_problem,
)
from plugin.model.names import (
    PLUGIN_TYPE_RE as PLUGIN_TYPE_RE,  # re-exported: the rule lives in names
)
from plugin.model.problems import Collector, Findings, Problem, show, type_name

TYPE_CHECKING = False  # typing is not imported at run time (~4 ms per start); mypy takes this as True
if TYPE_CHECKING:
    from typing import Any, Literal

SUPPORTED_VERSIONS: tuple[str, ...] = (
    "0.1.0",
    "0.2.0",
    "0.3.0",
    "0.3.1",
    "0.4.0",
    "1.0.0",
    "1.1.0",
)
if TYPE_CHECKING:
    Kind = Literal["empty", "conf", "conflist", "invalid"]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NEWEST = (1, 1, 0)  # libcni version.Current(): cniVersions entries above it are dropped
_JSON_WS = " \t\n\r"
_SIMPLE_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_VERSION_PART_RE = re.compile(r"^[0-9]+$")

VERSION_RULE = "use one of " + ", ".join(SUPPORTED_VERSIONS) + ', e.g. "0.3.1" or "1.0.0"'
_CONF_EXAMPLE = '{"cniVersion": "0.3.1", "type": "bridge"}'

# Keys the CNI spec defines, used to spot "Type" for "type": Go's decoder matches struct
# fields case-insensitively, so such a key may or may not be read, depending on who reads.
_LIST_KEYS = frozenset(
    {
        "cniVersion",
        "cniVersions",
        "name",
        "plugins",
        "disableCheck",
        "disableGC",
        "loadOnlyInlinedPlugins",
    }
)
_PLUGIN_KEYS = frozenset(
    {"cniVersion", "name", "type", "capabilities", "ipam", "dns", "args", "runtimeConfig"}
)
_FLAG_KEYS = ("disableCheck", "disableGC", "loadOnlyInlinedPlugins")

# Plugins shipped with containernetworking-plugins and the common add-ons; used only to
# warn about a wrong case ("MacVlan"), because binary file names are case-sensitive.
_KNOWN_TYPES = frozenset(
    {
        "bridge",
        "macvlan",
        "ipvlan",
        "host-device",
        "sriov",
        "vlan",
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
_KNOWN_TYPES_BY_LOWER = {t.lower(): t for t in _KNOWN_TYPES}
_ROUTED_IPAM = frozenset({"host-local", "static", "whereabouts", "dhcp"})
_VLAN_ID_TYPES = frozenset({"macvlan", "ipvlan", "bridge", "host-device", "sriov", "vlan"})


@dataclass(frozen=True, slots=True)
class NetConfResult:
    """What a CNI config turned out to be, and what is wrong with it.

    ``kind`` is ``"invalid"`` whenever there is an error; then ``conflist`` and
    ``cni_version`` are ``None`` and ``capabilities`` is empty, so nothing downstream can
    run half-checked config by mistake. An ``"empty"`` config (NPWG-2) is ok but has no
    conflist: the plugin loads it from a file by name.
    """

    conflist: dict[str, Any] | None
    kind: Kind
    errors: tuple[Problem, ...]
    warnings: tuple[Problem, ...]
    capabilities: frozenset[str]
    cni_version: str | None

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def findings(self) -> Findings:
        return Findings(self.errors, self.warnings)

    @property
    def plugin_types(self) -> tuple[str, ...]:
        """The ``type`` of each plugin, in execution order (empty unless valid)."""
        if self.conflist is None:
            return ()
        plugins = self.conflist.get("plugins")
        if not isinstance(plugins, list):
            return ()
        return tuple(p["type"] for p in plugins if isinstance(p, dict) and "type" in p)


# --------------------------------------------------------------------------- entry points


def parse_netconf(config: object, nad_name: str, *, path: str = "spec.config") -> NetConfResult:
    """Parse and check a NAD's ``spec.config`` (the raw string) for NAD ``nad_name``.

    ``None``, ``""`` or whitespace means "no inline config" (NPWG-2): the result is
    ``"empty"`` with one warning explaining where the config will come from instead.
    """
    name = nad_name if isinstance(nad_name, str) else None
    if config is None or (isinstance(config, str) and config.strip(_JSON_WS) == ""):
        return _empty(name, path)
    collector = Collector()
    if not isinstance(config, str):
        collector.error(
            path,
            f"the CNI config must be a string holding JSON (got {_show(config)}, "
            f"{_a(config)}); write the config as a JSON string, e.g. {_CONF_EXAMPLE}",
        )
        return _invalid(collector)
    found, doc = _decode(config, path, collector)
    if not found:
        return _invalid(collector)
    return _check_document(doc, name, path, collector)


def parse_netconf_object(
    obj: object, nad_name: str | None, *, path: str = "spec.config"
) -> NetConfResult:
    """The same checks on an already-decoded JSON value (a conf file, a ``delegates`` entry).

    With ``nad_name`` ``None`` there is no NAD to take a name from, so a missing ``name``
    is an error (CNI-1) instead of being injected.
    """
    name = nad_name if isinstance(nad_name, str) else None
    return _check_document(obj, name, path, Collector())


# --------------------------------------------------------------------------- small helpers


def _show(value: object) -> str:
    """:func:`problems.show` that survives values nested deeper than ``json.dumps`` allows."""
    try:
        return show(value)
    except RecursionError:
        return f"<a deeply nested {type_name(value)}>"


def _check_value(check: Callable[[object], str | None], value: object) -> str | None:
    """Run a ``plugin.model.names`` check; it renders the value, which may be too deep to render."""
    try:
        return check(value)
    except RecursionError:
        return f"{_show(value)} is not valid here (a deeply nested {type_name(value)})"


def _at(path: str, key: str | int) -> str:
    """``spec.config`` + ``ipam`` -> ``spec.config.ipam``; odd keys go in brackets."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _SIMPLE_KEY_RE.match(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{key}]"


def _copy_json(value: object) -> Any:
    """Deep copy of dicts and lists without recursion (input depth is the user's choice)."""
    if not isinstance(value, dict | list):
        return value
    root: dict[Any, Any] | list[Any] = {} if isinstance(value, dict) else []
    stack: list[tuple[Any, Any]] = [(value, root)]
    while stack:
        src, dst = stack.pop()
        items = src.items() if isinstance(src, dict) else enumerate(src)
        for key, item in items:
            if isinstance(item, dict | list):
                child: dict[Any, Any] | list[Any] = {} if isinstance(item, dict) else []
                stack.append((item, child))
                item = child
            if isinstance(dst, dict):
                dst[key] = item
            else:
                dst.append(item)
    return root


def _parse_version(value: str) -> tuple[int, int, int] | None:
    """libcni ``ParseVersion``: up to 3 numeric dot-separated parts, missing parts are 0."""
    if value == "":
        return (0, 1, 0)
    parts = value.split(".")
    if len(parts) > 3 or any(_VERSION_PART_RE.match(p) is None for p in parts):
        return None
    numbers = [int(p) for p in parts] + [0] * (3 - len(parts))
    return (numbers[0], numbers[1], numbers[2])


def _a(value: object) -> str:
    """ "a number", "an object": the JSON type of a value with its article."""
    name = type_name(value)
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"


def _not_int_reason(value: object) -> str:
    """Why a JSON value is not an integer, in words that point at the fix."""
    if isinstance(value, bool):
        return f"{_show(value)}, a boolean"
    if isinstance(value, float):
        return f"{_show(value)}, not a whole number: Go plugins refuse a fraction or exponent"
    if isinstance(value, str):
        return f"{_show(value)}, a string: write the number without quotes"
    return f"{_show(value)}, {_a(value)}"


def _family(version: int) -> str:
    return "IPv4" if version == 4 else "IPv6"


def _ip(value: str) -> IPAddress:
    """An address already accepted by ``check_ip``."""
    return ipaddress.ip_address(value)


# --------------------------------------------------------------------------- decoding


def _empty(nad_name: str | None, path: str) -> NetConfResult:
    """NPWG-2/NPWG-4: no inline config means "the network of this name, from a file"."""
    where = f'"name" is {show(nad_name)}' if nad_name else '"name" is the NAD name'
    what = path or "the config"
    warning = Problem(
        path,
        f'{what} is empty (got ""); the CNI config then comes from a file in the plugin\'s '
        f"confDir on each node whose {where} (NPWG §3.4.1), and the network fails to attach "
        "on any node without such a file",
    )
    return NetConfResult(None, "empty", (), (warning,), frozenset(), None)


def _invalid(collector: Collector) -> NetConfResult:
    return NetConfResult(
        None, "invalid", tuple(collector.errors), tuple(collector.warnings), frozenset(), None
    )


def _reject_constant(name: str) -> Any:
    """Python reads NaN and Infinity; JSON (and Go) do not."""
    raise ValueError(f"{name} is not a JSON number")


def _parse_float(text: str) -> float:
    """Python turns 1e999 into inf; Go refuses the number, so we do too."""
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise ValueError(f"the number {text} is too large for a 64-bit float")
    return number


def _decode(text: str, path: str, collector: Collector) -> tuple[bool, Any]:
    """``json.loads`` as strict as Go's decoder, with duplicate keys reported by path."""
    duplicates: dict[int, list[str]] = {}

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        seen: list[str] = []
        for key, value in pairs:
            if key in obj:
                seen.append(key)
            obj[key] = value  # last wins, as in Go's encoding/json
        if seen:
            duplicates[id(obj)] = seen
        return obj

    hint = f"a CNI config is a JSON object, e.g. {_CONF_EXAMPLE}"
    try:
        doc = json.loads(
            text,
            object_pairs_hook=pairs_hook,
            parse_constant=_reject_constant,
            parse_float=_parse_float,
        )
    except json.JSONDecodeError as exc:
        start = max(exc.pos - 20, 0)
        near = text[start : exc.pos + 20]
        collector.error(
            path,
            f"the CNI config is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno} "
            f"(got {_show(near)} around there); {hint}",
        )
        return False, None
    except RecursionError:
        collector.error(
            path,
            f"the CNI config is not usable JSON: it is nested too deeply (got {len(text)} "
            f"characters); {hint}",
        )
        return False, None
    except ValueError as exc:
        collector.error(
            path, f"the CNI config is not valid JSON: {exc} (got {_show(text)}); {hint}"
        )
        return False, None
    if duplicates:
        _report_duplicates(doc, duplicates, path, collector)
    return True, doc


def _report_duplicates(
    doc: Any, duplicates: dict[int, list[str]], path: str, collector: Collector
) -> None:
    """Walk the decoded tree (iteratively: depth is the user's) to name each duplicate's object."""
    stack: list[tuple[Any, str]] = [(doc, path)]
    while stack:
        value, where = stack.pop()
        if isinstance(value, dict):
            for key in dict.fromkeys(duplicates.get(id(value), ())):
                count = duplicates[id(value)].count(key) + 1
                collector.warn(
                    _at(where, key),
                    f"duplicate key {show(key)} (got it {count} times in one object); only the "
                    "last value is used, as by Go's JSON decoder: remove the others",
                )
            stack.extend((item, _at(where, key)) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((item, _at(where, i)) for i, item in enumerate(value))


# --------------------------------------------------------------------------- the checks


def _check_document(
    doc: object, nad_name: str | None, path: str, collector: Collector
) -> NetConfResult:
    """Check a decoded config and build the normalized conflist when it has no errors."""
    if not isinstance(doc, dict):
        collector.error(
            path,
            f"the CNI config is a JSON {type_name(doc)}, not an object (got {_show(doc)}); "
            f"a CNI config is a JSON object, e.g. {_CONF_EXAMPLE}",
        )
        return _invalid(collector)
    checker = _Checker(collector, path)
    is_list = "plugins" in doc
    name, version = checker.check(doc, nad_name, is_list)
    if collector.errors or name is None or version is None:
        return _invalid(collector)
    if is_list:
        conflist = _copy_json(doc)
        conflist["name"] = name
        kind: Kind = "conflist"
    else:
        plugin = _copy_json(doc)
        plugin["name"] = name
        conflist = {}
        if "cniVersion" in doc:
            conflist["cniVersion"] = doc["cniVersion"]
        conflist["name"] = name
        conflist["plugins"] = [plugin]
        kind = "conf"
    return NetConfResult(
        conflist,
        kind,
        (),
        tuple(collector.warnings),
        frozenset(checker.capabilities),
        version,
    )


@dataclass(frozen=True, slots=True)
class _Pool:
    """The addresses one host-local range hands out, for the overlap check."""

    path: str
    order: int
    network: IPNetwork
    first: IPAddress
    last: IPAddress


class _Checker:
    """Walks one config; each method checks one part and reports into the collector."""

    def __init__(self, collector: Collector, root: str) -> None:
        self.c = collector
        self.root = root
        self.capabilities: set[str] = set()
        self.pools: list[_Pool] = []

    # ---- document level

    def check(
        self, doc: dict[str, Any], nad_name: str | None, is_list: bool
    ) -> tuple[str | None, str | None]:
        """Returns the network name and the chosen cniVersion (``None`` where invalid)."""
        root = self.root
        self.keys(doc, root, _LIST_KEYS if is_list else _LIST_KEYS | _PLUGIN_KEYS)
        flags = {key: self.flag(doc[key], root, key) for key in _FLAG_KEYS if key in doc}
        if flags.get("loadOnlyInlinedPlugins") is True and not is_list:
            self.c.error(
                _at(root, "loadOnlyInlinedPlugins"),
                f'loadOnlyInlinedPlugins is true but there is no "plugins" list (got '
                f"{_show(doc['loadOnlyInlinedPlugins'])}); CNI rejects this combination: put "
                'the plugin in "plugins" or remove the flag',
            )
        name = self.name(doc, nad_name)
        if is_list:
            version = self.list_version(doc)
            self.plugin_list(doc, version)
        else:
            version = self.conf_version(doc)
            for key in ("disableCheck", "disableGC"):
                if flags.get(key) is True:
                    self.c.warn(
                        _at(root, key),
                        f"{key} only applies to a conflist (got {_show(doc[key])}); a single "
                        "plugin config is up-converted without it, so it has no effect: "
                        'put the plugin in "plugins" to use it',
                    )
            self.plugin(doc, root, version, in_list=False)
        self.check_overlaps()
        return name, version

    def keys(self, obj: dict[str, Any], path: str, known: frozenset[str]) -> None:
        """Reserved ``cni.dev/`` keys, and keys that differ from a spec key only in case."""
        lower = {k.lower(): k for k in known}
        for key in obj:
            if not isinstance(key, str):
                continue
            if key.startswith("cni.dev/"):
                self.c.error(
                    _at(path, key),
                    f'keys starting with "cni.dev/" are reserved for the CNI protocol (got '
                    f"{show(key)}); the runtime sets them, a stored config must not: remove it",
                )
            elif key not in known and key.lower() in lower:
                self.c.warn(
                    _at(path, key),
                    f"key differs only in case from the CNI key {show(lower[key.lower()])} (got "
                    f"{show(key)}); keys are case-sensitive here, while Go plugins match them "
                    f"case-insensitively: rename it to {show(lower[key.lower()])}",
                )

    def flag(self, value: object, path: str, key: str) -> bool | None:
        """CNI-45: a JSON boolean or the strings "true"/"false" in any case."""
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        self.c.error(
            _at(path, key),
            f"{key} must be true or false (got {_show(value)}, {_a(value)}); use a JSON "
            'boolean, or the string "true" or "false"',
        )
        return None

    def name(self, doc: dict[str, Any], nad_name: str | None) -> str | None:
        """CNI-1 after NPWG-5 injection; a name other than the NAD's is allowed but warned."""
        path = _at(self.root, "name")
        value = doc.get("name", "")
        if value != "":
            problem = _check_value(check_cni_name, value)
            if problem is not None:
                self.c.error(path, problem)
                return None
            if nad_name is not None and value != nad_name:
                self.c.warn(
                    path,
                    f"the CNI network name differs from the NetworkAttachmentDefinition name "
                    f"{show(nad_name)} (got {show(value)}); NPWG §3.4.3 recommends they match: "
                    f"pods select the network and network-status reports it as {show(nad_name)}, "
                    f"while CNI and its result cache know it as {show(value)}",
                )
            return str(value)
        if nad_name is None:
            got = '""' if "name" in doc else 'no "name" key'
            self.c.error(
                path,
                f"the network name is missing (got {got}); every CNI network config needs a "
                f"name (CNI-1): {CNI_NAME_RULE}",
            )
            return None
        problem = _check_value(lambda v: check_cni_name(v, "NAD name"), nad_name)
        if problem is not None:
            self.c.error(
                path,
                f"the config has no name and the NetworkAttachmentDefinition name cannot be "
                f"used instead: {problem}",
            )
            return None
        return nad_name

    # ---- versions

    def version_problem(self, value: object) -> str | None:
        """skel accepts only exact version strings, so "0.3" fails: suggest the one meant."""
        if not isinstance(value, str):
            return f"cniVersion must be a string (got {_show(value)}, {_a(value)}); {VERSION_RULE}"
        if value == "" or value in SUPPORTED_VERSIONS:
            return None
        parsed = _parse_version(value.strip().lstrip("vV"))
        same = [v for v in SUPPORTED_VERSIONS if _parse_version(v) == parsed]
        guess = same[0] if same else closest(value, SUPPORTED_VERSIONS)
        hint = f"did you mean {show(guess)}? " if guess else ""
        return f"cniVersion is not a CNI spec version (got {_show(value)}); {hint}{VERSION_RULE}"

    def declared_version(self, doc: dict[str, Any]) -> tuple[bool, str | None]:
        """``cniVersion`` itself: (valid, value); ``""`` counts as absent, as in libcni."""
        if "cniVersion" not in doc:
            return True, None
        problem = self.version_problem(doc["cniVersion"])
        if problem is not None:
            self.c.error(_at(self.root, "cniVersion"), problem)
            return False, None
        return True, doc["cniVersion"] or None

    def warn_legacy_version(self, doc: dict[str, Any]) -> None:
        """CNI-46: no version means 0.1.0, which most people do not mean."""
        got = '""' if "cniVersion" in doc else 'no "cniVersion" key'
        hint = self.case_hint(doc, "cniVersion")
        self.c.warn(
            _at(self.root, "cniVersion"),
            f"cniVersion is not set (got {got}{hint}); CNI then treats the config as version "
            "0.1.0 (legacy: no CHECK, GC or STATUS, old result format): set it, e.g. "
            '"cniVersion": "0.3.1" or "1.0.0"',
        )

    def conf_version(self, doc: dict[str, Any]) -> str | None:
        """A single conf runs with its own ``cniVersion`` (libcni ``ConfListFromConf``)."""
        ok, version = self.declared_version(doc)
        if "cniVersions" in doc:
            self.c.warn(
                _at(self.root, "cniVersions"),
                f"cniVersions is only read from a conflist (got {_show(doc['cniVersions'])}); a "
                'single plugin config uses its "cniVersion": put the plugin in "plugins" to '
                "use version negotiation",
            )
        if not ok:
            return None
        if version is None:
            self.warn_legacy_version(doc)
            return "0.1.0"
        return version

    def list_version(self, doc: dict[str, Any]) -> str | None:
        """§2.4: the highest of {cniVersion} ∪ cniVersions, ignoring versions above 1.1.0."""
        ok, declared = self.declared_version(doc)
        chosen, chosen_path = declared, _at(self.root, "cniVersion")
        if "cniVersions" in doc:
            listed = self.version_list(doc["cniVersions"], _at(self.root, "cniVersions"))
            if listed is None:
                ok = False
            else:
                if declared is not None:
                    parsed = _parse_version(declared)
                    if parsed is not None:
                        listed.append((parsed, declared, chosen_path))
                if listed:
                    best = max(listed, key=lambda t: (t[0], t[1] in SUPPORTED_VERSIONS))
                    chosen, chosen_path = best[1], best[2]
        if not ok:
            return None
        if chosen is None:
            self.warn_legacy_version(doc)
            return "0.1.0"
        if chosen not in SUPPORTED_VERSIONS:
            self.c.error(
                chosen_path,
                f"the version chosen from cniVersion and cniVersions is not a CNI spec version "
                f"(got {show(chosen)}); plugins accept only exact versions: {VERSION_RULE}",
            )
            return None
        return chosen

    def version_list(
        self, value: object, path: str
    ) -> list[tuple[tuple[int, int, int], str, str]] | None:
        """``cniVersions`` entries usable for selection, or ``None`` if the list is invalid."""
        if not isinstance(value, list):
            self.c.error(
                path,
                f"cniVersions must be a list of version strings (got {_show(value)}, "
                f'{_a(value)}); e.g. "cniVersions": ["0.4.0", "1.0.0"]',
            )
            return None
        usable: list[tuple[tuple[int, int, int], str, str]] = []
        valid = True
        for i, entry in enumerate(value):
            where = _at(path, i)
            parsed = _parse_version(entry) if isinstance(entry, str) and entry else None
            if parsed is None:
                self.c.error(
                    where,
                    f"this is not a version (got {_show(entry)}); a version has at most 3 numeric "
                    f"parts separated by dots: {VERSION_RULE}",
                )
                valid = False
            elif parsed > _NEWEST:
                self.c.warn(
                    where,
                    f"this version is newer than the newest CNI version netplex speaks, 1.1.0 (got "
                    f"{show(entry)}); it is left out when the version is chosen, as libcni does",
                )
            else:
                usable.append((parsed, str(entry), where))
        return usable if valid else None

    # ---- plugins

    def plugin_list(self, doc: dict[str, Any], version: str | None) -> None:
        """CNI-3: ``plugins`` is a non-empty list of objects."""
        path = _at(self.root, "plugins")
        plugins = doc["plugins"]
        example = '"plugins": [{"type": "bridge", "bridge": "br0"}]'
        if not isinstance(plugins, list):
            self.c.error(
                path,
                f"plugins must be a list of plugin objects (got {_show(plugins)}, "
                f"{_a(plugins)}); e.g. {example}",
            )
        elif not plugins:
            self.c.error(
                path,
                f"plugins is empty (got []); a conflist needs at least one plugin object, "
                f"e.g. {example}",
            )
        else:
            for i, plugin in enumerate(plugins):
                where = _at(path, i)
                if isinstance(plugin, dict):
                    self.plugin(plugin, where, version, in_list=True)
                else:
                    self.c.error(
                        where,
                        f"a plugin must be a JSON object (got {_show(plugin)}, "
                        f'{_a(plugin)}); e.g. {{"type": "bridge", "bridge": "br0"}}',
                    )
        for key in ("type", "ipam"):
            if key in doc:
                self.c.warn(
                    _at(self.root, key),
                    f"{key} is ignored at the top of a conflist (got {_show(doc[key])}); "
                    f'each entry of "plugins" has its own {key}: move it there or remove it',
                )

    def plugin(self, p: dict[str, Any], path: str, version: str | None, *, in_list: bool) -> None:
        """One plugin object: the generic CNI keys, then its type's and its IPAM's fields."""
        if in_list:
            self.keys(p, path, _PLUGIN_KEYS)
        ptype = self.plugin_type(p, path)
        caps = (
            self.plugin_capabilities(p["capabilities"], _at(path, "capabilities"))
            if "capabilities" in p
            else set()
        )
        if "runtimeConfig" in p:
            self.c.warn(
                _at(path, "runtimeConfig"),
                f"runtimeConfig is reserved: the runtime generates it from capabilities (got "
                f"{_show(p['runtimeConfig'])}); a stored config should not set it: remove it "
                'and enable the capability in "capabilities" instead',
            )
        if "args" in p and not isinstance(p["args"], dict):
            self.c.error(
                _at(path, "args"),
                f"args must be a JSON object (got {_show(p['args'])}, {_a(p['args'])}); "
                'e.g. "args": {"cni": {"labels": [{"key": "app", "value": "web"}]}}',
            )
        if in_list:
            self.plugin_version(p, path, version)
            if "name" in p and not isinstance(p["name"], str):
                self.c.error(
                    _at(path, "name"),
                    f"a plugin's name must be a string (got {_show(p['name'])}, "
                    f"{_a(p['name'])}); it is replaced by the list's name anyway: remove it",
                )
        if "dns" in p:
            self.dns(p["dns"], _at(path, "dns"))
        if "mtu" in p:
            self.mtu(p["mtu"], _at(path, "mtu"))
        if ptype is not None:
            check = _TYPE_CHECKS.get(ptype)
            if check is not None:
                check(self, p, path)
            if ptype in _VLAN_ID_TYPES and "vlanId" in p:
                self.integer(
                    p["vlanId"], _at(path, "vlanId"), "VLAN ID", 0, 4094, "0 means no VLAN tag"
                )
        if "ipam" in p:
            self.ipam(p["ipam"], _at(path, "ipam"), caps)

    def plugin_type(self, p: dict[str, Any], path: str) -> str | None:
        """CNI-2 and the bare-file-name rule for ``type``."""
        where = _at(path, "type")
        if "type" not in p:
            self.c.error(
                where,
                f'plugin type is missing (got no "type" key{self.case_hint(p, "type")}); '
                f"{TYPE_RULE}",
            )
            return None
        value = p["type"]
        problem = plugin_type_problem(value)
        if problem is not None:
            self.c.error(where, problem)
            return None
        standard = _KNOWN_TYPES_BY_LOWER.get(value.lower())
        if standard is not None and standard != value:
            self.c.warn(
                where,
                f"plugin type differs in case from the standard plugin {show(standard)} (got "
                f"{show(value)}); binary file names are case-sensitive, so it is probably not "
                "found",
            )
        return str(value)

    def case_hint(self, obj: dict[str, Any], key: str) -> str:
        """``, but "Type"`` when a case variant of the missing key is present."""
        for other in obj:
            if isinstance(other, str) and other != key and other.lower() == key.lower():
                return f", but {show(other)}: keys are case-sensitive"
        return ""

    def plugin_capabilities(self, value: object, path: str) -> set[str]:
        """``capabilities`` maps capability names to booleans; the true ones are collected."""
        enabled: set[str] = set()
        if not isinstance(value, dict):
            self.c.error(
                path,
                f"capabilities must be a JSON object of booleans (got {_show(value)}, "
                f'{_a(value)}); e.g. "capabilities": {{"ips": true, "mac": true}}',
            )
            return enabled
        for key, flag in value.items():
            if not isinstance(flag, bool):
                self.c.error(
                    _at(path, str(key)),
                    f"a capability must be true or false (got {_show(flag)}, {_a(flag)}); "
                    "use a JSON boolean",
                )
            elif flag:
                enabled.add(str(key))
        self.capabilities |= enabled
        return enabled

    def plugin_version(self, p: dict[str, Any], path: str, version: str | None) -> None:
        """A plugin's own cniVersion in a conflist is overwritten with the list's."""
        if "cniVersion" not in p:
            return
        value = p["cniVersion"]
        where = _at(path, "cniVersion")
        if not isinstance(value, str):
            self.c.error(
                where,
                f"cniVersion must be a string (got {_show(value)}, {_a(value)}); it is "
                "replaced by the list's version anyway: remove it",
            )
        elif version is not None and value != version:
            self.c.warn(
                where,
                f"the plugin's cniVersion differs from the conflist's version {show(version)} "
                f"(got {show(value)}); the "
                "list's version is what the plugin receives: remove it or make them equal",
            )

    # ---- generic field checks

    def integer(
        self, value: object, path: str, what: str, low: int, high: int, note: str = ""
    ) -> int | None:
        """An integer field as Go reads it: no booleans, no floats, no strings."""
        hint = f"use an integer from {low} to {high}" + (f" ({note})" if note else "")
        if isinstance(value, bool) or not isinstance(value, int):
            self.c.error(path, f"{what} must be an integer (got {_not_int_reason(value)}); {hint}")
            return None
        if not low <= value <= high:
            self.c.error(path, f"{what} is out of range (got {value}); {hint}")
            return None
        return value

    def mtu(self, value: object, path: str) -> None:
        """68 is the IPv4 minimum the kernel accepts; 0 lets the plugin pick its default."""
        hint = "use an integer from 68 to 65535, or 0 for the default MTU"
        if isinstance(value, bool) or not isinstance(value, int):
            self.c.error(path, f"MTU must be an integer (got {_not_int_reason(value)}); {hint}")
        elif value != 0 and not 68 <= value <= 65535:
            self.c.error(path, f"MTU is out of range (got {value}); {hint}")

    def boolean(self, obj: dict[str, Any], key: str, path: str) -> None:
        """Go refuses to unmarshal "true" (a string) into a bool, so the plugin would fail."""
        if key in obj and not isinstance(obj[key], bool):
            value = obj[key]
            self.c.error(
                _at(path, key),
                f"{key} must be true or false (got {_show(value)}, {_a(value)}); use a "
                "JSON boolean without quotes",
            )

    def choice(
        self, obj: dict[str, Any], key: str, path: str, what: str, choices: tuple[str, ...]
    ) -> None:
        """An enumerated string; ``""`` means the plugin's default, as the plugins read it."""
        if key not in obj:
            return
        value = obj[key]
        if isinstance(value, str) and (value == "" or value in choices):
            return
        guess = closest(value, choices) if isinstance(value, str) else None
        hint = f"did you mean {show(guess)}? " if guess else ""
        self.c.error(
            _at(path, key),
            f"{what} is not valid (got {_show(value)}); {hint}use one of {', '.join(choices)}",
        )

    def interface(self, obj: dict[str, Any], key: str, path: str) -> None:
        """A host interface name (master, bridge, device): the kernel's rules, CNI-40."""
        if key in obj:
            problem = _check_value(check_interface_name, obj[key])
            if problem is not None:
                self.c.error(_at(path, key), problem)

    def string_list(self, obj: dict[str, Any], key: str, path: str) -> list[str]:
        """A list of strings (Go ``[]string``); returns the strings for further checks."""
        if key not in obj:
            return []
        value = obj[key]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.c.error(
                _at(path, key),
                f'{key} must be a list of strings (got {_show(value)}); e.g. ["example.com"]',
            )
            return []
        return [str(v) for v in value]

    def dns(self, value: object, path: str) -> None:
        """``dns``: the spec's shape; a nameserver that is not an IP is probably a typo."""
        if not isinstance(value, dict):
            self.c.error(
                path,
                f"dns must be a JSON object (got {_show(value)}, {_a(value)}); e.g. "
                '"dns": {"nameservers": ["10.1.0.1"], "search": ["example.com"]}',
            )
            return
        for i, server in enumerate(self.string_list(value, "nameservers", path)):
            problem = check_ip(server, "nameserver")
            if problem is not None:
                self.c.warn(_at(_at(path, "nameservers"), i), problem)
        if "domain" in value and not isinstance(value["domain"], str):
            self.c.error(
                _at(path, "domain"),
                f'domain must be a string (got {_show(value["domain"])}); e.g. "example.com"',
            )
        self.string_list(value, "search", path)
        self.string_list(value, "options", path)

    # ---- IPAM

    def ipam(self, value: object, path: str, caps: set[str]) -> None:
        """``ipam``: an object whose ``type`` picks the IPAM binary, then that type's fields.

        An ``ipam`` without a type is how plugins say "no IPAM" (bridge and macvlan run
        IPAM only when ``ipam.type`` is non-empty), so it is not an error.
        """
        if not isinstance(value, dict):
            self.c.error(
                path,
                f"ipam must be a JSON object (got {_show(value)}, {_a(value)}); e.g. "
                '"ipam": {"type": "host-local", "subnet": "10.1.0.0/24"}',
            )
            return
        if value.get("type", "") == "":
            settings = [k for k in value if k != "type"]
            if settings:
                self.c.warn(
                    path,
                    f"ipam has settings but no type (got keys {_show(settings)}"
                    f"{self.case_hint(value, 'type')}); no IPAM plugin runs without \"type\", so "
                    'they are ignored: set "type", e.g. "host-local"',
                )
            return
        ipam_type = value["type"]
        problem = plugin_type_problem(ipam_type)
        if problem is not None:
            self.c.error(_at(path, "type"), problem.replace("plugin type", "IPAM type"))
            return
        if ipam_type in _ROUTED_IPAM and "routes" in value:
            self.routes(value["routes"], _at(path, "routes"))
        if ipam_type == "host-local":
            self.host_local(value, path, caps)
        elif ipam_type == "static":
            self.static(value, path)
        elif ipam_type == "whereabouts":
            self.whereabouts(value, path)

    def ip_field(self, obj: dict[str, Any], key: str, path: str) -> IPAddress | None:
        """An optional bare address; reports a bad one and returns what it parsed."""
        if key not in obj:
            return None
        problem = _check_value(lambda v: check_ip(v, key), obj[key])
        if problem is not None:
            self.c.error(_at(path, key), problem)
            return None
        return _ip(obj[key])

    def cidr_field(
        self, obj: dict[str, Any], key: str, path: str, what: str
    ) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface | None:
        """A present address/prefix; reports a bad one and returns what it parsed."""
        problem = _check_value(lambda v: check_cidr(v, what), obj[key])
        if problem is not None:
            self.c.error(_at(path, key), problem)
            return None
        return parse_cidr(obj[key])

    def inside(
        self, addr: IPAddress | None, network: IPNetwork, path: str, what: str, net_text: str
    ) -> bool:
        """``addr`` must be of the network's family and inside it; the error names the network."""
        if addr is None:
            return False
        if addr.version != network.version:
            self.c.error(
                path,
                f"{what} is {_family(addr.version)} but the {net_text} {network} is "
                f"{_family(network.version)} (got {show(str(addr))}); use an "
                f"{_family(network.version)} "
                f"address inside {network}",
            )
            return False
        if addr not in network:
            self.c.error(
                path,
                f"{what} is outside the {net_text} {network} (got {show(str(addr))}); use an "
                f"address inside {network}, from {network[0]} to {network[-1]}",
            )
            return False
        return True

    def routes(self, value: object, path: str) -> None:
        """``routes``: a list of {dst: CIDR, gw: optional IP of the same family}."""
        example = 'e.g. "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.2.0.0/16", "gw": "10.1.0.1"}]'
        if not isinstance(value, list):
            self.c.error(
                path,
                f"routes must be a list of route objects "
                f"(got {_show(value)}, {_a(value)}); {example}",
            )
            return
        for i, route in enumerate(value):
            where = _at(path, i)
            if not isinstance(route, dict):
                self.c.error(
                    where,
                    f"a route must be a JSON object (got {_show(route)}, {_a(route)}); {example}",
                )
                continue
            if "dst" not in route:
                self.c.error(
                    _at(where, "dst"), f'a route needs a destination (got no "dst" key); {example}'
                )
                dst = None
            else:
                dst = self.cidr_field(route, "dst", where, "route destination")
            gw = self.ip_field(route, "gw", where)
            if dst is not None and gw is not None and gw.version != dst.version:
                self.c.error(
                    _at(where, "gw"),
                    f"the gateway is {_family(gw.version)} but the destination {route['dst']} is "
                    f"{_family(dst.version)} (got {show(route['gw'])}); use a gateway of the "
                    "same family",
                )

    def host_local(self, ipam: dict[str, Any], path: str, caps: set[str]) -> None:
        """host-local: ``subnet`` (+ range keys) or ``ranges`` (a list of range sets)."""
        if "subnet" in ipam:
            self.host_local_range(ipam, path)
        else:
            for key in ("rangeStart", "rangeEnd", "gateway"):
                if key in ipam:
                    self.c.error(
                        _at(path, key),
                        f'{key} has no effect without "subnet" next to it '
                        f"(got {_show(ipam[key])}); "
                        f'add "subnet", or move it into a range inside "ranges"',
                    )
        if "ranges" in ipam:
            self.range_sets(ipam["ranges"], _at(path, "ranges"))
        elif "subnet" not in ipam and "ipRanges" not in caps:
            self.c.error(
                path,
                'host-local has no addresses to hand out (got neither "subnet" nor "ranges"); '
                'set "subnet": "10.1.0.0/24", or "ranges": [[{"subnet": "10.1.0.0/24"}]]',
            )

    def range_sets(self, value: object, path: str) -> None:
        """``ranges``: one address per range set, each set of one address family."""
        example = 'e.g. "ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "2001:db8::/64"}]]'
        if not isinstance(value, list):
            self.c.error(
                path,
                f"ranges must be a list of range sets (got {_show(value)}, {_a(value)}); {example}",
            )
            return
        for i, range_set in enumerate(value):
            where = _at(path, i)
            if not isinstance(range_set, list) or not range_set:
                self.c.error(
                    where,
                    "a range set must be a non-empty list of range objects "
                    f"(got {_show(range_set)}); "
                    f"{example}",
                )
                continue
            families: dict[int, str] = {}
            for j, item in enumerate(range_set):
                item_path = _at(where, j)
                if not isinstance(item, dict):
                    self.c.error(
                        item_path,
                        f"a range must be a JSON object (got {_show(item)}, {_a(item)}); {example}",
                    )
                    continue
                pool = self.host_local_range(item, item_path)
                if pool is not None:
                    families.setdefault(pool.network.version, item_path)
            if len(families) > 1:
                self.c.error(
                    where,
                    f"a range set mixes IPv4 and IPv6 (got IPv4 at {families[4]} and IPv6 at "
                    f"{families[6]}); one range set hands out one address: put each family in "
                    "its own range set",
                )

    def host_local_range(self, obj: dict[str, Any], path: str) -> _Pool | None:
        """One host-local range: subnet, rangeStart, rangeEnd, gateway (as ``Canonicalize``)."""
        start = self.ip_field(obj, "rangeStart", path)
        end = self.ip_field(obj, "rangeEnd", path)
        gateway = self.ip_field(obj, "gateway", path)
        if "subnet" not in obj:
            self.c.error(
                _at(path, "subnet"),
                f'a range needs a subnet (got no "subnet" key{self.case_hint(obj, "subnet")}); '
                'e.g. {"subnet": "10.1.0.0/24", "rangeStart": "10.1.0.10"}',
            )
            return None
        iface = self.cidr_field(obj, "subnet", path, "subnet")
        if iface is None:
            return None
        network = iface.network
        if iface.ip != network.network_address:
            self.c.warn(
                _at(path, "subnet"),
                f"the subnet has host bits set (got {show(obj['subnet'])}); host-local uses the "
                f"network {network}: write that instead",
            )
        if network.prefixlen > network.max_prefixlen - 2:
            self.c.error(
                _at(path, "subnet"),
                f"the subnet is too small to allocate from (got {show(obj['subnet'])}); use a "
                f"prefix of at most /{network.max_prefixlen - 2}",
            )
            return None
        where = f"subnet {network}"
        ok_start = self.inside(start, network, _at(path, "rangeStart"), "rangeStart", "subnet")
        ok_end = self.inside(end, network, _at(path, "rangeEnd"), "rangeEnd", "subnet")
        self.inside(gateway, network, _at(path, "gateway"), "gateway", "subnet")
        if ("rangeStart" in obj and not ok_start) or ("rangeEnd" in obj and not ok_end):
            return None
        first = start if start is not None else network.network_address + 1
        last = (
            end
            if end is not None
            else (
                network.broadcast_address - 1 if network.version == 4 else network.broadcast_address
            )
        )
        if int(first) > int(last):
            key = "rangeEnd" if end is not None else "rangeStart"
            self.c.error(
                _at(path, key),
                f"rangeStart comes after rangeEnd in the {where} (got rangeStart {first}, rangeEnd "
                f"{last}); rangeStart must be lower than or equal to rangeEnd",
            )
            return None
        pool = _Pool(path, len(self.pools), network, first, last)
        self.pools.append(pool)
        return pool

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

    def static(self, ipam: dict[str, Any], path: str) -> None:
        """static: ``addresses`` of {address: CIDR, gateway: optional IP}; ``dns``."""
        if "dns" in ipam:
            self.dns(ipam["dns"], _at(path, "dns"))
        if "addresses" not in ipam:
            return
        value = ipam["addresses"]
        where = _at(path, "addresses")
        example = 'e.g. "addresses": [{"address": "10.10.0.1/24", "gateway": "10.10.0.254"}]'
        if not isinstance(value, list):
            self.c.error(
                where,
                f"addresses must be a list of address objects "
                f"(got {_show(value)}, {_a(value)}); {example}",
            )
            return
        for i, entry in enumerate(value):
            entry_path = _at(where, i)
            if not isinstance(entry, dict):
                self.c.error(
                    entry_path,
                    f"an address entry must be a JSON object "
                    f"(got {_show(entry)}, {_a(entry)}); {example}",
                )
                continue
            address = self.static_address(entry, entry_path)
            gateway = self.ip_field(entry, "gateway", entry_path)
            if address is not None and gateway is not None and gateway.version != address.version:
                self.c.error(
                    _at(entry_path, "gateway"),
                    f"the gateway is {_family(gateway.version)} but the address "
                    f"{entry['address']} is {_family(address.version)} "
                    f"(got {show(entry['gateway'])}); use a gateway of the same family",
                )

    def static_address(
        self, entry: dict[str, Any], path: str
    ) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface | None:
        """static needs the prefix to configure the address; a bare IP is the usual slip."""
        where = _at(path, "address")
        if "address" not in entry:
            self.c.error(
                where,
                'an address entry needs an address (got no "address" key); '
                'e.g. {"address": "10.10.0.1/24"}',
            )
            return None
        value = entry["address"]
        if isinstance(value, str) and check_ip(value) is None:
            example = value + ("/24" if ":" not in value else "/64")
            self.c.error(
                where,
                f"a static address needs a prefix length (got {show(value)}); add a prefix "
                f"length, e.g. {example}",
            )
            return None
        return self.cidr_field(entry, "address", path, "static address")

    def whereabouts(self, ipam: dict[str, Any], path: str) -> None:
        """whereabouts: ``range`` (CIDR or "A-B/prefix") and/or ``ipRanges``."""
        if "range" in ipam:
            self.whereabouts_range(ipam, path)
        else:
            for key in ("range_start", "range_end", "exclude"):
                if key in ipam:
                    self.c.error(
                        _at(path, key),
                        f'{key} has no effect without "range" next to it (got {_show(ipam[key])}); '
                        'add "range", or move it into an entry of "ipRanges"',
                    )
        if "ipRanges" in ipam:
            value = ipam["ipRanges"]
            where = _at(path, "ipRanges")
            example = (
                'e.g. "ipRanges": [{"range": "192.168.2.0/24", "exclude": ["192.168.2.0/28"]}]'
            )
            if not isinstance(value, list):
                self.c.error(
                    where,
                    f"ipRanges must be a list of range objects "
                    f"(got {_show(value)}, {_a(value)}); {example}",
                )
            else:
                for i, entry in enumerate(value):
                    entry_path = _at(where, i)
                    if not isinstance(entry, dict):
                        self.c.error(
                            entry_path,
                            f"an ipRanges entry must be a JSON object "
                            f"(got {_show(entry)}, {_a(entry)}); {example}",
                        )
                    elif "range" not in entry:
                        self.c.error(
                            _at(entry_path, "range"),
                            f'an ipRanges entry needs a range (got no "range" key); {example}',
                        )
                    else:
                        self.whereabouts_range(entry, entry_path)
        elif "range" not in ipam:
            self.c.error(
                path,
                'whereabouts has no addresses to hand out (got neither "range" nor "ipRanges"); '
                'set "range": "192.168.2.0/24" (or "192.168.2.225-192.168.2.230/28")',
            )

    def whereabouts_range(self, obj: dict[str, Any], path: str) -> None:
        """``range`` with its ``range_start``, ``range_end`` and ``exclude``."""
        where = _at(path, "range")
        value = obj["range"]
        hint = (
            'use a CIDR such as "192.168.2.0/24", or "first-last/prefix" such as '
            '"192.168.2.225-192.168.2.230/28"'
        )
        if not isinstance(value, str):
            self.c.error(where, f"range must be a string (got {_show(value)}, {_a(value)}); {hint}")
            return
        if "-" in value:
            first_text, _, cidr_text = value.partition("-")
            first = None if check_ip(first_text) else _ip(first_text)
            last_iface = parse_cidr(cidr_text)
            if first is None or last_iface is None:
                part = "first address" if first is None else "last address with prefix"
                self.c.error(
                    where,
                    f"range is not valid: its {part} does not parse (got {show(value)}); {hint}",
                )
                return
            network = last_iface.network
            if not self.inside(
                first, network, where, "the first address of the range", "range network"
            ):
                return
            if int(first) > int(last_iface.ip):
                self.c.error(
                    where,
                    f"the range starts after it ends (got {show(value)}); write the lower "
                    "address first",
                )
                return
            for key in ("range_start", "range_end"):
                if key in obj:
                    self.c.warn(
                        _at(path, key),
                        f"{key} is ignored when range has the first-last/prefix form (got "
                        f"{_show(obj[key])}); whereabouts takes both ends from {show(value)}: "
                        "remove it",
                    )
        else:
            iface = self.cidr_field(obj, "range", path, "range")
            if iface is None:
                return
            network = iface.network
        text = f"range {network}"
        start = self.ip_field(obj, "range_start", path)
        end = self.ip_field(obj, "range_end", path)
        ok_start = self.inside(start, network, _at(path, "range_start"), "range_start", "range")
        ok_end = self.inside(end, network, _at(path, "range_end"), "range_end", "range")
        if ok_start and ok_end and start is not None and end is not None and int(start) > int(end):
            self.c.error(
                _at(path, "range_end"),
                f"range_end comes before range_start in the {text} (got range_start {start}, "
                f"range_end {end}); range_start must be lower than or equal to range_end",
            )
        if "exclude" in obj:
            self.excludes(obj["exclude"], _at(path, "exclude"), network)

    def excludes(self, value: object, path: str, network: IPNetwork) -> None:
        """An exclude outside the range excludes nothing: it is a typo for something else."""
        example = (
            f'e.g. "exclude": ["{network[0]}/{min(network.prefixlen + 4, network.max_prefixlen)}"]'
        )
        if not isinstance(value, list):
            self.c.error(
                path,
                f"exclude must be a list of CIDRs (got {_show(value)}, {_a(value)}); {example}",
            )
            return
        for i, item in enumerate(value):
            where = _at(path, i)
            problem = _check_value(lambda v: check_cidr(v, "excluded CIDR"), item)
            if problem is not None:
                self.c.error(where, problem)
                continue
            excluded = parse_cidr(str(item))
            if excluded is None:  # pragma: no cover - check_cidr accepted it
                continue
            inner = excluded.network
            same_family = inner.version == network.version
            if not same_family or not inner.subnet_of(network):  # type: ignore[arg-type]
                self.c.error(
                    where,
                    f"the excluded CIDR is outside the range {network} (got {show(item)}); "
                    f"exclude only addresses inside {network}",
                )


# --------------------------------------------------------------------------- plugin fields


def _check_macvlan(ch: _Checker, p: dict[str, Any], path: str) -> None:
    """macvlan ``modeFromString``: an unknown mode fails ADD; an empty one means bridge."""
    ch.choice(p, "mode", path, "macvlan mode", ("bridge", "private", "vepa", "passthru", "source"))
    ch.interface(p, "master", path)


def _check_ipvlan(ch: _Checker, p: dict[str, Any], path: str) -> None:
    """ipvlan ``modeFromString`` and ``flagFromString``."""
    ch.choice(p, "mode", path, "ipvlan mode", ("l2", "l3", "l3s"))
    ch.choice(p, "flag", path, "ipvlan flag", ("bridge", "private", "vepa"))
    ch.interface(p, "master", path)


def _check_bridge(ch: _Checker, p: dict[str, Any], path: str) -> None:
    """bridge ``loadNetConf``: the VLAN range, trunks, and its boolean switches."""
    ch.interface(p, "bridge", path)
    if "vlan" in p:
        ch.integer(p["vlan"], _at(path, "vlan"), "VLAN ID", 0, 4094, "0 means no VLAN tag")
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
        _check_vlan_trunk(ch, p["vlanTrunk"], _at(path, "vlanTrunk"))


def _check_vlan_trunk(ch: _Checker, value: object, path: str) -> None:
    """bridge ``vlanTrunk``: {id} or {minID, maxID}, VLANs 1-4094 (``collectVlanTrunk``)."""
    example = 'e.g. "vlanTrunk": [{"id": 42}, {"minID": 100, "maxID": 200}]'
    if not isinstance(value, list):
        ch.c.error(
            path,
            f"vlanTrunk must be a list of trunk objects "
            f"(got {_show(value)}, {_a(value)}); {example}",
        )
        return
    for i, item in enumerate(value):
        where = _at(path, i)
        if not isinstance(item, dict):
            ch.c.error(
                where,
                f"a trunk entry must be a JSON object (got {_show(item)}, {_a(item)}); {example}",
            )
            continue
        if not any(key in item for key in ("id", "minID", "maxID")):
            ch.c.error(
                where,
                f'a trunk entry needs "id", or "minID" and "maxID" (got {_show(item)}); {example}',
            )
            continue
        if "id" in item:
            ch.integer(item["id"], _at(where, "id"), "trunk VLAN ID", 1, 4094)
        if ("minID" in item) != ("maxID" in item):
            missing = "maxID" if "minID" in item else "minID"
            ch.c.error(
                _at(where, missing),
                f'minID and maxID go together (got {_show(item)}, without "{missing}"); '
                f"set both, {example}",
            )
            continue
        if "minID" in item:
            low = ch.integer(item["minID"], _at(where, "minID"), "trunk minID", 1, 4094)
            high = ch.integer(item["maxID"], _at(where, "maxID"), "trunk maxID", 1, 4094)
            if low is not None and high is not None and low > high:
                ch.c.error(
                    _at(where, "maxID"),
                    f"maxID is lower than minID (got minID {low}, maxID {high}); "
                    "minID must be lower "
                    "than or equal to maxID",
                )


def _check_host_device(ch: _Checker, p: dict[str, Any], path: str) -> None:
    """host-device moves ``device`` into the pod: it must be a name the kernel accepts."""
    ch.interface(p, "device", path)


def _check_sriov(ch: _Checker, p: dict[str, Any], path: str) -> None:
    """sriov-cni ``LoadConf``: vlan 0-4094, vlanQoS 0-7 (and only with a VLAN), link_state."""
    vlan = (
        ch.integer(p["vlan"], _at(path, "vlan"), "VLAN ID", 0, 4094, "0 means no VLAN tag")
        if "vlan" in p
        else 0
    )
    if "vlanQoS" in p:
        qos = ch.integer(p["vlanQoS"], _at(path, "vlanQoS"), "VLAN QoS", 0, 7)
        if qos and vlan == 0:
            ch.c.error(
                _at(path, "vlanQoS"),
                f"a VLAN QoS needs a VLAN (got vlanQoS {qos} with vlan {_show(p.get('vlan', 0))}); "
                "set a non-zero vlan, or vlanQoS 0",
            )
    ch.choice(p, "link_state", path, "link_state", ("auto", "enable", "disable"))


def _check_vlan(ch: _Checker, p: dict[str, Any], path: str) -> None:
    """vlan makes a sub-interface of ``master``; ``vlanId`` is checked with the others."""
    ch.interface(p, "master", path)


_TYPE_CHECKS: dict[str, Callable[[_Checker, dict[str, Any], str], None]] = {
    "macvlan": _check_macvlan,
    "ipvlan": _check_ipvlan,
    "bridge": _check_bridge,
    "host-device": _check_host_device,
    "sriov": _check_sriov,
    "vlan": _check_vlan,
}
