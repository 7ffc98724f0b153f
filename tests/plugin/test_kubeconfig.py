"""Kubeconfig reading: the YAML subset, current-context resolution, files, in-cluster."""

from __future__ import annotations

import base64
import json
import os
import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from plugin.cni import kubeconfig
from plugin.cni.kubeconfig import Connection, KubeconfigError, YamlError, parse_yaml

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
    with pytest.raises(KubeconfigError) as info:
        kubeconfig.from_kubeconfig(write(tmp_path, "kc", text))
    # the dev context uses a non-empty flow mapping, which is outside the subset
    assert str(info.value).endswith(
        'line 8: flow collections other than {} and [] are not supported (got "{cluster: dev, user: dev}")')
    fixed = text.replace("context: {cluster: dev, user: dev}", "context:\n          cluster: dev\n          user: dev")
    conn = kubeconfig.from_kubeconfig(write(tmp_path, "kc", fixed))
    assert conn == Connection(server="https://prod.example:6443", insecure=True, token="s3cret!",
                              tls_server_name="kubernetes.default")


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


def test_exec_credential_plugin_is_refused_with_what_to_use_instead(tmp_path: Path) -> None:
    user = ("    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: aws\n"
            "      args:\n      - eks\n      - get-token")
    assert error_of(tmp_path, minimal(user=user)) == (
        f"kubeconfig {tmp_path / 'kubeconfig'}: user \"u\" authenticates with exec, which is not supported "
        "by the netplex plugin; use a token or client certificate")


def test_auth_provider_is_refused(tmp_path: Path) -> None:
    message = error_of(tmp_path, minimal(user="    auth-provider:\n      name: oidc"))
    assert message.endswith('user "u" authenticates with auth-provider, which is not supported by the '
                            "netplex plugin; use a token or client certificate")


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
        f"kubeconfig {tmp_path / 'kubeconfig'}: line 4: invalid JSON: Expecting ':' delimiter")


# ----------------------------------------------------------------- the YAML subset


def test_malformed_yaml_line_is_reported_with_its_number(tmp_path: Path) -> None:
    text = "apiVersion: v1\nclusters:\n- cluster:\n    server: https://a\n   name: broken-indent\n"
    assert error_of(tmp_path, text) == (
        f"kubeconfig {tmp_path / 'kubeconfig'}: line 5: unexpected indentation \"name: broken-indent\" "
        "(3 spaces where at most 2 fit; a value cannot continue on the next line)")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: &anchor x\n", 'line 1: anchors, aliases and tags are not supported (got "&anchor x")'),
        ("a: *alias\n", 'line 1: anchors, aliases and tags are not supported (got "*alias")'),
        ("a: !!str x\n", 'line 1: anchors, aliases and tags are not supported (got "!!str x")'),
        ("a: |\n  text\n", "line 1: block scalars ('|' and '>') are not supported (got \"|\"); "
                           "put the value on one line, quoted if needed"),
        ("a: [x, y]\n", 'line 1: flow collections other than {} and [] are not supported (got "[x, y]")'),
        ("a: 'open\n", "line 1: unterminated single-quoted string (multi-line strings are not supported)"),
        ('a: "open\n', "line 1: unterminated double-quoted string (multi-line strings are not supported)"),
        ('a: "bad \\q"\n', "line 1: unknown escape \\q in a double-quoted string"),
        ('a: "x" y\n', 'line 1: unexpected text after the quoted string (got "y")'),
        ("a: b: c\n", "line 1: a ': ' inside a plain value (got \"b: c\"); quote the value"),
        ("a: 1\na: 2\n", 'line 2: duplicate key "a"'),
        ("a: 1\n- b\n", "line 2: a sequence item ('- ') where a mapping key was expected"),
        ("a:\n\tb: 1\n", "line 2: tab in indentation; YAML indents with spaces only"),
        ("a: 1\n---\nb: 2\n", "line 2: a second document ('---'); a kubeconfig is one document"),
        ("%YAML 1.2\n---\na: 1\n", 'line 1: YAML directives are not supported (got "%YAML 1.2")'),
        ("a: one\n  two\n", 'line 2: unexpected indentation "two" (2 spaces where at most 0 fit; '
                           "a value cannot continue on the next line)"),
        ("? a\n: b\n", "line 1: complex mapping keys ('? ') are not supported"),
        ("a: 1\njust text\n", "line 2: expected 'key: value' (got \"just text\")"),
        ("a: 1\n...\nb: 2\n", "line 3: content after the end of the document ('...')"),
    ],
)
def test_yaml_outside_the_subset_is_refused_naming_the_line(text: str, message: str) -> None:
    with pytest.raises(YamlError) as info:
        parse_yaml(text)
    assert str(info.value) == message


def test_yaml_subset_reads_what_kubeconfigs_use() -> None:
    text = textwrap.dedent(f"""\
        --- # start
        plain: some words here
        single: 'it''s # not a comment'
        double: "tab\\there \\u00e9 \\"q\\""
        url: https://10.0.0.1:6443   # a comment
        empty_map: {{}}
        empty_list: []
        nothing:
        tilde: ~
        yes_bool: true
        no_bool: False
        number: 42
        version: 1.0
        "quoted key": v
        long: {LONG_B64}
        items:
        - plain item
        - key: value
          other: 2
        -
          nested: deeper
        - - inner
          - list
        indented:
          - a
          -   b
        ...
        """)
    assert parse_yaml(text) == yaml.safe_load(text)


_SCALARS = st.one_of(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEF0123456789-_./:=+ @#'\"é\\", max_size=30),
    st.booleans(),
    st.none(),
    st.integers(min_value=-1000, max_value=1000),
)
_KEYS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_.", min_size=1, max_size=12)
_TREES = st.recursive(
    _SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(_KEYS, children, max_size=4)),
    max_leaves=20,
)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(_KEYS, _TREES, min_size=1, max_size=5), st.sampled_from([2, 4]))
def test_yaml_subset_agrees_with_pyyaml_or_refuses(tree: dict[str, object], indent: int) -> None:
    """Whatever PyYAML writes in block style is either read back identically or refused with a
    line number: never read as something else."""
    text = yaml.safe_dump(tree, default_flow_style=False, indent=indent, width=10_000, allow_unicode=True)
    try:
        parsed = parse_yaml(text)
    except YamlError as exc:
        assert str(exc).startswith("line ")
        return
    assert parsed == yaml.safe_load(text)
