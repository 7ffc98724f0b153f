"""ADD+DEL of a pod with 1, 3 and 8 networks through ``netplex``, against the same delegates
run directly; VERSION start-up; peak RSS.

Run as root, with ``containernetworking-plugins`` in /usr/lib/cni and iproute2:

    .venv/bin/python bench/plugin.py [--runs N] [--quick] [--python /usr/bin/python3]
                                     [--against REF] [--isolated] [--profile DIR]

What runs, in one run of this script:

- **netplex**: the zipapp built by ``plugin.node.pack`` with ``#!<--python>``, executed directly
  as a runtime executes ``/opt/cni/bin/netplex``, with the ``CNI_*`` environment and the
  netplex configuration on stdin. Its cluster network is bridge + host-local (``eth0``);
  the pod's selection lists the NADs ``macvlan-conf`` (on one end of a veth pair) and
  ``bridge-conf`` in turn (``net1``, ``net2``, ...). "N networks" counts the cluster
  network: 3 networks are eth0, net1 and net2. The pod and the NADs come from the
  Kubernetes API test double (``tests/k8sapi.py``, HTTPS on loopback), so every ADD does
  what it does on a node: GET the pod, GET each NAD, write the cache, run the delegates,
  PATCH the network-status annotation. DEL works from the cache, as on a node.
- **direct** (the floor): the same delegate binaries with the same bytes on stdin, the same
  interfaces and the same ``CNI_ARGS``, in the same order (DEL in reverse, with
  ``prevResult``), run one after the other by this script: what a runtime would pay with
  no meta-plugin at all. The configurations are taken from netplex's own cache entry of an
  untimed warm-up ADD, so both sides run exactly the same delegate requests.
- **start-up**: VERSION of the same zipapp against ``<--python> -c pass``; and, to show
  what importing costs, a process that imports exactly the modules a 3-network ADD (DEL)
  imported (listed by ``-X importtime`` of a real one) and does nothing else.
- **thick**: the shim (``plugin/node/shim.py`` rendered as the installer does, ``#!<--python> -IS``)
  executed the same way, asking a ``netplex-node`` daemon started by this script in the node
  namespace (with the API double's kubeconfig; the configuration the shim gets has none).
  Also measured for thick mode: the shim's VERSION against ``<--python> -IS -c pass``; the
  daemon's RSS when idle after the warm-up and after ``--pods`` more pods (1 network,
  ADD+DEL each); and ``--parallel`` pods (3 networks each, a namespace each) ADDed all at
  once and then DELeted all at once, thick and thin, wall time of each burst.
- Sides take turns within a run (order reversed every other run), with a pause of
  ``SETTLE`` between two, so that one side's background work (the daemon's Events) does
  not land on the next one's timing.
- ``--against REF`` adds netplex as of a git ref (``git archive``, read only), measured
  in the same runs: before/after on the same noisy machine. ``--isolated`` adds a zipapp
  whose ``#!`` line is ``<--python> -IS`` (no ``site``, no ``PYTHON*`` variables).
  ``--profile DIR`` writes cProfile and ``-X importtime`` output of one 3-network ADD and DEL.

Cases are interleaved within a run, and netplex and direct alternate which goes first,
so a slower moment of the machine hits every side. Every ADD is checked (the pod namespace
has the expected interfaces) and every DEL too (only ``lo`` left), outside the timings;
at the end no host-local reservation may be left.

Everything lives in two network namespaces this script makes and deletes (``node`` plays
the host: bridges, veth pair, the API double, netplex and the plugins all run there, by
re-running this script under ``ip netns exec``; ``pod`` is the sandbox) and one temporary
directory (zipapps, host-local data, the netplex cache, kubeconfig). They are removed on
success, failure, Ctrl-C and SIGTERM; nothing is created in the host's network namespace.

Peak RSS: ``ru_maxrss`` from ``wait4``, for processes started through a small launcher
(:data:`LAUNCHER`), because a child's figure includes the memory of the process it was
forked from. For netplex it is the larger of its own peak and its delegates' (the largest
delegate run directly is printed next to it); the launcher's own is printed as the floor.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CNI_BIN = "/usr/lib/cni"
NETWORKS = "k8s.v1.cni.cncf.io/networks"
CASES = (1, 3, 8)
VERSION_TARGET_MS = 25.0
OVERHEAD_TARGET = 0.25
OVERHEAD_CASE = 3
THICK_TARGET = 1.25  # thick ADD+DEL <= 1.25 x direct, for OVERHEAD_CASE networks
SHIM_TARGET_MS = 5.0  # shim VERSION <= python -IS -c pass + 5 ms
NODE = "bench-node"  # the pods' spec.nodeName and the daemon's --node-name (it watches this node's pods)
SETTLE = 0.1  # seconds between two sides of a run: neither measures the other's background work


# ------------------------------------------------------------------ processes, timed


@dataclass
class Ran:
    seconds: float
    code: int
    stdout: bytes
    stderr: bytes
    maxrss_kib: int


# Started by a small process instead of this one: a child's ru_maxrss counts the memory of
# the process it was forked from, until its exec (this one holds the API double: ~40 MiB).
LAUNCHER = """\
import os, sys
pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_timed(argv: Sequence[str], env: Mapping[str, str], stdin: bytes = b"", *,
              launcher: str | None = None) -> Ran:
    """Run one process to its end: wall time from fork to reap, and its ``wait4`` rusage.

    With ``launcher`` (an interpreter), the process is started through :data:`LAUNCHER`
    instead, for a peak RSS that is the process's own (``seconds`` then includes the
    launcher)."""
    if launcher is None:
        return _run_timed(argv, env, stdin)
    fd, rss_file = tempfile.mkstemp(prefix="netplex-bench-rss-")
    os.close(fd)
    try:
        ran = _run_timed([launcher, "-S", "-c", LAUNCHER, rss_file, *argv], env, stdin)
        with open(rss_file) as f:
            text = f.read()
    finally:
        os.unlink(rss_file)
    ran.maxrss_kib = int(text) if text else 0
    return ran


