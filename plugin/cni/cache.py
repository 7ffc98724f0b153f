"""Per-sandbox state: everything DEL, CHECK and GC need, without the API server.

Multus users leak IPs when DEL cannot reach its delegates: the pod is gone from the API,
the NAD was deleted or edited, or the scratch cache dropped fields. netplex writes, under
``<cniDir>/<containerID>``, the exact bytes of every delegate's network configuration,
the interface it got, its capability args and CNI_ARGS, and (after ADD) its result.
The entry is written *before* the first delegate runs and again after each one, so a
crash half-way still leaves enough to undo what was done.

Writes are atomic: a temp file in the same directory, (fsync,) rename. A reader sees the
old entry or the new one, never half of one. Only ADD's first write, before any delegate
runs, is durable (fsync of the file and of the directory): it lists every attachment, so
even after a power loss a DEL finds every network to undo. The writes that follow only
add delegates' results (the ``prevResult`` of their DEL) and skip the fsyncs
(``write(durable=False)``, ~1 ms each on a quiet disk, up to ~10 ms on a busy one, on
every pod): a crash of this process loses nothing the kernel already has, and a power
loss at worst leaves the first entry, whose DEL runs without ``prevResult`` as after an
interrupted ADD. (libcni's and Multus' own caches are never fsynced.)

Locks (CNI-17, NPWG-36): operations on one container never overlap, and GC never
overlaps any of them. :func:`sandbox_lock` takes a shared lock on ``.locks/.gc`` and an
exclusive one on ``.locks/<containerID>``; :func:`gc_lock` takes ``.locks/.gc``
exclusively. They are ``flock`` locks, so a crashed process releases them. Lock files
live in their own directory, whose name starts with a dot as no container ID can, so
:func:`container_ids` never mistakes one for an entry (``abc.lock`` is a valid container
ID). A lock file is removed with its entry (:func:`remove`, called while holding the
lock); a process that was waiting on the removed file notices (the path no longer
names the file it locked) and locks the new one instead.

Exceptions::

    CacheError(Exception)   unreadable or corrupt entry (names the file and why)
     ├── LockTimeout        another operation held the lock longer than the timeout
     └── CacheDirError      ``cniDir`` or its lock directory cannot be made or used (a file
                            in the way, no permission, a read-only file system); says
                            whether the configured path itself is wrong (``configured``)
"""

from __future__ import annotations

import binascii  # not base64: a cached DEL need not import it (and struct)
import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence

from plugin.cni import files
from plugin.model import names
from plugin.model.records import field, record, replace

TYPE_CHECKING = False  # typing is not imported at run time (~4 ms per start); mypy takes this as True
if TYPE_CHECKING:
    from typing import Any

CACHE_KIND = "netplexCacheV1"
LOCK_DIR = ".locks"
GC_LOCK = ".gc"  # starts with a dot: no container ID can take this name
LOCK_POLL = (0.005, 0.05)  # first and longest pause between two tries


class CacheError(Exception):
    pass


class LockTimeout(CacheError):
    """Another operation kept the lock for longer than we were willing to wait."""


class CacheDirError(CacheError):
    """The cache directory or its lock directory cannot be used.

    ``configured`` is true when the configured ``cniDir`` itself is wrong (it, or a
    directory on its way, is a file): the configuration must change. Otherwise the node's
    state is (a file where ``.locks`` should be, permissions, a full or read-only disk)."""

    def __init__(self, message: str, *, configured: bool) -> None:
        super().__init__(message)
        self.configured = configured


