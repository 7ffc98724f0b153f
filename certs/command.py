"""``netplexctl certs``: a CA and a serving certificate for the webhook's Service.

    netplexctl certs --out-dir DIR [--service netplex-webhook] [--namespace netplex-system]
                     [--san HOST]... [--days 365] [--ca-days 3650]
                     [--key-type ecdsa|rsa] [--rsa-bits 2048|3072|4096]
                     [--ca-cert FILE --ca-key FILE | --new-ca]
                     [--apply [--kubeconfig FILE] [--drop-previous-ca]]

Which CA signs: ``--ca-cert/--ca-key`` when given; else the ``ca.crt``/``ca.key`` already
in ``--out-dir`` (so running the same command again rotates the serving certificate and
keeps the ``caBundle`` valid); else a new CA, or always a new one with ``--new-ca``.
The files are described in :mod:`certs.files`; ``ca.key`` is written only for a CA made
by this run, so a CA key given with ``--ca-key`` is not copied around.

``--apply`` writes the pair to Secret ``netplex-webhook-tls`` in ``--namespace`` and sets
the caBundle of ``netplex-mutating`` and ``netplex-validating``; the previous CA stays in
the bundle next to the new one until it expires (:mod:`certs.bundle`), unless
``--drop-previous-ca``. The kubeconfig is ``--kubeconfig``, else ``$KUBECONFIG``, else
``~/.kube/config``, else the in-cluster service account; it is used before anything is
written, so a run that cannot reach the cluster changes nothing.

Exit status (as ``netplexctl check``): 0 done, 2 usage, file or API error, including a
webhook configuration that does not exist (everything else is still written).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from certs import CertsError
from certs.files import CA_CERT, CA_KEY

if TYPE_CHECKING:
    import datetime

    from certs.authority import Authority, CertPair
    from certs.keys import KeySpec

EXIT_OK, EXIT_ERROR = 0, 2
Connect = Callable[[str | None], Any]  # kubeconfig path (None: in-cluster) -> ApiClient


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``certs`` on ``netplexctl``'s subcommands."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "certs",
        help="make a CA and a serving certificate for the webhook's Service",
        description="Write a CA and a serving certificate for the webhook's Service as PEM files, "
        "and with --apply, to the cluster. Exit 0: done; 2: usage, file or API error.",
    )
    p.add_argument("--service", default="netplex-webhook", help="the webhook's Service (default: %(default)s)")
    p.add_argument("-n", "--namespace", default="netplex-system",
                   help="the Service's namespace, where --apply writes the Secret (default: %(default)s)")
    p.add_argument("--cluster-domain", default="cluster.local", help="(default: %(default)s)")
    p.add_argument("--san", action="append", default=[], metavar="HOST",
                   help="another DNS name or IP address for the certificate (repeatable)")
    p.add_argument("--days", type=int, default=365, help="serving certificate validity (default: %(default)s)")
    p.add_argument("--ca-days", type=int, default=3650, help="validity of a new CA (default: %(default)s)")
    p.add_argument("--key-type", choices=("ecdsa", "rsa"), default="ecdsa",
                   help="ECDSA P-256 or RSA (default: %(default)s)")
    p.add_argument("--rsa-bits", type=int, choices=(2048, 3072, 4096), help="RSA key size (default: 2048)")
    p.add_argument("--out-dir", type=Path, metavar="DIR",
                   help="write ca.crt, ca.key, tls.crt, tls.key and ca-bundle.b64 here")
    ca = p.add_argument_group("which CA signs (default: ca.crt/ca.key in --out-dir, else a new one)")
    ca.add_argument("--ca-cert", type=Path, metavar="FILE", help="an existing CA certificate (PEM)")
    ca.add_argument("--ca-key", type=Path, metavar="FILE", help="its private key (PEM)")
    ca.add_argument("--new-ca", action="store_true", help="make a new CA even if --out-dir has one")
    cluster = p.add_argument_group("writing to the cluster")
    cluster.add_argument("--apply", action="store_true",
                         help="write Secret netplex-webhook-tls and set the webhook configurations' caBundle")
    cluster.add_argument("--kubeconfig", metavar="FILE",
                         help="default: $KUBECONFIG, else ~/.kube/config, else in-cluster")
    cluster.add_argument("--drop-previous-ca", action="store_true",
                         help="trust only the new CA at once (default: keep the previous one until it expires)")
    return p


def usage_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with a combination of flags argparse cannot check, or None."""
    if args.out_dir is None and not args.apply:
        return "nothing to do: give --out-dir DIR to write files, --apply to write to the cluster, or both"
    if (args.ca_cert is None) != (args.ca_key is None):
        missing = "--ca-key" if args.ca_key is None else "--ca-cert"
        return f"--ca-cert and --ca-key go together; {missing} is missing"
    if args.new_ca and args.ca_cert is not None:
        return "--new-ca cannot be combined with --ca-cert/--ca-key; choose one"
    if args.rsa_bits is not None and args.key_type != "rsa":
        return f"--rsa-bits {args.rsa_bits} goes with --key-type rsa"
    for flag, value in (("--days", args.days), ("--ca-days", args.ca_days)):
        if value < 1:
            return f"{flag} {value}: must be at least 1"
    for flag, given in (("--kubeconfig", args.kubeconfig is not None), ("--drop-previous-ca", args.drop_previous_ca)):
        if given and not args.apply:
            return f"{flag} is only used with --apply"
    return None


