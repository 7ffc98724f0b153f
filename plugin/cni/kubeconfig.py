"""Where the API server is and who we are to it: a kubeconfig file, or the in-cluster env.

A kubeconfig is read as kubectl reads it: JSON, or YAML in any style (block or flow,
quoted or plain, comments, anchors), by :mod:`plugin.cni.yamlreader`, because the plugin
imports only the standard library (DESIGN.md) and must still take the file that the
user's tooling wrote (kubectl, kubeadm, kind, k3s, the cloud CLIs). Of what a kubeconfig
can say, the plugin uses the current context's cluster (``server``,
``certificate-authority(-data)``, ``insecure-skip-tls-verify``, ``tls-server-name``) and
user (``token``, ``tokenFile``, ``client-certificate(-data)``, ``client-key(-data)``).
It refuses, naming the user or cluster and what to use instead, what it cannot do:
credential plugins (``exec``, as the EKS, GKE and AKS CLIs write, and ``auth-provider``),
basic authentication, impersonation and ``proxy-url``.

Nothing here is cached: :func:`resolve` reads the kubeconfig, and the token file it
names, every time it is called. Multus users hit ``Unauthorized`` once their bound
service-account token expires because the token was read once; netplex's API client
calls :func:`resolve` before each request, so a rotated token is picked up at once.

Exceptions::

    KubeconfigError(Exception)   unreadable file, not YAML or JSON (names the line),
                                 missing or inconsistent fields, unsupported auth (exec,
                                 auth-provider, basic auth, impersonation) or proxy
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Mapping

from plugin.model import limits
from plugin.model.records import field, record

TYPE_CHECKING = False  # typing is not imported at run time (~4 ms per start); mypy takes this as True
if TYPE_CHECKING:
    from typing import Any

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
IN_CLUSTER_TOKEN = f"{SERVICE_ACCOUNT_DIR}/token"
IN_CLUSTER_CA = f"{SERVICE_ACCOUNT_DIR}/ca.crt"

UNSUPPORTED_AUTH_HINT = "not supported by the netplex plugin; use a token or client certificate"
CREDENTIAL_PLUGIN_HINT = (
    "it runs no credential plugins (it starts for every pod on the node, where such commands and their "
    "logins are not available); use a user with a token, tokenFile or client certificate, such as the "
    "kubeconfig netplex-install writes from its service account"
)


class KubeconfigError(Exception):
    """The kubeconfig (or the in-cluster setup) cannot give a usable connection."""


@record(frozen=True, slots=True)
class Connection:
    """Everything needed to talk to one API server as one identity.

    Certificates and keys are carried as bytes (read from their files when the
    kubeconfig names files) so that the client never has to know where they came from.
    ``source`` only feeds messages ("kubeconfig /etc/cni/net.d/netplex.kubeconfig",
    "in-cluster service account") and takes no part in equality.
    """

    server: str
    ca_data: bytes | None = None
    insecure: bool = False
    token: str | None = None
    client_cert_data: bytes | None = None
    client_key_data: bytes | None = None
    tls_server_name: str | None = None
    source: str = field(default="", compare=False)


# ------------------------------------------------------------------------ resolving


def resolve(
    kubeconfig_path: str | None,
    *,
    environ: Mapping[str, str] | None = None,
    token_path: str = IN_CLUSTER_TOKEN,
    ca_path: str = IN_CLUSTER_CA,
) -> Connection | None:
    """The connection for ``kubeconfig_path``, else in-cluster, else None (no Kubernetes).

    Multus' rule (reference §3, ``kubeconfig``): an empty path with
    ``KUBERNETES_SERVICE_HOST`` and ``KUBERNETES_SERVICE_PORT`` set means in-cluster;
    neither means the plugin runs its delegates without the API server.
    """
    if kubeconfig_path:
        return from_kubeconfig(kubeconfig_path)
    env = os.environ if environ is None else environ
    if env.get("KUBERNETES_SERVICE_HOST") and env.get("KUBERNETES_SERVICE_PORT"):
        return in_cluster(env, token_path=token_path, ca_path=ca_path)
    return None


def service_url(host: str, port: str) -> str:
    """``https://host:port`` of the API server's Service; IPv6 bracketed, as client-go does."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"https://{host}:{port}"


def in_cluster(
    environ: Mapping[str, str], *, token_path: str = IN_CLUSTER_TOKEN, ca_path: str = IN_CLUSTER_CA
) -> Connection:
    """The pod's own service account, as client-go's ``InClusterConfig`` builds it."""
    host = environ.get("KUBERNETES_SERVICE_HOST", "")
    port = environ.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise KubeconfigError(
            "in-cluster configuration needs KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT "
            f"(got host {host!r}, port {port!r}); set \"kubeconfig\" in the netplex configuration instead"
        )
    token = _read_text(token_path, "in-cluster service account token").strip()
    if not token:
        raise KubeconfigError(f"in-cluster service account token file {token_path} is empty")
    return Connection(
        server=service_url(host, port),
        ca_data=_read_bytes(ca_path, "in-cluster CA certificate"),
        token=token,
        source="in-cluster service account",
    )