def _run_timed(argv: Sequence[str], env: Mapping[str, str], stdin: bytes) -> Ran:
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=dict(env))
        assert proc.stdin is not None and proc.stdout is not None
        with contextlib.suppress(BrokenPipeError):  # VERSION does not read stdin
            proc.stdin.write(stdin)
        proc.stdin.close()
        out = proc.stdout.read()
        proc.stdout.close()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return Ran(seconds, proc.returncode, out, err.read(), usage.ru_maxrss)


def check_ok(what: str, ran: Ran) -> Ran:
    if ran.code != 0:
        raise SystemExit(f"{what} failed (exit {ran.code}): {ran.stdout.decode(errors='replace')} "
                         f"{ran.stderr.decode(errors='replace')}")
    return ran


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def links_in(netns: str) -> list[str]:
    return sorted(link["ifname"] for link in json.loads(ip("-n", netns, "-j", "link", "show").stdout))


# ------------------------------------------------------------------ the delegates, direct


@dataclass(frozen=True)
class Delegate:
    """One network as netplex executed it: its configuration bytes, interface and CNI_ARGS."""

    ifname: str
    config: Mapping[str, Any]
    cni_args: str

    def requests(self) -> list[dict[str, Any]]:
        """One request per plugin, as a runtime builds them from a conf or conflist."""
        if "plugins" not in self.config:
            return [dict(self.config)]
        top = {"cniVersion": self.config.get("cniVersion"), "name": self.config.get("name")}
        return [{**plugin, **top} for plugin in self.config["plugins"]]


def run_direct(delegates: Sequence[Delegate], command: str, env: Mapping[str, str],
               results: list[dict[str, Any] | None], launcher: str | None = None) -> tuple[float, int]:
    """ADD every delegate in order (keeping results) or DEL them in reverse with prevResult.

    Returns the total wall time and the largest ``ru_maxrss`` of the plugins run."""
    total, peak = 0.0, 0
    order = range(len(delegates)) if command == "ADD" else reversed(range(len(delegates)))
    for i in order:
        delegate = delegates[i]
        plugins = delegate.requests()
        prev = results[i] if command == "DEL" else None
        sequence = plugins if command == "ADD" else list(reversed(plugins))
        for request in sequence:
            body = dict(request)
            if prev is not None:
                body["prevResult"] = prev
            call_env = {**env, "CNI_COMMAND": command, "CNI_IFNAME": delegate.ifname, "CNI_ARGS": delegate.cni_args}
            ran = check_ok(f"direct {command} {request['type']} ({delegate.ifname})",
                           run_timed([os.path.join(CNI_BIN, request["type"])], call_env, json.dumps(body).encode(),
                                     launcher=launcher))
            total += ran.seconds
            peak = max(peak, ran.maxrss_kib)
            if command == "ADD":
                prev = json.loads(ran.stdout)
        if command == "ADD":
            results[i] = prev
    return total, peak


# ------------------------------------------------------------------ the bench itself


