"""Where the API server is and who we are to it: a kubeconfig file, or the in-cluster env.

The plugin is an executable that the container runtime starts for every pod sandbox, so
it cannot lean on a YAML library (``plugin/`` is standard library only, DESIGN.md).
Kubeconfigs are JSON or YAML; the YAML that ``kubectl``, kubeadm, k3s/rke2 and the Multus
install scripts write is a small, regular subset, and :func:`parse_yaml` reads exactly
that subset: block mappings and sequences, ``- `` items holding mappings, plain,
single- and double-quoted scalars, comments, a leading ``---``, the empty flow
collections ``{}`` and ``[]``. Anything else (anchors, tags, block scalars, multi-line
scalars, non-empty flow collections, several documents) is refused with the line
number, rather than guessed at.

Nothing here is cached: :func:`resolve` reads the kubeconfig, and the token file it
names, every time it is called. Multus users hit ``Unauthorized`` once their bound
service-account token expires because the token was read once; netplex's API client
calls :func:`resolve` before each request, so a rotated token is picked up at once.

Exceptions::

    KubeconfigError(Exception)   unreadable file, YAML outside the subset (names the line),
                                 missing or inconsistent fields, unsupported auth (exec,
                                 auth-provider, basic auth, impersonation)
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

TYPE_CHECKING = False  # typing is not imported at run time (~4 ms per start); mypy takes this as True
if TYPE_CHECKING:
    from typing import Any

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
IN_CLUSTER_TOKEN = f"{SERVICE_ACCOUNT_DIR}/token"
IN_CLUSTER_CA = f"{SERVICE_ACCOUNT_DIR}/ca.crt"

UNSUPPORTED_AUTH_HINT = "not supported by the netplex plugin; use a token or client certificate"


class KubeconfigError(Exception):
    """The kubeconfig (or the in-cluster setup) cannot give a usable connection."""


@dataclass(frozen=True, slots=True)
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
    current = data.get("current-context")
    if not isinstance(current, str) or not current:
        raise KubeconfigError(
            f"{where}: current-context is not set (got {_show(current)}); "
            "set it with `kubectl config use-context NAME`"
        )
    context = _named(data, "contexts", "context", current, where)
    cluster_name = context.get("cluster")
    if not isinstance(cluster_name, str) or not cluster_name:
        raise KubeconfigError(f"{where}: context \"{current}\" names no cluster (got {_show(cluster_name)})")
    cluster = _named(data, "clusters", "cluster", cluster_name, where)
    user_name = context.get("user")
    user: Mapping[str, Any] = {}
    if user_name not in (None, ""):
        if not isinstance(user_name, str):
            raise KubeconfigError(f"{where}: context \"{current}\".user must be a string (got {_show(user_name)})")
        user = _named(data, "users", "user", user_name, where)
    return _connection(cluster, cluster_name, user, str(user_name or ""), base_dir, where)


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
            raise KubeconfigError(f"{uw} authenticates with {key}, which is {UNSUPPORTED_AUTH_HINT}")
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
        names.append(str(item.get("name")))
        if item.get("name") == name:
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


def _string(section: Mapping[str, Any], key: str, where: str) -> str:
    value = section.get(key)
    if value is None:
        return ""
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


def _read_text(path: str, what: str) -> str:
    raw = _read_bytes(path, what)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise KubeconfigError(f"{what}: {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def _show(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, str | int | float | bool | type(None)) else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


# ------------------------------------------------------------------------ the file


def load(path: str) -> dict[str, Any]:
    """Read a kubeconfig file (JSON or YAML) into a dict, every error naming the file."""
    text = _read_text(path, "kubeconfig")
    return loads(text, where=f"kubeconfig {path}")


def loads(text: str, *, where: str = "kubeconfig") -> dict[str, Any]:
    """Parse kubeconfig text: JSON when it starts with ``{``, else the YAML subset."""
    stripped = text.lstrip("\ufeff").lstrip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            line = exc.lineno + text[: len(text) - len(stripped)].count("\n")
            raise KubeconfigError(f"{where}: line {line}: invalid JSON: {exc.msg}") from exc
    else:
        try:
            data = parse_yaml(text)
        except YamlError as exc:
            raise KubeconfigError(f"{where}: {exc}") from exc
    if data is None:
        raise KubeconfigError(f"{where} is empty")
    if not isinstance(data, dict):
        raise KubeconfigError(f"{where}: expected a mapping at the top (got {type(data).__name__})")
    return data


# ------------------------------------------------------------- the YAML subset


class YamlError(ValueError):
    """YAML outside the subset this module reads (the message starts with the line)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


@dataclass(slots=True)
class _Line:
    number: int  # 1-based, for messages
    indent: int
    text: str  # without indentation and trailing whitespace; comments still in


# Plain-scalar typing as YAML 1.1 (go-yaml v2 under kubectl, and PyYAML) for the forms both
# agree on; go-yaml's single-letter y/n booleans are left as strings.
_PLAIN_TRUE = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"}
_PLAIN_FALSE = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"}
_PLAIN_NULL = {"null", "Null", "NULL", "~"}
_INT = re.compile(r"^[-+]?(0|[1-9][0-9]*)$")
_FLOAT = re.compile(r"^(?:[-+]?[0-9][0-9_]*\.[0-9_]*|\.[0-9][0-9_]*)(?:[eE][-+][0-9]+)?$")
_FLOAT_SPECIAL = {".inf": "inf", ".Inf": "inf", ".INF": "inf", "+.inf": "inf", "+.Inf": "inf",
                  "+.INF": "inf", "-.inf": "-inf", "-.Inf": "-inf", "-.INF": "-inf",
                  ".nan": "nan", ".NaN": "nan", ".NAN": "nan"}
_ESCAPES = {
    "0": "\0", "a": "\a", "b": "\b", "t": "\t", "\t": "\t", "n": "\n", "v": "\v", "f": "\f",
    "r": "\r", "e": "\x1b", " ": " ", '"': '"', "/": "/", "\\": "\\", "N": "\x85",
    "_": "\xa0", "L": "\u2028", "P": "\u2029",
}
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}


