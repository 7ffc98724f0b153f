"""``cniVersion``: which versions exist, and which one a conf or a conflist runs with.

- A conf runs with its own ``cniVersion`` (libcni ``ConfListFromConf``, cni.md §10.3).
- A conflist runs with the highest of ``cniVersion`` and ``cniVersions`` (§2.4),
  leaving out entries newer than the newest version netplex speaks, as libcni does.
- A missing or empty ``cniVersion`` means 0.1.0 (CNI-46): allowed, but warned.
- Plugins accept only exact version strings, so ``"0.3"`` is an error with a guess.
- A plugin's own ``cniVersion`` inside a conflist is replaced by the list's.
"""

from __future__ import annotations

import re

from plugin.model.names import closest
from plugin.model.netconf.fields import a_type, at, case_hint, safe_show
from plugin.model.problems import Collector, show

# typing is not imported at run time (~4 ms per start); mypy takes this as True
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SUPPORTED_VERSIONS: tuple[str, ...] = (
    "0.1.0",
    "0.2.0",
    "0.3.0",
    "0.3.1",
    "0.4.0",
    "1.0.0",
    "1.1.0",
)
VERSION_RULE = "use one of " + ", ".join(SUPPORTED_VERSIONS) + ', e.g. "0.3.1" or "1.0.0"'

_NEWEST = (1, 1, 0)  # libcni version.Current(): cniVersions entries above it are dropped
_VERSION_PART_RE = re.compile(r"^[0-9]+$")


def parse_version(value: str) -> tuple[int, int, int] | None:
    """libcni ``ParseVersion``: up to 3 numeric dot-separated parts, missing parts are 0."""
    if value == "":
        return (0, 1, 0)
    parts = value.split(".")
    if len(parts) > 3 or any(_VERSION_PART_RE.match(p) is None for p in parts):
        return None
    numbers = [int(p) for p in parts] + [0] * (3 - len(parts))
    return (numbers[0], numbers[1], numbers[2])


def version_problem(value: object) -> str | None:
    """skel accepts only exact version strings, so "0.3" fails: suggest the one meant."""
    if not isinstance(value, str):
        return (
            f"cniVersion must be a string (got {safe_show(value)}, {a_type(value)}); {VERSION_RULE}"
        )
    if value == "" or value in SUPPORTED_VERSIONS:
        return None
    parsed = parse_version(value.strip().lstrip("vV"))
    same = [v for v in SUPPORTED_VERSIONS if parse_version(v) == parsed]
    guess = same[0] if same else closest(value, SUPPORTED_VERSIONS)
    hint = f"did you mean {show(guess)}? " if guess else ""
    return f"cniVersion is not a CNI spec version (got {safe_show(value)}); {hint}{VERSION_RULE}"


def _declared_version(c: Collector, root: str, doc: dict[str, Any]) -> tuple[bool, str | None]:
    """``cniVersion`` itself: (valid, value); ``""`` counts as absent, as in libcni."""
    if "cniVersion" not in doc:
        return True, None
    problem = version_problem(doc["cniVersion"])
    if problem is not None:
        c.error(at(root, "cniVersion"), problem)
        return False, None
    return True, doc["cniVersion"] or None


def _warn_legacy_version(c: Collector, root: str, doc: dict[str, Any]) -> None:
    """CNI-46: no version means 0.1.0, which most people do not mean."""
    got = '""' if "cniVersion" in doc else 'no "cniVersion" key'
    hint = case_hint(doc, "cniVersion")
    c.warn(
        at(root, "cniVersion"),
        f"cniVersion is not set (got {got}{hint}); CNI then treats the config as version "
        "0.1.0 (legacy: no CHECK, GC or STATUS, old result format): set it, e.g. "
        '"cniVersion": "0.3.1" or "1.0.0"',
    )


def conf_version(c: Collector, root: str, doc: dict[str, Any]) -> str | None:
    """A single conf runs with its own ``cniVersion`` (libcni ``ConfListFromConf``)."""
    ok, version = _declared_version(c, root, doc)
    if "cniVersions" in doc:
        c.warn(
            at(root, "cniVersions"),
            f"cniVersions is only read from a conflist (got {safe_show(doc['cniVersions'])}); a "
            'single plugin config uses its "cniVersion": put the plugin in "plugins" to '
            "use version negotiation",
        )
    if not ok:
        return None
    if version is None:
        _warn_legacy_version(c, root, doc)
        return "0.1.0"
    return version


def list_version(c: Collector, root: str, doc: dict[str, Any]) -> str | None:
    """§2.4: the highest of {cniVersion} ∪ cniVersions, ignoring versions above 1.1.0."""
    ok, declared = _declared_version(c, root, doc)
    chosen, chosen_path = declared, at(root, "cniVersion")
    if "cniVersions" in doc:
        listed = _version_list(c, doc["cniVersions"], at(root, "cniVersions"))
        if listed is None:
            ok = False
        else:
            if declared is not None:
                parsed = parse_version(declared)
                if parsed is not None:
                    listed.append((parsed, declared, chosen_path))
            if listed:
                best = max(listed, key=lambda t: (t[0], t[1] in SUPPORTED_VERSIONS))
                chosen, chosen_path = best[1], best[2]
    if not ok:
        return None
    if chosen is None:
        _warn_legacy_version(c, root, doc)
        return "0.1.0"
    if chosen not in SUPPORTED_VERSIONS:
        c.error(
            chosen_path,
            f"the version chosen from cniVersion and cniVersions is not a CNI spec version "
            f"(got {show(chosen)}); plugins accept only exact versions: {VERSION_RULE}",
        )
        return None
    return chosen


def _version_list(
    c: Collector, value: object, path: str
) -> list[tuple[tuple[int, int, int], str, str]] | None:
    """``cniVersions`` entries usable for selection, or ``None`` if the list is invalid."""
    if not isinstance(value, list):
        c.error(
            path,
            f"cniVersions must be a list of version strings (got {safe_show(value)}, "
            f'{a_type(value)}); e.g. "cniVersions": ["0.4.0", "1.0.0"]',
        )
        return None
    usable: list[tuple[tuple[int, int, int], str, str]] = []
    valid = True
    for i, entry in enumerate(value):
        where = at(path, i)
        parsed = parse_version(entry) if isinstance(entry, str) and entry else None
        if parsed is None:
            c.error(
                where,
                f"this is not a version (got {safe_show(entry)}); a version has at most 3 numeric "
                f"parts separated by dots: {VERSION_RULE}",
            )
            valid = False
        elif parsed > _NEWEST:
            c.warn(
                where,
                f"this version is newer than the newest CNI version netplex speaks, 1.1.0 (got "
                f"{show(entry)}); it is left out when the version is chosen, as libcni does",
            )
        else:
            usable.append((parsed, str(entry), where))
    return usable if valid else None


def plugin_version(c: Collector, p: dict[str, Any], path: str, version: str | None) -> None:
    """A plugin's own cniVersion in a conflist is overwritten with the list's."""
    if "cniVersion" not in p:
        return
    value = p["cniVersion"]
    where = at(path, "cniVersion")
    if not isinstance(value, str):
        c.error(
            where,
            f"cniVersion must be a string (got {safe_show(value)}, {a_type(value)}); it is "
            "replaced by the list's version anyway: remove it",
        )
    elif version is not None and value != version:
        c.warn(
            where,
            f"the plugin's cniVersion differs from the conflist's version {show(version)} "
            f"(got {show(value)}); the "
            "list's version is what the plugin receives: remove it or make them equal",
        )
