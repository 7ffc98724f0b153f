"""Name and address rules (NPWG-3, NPWG-10, NPWG-11, NPWG-16, CNI-1, CNI-39, CNI-40)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugin.model import names


@pytest.mark.parametrize("value", ["a", "0a", "a-b", "macvlan-conf", "x" * 63])
def test_dns1123_label_accepts_npwg_examples(value: str) -> None:
    assert names.check_dns1123_label(value) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("A", "contains uppercase 'A'"),
        ("-a", "starts with '-'"),
        ("a-", "ends with '-'"),
        ("a_b", "contains '_'"),
        ("a.b", "contains '.'"),
        ("", "is empty"),
        ("x" * 64, "has 64 characters, more than 63"),
    ],
)
def test_dns1123_label_rejects_with_the_rule_broken(value: str, reason: str) -> None:
    message = names.check_dns1123_label(value, what="NAD name")
    assert message is not None
    assert message.startswith(f'"{value}" is not a valid NAD name (a DNS-1123 label: it {reason})')
    assert "use lowercase letters, digits and '-'" in message


def test_dns1123_label_rejects_non_strings() -> None:
    assert names.check_dns1123_label(5) == (
        "5 is not a valid name (not a string); " + names.LABEL_RULE
    )


@pytest.mark.parametrize("value", ["a", "my.net", "a-b.c-d", "k8s.cni.cncf.io"])
def test_dns1123_subdomain_accepts_dotted_names(value: str) -> None:
    assert names.check_dns1123_subdomain(value) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("a..b", "has an empty part between dots"),
        ("a.-b", 'has a part "-b" that starts with \'-\''),
        ("A.b", "has a part \"A\" that contains uppercase 'A'"),
        ("x" * 254, "has 254 characters, more than 253"),
    ],
)
def test_dns1123_subdomain_rejects_with_the_part_at_fault(value: str, reason: str) -> None:
    message = names.check_dns1123_subdomain(value)
    assert message is not None
    assert f"(a DNS-1123 subdomain: it {reason})" in message


@pytest.mark.parametrize("value", ["mynet", "My_Net.1", "0-a", "a" * 200])
def test_cni_network_name_accepts_libcni_names(value: str) -> None:
    assert names.check_cni_name(value) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [("-net", "starts with '-'"), ("my net", "contains ' '"), ("a/b", "contains '/'"), ("né", "contains 'é'")],
)
def test_cni_network_name_rejects_with_the_bad_character(value: str, reason: str) -> None:
    message = names.check_cni_name(value)
    assert message is not None
    assert f"is not a valid CNI network name ({reason}); use letters, digits" in message


def test_cni_network_name_rejects_empty_and_trailing_newline() -> None:
    assert names.check_cni_name("") == "CNI network name is empty; " + names.CNI_NAME_RULE
    message = names.check_cni_name("net\n")
    assert message is not None and "contains '\\n'" in message


def test_container_id_uses_the_same_rule_with_its_own_name() -> None:
    assert names.check_container_id("abc123_x.y-z") is None
    message = names.check_container_id("abc;rm")
    assert message == '"abc;rm" is not a valid container ID (contains \';\'); ' + names.CNI_NAME_RULE


@pytest.mark.parametrize("value", ["eth0", "net1", "my_interface", "Data.1", "x" * 15, "ünï-a"])
def test_interface_name_accepts_linux_names(value: str) -> None:
    assert names.check_interface_name(value) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "empty"),
        ("x" * 16, "16 bytes long"),
        ("ünïcödé-net1", "16 bytes long"),
        (".", "'.' is reserved"),
        ("..", "'..' is reserved"),
        ("data/1", "contains '/'"),
        ("eth0:1", "contains ':'"),
        ("my if", "contains whitespace"),
        ("if\t", "contains whitespace"),
        ("a\0b", "contains NUL"),
    ],
)
def test_interface_name_rejects_what_the_kernel_refuses(value: str, reason: str) -> None:
    message = names.check_interface_name(value)
    assert message is not None
    assert f"is not a valid interface name ({reason}); use 1-15 bytes" in message


def test_interface_name_message_matches_the_design_example() -> None:
    assert names.check_interface_name("data/1") == (
        "\"data/1\" is not a valid interface name (contains '/'); "
        "use 1-15 bytes, not '.' or '..', and no '/', ':', whitespace or NUL"
    )


@pytest.mark.parametrize("value", ["02:00:00:00:00:01", "aa:bb:cc:dd:ee:fe", "02-11-22-33-44-55", "0211.2233.4455"])
def test_mac_accepts_unicast_ethernet_addresses(value: str) -> None:
    assert names.check_mac(value) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("zz", "not hex bytes separated by ':'"),
        ("aa:bb:cc:dd:ee", "not hex bytes separated by ':'"),
        ("aa:bb:cc:dd:ee:fg", "not hex bytes separated by ':'"),
        ("01:00:5e:00:00:01", "a multicast address: the lowest bit of the first byte 0x01 is set"),
        ("ff:ff:ff:ff:ff:ff", "a multicast address"),
        ("00:00:00:00:00:00", "all zeros"),
        ("00:11:22:33:44:55:66:77", "8 bytes, an InfiniBand GUID"),
        (":".join(["00"] * 20), "20 bytes, an IPoIB hardware address"),
    ],
)
def test_mac_rejects_non_unicast_or_non_ethernet(value: str, reason: str) -> None:
    message = names.check_mac(value)
    assert message is not None
    assert reason in message
    assert message.endswith("use a 6-byte unicast Ethernet address such as 02:00:00:00:00:01")


def test_infiniband_guid_needs_eight_bytes() -> None:
    assert names.check_infiniband_guid("00:11:22:33:44:55:66:77") is None
    assert names.check_infiniband_guid("02:00:00:00:00:01") == (
        '"02:00:00:00:00:01" is not a valid InfiniBand GUID (6 bytes, not 8); ' + names.GUID_RULE
    )
    message = names.check_infiniband_guid(7)
    assert message is not None and "(not a string)" in message


@pytest.mark.parametrize("value", ["10.0.0.1", "2001:db8::1", "::"])
def test_ip_accepts_bare_addresses(value: str) -> None:
    assert names.check_ip(value) is None


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("10.0.0.1/24", 'has a prefix length); use the address alone, e.g. "10.0.0.1"'),
        ("010.0.0.1", "use an IPv4 address like 192.0.2.10"),
        ("fe80::1%eth0", "use an IPv4 address like 192.0.2.10"),
        (" 10.0.0.1", "use an IPv4 address"),
        ("300.1.1.1", "use an IPv4 address"),
    ],
)
def test_ip_rejects_with_a_hint(value: str, hint: str) -> None:
    message = names.check_ip(value, what="gateway")
    assert message is not None
    assert "is not a valid gateway" in message and hint in message


@pytest.mark.parametrize("value", ["10.0.0.0/8", "10.0.0.5/24", "2001:db8::/64", "0.0.0.0/0", "::/0"])
def test_cidr_accepts_v4_and_v6(value: str) -> None:
    assert names.check_cidr(value) is None


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("10.0.0.1", 'no prefix length); add one, e.g. "10.0.0.1/24"'),
        ("2001:db8::1", 'no prefix length); add one, e.g. "2001:db8::1/64"'),
        ("10.0.0.0/33", "use address/prefix"),
        ("10.0.0.0/08", "use address/prefix"),
        ("10.0.0.0/", "use address/prefix"),
    ],
)
def test_cidr_rejects_with_a_hint(value: str, hint: str) -> None:
    message = names.check_cidr(value)
    assert message is not None and hint in message


def test_ip_or_cidr_takes_either_form() -> None:
    assert names.check_ip_or_cidr("10.0.0.1") is None
    assert names.check_ip_or_cidr("10.0.0.1/24") is None
    message = names.check_ip_or_cidr("10.0.0.1/99")
    assert message is not None and "is not a valid IP address" in message


def test_closest_suggests_a_near_name_only() -> None:
    assert names.closest("macvlan-cnf", ["macvlan-conf", "bridge-conf"]) == "macvlan-conf"
    assert names.closest("zzz", ["macvlan-conf"]) is None


@given(st.one_of(st.text(), st.integers(), st.none(), st.lists(st.text())))
def test_checks_never_raise(value: object) -> None:
    for check in (
        names.check_dns1123_label,
        names.check_dns1123_subdomain,
        names.check_cni_name,
        names.check_interface_name,
        names.check_mac,
        names.check_infiniband_guid,
        names.check_ip,
        names.check_cidr,
        names.check_ip_or_cidr,
        names.check_label_key,
        names.check_label_value,
        names.check_extended_resource_name,
    ):
        result = check(value)
        assert result is None or isinstance(result, str)


# ---- Kubernetes label keys and values, extended resource names (issue 12)

_K8S_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_K8S_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def k8s_qualified_name(value: str, prefix_max: int = 253) -> bool:
    """Kubernetes IsQualifiedName, transcribed from its regular expressions (the oracle)."""
    parts = value.split("/")
    if len(parts) > 2:
        return False
    if len(parts) == 2 and not (0 < len(parts[0]) <= prefix_max and _K8S_SUBDOMAIN.fullmatch(parts[0])):
        return False
    return 0 < len(parts[-1]) <= 63 and _K8S_NAME.fullmatch(parts[-1]) is not None


@pytest.mark.parametrize("value", ["rack", "kubernetes.io/hostname", "topology.kubernetes.io/zone",
                                   "A_b.c-D", "x" * 63, "example.com/" + "n" * 63])
def test_label_keys_kubernetes_accepts_are_accepted(value: str) -> None:
    assert names.check_label_key(value) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "is empty"),
        ("r1=a", "contains '='"),
        ("-rack", "starts with '-'"),
        ("rack_", "ends with '_'"),
        ("x" * 64, "has 64 characters, more than 63"),
        ("a/b/c", "contains more than one '/'"),
        ("/rack", "has an empty prefix before '/'"),
        ("example.com/", "has an empty name part"),
        ("Example.com/rack", "has a prefix \"Example.com\" that is not a DNS subdomain: it has a part \"Example\" that contains uppercase 'E'"),
        ("example.com/r k", "has a name part \"r k\" that contains ' '"),
    ],
)
def test_label_keys_kubernetes_refuses_are_refused_with_the_reason(value: str, reason: str) -> None:
    message = names.check_label_key(value)
    assert message == f"{names.show(value)} is not a valid label key (it {reason}); {names.LABEL_KEY_RULE}"


@pytest.mark.parametrize("value", ["", "r1", "kind-worker2", "A.b_c-9", "x" * 63])
def test_label_values_kubernetes_accepts_are_accepted(value: str) -> None:
    assert names.check_label_value(value) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [("r1=a", "contains '='"), ("a,b", "contains ','"), (" r1", "contains ' '"), ("_r", "starts with '_'"),
     ("r.", "ends with '.'"), ("x" * 64, "has 64 characters, more than 63"), ("é", "contains 'é'")],
)
def test_label_values_kubernetes_refuses_are_refused_with_the_reason(value: str, reason: str) -> None:
    assert names.check_label_value(value) == (
        f"{names.show(value)} is not a valid label value (it {reason}); {names.LABEL_VALUE_RULE}"
    )


@pytest.mark.parametrize("value", ["intel.com/sriov_netdevice", "nvidia.com/gpu", "example.com/A.b-c",
                                   "a" * 244 + "/x"])
def test_extended_resource_names_kubernetes_accepts_are_accepted(value: str) -> None:
    assert names.check_extended_resource_name(value) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("sriov", "has no domain prefix; names without one are Kubernetes' own, such as cpu"),
        ("kubernetes.io/sriov", "is in the kubernetes.io domain, which Kubernetes keeps for its own resources"),
        ("requests.example.com/x", 'starts with "requests.", which Kubernetes keeps for resource quotas'),
        ("intel.com/sriov netdevice", "has a name part \"sriov netdevice\" that contains ' '"),
        ("a" * 245 + "/x", f"has a prefix {names.show('a' * 245)} that is not a DNS subdomain: it has 245 "
                           "characters, more than 244"),
        ("intel.com/a/b", "contains more than one '/'"),
    ],
)
def test_extended_resource_names_kubernetes_refuses_are_refused_with_the_reason(value: str, reason: str) -> None:
    assert names.check_extended_resource_name(value) == (
        f"{names.show(value)} is not a valid extended resource name (it {reason}); {names.RESOURCE_NAME_RULE}"
    )


_key_chars = st.sampled_from("aZ09-_./=é ")


@given(st.text(_key_chars, max_size=12))
def test_label_key_and_value_checks_agree_with_kubernetes_rules(value: str) -> None:
    assert (names.check_label_key(value) is None) == k8s_qualified_name(value)
    valid_value = value == "" or (len(value) <= 63 and _K8S_NAME.fullmatch(value) is not None)
    assert (names.check_label_value(value) is None) == valid_value


@given(st.text(_key_chars, max_size=16))
def test_extended_resource_name_check_agrees_with_kubernetes_rules(value: str) -> None:
    native = "/" not in value or "kubernetes.io/" in value
    expected = not native and not value.startswith("requests.") and k8s_qualified_name("requests." + value)
    assert (names.check_extended_resource_name(value) is None) == expected