def parse_yaml(text: str) -> Any:
    """One YAML document of the kubeconfig subset, as plain dicts, lists and scalars."""
    lines = _lines(text)
    if not lines:
        return None
    value, i = _block(lines, 0, lines[0].indent)
    if i < len(lines):
        raise YamlError(lines[i].number, f"unexpected indentation or content {_preview(lines[i].text)}")
    return value


def _lines(text: str) -> list[_Line]:
    """Significant lines only; handles the document markers and refuses directives."""
    out: list[_Line] = []
    seen_start = False
    ended = False
    for number, raw in enumerate(text.lstrip("\ufeff").splitlines(), start=1):
        body = raw.rstrip()
        stripped = body.lstrip(" ")
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("\t"):
            raise YamlError(number, "tab in indentation; YAML indents with spaces only")
        indent = len(body) - len(stripped)
        if indent == 0 and (body == "---" or body.startswith(("--- #", "---\t"))):
            if out or seen_start:
                raise YamlError(number, "a second document ('---'); a kubeconfig is one document")
            seen_start = True
            continue
        if indent == 0 and (body == "..." or body.startswith("... #")):
            ended = True
            continue
        if indent == 0 and body.startswith("---"):
            raise YamlError(number, "content on the '---' line is not supported; start it on the next line")
        if indent == 0 and body.startswith("%"):
            raise YamlError(number, f"YAML directives are not supported (got {_preview(body)})")
        if ended:
            raise YamlError(number, "content after the end of the document ('...')")
        out.append(_Line(number, indent, stripped))
    return out


def _is_item(line: _Line) -> bool:
    return line.text == "-" or line.text.startswith(("- ", "-\t"))


def _block(lines: list[_Line], i: int, indent: int) -> tuple[Any, int]:
    """The node starting at ``lines[i]``: a sequence, a mapping or a lone scalar."""
    line = lines[i]
    if _is_item(line):
        return _sequence(lines, i, indent)
    if _split_key(line) is not None:
        return _mapping(lines, i, indent)
    value = _scalar(line.text, line.number)
    return value, i + 1


def _sequence(lines: list[_Line], i: int, indent: int) -> tuple[list[Any], int]:
    items: list[Any] = []
    while i < len(lines) and lines[i].indent == indent and _is_item(lines[i]):
        line = lines[i]
        rest = line.text[1:]
        content = rest.lstrip(" \t")
        if not content or content.startswith("#"):
            if i + 1 < len(lines) and lines[i + 1].indent > indent:
                value, i = _block(lines, i + 1, lines[i + 1].indent)
            else:
                value, i = None, i + 1
        else:
            # "- key: value" opens a mapping whose keys line up with "key".
            column = indent + 1 + (len(rest) - len(content))
            lines[i] = _Line(line.number, column, content)
            value, i = _block(lines, i, column)
        items.append(value)
    _check_dedent(lines, i, indent)
    return items, i


def _mapping(lines: list[_Line], i: int, indent: int) -> tuple[dict[str, Any], int]:
    result: dict[str, Any] = {}
    while i < len(lines) and lines[i].indent == indent:
        line = lines[i]
        if _is_item(line):
            raise YamlError(line.number, "a sequence item ('- ') where a mapping key was expected")
        split = _split_key(line)
        if split is None:
            raise YamlError(line.number, f"expected 'key: value' (got {_preview(line.text)})")
        key, rest = split
        if key in result:
            raise YamlError(line.number, f"duplicate key {json.dumps(key)}")
        if not rest or rest.startswith("#"):
            nxt = lines[i + 1] if i + 1 < len(lines) else None
            if nxt is not None and (nxt.indent > indent or (nxt.indent == indent and _is_item(nxt))):
                value, i = _block(lines, i + 1, nxt.indent)
            else:
                value, i = None, i + 1
        else:
            value, i = _scalar(rest, line.number), i + 1
        result[key] = value
    _check_dedent(lines, i, indent)
    return result, i


