"""certs.bundle: the caBundle text, and the previous CA kept trusted during a CA change."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509

from certs import CertsError
from certs.authority import new_authority
from certs.bundle import decode, encode, rotated_bundle

from .conftest import NOW

DAY = datetime.timedelta(days=1)
OLD = new_authority(now=NOW - 100 * DAY, days=3650)
NEW = new_authority(now=NOW)


def serials(pem: bytes) -> list[int]:
    return [c.serial_number for c in x509.load_pem_x509_certificates(pem)]


def test_a_bundle_is_one_line_of_base64_of_the_pem() -> None:
    text = encode(NEW.cert_pem)

    assert "\n" not in text
    assert decode(text, "bundle") == NEW.cert_pem


def test_text_that_is_not_base64_is_named_in_the_error() -> None:
    with pytest.raises(CertsError) as caught:
        decode("not base64!", "MutatingWebhookConfiguration netplex-mutating")

    assert str(caught.value) == "MutatingWebhookConfiguration netplex-mutating: caBundle is not valid base64"


def test_the_new_ca_comes_first_and_the_previous_one_stays_trusted() -> None:
    bundle = rotated_bundle(NEW.cert_pem, OLD.cert_pem, now=NOW)

    assert serials(bundle) == [NEW.cert.serial_number, OLD.cert.serial_number]


def test_rotating_again_with_the_same_ca_changes_nothing() -> None:
    once = rotated_bundle(NEW.cert_pem, OLD.cert_pem, now=NOW)

    assert rotated_bundle(NEW.cert_pem, once, now=NOW) == once


def test_only_the_most_recent_previous_ca_is_kept() -> None:
    newest = new_authority(now=NOW)
    bundle = rotated_bundle(newest.cert_pem, rotated_bundle(NEW.cert_pem, OLD.cert_pem, now=NOW), now=NOW)

    assert serials(bundle) == [newest.cert.serial_number, NEW.cert.serial_number]


def test_an_expired_previous_ca_is_dropped() -> None:
    expired = new_authority(now=NOW - 10 * DAY, days=5)

    assert rotated_bundle(NEW.cert_pem, expired.cert_pem, now=NOW) == NEW.cert_pem


def test_keep_zero_trusts_only_the_new_ca() -> None:
    assert rotated_bundle(NEW.cert_pem, OLD.cert_pem, now=NOW, keep=0) == NEW.cert_pem


@pytest.mark.parametrize("previous", [b"", b"garbage", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"])
def test_an_empty_or_unreadable_previous_bundle_is_replaced(previous: bytes) -> None:
    assert rotated_bundle(NEW.cert_pem, previous, now=NOW) == NEW.cert_pem
