"""Faults during ADD and DEL, with the real reference plugins in real network namespaces:
delegates that fail or hang at random, the plugin SIGKILLed half-way, a full cache
filesystem, a corrupt cache entry, ADD and DEL of one container at once.

The property every test ends on is the one a node needs: nothing leaks. No host-local
reservation, no interface left in a pod's namespace or on the host's bridges, no cache
entry. The runtime is played as the kubelet plays it: a failed ADD is followed by a DEL,
and a failed DEL is retried until it succeeds.

The faults come from ``fault``, a wrapper delegate (``flaky`` and ``sleepy`` are links to
it): it runs the real plugin named in its configuration's ``fault.wraps`` and, from a
``random.Random`` seeded with (seed, container, wrapper, verb, attempt), fails before or
after the real plugin did its work, or hangs (before or after) past the delegate timeout.
A failing case is reproduced by its seed, which the assertion messages print.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from plugin.cni import cache
from tests.plugin import thick
from tests.plugin.netns_fixtures import (  # noqa: F401  (fixtures are found by name)
    CNI_BIN,
    FakePlugins,
    Netns,
    fake_conflist,
    fake_plugins_fixture,
    host_environ,
    host_link_names_fixture,
    ip,
    make_netns_fixture,
    netns_fixture,
    requires_netns,
)
from tests.plugin.test_e2e import CLUSTER_NET, SPARE_NET, addresses, allocations, ipam
from tests.plugin.test_main import REPO, Plugin

pytestmark = [requires_netns, pytest.mark.netns]

SECOND_NET = "198.18.64"
SEED = int(os.environ.get("NETPLEX_FAULT_SEED", "20261204"))
DELEGATE_TIMEOUT = 2.0

FAULT_PLUGIN = '''\
#!{python} -S
"""The real plugin in fault.wraps, with a seeded failure or hang (tests/plugin/test_faults.py)."""
import json, os, random, subprocess, sys, time

name = os.path.basename(sys.argv[0])
command = os.environ.get("CNI_COMMAND", "")
raw = sys.stdin.buffer.read()
fault = json.loads(raw).get("fault") or {{}}
action = ""
cid = os.environ.get("CNI_CONTAINERID", "")
if command in ("ADD", "DEL") and cid:
    with open(os.path.join(fault["dir"], f"{{cid}}.{{name}}.{{command}}"), "a+") as f:
        f.write("x")
        f.seek(0)
        attempt = len(f.read())
    rng = random.Random(f"{{fault['seed']}}:{{cid}}:{{name}}:{{command}}:{{attempt}}")
    roll, when = rng.random(), rng.choice(("before", "after"))
    if roll < fault.get("fail", 0.0):
        action = "fail-" + when
    elif roll < fault.get("fail", 0.0) + fault.get("hang", 0.0):
        action = "hang-" + when
    with open(os.path.join(fault["dir"], "actions"), "a") as f:
        f.write(json.dumps([cid, name, command, attempt, action, os.getpid()]) + "\\n")
def mark_and_block():
    # The test kills the plugin once this file names the wrapper: written only when the
    # wrapper has got where it blocks (before the real plugin, or after it answered).
    with open(fault["mark"] + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename(fault["mark"] + ".tmp", fault["mark"])
    time.sleep(3600)


if "mark" in fault and command == "ADD" and fault.get("block") == "before":
    mark_and_block()


def failed():
    sys.stdout.write(json.dumps({{"cniVersion": "1.0.0", "code": 100, "msg": f"{{name}}: injected {{command}} failure"}}))
    sys.exit(1)


if action == "fail-before":
    failed()
if action == "hang-before":
    time.sleep(3600)
done = subprocess.run([os.path.join({bin!r}, fault["wraps"])], input=raw, capture_output=True)
if action == "fail-after":
    failed()
if "mark" in fault and fault.get("block") == "after" and command == "ADD":
    mark_and_block()
if action == "hang-after":
    time.sleep(3600)
sys.stderr.buffer.write(done.stderr)
sys.stdout.buffer.write(done.stdout)
sys.exit(done.returncode)
'''

# The thin plugin as ``python -m plugin.cni.main`` runs it, with a short delegate timeout
# (plugin.cni.commands.Environment's knob; the executable keeps its 60 s default).
THIN_RUNNER = ("import os, sys\n"
               "from plugin.cni import commands, main\n"
               "sys.exit(main.main(os.environ, sys.stdin.buffer, sys.stdout, sys.stderr,\n"
               "    env_factory=lambda e: commands.Environment(e, delegate_timeout=float(sys.argv[1]))))\n")


def write_fault_plugins(bin_dir: Path) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "fault"
    script.write_text(FAULT_PLUGIN.format(python=sys.executable, bin=CNI_BIN))
    script.chmod(0o755)
    for name in ("flaky", "sleepy"):
        (bin_dir / name).symlink_to("fault")


def wrapped_bridge(name: str, wrapper: str, bridge: str, subnet: str, data: Path, **fault: Any) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": name,
            "plugins": [{"type": wrapper, "bridge": bridge, "ipam": ipam(subnet, data),
                         "fault": {"wraps": "bridge", **fault}}]}


def bridge_ports(bridge: str) -> list[str]:
    """Host ends of veth pairs still attached to ``bridge``."""
    out = ip("-j", "link", "show", "master", bridge, check=False).stdout
    return sorted(link["ifname"] for link in json.loads(out or "[]"))


def cni_environ(command: str, cid: str, ns: Netns) -> dict[str, str]:
    return {**host_environ(), "PYTHONPATH": str(REPO), "CNI_COMMAND": command, "CNI_CONTAINERID": cid,
            "CNI_NETNS": ns.path, "CNI_IFNAME": "eth0", "CNI_PATH": CNI_BIN,
            "CNI_ARGS": f"K8S_POD_NAMESPACE=default;K8S_POD_NAME={cid}"}


class Runtime:
    """Runs the plugin the way a container runtime does: thin (a ``python -m
    plugin.cni.main``-like process per command) or thick (the shim, against a daemon)."""

    def __init__(self, tmp: Path, mode: str) -> None:
        self.mode = mode
        self.sock = tmp / "run" / "netplex.sock"
        self.shim = thick.write_shim(tmp / "shim", self.sock) if mode == "thick" else None

    def run(self, command: str, cid: str, ns: Netns, conf: bytes) -> subprocess.CompletedProcess[bytes]:
        environ = cni_environ(command, cid, ns)
        if self.shim is not None:
            return thick.run_shim(self.shim, environ, conf, timeout=300)
        return subprocess.run([sys.executable, "-c", THIN_RUNNER, str(DELEGATE_TIMEOUT)], input=conf, env=environ,
                              capture_output=True, check=False, timeout=300, cwd=REPO)

    def popen(self, command: str, cid: str, ns: Netns, conf: bytes) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([sys.executable, "-c", THIN_RUNNER, str(DELEGATE_TIMEOUT)],
                                env=cni_environ(command, cid, ns), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=REPO)
        assert proc.stdin is not None
        proc.stdin.write(conf)
        proc.stdin.close()
        return proc


@pytest.fixture(params=["thin", "thick"])
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    made = Runtime(tmp_path, request.param)
    if made.shim is None:
        yield made
        return
    environment = {"lock_timeout": 60.0, "delegate_timeout": DELEGATE_TIMEOUT}
    with thick.InProcessDaemon(made.sock, kubeconfig=None, base_environ=host_environ(), environment_kw=environment):
        yield made


def wait_for(path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text()):
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.02)


def leftover_processes(marker: str) -> list[int]:
    """Processes whose command line mentions ``marker`` (a test's own directory)."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(int(pid))
    return found


# ------------------------------------------------------------- random faults, 50 pods


PODS = 50


def test_fifty_pods_with_random_delegate_failures_and_hangs_leak_nothing(
        runtime: Runtime, tmp_path: Path, make_netns: Callable[[], Netns],
        host_link_names: Callable[[str], str]) -> None:
    """CNI-18 (a failed ADD is rolled back), CNI-27 (DEL releases everything), NPWG-35.

    Every pod has the cluster network (``flaky``: bridge + host-local failing ~10 % of its
    ADDs and DELs, before or after the real plugin did its work) and a second network
    from ``delegates[1]`` (``sleepy``: ~5 % hangs past the delegate timeout, killed). The
    runtime handles 10 pods at a time, so ADDs and DELs of different pods overlap: each pod
    is ADDed, then DELed whatever the ADD answered, a failed DEL retried as the kubelet
    does (at most 10 times)."""
    data, faults = tmp_path / "ipam", tmp_path / "faults"
    faults.mkdir()
    write_fault_plugins(tmp_path / "bin")
    bridges = (host_link_names("npc"), host_link_names("nps"))
    conf = json.dumps({
        "cniVersion": "1.0.0", "name": "netplex", "type": "netplex", "cniDir": str(tmp_path / "cni"),
        "binDir": str(tmp_path / "bin"), "delegates": [
            wrapped_bridge("cluster-net", "flaky", bridges[0], CLUSTER_NET, data, dir=str(faults), seed=SEED,
                           fail=0.10),
            wrapped_bridge("second-net", "sleepy", bridges[1], SECOND_NET, data, dir=str(faults), seed=SEED,
                           hang=0.05)]}).encode()
    namespaces = [make_netns() for _ in range(PODS)]
    outcomes: dict[str, list[tuple[str, int, str]]] = {}

    def pod(i: int) -> None:
        cid = f"pod{i}"
        log = outcomes.setdefault(cid, [])
        added = runtime.run("ADD", cid, namespaces[i], conf)
        log.append(("ADD", added.returncode, added.stdout.decode()))
        for _ in range(10):
            deleted = runtime.run("DEL", cid, namespaces[i], conf)
            log.append(("DEL", deleted.returncode, deleted.stdout.decode()))
            if deleted.returncode == 0:
                return

    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(pod, range(PODS)))

    actions = [json.loads(line) for line in (faults / "actions").read_text().splitlines()]
    injected = [a for a in actions if a[4]]
    seed = f"seed {SEED} (NETPLEX_FAULT_SEED)"
    # The faults did happen (else the seed tests nothing), and every ADD they hit failed with a CNI error.
    assert {a[4].split("-")[0] for a in injected} == {"fail", "hang"}, seed
    failed_adds = [(cid, json.loads(out)) for cid, log in outcomes.items() for verb, code, out in log
                   if verb == "ADD" and code != 0]
    hit = {a[0] for a in injected if a[2] == "ADD"}
    assert hit and hit <= {cid for cid, _ in failed_adds}, seed
    for cid, error in failed_adds:
        assert error["code"] in (11, 100), (cid, error, seed)  # 11: killed after the timeout; 100: injected
        assert "rolled back" in error["details"] or "kept in the cache" in error["details"], (cid, error, seed)
    assert all(log[-1][:2] == ("DEL", 0) for log in outcomes.values()), (
        [(cid, log) for cid, log in outcomes.items() if log[-1][:2] != ("DEL", 0)], seed)
    # Nothing leaked.
    assert {net: ips for net, ips in allocations(data).items() if ips} == {}, seed
    assert [ns.name for ns in namespaces if sorted(addresses(ns)) != ["lo"]] == [], seed
    assert [bridge_ports(b) for b in bridges] == [[], []], seed
    assert cache.container_ids(str(tmp_path / "cni")) == [], seed
    assert [e for e in os.listdir(tmp_path / "cni") if e != ".locks"] == [], seed  # no temp file either
    time.sleep(0.2)
    assert leftover_processes(str(tmp_path / "bin")) == [], seed  # hung delegates were killed, group and all


