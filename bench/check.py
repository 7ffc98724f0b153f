"""Wall time of ``netplexctl check`` on 100 objects (50 NADs + 50 pods), as a user runs it.

Run: python bench/check.py [--runs N]

Baseline, measured in the same run: starting the same interpreter with ``-c pass``. The
ratio is what netplex adds to a bare Python start (imports + YAML + checks).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def corpus(n: int) -> str:
    docs = []
    for i in range(n):
        docs.append(
            "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\n"
            f"metadata:\n  name: net-{i}\nspec:\n  config: '{{\"cniVersion\": \"0.3.1\", \"type\": \"macvlan\", "
            f"\"master\": \"eth0\", \"ipam\": {{\"type\": \"host-local\", \"subnet\": \"10.{i}.0.0/24\"}}}}'\n"
        )
        docs.append(
            f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: pod-{i}\n  annotations:\n"
            f"    k8s.v1.cni.cncf.io/networks: net-{i}, net-{(i + 1) % n}@data0\n"
            "spec:\n  containers: [{name: c, image: nginx}]\n"
        )
    return "---\n".join(docs)


def wall(cmd: list[str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=False, capture_output=True, cwd=ROOT)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "objects.yaml"
        path.write_text(corpus(50))
        base = wall([sys.executable, "-c", "pass"], args.runs)
        check = wall([sys.executable, "-m", "webhook.ctl", "check", str(path)], args.runs)
    print(f"median of {args.runs} runs, ms")
    print(f"python -c pass (baseline)          {base:8.1f}")
    print(f"netplexctl check, 100 objects      {check:8.1f}   ratio {check / base:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
