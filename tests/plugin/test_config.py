"""The plugin's configuration keeps Multus' keys and names the key on a wrong type."""

from __future__ import annotations

import json
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


# ------------------------------------------------- paths the kernel would refuse (issue 12)

PATH_KEYS = ["kubeconfig", "confDir", "cniDir", "cacheDir", "binDir", "readinessindicatorfile", "logFile",
             "deviceCheckpointFile"]


@pytest.mark.parametrize("key", PATH_KEYS)
def test_a_path_with_a_nul_character_is_refused_naming_the_key(key: str) -> None:
    with pytest.raises(config.ConfigError) as info:
        config.parse_plugin_config(base(**{key: "/var/log/net\x00plex.log"}))
    assert str(info.value) == (f'"{key}" contains a NUL character (got "/var/log/net\\u0000plex.log"); '
                               "a path cannot contain NUL")


@pytest.mark.parametrize("key", PATH_KEYS)
def test_a_path_with_a_name_longer_than_255_bytes_is_refused_naming_the_key(key: str) -> None:
    value = "/var/lib/" + "é" * 128  # 256 bytes in UTF-8, 128 characters
    with pytest.raises(config.ConfigError) as info:
        config.parse_plugin_config(base(**{key: value}))
    assert str(info.value) == (f"\"{key}\" has a name of 256 bytes between two '/' (got \"/var/lib/{'é' * 67}...); "
                               "each name in a path has at most 255 bytes")


def test_a_name_of_exactly_255_bytes_is_accepted() -> None:
    value = "/var/lib/" + "x" * 255
    assert config.parse_plugin_config(base(cniDir=value)).cni_dir == value


def test_a_path_longer_than_path_max_is_refused() -> None:
    value = "/d" + "/" .join(["x" * 200] * 21)  # 4,222 bytes, every name short enough
    with pytest.raises(config.ConfigError) as info:
        config.parse_plugin_config(base(cniDir=value))
    assert str(info.value).startswith(f'"cniDir" is {len(value)} bytes long (got "/dxxx')
    assert str(info.value).endswith("); a path has at most 4095 bytes")


def test_a_path_that_is_not_unicode_text_is_refused() -> None:
    with pytest.raises(config.ConfigError) as info:
        config.parse_plugin_config(json.loads('{"cniVersion": "1.0.0", "name": "n", "type": "netplex", '
                                              '"clusterNetwork": "c", "logFile": "/var/log/\\ud800.log"}'))
    assert str(info.value).startswith('"logFile" is not valid Unicode text (got ')
    assert str(info.value).endswith("); write the path in UTF-8")
