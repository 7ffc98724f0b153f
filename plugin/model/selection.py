"""The network-selection annotation: which extra networks a pod asks for, and how.

One parser serves both halves of netplex. The webhook calls :func:`parse_networks` to
reject a bad annotation at ``kubectl apply``; the CNI plugin calls the same function on
the node to decide what to attach. Because both run this code, a pod the webhook admits
gets exactly the interfaces the webhook saw, named the same way.

The annotation (``k8s.v1.cni.cncf.io/networks``) comes in two forms (NPWG-6):

- the comma ("short") form ``net-a, other-ns/net-b@net2`` — ``[namespace/]name[@interface]``
  items, as Multus and the NAD client accept them;
- the JSON form ``[{"name": "net-a", "ips": ["10.1.1.11/24"]}, ...]`` with every key of
  NPWG v1.3 (plus Multus' ``deviceID`` and legacy ``interfaceRequest``).

The form is chosen as Multus chooses it: JSON when the value contains ``[``, ``{`` or
``"``. :func:`parse_default_network` reads ``v1.multus-cni.io/default-network`` (one
network that replaces the cluster network) with the same rules.

Nothing here raises on bad input. Every parser returns a :class:`SelectionResult` with
the selections it could read and :class:`plugin.model.problems.Problem` values whose message
reads ``<what is wrong> (got <value>); <what is accepted>``. Only
:func:`format_networks` raises (``ValueError``), and only when its *caller* asks for
something impossible (the comma form of a selection that carries ``ips``).

An empty or whitespace-only networks annotation selects nothing, as in Multus (and in
both admission controllers): Helm charts render ``""`` when no extra network is asked
for. It comes with a warning that the annotation can be removed. An empty
default-network annotation stays an error: Multus fails such a pod at sandbox creation
(``pod annotation does not have "network" as key``).

netplex is stricter than Multus on purpose where Multus would fail later or silently:
empty items (``a,,b``), empty parts (``ns/``, ``net@``), invalid names and interfaces in
the JSON form, duplicate interface names and a second ``default-route`` are errors here,
reported with the field and the fix. JSON nested deeper than
:data:`plugin.model.limits.MAX_DEPTH` is refused before it is decoded.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import types
from collections.abc import Callable, Iterable, Mapping, Sequence

from plugin.model import limits, names
from plugin.model.problems import (
    ANNOTATION_PATH,
    Collector,
    Findings,
    Problem,
    printable,
    show,
    type_name,
)
from plugin.model.records import field, record

TYPE_CHECKING = False  # typing is not imported at run time (~4 ms per start); mypy takes this as True
if TYPE_CHECKING:
    from typing import Any, Literal

NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
DEFAULT_NETWORK_ANNOTATION = "v1.multus-cni.io/default-network"
CLUSTER_INTERFACE = "eth0"

# The pod's loopback exists in every network namespace, so asking for it always fails
# at ADD ("file exists"); it is refused whatever ``reserved_interfaces`` says.
LOOPBACK_INTERFACE = "lo"

PROTOCOLS = ("TCP", "UDP", "SCTP")
PORT_MIN, PORT_MAX = 1, 65535
# Multus reads bandwidth values into Go ``int`` (int64); a larger number fails there.
BANDWIDTH_MAX = 2**63 - 1

JSON_MARKERS = ("[", "{", '"')  # Multus: any of these means the JSON form
SHORT_FORM = "[namespace/]name[@interface]"
SHORT_EXAMPLE = '"net-a,other-ns/net-b@net2"'
JSON_EXAMPLE = '[{"name":"net-a"}]'

KNOWN_KEYS = (
    "name",
    "namespace",
    "interface",
    "ips",
    "mac",
    "default-route",
    "portMappings",
    "bandwidth",
    "cni-args",
    "infiniband-guid",
    "ipam-claim-reference",
    "deviceID",
    "interfaceRequest",
)
PORT_MAPPING_KEYS = ("hostPort", "containerPort", "protocol", "hostIP")
BANDWIDTH_KEYS = ("ingressRate", "ingressBurst", "egressRate", "egressBurst")

_SIMPLE_KEY_RE = re.compile(r"^[A-Za-z0-9_-]+$")
# Characters that cannot appear in a comma-form part: separators, and the markers that
# would make the whole value read as JSON.
_SHORT_UNSAFE = frozenset(',/@[{"')

_HINTS = {
    "name": 'use the name of a NetworkAttachmentDefinition, e.g. "macvlan-conf"',
    "namespace": (
        'use the namespace of the NetworkAttachmentDefinition, e.g. "other-ns", '
        "or leave it out for the pod's namespace"
    ),
    "interface": (
        f'use an interface name such as "net1" ({names.IFNAME_RULE}), '
        "or leave it out to get a generated one"
    ),
    "interfaceRequest": 'use "interface" instead, e.g. "interface": "net1"',
    "ips": 'use a list of addresses with optional prefix, e.g. ["10.1.1.11/24", "2001:db8::11/64"]',
    "mac": names.MAC_RULE,
    "default-route": 'use a list of gateway addresses, e.g. ["10.1.1.1"] (or [] for no gateway)',
    "portMappings": 'use a list such as [{"hostPort": 8080, "containerPort": 80, "protocol": "TCP"}]',
    "bandwidth": 'use an object such as {"ingressRate": 1000000, "ingressBurst": 1000000}',
    "cni-args": 'use an object, e.g. {"key": "value"}; it is merged into the plugin\'s args',
    "infiniband-guid": names.GUID_RULE,
    "ipam-claim-reference": "use the name of an IPAMClaim in the pod's namespace",
    "deviceID": 'use a device ID string, e.g. the PCI address "0000:03:00.1"',
}


@record(frozen=True, slots=True)
class PortMapping:
    """One ``portMappings`` entry (NPWG-17), forwarded as ``runtimeConfig.portMappings``."""

    host_port: int
    container_port: int
    protocol: str = "TCP"  # upper-cased: TCP, UDP or SCTP
    host_ip: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The CNI/NPWG spelling, as written in the annotation and in ``runtimeConfig``."""
        out: dict[str, Any] = {
            "hostPort": self.host_port,
            "containerPort": self.container_port,
            "protocol": self.protocol,
        }
        if self.host_ip is not None:
            out["hostIP"] = self.host_ip
        return out


