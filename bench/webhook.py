"""Load on ``/validate`` and ``/mutate`` of the real ``netplex-webhook`` over TLS.

Run: python bench/webhook.py [--duration 4] [--repeat 3] [--workers 2] [--connections 16] [--rate 1000]

What is measured, in one run, with all servers started at once but loaded one at a time
(an idle server costs no CPU), in ``--repeat`` interleaved rounds: each round measures the
baseline and then every netplex case for a pod size, so a ratio compares two loads a few
seconds apart; the table shows medians over the rounds (of req/s, p50, p99 and of the
per-round ratios):

* the baseline: ``bench/minimal_app.py``, a bare ASGI app returning a fixed
  AdmissionReview, served by the same uvicorn configuration, TLS set-up and ``--workers``;
* ``python -m webhook.server --self-signed --nads DIR --workers N`` (``--workers``, default 2,
  as the targets assume) with a generated index of 10 NADs (1 namespace) and of 10,000 NADs across 1,000
  namespaces (10 per namespace; the pods live in ``bench-0`` in both, so the requests
  are byte-identical and only the index size differs);
* pods selecting 1, 4 and 16 networks (16 reuses the 10 NADs with distinct interface
  names); half the NADs carry ``k8s.v1.cni.cncf.io/resourceName``, so ``/mutate``
  answers with a JSON patch (resource requests/limits), not an empty verdict. Every
  request is checked once before the load: it must be allowed (no denial path measured).

Per case: requests/s and p50/p99 latency at maximum throughput (closed loop,
``--connections`` keep-alive connections), and the server's VmRSS from
``/proc/<pid>/status`` after the case. With ``--rate`` the 4-network pod is also run
*paced* at about that many requests/s: wrk (not wrk2, which is not packaged) has each
connection wait between requests so the sum comes to the rate; latency is measured
from the request's write, so this is a closed loop with think time, not an open loop
(no coordinated-omission correction). The achieved rate is printed beside it.

Load generator: ``wrk`` (Debian package ``wrk``) with a Lua script for the POST body,
one thread; otherwise (or with ``--generator python``) a thread pool of keep-alive
``httpx`` clients, which on a small machine measures the generator as much as the
server — the table says which one ran.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the package, not this file

from webhook.server import read_ca_banner
from webhook.workers import children_of

ROOT = Path(__file__).resolve().parents[1]
NETWORKS = "k8s.v1.cni.cncf.io/networks"
POD_NAMESPACE = "bench-0"
NADS_PER_NAMESPACE = 10


# -- inputs ---------------------------------------------------------------------------------


def write_index(directory: Path, namespaces: int) -> int:
    """NADs and Namespaces as YAML in ``directory``; returns the number of NADs."""
    nads: list[str] = []
    spaces: list[str] = []
    for n in range(namespaces):
        ns = f"bench-{n}"
        spaces.append(f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n")
        for i in range(NADS_PER_NAMESPACE):
            annotations = (
                f"  annotations:\n    k8s.v1.cni.cncf.io/resourceName: example.com/dev{i}\n"
                if i % 2 == 0
                else ""
            )
            config = json.dumps({
                "cniVersion": "0.3.1", "type": "macvlan", "master": "eth0", "mode": "bridge",
                "ipam": {"type": "host-local", "subnet": f"10.{n % 250}.{i}.0/24"},
            })
            nads.append(
                "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\n"
                f"metadata:\n  name: net-{i}\n  namespace: {ns}\n{annotations}"
                f"spec:\n  config: '{config}'\n"
            )
    (directory / "namespaces.yaml").write_text("---\n".join(spaces))
    (directory / "nads.yaml").write_text("---\n".join(nads))
    return len(nads)


def pod(networks: int) -> dict[str, Any]:
    selection = ", ".join(f"net-{j % NADS_PER_NAMESPACE}@net{j + 1}" for j in range(networks))
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"app-{networks}", "namespace": POD_NAMESPACE,
                     "labels": {"app": "bench"}, "annotations": {NETWORKS: selection}},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27", "resources": {}},
                                {"name": "sidecar", "image": "busybox", "resources": {}}]},
    }


def review(obj: dict[str, Any]) -> bytes:
    """An AdmissionReview as the API server sends it (as tests/webhook/conftest.py)."""
    gvk = {"group": "", "version": "v1", "kind": "Pod"}
    gvr = {"group": "", "version": "v1", "resource": "pods"}
    document = {
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()), "kind": gvk, "resource": gvr, "requestKind": gvk,
            "requestResource": gvr, "name": obj["metadata"]["name"],
            "namespace": obj["metadata"]["namespace"], "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller",
                         "groups": ["system:serviceaccounts", "system:authenticated"]},
            "object": obj, "oldObject": None, "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }
    return json.dumps(document).encode()


# -- servers --------------------------------------------------------------------------------


class Server:
    """A server process that prints its CA PEM and URL on stdout (both of ours do)."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self._log = log.open("wb")
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=self._log)
        assert self.proc.stdout is not None
        banner = read_ca_banner(self.proc.stdout, timeout=120)
        if banner is None:
            self.close()
            raise SystemExit(f"server did not start: {argv}\n{log.read_text()}")
        url, self.ca = banner
        self.url = url
        self.client = httpx.Client(base_url=url, verify=ssl.create_default_context(cadata=self.ca), timeout=20)

    def wait_ready(self, path: str, timeout: float = 300) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            try:
                if self.client.get(path).status_code == 200:
                    return time.monotonic() - start
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise SystemExit(f"{self.url}{path} not ready after {timeout} s")

    def rss_mib(self) -> float:
        """VmRSS of the serving process: the largest worker when there are several."""
        sizes = []
        for pid in [self.proc.pid, *children_of(self.proc.pid)]:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
            if found:
                sizes.append(int(found.group(1)) / 1024)
        return max(sizes, default=math.nan)

    def close(self) -> None:
        self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def check_answer(server: Server, endpoint: str, body: bytes) -> str:
    """One request before the load: the benchmark must measure the allowed path."""
    response = server.client.post(endpoint, content=body, headers={"content-type": "application/json"})
    if response.status_code != 200:
        raise SystemExit(f"{endpoint}: HTTP {response.status_code}: {response.text}")
    answer = response.json().get("response", {})
    if answer.get("allowed") is not True:
        raise SystemExit(f"{endpoint}: not allowed: {json.dumps(answer)[:500]}")
    notes = []
    if "patch" in answer:
        notes.append("patch")
    if answer.get("warnings"):
        notes.append(f"{len(answer['warnings'])} warnings")
    return ",".join(notes) or "allowed"


