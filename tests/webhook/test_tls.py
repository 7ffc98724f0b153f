"""webhook.tls: generated certificates, the server context, and reload without restart.

Reload tests run the production uvicorn server on loopback and look at the certificate
it presents in a fresh TLS handshake after each change on disk.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import socket
import ssl
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from webhook import tls
from webhook.app import create_app

from .conftest import (
    Leaf,
    ScriptedHandler,
    leaf_key,
    make_leaf,
    presented_certificate,
    presented_fingerprint,
    running_server,
)

# -- self_signed --------------------------------------------------------------------------


def test_self_signed_serving_certificate_is_issued_by_the_ca_for_loopback_and_the_given_hosts() -> None:
    pair = tls.self_signed(["webhook.netplex.svc", "10.96.0.42"])
    ca = x509.load_pem_x509_certificate(pair.ca)
    cert = x509.load_pem_x509_certificate(pair.cert)

    cert.verify_directly_issued_by(ca)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost", "webhook.netplex.svc"]
    assert sans.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
        ipaddress.ip_address("10.96.0.42"),
    ]


def test_self_signed_keys_are_ecdsa_p256() -> None:
    pair = tls.self_signed([])

    for pem in (pair.ca, pair.cert):
        key = x509.load_pem_x509_certificate(pem).public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"


def test_self_signed_ca_can_only_sign_and_the_serving_certificate_can_only_serve() -> None:
    pair = tls.self_signed([])
    ca = x509.load_pem_x509_certificate(pair.ca)
    cert = x509.load_pem_x509_certificate(pair.cert)

    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign is True
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_wildcard_listen_addresses_are_not_put_in_the_certificate() -> None:
    cert = x509.load_pem_x509_certificate(tls.self_signed(["0.0.0.0", "::", " "]).cert)

    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(n.value) for n in sans] == ["127.0.0.1", "::1", "localhost"]


def test_self_signed_certificate_passes_a_strict_x509_client_over_real_tls(cert_pair: tls.CertPair, tmp_path: Path) -> None:
    ctx = tls.context_from_pem(cert_pair.cert, cert_pair.key)
    client = ssl.create_default_context(cadata=cert_pair.ca.decode())
    client.verify_flags |= ssl.VERIFY_X509_STRICT

    with running_server(create_app(ScriptedHandler()), ctx) as port:
        for host in ("127.0.0.1", "localhost"):
            with socket.create_connection(("127.0.0.1", port)) as raw, client.wrap_socket(raw, server_hostname=host) as conn:
                assert conn.version() in ("TLSv1.2", "TLSv1.3")


# -- server_ssl_context -------------------------------------------------------------------


def write_pair(directory: Path, leaf: Leaf) -> tuple[Path, Path]:
    cert, key = directory / "tls.crt", directory / "tls.key"
    cert.write_bytes(leaf.cert)
    key.write_bytes(leaf.key)
    return cert, key


def test_server_context_refuses_protocols_below_tls_1_2_and_compression(tmp_path: Path) -> None:
    ctx = tls.server_ssl_context(*write_pair(tmp_path, make_leaf("a")))

    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.options & ssl.OP_NO_COMPRESSION
    assert ctx.options & ssl.OP_NO_RENEGOTIATION


def test_server_context_with_a_key_of_another_certificate_is_refused(tmp_path: Path) -> None:
    cert, _ = write_pair(tmp_path, make_leaf("a"))
    other = tmp_path / "other.key"
    other.write_bytes(make_leaf("b").key)

    with pytest.raises(tls.CertificateError) as caught:
        tls.server_ssl_context(cert, other)

    assert re.fullmatch(
        rf"cannot load certificate '{re.escape(str(cert))}' with key '{re.escape(str(other))}': "
        r"\[X509: KEY_VALUES_MISMATCH\] key values mismatch \(_ssl\.c:\d+\)",
        str(caught.value),
    )


def test_server_context_with_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(tls.CertificateError) as caught:
        tls.server_ssl_context(tmp_path / "nope.crt", tmp_path / "nope.key")

    assert str(caught.value) == (
        f"cannot load certificate '{tmp_path}/nope.crt' with key '{tmp_path}/nope.key': "
        "[Errno 2] No such file or directory"
    )


def test_context_from_pem_leaves_no_copy_of_the_key_behind(cert_pair: tls.CertPair) -> None:
    places = [Path("/dev/shm"), Path(tempfile.gettempdir())]

    def leftovers() -> set[str]:
        return {p.name for d in places if d.is_dir() for p in d.iterdir() if p.name.startswith("netplex-tls-")}

    before = leftovers()
    tls.context_from_pem(cert_pair.cert, cert_pair.key)

    assert leftovers() == before


# -- CertReloader -------------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[int, tls.CertReloader, Path, Path, Leaf]]:
    """A real server started from files, with a reloader that has done its first check."""
    first = make_leaf("first")
    cert, key = write_pair(tmp_path, first)
    ctx = tls.server_ssl_context(cert, key)
    reloader = tls.CertReloader(ctx, cert, key, interval=60)
    assert reloader.check() is True
    with running_server(create_app(ScriptedHandler()), ctx) as port:
        yield port, reloader, cert, key, first


def test_garbage_then_a_mismatched_key_are_ignored_and_a_good_new_pair_is_served(
    served: tuple[int, tls.CertReloader, Path, Path, Leaf], caplog: pytest.LogCaptureFixture
) -> None:
    port, reloader, cert, key, first = served
    second = make_leaf("second")
    caplog.set_level(logging.INFO, logger="netplex.webhook")

    cert.write_bytes(second.cert[:100])  # half-written certificate
    assert reloader.check() is False
    assert presented_fingerprint(port) == first.fingerprint

    cert.write_bytes(second.cert)  # the whole certificate, the old key still in place
    assert reloader.check() is False
    assert presented_fingerprint(port) == first.fingerprint

    key.write_bytes(second.key)  # now a matching pair
    assert reloader.check() is True
    assert presented_fingerprint(port) == second.fingerprint

    garbage, mismatch, reloaded = caplog.messages
    prefix = f"certificate reload: {cert} and {key} do not form a usable pair (cannot load certificate "
    suffix = "); still serving the previous certificate"
    assert garbage.startswith(prefix) and garbage.endswith(suffix)
    assert "[SSL] PEM lib" in garbage
    assert mismatch.startswith(prefix) and mismatch.endswith(suffix)
    assert "[X509: KEY_VALUES_MISMATCH] key values mismatch" in mismatch
    assert re.fullmatch(r"certificate reload: now serving CN=second \(SANs 127\.0\.0\.1; expires \S+\)", reloaded)


def test_the_same_bad_content_is_reported_once_not_at_every_poll(
    served: tuple[int, tls.CertReloader, Path, Path, Leaf], caplog: pytest.LogCaptureFixture
) -> None:
    _, reloader, cert, _, _ = served
    cert.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64\n")

    with caplog.at_level(logging.ERROR, logger="netplex.webhook"):
        results = [reloader.check() for _ in range(3)]

    assert results == [False, False, False]
    assert len(caplog.messages) == 1
    assert caplog.messages[0].endswith("still serving the previous certificate")


def test_renewal_that_keeps_the_key_is_served(served: tuple[int, tls.CertReloader, Path, Path, Leaf]) -> None:
    port, reloader, cert, _, first = served
    renewed = make_leaf("first-renewed", key=leaf_key(first))

    cert.write_bytes(renewed.cert)  # cert-manager with rotationPolicy: Never changes only tls.crt

    assert reloader.check() is True
    assert presented_fingerprint(port) == renewed.fingerprint


def test_switching_from_an_ec_to_an_rsa_key_serves_only_the_new_certificate(
    served: tuple[int, tls.CertReloader, Path, Path, Leaf],
) -> None:
    port, reloader, cert, _, _ = served
    rsa_leaf = make_leaf("now-rsa", key_type="rsa")

    write_pair(cert.parent, rsa_leaf)

    assert reloader.check() is True
    assert presented_fingerprint(port) == rsa_leaf.fingerprint


def test_loading_a_new_pair_into_the_served_context_would_keep_the_old_ec_certificate(tmp_path: Path) -> None:
    """Why CertReloader swaps contexts instead of calling load_cert_chain again."""
    ec_leaf, rsa_leaf = make_leaf("old-ec"), make_leaf("new-rsa", key_type="rsa")
    ctx = tls.server_ssl_context(*write_pair(tmp_path, ec_leaf))
    ctx.load_cert_chain(*write_pair(tmp_path, rsa_leaf))

    with running_server(create_app(ScriptedHandler()), ctx) as port:
        assert presented_fingerprint(port) == ec_leaf.fingerprint


def test_unreadable_files_are_logged_and_the_old_certificate_keeps_serving(
    served: tuple[int, tls.CertReloader, Path, Path, Leaf], caplog: pytest.LogCaptureFixture
) -> None:
    port, reloader, _, key, first = served
    key.unlink()

    with caplog.at_level(logging.WARNING, logger="netplex.webhook"):
        assert reloader.check() is False

    assert presented_fingerprint(port) == first.fingerprint
    assert caplog.messages == [
        f"certificate reload: cannot read the pair ([Errno 2] No such file or directory: '{key}'); "
        "still serving the previous certificate"
    ]


def test_a_secret_volume_update_through_the_data_symlink_is_followed(tmp_path: Path) -> None:
    """The kubelet's atomic writer: tls.crt -> ..data/tls.crt, ..data -> ..<timestamp>/."""

    def publish(leaf: Leaf, stamp: str) -> None:
        version = tmp_path / f"..{stamp}"
        version.mkdir()
        write_pair(version, leaf)
        (tmp_path / "..data_tmp").symlink_to(version.name)
        os.replace(tmp_path / "..data_tmp", tmp_path / "..data")

    first, second = make_leaf("v1"), make_leaf("v2")
    publish(first, "2026_01_01_00_00_00.1")
    for name in ("tls.crt", "tls.key"):
        (tmp_path / name).symlink_to(f"..data/{name}")
    ctx = tls.server_ssl_context(tmp_path / "tls.crt", tmp_path / "tls.key")
    reloader = tls.CertReloader(ctx, tmp_path / "tls.crt", tmp_path / "tls.key")
    reloader.check()

    with running_server(create_app(ScriptedHandler()), ctx) as port:
        assert presented_fingerprint(port) == first.fingerprint
        publish(second, "2026_02_01_00_00_00.2")
        assert reloader.check() is True
        assert presented_fingerprint(port) == second.fingerprint


