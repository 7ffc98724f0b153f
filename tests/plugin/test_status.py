"""The network-status annotation: its model, JSON I/O, NPWG rules and how an entry is
sourced from a CNI result (npwg.md §4; NPWG-22, 25..29, 45, 46; multus.md §6.6)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugin.cni import status
from plugin.cni.status import NetworkStatus, StatusError

AT = "metadata.annotations[k8s.v1.cni.cncf.io/network-status]"
NETNS = "/var/run/netns/cni-1234"


def problems_of(fn: Any, *args: Any, **kwargs: Any) -> list[str]:
    with pytest.raises(StatusError) as info:
        fn(*args, **kwargs)
    assert str(info.value) == "\n".join(str(p) for p in info.value.problems)
    return [str(p) for p in info.value.problems]


# ------------------------------------------------------------------------- to_dict


def test_minimal_entry_has_name_and_default() -> None:
    assert NetworkStatus(name="ns/net1").to_dict() == {"name": "ns/net1", "default": False}


def test_full_entry_writes_every_key_in_order() -> None:
    entry = NetworkStatus(
        name="kube-system/cluster",
        default=True,
        interface="eth0",
        ips=("10.244.1.2/24", "fd00::2/64"),
        mac="02:11:22:33:44:54",
        mtu=1450,
        dns={"nameservers": ["10.96.0.10"]},
        gateway=("10.244.1.1",),
        default_route=("10.244.1.1",),
        device_info={"type": "pci", "version": "1.1.0", "pci": {"pci-address": "0000:18:02.5"}},
        extra=(("example.com/owner", "netplex"),),
    )
    out = entry.to_dict()
    assert list(out) == [
        "name",
        "interface",
        "ips",
        "mac",
        "mtu",
        "default",
        "dns",
        "gateway",
        "default-route",
        "device-info",
        "example.com/owner",
    ]
    assert out["ips"] == ["10.244.1.2/24", "fd00::2/64"]
    assert out["default-route"] == ["10.244.1.1"]


def test_empty_optional_values_are_left_out() -> None:
    entry = NetworkStatus(name="a/b", interface="", mac="", dns={}, device_info={})
    assert entry.to_dict() == {"name": "a/b", "default": False}


def test_an_extra_key_never_overrides_a_modelled_key() -> None:
    entry = NetworkStatus(name="a/b", interface="net1", extra=(("interface", "eth9"),))
    assert entry.to_dict()["interface"] == "net1"


def test_to_dict_gives_copies_the_caller_may_change() -> None:
    dns = {"nameservers": ["10.0.0.1"]}
    entry = NetworkStatus(name="a/b", dns=dns)
    entry.to_dict()["dns"]["nameservers"].append("changed")
    assert dns == {"nameservers": ["10.0.0.1"]}


# ----------------------------------------------------------------------- from_dict


def test_what_multus_writes_can_be_read() -> None:
    multus = {
        "name": "clusternet",
        "interface": "eth0",
        "ips": ["10.244.1.2"],
        "mac": "..",
        "default": True,
        "dns": {},
        "gateway": ["<nil>"],
    }
    entry = NetworkStatus.from_dict(multus)
    assert entry == NetworkStatus(
        name="clusternet",
        default=True,
        interface="eth0",
        ips=("10.244.1.2",),
        mac="..",
        gateway=("<nil>",),
    )


def test_a_missing_default_reads_as_false_because_multus_omits_it() -> None:
    assert NetworkStatus.from_dict({"name": "test/mvlan-a"}).default is False


def test_null_and_empty_values_read_as_absent() -> None:
    entry = NetworkStatus.from_dict(
        {
            "name": "a/b",
            "interface": None,
            "mac": "",
            "ips": None,
            "mtu": None,
            "device-info": {},
            "dns": None,
            "default": None,
        }
    )
    assert entry == NetworkStatus(name="a/b")


def test_unknown_keys_are_kept_verbatim_in_order() -> None:
    entry = NetworkStatus.from_dict(
        {"name": "a/b", "zeta.io/x": [1, {"y": None}], "infiniband-guid": "00:11:22:33:44:55:66:77"}
    )
    assert entry.extra == (
        ("zeta.io/x", [1, {"y": None}]),
        ("infiniband-guid", "00:11:22:33:44:55:66:77"),
    )
    assert list(entry.to_dict())[-2:] == ["zeta.io/x", "infiniband-guid"]


def test_from_dict_does_not_share_state_with_its_input() -> None:
    data: dict[str, Any] = {"name": "a/b", "dns": {"search": ["x"]}, "x.io/y": {"z": 1}}
    entry = NetworkStatus.from_dict(data)
    data["dns"]["search"].append("changed")
    data["x.io/y"]["z"] = 2
    assert entry.dns == {"search": ["x"]}
    assert entry.extra == (("x.io/y", {"z": 1}),)


def test_an_entry_that_is_not_an_object_is_refused() -> None:
    assert problems_of(NetworkStatus.from_dict, ["a"], where="s[0]") == [
        's[0]: is a list, not an object (got ["a"]); each entry is a map such as '
        '{"name": "ns/net1", "default": false}'
    ]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (
            {},
            "name: is required and must be a non-empty string (missing); use the network's namespace/name",
        ),
        (
            {"name": ""},
            'name: is required and must be a non-empty string (got ""); use the network\'s namespace/name',
        ),
        ({"name": "a", "default": "true"}, 'default: must be true or false (got "true")'),
        ({"name": "a", "mtu": True}, "mtu: must be a non-negative integer (got true); e.g. 1500"),
        ({"name": "a", "mtu": -1}, "mtu: must be a non-negative integer (got -1); e.g. 1500"),
        (
            {"name": "a", "mtu": 1500.0},
            "mtu: must be a non-negative integer (got 1500.0); e.g. 1500",
        ),
        (
            {"name": "a", "mtu": 2**32},
            "mtu: must be a non-negative integer (got 4294967296); e.g. 1500",
        ),
        ({"name": "a", "interface": 1}, "interface: must be a string (got number 1)"),
        ({"name": "a", "mac": ["x"]}, 'mac: must be a string (got list ["x"])'),
        (
            {"name": "a", "ips": "10.0.0.1"},
            'ips: must be a list of strings (got string "10.0.0.1")',
        ),
        ({"name": "a", "gateway": [None]}, "gateway[0]: must be a string (got null null)"),
        ({"name": "a", "default-route": [1]}, "default-route[0]: must be a string (got number 1)"),
        ({"name": "a", "dns": []}, "dns: must be an object (got list [])"),
        (
            {"name": "a", "dns": {"nameservers": "x"}},
            'dns.nameservers: must be a list of strings (got string "x")',
        ),
        ({"name": "a", "dns": {"search": [1]}}, "dns.search[0]: must be a string (got number 1)"),
        ({"name": "a", "dns": {"domain": 1}}, "dns.domain: must be a string (got number 1)"),
        ({"name": "a", "device-info": "pci"}, 'device-info: must be an object (got string "pci")'),
        ({"name": "a", "x.io/y": {1: 2}}, "x.io/y: has a key 1 that is not a string"),
        (
            {"name": "a", "x.io/y": float("nan")},
            "x.io/y: contains nan, which JSON cannot represent",
        ),
        (
            {"name": "a", "x.io/y": {"s": {1, 2}}},
            "x.io/y: contains a set, which JSON cannot represent",
        ),
    ],
)
def test_a_bad_value_is_named_by_its_key(data: dict[str, Any], problem: str) -> None:
    assert problems_of(NetworkStatus.from_dict, data) == [problem]


def test_a_value_nested_too_deeply_is_refused() -> None:
    deep: Any = "leaf"
    for _ in range(40):
        deep = [deep]
    assert problems_of(NetworkStatus.from_dict, {"name": "a", "device-info": {"x": deep}}) == [
        "device-info: is nested more than 32 levels deep"
    ]


def test_a_key_that_is_not_a_string_is_refused() -> None:
    assert problems_of(NetworkStatus.from_dict, {"name": "a", 3: "x"}, where="e") == [
        "e: has a key 3 that is not a string"
    ]


def test_every_problem_of_an_entry_is_reported_with_the_where_prefix() -> None:
    assert problems_of(NetworkStatus.from_dict, {"mac": 1, "mtu": "x"}, where=f"{AT}[2]") == [
        f"{AT}[2].name: is required and must be a non-empty string (missing); "
        "use the network's namespace/name",
        f'{AT}[2].mtu: must be a non-negative integer (got "x"); e.g. 1500',
        f"{AT}[2].mac: must be a string (got number 1)",
    ]


# ------------------------------------------------------------------- loads / dumps


def test_dumps_writes_a_compact_list_that_loads_reads_back() -> None:
    entries = (
        NetworkStatus(
            name="kube-system/cluster", default=True, interface="eth0", ips=("10.0.0.2/24",)
        ),
        NetworkStatus(name="ns/macvlan", interface="net1", mac="02:00:00:00:00:02"),
    )
    text = status.dumps(entries)
    assert text == (
        '[{"name":"kube-system/cluster","interface":"eth0","ips":["10.0.0.2/24"],"default":true},'
        '{"name":"ns/macvlan","interface":"net1","mac":"02:00:00:00:00:02","default":false}]'
    )
    assert status.loads(text) == entries


def test_dumps_escapes_non_ascii_so_any_transport_carries_it() -> None:
    assert (
        status.dumps([NetworkStatus(name="ns/ünï")])
        == '[{"name":"ns/\\u00fcn\\u00ef","default":false}]'
    )


def test_dumps_refuses_what_json_cannot_hold() -> None:
    bad = NetworkStatus(name="a", extra=(("x.io/y", {1, 2}),))
    assert problems_of(status.dumps, [bad]) == [
        f"{AT}: cannot be written as JSON (Object of type set is not JSON serializable)"
    ]


def test_an_empty_list_is_read_as_no_entries() -> None:
    assert status.loads("[]") == ()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "is not valid JSON (Expecting value at line 1 column 1)"),
        ('[{"name": "a"}', "is not valid JSON (Expecting ',' delimiter at line 1 column 15)"),
        ('[{"name": "a", "x.io/n": NaN}]', "is not valid JSON (NaN is not valid JSON)"),
        ("[Infinity]", "is not valid JSON (Infinity is not valid JSON)"),
    ],
)
def test_text_that_is_not_json_is_refused(text: str, problem: str) -> None:
    assert problems_of(status.loads, text) == [
        f"{AT}: {problem}; write a JSON list such as "
        '[{"name":"ns/net1","interface":"net1","default":false}]'
    ]


def test_a_single_object_is_refused_with_a_hint_to_wrap_it() -> None:
    assert problems_of(status.loads, '{"name": "a"}') == [
        f"{AT}: must be a JSON list of objects (got a object); wrap the entry in [ ]"
    ]


def test_a_scalar_is_refused_with_an_example() -> None:
    assert problems_of(status.loads, '"a"', where="x") == [
        "x: must be a JSON list of objects (got a string); write e.g. "
        '[{"name":"ns/net1","interface":"net1","default":false}]'
    ]


def test_problems_of_every_entry_are_reported_at_once() -> None:
    assert problems_of(status.loads, '[{"name": "a"}, 3, {"name": "b", "ips": [1]}]') == [
        f"{AT}[1]: is a number, not an object (got 3); each entry is a map such as "
        '{"name": "ns/net1", "default": false}',
        f"{AT}[2].ips[0]: must be a string (got number 1)",
    ]


def test_text_that_is_not_a_string_is_refused() -> None:
    assert problems_of(status.loads, b"[]") == [f"{AT}: is a bytes, not text"]


def test_absurd_nesting_and_huge_numbers_are_refused_not_crashed_on() -> None:
    assert problems_of(status.loads, "[" * 100_000)[0].startswith(f"{AT}: is not valid JSON (")
    assert problems_of(status.loads, "[" + "9" * 5000 + "]")[0].startswith(
        f"{AT}: is not valid JSON (Exceeds the limit"
    )


@given(st.text())
def test_loads_raises_nothing_but_status_error_on_any_text(text: str) -> None:
    try:
        status.loads(text)
    except StatusError as err:
        assert err.problems


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "name",
                    "default",
                    "ips",
                    "mac",
                    "mtu",
                    "dns",
                    "device-info",
                    "interface",
                    "gateway",
                    "nameservers",
                    "x.io/y",
                ]
            )
            | st.text(max_size=5),
            inner,
            max_size=4,
        )
    ),
    max_leaves=16,
)


@given(_json)
def test_loads_raises_nothing_but_status_error_on_any_json(value: Any) -> None:
    try:
        entries = status.loads(json.dumps(value))
    except StatusError as err:
        assert err.problems
    else:
        assert status.loads(status.dumps(entries)) == entries


_text = st.text(min_size=1, max_size=12)
_strings = st.lists(_text, max_size=3).map(tuple)
_nested = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=4), inner, max_size=2)
    ),
    max_leaves=6,
)
_statuses = st.builds(
    NetworkStatus,
    name=_text,
    default=st.booleans(),
    interface=st.none() | _text,
    ips=_strings,
    mac=st.none() | _text,
    mtu=st.none() | st.integers(0, 65536),
    dns=st.none()
    | st.fixed_dictionaries(
        {"nameservers": st.lists(_text, min_size=1, max_size=2)}, optional={"domain": _text}
    ),
    gateway=_strings,
    default_route=_strings,
    device_info=st.none() | st.dictionaries(_text, _nested, min_size=1, max_size=3),
    extra=st.dictionaries(_text.map(lambda k: f"x.io/{k}"), _nested, max_size=3).map(
        lambda d: tuple(d.items())
    ),
)


@given(_statuses)
def test_to_dict_and_from_dict_are_inverse(entry: NetworkStatus) -> None:
    assert NetworkStatus.from_dict(entry.to_dict()) == entry
    assert status.loads(status.dumps([entry])) == (entry,)


# -------------------------------------------------------------------- check_statuses

CLUSTER = NetworkStatus(
    name="kube-system/cluster",
    default=True,
    interface="eth0",
    ips=("10.244.1.2/24",),
    mac="02:00:00:00:00:01",
    gateway=("10.244.1.1",),
)
SECOND = NetworkStatus(
    name="ns/macvlan", interface="net1", ips=("192.0.2.2",), default_route=("192.0.2.1",)
)


def test_a_good_list_has_no_problems() -> None:
    assert status.check_statuses([CLUSTER, SECOND]) == []


def test_the_default_entry_may_be_anywhere_in_the_list() -> None:
    assert status.check_statuses([SECOND, CLUSTER]) == []


def test_a_list_without_a_default_entry_is_a_problem() -> None:
    assert status.check_statuses([SECOND]) == [
        f'{AT}: no entry has "default": true; the cluster default network\'s entry must (NPWG-26)'
    ]
    assert len(status.check_statuses([])) == 1


def test_two_default_entries_are_a_problem() -> None:
    other = NetworkStatus(name="ns/other", default=True, interface="net2")
    assert status.check_statuses([CLUSTER, SECOND, other], where="s") == [
        's: entries 0, 2 all have "default": true; only the cluster default network\'s entry '
        "may (NPWG-26)"
    ]


def test_a_mac_without_an_interface_is_a_problem() -> None:
    entry = NetworkStatus(name="ns/x", mac="02:00:00:00:00:09")
    assert status.check_statuses([CLUSTER, entry], where="s") == [
        's[1].mac: "02:00:00:00:00:09" is set without "interface"; name the interface (NPWG-28)'
    ]


def test_multus_nil_gateway_is_caught() -> None:
    entry = NetworkStatus(name="clusternet", default=True, interface="eth0", gateway=("<nil>",))
    assert status.check_statuses([entry], where="s") == [
        's[0].gateway[0]: "<nil>" is not a valid gateway address; use an IPv4 address like '
        "192.0.2.10 or an IPv6 address like 2001:db8::10"
    ]


def test_bad_addresses_and_interface_names_are_problems() -> None:
    entry = NetworkStatus(
        name="ns/x",
        interface="net/1",
        ips=("10.0.0.2/24", "10.0.0.300"),
        default_route=("10.0.0.1/24",),
    )
    assert status.check_statuses([CLUSTER, entry], where="s") == [
        "s[1].interface: \"net/1\" is not a valid interface name (contains '/'); use 1-15 bytes, "
        "not '.' or '..', and no '/', ':', whitespace or NUL",
        's[1].ips[1]: "10.0.0.300" is not a valid IP address; use an IPv4 address like 192.0.2.10 '
        "or an IPv6 address like 2001:db8::10",
        's[1].default-route[0]: "10.0.0.1/24" is not a valid gateway address (has a prefix '
        'length); use the address alone, e.g. "10.0.0.1"',
    ]


def test_an_interface_used_twice_is_a_problem() -> None:
    entry = NetworkStatus(name="ns/x", interface="eth0")
    assert status.check_statuses([CLUSTER, entry], where="s") == [
        's[1].interface: "eth0" is also the interface of entry 0; each attachment has its own '
        "interface in the pod"
    ]


def test_the_same_network_twice_is_fine() -> None:
    again = NetworkStatus(name="ns/macvlan", interface="net2")
    assert status.check_statuses([CLUSTER, SECOND, again]) == []


def test_an_unknown_key_without_a_dot_is_a_problem() -> None:
    entry = NetworkStatus(name="ns/x", extra=(("owner", "me"), ("example.com/owner", "me")))
    assert status.check_statuses([CLUSTER, entry], where="s") == [
        "s[1].owner: is not a network-status key; keys an implementation adds must contain a '.' "
        "(reverse-DNS style, e.g. example.com/owner) (NPWG-22)"
    ]


def test_an_empty_name_is_a_problem() -> None:
    assert status.check_statuses([NetworkStatus(name="", default=True)], where="s") == [
        "s[0].name: is empty; use the network's namespace/name"
    ]


GOOD_DEVICES = [
    {
        "type": "pci",
        "version": "1.1.0",
        "pci": {
            "pci-address": "0000:18:02.5",
            "pf-pci-address": "0000:18:00.0",
            "representor-device": "eth3",
        },
    },
    {"type": "pci", "version": "1.0.0", "pci": {"pci-address": "10000:e0:06.0"}},
    {
        "type": "vdpa",
        "version": "1.1.0",
        "vdpa": {
            "parent-device": "vdpa:0000:65:00.3",
            "driver": "vhost",
            "path": "/dev/vhost-vdpa-4",
        },
    },
    {
        "type": "vhost-user",
        "version": "1.0.0",
        "vhost-user": {"mode": "client", "path": "/run/s.sock"},
    },
    {
        "type": "memif",
        "version": "1.0.0",
        "memif": {"role": "master", "path": "/run/m.sock", "mode": "ip"},
    },
    {"type": "memif", "version": "1.0.0", "memif": {"role": "slave", "path": "/x", "mode": "punt"}},
]


@pytest.mark.parametrize("info", GOOD_DEVICES)
def test_device_info_of_every_type_passes(info: dict[str, Any]) -> None:
    entry = NetworkStatus(name="ns/sriov", interface="net1", device_info=info)
    assert status.check_statuses([CLUSTER, entry]) == []


@pytest.mark.parametrize(
    ("info", "problems"),
    [
        (
            {"pci": {}},
            [
                "device-info.type: must be one of pci, vdpa, vhost-user, memif (missing) (NPWG-45)",
                'device-info.version: must be a MAJOR.MINOR.PATCH string such as "1.1.0" (missing) (NPWG-45)',
            ],
        ),
        (
            {"type": "usb", "version": "1.0"},
            [
                'device-info.type: must be one of pci, vdpa, vhost-user, memif (got "usb") (NPWG-45)',
                'device-info.version: must be a MAJOR.MINOR.PATCH string such as "1.1.0" (got "1.0") (NPWG-45)',
            ],
        ),
        (
            {"type": "pci", "version": "1.1.0"},
            [
                'device-info.pci: is required for type "pci" and must be an object (missing) (NPWG-46)',
            ],
        ),
        (
            {"type": "pci", "version": "1.1.0", "pci": {"pf-pci-address": "18:00.0"}},
            [
                'device-info.pci.pci-address: is required for type "pci" (missing) (NPWG-46)',
                'device-info.pci.pf-pci-address: "18:00.0" is not a PCI address; use a PCI address such '
                "as 0000:18:02.5",
            ],
        ),
        (
            {"type": "pci", "version": "1.1.0", "pci": {"pci-address": "0000:18:02.9"}},
            [
                'device-info.pci.pci-address: "0000:18:02.9" is not a PCI address; use a PCI address '
                "such as 0000:18:02.5 (NPWG-46)",
            ],
        ),
        (
            {"type": "vdpa", "version": "1.1.0", "vdpa": {"driver": "vfio", "path": "dev/x"}},
            [
                'device-info.vdpa.parent-device: is required for type "vdpa" (missing) (NPWG-46)',
                'device-info.vdpa.driver: must be one of vhost, virtio (got "vfio") (NPWG-46)',
                'device-info.vdpa.path: "dev/x" is not an absolute path; e.g. /dev/vhost-vdpa-4 (NPWG-46)',
            ],
        ),
        (
            {"type": "vhost-user", "version": "1.0.0", "vhost-user": {"path": ""}},
            [
                'device-info.vhost-user.mode: is required for type "vhost-user" (missing); use one of '
                "client, server (NPWG-46)",
                'device-info.vhost-user.path: is required for type "vhost-user" (got "") (NPWG-46)',
            ],
        ),
        (
            {
                "type": "memif",
                "version": "1.0.0",
                "memif": {"role": "leader", "path": "/m", "mode": 1},
            },
            [
                'device-info.memif.role: must be one of master, slave (got "leader") (NPWG-46)',
                'device-info.memif.mode: is required for type "memif" (got 1); use one of ethernet, ip, '
                "inject-punt, punt (NPWG-46)",
            ],
        ),
    ],
)
def test_bad_device_info_is_reported_key_by_key(info: dict[str, Any], problems: list[str]) -> None:
    entry = NetworkStatus(name="ns/sriov", interface="net1", device_info=info)
    assert status.check_statuses([CLUSTER, entry], where="s") == [f"s[1].{p}" for p in problems]


# ------------------------------------------------------------------- from_cni_result

BRIDGE = {
    "cniVersion": "1.0.0",
    "interfaces": [
        {"name": "cni0", "mac": "0a:58:0a:f4:01:01"},
        {"name": "veth6c3b2a1f", "mac": "6e:2f:8a:33:11:02"},
        {"name": "eth0", "mac": "0a:58:0a:f4:01:02", "sandbox": NETNS},
    ],
    "ips": [{"address": "10.244.1.2/24", "gateway": "10.244.1.1", "interface": 2}],
    "routes": [{"dst": "0.0.0.0/0", "gw": "10.244.1.1"}],
    "dns": {},
}


def source(result: dict[str, Any], **kwargs: Any) -> NetworkStatus:
    args: dict[str, Any] = {"name": "ns/net", "ifname": "net1", "netns": NETNS, "default": False}
    args.update(kwargs)
    return status.from_cni_result(result, **args)


def test_bridge_entry_comes_from_the_sandbox_interface_not_the_host_side_ones() -> None:
    entry = source(BRIDGE, name="kube-system/cluster", ifname="eth0", default=True)
    assert entry.to_dict() == {
        "name": "kube-system/cluster",
        "interface": "eth0",
        "ips": ["10.244.1.2/24"],
        "mac": "0a:58:0a:f4:01:02",
        "default": True,
        "gateway": ["10.244.1.1"],
    }


def test_macvlan_entry_has_its_interface_address_and_gateway() -> None:
    macvlan = {
        "cniVersion": "0.3.1",
        "interfaces": [{"name": "net1", "mac": "c2:11:22:33:44:55", "sandbox": NETNS}],
        "ips": [
            {
                "version": "4",
                "interface": 0,
                "address": "192.168.10.2/24",
                "gateway": "192.168.10.1",
            }
        ],
        "dns": {"nameservers": ["192.168.10.1"], "search": []},
    }
    entry = source(macvlan, name="test/mvlan-a")
    assert entry == NetworkStatus(
        name="test/mvlan-a",
        interface="net1",
        ips=("192.168.10.2/24",),
        mac="c2:11:22:33:44:55",
        dns={"nameservers": ["192.168.10.1"]},
    )


def test_a_0_2_0_result_uses_ifname_and_both_families() -> None:
    legacy = {
        "cniVersion": "0.2.0",
        "ip4": {"ip": "10.1.0.5/16", "gateway": "10.1.0.1", "routes": [{"dst": "0.0.0.0/0"}]},
        "ip6": {"ip": "2001:db8::5/64", "routes": [{"dst": "::/0", "gw": "2001:db8::1"}]},
        "dns": {"nameservers": ["10.1.0.1"]},
    }
    entry = source(legacy)
    assert entry.to_dict() == {
        "name": "ns/net",
        "interface": "net1",
        "ips": ["10.1.0.5/16", "2001:db8::5/64"],
        "default": False,
        "dns": {"nameservers": ["10.1.0.1"]},
        "gateway": ["10.1.0.1", "2001:db8::1"],
    }


def test_an_ipam_only_result_uses_ifname_and_its_unindexed_addresses() -> None:
    ipam = {
        "cniVersion": "1.0.0",
        "ips": [{"address": "10.10.0.7/24", "gateway": "10.10.0.1"}],
        "routes": [{"dst": "10.20.0.0/16"}],
    }
    entry = source(ipam)
    assert (entry.interface, entry.ips, entry.gateway) == ("net1", ("10.10.0.7/24",), ())


def test_a_default_route_without_any_gateway_gives_no_gateway_key_never_nil() -> None:
    result = {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "sandbox": NETNS}],
        "ips": [{"address": "10.244.1.2/24", "interface": 0}],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0", "gw": None}],
    }
    entry = source(result, ifname="eth0")
    assert entry.gateway == ()
    assert "gateway" not in entry.to_dict()
    assert "<nil>" not in status.dumps([entry])


def test_a_default_route_without_gw_takes_the_gateway_of_its_family() -> None:
    result = {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "sandbox": NETNS}],
        "ips": [
            {"address": "fd00::2/64", "gateway": "fd00::1", "interface": 0},
            {"address": "10.244.1.2/24", "gateway": "10.244.1.1", "interface": 0},
        ],
        "routes": [{"dst": "0.0.0.0/0", "gw": ""}],
    }
    assert source(result).gateway == ("10.244.1.1",)


def test_a_dual_stack_result_reports_both_addresses_and_both_gateways() -> None:
    result = {
        "cniVersion": "1.1.0",
        "interfaces": [
            {"name": "veth1"},
            {"name": "eth0", "mac": "02:00:00:00:00:01", "sandbox": NETNS, "mtu": 1450},
        ],
        "ips": [
            {"address": "10.244.1.2/24", "gateway": "10.244.1.1", "interface": 1},
            {"address": "fd00:10:244:1::2/64", "gateway": "fd00:10:244:1::1", "interface": 1},
            {"address": "169.254.0.1/32", "interface": 0},
        ],
        "routes": [
            {"dst": "0.0.0.0/0"},
            {"dst": "::/0"},
            {"dst": "10.96.0.0/12", "gw": "10.244.1.1"},
        ],
    }
    entry = source(result, ifname="eth0", default=True)
    assert entry.ips == ("10.244.1.2/24", "fd00:10:244:1::2/64")
    assert entry.gateway == ("10.244.1.1", "fd00:10:244:1::1")
    assert (entry.interface, entry.mac, entry.mtu) == ("eth0", "02:00:00:00:00:01", 1450)


def test_the_interface_in_our_netns_wins_over_an_earlier_sandboxed_one() -> None:
    result = {
        "cniVersion": "1.0.0",
        "interfaces": [
            {"name": "vm0", "sandbox": "/proc/1/ns/net"},
            {"name": "net1", "sandbox": NETNS},
        ],
        "ips": [{"address": "10.0.0.2/24", "interface": 1}],
    }
    assert source(result).interface == "net1"
    assert source(result, netns=None).interface == "vm0"


def test_without_a_sandbox_the_interface_named_ifname_is_used() -> None:
    result = {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "host0"}, {"name": "net1", "mac": "02:00:00:00:00:07"}],
        "ips": [
            {"address": "10.0.0.2/24", "interface": 1},
            {"address": "10.9.0.1/24", "interface": 0},
        ],
    }
    entry = source(result)
    assert (entry.interface, entry.mac, entry.ips) == (
        "net1",
        "02:00:00:00:00:07",
        ("10.0.0.2/24",),
    )


def test_host_side_addresses_are_never_reported() -> None:
    result = {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "host0"}],
        "ips": [
            {"address": "10.9.0.1/24", "interface": 0},
            {"address": "10.0.0.2/24", "interface": -1},
        ],
    }
    entry = source(result)
    assert (entry.interface, entry.ips) == (None, ("10.0.0.2/24",))


def test_a_sandbox_interface_without_indexed_addresses_takes_the_unindexed_ones() -> None:
    result = {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "net1", "sandbox": NETNS}],
        "ips": [{"address": "10.0.0.2/24"}],
    }
    assert source(result).ips == ("10.0.0.2/24",)


def test_dns_keeps_only_its_non_empty_keys() -> None:
    result = {
        "cniVersion": "1.0.0",
        "dns": {"nameservers": [], "domain": "", "search": ["a.example"]},
    }
    assert source(result).dns == {"search": ["a.example"]}
    assert source({"cniVersion": "1.0.0", "dns": {"nameservers": []}}).dns is None


def test_device_info_and_default_route_are_passed_through_as_copies() -> None:
    info: dict[str, Any] = {
        "type": "pci",
        "version": "1.1.0",
        "pci": {"pci-address": "0000:18:02.5"},
    }
    entry = source(BRIDGE, device_info=info, default_route=["10.244.1.1"])
    info["pci"]["pci-address"] = "changed"
    assert entry.device_info == {
        "type": "pci",
        "version": "1.1.0",
        "pci": {"pci-address": "0000:18:02.5"},
    }
    assert entry.default_route == ("10.244.1.1",)


def test_device_info_that_is_not_a_json_object_is_refused() -> None:
    assert problems_of(source, BRIDGE, device_info=["pci"]) == [
        "device-info: is a list, not an object"
    ]
    assert problems_of(source, BRIDGE, device_info={"x": {1}}) == [
        "device-info: contains a set, which JSON cannot represent"
    ]


def test_a_result_that_cannot_be_decoded_is_a_status_error() -> None:
    assert problems_of(source, {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2"}]}) == [
        'the CNI result for "ns/net" cannot be read (cannot decode the CNI result: '
        'ips[0].address: is not a CIDR (got "10.0.0.2"); use address/prefix, e.g. 10.1.0.5/24 '
        "or 2001:db8::5/64)"
    ]
    assert problems_of(source, {"cniVersion": "9.9.9"}) == [
        'the CNI result for "ns/net" cannot be read (unsupported CNI result version "9.9.9": use '
        "one of 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0)"
    ]


def test_entries_built_from_results_pass_the_npwg_rules() -> None:
    cluster = source(BRIDGE, name="kube-system/cluster", ifname="eth0", default=True)
    macvlan = source(
        {
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "net1", "mac": "02:00:00:00:00:03", "sandbox": NETNS}],
            "ips": [{"address": "192.0.2.2/24", "interface": 0}],
        }
    )
    assert status.check_statuses([cluster, macvlan]) == []
    assert status.loads(status.dumps([cluster, macvlan])) == (cluster, macvlan)
