"""Soak: ``netplex-webhook --workers 2`` under a paced mixed load, with faults during the run.

Run (as root or not; figures in bench/README.md, "soak.py"):

    python bench/soak.py [--duration 60] [--rate 1000] [--generators 1] [--json FILE] [--keep]

What runs, on loopback, with real TLS:

* the server: ``python -m webhook.server --workers 2`` with certificate files
  (``--tls-cert/--tls-key``, kept the way the kubelet keeps a Secret volume: the files
  are symlinks through a ``..data`` symlink that is swapped atomically), ``--policy`` and
  ``--nads`` (a generated index: ``--namespaces`` namespaces of ``--nads-per-namespace``
  NADs, half of them with a device-plugin resourceName; some namespaces carry default
  networks, some an allow-list and a cap of 4 networks);
* the load: ``--generators`` processes (asyncio, hand-written HTTP/1.1 over TLS,
  ``--connections`` keep-alive connections in all, each reopened after
  ``--requests-per-connection`` requests so new handshakes keep happening) send
  ``--rate`` requests/s in all, on a fixed schedule (open loop: request *i* is due at
  ``i / rate``; if no connection is free it waits, and the wait is reported as the
  generator's lag). Every request is built from its own seed, so the mix is reproducible:

  ====  =================================================================  ===========
  %     request                                                            expected
  ====  =================================================================  ===========
  45    Pod CREATE on /validate, 1-8 networks, distinct interface names    allowed
  30    Pod CREATE on /mutate, 1-8 networks (patched when a NAD has a      allowed
        resourceName or the namespace has default networks)
  5     NetworkAttachmentDefinition CREATE, valid config                   allowed
  3     Namespace CREATE with valid netplex.io/* policy annotations        allowed
  6     Deployment CREATE whose pod template selects 1-4 networks          allowed
  10    must be denied: bad interface name, a NAD that does not exist,     denied
        too many networks or a network outside the namespace's allow-list,
        a NAD whose config is not JSON, a Namespace with a bad annotation
  1     malformed: not JSON, truncated JSON, not an AdmissionReview,       HTTP 4xx
        text/plain
  ====  =================================================================  ===========

  Interface names, pod names and uids are random per request, so the webhook's memos
  (verdicts and mutation plans by annotation value) almost never hit, as in a real cluster.

Faults during the run (seconds from the start of the measured run):

* ``--kill-at`` (20): SIGKILL of one worker. Just before, the client ports of the
  connections that worker holds are read from /proc (its socket inodes in
  /proc/net/tcp), so every failure can be attributed: an error on one of those
  connections is "the killed worker's in-flight request"; any other is unexpected.
* ``--policy-at`` (30): the policy file is rewritten (atomically, as a ConfigMap update)
  from ``missingNetworks: deny`` to ``warn``: from then on a pod selecting a NAD that
  does not exist is *allowed* with a warning. For ``--policy-grace`` seconds either
  answer is accepted; after that the old one is unexpected.
* ``--rotate-at`` (40): a new serving certificate (same CA) replaces the files through
  the ``..data`` swap. Each worker looks every ``--cert-reload-interval`` (10) seconds;
  a connection opened more than that (+1 s) after the swap that still gets the old
  certificate is unexpected.

Reported: answers by class (allowed / denied / 4xx / 5xx / connection errors) against what
each request expected, every unexpected answer with its explanation, p50/p99 latency
(from the request's write to the last byte of the answer) and the generator's lag per
``--window`` seconds, the achieved rate, RSS and open fds of each worker at the start
(after ``--warmup`` seconds of the same load) and at the end, the server's exit code and
its log's ERROR lines. Exit 0 when every target holds, 1 otherwise.

Targets: 0 unexpected answers outside the killed worker's in-flight requests; p99 <= 5 ms
in every window but the one with the kill; RSS growth <= 10 %; open fds flat.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import multiprocessing
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, not bench/

from webhook.workers import children_of

ROOT = Path(__file__).resolve().parents[1]
NETWORKS = "k8s.v1.cni.cncf.io/networks"
RESTRICTED_EVERY = 10  # every 10th namespace: allow-list of its own NADs, at most 4 networks
DEFAULTS_EVERY = 5  # every 5th other namespace: default networks (mutation patches)
ALLOWED, DENIED, C4XX, C5XX, CONN = "allowed", "denied", "4xx", "5xx", "connection error"
CLASSES = (ALLOWED, DENIED, C4XX, C5XX, CONN)


# -- the index, the policy, the certificates -------------------------------------------------------


def write_index(directory: Path, namespaces: int, nads: int) -> None:
    docs_ns: list[str] = []
    docs_nad: list[str] = []
    for n in range(namespaces):
        ns = f"ns-{n}"
        annotations: dict[str, str] = {}
        if n % RESTRICTED_EVERY == 1:
            annotations = {"netplex.io/allowed-networks": f"{ns}/*", "netplex.io/max-networks": "4",
                           "netplex.io/policy-mode": "enforce"}
        elif n % DEFAULTS_EVERY == 0:
            annotations = {"netplex.io/default-networks": f"{ns}/net-0"}
        meta = {"name": ns, **({"annotations": annotations} if annotations else {})}
        docs_ns.append(json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": meta}))
        for i in range(nads):
            docs_nad.append(json.dumps(nad(ns, f"net-{i}", n, i)))
    (directory / "namespaces.yaml").write_text("\n---\n".join(docs_ns) + "\n")
    (directory / "nads.yaml").write_text("\n---\n".join(docs_nad) + "\n")


def nad(ns: str, name: str, n: int, i: int, config: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if i % 2 == 0:
        meta["annotations"] = {"k8s.v1.cni.cncf.io/resourceName": f"example.com/dev{i}"}
    if config is None:
        config = json.dumps({"cniVersion": "0.3.1", "type": "macvlan", "master": "eth0", "mode": "bridge",
                             "ipam": {"type": "host-local", "subnet": f"10.{n % 250}.{i % 250}.0/24"}})
    return {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition", "metadata": meta,
            "spec": {"config": config}}


class KubeletFiles:
    """tls.crt/tls.key as a Secret volume holds them: symlinks through an atomically swapped ``..data``."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.version = 0

    def publish(self, cert: bytes, key: bytes) -> None:
        self.version += 1
        payload = self.dir / f"..v{self.version}"
        payload.mkdir()
        (payload / "tls.crt").write_bytes(cert)
        (payload / "tls.key").write_bytes(key)
        staged = self.dir / "..data_tmp"
        staged.symlink_to(payload.name)
        os.replace(staged, self.dir / "..data")
        for name in ("tls.crt", "tls.key"):
            if not (self.dir / name).is_symlink():
                (self.dir / name).symlink_to(f"..data/{name}")


