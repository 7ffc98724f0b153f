"""Thick mode: the netplex-node daemon and the shim (issue 10), with real plugins in real
network namespaces and the API test double.

The end-to-end assertions of ``tests/plugin/test_e2e.py`` already run through both paths;
this file covers what only thick mode has: the shim's imports and its byte-for-byte
answers, the trust checks of the socket, the fallback when the daemon is away, a daemon
killed or stopped mid-request, and many pods at once.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from plugin.cni import cache
from plugin.node import daemon, wire
from tests.k8sapi import FakeApiServer, make_nad, make_pod
from tests.plugin import thick
from tests.plugin.netns_fixtures import (  # noqa: F401  (fixtures are found by name)
    CNI_BIN,
    Netns,
    host_environ,
    host_link_names_fixture,
    ip,
    make_netns_fixture,
    netns_fixture,
    requires_netns,
    veth_master_fixture,
)
from tests.plugin.test_e2e import BRIDGE_NET, addresses, allocations, bridge_nad, cluster_conf
from tests.plugin.test_main import api_fixture  # noqa: F401

NOBODY = 65534


def cni_env(command: str, *, container_id: str = "cid1", netns: str = "/run/netns/none",
            args: str = "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web") -> dict[str, str]:
    return {**host_environ(), "CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_NETNS": netns,
            "CNI_IFNAME": "eth0", "CNI_PATH": CNI_BIN, "CNI_ARGS": args}


def imported(stderr: str) -> set[str]:
    """Module names from ``-X importtime`` output."""
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if line.startswith("import time:")
            and not line.rstrip().endswith("package")}


@pytest.fixture
def shim_dir() -> Iterator[Path]:
    """A directory everyone may read (tmp_path is root-only), for shims run as nobody."""
    path = Path(tempfile.mkdtemp(prefix="netplex-shim-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def conf(tmp_path: Path) -> dict[str, Any]:
    """A configuration without API credentials: thick mode keeps them in the daemon."""
    return {"cniVersion": "1.0.0", "name": "netplex", "type": "netplex", "cniDir": str(tmp_path / "cni"),
            "binDir": str(tmp_path / "extra-bin"), "delegates": [cluster_conf("unused0", tmp_path / "ipam")]}


# ------------------------------------------------------------------------------ the shim


def test_the_shim_imports_nothing_but_sys_and_the_c_halves_of_os_and_socket(tmp_path: Path) -> None:
    sock = tmp_path / "run" / "n.sock"
    shim = thick.write_shim(tmp_path / "bin", sock)
    with thick.InProcessDaemon(sock, kubeconfig=None, base_environ=host_environ()):
        done = subprocess.run([thick.HOST_PYTHON, "-IS", "-X", "importtime", str(shim)], env=cni_env("VERSION"),
                              capture_output=True, text=True, check=True)
    baseline = subprocess.run([thick.HOST_PYTHON, "-IS", "-X", "importtime", "-c", "pass"], capture_output=True,
                              text=True, check=True)
    assert json.loads(done.stdout)["supportedVersions"][-1] == "1.1.0"
    assert imported(done.stderr) - imported(baseline.stderr) == {"_socket"}  # posix and sys are built in


def test_the_import_probe_would_see_socket_py_and_os_py(tmp_path: Path) -> None:
    probe = subprocess.run([thick.HOST_PYTHON, "-IS", "-X", "importtime", "-c", "import socket, os"],
                           capture_output=True, text=True, check=True)
    assert {"socket", "enum", "selectors", "os", "posixpath"} <= imported(probe.stderr)


def test_the_shim_answers_byte_for_byte_what_the_thin_plugin_answers(tmp_path: Path, conf: dict[str, Any]) -> None:
    """VERSION, a configuration error, a request error, and a DEL of nothing (CNI-27)."""
    sock = tmp_path / "run" / "n.sock"
    shim = thick.write_shim(tmp_path / "bin", sock)
    thin = tmp_path / "bin" / "netplex-thin"
    bad_key = {**conf, "logLevel": 5}
    cases = [("VERSION", b""), ("DEL", json.dumps(bad_key).encode()), ("ADD", b"{not json"),
             ("DEL", json.dumps(conf).encode()), ("CHECK", json.dumps({**conf, "cniVersion": "0.3.1"}).encode())]
    with thick.InProcessDaemon(sock, kubeconfig=None, base_environ=host_environ()):
        for command, stdin in cases:
            env = cni_env(command)
            via_daemon = thick.run_shim(shim, env, stdin)
            direct = subprocess.run([str(thin)], input=stdin, env=env, capture_output=True, check=False)
            assert (via_daemon.returncode, via_daemon.stdout) == (direct.returncode, direct.stdout), command
    assert b'"code": 7' in thick.run_shim(shim, cni_env("DEL"), json.dumps(bad_key).encode()).stdout


def test_render_shim_refuses_paths_it_could_not_write_safely() -> None:
    with pytest.raises(ValueError, match=r"shim socket path must be absolute.*\(got 'run/n.sock'\)"):
        wire.render_shim(socket_path="run/n.sock", thin="/opt/cni/bin/netplex-thin", timeout=5, python="/usr/bin/python3")
    with pytest.raises(ValueError, match=r"shim thin path .*\(got '/opt/a\"b'\)"):
        wire.render_shim(socket_path="/run/n.sock", thin='/opt/a"b', timeout=5, python="/usr/bin/python3")
    with pytest.raises(ValueError, match=r"shim timeout must be between 0 and 3600 seconds \(got 0\)"):
        wire.render_shim(socket_path="/run/n.sock", thin="/opt/t", timeout=0, python="/usr/bin/python3")
    text = wire.render_shim(socket_path="/run/x/n.sock", thin="/opt/t", timeout=7, python="/usr/local/bin/python3")
    assert text.startswith("#!/usr/local/bin/python3 -IS\n")
    assert 'SOCKET = "/run/x/n.sock"\nTHIN = "/opt/t"\nTIMEOUT = 7.0\n' in text


# ---------------------------------------------------------------------------- the socket


def test_the_socket_is_root_only_and_a_live_one_is_not_taken_over(tmp_path: Path) -> None:
    sock = tmp_path / "run" / "n.sock"
    with thick.InProcessDaemon(sock, kubeconfig=None, base_environ=host_environ()):
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700
        second = daemon.Server(str(sock), lambda env, stdin: (0, b"", b""))
        with pytest.raises(OSError, match=f"another netplex-node is already serving {sock}"):
            second.bind()
    assert not sock.exists()  # removed when the daemon stops


def test_a_stale_socket_of_a_dead_daemon_is_replaced(tmp_path: Path) -> None:
    sock = tmp_path / "n.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(sock))
    stale.close()  # the file stays, nobody listens
    with thick.InProcessDaemon(sock, kubeconfig=None, base_environ=host_environ()):
        assert daemon.probe(str(sock), 2.0) == 0


def test_a_peer_that_is_not_root_cannot_reach_the_default_socket(shim_dir: Path, tmp_path: Path,
                                                                  conf: dict[str, Any]) -> None:
    """Mode 0600 in a 0700 directory: connect() fails, the shim falls back, and ADD without
    a kubeconfig says why."""
    sock = tmp_path / "run" / "n.sock"
    shim = thick.write_shim(shim_dir, sock)
    with thick.InProcessDaemon(sock, kubeconfig=None, base_environ=host_environ()):
        done = thick.run_shim(shim, cni_env("ADD"), json.dumps({**conf, "cniDir": str(shim_dir / "cni")}).encode(),
                              user=NOBODY)
    error = json.loads(done.stdout)
    assert done.returncode == 1
    assert error["code"] == 11
    assert error["msg"] == f"the netplex-node daemon is not running: cannot connect to {sock} (Permission denied)"


def test_a_peer_that_is_not_root_is_refused_by_its_credentials(shim_dir: Path, conf: dict[str, Any]) -> None:
    """Even on a socket anyone may open, SO_PEERCRED decides."""
    sock = shim_dir / "n.sock"
    shim = thick.write_shim(shim_dir, sock)
    with thick.InProcessDaemon(sock, kubeconfig=None, base_environ=host_environ()) as served:
        sock.chmod(0o666)
        done = thick.run_shim(shim, cni_env("DEL"), json.dumps(conf).encode(), user=NOBODY)
        assert daemon.probe(str(sock), 2.0) == 0  # root still served
    error = json.loads(done.stdout)
    assert done.returncode == 1
    assert error["msg"] == f"netplex-node accepts requests only from uid 0 (the container runtime), not from uid {NOBODY}"
    assert served.server.peer_uid == 0


def test_an_oversized_request_is_refused_from_its_header(tmp_path: Path, conf: dict[str, Any]) -> None:
    sock = tmp_path / "run" / "n.sock"
    shim = thick.write_shim(tmp_path / "bin", sock)
    big = json.dumps({**conf, "padding": "x" * 5000}).encode()
    with thick.InProcessDaemon(sock, kubeconfig=None, base_environ=host_environ(), max_request_bytes=4096):
        done = thick.run_shim(shim, cni_env("DEL"), big)
    error = json.loads(done.stdout)
    assert done.returncode == 1
    assert error["msg"] == "netplex-node refused the request"
    assert error["details"].startswith("the request is ")
    assert error["details"].endswith("bytes, more than this daemon's limit of 4096 (netplex-node --max-request-bytes)")


@pytest.mark.parametrize("raw,message", [
    (b"HTTP/1.1 GET /\r\n\r\n", "not a netplex shim request (starts with b'HTTP')"),
    (wire.REQUEST.pack(wire.MAGIC, 9, 0) + b"PATH=/bin", "environment entry b'PATH=/bin' is not a CNI_NAME=value pair"),
    (wire.REQUEST.pack(wire.MAGIC, 11, 0) + b"CNI_COMMAND", "environment entry b'CNI_COMMAND' is not a CNI_NAME=value pair"),
])
def test_foreign_requests_are_refused_with_the_reason(tmp_path: Path, raw: bytes, message: str) -> None:
    sock = tmp_path / "n.sock"
    with thick.InProcessDaemon(sock, kubeconfig=None, base_environ=host_environ()), \
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(5)
        client.connect(str(sock))
        client.sendall(raw)
        _, status, out_len, _err_len = wire.ANSWER.unpack(wire.recv_exact(client, wire.ANSWER.size))
        error = json.loads(wire.recv_exact(client, out_len))
    assert status == 1
    assert error["details"] == message


def test_ready_probe_says_what_is_wrong(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sock = tmp_path / "n.sock"
    assert daemon.main_cli(["ready", "--socket", str(sock), "--timeout", "1"]) == 1
    assert f"netplex-node is not answering on {sock}: [Errno 2] No such file or directory" in capsys.readouterr().err
    with thick.InProcessDaemon(sock, kubeconfig=None, base_environ=host_environ()):
        assert daemon.main_cli(["ready", "--socket", str(sock)]) == 0


def test_a_kubeconfig_it_cannot_use_stops_the_daemon_with_the_reason(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "plugin.node.daemon", "run", "--socket", str(tmp_path / "n.sock"),
                           "--kubeconfig", str(tmp_path / "missing")], cwd=thick.REPO, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 2
    assert (f"[ERROR] netplex-node: cannot use --kubeconfig {tmp_path / 'missing'}: kubeconfig: cannot read "
            f"{tmp_path / 'missing'}: No such file or directory") in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "n.sock").exists()


def test_a_socket_path_too_long_for_unix_sockets_is_a_clear_error(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 100) / "netplex.sock"
    done = subprocess.run([sys.executable, "-m", "plugin.node.daemon", "run", "--socket", str(deep)],
                          cwd=thick.REPO, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert f"[ERROR] netplex-node: cannot serve {deep}: AF_UNIX path too long" in done.stderr


def test_a_metrics_port_in_use_stops_the_daemon_with_the_reason(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "plugin.node.daemon", "run", "--socket", str(tmp_path / "n.sock"),
                               "--metrics-address", f"127.0.0.1:{port}"], cwd=thick.REPO, capture_output=True,
                              text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert (f"[ERROR] netplex-node: cannot serve metrics on 127.0.0.1:{port}: Address already in use "
            "(--metrics-address)") in done.stderr
    assert not (tmp_path / "n.sock").exists()


@pytest.mark.parametrize("value,message", [
    ("9091", "must be HOST:PORT with a port from 0 to 65535, got '9091'"),
    ("localhost:http", "must be HOST:PORT with a port from 0 to 65535, got 'localhost:http'"),
    ("127.0.0.1:70000", "must be HOST:PORT with a port from 0 to 65535, got '127.0.0.1:70000'"),
])
def test_bad_flags_are_refused_with_the_reason(value: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        daemon.parse_args(["run", "--metrics-address", value])
    assert exited.value.code == 2
    assert f"argument --metrics-address: {message}" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        daemon.parse_args(["run", "--max-concurrent", "0"])
    assert "argument --max-concurrent: must be at least 1, got 0" in capsys.readouterr().err


def test_a_stuck_daemon_is_a_cni_error_after_the_shim_timeout(tmp_path: Path, conf: dict[str, Any]) -> None:
    sock = tmp_path / "n.sock"
    shim = thick.write_shim(tmp_path / "bin", sock, timeout=1.0)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sock))
    listener.listen(1)  # accepts (the kernel queues it) and never answers
    try:
        start = time.monotonic()
        done = thick.run_shim(shim, cni_env("DEL"), json.dumps(conf).encode(), timeout=20)
        elapsed = time.monotonic() - start
    finally:
        listener.close()
    error = json.loads(done.stdout)
    assert done.returncode == 1
    assert (error["cniVersion"], error["code"], error["msg"]) == ("1.0.0", 11, "netplex-node did not answer within 1 s")
    assert elapsed < 10


# ---------------------------------------------------------- real plugins, real namespaces


SLOW_PLUGIN = """#!/bin/sh
# Marks that it started, waits, then is the real bridge plugin.
touch "{mark}.$CNI_COMMAND"
[ "$CNI_COMMAND" = ADD ] && sleep {delay}
exec {bin}/bridge
"""


def slow_bridge(bin_dir: Path, mark: Path, delay: float) -> str:
    bin_dir.mkdir(parents=True, exist_ok=True)
    plugin = bin_dir / "slowbridge"
    plugin.write_text(SLOW_PLUGIN.format(mark=mark, delay=delay, bin=CNI_BIN))
    plugin.chmod(0o755)
    return "slowbridge"


def wait_for(path: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.02)


class ThickNode:
    """A daemon process, a shim, the API double with a pod that selects one slow bridge network."""

    def __init__(self, tmp: Path, api: FakeApiServer, ns: Netns, names: Callable[[str], str], delay: float) -> None:
        self.tmp, self.api, self.ns = tmp, api, ns
        self.data = tmp / "ipam"
        self.mark = tmp / "started"
        self.sock = tmp / "run" / "netplex.sock"
        self.shim = thick.write_shim(tmp / "bin", self.sock)
        plugin_type = slow_bridge(tmp / "extra-bin", self.mark, delay)
        api.create(make_nad("slow-net", config={"cniVersion": "1.0.0", "type": plugin_type, "bridge": names("nps"),
                                                "ipam": {"type": "host-local", "subnet": f"{BRIDGE_NET}.0/24",
                                                         "dataDir": str(self.data)}}))
        api.create(make_pod("web", annotations={"k8s.v1.cni.cncf.io/networks": "slow-net"}))
        self.conf = {"cniVersion": "1.0.0", "name": "netplex", "type": "netplex", "cniDir": str(tmp / "cni"),
                     "binDir": str(tmp / "extra-bin"), "delegates": [cluster_conf(names("npc"), self.data)]}
        self.kubeconfig = api.kubeconfig(tmp / "kubeconfig")

    def start(self) -> thick.DaemonProcess:
        return thick.start_daemon_process(self.sock, kubeconfig=self.kubeconfig, environ=host_environ())

    def run(self, command: str, conf: dict[str, Any] | None = None) -> subprocess.CompletedProcess[bytes]:
        return thick.run_shim(self.shim, cni_env(command, netns=self.ns.path), json.dumps(conf or self.conf).encode())


@pytest.fixture
def thick_node(tmp_path: Path, api: FakeApiServer, netns: Netns, host_link_names: Callable[[str], str]) -> ThickNode:
    return ThickNode(tmp_path, api, netns, host_link_names, delay=1.5)


@requires_netns
@pytest.mark.netns
def test_daemon_killed_during_add_gives_a_cni_error_and_del_then_leaves_nothing(thick_node: ThickNode) -> None:
    node = thick_node
    daemon_proc = node.start()
    try:
        with ThreadPoolExecutor(1) as pool:
            adding = pool.submit(node.run, "ADD")
            wait_for(Path(f"{node.mark}.ADD"))  # eth0 is attached, the second network is under way
            daemon_proc.signal(signal.SIGKILL)
            added = adding.result(timeout=30)
    finally:
        daemon_proc.stop()
    error = json.loads(added.stdout)
    assert added.returncode == 1
    assert error["code"] == 11
    assert error["msg"].startswith("netplex-node stopped before answering")
    assert error["details"].startswith(f"socket {node.sock}; the daemon may have crashed")
    # Outside a container the slow plugin outlives the daemon (in the DaemonSet the runtime
    # kills the container's processes with it) and attaches its network: wait for that, the
    # DEL below must remove it too.
    time.sleep(2.0)
    node.api.stop()
    deleted = node.run("DEL")  # the daemon is gone: the shim runs the thin path from the cache
    assert deleted.returncode == 0, deleted.stdout
    assert sorted(addresses(node.ns)) == ["lo"]
    assert all(held == [] for held in allocations(node.data).values())
    assert cache.container_ids(str(node.tmp / "cni")) == []


@requires_netns
@pytest.mark.netns
def test_sigterm_lets_requests_in_flight_finish_and_stops_accepting(thick_node: ThickNode) -> None:
    node = thick_node
    daemon_proc = node.start()
    try:
        with ThreadPoolExecutor(1) as pool:
            adding = pool.submit(node.run, "ADD")
            wait_for(Path(f"{node.mark}.ADD"))
            daemon_proc.signal(signal.SIGTERM)
            deadline = time.monotonic() + 5
            while node.sock.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert not node.sock.exists()  # no new requests while the ADD finishes
            added = adding.result(timeout=30)
        code, log = daemon_proc.wait()
    finally:
        daemon_proc.stop()
    assert added.returncode == 0, added.stdout
    assert sorted(addresses(node.ns)) == ["eth0", "lo", "net1"]
    assert code == 0
    assert "stopped by SIGTERM" in log
    assert node.run("DEL").returncode == 0  # thin fallback, from the cache
    assert all(held == [] for held in allocations(node.data).values())


@requires_netns
@pytest.mark.netns
def test_with_the_daemon_and_the_api_down_del_works_from_the_cache_and_add_says_why(thick_node: ThickNode) -> None:
    node = thick_node
    daemon_proc = node.start()
    try:
        added = node.run("ADD")
    finally:
        daemon_proc.signal(signal.SIGTERM)
        daemon_proc.wait()
    assert added.returncode == 0, added.stdout
    node.api.stop()
    refused = node.run("ADD")
    error = json.loads(refused.stdout)
    assert refused.returncode == 1
    assert error["code"] == 11
    assert error["msg"] == (f"the netplex-node daemon is not running: cannot connect to {node.sock} "
                            "(No such file or directory)")
    assert "give the plugin a kubeconfig on this node" in error["details"]
    deleted = node.run("DEL")
    assert deleted.returncode == 0, deleted.stdout
    assert sorted(addresses(node.ns)) == ["lo"]
    assert all(held == [] for held in allocations(node.data).values())


@requires_netns
@pytest.mark.netns
def test_add_falls_back_to_the_thin_path_when_the_node_has_a_plugin_kubeconfig(thick_node: ThickNode) -> None:
    node = thick_node
    conf = {**node.conf, "kubeconfig": str(node.kubeconfig)}
    added = node.run("ADD", conf)  # no daemon was ever started
    assert added.returncode == 0, added.stdout
    assert sorted(addresses(node.ns)) == ["eth0", "lo", "net1"]
    assert node.run("DEL", conf).returncode == 0
    assert all(held == [] for held in allocations(node.data).values())


@requires_netns
@pytest.mark.netns
def test_twenty_pods_added_and_deleted_in_parallel_through_the_daemon(
        tmp_path: Path, api: FakeApiServer, make_netns: Callable[[], Netns],
        host_link_names: Callable[[str], str]) -> None:
    data = tmp_path / "ipam"
    sock = tmp_path / "run" / "netplex.sock"
    shim = thick.write_shim(tmp_path / "bin", sock)
    api.create(bridge_nad("pod-net", host_link_names("npd"), BRIDGE_NET, data))
    for i in range(20):
        api.create(make_pod(f"pod{i}", annotations={"k8s.v1.cni.cncf.io/networks": "pod-net"}))
    conf = json.dumps({"cniVersion": "1.0.0", "name": "netplex", "type": "netplex", "cniDir": str(tmp_path / "cni"),
                       "delegates": [cluster_conf(host_link_names("npc"), data)]}).encode()
    namespaces = [make_netns() for _ in range(20)]

    def run(command: str, i: int) -> subprocess.CompletedProcess[bytes]:
        env = cni_env(command, container_id=f"pod{i}", netns=namespaces[i].path,
                      args=f"K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod{i}")
        return thick.run_shim(shim, env, conf)

    daemon_proc = thick.start_daemon_process(sock, kubeconfig=api.kubeconfig(tmp_path / "kubeconfig"),
                                             environ=host_environ())
    try:
        with ThreadPoolExecutor(max_workers=20) as pool:
            added = list(pool.map(lambda i: run("ADD", i), range(20)))
        assert [a.returncode for a in added] == [0] * 20, [a.stdout for a in added if a.returncode]
        given = [json.loads(a.stdout)["ips"][0]["address"] for a in added]
        assert len(set(given)) == 20
        assert [addresses(ns)["eth0"]["ipv4"] for ns in namespaces] == [[g] for g in given]
        assert all(sorted(addresses(ns)) == ["eth0", "lo", "net1"] for ns in namespaces)
        assert {k: len(v) for k, v in allocations(data).items()} == {"cluster-net": 20, "pod-net": 20}
        with ThreadPoolExecutor(max_workers=20) as pool:
            deleted = list(pool.map(lambda i: run("DEL", i), range(20)))
        assert [d.returncode for d in deleted] == [0] * 20, [d.stdout for d in deleted if d.returncode]
    finally:
        daemon_proc.signal(signal.SIGTERM)
        code, log = daemon_proc.wait()
    assert code == 0, log
    assert allocations(data) == {"cluster-net": [], "pod-net": []}
    assert all(sorted(addresses(ns)) == ["lo"] for ns in namespaces)
    assert cache.container_ids(str(tmp_path / "cni")) == []
    assert len(api.requests_matching("PATCH", r"/api/v1/namespaces/default/pods/pod\d+/status")) == 20



def minimal_root(root: Path, program: str) -> str:
    """``program`` and the shared libraries it loads, copied under ``root`` at their paths."""
    libs = subprocess.run(["ldd", program], capture_output=True, text=True, check=True).stdout
    paths = [program, *(p for p in (part.split("=>")[-1].split("(")[0].strip() for part in libs.splitlines())
                        if p.startswith("/"))]
    for path in paths:
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    (root / "proc").mkdir(exist_ok=True)
    return program


def test_with_chroot_a_delegate_sees_the_host_root_not_the_daemons(tmp_path: Path) -> None:
    """host-local writes its reservation under dataDir: inside the chroot, not outside."""
    root = tmp_path / "host"
    program = minimal_root(root, f"{CNI_BIN}/host-local")
    conf = json.dumps({"cniVersion": "1.0.0", "name": "chrooted", "type": "host-local",
                       "ipam": {"type": "host-local", "subnet": "198.18.70.0/24", "dataDir": "/hl"}}).encode()
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/proc/self/ns/net", "CNI_IFNAME": "eth0",
           "CNI_PATH": CNI_BIN, "PATH": "/usr/bin:/bin"}
    run = daemon.delegate_runner(str(root), shutil.which("chroot") or "chroot")
    code, out, err = run(program, env, conf, 30.0)
    assert code == 0, (out, err)
    assert json.loads(out)["ips"][0]["address"] == "198.18.70.2/24"
    assert (root / "hl" / "chrooted" / "198.18.70.2").exists()
    assert not Path("/hl").exists()
    env["CNI_COMMAND"] = "DEL"
    assert run(program, env, conf, 30.0)[0] == 0  # DEL: chrooted too
    assert not (root / "hl" / "chrooted" / "198.18.70.2").exists()


def test_a_chroot_without_a_root_file_system_is_refused(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "plugin.node.daemon", "run", "--socket", str(tmp_path / "n.sock"),
                           "--chroot", str(tmp_path), "--metrics-address", ""], cwd=thick.REPO, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert (f"[ERROR] netplex-node: --chroot {tmp_path} does not hold a root file system (no proc directory): "
            "mount the host's / there") in done.stderr