@record(frozen=True, slots=True)
class CachedAttachment:
    """One delegate: the network it attached, on which interface, with what, and the result."""

    network: str  # "namespace/nad" or the cluster network's name (network-status "name")
    ifname: str
    config: bytes  # the delegate's network configuration, exactly as executed
    cni_args: str = ""
    capability_args: Mapping[str, Any] = field(default_factory=dict)
    result: Mapping[str, Any] | None = None  # None until its ADD succeeded
    default: bool = False  # the cluster network
    device_info_file: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "network": self.network,
            "ifname": self.ifname,
            "config": binascii.b2a_base64(self.config, newline=False).decode("ascii"),
            "cniArgs": self.cni_args,
            "capabilityArgs": dict(self.capability_args),
            "default": self.default,
        }
        if self.result is not None:
            data["result"] = dict(self.result)
        if self.device_info_file:
            data["deviceInfoFile"] = self.device_info_file
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CachedAttachment:
        result = data.get("result")
        caps = data.get("capabilityArgs") or {}
        if not isinstance(caps, Mapping) or (result is not None and not isinstance(result, Mapping)):
            raise ValueError("capabilityArgs and result must be objects")
        return cls(
            network=str(data["network"]),
            ifname=str(data["ifname"]),
            config=binascii.a2b_base64(str(data["config"]), strict_mode=True),
            cni_args=str(data.get("cniArgs", "")),
            capability_args=dict(caps),
            result=dict(result) if result is not None else None,
            default=bool(data.get("default", False)),
            device_info_file=str(data["deviceInfoFile"]) if data.get("deviceInfoFile") else None,
        )


@record(frozen=True, slots=True)
class SandboxEntry:
    container_id: str
    netns: str | None
    pod_namespace: str = ""
    pod_name: str = ""
    pod_uid: str = ""
    attachments: tuple[CachedAttachment, ...] = ()

    def with_result(self, position: int, result: Mapping[str, Any]) -> SandboxEntry:
        updated = list(self.attachments)
        updated[position] = replace(updated[position], result=dict(result))
        return replace(self, attachments=tuple(updated))

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": CACHE_KIND,
            "containerId": self.container_id,
            "netns": self.netns,
            "pod": {"namespace": self.pod_namespace, "name": self.pod_name, "uid": self.pod_uid},
            "attachments": [a.to_json() for a in self.attachments],
        }

    @classmethod
    def from_json(cls, data: Any) -> SandboxEntry:
        if not isinstance(data, Mapping) or data.get("kind") != CACHE_KIND:
            raise ValueError(f"not a {CACHE_KIND} entry")
        pod = data.get("pod") or {}
        attachments = data.get("attachments")
        if not isinstance(attachments, Sequence) or isinstance(attachments, str | bytes):
            raise ValueError("attachments must be a list")
        return cls(
            container_id=str(data["containerId"]),
            netns=data.get("netns") if isinstance(data.get("netns"), str) else None,
            pod_namespace=str(pod.get("namespace", "")),
            pod_name=str(pod.get("name", "")),
            pod_uid=str(pod.get("uid", "")),
            attachments=tuple(CachedAttachment.from_json(a) for a in attachments),
        )


def entry_path(cache_dir: str, container_id: str) -> str:
    """The entry's file; a container ID that could escape the directory is refused."""
    problem = names.check_container_id(container_id)
    if problem:
        raise CacheError(problem)
    return os.path.join(cache_dir, container_id)


def write(cache_dir: str, entry: SandboxEntry, *, durable: bool = True) -> None:
    """Replace the entry atomically; ``durable`` also fsyncs the file and the directory.

    Every write is atomic (a reader, or a process that crashed, sees the old entry or the
    new one). ``durable=False`` skips the two fsyncs (up to ~10 ms on a busy VM's disk): ADD
    uses it for every write after the first (see the module docstring).
    """
    path = entry_path(cache_dir, entry.container_id)
    os.makedirs(cache_dir, mode=0o700, exist_ok=True)
    data = json.dumps(entry.to_json(), separators=(",", ":"), sort_keys=True).encode("utf-8")
    files.atomic_write(path, data, 0o600, durable=durable)


def read(cache_dir: str, container_id: str) -> SandboxEntry | None:
    """The entry, or None when there is none; a corrupt entry is a CacheError."""
    path = entry_path(cache_dir, container_id)
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CacheError(f"cannot read cache entry {path}: {exc.strerror}") from exc
    try:
        return SandboxEntry.from_json(json.loads(raw))
    except (ValueError, KeyError, TypeError) as exc:
        raise CacheError(f"corrupt cache entry {path}: {exc}") from exc


def remove(cache_dir: str, container_id: str) -> None:
    """Remove the entry and the container's lock file (call it holding the lock)."""
    path = entry_path(cache_dir, container_id)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(cache_dir, LOCK_DIR, container_id))