@record(frozen=True, slots=True)
class Bandwidth:
    """``bandwidth`` (NPWG-18): rates in bit/s, bursts in bits; ``None`` = not set."""

    ingress_rate: int | None = None
    ingress_burst: int | None = None
    egress_rate: int | None = None
    egress_burst: int | None = None

    def to_json(self) -> dict[str, int]:
        """The CNI spelling (``ingressRate``, ...) of the keys that are set."""
        values = (self.ingress_rate, self.ingress_burst, self.egress_rate, self.egress_burst)
        return {key: v for key, v in zip(BANDWIDTH_KEYS, values, strict=True) if v is not None}


@record(frozen=True, slots=True)
class Selection:
    """One attachment the pod asks for: one element of the annotation, fully resolved.

    ``namespace`` and ``interface`` are always filled in (the pod's namespace, a
    generated ``netN``); ``namespace_given`` and ``interface_requested`` remember whether
    the user wrote them, so :meth:`to_element` writes back what the user wrote and no
    more. A selection that carries ``cni_args`` or list/object ``extra`` values is not
    hashable (those stay JSON-shaped); compare selections with ``==``.
    """

    name: str
    namespace: str
    interface: str
    interface_requested: bool
    namespace_given: bool
    index: int
    ips: tuple[str, ...] = ()
    mac: str | None = None
    default_route: tuple[str, ...] | None = None  # None = key absent; () = present, empty
    port_mappings: tuple[PortMapping, ...] = ()
    bandwidth: Bandwidth | None = None
    cni_args: Mapping[str, Any] | None = None
    infiniband_guid: str | None = None
    ipam_claim_reference: str | None = None
    device_id: str | None = None
    extra: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        # Callers that build selections by hand may pass a plain dict; keep the promise
        # that cni_args cannot be changed through the selection.
        if self.cni_args is not None and not isinstance(self.cni_args, types.MappingProxyType):
            frozen = types.MappingProxyType(copy.deepcopy(dict(self.cni_args)))
            object.__setattr__(self, "cni_args", frozen)

    @property
    def ref(self) -> str:
        """``namespace/name``: how the NAD is looked up and how network-status names it."""
        return f"{self.namespace}/{self.name}"

    def to_element(self) -> dict[str, Any]:
        """This selection as a JSON-form element, with only the keys the user set.

        The interface is written as ``interface`` even when the user wrote the legacy
        ``interfaceRequest``: the meaning is the same and only the new key is in the spec.
        """
        out: dict[str, Any] = {"name": self.name}
        if self.namespace_given:
            out["namespace"] = self.namespace
        if self.interface_requested:
            out["interface"] = self.interface
        if self.ips:
            out["ips"] = list(self.ips)
        if self.mac is not None:
            out["mac"] = self.mac
        if self.default_route is not None:
            out["default-route"] = list(self.default_route)
        if self.port_mappings:
            out["portMappings"] = [pm.to_json() for pm in self.port_mappings]
        if self.bandwidth is not None:
            out["bandwidth"] = self.bandwidth.to_json()
        if self.cni_args is not None:
            out["cni-args"] = copy.deepcopy(dict(self.cni_args))
        if self.infiniband_guid is not None:
            out["infiniband-guid"] = self.infiniband_guid
        if self.ipam_claim_reference is not None:
            out["ipam-claim-reference"] = self.ipam_claim_reference
        if self.device_id is not None:
            out["deviceID"] = self.device_id
        for key, value in self.extra:
            out[key] = copy.deepcopy(value)
        return out

    @property
    def short_form_ok(self) -> bool:
        """True when ``[namespace/]name[@interface]`` says everything this selection says.

        Besides using no key other than name/namespace/interface, each written part must
        survive the comma form: no ``,``, ``/``, ``@`` (separators), no ``[``, ``{``,
        ``"`` (they switch the parser to JSON) and no surrounding whitespace (stripped).
        A valid interface name may contain ``,`` or ``@``; such a selection needs JSON.
        """
        if (
            self.ips
            or self.mac is not None
            or self.default_route is not None
            or self.port_mappings
            or self.bandwidth is not None
            or self.cni_args is not None
            or self.infiniband_guid is not None
            or self.ipam_claim_reference is not None
            or self.device_id is not None
            or self.extra
        ):
            return False
        parts = [self.name]
        if self.namespace_given:
            parts.append(self.namespace)
        if self.interface_requested:
            parts.append(self.interface)
        return all(_short_safe(part) for part in parts)


