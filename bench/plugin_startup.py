"""Start-up cost of the ``netplex`` CNI plugin: VERSION and a cached DEL, as a runtime runs them.

Run: python bench/plugin_startup.py [--runs N]

Measured in the same run, median wall time of N runs each:

- baseline: the same interpreter with ``-c pass``;
- ``CNI_COMMAND=VERSION`` through ``python -m plugin.cni.main`` and through the zipapp built by
  ``python -m plugin.node.pack`` (run with the same interpreter, and executed directly through
  its ``#!/usr/bin/env python3`` line, which picks whatever ``python3`` is on PATH);
- a DEL with a cache entry and no kubeconfig (one delegate, a ``/bin/sh`` fake plugin, so
  the delegate itself costs almost nothing), through ``python -m plugin.cni.main``; the
  entry is recreated by an untimed ADD before each DEL. The floor is the same fake
  plugin's DEL run directly.

Ratios are against the baseline: what netplex adds to a bare Python start.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FAKE = """#!/bin/sh
cat >/dev/null
if [ "$CNI_COMMAND" = ADD ]; then
  printf '{"cniVersion":"1.0.0","interfaces":[{"name":"%s","sandbox":"%s"}],"ips":[]}' "$CNI_IFNAME" "$CNI_NETNS"
fi
"""


@dataclass
class Case:
    label: str
    cmd: list[str]
    env: Mapping[str, str]
    stdin: bytes = b""
    setup: list[str] | None = None  # run untimed before each sample
    setup_env: Mapping[str, str] | None = None
    samples: list[float] = field(default_factory=list)

    def sample(self) -> None:
        if self.setup is not None:
            subprocess.run(self.setup, input=self.stdin, env=self.setup_env, cwd=ROOT, capture_output=True,
                           check=True)
        start = time.perf_counter()
        done = subprocess.run(self.cmd, input=self.stdin, env=self.env, cwd=ROOT, capture_output=True, check=False)
        self.samples.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"{self.label} failed: {done.stdout.decode()} {done.stderr.decode()}")

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter to measure (default: this one); e.g. /usr/bin/python3 as on a node")
    args = parser.parse_args()
    runs = args.runs
    python = args.python
    base_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    with tempfile.TemporaryDirectory() as tmp:
        zipapp = Path(tmp) / "netplex"
        subprocess.run([python, "-m", "plugin.node.pack", "--output", str(zipapp)], cwd=ROOT, check=True,
                       capture_output=True)
        bin_dir = Path(tmp) / "bin"
        bin_dir.mkdir()
        fake = bin_dir / "fake"
        fake.write_text(FAKE)
        fake.chmod(0o755)
        conf = json.dumps({"cniVersion": "1.0.0", "name": "bench", "type": "netplex",
                           "cniDir": str(Path(tmp) / "cni"), "binDir": str(bin_dir),
                           "delegates": [{"cniVersion": "1.0.0", "name": "cluster", "type": "fake"}]}).encode()
        version_env = {**base_env, "CNI_COMMAND": "VERSION"}
        cni_env = {**base_env, "CNI_CONTAINERID": "bench", "CNI_NETNS": "/run/netns/bench", "CNI_IFNAME": "eth0",
                   "CNI_PATH": str(bin_dir), "CNI_ARGS": "K8S_POD_NAMESPACE=default;K8S_POD_NAME=bench"}
        module = [python, "-m", "plugin.cni.main"]

        cases = [
            Case("python -c pass (baseline)", [python, "-c", "pass"], base_env),
            Case("VERSION, python -m plugin.cni.main", module, version_env),
            Case("VERSION, python zipapp", [python, str(zipapp)], version_env),
            Case("VERSION, zipapp via #!/usr/bin/env python3", [str(zipapp)], version_env),
            Case("fake delegate DEL alone (floor)", [str(fake)], {**cni_env, "CNI_COMMAND": "DEL"}, conf),
            # An untimed ADD before each timed DEL, so that every DEL finds a cache entry.
            Case("cached DEL, python -m plugin.cni.main", module, {**cni_env, "CNI_COMMAND": "DEL"}, conf,
                 setup=module, setup_env={**cni_env, "CNI_COMMAND": "ADD"}),
        ]
        for _ in range(runs):  # interleaved, so that a slower moment of the machine hits every case
            for case in cases:
                case.sample()

    base = cases[0].median_ms
    print(f"median of {runs} runs, ms (interpreter {python})")
    for case in cases:
        print(f"{case.label:46s} {case.median_ms:8.1f}   ratio {case.median_ms / base:.2f}")
    own = cases[-1].median_ms - cases[-2].median_ms
    print(f"{'cached DEL minus floor (netplex itself)':46s} {own:8.1f}   ratio {own / base:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