def default_kubeconfig(environ: Mapping[str, str], home: Path) -> str | None:
    """kubectl's order: ``$KUBECONFIG`` (its first file), ``~/.kube/config``; None: in-cluster."""
    listed = [p for p in environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    if listed:
        return listed[0]
    path = home / ".kube" / "config"
    return str(path) if path.is_file() else None


def run(
    args: argparse.Namespace,
    out: TextIO,
    err: TextIO,
    *,
    connect: Connect,
    now: datetime.datetime | None = None,
) -> int:
    """Carry out ``netplexctl certs``; messages go to ``err``, what was done to ``out``."""
    problem = usage_problem(args)
    if problem:
        print(f"netplexctl certs: error: {problem}", file=err)
        return EXIT_ERROR
    try:
        return _run(args, out, err, connect=connect, now=now)
    except CertsError as exc:
        for line in str(exc).splitlines():
            print(f"netplexctl certs: {line}", file=err)
        return EXIT_ERROR


def _run(args: argparse.Namespace, out: TextIO, err: TextIO, *, connect: Connect,
         now: datetime.datetime | None) -> int:
    from certs import authority, bundle, files, names
    from certs.keys import KeySpec

    now = now or authority.utcnow()
    api_client = _connect(args, connect) if args.apply else None  # before anything is written
    spec = KeySpec(args.key_type, args.rsa_bits or 2048)
    service_names = names.service_dns_names(args.service, args.namespace, args.cluster_domain)
    hosts, problems = names.subject_hosts([*service_names, *args.san])
    if problems:
        raise CertsError("--san: " + "\n--san: ".join(problems))

    ca, made_here, origin = _authority(args, spec, now)
    issued = authority.issue_serving(ca, hosts, key=spec, days=args.days, now=now,
                                     common_name=service_names[2])  # svc.ns.svc: the name the API server calls
    print(f"CA: {origin}: {authority.describe(ca.cert_pem)}", file=out)
    print(f"serving certificate ({spec.describe()}): {authority.describe(issued.pair.cert)}", file=out)
    if issued.clamped:
        print(f"netplexctl certs: warning: the serving certificate ends with its CA, before the {args.days} "
              "days asked for; make a new CA (--new-ca) to issue for longer", file=err)

    if args.out_dir is not None:
        written = files.write_outputs(args.out_dir, files.outputs(
            ca_cert=ca.cert_pem, ca_key=ca.key_pem if made_here else None,
            cert=issued.pair.cert, key=issued.pair.key, bundle=bundle.encode(ca.cert_pem)))
        print("wrote " + ", ".join(map(str, written)), file=out)
    elif made_here:
        print("netplexctl certs: note: without --out-dir the new CA's key is not kept; the next run makes "
              "another CA (the previous one stays in caBundle until it expires)", file=err)
    if api_client is not None:
        return _apply(args, api_client, issued.pair, out, err, now=now)
    return EXIT_OK


def _authority(args: argparse.Namespace, spec: KeySpec, now: datetime.datetime) -> tuple[Authority, bool, str]:
    """The signing CA, whether this run made it, and where it came from (for the output)."""
    from certs import authority, files

    paths: tuple[Path, Path] | None = None
    if args.ca_cert is not None:
        paths = (args.ca_cert, args.ca_key)
        sources = (f"--ca-cert {args.ca_cert}", f"--ca-key {args.ca_key}")
    elif args.out_dir is not None and not args.new_ca:
        paths = _existing_authority(args.out_dir)
        sources = (str(args.out_dir / CA_CERT), str(args.out_dir / CA_KEY))
    if paths is None:
        made = authority.new_authority(key=spec, days=args.ca_days, now=now)
        return made, True, f"new {spec.describe()}"
    ca = authority.load_authority(files.read_pem(paths[0], "CA certificate"), files.read_pem(paths[1], "CA key"),
                                  now=now, cert_source=sources[0], key_source=sources[1])
    return ca, False, f"from {paths[0]}"


def _existing_authority(directory: Path) -> tuple[Path, Path] | None:
    """``(ca.crt, ca.key)`` in ``directory`` when both exist, None when neither does.

    One without the other is an error: making a new CA there would overwrite the half
    that is left, and with it the trust already given to it.
    """
    cert, key = directory / CA_CERT, directory / CA_KEY
    if cert.exists() and key.exists():
        return cert, key
    if cert.exists() or key.exists():
        present, missing = (cert, key) if cert.exists() else (key, cert)
        raise CertsError(f"{present} exists but {missing} does not; give --ca-cert and --ca-key, "
                         "or --new-ca to replace the CA")
    return None


def _connect(args: argparse.Namespace, connect: Connect) -> Any:
    """The API client, made before anything is written: a run that cannot reach the
    cluster leaves the files as they were."""
    from certs import kube

    return kube.connect(connect, args.kubeconfig or default_kubeconfig(os.environ, Path.home()))


def _apply(args: argparse.Namespace, api_client: Any, pair: CertPair, out: TextIO, err: TextIO, *,
           now: datetime.datetime) -> int:
    from certs import bundle, kube

    secret = kube.tls_secret(pair, namespace=args.namespace)
    state = kube.apply_tls_secret(api_client, secret)
    print(f"Secret {args.namespace}/{kube.TLS_SECRET}: {state}", file=out)
    outcomes = kube.patch_ca_bundles(api_client, pair.ca, now=now,
                                      keep=0 if args.drop_previous_ca else bundle.PREVIOUS_CAS_KEPT)
    for outcome in outcomes:
        print(outcome.text() if outcome.ok else f"netplexctl certs: {outcome.text()}", file=out if outcome.ok else err)
    return EXIT_OK if all(o.ok for o in outcomes) else EXIT_ERROR