def container_ids(cache_dir: str) -> list[str]:
    """Every container with an entry: regular files named by a valid container ID.

    Temp files of interrupted writes (``.<id>.….tmp``) and the lock directory start
    with a dot, which no container ID does; directories are skipped too.
    """
    try:
        entries = os.listdir(cache_dir)
    except FileNotFoundError:
        return []
    return sorted(e for e in entries if not e.startswith(".") and names.check_container_id(e) is None
                  and os.path.isfile(os.path.join(cache_dir, e)))


# ------------------------------------------------------------------------------ locks


@contextlib.contextmanager
def sandbox_lock(cache_dir: str, container_id: str, *, timeout: float) -> Iterator[None]:
    """Hold ``container_id``'s lock (and keep GC out) for an ADD, DEL or CHECK."""
    entry_path(cache_dir, container_id)  # refuses an ID that could escape the directory
    deadline = time.monotonic() + timeout
    with _flock(cache_dir, GC_LOCK, fcntl.LOCK_SH, deadline, "garbage collection"), \
            _flock(cache_dir, container_id, fcntl.LOCK_EX, deadline, f"another operation on container {container_id}"):
        yield


@contextlib.contextmanager
def gc_lock(cache_dir: str, *, timeout: float) -> Iterator[None]:
    """Hold the lock that no ADD, DEL or CHECK runs under at the same time."""
    with _flock(cache_dir, GC_LOCK, fcntl.LOCK_EX, time.monotonic() + timeout,
                "an ADD, DEL or CHECK in progress"):
        yield


def prune_locks(cache_dir: str) -> list[str]:
    """Remove lock files of containers that have no entry (call it under :func:`gc_lock`);
    the names removed."""
    directory = os.path.join(cache_dir, LOCK_DIR)
    try:
        names_ = os.listdir(directory)
    except FileNotFoundError:
        return []
    keep = set(container_ids(cache_dir))
    removed = []
    for name in sorted(names_):
        if name == GC_LOCK or name in keep or names.check_container_id(name) is not None:
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(directory, name))
            removed.append(name)
    return removed


@contextlib.contextmanager
def _flock(cache_dir: str, name: str, mode: int, deadline: float, holder: str) -> Iterator[None]:
    directory = os.path.join(cache_dir, LOCK_DIR)
    _make_dir(cache_dir, cache_dir)  # makedirs gives the mode to the leaf only
    _make_dir(directory, cache_dir)
    path = os.path.join(directory, name)
    try:
        fd = _acquire(path, mode, deadline, holder)
    except OSError as exc:
        raise CacheDirError(f'cannot open the lock file {path} in "cniDir" {cache_dir}: '
                            f"{exc.strerror or exc}", configured=False) from exc
    try:
        yield
    finally:
        os.close(fd)  # releases the flock


def _make_dir(path: str, cache_dir: str) -> None:
    """``os.makedirs(path, 0o700)``, its failure a :class:`CacheDirError` naming ``cniDir``."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        if os.path.lexists(cache_dir) and not os.path.isdir(cache_dir):
            raise CacheDirError(f'"cniDir" {cache_dir} is a file, not a directory; set "cniDir" to a directory '
                                "(netplex creates it when it is missing)", configured=True) from exc
        if not os.path.isdir(cache_dir):
            raise CacheDirError(f'"cniDir" {cache_dir} cannot be created: a directory on its way is a file; set '
                                '"cniDir" to a directory (netplex creates it when it is missing)',
                                configured=True) from exc
        raise CacheDirError(
            f'{path} in "cniDir" {cache_dir} is a file, not a directory; remove it (netplex keeps its lock '
            "files there)", configured=False) from exc
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CacheDirError(f'cannot create {path} for "cniDir" {cache_dir}: {reason}',
                            configured=False) from exc


def _acquire(path: str, mode: int, deadline: float, holder: str) -> int:
    pause = LOCK_POLL[0]
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(fd, mode | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise LockTimeout(f"{holder} still holds {path}; gave up waiting") from None
                    time.sleep(pause)
                    pause = min(pause * 2, LOCK_POLL[1])
            held = os.fstat(fd)
            try:
                current = os.stat(path)
            except FileNotFoundError:
                current = None
        except BaseException:
            os.close(fd)
            raise
        if current is not None and (current.st_dev, current.st_ino) == (held.st_dev, held.st_ino):
            return fd
        os.close(fd)  # the file was removed (and maybe re-created) while we waited: lock the new one
