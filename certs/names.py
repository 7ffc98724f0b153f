"""The names a serving certificate is for.

The API server calls a webhook at ``https://<service>.<namespace>.svc:<port>``, so that
name must be a SAN; the shorter and longer forms are added because people curl the
Service from other pods with them. Extra names (``--san``) are IPs or DNS names: an IP
becomes an IP SAN (a client connecting to an address only checks IP SANs), anything else
a DNS SAN.

Names are checked with the same DNS-1123 rules the rest of netplex uses
(:mod:`plugin.model.names`): one set of rules, one wording. DNS names are compared and written
in lower case (DNS is case-insensitive; a laptop's hostname is often capitalised), and a
leading ``*.`` wildcard label is allowed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from certs import CertsError
from plugin.model.names import check_dns1123_label, check_dns1123_subdomain
from plugin.model.problems import show

CLUSTER_DOMAIN = "cluster.local"
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
# Addresses a server listens on, never one a client connects to: not worth a SAN.
_LISTEN_ANY = frozenset({"0.0.0.0", "::"})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Host = str | IPAddress  # a DNS name (lower case) or an address


def service_dns_names(service: str, namespace: str, cluster_domain: str = CLUSTER_DOMAIN) -> list[str]:
    """``svc``, ``svc.ns``, ``svc.ns.svc`` and ``svc.ns.svc.<cluster domain>``.

    Raises :class:`CertsError` when a part is not a valid DNS name, because the API
    server could never reach a Service by that name.
    """
    for value, what in ((service, "Service name"), (namespace, "namespace")):
        problem = check_dns1123_label(value, what)
        if problem:
            raise CertsError(problem)
    problem = check_dns1123_subdomain(cluster_domain, "cluster domain")
    if problem:
        raise CertsError(problem)
    return [service, f"{service}.{namespace}", f"{service}.{namespace}.svc",
            f"{service}.{namespace}.svc.{cluster_domain}"]


def check_host(host: str) -> str | None:
    """Why ``host`` cannot be a SAN, or None when it can (IP, DNS name, ``*.`` wildcard)."""
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    name = host.lower()
    bare = name[2:] if name.startswith("*.") else name
    problem = check_dns1123_subdomain(bare, "DNS name")
    if problem is None:
        return None
    if ":" in host or host.startswith("["):
        return f"{show(host)} is not an IP address nor a DNS name; write an address without brackets or a port"
    return problem


def parse_host(host: str) -> Host:
    """An address for an IP, else the DNS name in lower case (``host`` is already checked)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return host.lower()


def subject_hosts(hosts: Iterable[str]) -> tuple[list[Host], list[str]]:
    """The usable hosts, each once and in order, and a problem line for each unusable one.

    Blanks and the listen-on-everything addresses (``0.0.0.0``, ``::``) are dropped
    without a problem: they come from ``--host`` defaults, not from a user's typo. The
    caller decides whether a problem is fatal (``netplexctl certs``) or a warning (the
    laptop hostname the webhook adds on its own).
    """
    usable: dict[Host, None] = {}
    problems: list[str] = []
    for raw in hosts:
        host = raw.strip()
        if not host or host in _LISTEN_ANY:
            continue
        problem = check_host(host)
        if problem:
            problems.append(problem)
        else:
            usable.setdefault(parse_host(host), None)
    return list(usable), problems