# ----------------------------------------------------------- SIGKILL between delegates


@pytest.mark.parametrize("block", ["before", "after"])
def test_thin_plugin_killed_between_two_delegates_then_del_removes_everything(
        tmp_path: Path, netns: Netns, host_link_names: Callable[[str], str], block: str) -> None:
    """The cache entry is on disk before the first delegate runs (CNI-27): the runtime
    SIGKILLs the plugin (its own timeout) while the second network's delegate is under
    way, having done nothing yet (``before``) or everything but answer (``after``). The
    next DEL, from the cache, removes both networks. (The orphaned delegate is killed by
    the test: no plugin process ties a delegate's life to its own; in the DaemonSet the
    runtime kills a dead daemon's container processes with it.)"""
    data, faults, mark = tmp_path / "ipam", tmp_path / "faults", tmp_path / "second-started"
    faults.mkdir()
    write_fault_plugins(tmp_path / "bin")
    bridges = (host_link_names("npc"), host_link_names("nps"))
    conf = json.dumps({
        "cniVersion": "1.0.0", "name": "netplex", "type": "netplex", "cniDir": str(tmp_path / "cni"),
        "binDir": str(tmp_path / "bin"), "delegates": [
            {"cniVersion": "1.0.0", "name": "cluster-net",
             "plugins": [{"type": "bridge", "bridge": bridges[0], "ipam": ipam(CLUSTER_NET, data)}]},
            wrapped_bridge("second-net", "sleepy", bridges[1], SECOND_NET, data, dir=str(faults), seed=SEED,
                           mark=str(mark), block=block)]}).encode()
    runtime = Runtime(tmp_path, "thin")
    proc = runtime.popen("ADD", "cid1", netns, conf)
    try:
        wait_for(mark)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        wrapper = int(mark.read_text()) if mark.exists() and mark.read_text() else 0
        if wrapper:
            os.killpg(wrapper, signal.SIGKILL)  # the orphan (its own process group)
    entry = cache.read(str(tmp_path / "cni"), "cid1")
    assert entry is not None
    assert [(a.network, a.ifname, a.result is not None) for a in entry.attachments] == [
        ("cluster-net", "eth0", True), ("second-net", "net1", False)]
    held = {net: len(ips) for net, ips in allocations(data).items()}
    assert held == ({"cluster-net": 1, "second-net": 1} if block == "after" else {"cluster-net": 1})
    assert sorted(addresses(netns)) == (["eth0", "lo", "net1"] if block == "after" else ["eth0", "lo"])

    deleted = runtime.run("DEL", "cid1", netns, conf)
    assert deleted.returncode == 0, deleted.stdout
    assert all(not ips for ips in allocations(data).values())
    assert sorted(addresses(netns)) == ["lo"]
    assert [bridge_ports(b) for b in bridges] == [[], []]
    assert cache.container_ids(str(tmp_path / "cni")) == []