CAPABILITY_OF_FIELD = {
    "ips": "ips",
    "mac": "mac",
    "portMappings": "portMappings",
    "bandwidth": "bandwidth",
    "infiniband-guid": "infinibandGUID",
}
"""Selection key -> the CNI capability a plugin must declare to receive it (NPWG-14..18):
libcni passes runtimeConfig only to plugins that declare the capability, so without one the
request would be silently dropped; the spec says the attachment fails."""


def requested_capabilities(sel: Selection) -> list[tuple[str, str]]:
    """``(selection key, capability)`` for each key this element sets that only a declared
    capability passes on to a plugin: the webhook and the plugin judge it the same way."""
    asked = {
        "ips": bool(sel.ips),
        "mac": sel.mac is not None,
        "portMappings": bool(sel.port_mappings),
        "bandwidth": sel.bandwidth is not None,
        "infiniband-guid": sel.infiniband_guid is not None,
    }
    return [(key, CAPABILITY_OF_FIELD[key]) for key, wanted in asked.items() if wanted]


@record(frozen=True, slots=True)
class SelectionResult:
    """What one annotation value selects, and what is wrong with it.

    ``selections`` holds the elements that parsed cleanly even when others did not (a
    best effort, useful for messages); callers act on them only when :attr:`ok`.
    """

    selections: tuple[Selection, ...]
    errors: tuple[Problem, ...]
    warnings: tuple[Problem, ...]
    form: Literal["absent", "short", "json"]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def findings(self) -> Findings:
        return Findings(self.errors, self.warnings)


# --------------------------------------------------------------------------- public API


def parse_networks(
    value: str | None,
    pod_namespace: str,
    *,
    annotation: str = NETWORKS_ANNOTATION,
    reserved_interfaces: Iterable[str] = (CLUSTER_INTERFACE,),
    path: str | None = None,
) -> SelectionResult:
    """Read a network-selection annotation value (``None`` when the pod has none).

    ``reserved_interfaces`` are names already taken in the pod before the annotation's
    attachments run (the cluster network's ``eth0``; a caller may add the interfaces of
    configured default networks). They are never generated and may not be requested.
    """
    where = path if path is not None else ANNOTATION_PATH.format(key=annotation)
    reserved = frozenset(reserved_interfaces)
    if isinstance(value, str) and len(value) <= CACHED_VALUE_MAX:
        return _parse_cached(value, pod_namespace, where, reserved)
    return _parse(value, pod_namespace, where, reserved, cluster=False)


# The webhook parses the same few annotation values over and over (every replica of a
# Deployment carries its template's): results are immutable, so short values are cached.
CACHED_VALUE_MAX = 4096


@functools.lru_cache(maxsize=1024)
def _parse_cached(value: str, namespace: str, path: str, reserved: frozenset[str]) -> SelectionResult:
    return _parse(value, namespace, path, reserved, cluster=False)


def parse_default_network(
    value: str | None, default_namespace: str, *, path: str | None = None
) -> SelectionResult:
    """Read ``v1.multus-cni.io/default-network``: exactly one network, on the cluster interface.

    ``default_namespace`` is where an unqualified name is looked up (Multus uses its own
    namespace here, not the pod's). The selection's ``interface`` is
    :data:`CLUSTER_INTERFACE` as a stand-in: the runtime's ``CNI_IFNAME`` is what the
    plugin really uses, and a requested interface is ignored with a warning.
    """
    where = path if path is not None else ANNOTATION_PATH.format(key=DEFAULT_NETWORK_ANNOTATION)
    return _parse(value, default_namespace, where, frozenset(), cluster=True)


def format_networks(selections: Sequence[Selection], form: Literal["short", "json"]) -> str:
    """Write selections back as an annotation value that parses to the same selections.

    Raises ``ValueError`` for a request that cannot be met: the ``"short"`` form of a
    selection that is not :attr:`Selection.short_form_ok`, or of no selection at all (an
    empty value only earns a warning from the parser; remove the annotation instead).
    """
    if form == "json":
        return json.dumps([s.to_element() for s in selections], separators=(",", ":"))
    if form != "short":
        raise ValueError(f"form must be 'short' or 'json', not {form!r}")
    if not selections:
        raise ValueError("no selections: the comma form cannot be empty; remove the annotation")
    items = []
    for position, s in enumerate(selections):
        if not s.short_form_ok:
            raise ValueError(
                f"selection {position} ({s.ref}) cannot be written in the comma form "
                f"{SHORT_FORM}: it uses keys or characters only the JSON form can carry"
            )
        item = f"{s.namespace}/{s.name}" if s.namespace_given else s.name
        items.append(f"{item}@{s.interface}" if s.interface_requested else item)
    return ",".join(items)


# --------------------------------------------------------------------------- the parser


@record(slots=True)
class _Draft:
    """One element while the annotation is being read; becomes a :class:`Selection`."""

    index: int
    name: str = ""
    namespace: str = ""
    namespace_given: bool = False
    interface: str | None = None  # what the user asked for, valid or not
    interface_valid: bool = False
    interface_path: str = ""
    ok: bool = True
    fields: dict[str, Any] = field(default_factory=dict)


