"""PEM files on disk, written so that a reader never sees a partial file.

Each file is written to a temporary file in the same directory (created 0600), flushed
with ``fsync``, given its final mode and renamed over the old one; the directory is
then synced so the rename survives a crash. A reader opens either the old file or the
new one, never half of one.

A key and its certificate are two files, so a reader can still see one old and one new
between the two renames. The key goes first: the webhook's reloader
(:class:`webhook.tls.CertReloader`) then finds a mismatched pair for the microseconds
between the renames, keeps serving the previous certificate, and takes the new pair at
its next poll. The certificate going first would have the same effect; what matters is
that both are complete files and that nothing else is written in between.

Modes: private keys 0600, certificates and the bundle 0644. A missing output directory
is created 0700.

File names in an output directory (``netplexctl certs --out-dir``)::

    ca.crt         the CA certificate (PEM)
    ca.key         the CA private key (PEM, 0600); only when the CA was made here
    tls.crt        the serving certificate (PEM), signed by ca.crt
    tls.key        its private key (PEM, 0600)
    ca-bundle.b64  base64 of ca.crt on one line: the webhook configurations' caBundle
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from certs import CertsError
from plugin.cni import files

CA_CERT, CA_KEY, TLS_CERT, TLS_KEY, CA_BUNDLE = "ca.crt", "ca.key", "tls.crt", "tls.key", "ca-bundle.b64"
KEY_MODE, PUBLIC_MODE, DIR_MODE = 0o600, 0o644, 0o700


@dataclass(frozen=True, slots=True)
class Output:
    """One file to write: its name in the output directory, content and mode."""

    name: str
    data: bytes
    mode: int


def outputs(*, ca_cert: bytes, ca_key: bytes | None, cert: bytes, key: bytes, bundle: str) -> list[Output]:
    """The files of an output directory in the order they are written (each key first)."""
    files = [Output(CA_KEY, ca_key, KEY_MODE)] if ca_key is not None else []
    files += [
        Output(CA_CERT, ca_cert, PUBLIC_MODE),
        Output(TLS_KEY, key, KEY_MODE),
        Output(TLS_CERT, cert, PUBLIC_MODE),
        Output(CA_BUNDLE, bundle.encode("ascii") + b"\n", PUBLIC_MODE),
    ]
    return files


def write_outputs(directory: Path, files: list[Output]) -> list[Path]:
    """Write ``files`` into ``directory`` (created 0700 if missing); return the paths."""
    try:
        directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    except OSError as exc:
        raise CertsError(f"cannot create directory {directory}: {exc.strerror or exc}") from None
    written = []
    for item in files:
        path = directory / item.name
        write_atomic(path, item.data, item.mode)
        written.append(path)
    return written


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` with ``data`` in one rename; raises :class:`CertsError` on failure."""
    try:
        files.atomic_write(path, data, mode)
    except OSError as exc:
        raise CertsError(f"cannot write {path}: {exc.strerror or exc}") from None


def read_pem(path: Path, what: str) -> bytes:
    """The bytes of ``path``; the error names ``what`` it should have been."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CertsError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
