"""Start-up cost of reading a kubeconfig in the CNI plugin: import + parse, in a fresh process.

Run: python bench/kubeconfig.py [--runs N] [--before FILE]

Every sample is a new interpreter (``-S``, byte code cached as in the node's zipapp) that
imports ``plugin.cni.kubeconfig`` and resolves one kubeconfig, timed from inside in CPU
time (``process_time``: the machines these run on are shared, and wall time there
measures the neighbours) around the import and the call; the interpreter's own start is
not in the figure. Files: ``tests/fixtures/kubeconfigs/kubeadm-admin.conf`` (5.4 kB, block YAML,
certificates inline), the same data as JSON, as PyYAML's flow style, and the kubeconfig
``netplex-install`` writes. ``--before FILE`` also times another ``kubeconfig.py`` (e.g.
``git show main:plugin/cni/kubeconfig.py > /tmp/kubeconfig_before.py``) on the files it
can read. Also: the parse alone, in-process (median of 200 calls, after a warm-up).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "kubeconfigs" / "kubeadm-admin.conf"

PROBE = """
import sys, time
sys.path.insert(0, sys.argv[1])
clock = time.process_time  # CPU time: what other processes on a busy machine do not inflate
t0 = clock()
import {module} as kubeconfig
t1 = clock()
kubeconfig.from_kubeconfig(sys.argv[2])
t2 = clock()
print((t1 - t0) * 1e3, (t2 - t1) * 1e3)
"""


def sample(python: str, path: str, file: Path, module: str, env: dict[str, str]) -> tuple[float, float]:
    done = subprocess.run([python, "-S", "-c", PROBE.format(module=module), path, str(file)],
                          capture_output=True, text=True, check=True, env=env)
    first, second = done.stdout.split()
    return float(first), float(second)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--before", type=Path, help="another kubeconfig.py to time (standalone module)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import yaml

    from plugin.cni import kubeconfig
    from plugin.node import credentials

    data = yaml.safe_load(FIXTURE.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        # Byte code cached as on a node (the zipapp's code cache), whatever PYTHONDONTWRITEBYTECODE says.
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPYCACHEPREFIX": str(Path(tmp) / "pyc")}
        files = {"kubeadm admin.conf (block YAML)": FIXTURE}
        for label, name, text in (
            ("same, JSON", "admin.json", json.dumps(data, indent=4)),
            ("same, PyYAML flow style", "admin-flow.yaml", yaml.safe_dump(data, default_flow_style=True)),
            ("netplex-install's kubeconfig", "netplex.kubeconfig",
             credentials.render("https://10.96.0.1:443", credentials.ServiceAccount(
                 "eyJhbGciOiJSUzI1NiJ9." + "x" * 900 + ".c2ln", b"-----BEGIN CERTIFICATE-----\n" * 30,
                 "netplex-system",
             )).decode()),
        ):
            files[label] = Path(tmp) / name
            files[label].write_text(text)
        rows = []
        for label, file in files.items():
            cases = [("now", str(ROOT), "plugin.cni.kubeconfig")]
            if args.before is not None:
                cases.append(("before", str(args.before.parent), args.before.stem))
            for version, path, module in cases:
                try:
                    sample(sys.executable, path, file, module, env)  # writes the byte code, as nodes have it
                    samples = [sample(sys.executable, path, file, module, env) for _ in range(args.runs)]
                except subprocess.CalledProcessError as exc:
                    rows.append(f"{label:34} {version:7} cannot read it: {exc.stderr.strip().splitlines()[-1][:60]}")
                    continue
                imp = statistics.median(s[0] for s in samples)
                parse = statistics.median(s[1] for s in samples)
                text = file.read_text()
                warm = statistics.median(timeit.repeat(lambda t=text: kubeconfig.loads(t), number=1, repeat=200)) \
                    if version == "now" else float("nan")
                rows.append(f"{label:34} {version:7} import {imp:6.2f} ms  resolve {parse:6.2f} ms  "
                            f"total {imp + parse:6.2f} ms  (warm parse {warm * 1e3:5.2f} ms)")
    print(f"{args.runs} fresh interpreters per row, medians of CPU ms; {sys.version.split()[0]}")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