def _parse(
    value: str | None, namespace: str, path: str, reserved: frozenset[str], *, cluster: bool
) -> SelectionResult:
    """Shared body of both parsers; ``cluster`` selects the default-network rules."""
    out = Collector()
    if value is None:
        return SelectionResult((), (), (), "absent")
    if not isinstance(value, str):  # untyped callers (a YAML value that is not a string)
        out.error(path, f"must be a string (got {_got(value)}); annotation values are strings")
        return _result([], out, "short")
    if value.strip() == "":
        if cluster:  # Multus fails the pod at ADD: "pod annotation does not have network as key"
            hint = 'remove the annotation, or name one network as "net-a", "other-ns/net-a" or [{"name":"net-a"}]'
            out.error(path, f"is empty (got {show(value)}); {hint}")
            return _result([], out, "short")
        # No extra networks, as in Multus: usually a template (Helm) that rendered nothing.
        out.warn(
            path,
            f"is empty (got {show(value)}), so it selects no extra network and the pod gets the "
            "cluster network only (plus any default networks); remove the annotation, or list "
            f"networks as {SHORT_EXAMPLE} or as JSON {JSON_EXAMPLE}",
        )
        return _result([], out, "absent")

    form: Literal["absent", "short", "json"]
    if any(marker in value for marker in JSON_MARKERS):
        form = "json"
        read = _read_json(value, namespace, path, out, cluster=cluster)
    else:
        form = "short"
        read = _read_short(value, namespace, path, out)
    if read is None:  # the value as a whole could not be read
        return _result([], out, form)
    drafts, count = read

    if cluster:
        if count != 1:
            _check_one_network(value, count, path, out)
        for draft in drafts:
            if draft.interface is not None:
                out.warn(
                    draft.interface_path,
                    f"is ignored (got {show(draft.interface)}); the cluster network always uses "
                    "the runtime's interface (CNI_IFNAME, usually eth0): remove the key",
                )
            draft.interface = CLUSTER_INTERFACE
            draft.interface_valid = False  # not requested: to_element leaves it out
    else:
        _name_interfaces(drafts, reserved, out)
    return _result(drafts, out, form)


def _check_one_network(value: str, count: int, path: str, out: Collector) -> None:
    """The default-network annotation names exactly one network (Multus panics on ``[]``)."""
    if count == 0:
        out.error(
            path,
            f"names no network (got {show(value)}); name exactly one network, "
            'e.g. "net-a" or [{"name":"net-a"}], or remove the annotation',
        )
    else:
        out.error(
            path,
            f"names {count} networks (got {show(value)}); the cluster network is exactly "
            f"one network: keep one here and select the others with {NETWORKS_ANNOTATION}",
        )


def _result(
    drafts: list[_Draft], out: Collector, form: Literal["absent", "short", "json"]
) -> SelectionResult:
    selections = tuple(_freeze(d) for d in drafts if d.ok)
    return SelectionResult(selections, tuple(out.errors), tuple(out.warnings), form)


def _freeze(draft: _Draft) -> Selection:
    assert draft.interface is not None  # every draft is named before freezing
    return Selection(
        name=draft.name,
        namespace=draft.namespace,
        interface=draft.interface,
        interface_requested=draft.interface_valid,
        namespace_given=draft.namespace_given,
        index=draft.index,
        **draft.fields,
    )


def _name_interfaces(drafts: list[_Draft], reserved: frozenset[str], out: Collector) -> None:
    """Check requested interface names, then generate ``net1``, ``net2``, ... for the rest.

    Generated names skip every name requested anywhere in the list and every reserved
    name, so they can never collide (NPWG-24). This differs from Multus on purpose:
    Multus numbers by position in its delegate list, so ``a@foo,b`` gives foo, net2
    there and foo, net1 here. The webhook and the plugin both use this function, so the
    names the webhook validated are the names the plugin creates.
    """
    requested = {d.interface for d in drafts if d.interface is not None}
    taken = requested | reserved | {LOOPBACK_INTERFACE}
    first_use: dict[str, int] = {}
    suggestion = show(_free_name(taken))
    for draft in drafts:
        name = draft.interface
        if name is None or not draft.interface_valid:
            continue
        problem: str | None = None
        if name == LOOPBACK_INTERFACE:
            problem = "is the pod's loopback interface, which always exists"
        elif name in reserved:
            problem = (
                "is already used by the cluster network (the runtime's CNI_IFNAME)"
                if name == CLUSTER_INTERFACE
                else "is reserved: the pod already has an interface with this name"
            )
        elif name in first_use:
            problem = f"is already requested by element [{first_use[name]}]"
        else:
            first_use[name] = draft.index
        if problem is not None:
            draft.ok = False
            fix = (
                "choose another name"
                if name not in first_use
                else "give each attachment its own interface"
            )
            out.error(
                draft.interface_path,
                f"{problem} (got {show(name)}); {fix}, e.g. {suggestion}, "
                "or leave the key out to get a generated one",
            )

    counter = 1
    for draft in drafts:
        if draft.interface is not None:
            continue
        while f"net{counter}" in taken:
            counter += 1
        draft.interface = f"net{counter}"
        counter += 1


def _free_name(taken: set[str] | frozenset[str]) -> str:
    n = 1
    while f"net{n}" in taken:
        n += 1
    return f"net{n}"


# ---- comma form


def _read_short(value: str, namespace: str, path: str, out: Collector) -> tuple[list[_Draft], int]:
    """``[namespace/]name[@interface]`` items separated by commas, trimmed (as Multus).

    Returns the drafts of the items that could be split, and how many items there are.
    """
    items = value.split(",")
    drafts = []
    for i, raw in enumerate(items):
        draft = _read_short_item(raw.strip(), i, len(items), value, namespace, f"{path}[{i}]", out)
        if draft is not None:
            drafts.append(draft)
    return drafts, len(items)


