"""Assemble the webhook's handler from its command-line flags.

``--nads DIR`` gives a static index read from YAML (the no-cluster default); otherwise the
index follows the API server through ``--kubeconfig`` or the in-cluster service account.
``--policy FILE`` is re-read when the file changes (a ConfigMap volume update); a broken
edit is logged and the last good policy stays in force.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import threading
import time
from pathlib import Path

from webhook import documents
from webhook.admission import Admission
from webhook.index import MemoryIndex
from webhook.policy import ClusterPolicy, load_cluster_policy

log = logging.getLogger("netplex.webhook")


class PolicySource:
    """The current cluster policy; checks the file at most once per ``interval`` seconds."""

    def __init__(self, path: Path | None, interval: float = 1.0) -> None:
        self._path = path
        self._interval = interval
        self._lock = threading.Lock()
        self._policy = ClusterPolicy()
        self._digest: str | None = None
        self._checked = 0.0
        if path is not None:
            problems = self._load()
            if problems:
                raise ValueError("; ".join(problems))

    def _load(self) -> list[str]:
        assert self._path is not None
        try:
            digest = hashlib.sha256(self._path.read_bytes()).hexdigest()
        except OSError as exc:
            return [f"{self._path}: cannot read policy: {exc}"]
        if digest == self._digest:
            return []
        policy, problems = load_cluster_policy(self._path)
        if problems:
            return problems
        self._policy, self._digest = policy, digest
        return []

    def __call__(self) -> ClusterPolicy:
        if self._path is None:
            return self._policy
        now = time.monotonic()
        if now - self._checked >= self._interval and self._lock.acquire(blocking=False):
            try:
                self._checked = now
                for problem in self._load():
                    log.error("policy not reloaded, keeping the previous one: %s", problem)
            finally:
                self._lock.release()
        return self._policy


def build_handler(args: argparse.Namespace) -> Admission:
    policy = PolicySource(Path(args.policy) if getattr(args, "policy", None) else None)
    nads_dir = getattr(args, "nads", None)
    if nads_dir:
        index = MemoryIndex(d.obj for d in documents.read_directory(Path(nads_dir)))
        log.info("serving with %d NADs from %s (no cluster)", index.size(), nads_dir)
        return Admission(index, policy)
    from webhook.cluster import ClusterIndex, load_api_client

    cluster = ClusterIndex(load_api_client(getattr(args, "kubeconfig", None))).start()
    return Admission(cluster, policy, confirm_missing=cluster.confirm, ready=cluster.synced, close=cluster.stop)