# ------------------------------------------------------------ ADD and DEL at once


def test_add_and_del_of_one_container_at_once_are_serialized(
        runtime: Runtime, tmp_path: Path, netns: Netns, host_link_names: Callable[[str], str]) -> None:
    """CNI-17, NPWG-36: the DEL that arrives while ADD's second delegate is under way
    waits for the container's lock, so it starts only after the ADD answered and then
    deletes everything the ADD made."""
    data, faults, mark = tmp_path / "ipam", tmp_path / "faults", tmp_path / "second-started"
    faults.mkdir()
    write_fault_plugins(tmp_path / "bin")
    slow = tmp_path / "bin" / "slowbridge"
    slow.write_text(f"#!/bin/sh\n[ \"$CNI_COMMAND\" = ADD ] && echo $$ > {mark} && sleep 1\n"
                    f"echo \"$CNI_COMMAND $(date +%s.%N)\" >> {faults}/times\nexec {CNI_BIN}/bridge\n")
    slow.chmod(0o755)
    bridges = (host_link_names("npc"), host_link_names("nps"))
    conf = json.dumps({
        "cniVersion": "1.0.0", "name": "netplex", "type": "netplex", "cniDir": str(tmp_path / "cni"),
        "binDir": str(tmp_path / "bin"), "delegates": [
            {"cniVersion": "1.0.0", "name": "cluster-net",
             "plugins": [{"type": "bridge", "bridge": bridges[0], "ipam": ipam(CLUSTER_NET, data)}]},
            {"cniVersion": "1.0.0", "name": "second-net",
             "plugins": [{"type": "slowbridge", "bridge": bridges[1], "ipam": ipam(SPARE_NET, data)}]}]}).encode()
    finished: dict[str, float] = {}

    def run(command: str) -> subprocess.CompletedProcess[bytes]:
        done = runtime.run(command, "cid1", netns, conf)
        finished[command] = time.monotonic()
        return done

    with ThreadPoolExecutor(max_workers=2) as pool:
        adding = pool.submit(run, "ADD")
        wait_for(mark)
        deleting = pool.submit(run, "DEL")
        added, deleted = adding.result(timeout=120), deleting.result(timeout=120)
    assert added.returncode == 0, added.stdout
    assert deleted.returncode == 0, deleted.stdout
    assert finished["ADD"] < finished["DEL"]
    assert [line.split()[0] for line in (faults / "times").read_text().splitlines()] == ["ADD", "DEL"]
    assert all(not ips for ips in allocations(data).values())
    assert sorted(addresses(netns)) == ["lo"]
    assert cache.container_ids(str(tmp_path / "cni")) == []