def _read_short_item(
    item: str, i: int, count: int, value: str, namespace: str, path: str, out: Collector
) -> _Draft | None:
    if item == "":
        if i == count - 1:
            where = "a trailing comma"
        elif i == 0:
            where = "a leading comma"
        else:
            where = "two commas in a row"
        out.error(
            path, f"is an empty item, from {where} (got {show(value)}); remove the extra comma"
        )
        return None
    form_hint = f'write each item as {SHORT_FORM}, e.g. "other-ns/net-b@net2"'
    if item.count("/") > 1:
        out.error(path, f"has more than one '/' (got {show(item)}); {form_hint}")
        return None
    ns_part: str | None = None
    rest = item
    if "/" in item:
        ns_part, rest = item.split("/")
        if "@" in ns_part:
            out.error(path, f"has '@' before '/' (got {show(item)}); {form_hint}")
            return None
    if rest.count("@") > 1:
        out.error(path, f"has more than one '@' (got {show(item)}); {form_hint}")
        return None
    name_part, at, if_part = rest.partition("@")

    draft = _Draft(index=i, namespace=namespace, interface_path=f"{path}.interface")
    before = len(out.errors)
    # Multus also trims each part; an empty part is an error here (Multus would fall back
    # to the pod's namespace, a generated interface, or fail at NAD lookup).
    if ns_part is not None:
        ns_part = ns_part.strip()
        if ns_part == "":
            out.error(
                f"{path}.namespace",
                f"is empty (got {show(item)}); write the namespace before '/', "
                "or leave out the '/' for the pod's namespace",
            )
        else:
            _check(out, f"{path}.namespace", names.check_dns1123_label(ns_part, what="namespace"))
            draft.namespace, draft.namespace_given = ns_part, True
    draft.name = name_part.strip()
    if draft.name == "":
        out.error(f"{path}.name", f"is empty (got {show(item)}); {form_hint}")
    else:
        _check(out, f"{path}.name", names.check_dns1123_label(draft.name, what="network name"))
    if at:
        interface = if_part.strip()
        if interface == "":
            out.error(
                f"{path}.interface",
                f"is empty (got {show(item)}); write an interface name after '@', "
                "or leave out the '@' to get a generated one",
            )
        else:
            draft.interface = interface
            problem = names.check_interface_name(interface)
            draft.interface_valid = problem is None
            _check(out, f"{path}.interface", problem)
    draft.ok = len(out.errors) == before
    return draft


# ---- JSON form


class _JsonObject(dict[str, "Any"]):
    """A decoded JSON object that remembers keys given more than once (last one wins)."""

    __slots__ = ("repeated",)

    def __init__(self) -> None:
        super().__init__()
        self.repeated: dict[str, list[Any]] = {}


class _NotJson(ValueError):
    """Raised from the decoder hooks for what Python's json accepts but JSON does not."""


def _object_pairs(pairs: list[tuple[str, Any]]) -> _JsonObject:
    obj = _JsonObject()
    for key, item in pairs:
        if key in obj:
            obj.repeated.setdefault(key, [obj[key]]).append(item)
        obj[key] = item
    return obj


def _refuse_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not a JSON value")


def _bounded_int(text: str) -> int:
    """``int()`` raises past 4,300 digits with advice for programmers; say it for users."""
    problem = limits.int_problem(text)
    if problem is not None:
        raise _NotJson(problem)
    return int(text)


def _finite_float(text: str) -> float:
    """Python reads ``1e400`` as infinity, which cannot be written back as JSON; Go refuses it."""
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise _NotJson(f"number {text[:40]} is out of range")
    return number


def _read_json(
    value: str, namespace: str, path: str, out: Collector, *, cluster: bool
) -> tuple[list[_Draft], int] | None:
    """A JSON list of selection elements; ``None`` when the value as a whole is unusable.

    Returns the drafts of the elements that are objects, and how many elements there are.
    """
    shape = f"list networks as JSON {JSON_EXAMPLE}" + (
        "" if cluster else f', or in the comma form {SHORT_EXAMPLE} (no "[", "{{" or \'"\')'
    )
    # Measured on the text: a repeated key can hide a deep value from the decoded object,
    # and the decoder, _plain and the repeated-key warning would all recurse through it.
    too_deep = limits.depth_problem(limits.text_depth(value))
    if too_deep is not None:
        out.error(path, f"{too_deep} (got {show(value)}); {shape}")
        return None
    try:
        data = json.loads(
            value,
            object_pairs_hook=_object_pairs,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
        )
    except json.JSONDecodeError as exc:
        why = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
        out.error(path, f"is not valid JSON: {why} (got {show(value)}); {shape}")
        return None
    except ValueError as exc:  # _NotJson
        out.error(path, f"is not valid JSON: {exc} (got {show(value)}); {shape}")
        return None
    if isinstance(data, dict):
        out.error(
            path,
            f"is a JSON object, not a list (got {show(value)}); wrap it in [ ]: "
            f"{show([_plain(data)], limit=120)}",
        )
        return None
    if not isinstance(data, list):
        out.error(path, f"is a JSON {type_name(data)}, not a list (got {show(value)}); {shape}")
        return None
    if not data and not cluster:
        out.warn(
            path,
            f"is an empty list (got {show(value)}); it selects no network: remove the annotation",
        )

    drafts: list[_Draft] = []
    route_owner: int | None = None
    for i, element in enumerate(data):
        where = f"{path}[{i}]"
        if not isinstance(element, dict):
            hint = (
                f"write each network as an object: {show({'name': element})}"
                if isinstance(element, str)
                else 'write each network as an object such as {"name": "net-a"}'
            )
            out.error(where, f"must be an object (got {_got(element)}); {hint}")
            continue
        before = len(out.errors)
        draft = _read_element(element, i, where, namespace, out)
        if "default-route" in element:
            if route_owner is None:
                route_owner = i
            else:
                out.error(
                    f"{where}.default-route",
                    f"is also set on element [{route_owner}] (got {show(element['default-route'])}); "
                    "only one network can carry the pod's default route: keep it on one element",
                )
        draft.ok = len(out.errors) == before
        drafts.append(draft)
    return drafts, len(data)


