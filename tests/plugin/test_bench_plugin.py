"""bench/plugin.py: its helpers, and one minimal run so that the benchmark cannot rot.

The figures themselves are never asserted (DESIGN.md: measured in bench/, not in tests).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import pytest

from tests.plugin.netns_fixtures import ip, requires_netns

REPO = Path(__file__).resolve().parents[2]


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_plugin", REPO / "bench" / "plugin.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


bench = load_bench()


def test_direct_requests_are_built_as_a_runtime_builds_them_from_a_conflist() -> None:
    conflist = {"cniVersion": "1.0.0", "name": "net", "plugins": [{"type": "bridge", "bridge": "b0"},
                                                                    {"type": "tuning", "name": "ignored"}]}
    assert bench.Delegate("eth0", conflist, "").requests() == [
        {"type": "bridge", "bridge": "b0", "cniVersion": "1.0.0", "name": "net"},
        {"type": "tuning", "name": "net", "cniVersion": "1.0.0"}]
    conf = {"cniVersion": "0.3.1", "name": "n", "type": "macvlan"}
    assert bench.Delegate("net1", conf, "").requests() == [conf]


def test_pods_select_the_two_nads_in_turn_and_count_the_cluster_network() -> None:
    assert bench.selection(1) == ""
    assert bench.selection(3) == "macvlan-conf,bridge-conf"
    assert bench.selection(8).split(",") == ["macvlan-conf", "bridge-conf"] * 3 + ["macvlan-conf"]


def test_import_only_replays_every_import_except_site_and_what_site_imported() -> None:
    importtime = b"""\
import time: self [us] | cumulative | imported package
import time:       100 |        100 |   _io
import time:       200 |        300 | io
import time:        50 |         50 |     certifi.core
import time:        60 |        110 |   certifi
import time:       500 |        610 | site
import time:        70 |         70 |   runpy
import time:        80 |         80 |     plugin.cni.protocol
import time:        90 |        170 |   plugin.cni.commands
import time:        10 |        250 | plugin.cni.main
import time:        30 |         30 |   _io
"""
    argv = bench.import_only("/usr/bin/python3", Path("/z/netplex"), importtime)
    assert argv[:2] == ["/usr/bin/python3", "-c"]
    assert argv[3:] == ["/z/netplex", "_io", "io", "runpy", "plugin.cni.protocol", "plugin.cni.commands", "plugin.cni.main"]


def test_the_launcher_reports_the_peak_of_the_process_it_starts_not_its_own_parent() -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    small = bench.run_timed(["/bin/true"], env, launcher=sys.executable)
    big = bench.run_timed([sys.executable, "-c", "x = bytearray(200 * 1024 * 1024); x[::4096] = b'1' * len(x[::4096])"],
                          env, launcher=sys.executable)
    assert (small.code, big.code) == (0, 0)
    assert big.maxrss_kib >= 200 * 1024
    assert small.maxrss_kib < 100 * 1024


@requires_netns
@pytest.mark.netns
def test_one_minimal_run_prints_every_figure_and_leaves_nothing_behind() -> None:
    before = set(ip("netns", "list").stdout.split())
    scratch = set(Path(tempfile.gettempdir()).glob("netplex-bench-*"))
    done = subprocess.run([sys.executable, str(REPO / "bench" / "plugin.py"), "--runs", "1", "--version-runs", "1",
                           "--pods", "2", "--parallel", "2", "--python", sys.executable], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    for text in ("ADD and DEL of one pod", "direct", "VERSION, netplex", "imports of DEL", "peak RSS",
                 "VERSION median <= 25 ms", "for 3 networks", "thick ", "VERSION, thick (the shim)",
                 "netplex-node daemon: idle", "after 2 more pods", "2 pods of 3 networks at once",
                 "thick ADD+DEL <= 1.25 x direct", "shim VERSION <= python -IS -c pass + 5 ms"):
        assert text in done.stdout, text
    assert not [n for n in set(ip("netns", "list").stdout.split()) - before if n.startswith("npbench-")]
    assert set(Path(tempfile.gettempdir()).glob("netplex-bench-*")) == scratch