def _check_dedent(lines: list[_Line], i: int, indent: int) -> None:
    """After a block at ``indent``, the next line must not be indented deeper."""
    if i < len(lines) and lines[i].indent > indent:
        raise YamlError(
            lines[i].number,
            f"unexpected indentation {_preview(lines[i].text)} ({lines[i].indent} spaces where at most "
            f"{indent} fit; a value cannot continue on the next line)",
        )


def _split_key(line: _Line) -> tuple[str, str] | None:
    """``key: rest`` → (key, rest without leading blanks); None when the line is no key."""
    text = line.text
    if text[0] in "\"'":
        key, end = _quoted(text, line.number)
        after = text[end:].lstrip(" ")
        if not after.startswith(":"):
            return None
        rest = after[1:]
        if rest and rest[0] not in " \t":
            return None
        return key, rest.strip()
    if text.startswith("? "):
        raise YamlError(line.number, "complex mapping keys ('? ') are not supported")
    match = re.search(r":(?:[ \t]|$)", text)
    if match is None:
        return None
    key = text[: match.start()].rstrip()
    if not key or key.startswith(("#", "{", "[")):
        return None
    if key[0] in "&*!|>%@`":
        raise YamlError(line.number, f"anchors, aliases, tags and reserved characters are not supported (got {_preview(key)})")
    return key, text[match.end():].strip()


def _scalar(text: str, number: int) -> Any:
    """A value on one line: quoted, ``{}``/``[]``, or plain (with bool/null/int typing)."""
    if text[0] in "\"'":
        value, end = _quoted(text, number)
        tail = text[end:]
        if tail.strip() and not re.match(r"^[ \t]+#", tail):
            raise YamlError(number, f"unexpected text after the quoted string (got {_preview(tail.strip())})")
        return value
    hash_at = re.search(r"[ \t]#", text)
    plain = (text[: hash_at.start()] if hash_at else text).rstrip()
    if plain in ("{}", "[]"):
        return {} if plain == "{}" else []
    first = plain[0]
    if first in "{[":
        raise YamlError(number, f"flow collections other than {{}} and [] are not supported (got {_preview(plain)})")
    if first in "&*!":
        raise YamlError(number, f"anchors, aliases and tags are not supported (got {_preview(plain)})")
    if first in "|>":
        raise YamlError(number, f"block scalars ('|' and '>') are not supported (got {_preview(plain)}); "
                                "put the value on one line, quoted if needed")
    if first in "@`%" or plain.startswith(("- ", "? ")) or plain in ("-", "?"):
        raise YamlError(number, f"a plain value cannot start with {first!r} (got {_preview(plain)}); quote it")
    if re.search(r":(?:[ \t]|$)", plain):
        raise YamlError(number, f"a ': ' inside a plain value (got {_preview(plain)}); quote the value")
    if plain in _PLAIN_TRUE:
        return True
    if plain in _PLAIN_FALSE:
        return False
    if plain in _PLAIN_NULL:
        return None
    if _INT.match(plain):
        return int(plain)
    if _FLOAT.match(plain):
        return float(plain.replace("_", ""))
    if plain in _FLOAT_SPECIAL:
        return float(_FLOAT_SPECIAL[plain])
    return plain


def _quoted(text: str, number: int) -> tuple[str, int]:
    """A single- or double-quoted scalar at the start of ``text``: (value, index after it)."""
    quote = text[0]
    out: list[str] = []
    i = 1
    while i < len(text):
        ch = text[i]
        if quote == "'":
            if ch == "'":
                if text[i + 1 : i + 2] == "'":
                    out.append("'")
                    i += 2
                    continue
                return "".join(out), i + 1
            out.append(ch)
            i += 1
            continue
        if ch == '"':
            return "".join(out), i + 1
        if ch == "\\":
            esc = text[i + 1 : i + 2]
            if esc in _ESCAPES:
                out.append(_ESCAPES[esc])
                i += 2
                continue
            if esc in _HEX_ESCAPES:
                width = _HEX_ESCAPES[esc]
                digits = text[i + 2 : i + 2 + width]
                if len(digits) != width or not re.fullmatch(r"[0-9a-fA-F]+", digits):
                    raise YamlError(number, f"bad escape \\{esc}{digits} in a double-quoted string")
                out.append(chr(int(digits, 16)))
                i += 2 + width
                continue
            raise YamlError(number, f"unknown escape \\{esc} in a double-quoted string")
        out.append(ch)
        i += 1
    raise YamlError(number, f"unterminated {'single' if quote == chr(39) else 'double'}-quoted string "
                            "(multi-line strings are not supported)")


def _preview(text: str) -> str:
    return json.dumps(text if len(text) <= 40 else text[:37] + "...")