def _read_element(
    element: dict[str, Any], i: int, path: str, namespace: str, out: Collector
) -> _Draft:
    """One JSON element: every NPWG v1.3 key, Multus' extras, and unknown keys kept."""
    _warn_repeated(element, path, out)
    draft = _Draft(index=i, namespace=namespace, interface_path=f"{path}.interface")
    fields = draft.fields

    if "name" not in element:
        out.error(
            f"{path}.name",
            f'is required (got {show(_plain(element))}); {_HINTS["name"]}, e.g. {{"name": "macvlan-conf"}}',
        )
    else:
        name = element["name"]
        if _string(out, path, "name", name):
            draft.name = name
            if name == "":
                out.error(f"{path}.name", f'is required but empty (got ""); {_HINTS["name"]}')
            else:
                _check(out, f"{path}.name", names.check_dns1123_label(name, what="network name"))

    if "namespace" in element:
        ns = element["namespace"]
        if _string(out, path, "namespace", ns) and ns != "":  # "" = the pod's (NPWG-8)
            _check(out, f"{path}.namespace", names.check_dns1123_label(ns, what="namespace"))
            draft.namespace, draft.namespace_given = ns, True

    _read_interface(element, path, draft, out)

    if "ips" in element:
        ips = _string_list(out, path, "ips", element["ips"], names.check_ip_or_cidr, empty_ok=False)
        if ips is not None:
            fields["ips"] = ips
    if "mac" in element and _string(out, path, "mac", element["mac"]):
        _check(out, f"{path}.mac", names.check_mac(element["mac"]))
        fields["mac"] = element["mac"]
    if "default-route" in element:
        gateways = _string_list(
            out,
            path,
            "default-route",
            element["default-route"],
            lambda v: names.check_ip(v, what="gateway"),
            empty_ok=True,
        )
        if gateways is not None:
            fields["default_route"] = gateways
    if "portMappings" in element:
        mappings = _read_port_mappings(element["portMappings"], f"{path}.portMappings", out)
        if mappings is not None:
            fields["port_mappings"] = mappings
    if "bandwidth" in element:
        bandwidth = _read_bandwidth(element["bandwidth"], f"{path}.bandwidth", out)
        if bandwidth is not None:
            fields["bandwidth"] = bandwidth
    if "cni-args" in element:
        args = element["cni-args"]
        if isinstance(args, dict):
            fields["cni_args"] = types.MappingProxyType(_plain(args, f"{path}.cni-args", out))
        else:
            out.error(f"{path}.cni-args", _wrong_type(args, "an object", _HINTS["cni-args"]))
    if "infiniband-guid" in element and _string(
        out, path, "infiniband-guid", element["infiniband-guid"]
    ):
        _check(
            out, f"{path}.infiniband-guid", names.check_infiniband_guid(element["infiniband-guid"])
        )
        fields["infiniband_guid"] = element["infiniband-guid"]
    if "ipam-claim-reference" in element:
        claim = element["ipam-claim-reference"]
        if _string(out, path, "ipam-claim-reference", claim):
            if claim == "":
                out.error(
                    f"{path}.ipam-claim-reference",
                    f'is empty (got ""); {_HINTS["ipam-claim-reference"]}, or remove the key',
                )
            fields["ipam_claim_reference"] = claim
        # NPWG-21. The NAD client v1.7.7 dropped this check (TooManyIPSources); netplex
        # follows the spec: an IPAM plugin cannot both honour static ips and a claim.
        if "ips" in element:
            out.error(
                f"{path}.ipam-claim-reference",
                f"cannot be used together with ips (got {show(claim)} and ips "
                f"{show(element['ips'])}); let the IPAM plugin allocate through the claim, "
                "or give static ips, not both",
            )
    if "deviceID" in element and _string(out, path, "deviceID", element["deviceID"]):
        fields["device_id"] = element["deviceID"]

    extra = []
    for key, item in element.items():
        if key in KNOWN_KEYS:
            continue
        where = _key_path(path, key)
        if "." in key:
            out.warn(
                where,
                f"is an implementation extension (got {show(key)}: {show(item)}); netplex does not "
                "read it and passes it through unchanged: fine if another component uses it",
            )
        else:
            out.warn(
                where,
                f"is an unknown key and is ignored by netplex (got {show(key)}: {show(item)}); "
                f"{_did_you_mean(key, KNOWN_KEYS)}",
            )
        extra.append((key, _plain(item, where, out)))
    if extra:
        fields["extra"] = tuple(extra)
    return draft