@dataclass
class Samples:
    values: list[float] = field(default_factory=list)

    def add(self, seconds: float) -> None:
        self.values.append(seconds)

    @property
    def ms(self) -> float:
        return statistics.median(self.values) * 1000


@dataclass(frozen=True)
class Variant:
    """One netplex build under test: the working tree, a git ref, or another #! line."""

    label: str
    zipapp: Path


@dataclass
class Case:
    networks: int
    pod: str
    container_id: str
    delegates: list[Delegate] = field(default_factory=list)

    @property
    def interfaces(self) -> list[str]:
        return sorted(["lo", "eth0", *(f"net{i}" for i in range(1, self.networks))])


@dataclass
class Figures:
    """Every sample, keyed by (who, networks, "ADD" | "DEL" | "both"); who is a variant's
    label or "direct". Start-up samples are keyed by (label, 0, "VERSION")."""

    samples: dict[tuple[str, int, str], Samples] = field(default_factory=dict)
    rss_kib: dict[tuple[str, int], int] = field(default_factory=dict)

    def add(self, who: str, networks: int, what: str, seconds: float) -> None:
        self.samples.setdefault((who, networks, what), Samples()).add(seconds)

    def ms(self, who: str, networks: int, what: str) -> float:
        return self.samples[(who, networks, what)].ms

    def rss(self, who: str, networks: int, kib: int) -> None:
        self.rss_kib[(who, networks)] = max(self.rss_kib.get((who, networks), 0), kib)

    def overhead(self, who: str, networks: int) -> float:
        direct = self.ms("direct", networks, "both")
        return (self.ms(who, networks, "both") - direct) / direct


def selection(networks: int) -> str:
    return ",".join("macvlan-conf" if i % 2 == 0 else "bridge-conf" for i in range(networks - 1))


def build_variants(args: argparse.Namespace, tmp: Path) -> list[Variant]:
    def pack(source: Path, output: Path, interpreter: str) -> Path:
        subprocess.run([sys.executable, "-m", "plugin.node.pack", "--output", str(output), "--python", interpreter],
                       cwd=source, check=True, capture_output=True)
        return output

    variants = [Variant("netplex", pack(ROOT, tmp / "netplex", args.python))]
    if args.isolated:
        variants.append(Variant("netplex -IS", pack(ROOT, tmp / "netplex-IS", f"{args.python} -IS")))
    if args.against:
        tree = tmp / "against"
        tree.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.against, "plugin"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        variants.append(Variant(f"netplex@{args.against}", pack(tree, tmp / "netplex-against", args.python)))
    return variants


