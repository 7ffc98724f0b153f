"""The ``caBundle``: the CA certificates the API server trusts when it calls the webhook.

In a webhook configuration ``clientConfig.caBundle`` is base64 of PEM (the JSON form of
a ``[]byte`` field). During a CA change there is a window in which the API server has
the new bundle but a webhook replica still serves a certificate from the old CA (the
kubelet refreshes a Secret volume within about a minute; replicas restart one by one).
:func:`rotated_bundle` closes it: the new CA comes first and the previous one stays
trusted alongside it, as long as it has not expired. ``keep=0`` drops it at once, for
when the old CA key is known to be compromised.
"""

from __future__ import annotations

import base64
import binascii
import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from certs import CertsError

PREVIOUS_CAS_KEPT = 1


def encode(pem: bytes) -> str:
    """PEM as the base64 text a ``caBundle`` field holds."""
    return base64.b64encode(pem).decode("ascii")


def decode(text: str, source: str) -> bytes:
    """The PEM inside a ``caBundle`` value; ``source`` names it in errors."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise CertsError(f"{source}: caBundle is not valid base64") from None


def rotated_bundle(
    new_ca: bytes,
    previous: bytes,
    *,
    now: datetime.datetime,
    keep: int = PREVIOUS_CAS_KEPT,
) -> bytes:
    """``new_ca`` first, then up to ``keep`` unexpired CAs from the ``previous`` bundle.

    Idempotent: a bundle made by this function, given the same ``new_ca`` again, comes
    back unchanged, so a webhook that patches its bundle at every start writes once.
    Unreadable content in ``previous`` is dropped (it never verified anything).
    """
    fresh = x509.load_pem_x509_certificates(new_ca)
    seen = {c.fingerprint(hashes.SHA256()) for c in fresh}
    kept: list[x509.Certificate] = []
    for cert in _certificates(previous):
        if len(kept) >= keep:
            break
        fingerprint = cert.fingerprint(hashes.SHA256())
        if fingerprint in seen or now >= cert.not_valid_after_utc:
            continue
        seen.add(fingerprint)
        kept.append(cert)
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (*fresh, *kept))


def _certificates(pem: bytes) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError:
        return []
