"""certs.authority and certs.keys: the CA and serving certificate profiles, the chain, expiry.

The chain is checked twice: by ``cryptography`` (signature and issuer) and by a real
TLS handshake on loopback where ``ssl`` with ``VERIFY_X509_STRICT`` verifies the
webhook's production server context for the name the API server calls.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from certs import CertsError
from certs.authority import Authority, issue_serving, load_authority, new_authority
from certs.keys import KeySpec, load_key
from certs.names import parse_host, service_dns_names
from tests.webhook.conftest import ScriptedHandler, running_server
from webhook import tls
from webhook.app import create_app

from .conftest import NOW, SERVICE_HOST, verified_certificate

DAY = datetime.timedelta(days=1)
HOSTS = [*service_dns_names("netplex-webhook", "netplex-system"), ipaddress.ip_address("127.0.0.1")]


@pytest.fixture(scope="module")
def ca() -> Authority:
    return new_authority(now=NOW)


def leaf(ca: Authority, *, days: int = 365, key: KeySpec | None = None) -> x509.Certificate:
    return issue_serving(ca, HOSTS, now=NOW, days=days, key=key).cert


@pytest.fixture(scope="module")
def serving(ca: Authority) -> x509.Certificate:
    return leaf(ca)


def extension(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.Extension[x509.ExtensionType]:
    return cert.extensions.get_extension_for_class(kind)


# -- profiles -----------------------------------------------------------------------------


def test_the_ca_signs_leaves_only_and_may_only_sign(ca: Authority) -> None:
    constraints = extension(ca.cert, x509.BasicConstraints)
    usage = extension(ca.cert, x509.KeyUsage)

    assert constraints.critical and constraints.value == x509.BasicConstraints(ca=True, path_length=0)
    assert usage.critical
    assert (usage.value.key_cert_sign, usage.value.crl_sign, usage.value.digital_signature,
            usage.value.key_encipherment) == (True, True, False, False)
    assert ca.cert.issuer == ca.cert.subject
    ca.cert.verify_directly_issued_by(ca.cert)


def test_the_serving_certificate_names_the_service_four_ways_and_the_extra_ip(serving: x509.Certificate) -> None:
    sans = extension(serving, x509.SubjectAlternativeName).value

    assert sans.get_values_for_type(x509.DNSName) == [
        "netplex-webhook", "netplex-webhook.netplex-system", "netplex-webhook.netplex-system.svc",
        "netplex-webhook.netplex-system.svc.cluster.local",
    ]
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert serving.subject.rfc4514_string() == "CN=netplex-webhook"


def test_the_serving_certificate_can_serve_and_cannot_sign(serving: x509.Certificate) -> None:
    usage = extension(serving, x509.KeyUsage)

    assert extension(serving, x509.BasicConstraints).value.ca is False
    assert usage.critical and usage.value.digital_signature and not usage.value.key_encipherment
    assert not usage.value.key_cert_sign
    assert list(extension(serving, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_the_serving_certificate_is_signed_by_the_ca_and_names_its_key(
    ca: Authority, serving: x509.Certificate
) -> None:
    serving.verify_directly_issued_by(ca.cert)  # raises on a wrong issuer or signature
    ca_ski = extension(ca.cert, x509.SubjectKeyIdentifier).value.digest

    assert extension(serving, x509.AuthorityKeyIdentifier).value.key_identifier == ca_ski
    assert extension(serving, x509.SubjectKeyIdentifier).value.digest != ca_ski


def test_a_leaf_signed_by_another_ca_does_not_verify(serving: x509.Certificate) -> None:
    other = new_authority(now=NOW)

    assert other.cert.subject == serving.issuer  # same name, another key: only the signature tells
    with pytest.raises(InvalidSignature):
        serving.verify_directly_issued_by(other.cert)


def test_keys_are_ecdsa_p256_by_default(ca: Authority, serving: x509.Certificate) -> None:
    for cert in (ca.cert, serving):
        key = cert.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
        assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)


@pytest.mark.parametrize("bits", [2048, 3072])
def test_rsa_keys_have_the_asked_size_and_the_leaf_allows_key_encipherment(bits: int) -> None:
    ca = new_authority(key=KeySpec("rsa", bits), now=NOW)
    cert = leaf(ca, key=KeySpec("rsa", bits))

    for c in (ca.cert, cert):
        key = c.public_key()
        assert isinstance(key, rsa.RSAPublicKey) and key.key_size == bits
    usage = extension(cert, x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment
    cert.verify_directly_issued_by(ca.cert)


def test_an_rsa_ca_can_issue_an_ecdsa_leaf() -> None:
    ca = new_authority(key=KeySpec("rsa", 2048), now=NOW)
    cert = leaf(ca)

    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    cert.verify_directly_issued_by(ca.cert)


def test_an_unsupported_rsa_size_is_refused_with_the_sizes() -> None:
    with pytest.raises(CertsError) as caught:
        KeySpec("rsa", 1024)

    assert str(caught.value) == "RSA key size 1024 is not supported; use one of 2048, 3072, 4096"


# -- validity -----------------------------------------------------------------------------


def test_validity_starts_five_minutes_back_and_lasts_the_days_asked(ca: Authority) -> None:
    cert = leaf(ca, days=30)

    assert cert.not_valid_before_utc == NOW - datetime.timedelta(minutes=5)
    assert cert.not_valid_after_utc == NOW + 30 * DAY
    assert ca.cert.not_valid_after_utc == NOW + 3650 * DAY


def test_a_serving_certificate_never_outlives_its_ca() -> None:
    short_ca = new_authority(days=10, now=NOW)
    issued = issue_serving(short_ca, HOSTS, days=365, now=NOW)

    assert issued.clamped is True
    assert issued.cert.not_valid_after_utc == short_ca.cert.not_valid_after_utc == NOW + 10 * DAY
    assert issue_serving(short_ca, HOSTS, days=9, now=NOW).clamped is False


def test_an_expired_ca_issues_nothing(ca: Authority) -> None:
    later = NOW + 3651 * DAY

    with pytest.raises(CertsError) as caught:
        issue_serving(ca, HOSTS, now=later)

    assert str(caught.value) == (
        "CA certificate: CN=netplex-webhook CA expired on 2036-02-27T12:00:00+00:00; "
        "a new serving certificate needs a valid CA"
    )


@pytest.mark.parametrize("days", [0, -3])
def test_zero_or_negative_days_are_refused(ca: Authority, days: int) -> None:
    with pytest.raises(CertsError) as caught:
        issue_serving(ca, HOSTS, days=days, now=NOW)

    assert str(caught.value) == f"certificate validity of {days} days: must be at least 1 day"


def test_a_certificate_needs_a_name(ca: Authority) -> None:
    with pytest.raises(CertsError) as caught:
        issue_serving(ca, [], now=NOW)

    assert str(caught.value) == "a serving certificate needs at least one DNS name or IP address"


# -- loading a CA back --------------------------------------------------------------------


def test_a_ca_written_as_pem_loads_back_and_keeps_issuing(ca: Authority) -> None:
    again = load_authority(ca.cert_pem, ca.key_pem, now=NOW)

    assert again.cert == ca.cert
    leaf(again).verify_directly_issued_by(ca.cert)


def test_an_expired_ca_is_refused_when_loaded(ca: Authority) -> None:
    with pytest.raises(CertsError) as caught:
        load_authority(ca.cert_pem, ca.key_pem, now=NOW + 4000 * DAY, cert_source="--ca-cert ca.crt")

    assert str(caught.value) == "--ca-cert ca.crt: CN=netplex-webhook CA expired on 2036-02-27T12:00:00+00:00"


def test_a_ca_from_the_future_is_refused_when_loaded(ca: Authority) -> None:
    with pytest.raises(CertsError) as caught:
        load_authority(ca.cert_pem, ca.key_pem, now=NOW - DAY)

    assert str(caught.value) == "CA certificate: CN=netplex-webhook CA is not valid before 2026-03-01T11:55:00+00:00"


def test_a_serving_certificate_given_as_the_ca_is_refused(ca: Authority) -> None:
    issued = issue_serving(ca, HOSTS, now=NOW).pair

    with pytest.raises(CertsError) as caught:
        load_authority(issued.cert, issued.key, now=NOW)

    assert str(caught.value) == (
        "CA certificate: CN=netplex-webhook is not a CA (no BasicConstraints ca=true); "
        "give the CA's certificate, not a serving certificate"
    )


def test_the_key_of_another_ca_is_refused(ca: Authority) -> None:
    other = new_authority(now=NOW)

    with pytest.raises(CertsError) as caught:
        load_authority(ca.cert_pem, other.key_pem, now=NOW, cert_source="ca.crt", key_source="other.key")

    assert str(caught.value) == "other.key is not the key of ca.crt (CN=netplex-webhook CA)"


@pytest.mark.parametrize(
    ("cert_pem", "key_pem", "message"),
    [
        (b"not a certificate", None, "CA certificate: not a PEM certificate"),
        (None, b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "CA key: not a PEM private key"),
    ],
)
def test_unreadable_pem_is_named(ca: Authority, cert_pem: bytes | None, key_pem: bytes | None, message: str) -> None:
    with pytest.raises(CertsError) as caught:
        load_authority(cert_pem or ca.cert_pem, key_pem or ca.key_pem, now=NOW)

    assert str(caught.value) == message


def test_an_encrypted_key_is_refused_with_a_hint(ca: Authority) -> None:
    encrypted = ca.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.BestAvailableEncryption(b"secret"))

    with pytest.raises(CertsError) as caught:
        load_key(encrypted, "--ca-key ca.key")

    assert str(caught.value) == "--ca-key ca.key: the private key is encrypted; give an unencrypted PEM key"


# -- over real TLS ------------------------------------------------------------------------


@pytest.fixture
def served(request: pytest.FixtureRequest) -> Iterator[tuple[int, Authority, x509.Certificate]]:
    """The production webhook server on loopback, serving a certificate from a fresh CA."""
    spec = KeySpec(*request.param) if hasattr(request, "param") else KeySpec()
    authority = new_authority(key=spec)
    issued = issue_serving(authority, [*HOSTS, parse_host("::1")], key=spec)
    ctx = tls.context_from_pem(issued.pair.cert, issued.pair.key)
    with running_server(create_app(ScriptedHandler()), ctx) as port:
        yield port, authority, issued.cert


@pytest.mark.parametrize("served", [("ecdsa", 2048), ("rsa", 2048)], indirect=True, ids=["ecdsa", "rsa"])
def test_a_strict_tls_client_trusting_the_ca_verifies_the_service_name(
    served: tuple[int, Authority, x509.Certificate],
) -> None:
    port, authority, cert = served

    for name in (SERVICE_HOST, "netplex-webhook.netplex-system.svc.cluster.local", "127.0.0.1"):
        assert verified_certificate(port, authority.cert_pem, name).serial_number == cert.serial_number


def test_a_name_not_in_the_certificate_fails_the_handshake(served: tuple[int, Authority, x509.Certificate]) -> None:
    port, authority, _ = served

    with pytest.raises(ssl.SSLCertVerificationError) as caught:
        verified_certificate(port, authority.cert_pem, "other.netplex-system.svc")

    assert caught.value.verify_message == "Hostname mismatch, certificate is not valid for 'other.netplex-system.svc'."


def test_a_client_trusting_another_ca_fails_the_handshake(served: tuple[int, Authority, x509.Certificate]) -> None:
    port, _, _ = served

    with pytest.raises(ssl.SSLCertVerificationError) as caught:
        verified_certificate(port, new_authority().cert_pem)

    assert caught.value.verify_message == "unable to get local issuer certificate"


def test_an_expired_serving_certificate_fails_the_handshake() -> None:
    long_ago = datetime.datetime.now(datetime.UTC) - 10 * DAY
    authority = new_authority(now=long_ago)
    issued = issue_serving(authority, HOSTS, days=2, now=long_ago)
    ctx = tls.context_from_pem(issued.pair.cert, issued.pair.key)

    with running_server(create_app(ScriptedHandler()), ctx) as port, \
            pytest.raises(ssl.SSLCertVerificationError) as caught:
        verified_certificate(port, authority.cert_pem)

    assert caught.value.verify_message == "certificate has expired"
