"""The containers' commands and flags are the ones the programs accept, and the shipped
policy file is valid, complete and documented."""

from __future__ import annotations

import re
import tomllib

import pytest
import yaml

from tests.manifests.rendering import ALL, REPO, WITH_WEBHOOK, container, find, rendered
from webhook import server
from webhook.policy import ClusterPolicy, parse_cluster_policy


def console_scripts() -> dict[str, str]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]


@pytest.mark.parametrize("variant", ALL)
def test_every_container_command_is_a_console_script_of_the_image(variant):
    for owner in [o for o in rendered(variant) if o["kind"] in ("Deployment", "DaemonSet")]:
        for ctr in owner["spec"]["template"]["spec"]["containers"]:
            assert ctr["command"][0] in console_scripts(), f"{ctr['name']}: {ctr['command']}"
            probe = ctr.get("readinessProbe", {}).get("exec")
            if probe:
                assert probe["command"][0] in console_scripts(), f"{ctr['name']} probe: {probe['command']}"


@pytest.mark.parametrize("variant", WITH_WEBHOOK)
def test_the_webhook_arguments_are_accepted_by_netplex_webhook(variant):
    ctr = container(find(rendered(variant), "Deployment", "netplex-webhook"), "webhook")
    assert ctr["command"] == ["netplex-webhook"]
    assert console_scripts()["netplex-webhook"] == "webhook.server:main"
    args = server.build_parser().parse_args(ctr["args"])
    assert server.usage_problem(args) is None
    assert args.port == 8443
    assert args.nads is None and args.kubeconfig is None, "in a cluster the webhook watches the API server"


def test_a_bad_webhook_argument_would_be_caught_here():
    ctr = container(find(rendered("base"), "Deployment", "netplex-webhook"), "webhook")
    args = server.build_parser().parse_args([*ctr["args"], "--tls-cert=/x"])
    assert server.usage_problem(args) == "--self-signed cannot be combined with --tls-cert/--tls-key; choose one"


def test_the_installer_arguments_and_environment_are_accepted_by_netplex_install():
    install = pytest.importorskip("plugin.node.install", reason="the node installer (plugin/node/install.py) is not there")
    ctr = container(find(rendered("base"), "DaemonSet", "netplex-node"), "install")
    environ = {e["name"]: e["value"] for e in ctr["env"]}
    for command in (ctr["command"], ctr["readinessProbe"]["exec"]["command"]):
        assert console_scripts()[command[0]] == "plugin.node.install:main"
        args = install.build_parser().parse_args([*command[1:], *ctr["args"]])
        opts = install.options_from(args, environ)
        assert not isinstance(opts, str), opts
        assert opts.host_root == "/host"
        assert opts.state_dir == "/run/netplex"
        assert opts.cleanup_on_exit is False
    probe_args = install.build_parser().parse_args(ctr["readinessProbe"]["exec"]["command"][1:])
    assert probe_args.state_dir == args.state_dir, "the probe must read the state the installer writes"
    opts = install.options_from(args, {**environ, "NETPLEX_CLEANUP_ON_EXIT": "true"})
    assert opts.cleanup_on_exit is True, "the README's uninstall step relies on this variable"


# -- the policy ConfigMap ------------------------------------------------------------------------


def policy_text() -> str:
    configmap = find(rendered("base"), "ConfigMap", "netplex-policy")
    (text,) = configmap["data"].values()
    return text


def test_the_shipped_policy_is_valid_and_changes_no_default():
    policy, problems = parse_cluster_policy(yaml.safe_load(policy_text()), source="netplex-policy")
    assert problems == []
    assert policy == ClusterPolicy()


def test_every_policy_key_is_in_the_configmap_with_a_comment():
    text = policy_text()
    lines = text.splitlines()
    for field in ClusterPolicy.model_fields.values():
        key = field.alias
        at = [i for i, line in enumerate(lines) if re.match(rf"^(# )?{key}:", line)]
        assert len(at) == 1, f"{key} is not listed once in netplex-policy"
        above = lines[at[0] - 1] if at[0] else ""
        assert above.startswith("#") and len(above) > 10, f"{key} has no explanation above it"


def test_a_policy_key_the_webhook_does_not_know_is_refused():
    data = yaml.safe_load(policy_text())
    data["missingNetwork"] = "warn"
    _, problems = parse_cluster_policy(data, source="netplex-policy")
    assert problems and "missingNetwork" in problems[0]