# -- load generators ------------------------------------------------------------------------


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int = 0
    notes: list[str] = field(default_factory=list)


LUA = """\
local f = assert(io.open("{body}", "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
"""
LUA_DELAY = """\
math.randomseed(os.time())
function delay()
  if math.random() < {frac} then return {base} + 1 end
  return {base}
end
"""
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def _ms(text: str) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not found:
        return math.nan
    return float(found.group(1)) * UNITS[found.group(2)]


def run_wrk(url: str, body_file: Path, *, seconds: float, connections: int,
            delay_ms: float | None, work: Path) -> Result:
    script = work / f"load-{uuid.uuid4().hex}.lua"
    lua = LUA.format(body=body_file)
    if delay_ms is not None:
        base = math.floor(delay_ms)
        lua += LUA_DELAY.format(base=base, frac=f"{delay_ms - base:.3f}")
    script.write_text(lua)
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
           "--timeout", "5s", "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
    script.unlink()
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    if not (rps and p50 and p99):
        raise SystemExit(f"cannot read wrk output:\n{out}")
    errors = 0
    for pattern in (r"Non-2xx or 3xx responses: (\d+)", r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"):
        found = re.search(pattern, out)
        if found:
            errors += sum(int(g) for g in found.groups())
    return Result(float(rps.group(1)), _ms(p50.group(1)), _ms(p99.group(1)), errors)


def run_python(url: str, body: bytes, ca: str, *, seconds: float, connections: int,
               delay_ms: float | None) -> Result:
    """Fallback: ``connections`` threads, each a keep-alive httpx client in a loop."""
    deadline = time.monotonic() + seconds
    samples: list[list[float]] = [[] for _ in range(connections)]
    errors = [0] * connections
    ctx = ssl.create_default_context(cadata=ca)

    def worker(k: int) -> None:
        with httpx.Client(verify=ctx, timeout=5) as client:
            while time.monotonic() < deadline:
                start = time.perf_counter()
                try:
                    status = client.post(url, content=body, headers={"content-type": "application/json"}).status_code
                except httpx.HTTPError:
                    status = 0
                samples[k].append((time.perf_counter() - start) * 1000)
                if status != 200:
                    errors[k] += 1
                if delay_ms:
                    time.sleep(delay_ms / 1000)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(connections)]
    begin = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - begin
    flat = sorted(x for s in samples for x in s)
    if not flat:
        raise SystemExit("no request completed")
    q = statistics.quantiles(flat, n=100)
    return Result(len(flat) / elapsed, q[49], q[98], sum(errors))