# ------------------------------------------------------------ a full cache filesystem


@pytest.fixture
def full_cni_dir(tmp_path: Path) -> Iterator[Path]:
    """``cniDir`` on a 64 KiB tmpfs filled to the last byte (its lock directory made first,
    as on a node where netplex ran before the disk filled up)."""
    mount = tmp_path / "cni"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(mount)], check=True)
    try:
        (mount / ".locks").mkdir()
        fd = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while os.write(fd, b"\0" * 512):
                pass
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        finally:
            os.close(fd)
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_add_on_a_full_cache_filesystem_fails_before_any_delegate_and_says_why(
        tmp_path: Path, full_cni_dir: Path, fake_plugins: FakePlugins) -> None:
    """The entry must be on disk before the first delegate runs (else a crash would leak
    what it made): with no space for it, ADD runs nothing and says where and why (code 5,
    the spec's I/O failure); the DEL that follows succeeds and also runs nothing that
    could fail."""
    plugin = Plugin(tmp_path, fake_plugins.dir)
    conf = plugin.config(fake_conflist({"type": "fake-a"}, name="cluster-net"))
    out = plugin.run("ADD", conf)
    error = out.error
    assert error["code"] == 5
    assert error["msg"] == (f"cannot write the cache entry {full_cni_dir}/cid1 before running any delegate: "
                            "[Errno 28] No space left on device")
    assert error["details"] == (f"nothing was attached; free space in {full_cni_dir} (cniDir) and retry")
    assert fake_plugins.calls() == []
    assert sorted(os.listdir(full_cni_dir)) == [".locks", "filler"]  # no temp file left behind
    deleted = plugin.run("DEL", conf)
    assert deleted.code == 0, deleted.stdout


