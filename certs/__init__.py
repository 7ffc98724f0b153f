"""TLS material for the webhook: a CA, the serving certificates it signs, and where they go.

From pure to I/O, one concern per module:

- :mod:`certs.names`      the names a certificate is for: a Service's DNS names, extra SANs
- :mod:`certs.keys`       key types (ECDSA P-256 by default, RSA 2048/3072/4096) and PEM
- :mod:`certs.authority`  make a CA, load one back, issue a serving certificate from it
- :mod:`certs.bundle`     the ``caBundle``: base64 PEM, with the previous CA kept in rotation
- :mod:`certs.files`      PEM files written atomically with safe permissions
- :mod:`certs.kube`       the Secrets and the webhook configurations' ``caBundle``, via the API
- :mod:`certs.command`    ``netplexctl certs``

Importing this package costs nothing: ``cryptography`` and the Kubernetes client are
imported by the modules that need them, so ``netplexctl check`` never pays for them.

Exceptions (messages are for the person who ran the command, and name what to change)::

    Exception
     └── CertsError        input that cannot become a certificate: a bad name, a CA that is
          │                expired or not a CA, a key that does not match, unreadable files
          └── ClusterError the API server refused a write or could not be reached; names
                           the object and the verb
"""

from __future__ import annotations


class CertsError(Exception):
    """Input that cannot become a certificate; the message says what and how to fix it."""


class ClusterError(CertsError):
    """A Kubernetes API call failed; the message names the verb, the object and the reason.

    ``status`` and ``reason`` are the HTTP code and the Status reason (``AlreadyExists``,
    ``Conflict``...), None and ``""`` when the API server could not be reached.
    """

    def __init__(self, message: str, *, status: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
