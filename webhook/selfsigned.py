"""Where ``netplex-webhook --self-signed`` gets its serving certificate.

Two cases, told apart by whether the webhook can reach the API server:

- **No API access** (a laptop: ``--nads DIR``, or neither ``--kubeconfig`` nor an
  in-cluster service account): a throwaway CA in memory, printed on stdout so that curl
  (and a hand-written ``caBundle``) can trust it. Nothing is written anywhere.
- **API access** (``--kubeconfig``, or the in-cluster service account; and no
  ``--nads``): the no-cert-manager way to run in a cluster. The CA is kept in Secret
  ``netplex-webhook-ca`` of the webhook's namespace, made by the first replica that
  starts and read by the others (:func:`certs.kube.get_or_create_ca`); each replica
  issues its own serving certificate from it for the Service's names, and sets the
  ``caBundle`` of ``netplex-mutating`` and ``netplex-validating`` at start. The serving
  certificate stays in memory; a restart issues a new one, and so does
  :class:`webhook.tls.CertRenewer` once two thirds of its validity have passed.

In a cluster this needs RBAC for ``create`` and ``get`` on Secrets in its namespace,
and ``get`` and ``patch`` on the two webhook configurations. A failure there stops the
start (exit 1, as any unusable certificate does): serving a certificate the API server
does not trust would fail every admission call, which is worse than a pod that does
not become ready and says why in its log.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from certs import CertsError, ClusterError, kube, names
from certs.authority import CertPair, describe, new_authority, utcnow
from webhook import tls

log = logging.getLogger("netplex.webhook")

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
IN_CLUSTER_ENV = ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT")


@dataclass(frozen=True, slots=True)
class SelfSigned:
    """The pair to serve; ``in_cluster`` False means its CA exists only in this process.

    ``renew`` issues another serving certificate for the same names from the same CA
    (kept in memory for this), for :class:`webhook.tls.CertRenewer`.
    """

    pair: CertPair
    in_cluster: bool
    renew: Callable[[], CertPair]


def add_arguments(group: Any) -> None:
    """The flags of the in-cluster case, added to the server's TLS argument group."""
    group.add_argument("--service-name", default=kube.SERVICE,
                       help="--self-signed in a cluster: the webhook's Service, named in the certificate "
                       "(default: %(default)s)")
    group.add_argument("--service-namespace", metavar="NAMESPACE",
                       help="--self-signed in a cluster: the Service's namespace, where Secret "
                       f"{kube.CA_SECRET} is kept (default: the pod's namespace, else {kube.NAMESPACE})")


def has_api_access(args: argparse.Namespace, environ: Mapping[str, str]) -> bool:
    """A kubeconfig was given, or the in-cluster environment is there; ``--nads`` rules it out."""
    if getattr(args, "nads", None):
        return False
    return bool(getattr(args, "kubeconfig", None)) or all(environ.get(k) for k in IN_CLUSTER_ENV)


def service_namespace(flag: str | None, path: Path = SERVICE_ACCOUNT_NAMESPACE) -> str:
    """``--service-namespace``, else the pod's own namespace, else ``netplex-system``."""
    if flag:
        return flag
    try:
        found = path.read_text().strip()
    except OSError:
        found = ""
    return found or kube.NAMESPACE


def serving_pair(
    args: argparse.Namespace,
    hosts: list[str],
    *,
    environ: Mapping[str, str] = os.environ,
    connect: Callable[[str | None], Any] | None = None,
    namespace_file: Path = SERVICE_ACCOUNT_NAMESPACE,
) -> SelfSigned:
    """The serving pair for ``--self-signed``; raises :class:`webhook.tls.CertificateError`.

    ``hosts`` are extra names (the listen address, the machine's hostname); one that
    cannot be a SAN is left out with a warning, since the user did not type it.
    """
    usable = []
    for host in hosts:
        problem = names.check_host(host.strip()) if host.strip() else None
        if problem:
            log.warning("--self-signed: %s; left out of the certificate", problem)
        else:
            usable.append(host)
    if not has_api_access(args, environ):
        try:
            authority = new_authority(common_name=tls.SELF_SIGNED_CA_NAME)
        except CertsError as exc:
            raise tls.CertificateError(str(exc)) from exc

        def renew_local() -> CertPair:
            return tls.self_signed(usable, ca=authority)

        return SelfSigned(renew_local(), in_cluster=False, renew=renew_local)
    namespace = service_namespace(args.service_namespace, namespace_file)
    try:
        pair, renew = _from_cluster(args, namespace, usable, connect)
        return SelfSigned(pair, in_cluster=True, renew=renew)
    except CertsError as exc:
        raise tls.CertificateError(f"--self-signed with the cluster's CA Secret: {exc}") from exc


def _from_cluster(args: argparse.Namespace, namespace: str, hosts: list[str],
                  connect: Callable[[str | None], Any] | None) -> tuple[CertPair, Callable[[], CertPair]]:
    now = utcnow()
    service_names = names.service_dns_names(args.service_name, namespace)
    if connect is None:
        from webhook.cluster import load_api_client

        connect = load_api_client
    api_client = kube.connect(connect, args.kubeconfig)
    ref = f"Secret {namespace}/{kube.CA_SECRET}"
    try:
        ca, created = kube.get_or_create_ca(api_client, namespace=namespace, make=lambda: new_authority(now=now),
                                            now=now)
    except CertsError as exc:
        if isinstance(exc, ClusterError):
            raise
        raise CertsError(f"{exc}; delete {ref} and restart the webhook to have a new CA made") from None
    def issue() -> CertPair:
        return tls.self_signed([*service_names, *hosts], ca=ca, common_name=service_names[2])

    pair = tls.self_signed([*service_names, *hosts], ca=ca, now=now, common_name=service_names[2])
    log.info("--self-signed: CA %s %s; serving %s", "created in" if created else "read from", ref, describe(pair.cert))
    for outcome in kube.patch_ca_bundles(api_client, ca.cert_pem, now=now):
        if outcome.ok:
            log.info("--self-signed: %s", outcome.text())
        else:
            log.warning("--self-signed: %s", outcome.text())
    return pair, issue
