"""TLS for the webhook: a throwaway CA for local use, the server context, and hot reload.

- :func:`self_signed` makes a serving certificate for loopback and the given hosts,
  signed by an in-memory CA (ECDSA P-256) or a given one, for ``netplex-webhook
  --self-signed`` and for tests. The certificates themselves are made by :mod:`certs`.
- :func:`server_ssl_context` builds the context uvicorn serves: TLS 1.2 or newer, no
  compression, ALPN ``http/1.1``.
- :class:`CertReloader` follows a cert/key pair on disk (a mounted Secret) and makes new
  handshakes present the new certificate, without a restart; :class:`CertRenewer` issues
  a new in-memory certificate (``--self-signed``) before the current one expires.

How a reload reaches the server: the context handed to uvicorn is never modified after
start. The reloader builds a *fresh* context for every good pair, and the served
context's ``sni_callback`` (called by OpenSSL for every ClientHello, with or without SNI)
switches each new connection to the newest one. This is deliberate, instead of calling
``load_cert_chain`` again on the served context:

- OpenSSL keeps one certificate slot per key type. Loading an RSA pair into a context
  that holds an EC pair leaves the EC pair in place, and clients that prefer ECDSA keep
  getting the *old* certificate until it expires (checked in ``test_tls.py``).
- ``load_cert_chain`` installs the certificate and then the key, in two steps, with the
  GIL released, while the event loop creates connections from the same context. A
  handshake in between would get the new certificate without its key.

Swapping a reference has neither problem: a connection gets the old pair or the new one.

Errors: :class:`CertificateError` (a ``ValueError``) when a pair cannot be used; the
reloader logs it and keeps serving the previous pair. ``ssl.SSLError`` and ``OSError``
from the standard library are wrapped into it.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import os
import ssl
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Self

from cryptography import x509

from certs import CertsError
from certs.authority import (
    LEAF_DAYS,
    Authority,
    CertPair,
    describe,
    issue_serving,
    new_authority,
    utcnow,
)
from certs.names import LOOPBACK_HOSTS, subject_hosts

log = logging.getLogger("netplex.webhook")

SELF_SIGNED_CA_NAME = "netplex-webhook self-signed CA"
_ALPN = ["http/1.1"]

__all__ = ["LOOPBACK_HOSTS", "CertPair", "CertReloader", "CertRenewer", "CertificateError", "context_from_pem", "describe",
           "self_signed", "server_ssl_context"]


class CertificateError(ValueError):
    """A certificate/key pair that cannot be served (unreadable, half written, mismatched)."""


# -- generation ---------------------------------------------------------------------------


def self_signed(
    hosts: list[str],
    *,
    days: int = LEAF_DAYS,
    now: datetime.datetime | None = None,
    ca: Authority | None = None,
    common_name: str | None = None,
) -> CertPair:
    """A serving certificate for the loopback names plus ``hosts``, from ``ca`` or a new CA.

    Each host is an IP SAN when it parses as an address, otherwise a DNS SAN. Without
    ``ca`` a throwaway in-memory CA signs and its key is dropped when this returns:
    nothing can be signed with it afterwards. Raises :class:`CertificateError` for a host
    that cannot be a SAN.
    """
    usable, problems = subject_hosts([*LOOPBACK_HOSTS, *hosts])
    try:
        if problems:
            raise CertsError("; ".join(problems))
        signer = ca or new_authority(days=days, now=now, common_name=SELF_SIGNED_CA_NAME)
        return issue_serving(signer, usable, days=days, now=now, common_name=common_name).pair
    except CertsError as exc:
        raise CertificateError(str(exc)) from exc


# -- contexts -----------------------------------------------------------------------------


def server_ssl_context(cert_file: str | os.PathLike[str], key_file: str | os.PathLike[str]) -> ssl.SSLContext:
    """The server context: TLS >= 1.2, no compression, no renegotiation, ALPN http/1.1.

    Raises :class:`CertificateError` when the files cannot be read or do not form a pair.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    ctx.set_alpn_protocols(_ALPN)
    try:
        ctx.load_cert_chain(os.fspath(cert_file), os.fspath(key_file))
    except (ssl.SSLError, OSError) as exc:
        raise CertificateError(
            f"cannot load certificate {os.fspath(cert_file)!r} with key {os.fspath(key_file)!r}: {exc}"
        ) from exc
    return ctx