def inner(args: argparse.Namespace) -> int:
    """Inside the node namespace: links, API double, zipapps; then the timed runs."""
    from plugin.cni import cache
    from tests.k8sapi import FakeApiServer, make_nad, make_pod

    tmp = Path(args.tmp)
    pod_ns = f"/run/netns/{args.pod_netns}"
    ip("link", "set", "lo", "up")
    ip("link", "add", "mv0", "type", "veth", "peer", "name", "mv0peer")
    ip("link", "set", "mv0", "up")
    ip("link", "set", "mv0peer", "up")
    args.load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    variants = build_variants(args, tmp)
    main_variant = variants[0]
    data = tmp / "ipam"

    def ipam(subnet: str) -> dict[str, Any]:
        return {"type": "host-local", "subnet": subnet, "dataDir": str(data)}

    figures = Figures()
    with FakeApiServer(tls=True) as api:
        api.create(make_nad("macvlan-conf", config={"cniVersion": "1.0.0", "type": "macvlan", "master": "mv0",
                                                    "mode": "bridge", "ipam": ipam("198.18.64.0/20")}))
        api.create(make_nad("bridge-conf", config={"cniVersion": "1.0.0", "type": "bridge", "bridge": "npd0",
                                                   "ipam": ipam("198.18.80.0/20")}))
        cases = []
        for n in CASES:
            pod = api.create(make_pod(f"web-{n}", annotations={NETWORKS: selection(n)} if n > 1 else None,
                                      node_name=NODE))
            cases.append(Case(n, f"web-{n}", f"bench{n}-{pod['metadata']['uid'][:8]}"))
        conf = json.dumps({
            "cniVersion": "1.0.0", "name": "netplex", "type": "netplex",
            "kubeconfig": str(api.kubeconfig(tmp / "kubeconfig")), "cniDir": str(tmp / "cni"), "binDir": CNI_BIN,
            "delegates": [{"cniVersion": "1.0.0", "name": "cluster-net", "plugins": [
                {"type": "bridge", "bridge": "npc0", "ipam": ipam("198.18.96.0/20")}]}],
        }).encode()
        base_env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}

        def cni_env(case: Case) -> dict[str, str]:
            uid = api.get("pods", "default", case.pod)["metadata"]["uid"]  # type: ignore[index]
            return {**base_env, "CNI_CONTAINERID": case.container_id, "CNI_NETNS": pod_ns, "CNI_IFNAME": "eth0",
                    "CNI_PATH": CNI_BIN,
                    "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={case.pod};"
                                f"K8S_POD_INFRA_CONTAINER_ID={case.container_id};K8S_POD_UID={uid}"}

        envs = {case.networks: cni_env(case) for case in cases}
        thick_conf = json.dumps({k: v for k, v in json.loads(conf).items() if k != "kubeconfig"}).encode()
        node_daemon = start_daemon(tmp, api.kubeconfig(tmp / "kubeconfig-daemon"), base_env)
        shim = write_shim(tmp, args.python, main_variant.zipapp)

        def expect(after: str, wanted: list[str]) -> None:
            found = links_in(args.pod_netns)
            if found != wanted:
                raise SystemExit(f"after {after}: the pod has {found}, expected {wanted}")

        def netplex(variant: Variant, case: Case, command: str, launcher: str | None = None) -> Ran:
            ran = check_ok(f"{variant.label} {command} ({case.networks} networks)",
                           run_timed([str(variant.zipapp)], {**envs[case.networks], "CNI_COMMAND": command}, conf,
                                     launcher=launcher))
            expect(f"{variant.label} {command}", case.interfaces if command == "ADD" else ["lo"])
            return ran

        def thick(case: Case, command: str, launcher: str | None = None, *, env: Mapping[str, str] | None = None,
                  check: bool = True) -> Ran:
            ran = check_ok(f"thick {command} ({case.networks} networks)",
                           run_timed([str(shim)], {**(env or envs[case.networks]), "CNI_COMMAND": command},
                                     thick_conf, launcher=launcher))
            if check:
                expect(f"thick {command}", case.interfaces if command == "ADD" else ["lo"])
            return ran

        def direct(case: Case, launcher: str | None = None) -> tuple[float, float, int]:
            env = envs[case.networks]
            results: list[dict[str, Any] | None] = [None] * len(case.delegates)
            added, peak_add = run_direct(case.delegates, "ADD", env, results, launcher)
            expect("direct ADD", case.interfaces)
            deleted, peak_del = run_direct(case.delegates, "DEL", env, results, launcher)
            expect("direct DEL", ["lo"])
            return added, deleted, max(peak_add, peak_del)

        # Warm-up (untimed): every variant once; each case's delegates from netplex's cache entry.
        for case in cases:
            for variant in reversed(variants):
                netplex(variant, case, "ADD")
                entry = cache.read(str(tmp / "cni"), case.container_id)
                assert entry is not None
                case.delegates = [Delegate(a.ifname, json.loads(a.config), a.cni_args) for a in entry.attachments]
                netplex(variant, case, "DEL")
            thick(case, "ADD")
            thick(case, "DEL")
        if args.profile:
            profile(args, main_variant.zipapp, next(c for c in cases if c.networks == OVERHEAD_CASE),
                    {**envs[OVERHEAD_CASE]}, conf)

        version_env = {**base_env, "CNI_COMMAND": "VERSION"}
        # The same imports as a real ADD and DEL (3 networks), and nothing else: what netplex
        # pays before it does any work.
        imports = {(variant.label, command): import_only(args.python, variant.zipapp, check_ok(
            f"importtime {command}", run_timed([args.python, "-X", "importtime", str(variant.zipapp)],
                                               {**envs[OVERHEAD_CASE], "CNI_COMMAND": command}, conf)).stderr)
            for variant in variants for command in ("ADD", "DEL")}
        expect("importtime runs", ["lo"])
        for r in range(max(args.runs, args.version_runs)):
            if r < args.version_runs:
                ran = check_ok("python -c pass", run_timed([args.python, "-c", "pass"], base_env))
                figures.add("python -c pass", 0, "VERSION", ran.seconds)
                for variant in variants:
                    ran = check_ok(f"{variant.label} VERSION", run_timed([str(variant.zipapp)], version_env))
                    figures.add(variant.label, 0, "VERSION", ran.seconds)
                ran = check_ok("python -IS -c pass", run_timed([args.python, "-IS", "-c", "pass"], base_env))
                figures.add("python -IS -c pass", 0, "VERSION", ran.seconds)
                figures.add("thick", 0, "VERSION", check_ok("shim VERSION", run_timed([str(shim)], version_env)).seconds)
                for (label, command), argv in imports.items():
                    figures.add(f"imports of {command}, {label}", 0, "VERSION",
                                check_ok(f"imports of {command}", run_timed(argv, base_env)).seconds)
            if r >= args.runs:
                continue
            for case in cases:
                sides: list[Variant | str | None] = [*variants, "thick", None]  # None: direct
                if r % 2:
                    sides.reverse()
                for side in sides:
                    time.sleep(SETTLE)  # what one side left running (the daemon's Events) ends before the next
                    if side is None:
                        add_s, del_s, _ = direct(case)
                        who = "direct"
                    elif side == "thick":
                        add_s = thick(case, "ADD").seconds
                        del_s = thick(case, "DEL").seconds
                        who = "thick"
                    else:
                        assert isinstance(side, Variant)
                        add_s = netplex(side, case, "ADD").seconds
                        del_s = netplex(side, case, "DEL").seconds
                        who = side.label
                    figures.add(who, case.networks, "ADD", add_s)
                    figures.add(who, case.networks, "DEL", del_s)
                    figures.add(who, case.networks, "both", add_s + del_s)

        # Peak RSS, untimed: every process started through the small launcher.
        launcher = args.python
        figures.rss("launcher (floor)", 0, check_ok("launcher", run_timed(["/bin/true"], base_env,
                                                                           launcher=launcher)).maxrss_kib)
        figures.rss("python -c pass", 0, check_ok("python -c pass", run_timed(
            [args.python, "-c", "pass"], base_env, launcher=launcher)).maxrss_kib)
        for variant in variants:
            figures.rss(variant.label, 0, check_ok("VERSION", run_timed([str(variant.zipapp)], version_env,
                                                                        launcher=launcher)).maxrss_kib)
            for case in cases:
                for command in ("ADD", "DEL"):
                    figures.rss(variant.label, case.networks,
                                netplex(variant, case, command, launcher).maxrss_kib)
        for case in cases:
            figures.rss("direct", case.networks, direct(case, launcher)[2])
            for command in ("ADD", "DEL"):
                figures.rss("thick shim", case.networks, thick(case, command, launcher).maxrss_kib)

        # The daemon's memory: idle after everything above, then after --pods more pods.
        figures.rss("daemon idle", 0, rss_kib(node_daemon.pid))
        one = next(c for c in cases if c.networks == 1)
        for _ in range(args.pods):
            thick(one, "ADD", check=False)
            thick(one, "DEL", check=False)
        expect(f"{args.pods} pods through the daemon", ["lo"])
        figures.rss("daemon after pods", 0, rss_kib(node_daemon.pid))

        # Pods at once: --parallel pods of OVERHEAD_CASE networks, each in its own namespace.
        burst = parallel_pods(args, api, tmp, pod_ns, base_env, conf, thick_conf, shim, main_variant)

        leftovers = {net: sorted(os.listdir(data / net)) for net in sorted(os.listdir(data))}
        if any(name[0].isdigit() for names in leftovers.values() for name in names):
            raise SystemExit(f"host-local allocations left behind: {leftovers}")
        node_daemon.send_signal(signal.SIGTERM)
        node_daemon.wait(30)

    report(args, variants, figures, burst)
    return 0


