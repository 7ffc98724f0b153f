"""Parse + validate time of the shared model, per annotation and per NAD config.

Run: python bench/parse.py [--runs N]

Each figure is the median of N timed batches, in microseconds per call. The baseline is
``json.loads`` of the same text, measured in the same run: the least any parser of these
inputs must do, so the ratio says what the validation costs on top of decoding and is
comparable across noisy machines.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plugin.model import netconf, selection


def per_call_us(fn: Callable[[], object], runs: int, batch: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        samples.append((time.perf_counter() - start) / batch * 1e6)
    return statistics.median(samples)


def json_annotation(n: int) -> str:
    return json.dumps([
        {"name": f"net-{i}", "namespace": "tenant-a", "interface": f"data{i}",
         "ips": [f"10.{i}.0.5/24"], "mac": f"02:00:00:00:00:{i:02x}"}
        for i in range(n)
    ])


def short_annotation(n: int) -> str:
    return ", ".join(f"tenant-a/net-{i}@data{i}" for i in range(n))


NAD_CONFIGS = {
    "macvlan+host-local": json.dumps({
        "cniVersion": "0.3.1", "type": "macvlan", "master": "eth0", "mode": "bridge",
        "ipam": {"type": "host-local", "subnet": "192.168.1.0/24", "rangeStart": "192.168.1.200",
                 "rangeEnd": "192.168.1.216", "routes": [{"dst": "0.0.0.0/0"}], "gateway": "192.168.1.1"}}),
    "bridge conflist (3 plugins)": json.dumps({
        "cniVersion": "1.0.0", "name": "bridge-conf", "plugins": [
            {"type": "bridge", "bridge": "br0", "isGateway": True,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.1.0.0/16"}], [{"subnet": "fd00::/64"}]]}},
            {"type": "tuning", "capabilities": {"mac": True}},
            {"type": "portmap", "capabilities": {"portMappings": True}}]}),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()

    print(f"python {sys.version.split()[0]}, {args.runs} runs x {args.batch} calls, median µs/call")
    print(f"{'input':38} {'netplex':>10} {'json.loads':>11} {'ratio':>7}")
    rows: list[tuple[str, Callable[[], object], str]] = []
    for n in (1, 4, 16):
        text = json_annotation(n)
        rows.append((f"annotation, JSON form, {n} networks", lambda t=text: selection.parse_networks(t, "tenant-a"), text))
        short = short_annotation(n)
        rows.append((f"annotation, short form, {n} networks", lambda t=short: selection.parse_networks(t, "tenant-a"), json.dumps(short.split(","))))
    for label, config in NAD_CONFIGS.items():
        rows.append((f"NAD {label}", lambda c=config: netconf.parse_netconf(c, "bridge-conf"), config))
    for label, fn, baseline_text in rows:
        ours = per_call_us(fn, args.runs, args.batch)
        base = per_call_us(lambda t=baseline_text: json.loads(t), args.runs, args.batch)
        print(f"{label:38} {ours:10.1f} {base:11.2f} {ours / base:7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