def test_the_reloader_thread_picks_up_a_new_pair_on_its_own(tmp_path: Path) -> None:
    first, second = make_leaf("first"), make_leaf("second")
    cert, key = write_pair(tmp_path, first)
    ctx = tls.server_ssl_context(cert, key)

    with (
        running_server(create_app(ScriptedHandler()), ctx) as port,
        tls.CertReloader(ctx, cert, key, interval=0.05) as reloader,
    ):
        write_pair(tmp_path, second)
        deadline = time.monotonic() + 10
        while presented_fingerprint(port) != second.fingerprint and time.monotonic() < deadline:
            time.sleep(0.05)

        assert presented_fingerprint(port) == second.fingerprint
        assert presented_certificate(port).subject.rfc4514_string() == "CN=second"
        assert reloader.current is not ctx


# -- CertRenewer --------------------------------------------------------------------------


def test_an_in_memory_certificate_is_renewed_from_the_same_ca_once_two_thirds_of_it_passed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from webhook.selfsigned import serving_pair
    from webhook.server import build_parser

    issued = serving_pair(build_parser().parse_args(["--self-signed"]), ["127.0.0.1"], environ={})
    first = x509.load_pem_x509_certificate(issued.pair.cert)
    lifetime = first.not_valid_after_utc - first.not_valid_before_utc
    now = [first.not_valid_before_utc + lifetime / 2]
    ctx = tls.context_from_pem(issued.pair.cert, issued.pair.key)
    renewer = tls.CertRenewer(ctx, issued.pair.cert, issued.renew, clock=lambda: now[0])
    assert renewer.renew_at == first.not_valid_before_utc + lifetime * 2 / 3
    caplog.set_level(logging.INFO, logger="netplex.webhook")

    with running_server(create_app(ScriptedHandler()), ctx) as port:
        assert renewer.check() is False  # half-way: not yet
        assert presented_certificate(port).serial_number == first.serial_number

        now[0] = renewer.renew_at
        assert renewer.check() is True
        served = presented_certificate(port)

    assert served.serial_number != first.serial_number
    served.verify_directly_issued_by(x509.load_pem_x509_certificate(issued.pair.ca))  # caBundle still right
    # the next renewal is two thirds into the new certificate (issued at the real time)
    assert renewer.renew_at == served.not_valid_before_utc + (served.not_valid_after_utc - served.not_valid_before_utc) * 2 / 3
    assert re.fullmatch(r"certificate renewal: now serving .*", caplog.messages[-1])