def start_daemon(tmp: Path, kubeconfig: Path, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """``netplex-node`` of this tree, in the node namespace; returns once it answers."""
    from plugin.node import daemon

    sock = tmp / "run" / "netplex.sock"
    proc = subprocess.Popen([sys.executable, "-m", "plugin.node.daemon", "run", "--socket", str(sock),
                             "--kubeconfig", str(kubeconfig), "--log-level", "warning", "--node-name", NODE],
                            cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)}, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while daemon.probe(str(sock), 1.0) != 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("netplex-node did not start")
        time.sleep(0.05)
    return proc


def write_shim(tmp: Path, python: str, thin: Path) -> Path:
    from plugin.node import wire

    shim = tmp / "shim" / "netplex"
    shim.parent.mkdir()
    shim.write_text(wire.render_shim(socket_path=str(tmp / "run" / "netplex.sock"), thin=str(thin), timeout=60,
                                     python=python))
    shim.chmod(0o755)
    return shim


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def parallel_pods(args: argparse.Namespace, api: Any, tmp: Path, pod_ns: str, base_env: Mapping[str, str],
                  conf: bytes, thick_conf: bytes, shim: Path, thin: Variant) -> dict[str, float]:
    """Wall time of ``--parallel`` ADDs at once, then as many DELs, thick and thin; every
    pod is checked afterwards (3 networks in, only ``lo`` after the DELs)."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.k8sapi import make_pod

    count = args.parallel
    names = [f"{os.path.basename(pod_ns)}-p{i}" for i in range(count)]
    wanted = sorted(["lo", "eth0", *(f"net{i}" for i in range(1, OVERHEAD_CASE))])
    uids = [api.create(make_pod(f"burst-{i}", annotations={NETWORKS: selection(OVERHEAD_CASE)},
                                node_name=NODE))["metadata"]["uid"] for i in range(count)]
    seconds: dict[str, float] = {}
    made: list[str] = []
    try:
        for name in names:
            ip("netns", "add", name)
            made.append(name)
        for label, argv, body in (("thick", [str(shim)], thick_conf), ("thin", [str(thin.zipapp)], conf)):
            def one(i: int, command: str, argv: list[str] = argv, body: bytes = body, label: str = label) -> Ran:
                env = {**base_env, "CNI_COMMAND": command, "CNI_CONTAINERID": f"burst-{label}-{i}",
                       "CNI_NETNS": f"/run/netns/{names[i]}", "CNI_IFNAME": "eth0", "CNI_PATH": CNI_BIN,
                       "CNI_ARGS": f"K8S_POD_NAMESPACE=default;K8S_POD_NAME=burst-{i};K8S_POD_UID={uids[i]}"}
                return check_ok(f"{label} {command} of pod {i} at once", run_timed(argv, env, body))

            for command in ("ADD", "DEL"):
                start = time.perf_counter()
                with ThreadPoolExecutor(max_workers=count) as pool:
                    list(pool.map(lambda i, c=command: one(i, c), range(count)))
                seconds[f"{label} {command}"] = time.perf_counter() - start
                expected = wanted if command == "ADD" else ["lo"]
                for name in names:
                    if links_in(name) != expected:
                        raise SystemExit(f"{label} {command} at once: {name} has {links_in(name)}")
    finally:
        for name in made:
            ip("netns", "del", name, check=False)
    return seconds


IMPORTED = """\
import sys
sys.path.insert(0, sys.argv[1])
for name in sys.argv[2:]:
    try:
        __import__(name)
    except ImportError:  # tried and failed in the real run too (copy tries org.python.core)
        pass
