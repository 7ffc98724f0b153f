"""The document: a CNI config's text and structure, from the raw string to the checked conflist.

What it does, in order: decode the text as strictly as Go does (:func:`_decode`; duplicate
keys warned by path), decide conf or conflist, check the document-level keys, pick the
version (:mod:`.versions`), check each plugin object's generic CNI keys, hand its fields to
its type's rules (:mod:`.plugins`) and its ``ipam`` to the IPAM kinds (:mod:`.ipam`), and,
when nothing is wrong, build the normalized conflist the plugin executes.

The rules and where they come from (spec/cni.md, spec/npwg.md):

- conf vs conflist is decided by the presence of the ``plugins`` key, never by "try a
  list, then a conf" (cni.md trap 6: libcni >= 1.2 parses a conf as a list of zero
  plugins). A conf is up-converted the way libcni's ``ConfListFromConf`` does (§10.3).
- ``name``: CNI-1; injected from the NAD name when missing or ``""`` (NPWG-5).
- ``type`` / ``ipam.type``: CNI-2, and a bare file name, so that a NAD cannot pick a
  binary outside the CNI bin directories (``"../../bin/sh"``).
- ``plugins``: CNI-3; ``loadOnlyInlinedPlugins``: CNI-4; unknown keys kept: CNI-5;
  the boolean flags accept ``"true"``/``"false"`` strings: CNI-45; keys starting with
  ``cni.dev/`` are reserved; a key that differs from a spec key only in case is warned.
"""

from __future__ import annotations

import json

from plugin.model import limits
from plugin.model.names import CNI_NAME_RULE, TYPE_RULE, check_cni_name, plugin_type_problem
from plugin.model.netconf import versions
from plugin.model.netconf.fields import a_type, at, case_hint, run_check, safe_show
from plugin.model.netconf.ipam import IpamFields, check_ipam
from plugin.model.netconf.plugins import KNOWN_TYPES_BY_LOWER, PLUGIN_CHECKS
from plugin.model.problems import Collector, Findings, Problem, show, type_name
from plugin.model.records import record

# typing is not imported at run time (~4 ms per start); mypy takes this as True
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

    Kind = Literal["empty", "conf", "conflist", "invalid"]

_JSON_WS = " \t\n\r"
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


@record(frozen=True, slots=True)
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
            f"the CNI config must be a string holding JSON (got {safe_show(config)}, "
            f"{a_type(config)}); write the config as a JSON string, e.g. {_CONF_EXAMPLE}",
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


