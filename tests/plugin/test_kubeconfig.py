"""Kubeconfig reading: files as kubectl, kubeadm, kind, k3s and the cloud CLIs write them,
current-context resolution, the keys the plugin uses and refuses, files, in-cluster.

The YAML reader itself is tested in ``test_yamlreader.py``."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from plugin.cni import kubeconfig
from plugin.cni.kubeconfig import Connection, KubeconfigError

CA_PEM = b"-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"
CERT_PEM = b"-----BEGIN CERTIFICATE-----\nMIIBclient\n-----END CERTIFICATE-----\n"
KEY_PEM = b"-----BEGIN PRIVATE KEY-----\nMIIEkey\n-----END PRIVATE KEY-----\n"
LONG_B64 = base64.b64encode(CA_PEM * 40).decode()  # ~2.7 kB on one line, as kubectl writes it

# What `kind`/kubectl writes, with a service-account token added by `kubectl config set-credentials`.
KUBECTL_YAML = f"""\
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: {base64.b64encode(CA_PEM).decode()}
    server: https://127.0.0.1:38643
  name: kind-netplex
contexts:
- context:
    cluster: kind-netplex
    namespace: kube-system
    user: netplex
  name: netplex@kind-netplex
current-context: netplex@kind-netplex
kind: Config
preferences: {{}}
users:
- name: netplex
  user:
    token: eyJhbGciOiJSUzI1NiIsImtpZCI6IiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2lnbmF0dXJl