def make_certificates() -> tuple[bytes, list[tuple[bytes, bytes, bytes]]]:
    """A CA and two serving pairs it signed for 127.0.0.1: (ca, [(cert, key, der digest)])."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from certs.authority import issue_serving, new_authority

    ca = new_authority(days=2)
    pairs = []
    for _ in range(2):
        issued = issue_serving(ca, [ipaddress.ip_address("127.0.0.1"), "localhost"], days=1)
        der = x509.load_pem_x509_certificate(issued.pair.cert).public_bytes(Encoding.DER)
        pairs.append((issued.pair.cert, issued.pair.key, hashlib.sha256(der).digest()))
    return ca.cert_pem, pairs


# -- the requests ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Planned:
    kind: str  # what was sent, e.g. "pod/validate", "deny/bad-interface"
    path: str
    body: bytes
    expect: str  # ALLOWED, DENIED or C4XX
    content_type: str = "application/json"


def review(obj: dict[str, Any], kind: str, group: str, version: str, resource: str, namespace: str,
           uid: str) -> bytes:
    gvk = {"group": group, "version": version, "kind": kind}
    gvr = {"group": group, "version": version, "resource": resource}
    return json.dumps({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": uid, "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
            "name": obj["metadata"].get("name", ""), "namespace": namespace, "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller",
                         "groups": ["system:serviceaccounts", "system:authenticated"]},
            "object": obj, "oldObject": None, "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }, separators=(",", ":")).encode()


class Mix:
    """Request ``i`` of the run, built from its own seed (see the module docstring's table)."""

    def __init__(self, seed: int, namespaces: int, nads: int) -> None:
        self.seed = seed
        self.namespaces = namespaces
        self.nads = nads
        self.plain = [n for n in range(namespaces) if n % RESTRICTED_EVERY != 1]
        self.restricted = [n for n in range(namespaces) if n % RESTRICTED_EVERY == 1]

    def __call__(self, i: int) -> Planned:
        rng = random.Random(self.seed * 1_000_003 + i)
        roll = rng.random() * 100
        uid = str(uuid.UUID(int=rng.getrandbits(128)))
        if roll < 45:
            return self._pod(rng, uid, "pod/validate", "/validate")
        if roll < 75:
            return self._pod(rng, uid, "pod/mutate", "/mutate")
        if roll < 80:
            n = rng.choice(self.plain)
            obj = nad(f"ns-{n}", f"fresh-{rng.getrandbits(40):x}", n, rng.randrange(250))
            return Planned("nad/validate", "/validate", self._nad_review(obj, uid), ALLOWED)
        if roll < 83:
            obj = {"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": f"team-{rng.getrandbits(40):x}",
                                "annotations": {"netplex.io/max-networks": str(rng.randint(1, 8)),
                                                "netplex.io/allowed-networks": "shared/*,team-*/*"}}}
            return Planned("namespace/validate", "/validate", review(obj, "Namespace", "", "v1", "namespaces", "", uid),
                           ALLOWED)
        if roll < 89:
            n = rng.choice(self.plain)
            ns = f"ns-{n}"
            template = self._pod_object(rng, ns, rng.randint(1, 4))
            obj = {"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": template["metadata"]["name"], "namespace": ns},
                   "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "soak"}},
                            "template": {"metadata": template["metadata"] | {"name": None},
                                         "spec": template["spec"]}}}
            del obj["spec"]["template"]["metadata"]["name"]
            return Planned("deployment/validate", "/validate",
                           review(obj, "Deployment", "apps", "v1", "deployments", ns, uid), ALLOWED)
        if roll < 99:
            return self._denied(rng, uid)
        return self._malformed(rng, uid)

    def _pod_object(self, rng: random.Random, ns: str, count: int, names: list[str] | None = None) -> dict[str, Any]:
        if names is None:
            names = [f"net-{k}" for k in rng.sample(range(self.nads), count)]
        tag = rng.getrandbits(32)
        selection = ", ".join(f"{name}@n{j}x{tag:08x}" for j, name in enumerate(names))  # distinct every time
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": f"app-{tag:08x}", "namespace": ns, "labels": {"app": "soak"},
                             "annotations": {NETWORKS: selection}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.27", "resources": {}},
                                        {"name": "sidecar", "image": "busybox", "resources": {}}]}}

    def _pod(self, rng: random.Random, uid: str, kind: str, path: str) -> Planned:
        ns = f"ns-{rng.choice(self.plain)}"
        obj = self._pod_object(rng, ns, rng.randint(1, 8))
        return Planned(kind, path, review(obj, "Pod", "", "v1", "pods", ns, uid), ALLOWED)

    def _nad_review(self, obj: dict[str, Any], uid: str) -> bytes:
        return review(obj, "NetworkAttachmentDefinition", "k8s.cni.cncf.io", "v1", "network-attachment-definitions",
                      obj["metadata"]["namespace"], uid)

    def _denied(self, rng: random.Random, uid: str) -> Planned:
        case = rng.randrange(6)
        if case == 0:
            ns = f"ns-{rng.choice(self.plain)}"
            obj = self._pod_object(rng, ns, 1)
            obj["metadata"]["annotations"][NETWORKS] = f"net-1@bad/{rng.getrandbits(16):x}"
            return Planned("deny/bad-interface", "/validate", review(obj, "Pod", "", "v1", "pods", ns, uid), DENIED)
        if case == 1:  # allowed with a warning once the policy says missingNetworks: warn
            ns = f"ns-{rng.choice(self.plain)}"
            obj = self._pod_object(rng, ns, 0, [f"nope-{rng.getrandbits(32):x}"])
            return Planned("deny/missing-nad", "/validate", review(obj, "Pod", "", "v1", "pods", ns, uid), DENIED)
        if case == 2:
            ns = f"ns-{rng.choice(self.restricted)}"
            obj = self._pod_object(rng, ns, rng.randint(5, 8))
            return Planned("deny/too-many", "/validate", review(obj, "Pod", "", "v1", "pods", ns, uid), DENIED)
        if case == 3:
            ns = f"ns-{rng.choice(self.restricted)}"
            other = rng.choice(self.plain)
            obj = self._pod_object(rng, ns, 0, [f"ns-{other}/net-{rng.randrange(self.nads)}"])
            return Planned("deny/not-allowed", "/validate", review(obj, "Pod", "", "v1", "pods", ns, uid), DENIED)
        if case == 4:
            n = rng.choice(self.plain)
            obj = nad(f"ns-{n}", f"broken-{rng.getrandbits(32):x}", n, 1, config='{"cniVersion": "0.3.1", "type": ')
            return Planned("deny/nad-config", "/validate", self._nad_review(obj, uid), DENIED)
        obj = {"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": f"team-{rng.getrandbits(32):x}",
                            "annotations": {"netplex.io/max-networks": f"lots-{rng.getrandbits(16)}"}}}
        return Planned("deny/namespace-annotation", "/validate", review(obj, "Namespace", "", "v1", "namespaces", "", uid),
                       DENIED)

    def _malformed(self, rng: random.Random, uid: str) -> Planned:
        good = self._pod(rng, uid, "", "/validate").body
        case = rng.randrange(4)
        if case == 0:
            return Planned("4xx/truncated", "/validate", good[: rng.randrange(1, len(good) - 1)], C4XX)
        if case == 1:
            return Planned("4xx/not-json", "/mutate", b"\xff" + good[1:200], C4XX)
        if case == 2:
            return Planned("4xx/not-a-review", "/validate", json.dumps([uid]).encode(), C4XX)
        return Planned("4xx/text-plain", "/validate", good, C4XX, content_type="text/plain")