def from_kubeconfig(path: str) -> Connection:
    """Follow current-context to its cluster and user, as kubectl does."""
    data = load(path)
    where = f"kubeconfig {path}"
    base_dir = os.path.dirname(os.path.abspath(path))
    current = _string(data, "current-context", where)
    if not current:
        raise KubeconfigError(
            f"{where}: current-context is not set (got {_show(data.get('current-context'))}); "
            "set it with `kubectl config use-context NAME`"
        )
    context = _named(data, "contexts", "context", current, where)
    cw = f'{where}: context "{current}"'
    cluster_name = _string(context, "cluster", cw)
    if not cluster_name:
        raise KubeconfigError(f"{cw} names no cluster (got {_show(context.get('cluster'))})")
    cluster = _named(data, "clusters", "cluster", cluster_name, where)
    user_name = _string(context, "user", cw)
    user: Mapping[str, Any] = _named(data, "users", "user", user_name, where) if user_name else {}
    return _connection(cluster, cluster_name, user, user_name, base_dir, where)


def _connection(
    cluster: Mapping[str, Any], cluster_name: str, user: Mapping[str, Any], user_name: str,
    base_dir: str, where: str,
) -> Connection:
    cw = f"{where}: cluster \"{cluster_name}\""
    server = _string(cluster, "server", cw)
    if not server:
        raise KubeconfigError(f"{cw} has no server; expected e.g. https://10.0.0.1:6443")
    if not re.match(r"^https?://[^/\s]+", server):
        raise KubeconfigError(f"{cw}: server must be an http:// or https:// URL (got {_show(server)})")
    proxy = cluster.get("proxy-url")
    if proxy not in (None, ""):
        raise KubeconfigError(
            f"{cw}: proxy-url is not supported by the netplex plugin (got {_show(proxy)}); the plugin connects "
            "to the server directly, so give it a kubeconfig without proxy-url and a server the node can reach")
    insecure = cluster.get("insecure-skip-tls-verify", False)
    if not isinstance(insecure, bool):
        raise KubeconfigError(f"{cw}: insecure-skip-tls-verify must be true or false (got {_show(insecure)})")
    ca = _data_or_file(cluster, "certificate-authority", cw, base_dir)
    if insecure and ca is not None:
        raise KubeconfigError(
            f"{cw}: insecure-skip-tls-verify is true and a certificate authority is set; "
            "use one or the other (kubectl refuses this too)"
        )

    uw = f"{where}: user \"{user_name}\""
    for key in ("exec", "auth-provider"):
        if user.get(key) not in (None, {}):
            raise KubeconfigError(f"{uw} authenticates with {key}{_plugin_name(user.get(key), key)}, which the "
                                  f"netplex plugin does not support: {CREDENTIAL_PLUGIN_HINT}")
    if user.get("username") or user.get("password"):
        raise KubeconfigError(f"{uw}: basic authentication (username/password) is {UNSUPPORTED_AUTH_HINT}")
    for key in ("as", "as-uid", "as-groups", "as-user-extra"):
        if user.get(key) not in (None, "", [], {}):
            raise KubeconfigError(f"{uw}: impersonation ({key}) is {UNSUPPORTED_AUTH_HINT}")
    token = _string(user, "token", uw) or None
    token_file = _string(user, "tokenFile", uw)
    if token_file:
        # client-go: "the last successfully read value [of the file] takes precedence".
        token_path = _relative(token_file, base_dir)
        token = _read_text(token_path, f"{uw}: tokenFile").strip()
        if not token:
            raise KubeconfigError(f"{uw}: tokenFile {token_path} is empty")
    cert = _data_or_file(user, "client-certificate", uw, base_dir)
    key_data = _data_or_file(user, "client-key", uw, base_dir)
    if (cert is None) != (key_data is None):
        have, missing = ("client-certificate", "client-key") if key_data is None else ("client-key", "client-certificate")
        raise KubeconfigError(f"{uw} has {have}(-data) but no {missing}(-data); both are needed")
    return Connection(
        server=server.rstrip("/"),
        ca_data=ca,
        insecure=insecure,
        token=token,
        client_cert_data=cert,
        client_key_data=key_data,
        tls_server_name=_string(cluster, "tls-server-name", cw) or None,
        source=where,
    )