def _parse_int(text: str) -> int:
    problem = limits.int_problem(text)  # int() raises past 4,300 digits, with advice for programmers
    if problem is not None:
        raise ValueError(problem)
    return int(text)


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
    too_deep = limits.depth_problem(limits.text_depth(text))  # a repeated key can hide a deep value
    if too_deep is not None:
        collector.error(path, f"the CNI config {too_deep} (got {safe_show(text)}); {hint}")
        return False, None
    try:
        doc = json.loads(
            text,
            object_pairs_hook=pairs_hook,
            parse_constant=_reject_constant,
            parse_float=_parse_float,
            parse_int=_parse_int,
        )
    except json.JSONDecodeError as exc:
        start = max(exc.pos - 20, 0)
        near = text[start : exc.pos + 20]
        collector.error(
            path,
            f"the CNI config is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno} "
            f"(got {safe_show(near)} around there); {hint}",
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
            path, f"the CNI config is not valid JSON: {exc} (got {safe_show(text)}); {hint}"
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
                    at(where, key),
                    f"duplicate key {show(key)} (got it {count} times in one object); only the "
                    "last value is used, as by Go's JSON decoder: remove the others",
                )
            stack.extend((item, at(where, key)) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((item, at(where, i)) for i, item in enumerate(value))


# --------------------------------------------------------------------------- the checks


def _check_document(
    doc: object, nad_name: str | None, path: str, collector: Collector
) -> NetConfResult:
    """Check a decoded config and build the normalized conflist when it has no errors."""
    if not isinstance(doc, dict):
        collector.error(
            path,
            f"the CNI config is a JSON {type_name(doc)}, not an object (got {safe_show(doc)}); "
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


class _Checker:
    """Walks one config; each method checks one part and reports into the collector.

    ``fields`` holds the field primitives that the plugin-type and IPAM rules use, and
    the host-local ranges seen so far, checked for overlaps once the walk is done.
    """

    def __init__(self, collector: Collector, root: str) -> None:
        self.c = collector
        self.root = root
        self.capabilities: set[str] = set()
        self.fields = IpamFields(collector)

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
                at(root, "loadOnlyInlinedPlugins"),
                f'loadOnlyInlinedPlugins is true but there is no "plugins" list (got '
                f"{safe_show(doc['loadOnlyInlinedPlugins'])}); CNI rejects this combination: put "
                'the plugin in "plugins" or remove the flag',
            )
        name = self.name(doc, nad_name)
        if is_list:
            version = versions.list_version(self.c, root, doc)
            self.plugin_list(doc, version)
        else:
            version = versions.conf_version(self.c, root, doc)
            for key in ("disableCheck", "disableGC"):
                if flags.get(key) is True:
                    self.c.warn(
                        at(root, key),
                        f"{key} only applies to a conflist (got {safe_show(doc[key])}); a single "
                        "plugin config is up-converted without it, so it has no effect: "
                        'put the plugin in "plugins" to use it',
                    )
            self.plugin(doc, root, version, in_list=False)
        self.fields.check_overlaps()
        return name, version

    def keys(self, obj: dict[str, Any], path: str, known: frozenset[str]) -> None:
        """Reserved ``cni.dev/`` keys, and keys that differ from a spec key only in case."""
        lower = {k.lower(): k for k in known}
        for key in obj:
            if not isinstance(key, str):
                continue
            if key.startswith("cni.dev/"):
                self.c.error(
                    at(path, key),
                    f'keys starting with "cni.dev/" are reserved for the CNI protocol (got '
                    f"{show(key)}); the runtime sets them, a stored config must not: remove it",
                )
            elif key not in known and key.lower() in lower:
                self.c.warn(
                    at(path, key),
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
            at(path, key),
            f"{key} must be true or false (got {safe_show(value)}, {a_type(value)}); use a JSON "
            'boolean, or the string "true" or "false"',
        )
        return None

    def name(self, doc: dict[str, Any], nad_name: str | None) -> str | None:
        """CNI-1 after NPWG-5 injection; a name other than the NAD's is allowed but warned."""
        path = at(self.root, "name")
        value = doc.get("name", "")
        if value != "":
            problem = run_check(check_cni_name, value)
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
        problem = run_check(lambda v: check_cni_name(v, "NAD name"), nad_name)
        if problem is not None:
            self.c.error(
                path,
                f"the config has no name and the NetworkAttachmentDefinition name cannot be "
                f"used instead: {problem}",
            )
            return None
        return nad_name

    # ---- plugins

    def plugin_list(self, doc: dict[str, Any], version: str | None) -> None:
        """CNI-3: ``plugins`` is a non-empty list of objects."""
        path = at(self.root, "plugins")
        plugins = doc["plugins"]
        example = '"plugins": [{"type": "bridge", "bridge": "br0"}]'
        if not isinstance(plugins, list):
            self.c.error(
                path,
                f"plugins must be a list of plugin objects (got {safe_show(plugins)}, "
                f"{a_type(plugins)}); e.g. {example}",
            )
        elif not plugins:
            self.c.error(
                path,
                f"plugins is empty (got []); a conflist needs at least one plugin object, "
                f"e.g. {example}",
            )
        else:
            for i, plugin in enumerate(plugins):
                where = at(path, i)
                if isinstance(plugin, dict):
                    self.plugin(plugin, where, version, in_list=True)
                else:
                    self.c.error(
                        where,
                        f"a plugin must be a JSON object (got {safe_show(plugin)}, "
                        f'{a_type(plugin)}); e.g. {{"type": "bridge", "bridge": "br0"}}',
                    )
        for key in ("type", "ipam"):
            if key in doc:
                self.c.warn(
                    at(self.root, key),
                    f"{key} is ignored at the top of a conflist (got {safe_show(doc[key])}); "
                    f'each entry of "plugins" has its own {key}: move it there or remove it',
                )

    def plugin(self, p: dict[str, Any], path: str, version: str | None, *, in_list: bool) -> None:
        """One plugin object: the generic CNI keys, then its type's and its IPAM's fields."""
        if in_list:
            self.keys(p, path, _PLUGIN_KEYS)
        ptype = self.plugin_type(p, path)
        caps = (
            self.plugin_capabilities(p["capabilities"], at(path, "capabilities"))
            if "capabilities" in p
            else set()
        )
        if "runtimeConfig" in p:
            self.c.warn(
                at(path, "runtimeConfig"),
                f"runtimeConfig is reserved: the runtime generates it from capabilities (got "
                f"{safe_show(p['runtimeConfig'])}); a stored config should not set it: remove it "
                'and enable the capability in "capabilities" instead',
            )
        if "args" in p and not isinstance(p["args"], dict):
            self.c.error(
                at(path, "args"),
                f"args must be a JSON object (got {safe_show(p['args'])}, {a_type(p['args'])}); "
                'e.g. "args": {"cni": {"labels": [{"key": "app", "value": "web"}]}}',
            )
        if in_list:
            versions.plugin_version(self.c, p, path, version)
            if "name" in p and not isinstance(p["name"], str):
                self.c.error(
                    at(path, "name"),
                    f"a plugin's name must be a string (got {safe_show(p['name'])}, "
                    f"{a_type(p['name'])}); it is replaced by the list's name anyway: remove it",
                )
        if "dns" in p:
            self.fields.dns(p["dns"], at(path, "dns"))
        if "mtu" in p:
            self.fields.mtu(p["mtu"], at(path, "mtu"))
        if ptype is not None:
            check = PLUGIN_CHECKS.get(ptype)
            if check is not None:
                check(self.fields, p, path)
        if "ipam" in p:
            check_ipam(self.fields, p["ipam"], at(path, "ipam"), caps)

    def plugin_type(self, p: dict[str, Any], path: str) -> str | None:
        """CNI-2 and the bare-file-name rule for ``type``."""
        where = at(path, "type")
        if "type" not in p:
            self.c.error(
                where,
                f'plugin type is missing (got no "type" key{case_hint(p, "type")}); {TYPE_RULE}',
            )
            return None
        value = p["type"]
        problem = plugin_type_problem(value)
        if problem is not None:
            self.c.error(where, problem)
            return None
        standard = KNOWN_TYPES_BY_LOWER.get(value.lower())
        if standard is not None and standard != value:
            self.c.warn(
                where,
                f"plugin type differs in case from the standard plugin {show(standard)} (got "
                f"{show(value)}); binary file names are case-sensitive, so it is probably not "
                "found",
            )
        return str(value)

    def plugin_capabilities(self, value: object, path: str) -> set[str]:
        """``capabilities`` maps capability names to booleans; the true ones are collected."""
        enabled: set[str] = set()
        if not isinstance(value, dict):
            self.c.error(
                path,
                f"capabilities must be a JSON object of booleans (got {safe_show(value)}, "
                f'{a_type(value)}); e.g. "capabilities": {{"ips": true, "mac": true}}',
            )
            return enabled
        for key, flag in value.items():
            if not isinstance(flag, bool):
                self.c.error(
                    at(path, str(key)),
                    f"a capability must be true or false (got {safe_show(flag)}, {a_type(flag)}); "
                    "use a JSON boolean",
                )
            elif flag:
                enabled.add(str(key))
        self.capabilities |= enabled
        return enabled
