"""A certificate authority and the serving certificates it issues (pure: no files, no clock).

The API server trusts a webhook through ``caBundle``, a CA certificate, not through the
serving certificate itself. Keeping the CA (its key) and issuing a fresh serving
certificate from it is what lets a certificate rotate without touching ``caBundle``;
:func:`load_authority` is the way back in for a CA written earlier.

Profiles (what the API server's Go TLS client and ``ssl`` with ``VERIFY_X509_STRICT``
check):

- CA: ``BasicConstraints(ca=True, path_length=0)`` (it signs leaves only), ``KeyUsage``
  keyCertSign + cRLSign, both critical; subject key identifier.
- serving certificate: ``BasicConstraints(ca=False)``, ``KeyUsage`` digitalSignature
  (+ keyEncipherment for RSA, for RSA key exchange), ``ExtendedKeyUsage`` serverAuth,
  the SANs, subject and authority key identifiers.

Both start five minutes in the past, so a node whose clock is a little behind accepts
them at once. A serving certificate never outlives its CA: its end is cut to the CA's
(:attr:`Issued.clamped` says so), since a chain is only valid while every link is.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs import CertsError
from certs.keys import KeySpec, PrivateKey, belongs_to, generate_key, key_pem, load_key
from certs.names import Host

CA_COMMON_NAME = "netplex-webhook CA"
LEAF_COMMON_NAME = "netplex-webhook"
CA_DAYS = 3650
LEAF_DAYS = 365
CLOCK_SKEW = datetime.timedelta(minutes=5)
_CN_MAX = 64  # X.520 ub-common-name


@dataclass(frozen=True, slots=True)
class Authority:
    """A CA certificate with its private key: what can issue serving certificates."""

    cert: x509.Certificate
    key: PrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return key_pem(self.key)


@dataclass(frozen=True, slots=True)
class CertPair:
    """PEM bytes: the CA that signed ``cert`` (the caBundle), the serving cert, its key."""

    ca: bytes
    cert: bytes
    key: bytes


@dataclass(frozen=True, slots=True)
class Issued:
    """A serving certificate just issued; ``clamped``: its end was cut to the CA's end."""

    pair: CertPair
    cert: x509.Certificate
    clamped: bool


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def new_authority(
    *,
    key: KeySpec | None = None,
    days: int = CA_DAYS,
    now: datetime.datetime | None = None,
    common_name: str = CA_COMMON_NAME,
) -> Authority:
    """A new self-signed CA valid for ``days`` from ``now``."""
    _check_days(days, "CA validity")
    now = now or utcnow()
    private = generate_key(key or KeySpec())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    ski = x509.SubjectKeyIdentifier.from_public_key(private.public_key())
    cert = (
        _builder(name, name, private, now - CLOCK_SKEW, now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(private, hashes.SHA256())
    )
    return Authority(cert, private)


def load_authority(
    cert_pem: bytes,
    key_pem_bytes: bytes,
    *,
    now: datetime.datetime | None = None,
    cert_source: str = "CA certificate",
    key_source: str = "CA key",
) -> Authority:
    """A CA read back from PEM, checked before anything is signed with it.

    Raises :class:`CertsError` when the certificate is unreadable, is not a CA that may
    sign certificates, is expired or not yet valid, or when the key is not its key. The
    sources (a file, a Secret's key) start each message.
    """
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        raise CertsError(f"{cert_source}: not a PEM certificate") from None
    key = load_key(key_pem_bytes, key_source)
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise CertsError(f"{cert_source}: {_subject(cert)} is not a CA (no BasicConstraints ca=true); "
                         "give the CA's certificate, not a serving certificate")
    try:
        may_sign = cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    except x509.ExtensionNotFound:
        may_sign = True  # no KeyUsage: not restricted
    if not may_sign:
        raise CertsError(f"{cert_source}: {_subject(cert)} may not sign certificates (KeyUsage without keyCertSign)")
    problem = validity_problem(cert, now or utcnow())
    if problem:
        raise CertsError(f"{cert_source}: {_subject(cert)} {problem}")
    if not belongs_to(key, cert.public_key()):
        raise CertsError(f"{key_source} is not the key of {cert_source} ({_subject(cert)})")
    return Authority(cert, key)


def issue_serving(
    ca: Authority,
    hosts: Sequence[Host],
    *,
    key: KeySpec | None = None,
    days: int = LEAF_DAYS,
    now: datetime.datetime | None = None,
    common_name: str | None = None,
) -> Issued:
    """A serving certificate for ``hosts`` signed by ``ca``, with a new key.

    The common name defaults to the first DNS name other than ``localhost`` (clients use
    the SANs; the CN is for people reading logs). Raises :class:`CertsError` for no hosts, a bad ``days`` or a CA
    that is no longer valid at ``now``.
    """
    _check_days(days, "certificate validity")
    if not hosts:
        raise CertsError("a serving certificate needs at least one DNS name or IP address")
    now = now or utcnow()
    problem = validity_problem(ca.cert, now)
    if problem:
        raise CertsError(f"CA certificate: {_subject(ca.cert)} {problem}; a new serving certificate needs a valid CA")
    spec = key or KeySpec()
    private = generate_key(spec)
    wanted_end = now + datetime.timedelta(days=days)
    end = min(wanted_end, ca.cert.not_valid_after_utc)
    cert = (
        _builder(_leaf_name(hosts, common_name), ca.cert.subject, private, now - CLOCK_SKEW, end)
        .add_extension(x509.SubjectAlternativeName([_general_name(h) for h in hosts]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True, key_encipherment=spec.type == "rsa"), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(private.public_key()), critical=False)
        .add_extension(_authority_key_id(ca), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    pair = CertPair(ca=ca.cert_pem, cert=cert.public_bytes(serialization.Encoding.PEM), key=key_pem(private))
    return Issued(pair, cert, clamped=end < wanted_end)


def validity_problem(cert: x509.Certificate, now: datetime.datetime) -> str | None:
    """``expired on ...`` or ``is not valid before ...`` when ``now`` is outside the window."""
    if now >= cert.not_valid_after_utc:
        return f"expired on {cert.not_valid_after_utc.isoformat()}"
    if now < cert.not_valid_before_utc:
        return f"is not valid before {cert.not_valid_before_utc.isoformat()}"
    return None


def describe(cert_pem: bytes) -> str:
    """``subject (SANs ...; expires ...)`` of the first certificate in a PEM chain, for logs."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        return "an unparseable certificate"
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n.value) for n in sans]
    except x509.ExtensionNotFound:
        names = []
    return (
        f"{_subject(cert)} (SANs {', '.join(names) or 'none'}; "
        f"expires {cert.not_valid_after_utc.isoformat()})"
    )


def _subject(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "(empty subject)"


def _check_days(days: int, what: str) -> None:
    if days < 1:
        raise CertsError(f"{what} of {days} days: must be at least 1 day")


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    key: PrivateKey,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )


def _key_usage(
    *,
    digital_signature: bool = False,
    key_encipherment: bool = False,
    key_cert_sign: bool = False,
    crl_sign: bool = False,
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _authority_key_id(ca: Authority) -> x509.AuthorityKeyIdentifier:
    """From the CA's own subject key identifier when it has one, so the two match exactly
    (a CA made elsewhere may have computed it another way)."""
    try:
        ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key())
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _leaf_name(hosts: Sequence[Host], common_name: str | None) -> x509.Name:
    if common_name is None:  # the first DNS name that says which server this is
        dns = [h for h in hosts if isinstance(h, str) and h != "localhost" and len(h) <= _CN_MAX]
        common_name = dns[0] if dns else LEAF_COMMON_NAME
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _general_name(host: Host) -> x509.GeneralName:
    if isinstance(host, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return x509.IPAddress(host)
    return x509.DNSName(host)