def _named(data: Mapping[str, Any], section: str, inner: str, name: str, where: str) -> Mapping[str, Any]:
    """``clusters[name=X].cluster`` and friends, with the names that do exist on failure."""
    items = data.get(section)
    if items is None:
        items = []
    if not isinstance(items, list):
        raise KubeconfigError(f"{where}: {section} must be a list (got {_show(items)})")
    names = []
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise KubeconfigError(f"{where}: {section}[{i}] must be a mapping with name and {inner}")
        item_name = _string(item, "name", f"{where}: {section}[{i}]")
        names.append(item_name)
        if item_name == name:
            body = item.get(inner)
            if body is None:
                return {}
            if not isinstance(body, Mapping):
                raise KubeconfigError(f"{where}: {section}[{i}].{inner} must be a mapping (got {_show(body)})")
            return body
    known = ", ".join(f'"{n}"' for n in names) or "none"
    raise KubeconfigError(f"{where}: {inner} \"{name}\" not found in {section} (defined: {known})")


def _data_or_file(section: Mapping[str, Any], key: str, where: str, base_dir: str) -> bytes | None:
    """``<key>-data`` (base64) or ``<key>`` (a file path, relative to the kubeconfig)."""
    data = _string(section, f"{key}-data", where)
    path = _string(section, key, where)
    if data and path:
        raise KubeconfigError(f"{where}: both {key} and {key}-data are set; keep one (kubectl refuses both too)")
    if data:
        try:
            return base64.b64decode("".join(data.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise KubeconfigError(f"{where}: {key}-data is not valid base64 ({exc})") from exc
    if path:
        return _read_bytes(_relative(path, base_dir), f"{where}: {key}")
    return None


def _plugin_name(config: Any, key: str) -> str:
    """`` (command "aws")`` or `` (provider "oidc")`` for the message, when there is one."""
    field_name = "command" if key == "exec" else "name"
    name = config.get(field_name) if isinstance(config, Mapping) else None
    return f" ({'command' if key == 'exec' else 'provider'} {_show(name)})" if isinstance(name, str) and name else ""


def _string(section: Mapping[str, Any], key: str, where: str) -> str:
    """A string field; integers and booleans are taken as their text, as kubectl does
    (YAML types ``token: 12345`` as a number; kubectl's decoder gives the string field its text)."""
    value = section.get(key)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, str):
        raise KubeconfigError(f"{where}: {key} must be a string (got {_show(value)})")
    return value


def _relative(path: str, base_dir: str) -> str:
    return path if os.path.isabs(path) else os.path.join(base_dir, path)


def _read_bytes(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise KubeconfigError(f"{what}: cannot read {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:  # a NUL in the path, or text that is no file name (a lone surrogate)
        raise KubeconfigError(f"{what}: {json.dumps(path)} is not a usable path ({exc})") from exc


def _read_text(path: str, what: str) -> str:
    return _decode_text(_read_bytes(path, what), path, what)


def _decode_text(raw: bytes, path: str, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise KubeconfigError(f"{what}: {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def _show(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, str | int | float | bool | type(None)) else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


# ------------------------------------------------------------------------ the file


_LOADED: dict[str, tuple[bytes, dict[str, Any]]] = {}


def load(path: str) -> dict[str, Any]:
    """Read a kubeconfig file (JSON or YAML) into a dict, every error naming the file.

    The netplex-node daemon resolves its kubeconfig before every API request (so a
    rewritten file or a rotated token is used at once); parsing a YAML kubeconfig each
    time cost ~0.8 ms per request. The file is still read every time, but the last
    document parsed from the same bytes is reused, so any change is seen at once and no
    file-time subtleties apply. Callers must not modify the dict.
    """
    raw = _read_bytes(path, "kubeconfig")
    known = _LOADED.get(path)
    if known is not None and known[0] == raw:
        return known[1]
    data = loads(_decode_text(raw, path, "kubeconfig"), where=f"kubeconfig {path}")
    _LOADED[path] = (raw, data)
    return data


def loads(text: str, *, where: str = "kubeconfig") -> dict[str, Any]:
    """Parse kubeconfig text: strict JSON first when it starts with ``{`` (the fast path),
    else, or when that fails (flow-style YAML also starts with ``{``), YAML."""
    stripped = text.lstrip("\ufeff").lstrip()
    data: Any = None
    parsed = False
    as_json = ""  # why strict JSON failed, for the message when YAML fails too
    if stripped.startswith("{"):
        problem = limits.depth_problem(limits.text_depth(stripped))
        if problem:
            raise KubeconfigError(f"{where}: the document {problem}")
        try:
            data = json.loads(stripped)
            parsed = True
        except json.JSONDecodeError as exc:  # maybe flow-style YAML: read it as YAML below
            line = exc.lineno + text[: len(text) - len(stripped)].count("\n")
            as_json = f" (read as JSON: line {line}: {exc.msg})"
        except ValueError:  # an integer int() refuses (4,300 digits): YAML names it with its line
            pass
    if not parsed:
        from plugin.cni import yamlreader

        try:
            data = yamlreader.load(text)
        except yamlreader.YamlError as exc:
            raise KubeconfigError(f"{where}: {exc}{as_json}") from exc
    if data is None:
        raise KubeconfigError(f"{where} is empty")
    if not isinstance(data, dict):
        raise KubeconfigError(f"{where}: expected a mapping at the top (got {type(data).__name__})")
    return data
