"""Where a thick-mode ADD and DEL spend their time, part by part (issue 10's 1.25x target).

Run as root, from the repository root:

    .venv/bin/python bench/thick_parts.py [--pods 20] [--pause 0.1] [--no-events]

``bench/plugin.py`` gives the totals (thick against the delegates run directly); this
script says where thick's extra time goes. It starts a real ``netplex-node`` whose
request handling is timed from inside (this file, re-run as the daemon with ``--serve``,
wraps ``Server._serve_one``, ``delegate.subprocess_exec`` and a few command functions),
and runs the shim, rendered as the installer does but stamping the moment its ``main``
starts on stderr, for ADD and DEL of one pod with 3 networks (bridge cluster network,
two bridge NADs, host-local), ``--pods`` times, pausing ``--pause`` s between calls as
``bench/plugin.py`` does between sides. For each verb, medians in ms:

- ``spawn->main``: from fork in the runtime (here: this script) to the shim's first line,
  the interpreter start plus compiling the shim;
- ``->served``: until the daemon's request thread runs (connect, accept, thread start);
- ``daemon``: the daemon's work that is not a delegate, and ``delegates``: the delegates;
- ``->exited``: from the daemon's answer to the shim's exit as the runtime sees it;
- ``overhead``: everything but the delegates, what thick adds to running them directly;
- then the timed functions inside the daemon (cumulative per request).
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TIMED = (  # (module, attribute, label): functions timed inside the daemon
    ("plugin.cni.cache", "write", "cache.write"),
    ("plugin.cni.cache", "read", "cache.read"),
    ("plugin.cni.cache", "remove", "cache.remove"),
    ("plugin.cni.commands", "plan_add", "plan_add"),
    ("plugin.cni.commands", "_read_pod", "read_pod"),
    ("plugin.cni.commands", "_publish_status", "publish_status"),
    ("plugin.cni.protocol", "convert_result", "convert_result"),
)


# ------------------------------------------------------------------ the daemon side


def serve(argv: list[str]) -> int:
    """``netplex-node run`` with timers; one JSON line per request to $THICK_PARTS_LOG."""
    import importlib

    from plugin.cni import delegate
    from plugin.node import daemon

    log = open(os.environ["THICK_PARTS_LOG"], "a", buffering=1)  # noqa: SIM115  (open for the process's life)
    times: dict[str, float] = collections.defaultdict(float)

    def timed(fn: Callable[..., Any], label: str) -> Callable[..., Any]:
        @functools.wraps(fn)
        def run(*args: Any, **kw: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                times[label] += time.perf_counter() - start
        return run

    delegate.subprocess_exec = timed(delegate.subprocess_exec, "delegates")
    for module, name, label in TIMED:
        owner = importlib.import_module(module)
        setattr(owner, name, timed(getattr(owner, name), label))
    serve_one = daemon.Server._serve_one

    def timed_serve_one(self: daemon.Server, conn: Any) -> None:
        times.clear()
        times["served_at"] = time.time()
        runner = self.runner

        def run(cni_env: dict[str, str], stdin: bytes) -> tuple[int, bytes, bytes]:
            start = time.perf_counter()
            try:
                return runner(cni_env, stdin)
            finally:
                times["runner"] = time.perf_counter() - start
                times["answered_at"] = time.time()

        self.runner = run  # requests come one at a time here
        try:
            serve_one(self, conn)
        finally:
            self.runner = runner
        log.write(json.dumps(times) + "\n")

    daemon.Server._serve_one = timed_serve_one  # type: ignore[method-assign]
    return daemon.main_cli(argv)


# ------------------------------------------------------------------ the runtime side


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=20)
    parser.add_argument("--pause", type=float, default=0.1, help="seconds between two calls")
    parser.add_argument("--no-events", action="store_true", help="run the daemon with --no-events")
    args = parser.parse_args()

    from tests.k8sapi import FakeApiServer, make_nad, make_pod
    from tests.plugin import thick

    tmp = Path(tempfile.mkdtemp(prefix="netplex-thick-parts-"))
    netns = f"npparts{os.getpid()}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    data = tmp / "ipam"
    log = tmp / "requests.jsonl"
    daemon_proc: subprocess.Popen[bytes] | None = None

    def ipam(subnet: str) -> dict[str, Any]:
        return {"type": "host-local", "subnet": subnet, "dataDir": str(data)}

    try:
        with FakeApiServer(tls=True) as api:
            for i, subnet in ((1, "198.18.80.0/20"), (2, "198.18.64.0/20")):
                api.create(make_nad(f"parts-{i}", config={"cniVersion": "1.0.0", "type": "bridge",
                                                            "bridge": f"nppart{i}", "ipam": ipam(subnet)}))
            pod = api.create(make_pod("web", annotations={"k8s.v1.cni.cncf.io/networks": "parts-1,parts-2"},
                                      node_name="parts-node"))
            sock = tmp / "netplex.sock"
            shim = thick.write_shim(tmp / "bin", sock)
            shim.write_text(shim.read_text().replace(
                "def main() -> int:\n",
                "def main() -> int:\n    import time\n    posix.write(2, b'%r\\n' % time.time())\n", 1))
            argv = [sys.executable, __file__, "--serve", "run", "--socket", str(sock), "--metrics-address", "",
                    "--node-name", "parts-node", "--kubeconfig", str(api.kubeconfig(tmp / "kubeconfig"))]
            if args.no_events:
                argv.append("--no-events")
            env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
            daemon_proc = subprocess.Popen(argv, env={**env, "THICK_PARTS_LOG": str(log), "PYTHONPATH": str(ROOT)},
                                           cwd=ROOT, stderr=subprocess.DEVNULL)
            from plugin.node import daemon

            deadline = time.monotonic() + 30
            while daemon.probe(str(sock), 1.0) != 0:
                if daemon_proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("netplex-node did not start")
                time.sleep(0.05)
            conf = json.dumps({"cniVersion": "1.0.0", "name": "netplex", "type": "netplex",
                               "cniDir": str(tmp / "cni"), "delegates": [{
                                   "cniVersion": "1.0.0", "name": "cluster-net",
                                   "plugins": [{"type": "bridge", "bridge": "nppart0", "ipam": ipam("198.18.96.0/20")}]}],
                               }).encode()
            cni = {**env, "CNI_CONTAINERID": "parts-1", "CNI_NETNS": f"/run/netns/{netns}", "CNI_IFNAME": "eth0",
                   "CNI_PATH": "/usr/lib/cni",
                   "CNI_ARGS": f"K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_UID={pod['metadata']['uid']}"}
            rows: dict[str, list[dict[str, float]]] = {"ADD": [], "DEL": []}
            for _ in range(args.pods + 1):  # the first pod warms up, untimed
                for verb in ("ADD", "DEL"):
                    seen = len(log.read_text().splitlines()) if log.exists() else 0
                    start = time.time()
                    done = subprocess.run([str(shim)], input=conf, env={**cni, "CNI_COMMAND": verb},
                                          capture_output=True, check=False)
                    end = time.time()
                    if done.returncode != 0:
                        raise SystemExit(f"{verb} failed: {done.stdout.decode(errors='replace')}")
                    while len(log.read_text().splitlines()) <= seen:  # written after the answer
                        time.sleep(0.001)
                    inside = json.loads(log.read_text().splitlines()[seen])
                    main_at = float(done.stderr.split(b"\n", 1)[0])
                    row = {"spawn->main": main_at - start, "->served": inside.pop("served_at") - main_at,
                           "daemon": inside["runner"] - inside.get("delegates", 0.0),
                           "delegates": inside.get("delegates", 0.0),
                           "->exited": end - inside.pop("answered_at"),
                           "overhead": end - start - inside.get("delegates", 0.0)}
                    rows[verb].append({**row, **{f"  {k}": v for k, v in inside.items() if k not in row}})
                    time.sleep(args.pause)
            for verb, timed_rows in rows.items():
                print(f"{verb} (median of {args.pods}, ms)")
                for key in timed_rows[1]:
                    values = [r.get(key, 0.0) for r in timed_rows[1:]]
                    print(f"  {key:<20} {statistics.median(values) * 1000:7.2f}")
    finally:
        if daemon_proc is not None:
            daemon_proc.kill()
            daemon_proc.wait()
        subprocess.run(["ip", "netns", "del", netns], check=False)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        sys.exit(serve(sys.argv[2:]))
    sys.exit(main())