def _read_interface(element: dict[str, Any], path: str, draft: _Draft, out: Collector) -> None:
    """``interface``, or Multus' legacy ``interfaceRequest`` when ``interface`` is absent or ""."""
    interface = element.get("interface")
    has_interface = "interface" in element and _string(out, path, "interface", interface)
    legacy = element.get("interfaceRequest")
    has_legacy = "interfaceRequest" in element and _string(out, path, "interfaceRequest", legacy)
    chosen, chosen_path = None, f"{path}.interface"
    if has_interface and interface != "":
        chosen = interface
        if has_legacy:
            if legacy != interface:
                out.warn(
                    f"{path}.interfaceRequest",
                    f"is ignored because interface is set (got {show(legacy)}, interface "
                    f"{show(interface)}); interfaceRequest is deprecated: remove it",
                )
            else:
                out.warn(
                    f"{path}.interfaceRequest",
                    f"is deprecated and repeats interface (got {show(legacy)}); remove it",
                )
    elif has_legacy and legacy != "":
        chosen, chosen_path = legacy, f"{path}.interfaceRequest"
        out.warn(
            chosen_path,
            f'is deprecated (got {show(legacy)}); use "interface" instead: '
            f"{show({'interface': legacy})}",
        )
    else:
        if has_legacy:
            out.warn(f"{path}.interfaceRequest", 'is deprecated and empty (got ""); remove it')
        if has_interface:
            out.error(
                f"{path}.interface",
                'is empty (got ""); use an interface name such as "net1", '
                "or leave the key out to get a generated one",
            )
    if chosen is not None:
        problem = names.check_interface_name(chosen)
        _check(out, chosen_path, problem)
        draft.interface, draft.interface_valid, draft.interface_path = (
            chosen,
            problem is None,
            chosen_path,
        )


def _read_port_mappings(value: Any, path: str, out: Collector) -> tuple[PortMapping, ...] | None:
    """NPWG-17: a non-empty list of {hostPort, containerPort[, protocol][, hostIP]}."""
    if not isinstance(value, list):
        out.error(path, _wrong_type(value, "a list of objects", _HINTS["portMappings"]))
        return None
    if not value:
        out.error(path, f"is an empty list (got []); {_HINTS['portMappings']}, or remove the key")
        return None
    mappings = []
    for k, entry in enumerate(value):
        where = f"{path}[{k}]"
        if not isinstance(entry, dict):
            out.error(where, _wrong_type(entry, "an object", _HINTS["portMappings"]))
            continue
        _warn_repeated(entry, where, out)
        before = len(out.errors)
        ports = []
        for key, role in (
            ("hostPort", "the port on the node"),
            ("containerPort", "the port in the pod"),
        ):
            if key not in entry:
                out.error(
                    f"{where}.{key}",
                    f"is required (got {show(_plain(entry))}); give {role}, 1-65535",
                )
                continue
            port = entry[key]
            if not _is_int(port):
                out.error(
                    f"{where}.{key}", _wrong_type(port, "an integer", f"give {role}, 1-65535")
                )
            elif not PORT_MIN <= port <= PORT_MAX:
                out.error(f"{where}.{key}", f"is out of range (got {port}); give {role}, 1-65535")
            else:
                ports.append(port)
        protocol = "TCP"
        if "protocol" in entry:
            given = entry["protocol"]
            accepted = 'use "TCP", "UDP" or "SCTP" (any case; default "TCP")'
            if not isinstance(given, str):
                out.error(f"{where}.protocol", _wrong_type(given, "a string", accepted))
            elif given.upper() not in PROTOCOLS:
                out.error(
                    f"{where}.protocol",
                    f"is not a supported protocol (got {show(given)}); {accepted}",
                )
            else:
                protocol = given.upper()
        host_ip: str | None = None
        if "hostIP" in entry:
            given = entry["hostIP"]
            if not isinstance(given, str):
                out.error(
                    f"{where}.hostIP",
                    _wrong_type(given, "a string", "use an IP address of the node"),
                )
            elif given == "":
                out.error(
                    f"{where}.hostIP",
                    'is empty (got ""); use an IP address of the node, or leave hostIP out '
                    "to listen on all of them",
                )
            else:
                _check(out, f"{where}.hostIP", names.check_ip(given, what="host IP"))
                host_ip = given
        for key in entry:
            if key not in PORT_MAPPING_KEYS:
                out.warn(
                    _key_path(where, key),
                    f"is an unknown key and is ignored (got {show(key)}: {show(_plain(entry[key]))}); "
                    f"{_did_you_mean(key, PORT_MAPPING_KEYS)}",
                )
        if len(out.errors) == before:
            mappings.append(PortMapping(ports[0], ports[1], protocol, host_ip))
    return tuple(mappings)