def classify(status: int, body: bytes) -> tuple[str, str]:
    """(class, detail) of an answer."""
    if status >= 500:
        return C5XX, body[:200].decode(errors="replace")
    if status >= 400:
        return C4XX, body[:200].decode(errors="replace")
    if status != 200:
        return C5XX, f"unexpected HTTP {status}"
    try:
        answer = json.loads(body)["response"]
    except (ValueError, KeyError, TypeError):
        return C5XX, f"HTTP 200 without an AdmissionReview response: {body[:200]!r}"
    if answer.get("allowed") is True:
        return ALLOWED, ""
    return DENIED, str((answer.get("status") or {}).get("message", ""))[:300]


# -- the load generator ------------------------------------------------------------------------------


# (i, kind, expect, t_due, t_sent, t_done, class, detail, client port, connection serial, cert)
Record = tuple[int, str, str, float, float, float, str, str, int, int, str]


def generate(index: int, count: int, rate: float, t0: float, duration: float, port: int, ca: bytes,
             connections: int, per_connection: int, mix: Mix, certs: dict[bytes, str], out: Any) -> None:
    """Generator process ``index`` of ``count``: requests i = index, index+count, ... due at t0 + i/rate."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    records = asyncio.run(_generate(index, count, rate, t0, duration, port, ca, connections, per_connection, mix, certs))
    out.send((records, time.process_time()))
    out.close()


async def _generate(index: int, count: int, rate: float, t0: float, duration: float, port: int, ca: bytes,
                    connections: int, per_connection: int, mix: Mix, certs: dict[bytes, str]) -> list[Record]:
    ctx = ssl.create_default_context(cadata=ca.decode())
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    records: list[Record] = []
    total = int(duration * rate)
    serial = [0]

    async def dispatch() -> None:
        for i in range(index, total, count):
            due = t0 + i / rate
            wait = due - time.monotonic()
            if wait > 0.0005:
                await asyncio.sleep(wait)
            queue.put_nowait((i, due))
            if queue.qsize() > 2 * connections:  # keep the loop responsive when behind
                await asyncio.sleep(0)
        for _ in range(connections):
            queue.put_nowait(None)

    async def connection() -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        used, cport, cserial, cert = 0, 0, 0, ""
        while True:
            item = await queue.get()
            if item is None:
                break
            i, due = item
            planned = mix(i)
            sent = time.monotonic()
            try:
                if writer is None or reader is None or reader.at_eof() or writer.is_closing() or used >= per_connection:
                    if writer is not None:
                        writer.close()
                        with contextlib.suppress(Exception):
                            await writer.wait_closed()
                    reader = writer = None
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="127.0.0.1"), 5)
                    assert reader is not None and writer is not None
                    used = 0
                    cport = writer.get_extra_info("sockname")[1]
                    serial[0] += 1
                    cserial = index * 1_000_000 + serial[0]
                    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
                    cert = certs.get(hashlib.sha256(der).digest(), "unknown")
                    sent = time.monotonic()
                used += 1
                head = (f"POST {planned.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {planned.content_type}\r\n"
                        f"Content-Length: {len(planned.body)}\r\n\r\n").encode()
                writer.write(head + planned.body)
                raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                status = int(raw.split(b" ", 2)[1])
                length = 0
                for line in raw.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                body = await asyncio.wait_for(reader.readexactly(length), 10)
                klass, detail = classify(status, body)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ssl.SSLError,
                    ValueError) as exc:
                klass, detail = CONN, f"{type(exc).__name__}: {exc}"[:200]
                if writer is not None:
                    writer.close()
                reader = writer = None
            records.append((i, planned.kind, planned.expect, due, sent, time.monotonic(), klass, detail,
                            cport, cserial, cert))
        if writer is not None:
            writer.close()

    await asyncio.gather(dispatch(), *(connection() for _ in range(connections)))
    return records


# -- the server and what is watched during the run ----------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_status(pid: int) -> tuple[float, int, int, float] | None:
    """(RSS MiB, open fds, of which sockets, CPU seconds used) of a live process."""
    try:
        ticks = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(ticks[11]) + int(ticks[12])) / os.sysconf("SC_CLK_TCK")
        rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                   if line.startswith("VmRSS:")) / 1024
        fds = os.listdir(f"/proc/{pid}/fd")
        sockets = sum(1 for fd in fds if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"))
    except (OSError, StopIteration):
        return None
    return rss, len(fds), sockets, cpu


def machine_busy() -> float:
    """CPU seconds spent not idle by all cores since boot (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def client_ports_of(pid: int, server_port: int) -> set[int]:
    """Remote ports of the TCP connections to ``server_port`` that ``pid`` holds (/proc)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, remote, inode = fields[1], fields[2], fields[9]
                if inode in inodes and int(local.rsplit(":", 1)[1], 16) == server_port:
                    ports.add(int(remote.rsplit(":", 1)[1], 16))
    return ports


@dataclass
class Timeline:
    events: list[tuple[float, str]] = field(default_factory=list)
    victim: int = 0
    victim_ports: set[int] = field(default_factory=set)
    kill_at: float | None = None
    policy_at: float | None = None
    rotate_at: float | None = None
    samples: dict[int, list[tuple[float, float, int, int, float]]] = field(default_factory=lambda: defaultdict(list))
    generator_cpu: list[float] = field(default_factory=list)
    machine: list[tuple[float, float, float]] = field(default_factory=list)  # (t, busy CPU s, load average)

    def note(self, t: float, what: str) -> None:
        self.events.append((t, what))


def run_events(args: argparse.Namespace, supervisor: int, port: int, t0: float, timeline: Timeline,
               policy: Path, files: KubeletFiles, second: tuple[bytes, bytes, bytes], stop: Callable[[], bool]) -> None:
    """In the parent while the generators run: sample the workers each second, fire the faults."""
    due = sorted([(args.kill_at, "kill"), (args.policy_at, "policy"), (args.rotate_at, "rotate")])
    next_sample = t0
    while not stop():
        now = time.monotonic()
        if due and now - t0 >= due[0][0]:
            _, what = due.pop(0)
            at = time.monotonic() - t0
            if what == "kill":
                workers = sorted(children_of(supervisor))
                timeline.victim = workers[0]
                timeline.victim_ports = client_ports_of(timeline.victim, port)
                os.kill(timeline.victim, signal.SIGKILL)
                at = timeline.kill_at = time.monotonic() - t0
                timeline.note(at, f"SIGKILL worker {timeline.victim} ({len(timeline.victim_ports)} client "
                                  "connections open on it)")
            elif what == "policy":
                staged = policy.with_name(".policy.tmp")
                staged.write_text("# rewritten by bench/soak.py\nmissingNetworks: warn\n")
                os.replace(staged, policy)
                timeline.policy_at = at
                timeline.note(at, "policy file rewritten: missingNetworks deny -> warn")
            else:
                files.publish(second[0], second[1])
                timeline.rotate_at = at
                timeline.note(at, "certificate files rotated (..data swapped)")
            continue
        if now >= next_sample:
            timeline.machine.append((now - t0, machine_busy(), os.getloadavg()[0]))
            for pid in children_of(supervisor):
                status = proc_status(pid)
                if status is not None:
                    if pid not in timeline.samples:
                        timeline.note(now - t0, f"worker {pid} seen")
                    timeline.samples[pid].append((now - t0, *status))
            next_sample += 1.0
        time.sleep(0.01)


# -- the report ---------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def explain(record: Record, timeline: Timeline, args: argparse.Namespace, t0: float) -> tuple[bool, str]:
    """(expected?, why) for an answer whose class differs from what the request expected."""
    kind, expect, sent, klass, detail, cport = record[1], record[2], record[4], record[6], record[7], record[8]
    t = sent - t0
    if (klass == CONN and cport in timeline.victim_ports and timeline.kill_at is not None
            and timeline.kill_at - 1 <= t <= timeline.kill_at + 5):
        if t <= timeline.kill_at:
            return True, f"in flight at the SIGKILL on connection :{cport} of the killed worker {timeline.victim}"
        return True, (f"sent after the SIGKILL on connection :{cport} of the killed worker {timeline.victim}, "
                      "before the client saw it close")
    if kind == "deny/missing-nad" and klass == ALLOWED and timeline.policy_at is not None and t >= timeline.policy_at:
        return True, "missing NAD allowed with a warning: the new policy (missingNetworks: warn)"
    if (kind == "deny/missing-nad" and klass == DENIED and timeline.policy_at is not None
            and timeline.policy_at <= t < timeline.policy_at + args.policy_grace):
        return True, f"missing NAD still denied within {args.policy_grace:.0f}s of the policy rewrite"
    return False, f"expected {expect}, got {klass}: {detail}"


Status = tuple[float, int, int, float]


def report(records: list[Record], timeline: Timeline, args: argparse.Namespace, start: dict[int, Status],
           end: dict[int, Status], server_code: int | None, log: str, t0: float) -> bool:
    ok = True
    by_class: Counter[str] = Counter()
    by_kind: dict[str, Counter[str]] = defaultdict(Counter)
    explained: Counter[str] = Counter()
    unexpected: list[tuple[Record, str]] = []
    expected_counts: Counter[str] = Counter()
    for r in records:
        kind, expect, klass = r[1], r[2], r[6]
        by_class[klass] += 1
        by_kind[kind][klass] += 1
        want = expect
        if kind == "deny/missing-nad" and timeline.policy_at is not None and r[4] - t0 >= timeline.policy_at + args.policy_grace:
            want = ALLOWED
        expected_counts[want] += 1
        if klass == want:
            continue
        fine, why = explain(r, timeline, args, t0)
        if fine:
            explained[why.split(" :")[0] if " on connection :" in why else why] += 1
        else:
            unexpected.append((r, why))
    # certificates: connections opened after the rotation was due to be seen
    if timeline.rotate_at is not None:
        seen_by = timeline.rotate_at + args.cert_reload_interval + 1
        first_use: dict[int, Record] = {}
        for r in records:
            if r[9] and r[9] not in first_use:
                first_use[r[9]] = r
        for r in first_use.values():
            if r[4] - t0 >= seen_by and r[10] != "new":
                unexpected.append((r, f"connection opened at {r[4] - t0:.1f}s presented the {r[10]} certificate"))
        opened = Counter((r[10], "before" if r[4] - t0 < timeline.rotate_at else "after") for r in first_use.values())
    else:
        opened = Counter()

    duration = args.duration
    print(f"\n== soak: {len(records)} requests in {duration:.0f}s, {args.generators} generator process(es), "
          f"{args.connections} connections, --workers 2")
    for at, what in sorted(timeline.events):
        print(f"  {at:6.2f}s  {what}")
    print("\nanswers by class (what came back / what the request expected: a missing NAD counts as allowed "
          f"from {args.policy_grace:.0f}s after the policy rewrite):")
    for klass in CLASSES:
        print(f"  {klass:17s} {by_class[klass]:7d}   (expected {expected_counts.get(klass, 0)})")
    print("\nby request kind:")
    for kind in sorted(by_kind):
        print(f"  {kind:27s} " + "  ".join(f"{k}={v}" for k, v in sorted(by_kind[kind].items())))
    print("\nexplained differences:")
    for why, count in explained.most_common():
        print(f"  {count:6d}  {why}")
    print(f"\nunexpected: {len(unexpected)}")
    for r, why in unexpected[:30]:
        print(f"  t={r[4] - t0:6.2f}s #{r[0]} {r[1]} conn :{r[8]}: {why}")
    if unexpected:
        ok = False
    if timeline.policy_at is not None:
        missing = [(r[4] - t0 - timeline.policy_at, r[6]) for r in records if r[1] == "deny/missing-nad"]
        last_old = max((t for t, k in missing if k == DENIED), default=float("nan"))
        first_new = min((t for t, k in missing if k == ALLOWED), default=float("nan"))
        print(f"\npolicy rewrite: first answer under the new policy {first_new:+.2f}s after it, "
              f"last under the old one {last_old:+.2f}s")
    if opened:
        print("new TLS connections by certificate presented: "
              + ", ".join(f"{cert} cert {when} the rotation: {n}" for (cert, when), n in sorted(opened.items())))
        if timeline.rotate_at is not None:
            fresh = [r[4] - t0 - timeline.rotate_at for r in first_use.values() if r[10] == "new"]
            stale = [r[4] - t0 - timeline.rotate_at for r in first_use.values()
                     if r[10] == "old" and r[4] - t0 >= timeline.rotate_at]
            print(f"certificate rotation: first new certificate {min(fresh, default=float('nan')):+.2f}s after the "
                  f"swap, last old one {max(stale, default=float('nan')):+.2f}s (reload interval "
                  f"{args.cert_reload_interval:.0f}s)")

    print(f"\nper {args.window:.0f}s window (latency from the request's write to the answer's last byte; "
          "lag = how late the generator wrote it):")
    print("  window      sent  req/s   p50 ms   p99 ms   max ms  lag p99 ms  lag max ms  errors  busy cores  load")
    windows = int(-(-duration // args.window))
    for w in range(windows):
        lo, hi = w * args.window, (w + 1) * args.window
        rows = [r for r in records if lo <= r[3] - t0 < hi]
        lat = [(r[5] - r[4]) * 1000 for r in rows if r[6] != CONN]
        lag = [max(0.0, r[4] - r[3]) * 1000 for r in rows]
        errors = sum(1 for r in rows if r[6] == CONN)
        p99 = percentile(lat, 0.99)
        has_kill = timeline.kill_at is not None and lo <= timeline.kill_at < hi
        flag = " (kill)" if has_kill else ""
        if not has_kill and p99 > 5.0:
            ok = False
            flag += " p99 > 5 ms"
        inside = [m for m in timeline.machine if lo <= m[0] <= hi]
        busy = (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0]) if len(inside) > 1 else float("nan")
        load = max((m[2] for m in inside), default=float("nan"))
        if busy >= 0.9 * (os.cpu_count() or 1):
            flag += " saturated"
        print(f"  {lo:3.0f}-{hi:3.0f}s {len(rows):7d} {len(rows) / args.window:6.0f} {percentile(lat, 0.5):8.2f} "
              f"{p99:8.2f} {max(lat, default=float('nan')):8.1f} {percentile(lag, 0.99):11.2f} "
              f"{max(lag, default=float('nan')):11.1f} {errors:7d} {busy:11.2f} {load:5.1f}{flag}")
    all_lat = [(r[5] - r[4]) * 1000 for r in records if r[6] != CONN]
    print(f"  all      {len(records):7d} {len(records) / duration:6.0f} {percentile(all_lat, 0.5):8.2f} "
          f"{percentile(all_lat, 0.99):8.2f}")
    print("  (busy cores: all processes of the machine, this run's included, out of "
          f"{os.cpu_count()}; load: the highest 1-minute load average seen in the window)")

    print("\nworkers (RSS MiB / open fds / of which sockets), measured with the load stopped: start = after "
          f"the {args.warmup:.0f}s warm-up, end = after the run; a replacement's start is its first sample "
          f"{args.warmup:.0f}s after it appeared (under load); max fds = the most seen in the 1 s samples:")
    for pid in sorted(set(start) | set(end) | set(timeline.samples)):
        samples = timeline.samples.get(pid, [])
        s: Status | None = start.get(pid)
        if s is None and samples:
            s = next((x[1:] for x in samples if x[0] >= samples[0][0] + args.warmup), None)
        e = end.get(pid)
        fate = "killed" if pid == timeline.victim else ("replacement" if pid not in start else "original")
        most = max((x[2] for x in samples), default=0)
        cpu = ""
        if len(samples) >= 2:
            span = samples[-1][0] - samples[0][0]
            cpu = f"  CPU {100 * (samples[-1][4] - samples[0][4]) / span:.0f} % of a core" if span > 0 else ""
        if s is None or e is None:
            print(f"  {pid:7d} {fate:11s} start {fmt(s)}  end {fmt(e)}  max fds {most}{cpu}")
            continue
        growth = (e[0] - s[0]) / s[0] * 100
        files_start, files_end = s[1] - s[2], e[1] - e[2]
        flag = ""
        if growth > 10:
            ok = False
            flag += " RSS > +10 %"
        if files_end > files_start:
            ok = False
            flag += " non-socket fds grew"
        print(f"  {pid:7d} {fate:11s} start {fmt(s)}  end {fmt(e)}  RSS {growth:+.1f} %  "
              f"non-socket fds {files_start} -> {files_end}  max fds {most}{cpu}{flag}")
    print("RSS MiB every 10 s under load (from the 1 s samples):")
    for pid, samples in sorted(timeline.samples.items()):
        trace = [f"{x[1]:.1f}" for k, x in enumerate(samples) if k % 10 == 0] + [f"{samples[-1][1]:.1f}"]
        half = next((x[1] for x in samples if x[0] >= args.duration / 2), None)
        tail = f"   (last {args.duration / 2:.0f}s: {100 * (samples[-1][1] - half) / half:+.1f} %)" if half else ""
        print(f"  {pid:7d}  " + " ".join(trace) + tail)
    if timeline.generator_cpu:
        print(f"load generators: CPU {', '.join(f'{100 * c / args.duration:.0f} %' for c in timeline.generator_cpu)} "
              "of a core each over the measured run")

    logged = [line for line in log.splitlines() if " ERROR " in line or "Traceback" in line]
    print(f"\nserver exit code after SIGTERM: {server_code}; ERROR/Traceback lines in its log: {len(logged)}")
    for line in logged[:10]:
        print(f"  {line[:200]}")
    if server_code != 0:
        ok = False
    print(f"\nresult: {'all targets held' if ok else 'TARGETS MISSED'}")
    return ok


def fmt(sample: Status | None) -> str:
    return "-" if sample is None else f"{sample[0]:6.1f} / {sample[1]:3d} / {sample[2]:3d}"


# -- main -------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=60.0)
    p.add_argument("--warmup", type=float, default=5.0)
    p.add_argument("--rate", type=float, default=1000.0)
    p.add_argument("--generators", type=int, default=1, help="load generator processes (one uses ~0.3 core at 1,000/s)")
    p.add_argument("--connections", type=int, default=32, help="in all, spread over the generators")
    p.add_argument("--requests-per-connection", type=int, default=200)
    p.add_argument("--window", type=float, default=10.0)
    p.add_argument("--kill-at", type=float, default=20.0)
    p.add_argument("--policy-at", type=float, default=30.0)
    p.add_argument("--policy-grace", type=float, default=3.0)
    p.add_argument("--rotate-at", type=float, default=40.0)
    p.add_argument("--cert-reload-interval", type=float, default=10.0)
    p.add_argument("--namespaces", type=int, default=50)
    p.add_argument("--nads-per-namespace", type=int, default=20)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", type=Path, help="also write the raw records here")
    p.add_argument("--keep", action="store_true", help="keep the work directory (index, certificates, server log)")
    args = p.parse_args(argv)
    if args.nads_per_namespace < 8:
        p.error("--nads-per-namespace: at least 8 (pods select up to 8 distinct NADs)")

    work = Path(tempfile.mkdtemp(prefix="netplex-soak-"))
    index = work / "index"
    index.mkdir()
    write_index(index, args.namespaces, args.nads_per_namespace)
    policy = work / "policy.yaml"
    policy.write_text("missingNetworks: deny\n")
    ca, pairs = make_certificates()
    tls_dir = work / "tls"
    tls_dir.mkdir()
    files = KubeletFiles(tls_dir)
    files.publish(pairs[0][0], pairs[0][1])
    certs = {pairs[0][2]: "old", pairs[1][2]: "new"}
    port = free_port()
    log_path = work / "webhook.log"
    with log_path.open("wb") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "webhook.server", "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
             "--tls-cert", str(tls_dir / "tls.crt"), "--tls-key", str(tls_dir / "tls.key"),
             "--nads", str(index), "--policy", str(policy),
             "--cert-reload-interval", str(args.cert_reload_interval)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log_file)
    try:
        wait_ready(server, port, ca)
        mix = Mix(args.seed, args.namespaces, args.nads_per_namespace)
        self_check(port, ca, mix)
        print(f"server ready: {len(children_of(server.pid))} workers, {args.namespaces * args.nads_per_namespace} NADs; "
              f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}", flush=True)
        # warm-up at the same rate (not counted), then the measured run
        run_load(args, args.warmup, port, ca, Mix(args.seed + 7, args.namespaces, args.nads_per_namespace), certs,
                 server.pid, None, policy, files, pairs[1])
        start = {pid: s for pid in children_of(server.pid) if (s := proc_status(pid)) is not None}
        histogram_before = server_histogram(port, ca)
        timeline = Timeline()
        records, t0 = run_load(args, args.duration, port, ca, mix, certs, server.pid, timeline, policy, files, pairs[1])
        end = {pid: s for pid in children_of(server.pid) if (s := proc_status(pid)) is not None}
        histogram = {le: n - histogram_before.get(le, 0.0) for le, n in server_histogram(port, ca).items()}
        loads = os.getloadavg()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            code: int | None = server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            code = None
    print(f"load average after the run: {loads[0]:.2f} {loads[1]:.2f} {loads[2]:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"t0": t0, "records": records, "events": timeline.events}))
    ok = report(records, timeline, args, start, end, code, log_path.read_text(), t0)
    total = histogram.get(float("inf"), 0.0)
    if total:
        shares = ", ".join(f"<= {le * 1000:g} ms {100 * n / total:.2f} %" for le, n in sorted(histogram.items())
                           if le in (0.001, 0.0025, 0.005, 0.01, 0.025))
        print(f"server side (the webhook's own histogram, headers in to answer out, {total:.0f} requests of the "
              f"measured run, the killed worker's included): {shares}")
    if args.keep:
        print(f"(work directory: {work})")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


def run_load(args: argparse.Namespace, duration: float, port: int, ca: bytes, mix: Mix, certs: dict[bytes, str],
             supervisor: int, timeline: Timeline | None, policy: Path, files: KubeletFiles,
             second: tuple[bytes, bytes, bytes]) -> tuple[list[Record], float]:
    fork = multiprocessing.get_context("fork")
    t0 = time.monotonic() + 0.5
    pipes, procs = [], []
    per = max(1, args.connections // args.generators)
    for g in range(args.generators):
        parent, child = fork.Pipe(duplex=False)
        proc = fork.Process(target=generate, args=(g, args.generators, args.rate, t0, duration, port, ca, per,
                                                   args.requests_per_connection, mix, certs, child))
        proc.start()
        child.close()
        pipes.append(parent)
        procs.append(proc)
    if timeline is not None:
        run_events(args, supervisor, port, t0, timeline, policy, files, second,
                   stop=lambda: time.monotonic() - t0 > duration + 0.5)
    records: list[Record] = []
    cpu = []
    for pipe in pipes:
        got, seconds = pipe.recv()
        records.extend(got)
        cpu.append(seconds)
    for proc in procs:
        proc.join()
    records.sort()
    if timeline is not None:
        timeline.generator_cpu = cpu
    return records, t0


def server_histogram(port: int, ca: bytes) -> dict[float, float]:
    """The webhook's own request-duration histogram (all workers, both endpoints): le -> count."""
    from prometheus_client.parser import text_string_to_metric_families

    ctx = ssl.create_default_context(cadata=ca.decode())
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
        conn.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    buckets: dict[float, float] = defaultdict(float)
    for family in text_string_to_metric_families(data.partition(b"\r\n\r\n")[2].decode()):
        for sample in family.samples:
            if sample.name == "netplex_webhook_request_duration_seconds_bucket":
                buckets[float(sample.labels["le"])] += sample.value
    return dict(buckets)


def wait_ready(server: subprocess.Popen[bytes], port: int, ca: bytes, timeout: float = 60) -> None:
    ctx = ssl.create_default_context(cadata=ca.decode())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the webhook exited with {server.returncode} before it was ready")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as raw, \
                    ctx.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
                conn.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if conn.recv(100).startswith(b"HTTP/1.1 200") and len(children_of(server.pid)) == 2:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("the webhook did not become ready")


def self_check(port: int, ca: bytes, mix: Mix) -> None:
    """One request of each kind before the load: the generator's expectations must hold."""
    ctx = ssl.create_default_context(cadata=ca.decode())
    seen: dict[str, Planned] = {}
    i = 10_000_000
    while len(seen) < 15 and i < 10_020_000:
        planned = mix(i)
        seen.setdefault(planned.kind, planned)
        i += 1
    wrong = []
    for kind, planned in sorted(seen.items()):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
            conn.sendall(f"POST {planned.path} HTTP/1.1\r\nHost: x\r\nContent-Type: {planned.content_type}\r\n"
                         f"Content-Length: {len(planned.body)}\r\nConnection: close\r\n\r\n".encode() + planned.body)
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        klass, detail = classify(int(head.split(b" ", 2)[1]), body)
        if klass != planned.expect:
            wrong.append(f"{kind}: expected {planned.expect}, got {klass}: {detail}")
    if wrong:
        raise SystemExit("the generator's expectations do not hold:\n  " + "\n  ".join(wrong))
    print(f"self-check: {len(seen)} kinds of request answered as expected", flush=True)


if __name__ == "__main__":
    sys.exit(main())
