"""Field primitives: the checks that the document, plugin-type and IPAM rules are made of.

Each primitive checks one field the way the Go plugins read it (an integer is never a
string or a float, a boolean is never ``"true"``), reports into the collector with the
field path, the bad value and what is accepted, and returns what it parsed (if anything)
so the caller can go on with cross-field rules. The small helpers above the class build
paths (:func:`at`) and render values in messages (:func:`safe_show`, :func:`a_type`),
including values nested deeper than ``json.dumps`` can render.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from plugin.model.names import check_cidr, check_interface_name, check_ip, closest, parse_cidr
from plugin.model.problems import Collector, show, type_name

# typing is not imported at run time (~4 ms per start); mypy takes this as True
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_SIMPLE_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def safe_show(value: object) -> str:
    """:func:`problems.show` that survives values nested deeper than ``json.dumps`` allows."""
    try:
        return show(value)
    except RecursionError:
        return f"<a deeply nested {type_name(value)}>"


def run_check(check: Callable[[object], str | None], value: object) -> str | None:
    """Run a ``plugin.model.names`` check; it renders the value, which may be too deep to render."""
    try:
        return check(value)
    except RecursionError:
        return f"{safe_show(value)} is not valid here (a deeply nested {type_name(value)})"


def at(path: str, key: str | int) -> str:
    """``spec.config`` + ``ipam`` -> ``spec.config.ipam``; odd keys go in brackets."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _SIMPLE_KEY_RE.match(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{key}]"


def a_type(value: object) -> str:
    """ "a number", "an object": the JSON type of a value with its article."""
    name = type_name(value)
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"


def not_int_reason(value: object) -> str:
    """Why a JSON value is not an integer, in words that point at the fix."""
    if isinstance(value, bool):
        return f"{safe_show(value)}, a boolean"
    if isinstance(value, float):
        return f"{safe_show(value)}, not a whole number: Go plugins refuse a fraction or exponent"
    if isinstance(value, str):
        return f"{safe_show(value)}, a string: write the number without quotes"
    return f"{safe_show(value)}, {a_type(value)}"


def family(version: int) -> str:
    """``4`` -> ``"IPv4"``: messages name the family, not the number."""
    return "IPv4" if version == 4 else "IPv6"


def case_hint(obj: dict[str, Any], key: str) -> str:
    """``, but "Type"`` when a case variant of the missing key is present."""
    for other in obj:
        if isinstance(other, str) and other != key and other.lower() == key.lower():
            return f", but {show(other)}: keys are case-sensitive"
    return ""


class Fields:
    """The field primitives, each reporting into one collector (``c``)."""

    def __init__(self, collector: Collector) -> None:
        self.c = collector

    def integer(
        self, value: object, path: str, what: str, low: int, high: int, note: str = ""
    ) -> int | None:
        """An integer field as Go reads it: no booleans, no floats, no strings."""
        hint = f"use an integer from {low} to {high}" + (f" ({note})" if note else "")
        if isinstance(value, bool) or not isinstance(value, int):
            self.c.error(path, f"{what} must be an integer (got {not_int_reason(value)}); {hint}")
            return None
        if not low <= value <= high:
            self.c.error(path, f"{what} is out of range (got {value}); {hint}")
            return None
        return value

    def mtu(self, value: object, path: str) -> None:
        """68 is the IPv4 minimum the kernel accepts; 0 lets the plugin pick its default."""
        hint = "use an integer from 68 to 65535, or 0 for the default MTU"
        if isinstance(value, bool) or not isinstance(value, int):
            self.c.error(path, f"MTU must be an integer (got {not_int_reason(value)}); {hint}")
        elif value != 0 and not 68 <= value <= 65535:
            self.c.error(path, f"MTU is out of range (got {value}); {hint}")

    def boolean(self, obj: dict[str, Any], key: str, path: str) -> None:
        """Go refuses to unmarshal "true" (a string) into a bool, so the plugin would fail."""
        if key in obj and not isinstance(obj[key], bool):
            value = obj[key]
            self.c.error(
                at(path, key),
                f"{key} must be true or false (got {safe_show(value)}, {a_type(value)}); use a "
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
            at(path, key),
            f"{what} is not valid (got {safe_show(value)}); {hint}use one of {', '.join(choices)}",
        )

    def interface(self, obj: dict[str, Any], key: str, path: str) -> None:
        """A host interface name (master, bridge, device): the kernel's rules, CNI-40."""
        if key in obj:
            problem = run_check(check_interface_name, obj[key])
            if problem is not None:
                self.c.error(at(path, key), problem)

    def string_list(self, obj: dict[str, Any], key: str, path: str) -> list[str]:
        """A list of strings (Go ``[]string``); returns the strings for further checks."""
        if key not in obj:
            return []
        value = obj[key]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.c.error(
                at(path, key),
                f'{key} must be a list of strings (got {safe_show(value)}); e.g. ["example.com"]',
            )
            return []
        return [str(v) for v in value]

    def dns(self, value: object, path: str) -> None:
        """``dns``: the spec's shape; a nameserver that is not an IP is probably a typo."""
        if not isinstance(value, dict):
            self.c.error(
                path,
                f"dns must be a JSON object (got {safe_show(value)}, {a_type(value)}); e.g. "
                '"dns": {"nameservers": ["10.1.0.1"], "search": ["example.com"]}',
            )
            return
        for i, server in enumerate(self.string_list(value, "nameservers", path)):
            problem = check_ip(server, "nameserver")
            if problem is not None:
                self.c.warn(at(at(path, "nameservers"), i), problem)
        if "domain" in value and not isinstance(value["domain"], str):
            self.c.error(
                at(path, "domain"),
                f'domain must be a string (got {safe_show(value["domain"])}); e.g. "example.com"',
            )
        self.string_list(value, "search", path)
        self.string_list(value, "options", path)

    def ip_field(self, obj: dict[str, Any], key: str, path: str) -> IPAddress | None:
        """An optional bare address; reports a bad one and returns what it parsed."""
        if key not in obj:
            return None
        problem = run_check(lambda v: check_ip(v, key), obj[key])
        if problem is not None:
            self.c.error(at(path, key), problem)
            return None
        return ipaddress.ip_address(obj[key])

    def cidr_field(
        self, obj: dict[str, Any], key: str, path: str, what: str
    ) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface | None:
        """A present address/prefix; reports a bad one and returns what it parsed."""
        problem = run_check(lambda v: check_cidr(v, what), obj[key])
        if problem is not None:
            self.c.error(at(path, key), problem)
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
                f"{what} is {family(addr.version)} but the {net_text} {network} is "
                f"{family(network.version)} (got {show(str(addr))}); use an "
                f"{family(network.version)} "
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
                f"(got {safe_show(value)}, {a_type(value)}); {example}",
            )
            return
        for i, route in enumerate(value):
            where = at(path, i)
            if not isinstance(route, dict):
                self.c.error(
                    where,
                    f"a route must be a JSON object (got {safe_show(route)}, {a_type(route)}); "
                    f"{example}",
                )
                continue
            if "dst" not in route:
                self.c.error(
                    at(where, "dst"), f'a route needs a destination (got no "dst" key); {example}'
                )
                dst = None
            else:
                dst = self.cidr_field(route, "dst", where, "route destination")
            gw = self.ip_field(route, "gw", where)
            if dst is not None and gw is not None and gw.version != dst.version:
                self.c.error(
                    at(where, "gw"),
                    f"the gateway is {family(gw.version)} but the destination {route['dst']} is "
                    f"{family(dst.version)} (got {show(route['gw'])}); use a gateway of the "
                    "same family",
                )