def _read_bandwidth(value: Any, path: str, out: Collector) -> Bandwidth | None:
    """NPWG-18: positive integer rates (bit/s) and bursts (bits); a burst needs its rate."""
    if not isinstance(value, dict):
        out.error(path, _wrong_type(value, "an object", _HINTS["bandwidth"]))
        return None
    _warn_repeated(value, path, out)
    before = len(out.errors)
    numbers: dict[str, int] = {}
    for key in BANDWIDTH_KEYS:
        if key not in value:
            continue
        unit = "bits per second, e.g. 1000000 for 1 Mbit/s" if key.endswith("Rate") else "bits"
        number = value[key]
        if not _is_int(number):
            out.error(f"{path}.{key}", _wrong_type(number, "an integer", f"give it in {unit}"))
        elif not 0 < number <= BANDWIDTH_MAX:
            out.error(
                f"{path}.{key}",
                f"must be a positive integer, at most {BANDWIDTH_MAX} (got {number}); give it in {unit}",
            )
        else:
            numbers[key] = number
    for direction in ("ingress", "egress"):
        burst, rate = f"{direction}Burst", f"{direction}Rate"
        if burst in value and rate not in value:
            out.error(
                f"{path}.{burst}",
                f"is set without {rate} (got {show(value[burst])}); set {rate} too: "
                "a burst only says how far traffic may exceed the rate",
            )
    for key in value:
        if key not in BANDWIDTH_KEYS:
            out.warn(
                _key_path(path, key),
                f"is an unknown key and is ignored (got {show(key)}: {show(_plain(value[key]))}); "
                f"{_did_you_mean(key, BANDWIDTH_KEYS)}",
            )
    if len(out.errors) != before:
        return None
    if not numbers:
        out.warn(
            path,
            f"sets no limit (got {show(_plain(value))}); set ingressRate or egressRate, or remove the key",
        )
    return Bandwidth(
        numbers.get("ingressRate"),
        numbers.get("ingressBurst"),
        numbers.get("egressRate"),
        numbers.get("egressBurst"),
    )


# ---- small helpers


def _check(out: Collector, path: str, problem: str | None) -> None:
    if problem is not None:
        out.error(path, problem)


def _got(value: Any) -> str:
    """``number 5``, ``string "x"``, ``null``: the JSON type and the value, for messages."""
    return "null" if value is None else f"{type_name(value)} {show(_plain(value))}"


def _wrong_type(value: Any, expected: str, hint: str) -> str:
    if value is None:  # Go would read null as "not set"; here it is a mistake to point out
        hint = f"remove the key, or {hint}"
    return f"must be {expected} (got {_got(value)}); {hint}"


def _string(out: Collector, path: str, key: str, value: Any) -> bool:
    """True when ``value`` is a string; otherwise report the key's wrong type."""
    if isinstance(value, str):
        return True
    out.error(_key_path(path, key), _wrong_type(value, "a string", _HINTS[key]))
    return False


def _string_list(
    out: Collector,
    path: str,
    key: str,
    value: Any,
    check: Callable[[str], str | None],
    *,
    empty_ok: bool,
) -> tuple[str, ...] | None:
    """A list of strings, each passed through ``check``; ``None`` when it is unusable."""
    where = _key_path(path, key)
    if not isinstance(value, list):
        hint = f"write it as a list: {show([value])}" if isinstance(value, str) else _HINTS[key]
        out.error(where, _wrong_type(value, "a list of strings", hint))
        return None
    if not value and not empty_ok:
        out.error(where, f"is an empty list (got []); {_HINTS[key]}, or remove the key")
        return None
    before = len(out.errors)
    for j, item in enumerate(value):
        if not isinstance(item, str):
            out.error(f"{where}[{j}]", _wrong_type(item, "a string", _HINTS[key]))
        else:
            _check(out, f"{where}[{j}]", check(item))
    return tuple(value) if len(out.errors) == before else None


def _is_int(value: Any) -> bool:
    """A JSON integer: ``true`` is not one, and neither is ``80.0`` (Go refuses both)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _short_safe(part: str) -> bool:
    return part != "" and part == part.strip() and not (_SHORT_UNSAFE & set(part))


def _key_path(base: str, key: str) -> str:
    """``base.key`` for plain keys, ``base["odd key"]`` when the key has other characters."""
    if _SIMPLE_KEY_RE.match(key):
        return f"{base}.{key}"
    return f"{base}[{printable(json.dumps(key, ensure_ascii=False))}]"


def _did_you_mean(key: str, known: tuple[str, ...]) -> str:
    by_lower = {k.lower(): k for k in known}
    if key.lower() in by_lower:
        meant = by_lower[key.lower()]
        return (
            f"did you mean {show(meant)}? keys are case-sensitive in netplex "
            f"(Multus' Go decoder would have read {show(key)} as {show(meant)})"
        )
    guess = names.closest(key, known)
    if guess is not None:
        return f"did you mean {show(guess)}?"
    return f"the keys netplex reads are {', '.join(known)}"


def _warn_repeated(obj: dict[str, Any], path: str, out: Collector) -> None:
    """Warn about keys given more than once; the last value wins, as in Go's decoder."""
    repeated = getattr(obj, "repeated", None)
    if not repeated:
        return
    for key, values in repeated.items():
        seen = ", then ".join(show(_plain(v), limit=40) for v in values)
        out.warn(
            _key_path(path, key),
            f"is given {len(values)} times in one object (got {seen}); the last one is used "
            "(as Kubernetes and Multus decode JSON): keep only one",
        )


def _plain(value: Any, path: str | None = None, out: Collector | None = None) -> Any:
    """A fresh, plain-``dict`` copy of decoded JSON, warning about repeated keys on the way."""
    if isinstance(value, dict):
        if path is not None and out is not None:
            _warn_repeated(value, path, out)
        return {
            k: _plain(v, None if path is None else _key_path(path, k), out)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            _plain(v, None if path is None else f"{path}[{j}]", out) for j, v in enumerate(value)
        ]
    return value

