"""Private keys: which types netplex makes, and reading and writing them as PEM.

ECDSA P-256 is the default: small, fast handshakes, and accepted by every client the
API server and kubectl use. RSA (2048, 3072 or 4096 bits) is there for policies and old
clients that require it. Only these two families are loaded back as a CA key, because
only they are signed with an explicit SHA-256 digest the way :mod:`certs.authority` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from certs import CertsError

KeyType = Literal["ecdsa", "rsa"]
KEY_TYPES: tuple[KeyType, ...] = ("ecdsa", "rsa")
RSA_SIZES = (2048, 3072, 4096)
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True, slots=True)
class KeySpec:
    """Which key to generate; ``rsa_bits`` only matters for RSA."""

    type: KeyType = "ecdsa"
    rsa_bits: int = 2048

    def __post_init__(self) -> None:
        if self.type not in KEY_TYPES:
            raise CertsError(f"key type {self.type!r} is not supported; use one of {', '.join(KEY_TYPES)}")
        if self.type == "rsa" and self.rsa_bits not in RSA_SIZES:
            sizes = ", ".join(map(str, RSA_SIZES))
            raise CertsError(f"RSA key size {self.rsa_bits} is not supported; use one of {sizes}")

    def describe(self) -> str:
        return "ECDSA P-256" if self.type == "ecdsa" else f"RSA {self.rsa_bits}"


def generate_key(spec: KeySpec) -> PrivateKey:
    if spec.type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=spec.rsa_bits)
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: PrivateKey) -> bytes:
    """Unencrypted PKCS#8 PEM: what ``ssl``, Go's ``crypto/tls`` and kubelet Secrets expect."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_key(pem: bytes, source: str) -> PrivateKey:
    """An unencrypted ECDSA or RSA private key from PEM; ``source`` names it in errors."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise CertsError(f"{source}: the private key is encrypted; give an unencrypted PEM key") from None
    except ValueError:
        raise CertsError(f"{source}: not a PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise CertsError(f"{source}: {type(key).__name__} keys are not supported; use an ECDSA or RSA key")
    return key


def belongs_to(key: PrivateKey, public: CertificatePublicKeyTypes) -> bool:
    """Whether ``key`` is the private half of ``public`` (a certificate's public key)."""
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key.public_key().public_bytes(*spki) == public.public_bytes(*spki)