def test_add_with_no_inode_left_for_the_lock_file_fails_before_any_delegate_and_says_why(
        tmp_path: Path, fake_plugins: FakePlugins) -> None:
    """The same disk trouble one step earlier: the container's lock file cannot be made."""
    mount = tmp_path / "cni"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,nr_inodes=3,mode=0700", "tmpfs", str(mount)], check=True)
    try:
        (mount / ".locks").mkdir()
        (mount / ".locks" / ".gc").touch()
        with pytest.raises(OSError):  # the file system is out of inodes now
            (mount / "probe").touch()
        plugin = Plugin(tmp_path, fake_plugins.dir)
        error = plugin.run("ADD", plugin.config(fake_conflist({"type": "fake-a"}, name="cluster-net"))).error
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
    assert (error["code"], error["msg"]) == (5, "cannot lock container cid1")
    assert error["details"] == (f'cannot open the lock file {mount}/.locks/cid1 in "cniDir" {mount}: '
                                "No space left on device")
    assert fake_plugins.calls() == []


# ------------------------------------------------------------- a corrupt cache entry


def _truncate(raw: bytes) -> bytes:
    return raw[: len(raw) // 2]


def _wrong_kind(raw: bytes) -> bytes:
    return json.dumps({**json.loads(raw), "kind": "somethingElse"}).encode()


def _bad_base64(raw: bytes) -> bytes:
    data = json.loads(raw)
    data["attachments"][0]["config"] = "not base64!"
    return json.dumps(data).encode()


CORRUPTIONS: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "truncated": (_truncate, "Unterminated string"),
    "empty": (lambda raw: b"", "Expecting value: line 1 column 1 (char 0)"),
    "binary": (lambda raw: b"\xff\xfe\x00garbage", "Expecting value: line 1 column 1 (char 0)"),
    "not-an-object": (lambda raw: b"[1, 2]", "not a netplexCacheV1 entry"),
    "wrong-kind": (_wrong_kind, "not a netplexCacheV1 entry"),
    "bad-base64": (_bad_base64, "Only base64 data is allowed"),
}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_del_with_a_corrupt_cache_entry_reports_it_and_deletes_what_the_configuration_names(
        tmp_path: Path, netns: Netns, host_link_names: Callable[[str], str], corruption: str) -> None:
    """What DEL can delete without its entry is what the configuration alone names: the
    cluster network and the extra ``delegates`` (and, with the API, the pod's networks
    as ADD would resolve them now). A NAD network attached by ADD and no longer
    resolvable cannot be found and is not deleted. DEL logs the entry's path and what is
    wrong with it, succeeds (a failing DEL would be retried forever: the entry will not
    heal) and removes the entry."""
    data = tmp_path / "ipam"
    bridges = (host_link_names("npc"), host_link_names("nps"))
    plugin = Plugin(tmp_path, CNI_BIN)
    conf = plugin.config(
        {"cniVersion": "1.0.0", "name": "cluster-net",
         "plugins": [{"type": "bridge", "bridge": bridges[0], "ipam": ipam(CLUSTER_NET, data)}]},
        {"cniVersion": "1.0.0", "name": "second-net",
         "plugins": [{"type": "bridge", "bridge": bridges[1], "ipam": ipam(SECOND_NET, data)}]})
    added = plugin.run("ADD", conf, netns=netns.path)
    assert added.code == 0, added.stdout
    assert sorted(addresses(netns)) == ["eth0", "lo", "net1"]
    path = tmp_path / "cni" / "cid1"
    corrupt, reason = CORRUPTIONS[corruption]
    path.write_bytes(corrupt(path.read_bytes()))

    deleted = plugin.run("DEL", conf, netns=netns.path)
    assert deleted.code == 0, deleted.stdout
    assert deleted.stdout == ""
    assert f"corrupt cache entry {path}: " in deleted.stderr
    assert reason in deleted.stderr
    assert "; deleting without it" in deleted.stderr
    assert {net: ips for net, ips in allocations(data).items() if ips} == {}
    assert sorted(addresses(netns)) == ["lo"]
    assert [bridge_ports(b) for b in bridges] == [[], []]
    assert not path.exists()