"""


def write(tmp_path: Path, name: str, text: str | bytes) -> str:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(KubeconfigError) as info:
        kubeconfig.from_kubeconfig(write(tmp_path, "kubeconfig", text))
    return str(info.value)


def minimal(user: str = "    token: abc", cluster: str = "    server: https://10.0.0.1:6443") -> str:
    return (
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "contexts:\n- name: c\n  context:\n    cluster: k\n    user: u\n"
        f"clusters:\n- name: k\n  cluster:\n{cluster}\n"
        f"users:\n- name: u\n  user:\n{user}\n"
    )


# ----------------------------------------------------------------- resolving


def test_kubeconfig_written_by_kubectl_resolves_to_server_ca_and_token(tmp_path: Path) -> None:
    conn = kubeconfig.from_kubeconfig(write(tmp_path, "config", KUBECTL_YAML))
    assert conn == Connection(
        server="https://127.0.0.1:38643",
        ca_data=CA_PEM,
        token="eyJhbGciOiJSUzI1NiIsImtpZCI6IiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2lnbmF0dXJl",
    )
    assert conn.source == f"kubeconfig {tmp_path / 'config'}"


def test_yaml_and_json_forms_of_one_kubeconfig_give_the_same_connection(tmp_path: Path) -> None:
    as_json = json.dumps(yaml.safe_load(KUBECTL_YAML), indent=2)
    from_yaml = kubeconfig.from_kubeconfig(write(tmp_path, "a.yaml", KUBECTL_YAML))
    from_json = kubeconfig.from_kubeconfig(write(tmp_path, "a.json", as_json))
    assert from_yaml == from_json


def test_current_context_picks_its_cluster_and_user_among_several(tmp_path: Path) -> None:
    text = textwrap.dedent("""\
        ---
        # two clusters, two users; only the current context counts
        apiVersion: v1
        kind: Config
        current-context: "prod"
        contexts:
          - name: dev
            context: {cluster: dev, user: dev}
          - name: prod
            context:
              cluster: prod
              user: 'prod admin'
        clusters:
          - name: dev
            cluster:
              server: https://dev:6443
          - name: prod
            cluster:
              server: "https://prod.example:6443/"   # trailing slash dropped
              insecure-skip-tls-verify: true
              tls-server-name: kubernetes.default
        users:
          - name: dev
            user: {}
          - name: 'prod admin'
            user:
              token: "s3cr\\u0065t!"
        """)
    conn = kubeconfig.from_kubeconfig(write(tmp_path, "kc", text))
    assert conn == Connection(server="https://prod.example:6443", insecure=True, token="s3cret!",
                              tls_server_name="kubernetes.default")
    dev = kubeconfig.from_kubeconfig(write(tmp_path, "kc", text.replace('current-context: "prod"',
                                                                          "current-context: dev")))
    assert dev == Connection(server="https://dev:6443")  # the flow-style context {cluster: dev, user: dev}


def test_token_file_and_relative_certificate_paths_are_read_from_the_kubeconfig_directory(
    tmp_path: Path,
) -> None:
    (tmp_path / "pki").mkdir()
    write(tmp_path, "pki/ca.crt", CA_PEM)
    write(tmp_path, "pki/client.crt", CERT_PEM)
    write(tmp_path, "pki/client.key", KEY_PEM)
    write(tmp_path, "token", "tok-from-file\n")
    text = minimal(
        user="    tokenFile: token\n    client-certificate: pki/client.crt\n    client-key: pki/client.key",
        cluster="    server: https://10.0.0.1:6443\n    certificate-authority: pki/ca.crt",
    )
    other_dir = tmp_path / "elsewhere"
    other_dir.mkdir()
    cwd = os.getcwd()
    os.chdir(other_dir)  # relative to the kubeconfig, not to the working directory
    try:
        conn = kubeconfig.from_kubeconfig(write(tmp_path, "kubeconfig", text))
    finally:
        os.chdir(cwd)
    assert conn == Connection(server="https://10.0.0.1:6443", ca_data=CA_PEM, token="tok-from-file",
                              client_cert_data=CERT_PEM, client_key_data=KEY_PEM)


def test_token_file_wins_over_an_inline_token_as_in_client_go(tmp_path: Path) -> None:
    write(tmp_path, "token", "fresh")
    conn = kubeconfig.from_kubeconfig(write(tmp_path, "kc", minimal(user="    token: stale\n    tokenFile: token")))
    assert conn.token == "fresh"


def test_client_certificate_data_is_decoded_from_base64(tmp_path: Path) -> None:
    user = (f"    client-certificate-data: {base64.b64encode(CERT_PEM).decode()}\n"
            f"    client-key-data: {base64.b64encode(KEY_PEM).decode()}")
    conn = kubeconfig.from_kubeconfig(write(tmp_path, "kc", minimal(user=user)))
    assert (conn.client_cert_data, conn.client_key_data, conn.token) == (CERT_PEM, KEY_PEM, None)


def test_kubeconfig_is_read_again_on_every_call_so_a_rotated_token_is_seen(tmp_path: Path) -> None:
    path = write(tmp_path, "kc", minimal(user="    token: one"))
    assert kubeconfig.resolve(path).token == "one"  # type: ignore[union-attr]
    write(tmp_path, "kc", minimal(user="    token: two"))
    assert kubeconfig.resolve(path).token == "two"  # type: ignore[union-attr]


def test_an_unchanged_kubeconfig_is_parsed_once_and_a_same_size_rewrite_is_seen_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon resolves before every request: same bytes, same parse; any change, a new
    one, even a rewrite of the same length within the same file-time tick."""
    path = write(tmp_path, "kc", minimal(user="    token: aaaa"))
    parsed: list[str] = []
    real_loads = kubeconfig.loads

    def counting(text: str, *, where: str = "kubeconfig") -> dict[str, Any]:
        parsed.append(text)
        return real_loads(text, where=where)

    monkeypatch.setattr(kubeconfig, "loads", counting)
    first = kubeconfig.resolve(path)
    assert kubeconfig.resolve(path) == first
    assert len(parsed) == 1
    stat = os.stat(path)
    write(tmp_path, "kc", minimal(user="    token: bbbb"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size, same mtime
    assert kubeconfig.resolve(path).token == "bbbb"  # type: ignore[union-attr]
    assert len(parsed) == 2
    write(tmp_path, "kc", "current-context: [")
    with pytest.raises(KubeconfigError, match=r"^kubeconfig .*/kc: "):  # a broken rewrite is not hidden by the memo
        kubeconfig.resolve(path)


def test_token_file_is_read_again_on_every_call(tmp_path: Path) -> None:
    path = write(tmp_path, "kc", minimal(user="    tokenFile: tok"))
    write(tmp_path, "tok", "first")
    assert kubeconfig.resolve(path).token == "first"  # type: ignore[union-attr]
    write(tmp_path, "tok", "second")
    assert kubeconfig.resolve(path).token == "second"  # type: ignore[union-attr]


# ----------------------------------------------------------------- in-cluster


def test_in_cluster_service_account_is_used_when_no_kubeconfig_is_configured(tmp_path: Path) -> None:
    token = write(tmp_path, "token", "sa-token\n")
    ca = write(tmp_path, "ca.crt", CA_PEM)
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    conn = kubeconfig.resolve(None, environ=env, token_path=token, ca_path=ca)
    assert conn == Connection(server="https://10.96.0.1:443", ca_data=CA_PEM, token="sa-token")
    assert conn is not None and conn.source == "in-cluster service account"


def test_in_cluster_ipv6_service_host_is_bracketed(tmp_path: Path) -> None:
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    conn = kubeconfig.in_cluster(env, token_path=write(tmp_path, "t", "x"), ca_path=write(tmp_path, "c", CA_PEM))
    assert conn.server == "https://[fd00::1]:443"


def test_no_kubeconfig_and_no_in_cluster_env_means_no_kubernetes() -> None:
    assert kubeconfig.resolve(None, environ={}) is None
    assert kubeconfig.resolve("", environ={"KUBERNETES_SERVICE_HOST": "10.96.0.1"}) is None


def test_missing_in_cluster_token_file_is_named(tmp_path: Path) -> None:
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    missing = str(tmp_path / "token")
    with pytest.raises(KubeconfigError) as info:
        kubeconfig.resolve(None, environ=env, token_path=missing, ca_path=missing)
    assert str(info.value) == f"in-cluster service account token: cannot read {missing}: No such file or directory"


def test_in_cluster_without_port_explains_what_is_missing() -> None:
    with pytest.raises(KubeconfigError) as info:
        kubeconfig.in_cluster({"KUBERNETES_SERVICE_HOST": "10.96.0.1"})
    assert str(info.value) == (
        "in-cluster configuration needs KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT "
        "(got host '10.96.0.1', port ''); set \"kubeconfig\" in the netplex configuration instead")


# ----------------------------------------------------------------- refusals


def test_exec_without_a_command_is_refused_all_the_same(tmp_path: Path) -> None:
    user = "    exec:\n      apiVersion: client.authentication.k8s.io/v1"
    assert error_of(tmp_path, minimal(user=user)) == (
        f'kubeconfig {tmp_path / "kubeconfig"}: user "u" authenticates with exec, which the netplex plugin does '
        "not support: it runs no credential plugins (it starts for every pod on the node, where such commands "
        "and their logins are not available); use a user with a token, tokenFile or client certificate, such as "
        "the kubeconfig netplex-install writes from its service account")


def test_basic_auth_and_impersonation_are_refused(tmp_path: Path) -> None:
    assert error_of(tmp_path, minimal(user="    username: admin\n    password: x")).endswith(
        'user "u": basic authentication (username/password) is not supported by the netplex plugin; '
        "use a token or client certificate")
    assert error_of(tmp_path, minimal(user="    token: t\n    as: system:admin")).endswith(
        'user "u": impersonation (as) is not supported by the netplex plugin; use a token or client certificate')


def test_unknown_current_context_lists_the_defined_ones(tmp_path: Path) -> None:
    text = minimal().replace("current-context: c", "current-context: nope")
    assert error_of(tmp_path, text) == (
        f'kubeconfig {tmp_path / "kubeconfig"}: context "nope" not found in contexts (defined: "c")')


def test_missing_current_context_says_how_to_set_it(tmp_path: Path) -> None:
    text = minimal().replace("current-context: c\n", "")
    assert error_of(tmp_path, text).endswith(
        "current-context is not set (got null); set it with `kubectl config use-context NAME`")


def test_cluster_without_server_is_reported(tmp_path: Path) -> None:
    assert error_of(tmp_path, minimal(cluster="    insecure-skip-tls-verify: false")).endswith(
        'cluster "k" has no server; expected e.g. https://10.0.0.1:6443')


def test_server_that_is_not_a_url_is_reported(tmp_path: Path) -> None:
    assert error_of(tmp_path, minimal(cluster="    server: 10.0.0.1:6443")).endswith(
        'cluster "k": server must be an http:// or https:// URL (got "10.0.0.1:6443")')


def test_insecure_flag_must_be_a_boolean(tmp_path: Path) -> None:
    cluster = '    server: https://a\n    insecure-skip-tls-verify: "yes"'
    assert error_of(tmp_path, minimal(cluster=cluster)).endswith(
        'cluster "k": insecure-skip-tls-verify must be true or false (got "yes")')


def test_insecure_flag_together_with_a_ca_is_refused_like_kubectl(tmp_path: Path) -> None:
    cluster = (f"    server: https://a\n    insecure-skip-tls-verify: true\n"
               f"    certificate-authority-data: {base64.b64encode(CA_PEM).decode()}")
    assert error_of(tmp_path, minimal(cluster=cluster)).endswith(
        'cluster "k": insecure-skip-tls-verify is true and a certificate authority is set; '
        "use one or the other (kubectl refuses this too)")


def test_ca_file_and_ca_data_together_are_refused(tmp_path: Path) -> None:
    cluster = "    server: https://a\n    certificate-authority: ca.crt\n    certificate-authority-data: QUJD"
    assert error_of(tmp_path, minimal(cluster=cluster)).endswith(
        'cluster "k": both certificate-authority and certificate-authority-data are set; '
        "keep one (kubectl refuses both too)")


def test_bad_base64_in_certificate_data_is_reported(tmp_path: Path) -> None:
    cluster = "    server: https://a\n    certificate-authority-data: not*base64"
    assert error_of(tmp_path, minimal(cluster=cluster)).endswith(
        'cluster "k": certificate-authority-data is not valid base64 '
        "(Only base64 data is allowed)")


def test_client_certificate_without_key_is_reported(tmp_path: Path) -> None:
    user = f"    client-certificate-data: {base64.b64encode(CERT_PEM).decode()}"
    assert error_of(tmp_path, minimal(user=user)).endswith(
        'user "u" has client-certificate(-data) but no client-key(-data); both are needed')


def test_missing_certificate_file_is_named_with_its_resolved_path(tmp_path: Path) -> None:
    cluster = "    server: https://a\n    certificate-authority: pki/ca.crt"
    assert error_of(tmp_path, minimal(cluster=cluster)).endswith(
        f'cluster "k": certificate-authority: cannot read {tmp_path / "pki/ca.crt"}: No such file or directory')


def test_empty_token_file_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "tok", "\n")
    assert error_of(tmp_path, minimal(user="    tokenFile: tok")).endswith(
        f'user "u": tokenFile {tmp_path / "tok"} is empty')


def test_missing_kubeconfig_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "absent"
    with pytest.raises(KubeconfigError) as info:
        kubeconfig.resolve(str(path))
    assert str(info.value) == f"kubeconfig: cannot read {path}: No such file or directory"


def test_empty_kubeconfig_is_reported(tmp_path: Path) -> None:
    assert error_of(tmp_path, "# nothing here\n---\n") == f"kubeconfig {tmp_path / 'kubeconfig'} is empty"


def test_kubeconfig_that_is_a_list_is_reported(tmp_path: Path) -> None:
    assert error_of(tmp_path, "- a\n- b\n").endswith("expected a mapping at the top (got list)")


def test_malformed_json_reports_the_line(tmp_path: Path) -> None:
    assert error_of(tmp_path, '\n{\n  "apiVersion": "v1",\n  "kind" "Config"\n}\n') == (
        f"kubeconfig {tmp_path / 'kubeconfig'}: line 4: expected ',' or '}}' in the flow mapping opened on line 2 "
        "(got \"\\\"Config\\\"\") (read as JSON: line 4: Expecting ':' delimiter)")




# ------------------------------------------------------- kubeconfigs as tools write them

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "kubeconfigs"
FIXTURE_CA = (FIXTURES / "pki" / "ca.crt").read_bytes()


def fixture_data(name: str) -> dict[str, Any]:
    """The fixture as PyYAML reads it: the oracle for the base64 fields."""
    data: dict[str, Any] = yaml.safe_load((FIXTURES / name).read_text())
    return data


def b64_field(name: str, section: str, key: str, index: int = 0) -> bytes:
    return base64.b64decode(fixture_data(name)[section][index][section[:-1]][key])


@pytest.mark.parametrize(
    ("name", "server", "token", "client_cert"),
    [
        ("kubeadm-admin.conf", "https://192.168.122.10:6443", None, True),
        ("kind.yaml", "https://127.0.0.1:41235", None, True),
        ("k3s.yaml", "https://127.0.0.1:6443", None, True),
        ("kubectl-view-json.kubeconfig", "https://192.168.122.10:6443", None, True),
        ("aks-az-get-credentials-admin.yaml", "https://myakscluster-dns-1a2b3c4d.hcp.eastus.azmk8s.io:443",
         "5c1f0e6f2a8d4b7c9e3a1d2f4b6c8e0a7d9f1b3c5e7a9c1e3f5b7d9f1a3c5e7b9d1f3a5c7e9b1d3f5a7c9e1b3d5f7a9c1e3b5d"
         "7f9a1c3e5b7d9f1a3c5e7b9", True),
    ],
)
def test_kubeconfigs_written_by_cluster_tools_resolve_to_their_server_ca_and_credentials(
        name: str, server: str, token: str | None, client_cert: bool) -> None:
    conn = kubeconfig.from_kubeconfig(str(FIXTURES / name))
    assert conn.ca_data == FIXTURE_CA
    assert (conn.server, conn.token, conn.insecure, conn.tls_server_name) == (server, token, False, None)
    if client_cert:
        assert conn.client_cert_data == b64_field(name, "users", "client-certificate-data")
        assert conn.client_cert_data.startswith(b"-----BEGIN CERTIFICATE-----\n")
        assert conn.client_key_data == b64_field(name, "users", "client-key-data")
        assert conn.client_key_data.startswith(b"-----BEGIN RSA PRIVATE KEY-----\n")


def test_kubectl_flattened_view_follows_current_context_among_merged_clusters() -> None:
    conn = kubeconfig.from_kubeconfig(str(FIXTURES / "kubectl-view-raw-flatten.yaml"))
    assert conn == Connection(
        server="https://10.20.0.1:6443", ca_data=FIXTURE_CA, tls_server_name="kubernetes.default.svc",
        token=fixture_data("kubectl-view-raw-flatten.yaml")["users"][1]["user"]["token"])
    assert conn.token is not None and conn.token.startswith("eyJhbGciOiJSUzI1NiIsImtpZCI6Im5ldHBsZXgifQ.")


def test_hand_written_flow_style_kubeconfig_of_issue_12_reads_its_files_relative_to_itself() -> None:
    """The file that made every pod fail at sandbox creation: flow mappings, comments, '---',
    a quoted server, a CA file and a token file next to it."""
    conn = kubeconfig.from_kubeconfig(str(FIXTURES / "hand-written-flow.yaml"))
    assert conn == Connection(server="https://10.0.0.5:6443", ca_data=FIXTURE_CA, token="lab-token-0123456789")


@pytest.mark.parametrize(
    ("name", "user", "command"),
    [
        ("eks-aws-update-kubeconfig.yaml", "arn:aws:eks:us-west-2:111122223333:cluster/my-cluster", "aws"),
        ("gke-gcloud-get-credentials.yaml", "gke_my-project_us-central1-a_my-cluster", "gke-gcloud-auth-plugin"),
        ("aks-az-get-credentials.yaml", "clusterUser_myResourceGroup_myAKSCluster", "kubelogin"),
    ],
)
def test_cloud_cli_kubeconfigs_with_exec_are_refused_saying_exec_is_not_supported_and_what_to_use(
        name: str, user: str, command: str) -> None:
    with pytest.raises(KubeconfigError) as info:
        kubeconfig.from_kubeconfig(str(FIXTURES / name))
    assert str(info.value) == (
        f'kubeconfig {FIXTURES / name}: user "{user}" authenticates with exec (command "{command}"), which the '
        "netplex plugin does not support: it runs no credential plugins (it starts for every pod on the node, "
        "where such commands and their logins are not available); use a user with a token, tokenFile or client "
        "certificate, such as the kubeconfig netplex-install writes from its service account")


@pytest.mark.parametrize("flow_style", [True, False, None])
def test_every_fixture_rewritten_by_pyyaml_in_any_style_gives_the_same_connection(
        tmp_path: Path, flow_style: bool | None) -> None:
    for path in sorted(FIXTURES.glob("*.*")):
        if path.suffix == ".md" or "exec" in path.read_text():
            continue
        data = yaml.safe_load(path.read_text())
        text = yaml.safe_dump(data, default_flow_style=flow_style, width=60)
        copy = tmp_path / path.name
        copy.write_text(text)
        for extra in ("pki", "token"):
            if not (tmp_path / extra).exists():
                os.symlink(FIXTURES / extra, tmp_path / extra)
        assert kubeconfig.from_kubeconfig(str(copy)) == kubeconfig.from_kubeconfig(str(path)), path.name


def test_proxy_url_is_refused_naming_it(tmp_path: Path) -> None:
    cluster = "    server: https://a\n    proxy-url: socks5://proxy.internal:1080"
    assert error_of(tmp_path, minimal(cluster=cluster)).endswith(
        'cluster "k": proxy-url is not supported by the netplex plugin (got "socks5://proxy.internal:1080"); '
        "the plugin connects to the server directly, so give it a kubeconfig without proxy-url and a server "
        "the node can reach")


def test_auth_provider_names_the_provider(tmp_path: Path) -> None:
    message = error_of(tmp_path, minimal(user="    auth-provider: {name: oidc, config: {idp-issuer-url: x}}"))
    assert message.endswith('user "u" authenticates with auth-provider (provider "oidc"), which the netplex plugin '
                            "does not support: it runs no credential plugins (it starts for every pod on the node, "
                            "where such commands and their logins are not available); use a user with a token, "
                            "tokenFile or client certificate, such as the kubeconfig netplex-install writes from "
                            "its service account")


def test_a_token_that_yaml_types_as_a_number_is_its_text_as_in_kubectl(tmp_path: Path) -> None:
    """sigs.k8s.io/yaml gives a string field the text of a number; an octal-looking one is a
    number to YAML 1.1 (01234567 = 342391) and so to kubectl too."""
    for value, token in (("1234567890", "1234567890"), ("0123456789", "0123456789"), ("01234567", "342391")):
        conn = kubeconfig.from_kubeconfig(write(tmp_path, "kc", minimal(user=f"    token: {value}")))
        assert conn.token == token


def test_a_list_where_a_string_belongs_is_named(tmp_path: Path) -> None:
    assert error_of(tmp_path, minimal(user="    token: [a, b]")).endswith('user "u": token must be a string (got list)')


def test_yaml_error_names_the_file_and_the_line(tmp_path: Path) -> None:
    text = minimal().replace("    cluster: k\n", "    cluster: {name: k\n")
    assert error_of(tmp_path, text) == (
        f"kubeconfig {tmp_path / 'kubeconfig'}: line 8: expected ',' or '}}' in the flow mapping opened on line 7 "
        '(got ": u")')


def test_flow_style_kubeconfig_that_is_not_json_is_read_as_yaml(tmp_path: Path) -> None:
    text = "{apiVersion: v1, kind: Config, current-context: c,\n contexts: [{name: c, context: {cluster: k}}],\n" \
           " clusters: [{name: k, cluster: {server: 'https://10.0.0.1:6443'}}]}  # PyYAML's flow style\n"
    assert kubeconfig.from_kubeconfig(write(tmp_path, "kc", text)) == Connection(server="https://10.0.0.1:6443")


def test_json_kubeconfig_nested_too_deep_is_refused_before_decoding(tmp_path: Path) -> None:
    text = '{"apiVersion": "v1", "x": ' + "[" * 5000 + "]" * 5000 + "}"
    assert error_of(tmp_path, text) == (
        f"kubeconfig {tmp_path / 'kubeconfig'}: the document is nested more than 32 levels deep; "
        "at most 32 levels of objects and lists are accepted")


def test_the_installers_json_kubeconfig_is_read_without_importing_the_yaml_reader(tmp_path: Path) -> None:
    """Start-up cost: the node's default kubeconfig (netplex-install's) takes the json path."""
    from plugin.node import credentials

    path = tmp_path / "netplex.kubeconfig"
    path.write_bytes(credentials.render("https://10.96.0.1:443", credentials.ServiceAccount("tok", CA_PEM, "ns")))
    probe = ("import sys; from plugin.cni import kubeconfig; c = kubeconfig.from_kubeconfig(sys.argv[1]); "
             "print(c.server, c.token, 'plugin.cni.yamlreader' in sys.modules)")
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True, check=True,
                          cwd=repo)
    assert done.stdout.split() == ["https://10.96.0.1:443", "tok", "False"]
    yaml_file = tmp_path / "kubeconfig.yaml"
    yaml_file.write_text(yaml.safe_dump(json.loads(path.read_text())))
    done = subprocess.run([sys.executable, "-c", probe, str(yaml_file)], capture_output=True, text=True, check=True,
                          cwd=repo)
    assert done.stdout.split() == ["https://10.96.0.1:443", "tok", "True"]


@pytest.mark.parametrize("key", ["tokenFile", "client-certificate", "certificate-authority"])
def test_a_file_path_with_a_nul_in_the_kubeconfig_is_named(tmp_path: Path, key: str) -> None:
    section = "user" if key != "certificate-authority" else "cluster"
    line = f'    {key}: "pki/a\\u0000b"'
    text = minimal(user=line + ("\n    client-key: k" if key == "client-certificate" else "")) \
        if section == "user" else minimal(cluster="    server: https://a\n" + line)
    where = 'user "u"' if section == "user" else 'cluster "k"'
    assert error_of(tmp_path, text).endswith(
        f'{where}: {key}: "{tmp_path}/pki/a\\u0000b" is not a usable path (embedded null byte)')


def test_a_json_kubeconfig_with_a_number_int_refuses_is_named_with_its_line(tmp_path: Path) -> None:
    text = '{"apiVersion": "v1",\n "x": ' + "1" * 5000 + "}"
    assert error_of(tmp_path, text) == (
        f"kubeconfig {tmp_path / 'kubeconfig'}: line 2: a number has 5000 digits (111111111111...); at most 100 "
        "digits are accepted; quote it if it is text")
