"""Properties of plugin.model.selection: it never raises, and what it writes it reads back the same."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from plugin.model.selection import (
    BANDWIDTH_KEYS,
    KNOWN_KEYS,
    SelectionResult,
    format_networks,
    parse_default_network,
    parse_networks,
)

NS = "podns"

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=8,
)
small_json = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=4), inner, max_size=2)
    ),
    max_leaves=3,
)
# Elements made of the keys the parser knows, with values of any type: reaches the
# per-key type checks far more often than arbitrary objects do.
near_elements = st.dictionaries(st.sampled_from(KNOWN_KEYS), small_json, max_size=6)
short_alphabet = st.text(alphabet='abz09-/@, _.:\t[{"', max_size=30)


def assert_well_formed(result: SelectionResult) -> None:
    assert result.form in ("absent", "short", "json")
    assert all(p.path and p.message for p in result.errors + result.warnings)
    if not result.ok:
        return
    interfaces = [s.interface for s in result.selections]
    assert len(set(interfaces)) == len(interfaces)


@given(st.text() | short_alphabet)
def test_any_text_parses_without_raising(value: str) -> None:
    assert_well_formed(parse_networks(value, NS))
    assert_well_formed(parse_default_network(value, NS))


@given(json_values | st.lists(near_elements, max_size=4))
def test_any_json_value_parses_without_raising(data: Any) -> None:
    value = json.dumps(data)
    assert_well_formed(parse_networks(value, NS))
    assert_well_formed(parse_default_network(value, NS))


# ------------------------------------------------------------------ valid selections

# Cheap generators (from_regex is slow): labels start with a letter and end with a digit.
labels = st.sampled_from(["a", "0"]) | st.text(alphabet="az09-", max_size=8).map(lambda s: f"a{s}0")
interfaces = st.text(alphabet="aZ09_.,@-", min_size=1, max_size=15).filter(
    lambda name: name not in (".", "..")
)
addresses = st.ip_addresses().map(str)
cidrs = st.ip_addresses().flatmap(
    lambda ip: st.integers(0, ip.max_prefixlen).map(lambda n: f"{ip}/{n}")
)
macs = st.binary(min_size=6, max_size=6).filter(lambda b: not b[0] & 1 and any(b))
guids = st.binary(min_size=8, max_size=8)
ports = st.integers(1, 65535)
port_mappings = st.fixed_dictionaries(
    {"hostPort": ports, "containerPort": ports},
    optional={
        "protocol": st.sampled_from(["TCP", "udp", "Sctp"]),
        "hostIP": st.ip_addresses().map(str),
    },
)
positive = st.integers(1, 2**63 - 1)


@st.composite
def bandwidths(draw: st.DrawFn) -> dict[str, int]:
    chosen = draw(st.dictionaries(st.sampled_from(BANDWIDTH_KEYS), positive))
    for direction in ("ingress", "egress"):
        if f"{direction}Burst" in chosen:
            chosen.setdefault(f"{direction}Rate", draw(positive))
    return chosen


def hexed(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


@st.composite
def valid_elements(draw: st.DrawFn, short_only: bool = False) -> list[dict[str, Any]]:
    count = draw(st.integers(1, 4))
    names = draw(st.lists(labels, min_size=count, max_size=count))
    wanted = draw(st.lists(interfaces, min_size=count, max_size=count, unique=True))
    route_at = draw(st.none() | st.integers(0, count - 1))
    elements = []
    for i, name in enumerate(names):
        element: dict[str, Any] = {"name": name}
        if draw(st.booleans()):
            element["namespace"] = draw(labels | st.just(""))
        if draw(st.booleans()):
            element["interface"] = wanted[i]
        if not short_only:
            extras = draw(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "mac": macs.map(hexed),
                        "portMappings": st.lists(port_mappings, min_size=1, max_size=2),
                        "bandwidth": bandwidths(),
                        "cni-args": st.dictionaries(st.text(max_size=8), small_json, max_size=2),
                        "infiniband-guid": guids.map(hexed),
                        "deviceID": st.text(max_size=12),
                        "org.example.key": small_json,
                    },
                )
            )
            element.update(extras)
            source = draw(st.sampled_from(["none", "ips", "claim"]))
            if source == "ips":
                element["ips"] = draw(st.lists(addresses | cidrs, min_size=1, max_size=3))
            elif source == "claim":
                element["ipam-claim-reference"] = draw(st.text(min_size=1, max_size=12))
            if route_at == i:
                element["default-route"] = draw(st.lists(addresses, max_size=2))
        elements.append(element)
    return elements


@given(valid_elements())
def test_valid_json_selections_are_accepted_and_round_trip_through_json(
    elements: list[Any],
) -> None:
    first = parse_networks(json.dumps(elements), NS)
    assert first.ok, first.errors
    assert len(first.selections) == len(elements)
    again = parse_networks(format_networks(first.selections, "json"), NS)
    assert again.ok and again.selections == first.selections

    default = parse_default_network(json.dumps(elements[:1]), "kube-system")
    assert default.ok, default.errors
    default_again = parse_default_network(
        format_networks(default.selections, "json"), "kube-system"
    )
    assert default_again.selections == default.selections


@given(valid_elements(short_only=True))
def test_selections_that_fit_the_comma_form_round_trip_through_it(elements: list[Any]) -> None:
    first = parse_networks(json.dumps(elements), NS)
    assert first.ok, first.errors
    if not all(s.short_form_ok for s in first.selections):
        return  # an interface with ',' or '@' needs JSON (covered by the JSON property)
    short = format_networks(first.selections, "short")
    again = parse_networks(short, NS)
    assert again.form == "short"
    assert again.ok and again.selections == first.selections