"""


def import_only(python: str, zipapp: Path, importtime: bytes) -> list[str]:
    """A command that imports, from ``zipapp``, every module ``-X importtime`` listed, in order."""
    names: list[str] = []
    pending: list[str] = []  # a top-level import's own imports come before it
    for line in importtime.decode().splitlines():
        if not line.startswith("import time:") or line.endswith("| imported package"):
            continue
        field = line.rsplit("|", 1)[1]
        name = field.strip()
        pending.append(name)
        if len(field) - len(field.lstrip()) == 1:  # top level
            if name != "site":  # site and what it imported happen in the baseline too
                names.extend(pending)
            pending = []
    return [python, "-c", IMPORTED, str(zipapp), *dict.fromkeys(names)]


PROFILED = """\
import cProfile, sys
sys.path.insert(0, sys.argv[1])
from plugin.cni import main
cProfile.run("main.console_main()", sys.argv[2])
"""


def profile(args: argparse.Namespace, zipapp: Path, case: Case, env: Mapping[str, str], conf: bytes) -> None:
    """One ADD and one DEL under cProfile, and one of each under ``-X importtime``, into
    ``--profile DIR`` (read with ``python -m pstats DIR/add.prof``)."""
    out = Path(args.profile)
    out.mkdir(parents=True, exist_ok=True)
    for command in ("ADD", "DEL"):
        check_ok(f"profiled {command}", run_timed(
            [args.python, "-c", PROFILED, str(zipapp), str(out / f"{command.lower()}.prof")],
            {**env, "CNI_COMMAND": command}, conf))
    for command in ("ADD", "DEL"):
        ran = check_ok(f"importtime {command}", run_timed([args.python, "-X", "importtime", str(zipapp)],
                                                          {**env, "CNI_COMMAND": command}, conf))
        (out / f"{command.lower()}.importtime").write_bytes(ran.stderr)
    print(f"profiles of one {case.networks}-network ADD and DEL in {out}: add.prof, del.prof (cProfile), "
          "add.importtime, del.importtime")


def report(args: argparse.Namespace, variants: list[Variant], figures: Figures, burst: dict[str, float]) -> None:
    mib = 1024.0
    node_python = subprocess.run([args.python, "-c", "import platform; print(platform.python_version())"],
                                 capture_output=True, text=True, check=True).stdout.strip()
    print(f"netplex plugin bench, {dt.date.today()}: bench on Python {platform.python_version()}, netplex run by "
          f"{args.python} (Python {node_python}), {os.cpu_count()} cores, kernel {platform.release()}")
    print()
    print(f"ADD and DEL of one pod, wall time per call, median of {args.runs} runs (ADD+DEL: of the per-run sums), ms")
    width = max(len(v.label) for v in [*variants, Variant("thick", Path())])
    print(f"{'networks':>8}  {'':{width}} {'ADD':>7} {'DEL':>7} {'ADD+DEL':>8} {'n - d':>7} {'(n-d)/d':>8} "
          f"{'(n-d)/n':>8}")
    for n in CASES:
        print(f"{n:>8}  {'direct':{width}} {figures.ms('direct', n, 'ADD'):7.1f} {figures.ms('direct', n, 'DEL'):7.1f} "
              f"{figures.ms('direct', n, 'both'):8.1f}")
        for label in ["thick", *(v.label for v in variants)]:
            own = figures.ms(label, n, "both") - figures.ms("direct", n, "both")
            print(f"{'':>8}  {label:{width}} {figures.ms(label, n, 'ADD'):7.1f} "
                  f"{figures.ms(label, n, 'DEL'):7.1f} {figures.ms(label, n, 'both'):8.1f} {own:7.1f} "
                  f"{figures.overhead(label, n):8.0%} {own / figures.ms(label, n, 'both'):8.0%}")
    print()
    bare = figures.ms("python -c pass", 0, "VERSION")
    print(f"start-up, median of {args.version_runs} runs, ms")
    col = max(28, width + 16)
    print(f"  {'python -c pass (baseline)':{col}} {bare:6.1f}   1.00")
    isolated = figures.ms("python -IS -c pass", 0, "VERSION")
    print(f"  {'python -IS -c pass':{col}} {isolated:6.1f}   {isolated / bare:.2f}")
    shim_ms = figures.ms("thick", 0, "VERSION")
    print(f"  {'VERSION, thick (the shim)':{col}} {shim_ms:6.1f}   {shim_ms / bare:.2f}")
    for v in variants:
        ms = figures.ms(v.label, 0, "VERSION")
        print(f"  {'VERSION, ' + v.label:{col}} {ms:6.1f}   {ms / bare:.2f}")
    for command in ("DEL", "ADD"):
        for v in variants:
            ms = figures.ms(f"imports of {command}, {v.label}", 0, "VERSION")
            print(f"  {f'imports of {command}, {v.label}':{col}} {ms:6.1f}   {ms / bare:.2f}")
    print(f"  (imports of X: a process that imports exactly what a {OVERHEAD_CASE}-network X imported, "
          "and does nothing else)")
    print()
    rss = figures.rss_kib
    print(f"peak RSS, MiB (wait4 ru_maxrss through a launcher whose own, {rss[('launcher (floor)', 0)] / mib:.1f}, "
          "is the floor of every figure)")
    print(f"  netplex-node daemon: idle {rss[('daemon idle', 0)] / mib:.1f}, after {args.pods} more pods "
          f"{rss[('daemon after pods', 0)] / mib:.1f}")
    print(f"  python -c pass {rss[('python -c pass', 0)] / mib:.1f}; "
          + "; ".join(f"VERSION {v.label} {rss[(v.label, 0)] / mib:.1f}" for v in variants))
    for n in CASES:
        print(f"  {n} networks: " + "; ".join(f"{v.label} ADD/DEL {rss[(v.label, n)] / mib:.1f}" for v in variants)
              + f"; thick shim ADD/DEL {rss[('thick shim', n)] / mib:.1f}"
              + f"; largest delegate run directly {rss[('direct', n)] / mib:.1f}")
    print()
    print(f"{args.parallel} pods of {OVERHEAD_CASE} networks at once, wall time of the burst, s")
    for label in ("thick", "thin"):
        print(f"  {label:6} ADD {burst[f'{label} ADD']:6.2f}   DEL {burst[f'{label} DEL']:6.2f}")
    print()
    label = variants[0].label
    version = figures.ms(label, 0, "VERSION")
    overhead = figures.overhead(label, OVERHEAD_CASE)
    print(f"targets ({label})")
    print(f"  VERSION median <= {VERSION_TARGET_MS:.0f} ms: {version:.1f} ms  "
          f"{'ok' if version <= VERSION_TARGET_MS else 'MISSED'}")
    print(f"  overhead (netplex - direct) / direct <= {OVERHEAD_TARGET:.0%} for {OVERHEAD_CASE} networks: "
          f"{overhead:.0%}  {'ok' if overhead <= OVERHEAD_TARGET else 'MISSED'}")
    thick_ratio = figures.ms("thick", OVERHEAD_CASE, "both") / figures.ms("direct", OVERHEAD_CASE, "both")
    print(f"  thick ADD+DEL <= {THICK_TARGET:.2f} x direct for {OVERHEAD_CASE} networks: {thick_ratio:.2f} x  "
          f"{'ok' if thick_ratio <= THICK_TARGET else 'MISSED'}")
    print(f"  shim VERSION <= python -IS -c pass + {SHIM_TARGET_MS:.0f} ms: {shim_ms:.1f} vs {isolated:.1f} ms  "
          f"{'ok' if shim_ms <= isolated + SHIM_TARGET_MS else 'MISSED'}")
    floor = 2 * bare / figures.ms("direct", OVERHEAD_CASE, "both")
    print(f"  (floor of any Python plugin: two interpreter starts, 2 x {bare:.1f} ms = {floor:.0%} of direct "
          f"ADD+DEL for {OVERHEAD_CASE} networks)")
    print(f"load average at the start {args.load_before}, at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


# ------------------------------------------------------------------ outside: namespaces, clean-up


def unavailable(python: str) -> str | None:
    if os.geteuid() != 0:
        return "needs root (it creates network namespaces)"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    for plugin in ("bridge", "macvlan", "host-local"):
        if not os.access(os.path.join(CNI_BIN, plugin), os.X_OK):
            return f"{CNI_BIN}/{plugin} is missing: install containernetworking-plugins"
    if shutil.which(python) is None:
        return f"interpreter {python} not found"
    return None


@contextlib.contextmanager
def scratch() -> Iterator[tuple[str, str, Path]]:
    """Two fresh namespaces (node, pod) and a temp dir; all removed however we leave."""
    tag = secrets.token_hex(3)
    node, pod = f"npbench-node-{tag}", f"npbench-pod-{tag}"
    tmp = Path(tempfile.mkdtemp(prefix="netplex-bench-"))
    made: list[str] = []

    def on_term(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        for name in (node, pod):
            ip("netns", "add", name)
            made.append(name)
        yield node, pod, tmp
    finally:
        for name in reversed(made):
            ip("netns", "del", name, check=False)
        shutil.rmtree(tmp, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15, help="timed ADD+DEL runs per case (default 15)")
    parser.add_argument("--version-runs", type=int, default=60, help="timed VERSION runs (default 60)")
    parser.add_argument("--quick", action="store_true", help="3 ADD+DEL runs and 10 VERSION runs: a smoke test")
    parser.add_argument("--python", default="/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable,
                        help="interpreter of the zipapp (its #! line), as on a node (default: /usr/bin/python3)")
    parser.add_argument("--profile", metavar="DIR",
                        help="also write cProfile and -X importtime output of one 3-network ADD and DEL to DIR")
    parser.add_argument("--against", metavar="REF",
                        help="also measure netplex as of git REF (e.g. HEAD): before/after in one run")
    parser.add_argument("--isolated", action="store_true",
                        help="also measure a zipapp whose #! line is '<--python> -IS' (no site, no PYTHON* variables)")
    parser.add_argument("--pods", type=int, default=1000,
                        help="pods (1 network) through the daemon before its second RSS reading (default 1000)")
    parser.add_argument("--parallel", type=int, default=50, help="pods ADDed (then DELeted) at once (default 50)")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tmp", help=argparse.SUPPRESS)
    parser.add_argument("--pod-netns", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.version_runs, args.pods, args.parallel = 3, 10, 20, 5
    if args.inner:
        return inner(args)
    why = unavailable(args.python)
    if why:
        print(f"bench/plugin.py: {why}", file=sys.stderr)
        return 2
    with scratch() as (node, pod, tmp):
        command = ["ip", "netns", "exec", node, sys.executable, str(Path(__file__).resolve()), "--inner",
                   "--tmp", str(tmp), "--pod-netns", pod, "--runs", str(args.runs),
                   "--version-runs", str(args.version_runs), "--python", args.python,
                   "--pods", str(args.pods), "--parallel", str(args.parallel)]
        if args.profile:
            command += ["--profile", str(Path(args.profile).resolve())]
        if args.against:
            command += ["--against", args.against]
        if args.isolated:
            command.append("--isolated")
        return subprocess.run(command, cwd=ROOT, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
