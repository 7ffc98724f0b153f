"""Which file is the node's primary CNI config, and the netplex conflist made from it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from plugin.cni import config
from plugin.model import netconf
from plugin.node.conflist import (
    OUR_CONFLIST,
    Generated,
    Refused,
    choose_primary,
    generate,
    shadowing_problem,
)

VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
KUBECONFIG = "/etc/cni/net.d/netplex.d/netplex.kubeconfig"

FLANNEL_CONFLIST = {
    "cniVersion": "1.0.0",
    "name": "cbr0",
    "plugins": [
        {"type": "flannel", "delegate": {"hairpinMode": True, "isDefaultGateway": True}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
        {"type": "bandwidth", "capabilities": {"bandwidth": True, "ips": False}},
    ],
}


def generated(name: str, primary: Any, **kw: Any) -> Generated:
    result = generate(name, json.dumps(primary).encode(), kw.get("kubeconfig", KUBECONFIG), VERSIONS)
    assert isinstance(result, Generated), result
    return result


def refused(name: str, text: bytes | str) -> str:
    result = generate(name, text.encode() if isinstance(text, str) else text, KUBECONFIG, VERSIONS)
    assert isinstance(result, Refused), result
    return result.reason


# ------------------------------------------------------------------------ choosing the primary


def test_primary_is_the_first_config_file_in_byte_order() -> None:
    assert choose_primary(["20-b.conflist", "10-calico.conflist", "9-z.conf"]) == "10-calico.conflist"


def test_primary_skips_our_own_file_and_files_the_runtime_does_not_load() -> None:
    names = [OUR_CONFLIST, "00-notes.txt", "05-cilium.conflist.bak", "07-old.conf~", "30-net.json"]
    assert choose_primary(names) == "30-net.json"


def test_primary_may_be_any_of_the_three_extensions() -> None:
    for name in ("10-a.conf", "10-a.conflist", "10-a.json"):
        assert choose_primary([name, "99-z.conflist"]) == name


def test_no_config_file_means_no_primary() -> None:
    assert choose_primary([]) is None
    assert choose_primary([OUR_CONFLIST, "README"]) is None


def test_a_primary_sorting_before_ours_shadows_netplex() -> None:
    assert shadowing_problem("10-calico.conflist") is None
    assert shadowing_problem("00-multus.conf") == (
        '00-multus.conf sorts before 00-netplex.conflist (got "00-multus.conf"), so the container runtime uses '
        "it and never calls netplex; rename or remove it so that 00-netplex.conflist comes first"
    )


# ------------------------------------------------------------------------ the generated conflist


def test_conflist_primary_is_inlined_verbatim_with_the_union_of_enabled_capabilities() -> None:
    result = generated("10-flannel.conflist", FLANNEL_CONFLIST)
    assert json.loads(result.content) == {
        "cniVersion": "1.0.0",
        "name": "netplex",
        "plugins": [{
            "type": "netplex",
            "capabilities": {"bandwidth": True, "portMappings": True},
            "kubeconfig": KUBECONFIG,
            "delegates": [FLANNEL_CONFLIST],
        }],
    }
    assert result.capabilities == ("bandwidth", "portMappings")
    assert result.cni_version == "1.0.0"
    assert result.primary == "10-flannel.conflist"


def test_single_conf_primary_gives_its_version_and_capabilities() -> None:
    conf = {"cniVersion": "0.3.1", "name": "k8s-pod-network", "type": "calico",
            "capabilities": {"portMappings": True}, "ipam": {"type": "calico-ipam"}}
    result = generated("10-calico.conf", conf)
    document = json.loads(result.content)
    assert document["cniVersion"] == "0.3.1"
    assert document["plugins"][0]["capabilities"] == {"portMappings": True}
    assert document["plugins"][0]["delegates"] == [conf]


def test_primary_without_capabilities_declares_none() -> None:
    conf = {"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "bridge"}]}
    plugin = json.loads(generated("10-b.conflist", conf).content)["plugins"][0]
    assert list(plugin) == ["type", "kubeconfig", "delegates"]


def test_same_primary_gives_the_same_bytes_and_a_changed_one_new_bytes() -> None:
    first = generated("10-flannel.conflist", FLANNEL_CONFLIST)
    assert generated("10-flannel.conflist", FLANNEL_CONFLIST).content == first.content
    changed = {**FLANNEL_CONFLIST, "name": "cbr1"}
    second = generated("10-flannel.conflist", changed)
    assert second.content != first.content
    assert second.primary_sha256 != first.primary_sha256


def test_generated_conflist_passes_the_plugins_own_parsers() -> None:
    """What the runtime hands netplex (the plugin entry with cniVersion and name injected)
    loads as a plugin configuration whose cluster network is the primary."""
    document = json.loads(generated("10-flannel.conflist", FLANNEL_CONFLIST).content)
    assert netconf.parse_netconf_object(document, None, path=OUR_CONFLIST).ok
    stdin = {**document["plugins"][0], "cniVersion": document["cniVersion"], "name": document["name"]}
    parsed = config.parse_plugin_config(stdin)
    assert parsed.kubeconfig == KUBECONFIG
    assert parsed.delegates == (FLANNEL_CONFLIST,)
    assert parsed.cluster_network is None


# ------------------------------------------------------------------------ refusals


def test_invalid_json_names_the_file_and_the_parse_error() -> None:
    assert refused("10-calico.conflist", '{"cniVersion": "1.0.0",') == (
        "primary CNI config 10-calico.conflist is not valid JSON (line 1 column 24: Expecting property name "
        "enclosed in double quotes); fix the file, netplex waits for a valid primary"
    )


def test_non_utf8_primary_is_refused() -> None:
    assert refused("10-a.conf", b"\xff{}").startswith("primary CNI config 10-a.conf is not UTF-8 text (invalid start byte")


def test_primary_must_be_an_object() -> None:
    assert refused("10-a.conf", "[1]") == "primary CNI config 10-a.conf must be a JSON object (got a JSON list)"


def test_conflist_file_without_plugins_is_refused_as_the_runtime_would() -> None:
    assert refused("10-a.conflist", '{"cniVersion": "1.0.0", "name": "a", "type": "bridge"}') == (
        'primary CNI config 10-a.conflist is a .conflist without a "plugins" list; the runtime refuses it '
        'too: add "plugins" or rename the file to .conf'
    )


def test_primary_the_plugin_would_refuse_is_refused_with_the_plugins_message() -> None:
    reason = refused("10-a.conflist", json.dumps({"cniVersion": "1.0.0", "name": "a",
                                                  "plugins": [{"type": "../bin/sh"}]}))
    assert reason.startswith("primary CNI config 10-a.conflist would be refused by the netplex plugin: "
                             "10-a.conflist.plugins[0].type: plugin type must be a bare file name, not a path")


def test_primary_that_runs_netplex_is_refused() -> None:
    reason = refused("10-a.conf", json.dumps({"cniVersion": "1.0.0", "name": "a", "type": "netplex"}))
    assert reason == ('primary CNI config 10-a.conf already runs the "netplex" plugin; netplex cannot delegate '
                      "to itself: point it at the node's own network config instead")


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0"])
def test_primary_version_the_plugin_does_not_accept_is_refused_with_the_accepted_ones(version: str) -> None:
    reason = refused("10-a.conf", json.dumps({"cniVersion": version, "name": "a", "type": "bridge"}))
    assert reason == (f'primary CNI config 10-a.conf has cniVersion {version} (got "{version}"), which the netplex '
                      "plugin does not accept; use one of 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0 in the primary config")