def context_from_pem(cert: bytes, key: bytes) -> ssl.SSLContext:
    """A server context from PEM bytes (the ``ssl`` module only loads from files).

    The bytes are written to a private temporary directory (mode 0700, files 0600; in
    ``/dev/shm`` when it exists, so keys do not touch a disk) that is removed before this
    returns.
    """
    shm = "/dev/shm"
    base = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="netplex-tls-", dir=base) as tmp:
        cert_path = Path(tmp) / "tls.crt"
        key_path = Path(tmp) / "tls.key"
        for path, data in ((cert_path, cert), (key_path, key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        return server_ssl_context(cert_path, key_path)


# -- reload -------------------------------------------------------------------------------


class _ContextSwitch:
    """New handshakes on the served context move to :attr:`current` (see the module docstring).

    Subclasses decide when a fresh context is due in :meth:`check`, which :meth:`start`
    runs every ``interval`` seconds in a daemon thread.
    """

    thread_name = "netplex-cert"

    def __init__(self, ctx: ssl.SSLContext, interval: float) -> None:
        self.interval = interval
        self._ctx = ctx
        self._current: ssl.SSLContext = ctx
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        ctx.sni_callback = self._select

    @property
    def current(self) -> ssl.SSLContext:
        """The context new connections are switched to."""
        return self._current

    def _select(self, conn: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, ctx: ssl.SSLContext) -> None:
        current = self._current
        if current is not ctx:
            conn.context = current

    def check(self) -> bool:
        raise NotImplementedError

    def start(self) -> Self:
        """Run :meth:`check` in a daemon thread every ``interval`` seconds until :meth:`stop`."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=min(self.interval, 60) + 5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # never let the poller die: the server must keep serving
                log.exception("%s: unexpected error; will retry", self.thread_name)


class CertReloader(_ContextSwitch):
    """Serve the newest valid pair found at ``cert_file``/``key_file`` without a restart.

    Polls the *contents* every ``interval`` seconds (a Secret volume swaps a ``..data``
    symlink, so inode or inotify events on the file paths are unreliable). When the pair's
    content changed (either file: a renewal may keep the key) and the two files form a
    valid pair, new handshakes on ``ctx`` use it. A half-written or mismatched pair is
    logged and ignored, and the previous certificate keeps serving; the same content is
    not retried until it changes again.

    ``ctx`` is the context the server was started with; its ``sni_callback`` is taken
    over (see the module docstring). :meth:`check` runs one poll synchronously, which is
    what tests and the first start use.
    """

    def __init__(
        self,
        ctx: ssl.SSLContext,
        cert_file: str | os.PathLike[str],
        key_file: str | os.PathLike[str],
        *,
        interval: float = 10.0,
        make_context: Callable[[bytes, bytes], ssl.SSLContext] = context_from_pem,
    ) -> None:
        super().__init__(ctx, interval)
        self.cert_file = Path(cert_file)
        self.key_file = Path(key_file)
        self._make_context = make_context
        self._digest: bytes | None = None  # content of the last pair looked at

    thread_name = "netplex-cert-reloader"

    def check(self) -> bool:
        """Look at the files once; return True when a new pair was put in service."""
        with self._lock:
            try:
                cert = self.cert_file.read_bytes()
                key = self.key_file.read_bytes()
            except OSError as exc:
                log.warning("certificate reload: cannot read the pair (%s); still serving the previous certificate", exc)
                return False
            digest = hashlib.sha256(len(cert).to_bytes(8, "big") + cert + key).digest()
            if digest == self._digest:
                return False
            try:
                fresh = self._make_context(cert, key)
            except (CertificateError, ssl.SSLError, ValueError) as exc:
                self._digest = digest  # this content is bad: wait for the next change
                log.error(
                    "certificate reload: %s and %s do not form a usable pair (%s); "
                    "still serving the previous certificate",
                    self.cert_file,
                    self.key_file,
                    exc,
                )
                return False
            except OSError as exc:  # the environment, not the pair: try again next poll
                log.warning("certificate reload: %s; will retry", exc)
                return False
            self._digest = digest
            self._current = fresh
            log.info("certificate reload: now serving %s", describe(cert))
            return True


class CertRenewer(_ContextSwitch):
    """Issue a new in-memory serving certificate before the current one expires.

    For ``--self-signed``, whose certificate lives only in memory: nothing on disk will be
    renewed for it, and a webhook pod may well run for longer than the leaf's validity.
    Once ``renew_after`` of the current certificate's lifetime has passed, ``issue()``
    (a new leaf from the same CA, so the ``caBundle`` stays right) is put in service the
    same way a reloaded pair is. A failed issue is logged and retried at the next check;
    the old certificate keeps serving meanwhile.
    """

    thread_name = "netplex-cert-renewer"

    def __init__(
        self,
        ctx: ssl.SSLContext,
        cert_pem: bytes,
        issue: Callable[[], CertPair],
        *,
        interval: float = 3600.0,
        renew_after: float = 2 / 3,
        clock: Callable[[], datetime.datetime] = utcnow,
        make_context: Callable[[bytes, bytes], ssl.SSLContext] = context_from_pem,
    ) -> None:
        if not 0 < renew_after < 1:
            raise ValueError(f"renew_after must be between 0 and 1, got {renew_after}")
        super().__init__(ctx, interval)
        self._issue = issue
        self._renew_after = renew_after
        self._clock = clock
        self._make_context = make_context
        self.renew_at = self._due(cert_pem)

    def _due(self, cert_pem: bytes) -> datetime.datetime:
        cert = x509.load_pem_x509_certificate(cert_pem)
        start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
        return start + (end - start) * self._renew_after

    def check(self) -> bool:
        """Renew when due; return True when a new certificate was put in service."""
        with self._lock:
            if self._clock() < self.renew_at:
                return False
            try:
                pair = self._issue()
                fresh = self._make_context(pair.cert, pair.key)
            except (CertsError, CertificateError, ssl.SSLError, OSError, ValueError) as exc:
                log.error("certificate renewal failed (%s); still serving the previous certificate, "
                          "will retry in %.0f s", exc, self.interval)
                return False
            self._current = fresh
            self.renew_at = self._due(pair.cert)
            log.info("certificate renewal: now serving %s", describe(pair.cert))
            return True