def test_a_failed_renewal_keeps_the_old_certificate_and_is_retried(caplog: pytest.LogCaptureFixture) -> None:
    pair = tls.self_signed([])
    ctx = tls.context_from_pem(pair.cert, pair.key)
    attempts: list[int] = []

    def issue() -> tls.CertPair:
        attempts.append(1)
        if len(attempts) == 1:
            raise tls.CertificateError("the CA expired on 2036-01-01")
        return tls.self_signed([])

    far = x509.load_pem_x509_certificate(pair.cert).not_valid_after_utc
    renewer = tls.CertRenewer(ctx, pair.cert, issue, interval=60, clock=lambda: far)

    with caplog.at_level(logging.ERROR, logger="netplex.webhook"):
        assert renewer.check() is False
    assert renewer.current is ctx
    assert caplog.messages == [
        "certificate renewal failed (the CA expired on 2036-01-01); still serving the previous "
        "certificate, will retry in 60 s"
    ]
    assert renewer.check() is True and renewer.current is not ctx and len(attempts) == 2


def test_renew_after_must_be_a_fraction() -> None:
    pair = tls.self_signed([])
    with pytest.raises(ValueError, match=r"renew_after must be between 0 and 1, got 1\.5"):
        tls.CertRenewer(tls.context_from_pem(pair.cert, pair.key), pair.cert, lambda: pair, renew_after=1.5)