def test_del_with_a_directory_in_place_of_the_cache_entry_deletes_and_says_so(
        tmp_path: Path, fake_plugins: FakePlugins) -> None:
    """An entry that cannot be read nor removed (a directory in its place): DEL deletes what
    the configuration names, logs both problems and succeeds; it answered 999 before,
    which the kubelet retries forever (and ADD asks for a DEL first)."""
    plugin = Plugin(tmp_path, fake_plugins.dir)
    conf = plugin.config(fake_conflist({"type": "fake-a"}, name="cluster-net"))
    (tmp_path / "cni" / "cid1").mkdir(parents=True)
    out = plugin.run("DEL", conf)
    assert (out.code, out.stdout) == (0, "")
    assert f"cannot read cache entry {tmp_path}/cni/cid1: Is a directory; deleting without it" in out.stderr
    assert (f"DEL of container cid1: cannot remove its cache entry: [Errno 21] Is a directory: "
            f"'{tmp_path}/cni/cid1'") in out.stderr
    assert [(c["plugin"], c["command"]) for c in fake_plugins.calls()] == [("fake-a", "DEL")]
    added = plugin.run("ADD", conf).error
    assert (added["code"], added["msg"]) == (7, "container cid1 has an unreadable cache entry")
    assert fake_plugins.calls()[1:] == []
