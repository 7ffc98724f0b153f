"""The plugin's configuration keeps Multus' keys and names the key on a wrong type."""

from __future__ import annotations

from typing import Any

import pytest

from plugin.cni import config


def base(**extra: Any) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": "netplex", "type": "netplex",
            "delegates": [{"cniVersion": "1.0.0", "name": "cluster", "type": "bridge"}], **extra}


def test_multus_keys_are_read_with_their_meaning() -> None:
    parsed = config.parse_plugin_config(base(
        kubeconfig="/etc/cni/net.d/netplex.d/kubeconfig", confDir="/etc/cni/custom", cniDir="/run/np",
        binDir="/opt/bin", namespaceIsolation=True, globalNamespaces="default, shared",
        systemNamespaces=["kube-system", "infra"], multusNamespace="netplex-system",
        readinessindicatorfile="/run/ready", logLevel="DEBUG", logFile="/var/log/np.log", logToStderr=False,
        defaultNetworks=["extra"],
    ))
    assert parsed.kubeconfig == "/etc/cni/net.d/netplex.d/kubeconfig"
    assert parsed.conf_dir == "/etc/cni/custom"
    assert parsed.cni_dir == "/run/np"
    assert parsed.bin_dir == "/opt/bin"
    assert parsed.namespace_isolation is True
    assert parsed.global_namespaces == ("default", "shared")
    assert parsed.system_namespaces == ("kube-system", "infra")
    assert parsed.multus_namespace == "netplex-system"
    assert parsed.readiness_indicator_file == "/run/ready"
    assert parsed.log_level == "debug"
    assert parsed.log_to_stderr is False
    assert parsed.default_networks == ("extra",)
    assert len(parsed.delegates) == 1


def test_keys_match_case_insensitively_like_go() -> None:
    parsed = config.parse_plugin_config(base(ReadinessIndicatorFile="/run/r", GLOBALNAMESPACES="a"))
    assert parsed.readiness_indicator_file == "/run/r"
    assert parsed.global_namespaces == ("a",)


def test_defaults() -> None:
    parsed = config.parse_plugin_config(base())
    assert parsed.conf_dir == "/etc/cni/multus/net.d"
    assert parsed.cni_dir == "/var/lib/cni/netplex"
    assert parsed.bin_dir == "/opt/cni/bin"
    assert parsed.global_namespaces == ("default",)
    assert parsed.system_namespaces == ("kube-system",)
    assert parsed.kubeconfig is None


def test_cluster_network_replaces_delegates_as_in_multus() -> None:
    parsed = config.parse_plugin_config(base(clusterNetwork="flannel"))
    assert parsed.cluster_network == "flannel"
    assert parsed.delegates == ()


def test_cache_dir_is_an_alias_of_cni_dir() -> None:
    assert config.parse_plugin_config(base(cacheDir="/x")).cni_dir == "/x"


def test_unknown_keys_are_ignored() -> None:
    assert config.parse_plugin_config(base(somethingElse=5)).name == "netplex"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"namespaceIsolation": "yes"}, '"namespaceIsolation" must be true or false (got string "yes")'),
        ({"globalNamespaces": 5}, '"globalNamespaces" must be a comma-separated string or a list of strings (got number 5)'),
        ({"systemNamespaces": "kube-system"}, '"systemNamespaces" must be a list of strings (got string "kube-system")'),
        ({"kubeconfig": ["/a"]}, '"kubeconfig" must be a string (got list ["/a"])'),
        ({"delegates": {"type": "x"}}, '"delegates" must be a list of CNI configuration objects (got object'),
        ({"logLevel": "loud"}, '"logLevel" must be one of debug, verbose, info, error, panic (got "loud")'),
        ({"runtimeConfig": []}, '"runtimeConfig" must be an object (got list [])'),
    ],
)
def test_wrong_types_name_the_key(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(config.ConfigError) as info:
        config.parse_plugin_config(base(**extra))
    assert str(info.value).startswith(message)


def test_a_cluster_network_is_required() -> None:
    with pytest.raises(config.ConfigError, match='set "clusterNetwork"'):
        config.parse_plugin_config({"cniVersion": "1.0.0", "name": "n", "type": "netplex", "delegates": []})
    with pytest.raises(config.ConfigError, match="must be a JSON object"):
        config.parse_plugin_config([])