class Load:
    def __init__(self, generator: str, work: Path, args: argparse.Namespace) -> None:
        self.generator = generator
        self.work = work
        self.args = args

    def run(self, server: Server, endpoint: str, body: bytes, *, seconds: float,
            connections: int | None = None, delay_ms: float | None = None) -> Result:
        conns = connections or self.args.connections
        url = server.url + endpoint
        if self.generator == "wrk":
            body_file = self.work / f"body-{uuid.uuid4().hex}.json"
            body_file.write_bytes(body)
            try:
                return run_wrk(url, body_file, seconds=seconds, connections=conns,
                               delay_ms=delay_ms, work=self.work)
            finally:
                body_file.unlink()
        return run_python(url, body, server.ca, seconds=seconds, connections=conns, delay_ms=delay_ms)

    def max_throughput(self, server: Server, endpoint: str, body: bytes) -> Result:
        if self.args.warmup > 0:
            self.run(server, endpoint, body, seconds=self.args.warmup)
        return self.run(server, endpoint, body, seconds=self.args.duration)

    def paced(self, server: Server, endpoint: str, body: bytes, rate: float) -> Result:
        """About ``rate`` req/s: each connection waits so that the sum comes to the rate.

        A short calibration run measures the time a request takes at this load and
        takes it off the wait (the achieved rate is reported, not assumed).
        """
        conns = self.args.paced_connections
        cycle_ms = conns * 1000 / rate
        probe = self.run(server, endpoint, body, seconds=max(1.0, self.args.warmup),
                         connections=conns, delay_ms=cycle_ms)
        service_ms = max(0.0, conns * 1000 / probe.rps - cycle_ms) if probe.rps else 0.0
        result = self.run(server, endpoint, body, seconds=self.args.duration,
                          connections=conns, delay_ms=max(0.0, cycle_ms - service_ms))
        result.notes.append(f"paced {conns} conns")
        return result


# -- the run --------------------------------------------------------------------------------


@dataclass
class Row:
    server: str
    index: str
    endpoint: str
    networks: int
    mode: str
    result: Result
    rss_mib: float
    answer: str = ""
    ratio: float | None = None


def median_result(results: list[Result]) -> Result:
    """Medians of each figure over the rounds (errors summed)."""
    return Result(statistics.median(r.rps for r in results), statistics.median(r.p50_ms for r in results),
                  statistics.median(r.p99_ms for r in results), sum(r.errors for r in results))


def header(generator: str, args: argparse.Namespace) -> str:
    cpus = os.cpu_count()
    return (f"generator: {generator}, {args.connections} keep-alive connections, {args.duration:g} s per case "
            f"(+{args.warmup:g} s warm-up), {args.repeat} interleaved rounds (medians), {args.workers} worker(s) "
            f"for every server, {cpus} CPUs, "
            f"python {sys.version.split()[0]}")


