"""Replace a file so that a reader, or a process that crashed, sees the old or the new one.

One implementation for the plugin's cache, the node installer and ``netplexctl certs``:
a uniquely named temporary file in the same directory, written, given its final mode,
optionally fsynced, then renamed over the target; ``durable`` also fsyncs the directory so
the rename survives a power loss. Standard library only, and no ``tempfile`` (its import
costs the plugin's start-up): the temporary name is ``.<name>.<pid>.<random>.tmp``.
"""

from __future__ import annotations

import contextlib
import os


def atomic_write(path: str | os.PathLike[str], data: bytes, mode: int = 0o600, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` (file mode ``mode``); raises ``OSError`` on failure."""
    target = os.fspath(path)
    directory, name = os.path.split(target)
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if mode != 0o600:
                os.fchmod(handle.fileno(), mode)
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        sync_directory(directory)


def sync_directory(directory: str | os.PathLike[str]) -> None:
    """Make a rename or unlink in ``directory`` durable (the node may lose power next)."""
    fd = os.open(os.fspath(directory) or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
