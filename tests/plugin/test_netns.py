"""Look-ups and default-route changes inside a network namespace, through nsenter + ip."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugin.cni import netns as nets
from tests.plugin.netns_fixtures import Netns, ip, make_netns_fixture, netns_fixture, requires_netns  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.netns, requires_netns]


def two_links(ns: Netns) -> None:
    """Two veth pairs inside the namespace (never on the host): a 10.20.1.0/24 on
    ``a1`` and a 10.20.2.0/24 on ``b1``, both up, IPv6 on ``a1`` too."""
    for name, net in (("a", "10.20.1"), ("b", "10.20.2")):
        ip("-n", ns.name, "link", "add", f"{name}1", "type", "veth", "peer", "name", f"{name}2")
        ip("-n", ns.name, "addr", "add", f"{net}.2/24", "dev", f"{name}1")
        ip("-n", ns.name, "link", "set", f"{name}1", "up")
        ip("-n", ns.name, "link", "set", f"{name}2", "up")
    ip("-n", ns.name, "addr", "add", "fd00:20::2/64", "dev", "a1", "nodad")


def defaults(ns: Netns, family: int) -> list[tuple[str, str]]:
    return [(r["dev"], r["gateway"]) for r in nets.default_routes(ns.path, family)]


def test_a_new_namespace_has_only_loopback_and_no_routes(netns: Netns) -> None:
    assert [link["ifname"] for link in nets.links(netns.path)] == ["lo"]
    assert nets.routes(netns.path) == []


def test_addresses_and_routes_are_read_as_iproute2_json(netns: Netns) -> None:
    two_links(netns)
    (a1,) = nets.addresses(netns.path, "a1")
    assert ("inet", "10.20.1.2") in [(x["family"], x["local"]) for x in a1["addr_info"]]
    assert {r["dst"] for r in nets.routes(netns.path, 4)} == {"10.20.1.0/24", "10.20.2.0/24"}
    assert any(r["dst"] == "fd00:20::/64" for r in nets.routes(netns.path, 6))


def test_setting_the_default_route_replaces_it_and_can_be_repeated(netns: Netns) -> None:
    two_links(netns)
    nets.set_default_route(netns.path, "a1", "10.20.1.1", 4)
    nets.set_default_route(netns.path, "b1", "10.20.2.1", 4)
    nets.set_default_route(netns.path, "b1", "10.20.2.1", 4)
    assert defaults(netns, 4) == [("b1", "10.20.2.1")]
    nets.set_default_route(netns.path, "a1", "fd00:20::1", 6)
    assert defaults(netns, 6) == [("a1", "fd00:20::1")]


def test_deleting_default_routes_spares_the_named_interface_and_the_other_family(netns: Netns) -> None:
    two_links(netns)
    ip("-n", netns.name, "route", "add", "default", "via", "10.20.1.1", "dev", "a1", "metric", "100")
    ip("-n", netns.name, "route", "add", "default", "via", "10.20.2.1", "dev", "b1", "metric", "200")
    nets.set_default_route(netns.path, "a1", "fd00:20::1", 6)
    deleted = nets.delete_default_routes(netns.path, 4, except_ifname="b1")
    assert [(r["dev"], r["metric"]) for r in deleted] == [("a1", 100)]
    assert defaults(netns, 4) == [("b1", "10.20.2.1")]
    assert defaults(netns, 6) == [("a1", "fd00:20::1")]
    nets.delete_default_routes(netns.path, 4, except_ifname=None)
    assert defaults(netns, 4) == []


def test_a_missing_namespace_is_reported_distinctly(tmp_path: Path) -> None:
    gone = str(tmp_path / "gone")
    with pytest.raises(nets.NetnsMissing) as caught:
        nets.routes(gone)
    assert str(caught.value) == f"nsenter --net={gone} ip -j -4 route show: network namespace {gone} does not exist"
    with pytest.raises(nets.NetnsMissing):
        nets.delete_default_routes(gone, 4, except_ifname=None)


def test_a_failing_command_names_itself_and_the_stderr_of_ip(netns: Netns) -> None:
    with pytest.raises(nets.NetnsError) as caught:
        nets.set_default_route(netns.path, "nosuch0", "10.9.9.1", 4)
    err = caught.value
    assert not isinstance(err, nets.NetnsMissing)
    assert err.command == ["nsenter", f"--net={netns.path}", "ip", "-4", "route", "replace", "default",
                           "via", "10.9.9.1", "dev", "nosuch0"]
    assert err.stderr == 'Cannot find device "nosuch0"'


def test_a_path_that_is_not_a_namespace_is_an_error_but_not_missing(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("")
    with pytest.raises(nets.NetnsError) as caught:
        nets.links(str(plain))
    assert not isinstance(caught.value, nets.NetnsMissing)
    assert caught.value.command[:2] == ["nsenter", f"--net={plain}"]
    assert caught.value.stderr


def test_only_families_4_and_6_exist(netns: Netns) -> None:
    with pytest.raises(ValueError, match="family must be 4 or 6"):
        nets.routes(netns.path, 5)