def print_table(rows: list[Row]) -> None:
    print(f"{'server':<9} {'index':>6} {'endpoint':<9} {'nets':>4} {'mode':<12} {'req/s':>8} "
          f"{'p50 ms':>7} {'p99 ms':>7} {'RSS MiB':>8} {'vs min':>7}  answer")
    for r in rows:
        ratio = f"{r.ratio:.0%}" if r.ratio is not None else "-"
        errs = f" ERRORS {r.result.errors}" if r.result.errors else ""
        print(f"{r.server:<9} {r.index:>6} {r.endpoint:<9} {r.networks:>4} {r.mode:<12} {r.result.rps:>8.0f} "
              f"{r.result.p50_ms:>7.2f} {r.result.p99_ms:>7.2f} {r.rss_mib:>8.1f} {ratio:>7}  {r.answer}{errs}")
    sys.stdout.flush()


def summary(rows: list[Row], args: argparse.Namespace) -> None:
    print("\ntargets")
    paced = [r for r in rows if r.mode == "paced"]
    for r in paced:
        ok = r.result.p99_ms <= 5.0 and r.result.rps >= 0.9 * args.rate
        print(f"  p99 <= 5 ms at {args.rate:g} req/s, 4 networks, {r.endpoint} index {r.index}: "
              f"p99 {r.result.p99_ms:.2f} ms at {r.result.rps:.0f} req/s ({args.workers} workers)  "
              f"{'MET' if ok else 'SHORT'}")
    if not paced:
        for r in rows:
            if r.server == "netplex" and r.networks == 4 and r.mode == "max":
                ok = r.result.p99_ms <= 5.0 and r.result.rps >= args.rate
                print(f"  4 networks {r.endpoint} index {r.index}: p99 {r.result.p99_ms:.2f} ms at maximum "
                      f"throughput {r.result.rps:.0f} req/s (no paced run)  {'MET' if ok else 'SHORT'}")
    ratios = [r for r in rows if r.ratio is not None]
    if ratios:
        worst = min(ratios, key=lambda r: r.ratio or 0)
        print(f"  >= 60% of the minimal app's throughput: {min(r.ratio or 0 for r in ratios):.0%} .. "
              f"{max(r.ratio or 0 for r in ratios):.0%} (worst: {worst.endpoint}, {worst.networks} networks, "
              f"index {worst.index})  {'MET' if all((r.ratio or 0) >= 0.6 for r in ratios) else 'SHORT'}")
    small = {(r.endpoint, r.networks, r.mode): r for r in rows if r.server == "netplex" and r.index == "10"}
    big = [r for r in rows if r.server == "netplex" and r.index != "10"]
    worst_rps, worst_p99 = 0.0, 0.0
    for r in big:
        s = small.get((r.endpoint, r.networks, r.mode))
        if s is None or r.mode != "max":
            continue
        worst_rps = max(worst_rps, (s.result.rps - r.result.rps) / s.result.rps)
        worst_p99 = max(worst_p99, (r.result.p99_ms - s.result.p99_ms) / s.result.p99_ms)
    if big:
        rss_small = max((r.rss_mib for r in rows if r.server == "netplex" and r.index == "10"), default=math.nan)
        rss_big = max((r.rss_mib for r in big), default=math.nan)
        ok = worst_rps <= 0.10 and worst_p99 <= 0.10
        print(f"  10,000-NAD index within 10% of 10-NAD (max-throughput cases): worst req/s drop "
              f"{worst_rps:+.0%}, worst p99 rise {worst_p99:+.0%}  {'MET' if ok else 'SHORT'}; "
              f"RSS {rss_small:.0f} -> {rss_big:.0f} MiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per measured case (default: %(default)s)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of unmeasured load before each case")
    parser.add_argument("--connections", type=int, default=16, help="connections at maximum throughput")
    parser.add_argument("--rate", type=float, default=1000.0,
                        help="paced run of the 4-network pod at about this req/s; 0 skips it")
    parser.add_argument("--paced-connections", type=int, default=20)
    parser.add_argument("--networks", default="1,4,16", help="pod sizes (default: %(default)s)")
    parser.add_argument("--namespaces", type=int, default=1000, help="namespaces of the large index (10 NADs each)")
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of each server (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="interleaved rounds of the maximum-throughput cases; medians reported (default: %(default)s)")
    args = parser.parse_args()

    generator = args.generator
    if generator == "auto":
        generator = "wrk" if shutil.which("wrk") else "python"
    if generator == "wrk" and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install wrk), use --generator python")
    sizes = [int(x) for x in args.networks.split(",")]
    bodies = {n: review(pod(n)) for n in sizes}
    print(header(generator, args))
    print("request bodies: " + ", ".join(f"{n} networks {len(b)} B" for n, b in bodies.items()))
    sys.stdout.flush()

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="netplex-bench-") as tmp:
        work = Path(tmp)
        load = Load(generator, work, args)
        servers: dict[str, Server] = {}
        try:
            # All servers up at once (an idle one costs no CPU), so the rounds can interleave:
            # a round measures the baseline and then every netplex case for each pod size,
            # and ratios are taken within a round. Medians over rounds go in the table.
            servers["-"] = Server([sys.executable, str(ROOT / "bench" / "minimal_app.py"),
                                   "--workers", str(args.workers)], work / "minimal.log")
            servers["-"].wait_ready("/healthz")
            for namespaces in (1, args.namespaces):
                nad_dir = work / f"nads-{namespaces}"
                nad_dir.mkdir()
                count = write_index(nad_dir, namespaces)
                label = f"{count:,}" if count >= 1000 else str(count)
                server = servers[label] = Server(
                    [sys.executable, "-m", "webhook.server", "--self-signed", "--host", "127.0.0.1", "--port", "0",
                     "--nads", str(nad_dir), "--workers", str(args.workers)],
                    work / f"webhook-{namespaces}.log")
                ready = server.wait_ready("/readyz")
                print(f"index of {label} NADs in {namespaces} namespaces: ready {ready:.1f} s after the CA "
                      f"was printed, idle RSS {server.rss_mib():.1f} MiB")
            sys.stdout.flush()
            netplex = [label for label in servers if label != "-"]
            answers = {(label, endpoint, n): check_answer(servers[label], endpoint, bodies[n])
                       for label in netplex for endpoint in ("/validate", "/mutate") for n in sizes}
            runs: dict[tuple[str, str, int], list[Result]] = {}
            ratios: dict[tuple[str, str, int], list[float]] = {}
            for round_ in range(args.repeat):
                print(f"round {round_ + 1}/{args.repeat}", file=sys.stderr, flush=True)
                for n in sizes:
                    base = load.max_throughput(servers["-"], "/validate", bodies[n])
                    runs.setdefault(("-", "(any)", n), []).append(base)
                    for label in netplex:
                        for endpoint in ("/validate", "/mutate"):
                            result = load.max_throughput(servers[label], endpoint, bodies[n])
                            runs.setdefault((label, endpoint, n), []).append(result)
                            ratios.setdefault((label, endpoint, n), []).append(result.rps / base.rps)
            for n in sizes:
                rows.append(Row("minimal", "-", "(any)", n, "max", median_result(runs[("-", "(any)", n)]),
                                servers["-"].rss_mib(), "fixed"))
            for label in netplex:
                for endpoint in ("/validate", "/mutate"):
                    for n in sizes:
                        key = (label, endpoint, n)
                        rows.append(Row("netplex", label, endpoint, n, "max", median_result(runs[key]),
                                        servers[label].rss_mib(), answers[key], statistics.median(ratios[key])))
                    if args.rate > 0 and 4 in bodies:
                        result = load.paced(servers[label], endpoint, bodies[4], args.rate)
                        rows.append(Row("netplex", label, endpoint, 4, "paced", result, servers[label].rss_mib(),
                                        check_answer(servers[label], endpoint, bodies[4])))
        finally:
            for server in servers.values():
                server.close()

    print()
    print_table(rows)
    summary(rows, args)
    print("\nmax: closed loop at maximum throughput (p99 is under saturation). paced: about --rate "
          "req/s, wrk waits between requests per connection (closed loop with think time, not wrk2's "
          "open loop). RSS: VmRSS of the largest worker after the case.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
