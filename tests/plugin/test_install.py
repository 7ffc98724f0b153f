"""``netplex-install`` end to end: the real zipapp, the real shim, the real probe, real files.

Tests that do not name a mode run the default, thick (the shim as ``netplex``, the zipapp
as ``netplex-thin``, no kubeconfig); the daemon is not running unless a test starts one,
so the shim's VERSION is answered by netplex-thin in-process, as on a node whose daemon
container has not started yet. Most tests use ``--host-root /`` with the CNI directories in a temporary directory, so the
probe really runs the installed zipapp with this machine's python3, exactly as a runtime
on a node with Python would. The host that cannot run it is a temporary host root with no
Python in it (chroot finds no interpreter). Tests of where files land under a host root
inject the probe's verdict instead (no Python exists in a temporary root to run it).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from plugin.cni import kubeconfig
from plugin.node import daemon, install, pack, wire
from plugin.node.host import HOST_PATH, HostCheck
from tests.plugin.netns_fixtures import FakePlugins, fake_conflist, fake_plugins_fixture  # noqa: F401
from tests.plugin.thick import InProcessDaemon

REPO = Path(__file__).resolve().parents[2]
API_ENV = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
FLANNEL = {"cniVersion": "1.0.0", "name": "cbr0", "plugins": [
    {"type": "flannel", "delegate": {"isDefaultGateway": True}},
    {"type": "portmap", "capabilities": {"portMappings": True}},
]}


def _host_python() -> tuple[str | None, str]:
    """The version and path of the python3 a runtime's PATH finds here (None: there is none)."""
    try:
        done = subprocess.run(["/usr/bin/env", "python3", "-c",
                               "import sys; print(*sys.version_info[:3], sep='.'); print(sys.executable)"],
                              env={"PATH": HOST_PATH}, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None, ""
    version, _, executable = done.stdout.strip().partition("\n")
    return version, executable


HOST_PYTHON, HOST_PYTHON_PATH = _host_python()


def jwt(exp: float) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    return f"{part({'alg': 'RS256'})}.{part({'exp': exp, 'sub': 'system:serviceaccount:netplex-system:netplex'})}.c2ln"


@pytest.fixture(scope="module")
def zipapp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pack.build(tmp_path_factory.mktemp("dist") / "netplex")


@dataclass
class Node:
    """CNI directories of a pretend node, and the installer's command line for them."""

    base: Path
    plugin: Path
    bin: Path = field(init=False)
    conf: Path = field(init=False)
    sa: Path = field(init=False)
    state: Path = field(init=False)
    ours: Path = field(init=False)
    kubeconfig: Path = field(init=False)
    socket: Path = field(init=False)

    def __post_init__(self) -> None:
        self.bin = self.base / "opt-cni-bin"
        self.conf = self.base / "etc-cni-net.d"
        self.sa = self.base / "serviceaccount"
        self.state = self.base / "run-netplex"
        self.ours = self.conf / "00-netplex.conflist"
        self.kubeconfig = self.conf / "netplex.d" / "netplex.kubeconfig"
        self.socket = self.base / "run-netplex-daemon" / "netplex.sock"  # no daemon unless a test starts one

    def flags(self, host_root: str = "/") -> list[str]:
        return ["--host-root", host_root, "--cni-bin-dir", str(self.bin), "--cni-conf-dir", str(self.conf),
                "--plugin", str(self.plugin), "--state-dir", str(self.state),
                "--service-account-dir", str(self.sa), "--socket", str(self.socket)]

    def shim(self, timeout: float = install.DEFAULT_SHIM_TIMEOUT) -> bytes:
        """The shim the installer must write on this machine (python3 found on the runtime's PATH)."""
        return wire.render_shim(socket_path=str(self.socket), thin=str(self.bin / "netplex-thin"), timeout=timeout,
                                python=HOST_PYTHON_PATH).encode()

    def install(self, *extra: str, environ: dict[str, str] | None = None) -> tuple[int, str]:
        """``netplex-install run --once``: the exit status and the log."""
        err = io.StringIO()
        code = install.main(["run", "--once", *self.flags(), *extra], environ=API_ENV if environ is None else environ,
                            stdout=io.StringIO(), stderr=err)
        return code, err.getvalue()

    def ready(self) -> tuple[int, str]:
        out = io.StringIO()
        code = install.main(["ready", "--state-dir", str(self.state)], environ={}, stdout=out)
        return code, out.getvalue()

    def write_primary(self, name: str, document: Any) -> Path:
        path = self.conf / name
        path.write_text(document if isinstance(document, str) else json.dumps(document))
        return path

    def generated(self) -> dict[str, Any]:
        return dict(json.loads(self.ours.read_text()))

    def set_token(self, token: str) -> None:
        (self.sa / "token").write_text(token)


@pytest.fixture
def node(tmp_path: Path, zipapp: Path) -> Node:
    if HOST_PYTHON is None or tuple(map(int, HOST_PYTHON.split("."))) < (3, 11):
        pytest.skip(f"no python3 >= 3.11 on the runtime's PATH {HOST_PATH} (got {HOST_PYTHON}) to run the plugin")
    n = Node(tmp_path / "node", zipapp)
    for d in (n.bin, n.conf, n.sa):
        d.mkdir(parents=True)
    n.set_token(jwt(time.time() + 3600))
    (n.sa / "ca.crt").write_bytes(CA)
    (n.sa / "namespace").write_text("netplex-system\n")
    return n


def fingerprint(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


# ------------------------------------------------------------------------ install


def test_thick_install_writes_the_shim_and_netplex_thin_and_a_conflist_without_credentials(node: Node) -> None:
    node.write_primary("10-flannel.conflist", FLANNEL)
    code, logs = node.install()
    assert code == 0, logs
    binary, thin = node.bin / "netplex", node.bin / "netplex-thin"
    assert thin.read_bytes() == node.plugin.read_bytes()
    assert binary.read_bytes() == node.shim()
    assert binary.read_bytes().startswith(f"#!{HOST_PYTHON_PATH} -IS\n".encode())
    assert HOST_PYTHON_PATH.startswith("/")  # the interpreter's absolute path, not /usr/bin/env
    assert [p.stat().st_mode & 0o7777 for p in (binary, thin)] == [0o755, 0o755]
    plugin = node.generated()["plugins"][0]
    assert "kubeconfig" not in plugin
    assert plugin["delegates"] == [FLANNEL]
    assert not node.kubeconfig.parent.exists()
    assert f"INFO installed {thin} (sha256 " in logs
    assert f"INFO installed {binary} (the shim to netplex-node at {node.socket}, #!{HOST_PYTHON_PATH} -IS, " in logs
    assert node.ready() == (0, f"ready: {node.ours} delegates to 10-flannel.conflist; the host runs {binary}, the "
                               f"shim to netplex-node at {node.socket} that falls back to {thin} for DEL, CHECK, GC, "
                               f"STATUS and VERSION, with Python {HOST_PYTHON} ({HOST_PYTHON_PATH})\n")


def test_thick_install_needs_no_service_account(node: Node) -> None:
    """No API credentials go to the host, so the installer reads none (the daemon has its own)."""
    node.write_primary("10-flannel.conflist", FLANNEL)
    for name in ("token", "ca.crt", "namespace"):
        (node.sa / name).unlink()
    code, logs = node.install(environ={})
    assert code == 0, logs
    assert node.ready()[0] == 0


def test_thin_fallback_writes_the_kubeconfig_and_names_it_in_the_thick_conflist(node: Node) -> None:
    node.write_primary("10-flannel.conflist", FLANNEL)
    code, logs = node.install("--thin-fallback")
    assert code == 0, logs
    assert (node.bin / "netplex").read_bytes() == node.shim()
    assert node.generated()["plugins"][0]["kubeconfig"] == str(node.kubeconfig)
    assert kubeconfig.from_kubeconfig(str(node.kubeconfig)).token == (node.sa / "token").read_text()
    assert node.kubeconfig.stat().st_mode & 0o7777 == 0o600
    assert node.ready()[1].endswith(f"that falls back to {node.bin}/netplex-thin for every verb (ADD with the "
                                    f"--thin-fallback kubeconfig), with Python {HOST_PYTHON} ({HOST_PYTHON_PATH})\n")


def test_shim_timeout_and_socket_are_written_into_the_shim(node: Node) -> None:
    node.write_primary("10-flannel.conflist", FLANNEL)
    assert node.install("--shim-timeout", "42")[0] == 0
    text = (node.bin / "netplex").read_text()
    assert "\nTIMEOUT = 42.0\n" in text
    assert f'\nSOCKET = "{node.socket}"\n' in text
    assert f'\nTHIN = "{node.bin}/netplex-thin"\n' in text
    assert (node.bin / "netplex").read_bytes() == node.shim(timeout=42)


def test_thin_install_copies_the_plugin_writes_kubeconfig_and_conflist_and_becomes_ready(node: Node) -> None:
    node.write_primary("10-flannel.conflist", FLANNEL)
    code, logs = node.install("--mode", "thin")
    assert code == 0, logs
    binary = node.bin / "netplex"
    assert binary.read_bytes() == node.plugin.read_bytes()
    assert binary.stat().st_mode & 0o7777 == 0o755
    assert sorted(p.name for p in node.bin.iterdir()) == ["netplex"]
    assert node.generated()["plugins"][0]["delegates"] == [FLANNEL]
    assert node.generated()["plugins"][0]["kubeconfig"] == str(node.kubeconfig)
    assert f"INFO installed {binary} (sha256 " in logs
    assert f"INFO wrote {node.ours} from 10-flannel.conflist (sha256 " in logs
    assert "cniVersion 1.0.0, capabilities portMappings)" in logs
    assert node.ready() == (0, f"ready: {node.ours} delegates to 10-flannel.conflist; the host runs {binary} "
                               f"with Python {HOST_PYTHON}\n")


MODES = {"thick": (), "thick --thin-fallback": ("--thin-fallback",), "thin": ("--mode", "thin")}


def installed(node: Node) -> list[Path]:
    return sorted(p for p in (*node.bin.iterdir(), node.ours, node.kubeconfig) if p.exists())


@pytest.mark.parametrize("mode", list(MODES))
def test_a_second_reconcile_with_nothing_changed_rewrites_nothing(node: Node, mode: str) -> None:
    node.write_primary("10-flannel.conflist", FLANNEL)
    assert node.install(*MODES[mode])[0] == 0
    files = installed(node)
    assert len(files) == {"thick": 3, "thick --thin-fallback": 4, "thin": 3}[mode]
    before = [fingerprint(f) for f in files]
    code, logs = node.install(*MODES[mode])
    assert code == 0
    assert [fingerprint(f) for f in files] == before
    assert "installed" not in logs
    assert "wrote" not in logs


@pytest.mark.parametrize("mode", ["thick", "thin"])
def test_a_different_plugin_on_the_host_is_replaced_by_rename(node: Node, mode: str) -> None:
    node.write_primary("10-flannel.conflist", FLANNEL)
    binary = node.bin / "netplex"
    binary.write_bytes(b"#!/bin/sh\necho old netplex\n")
    old_inode = binary.stat().st_ino
    assert node.install("--mode", mode)[0] == 0
    assert binary.read_bytes() == (node.shim() if mode == "thick" else node.plugin.read_bytes())
    assert binary.stat().st_ino != old_inode  # a running old plugin keeps its inode: no "text file busy"
    assert sorted(p.name for p in node.bin.iterdir()) == (["netplex", "netplex-thin"] if mode == "thick"
                                                          else ["netplex"])


# ------------------------------------------------------------------------ switching modes


def test_thin_to_thick_replaces_the_plugin_with_the_shim_and_takes_the_credentials_off_the_host(node: Node) -> None:
    node.write_primary("10-flannel.conflist", FLANNEL)
    assert node.install("--mode", "thin")[0] == 0
    assert node.kubeconfig.exists()
    code, logs = node.install("--mode", "thick")
    assert code == 0, logs
    assert (node.bin / "netplex").read_bytes() == node.shim()
    assert (node.bin / "netplex-thin").read_bytes() == node.plugin.read_bytes()
    assert "kubeconfig" not in node.generated()["plugins"][0]
    assert not node.kubeconfig.exists()
    assert not node.kubeconfig.parent.exists()
    assert (f"INFO removed {node.kubeconfig}: thick mode keeps API credentials off the host (--thin-fallback keeps "
            "them for ADD without the daemon)") in logs
    # the conflist stops naming the kubeconfig before the kubeconfig goes
    assert logs.index(f"INFO wrote {node.ours}") < logs.index(f"INFO removed {node.kubeconfig}")


def test_thick_to_thin_replaces_the_shim_with_the_plugin_and_removes_netplex_thin(node: Node) -> None:
    node.write_primary("10-flannel.conflist", FLANNEL)
    assert node.install()[0] == 0
    code, logs = node.install("--mode", "thin")
    assert code == 0, logs
    assert sorted(p.name for p in node.bin.iterdir()) == ["netplex"]
    assert (node.bin / "netplex").read_bytes() == node.plugin.read_bytes()
    assert node.generated()["plugins"][0]["kubeconfig"] == str(node.kubeconfig)
    assert node.kubeconfig.exists()
    assert f"INFO removed {node.bin}/netplex-thin: thin mode runs {node.bin}/netplex itself" in logs


def test_dropping_thin_fallback_removes_the_kubeconfig_but_keeps_a_shared_directory(node: Node) -> None:
    node.write_primary("10-flannel.conflist", FLANNEL)
    shared = ["--kubeconfig-dir", str(node.conf)]
    assert node.install("--thin-fallback", *shared)[0] == 0
    assert (node.conf / "netplex.kubeconfig").exists()
    assert node.install(*shared)[0] == 0
    assert sorted(p.name for p in node.conf.iterdir()) == ["00-netplex.conflist", "10-flannel.conflist"]


def test_a_refused_primary_keeps_the_kubeconfig_its_last_good_conflist_names(node: Node) -> None:
    primary = node.write_primary("10-flannel.conflist", FLANNEL)
    assert node.install("--mode", "thin")[0] == 0
    primary.write_text("{")
    assert node.install()[0] == 1
    assert node.generated()["plugins"][0]["kubeconfig"] == str(node.kubeconfig)
    assert node.kubeconfig.exists()


def test_the_primary_is_the_first_config_file_by_name_that_is_not_ours(node: Node) -> None:
    node.ours.write_text("{}")
    (node.conf / "01-directory.conf").mkdir()
    node.write_primary("05-notes.txt", "not a config")
    node.write_primary("20-second.conflist", {**FLANNEL, "name": "second"})
    node.write_primary("10-first.conf", {"cniVersion": "0.3.1", "name": "first", "type": "bridge"})
    node.write_primary("30-third.json", {**FLANNEL, "name": "third"})
    assert node.install()[0] == 0
    assert node.generated()["plugins"][0]["delegates"][0]["name"] == "first"
    assert node.generated()["cniVersion"] == "0.3.1"
    assert json.loads((node.conf / "10-first.conf").read_text())["name"] == "first"  # the primary stays


def test_a_changed_primary_regenerates_the_conflist(node: Node) -> None:
    primary = node.write_primary("10-flannel.conflist", FLANNEL)
    assert node.install()[0] == 0
    bandwidth = {"type": "bandwidth", "capabilities": {"bandwidth": True}}
    changed = {**FLANNEL, "cniVersion": "1.1.0", "plugins": [*FLANNEL["plugins"], bandwidth]}
    primary.write_text(json.dumps(changed))
    code, logs = node.install()
    assert code == 0
    assert node.generated()["cniVersion"] == "1.1.0"
    assert node.generated()["plugins"][0]["capabilities"] == {"bandwidth": True, "portMappings": True}
    assert node.generated()["plugins"][0]["delegates"] == [changed]
    assert "capabilities bandwidth, portMappings)" in logs
    state = json.loads((node.state / "state.json").read_text())
    assert state["primary_sha256"] == hashlib.sha256(primary.read_bytes()).hexdigest()


def test_a_new_primary_that_sorts_first_takes_over(node: Node) -> None:
    node.write_primary("20-flannel.conflist", FLANNEL)
    assert node.install()[0] == 0
    node.write_primary("10-calico.conflist", {**FLANNEL, "name": "k8s-pod-network"})
    assert node.install()[0] == 0
    assert node.generated()["plugins"][0]["delegates"][0]["name"] == "k8s-pod-network"


def test_an_invalid_primary_makes_the_node_not_ready_and_keeps_the_last_good_conflist(node: Node) -> None:
    primary = node.write_primary("10-flannel.conflist", FLANNEL)
    assert node.install()[0] == 0
    good = node.ours.read_bytes()
    primary.write_text('{"cniVersion": "1.0.0", "plugins": [')
    code, logs = node.install()
    reason = ("primary CNI config 10-flannel.conflist is not valid JSON (line 1 column 37: Expecting value); "
              "fix the file, netplex waits for a valid primary")
    assert code == 1
    assert f"ERROR not ready: {reason}" in logs
    assert node.ready() == (1, f"not ready: {reason}\n")
    assert node.ours.read_bytes() == good


def test_without_a_primary_the_node_waits_and_no_netplex_config_is_left(node: Node) -> None:
    primary = node.write_primary("10-flannel.conflist", FLANNEL)
    assert node.install()[0] == 0
    primary.unlink()
    code, logs = node.install()
    reason = (f"no primary CNI config in {node.conf} yet (no .conf, .conflist or .json file other than "
              "00-netplex.conflist); waiting for the node's network plugin to write one")
    assert code == 1
    assert not node.ours.exists()
    assert f"removed {node.ours}: there is no primary CNI config any more" in logs
    assert node.ready() == (1, f"not ready: {reason}\n")


def test_a_primary_that_sorts_before_ours_is_reported(node: Node) -> None:
    node.write_primary("00-multus.conf", {"cniVersion": "1.0.0", "name": "multus", "type": "multus"})
    code, _ = node.install()
    assert code == 1
    assert node.ready()[1].startswith("not ready: 00-multus.conf sorts before 00-netplex.conflist")
    assert node.ours.exists()  # written anyway: it takes over once the other file is gone


def test_ready_before_any_reconcile_says_so(node: Node) -> None:
    assert node.ready() == (1, f"not ready: no reconcile has finished yet ({node.state}/state.json does not exist)\n")


def test_a_missing_plugin_file_is_reported_with_how_it_is_built(node: Node) -> None:
    node.plugin = node.base / "no-such-zipapp"
    code, _ = node.install()
    assert code == 1
    assert node.ready() == (1, f"not ready: cannot read the plugin to install, {node.plugin} (No such file or "
                               "directory); the image builds it with `python -m plugin.node.pack --output "
                               "/usr/local/lib/netplex/netplex` (or pass --plugin)\n")


# ------------------------------------------------------------------------ the host cannot run it


@pytest.mark.parametrize(("mode", "checked"), [("thick", "netplex-thin"), ("thin", "netplex")])
def test_a_host_without_python_gets_no_netplex_config_and_is_not_ready(node: Node, tmp_path: Path, mode: str,
                                                                       checked: str) -> None:
    """Thick mode checks netplex-thin first: it is what finds the host's python3 for the
    shim, and what the shim falls back to; no shim is written for a host without one."""
    host = tmp_path / "host-without-python"
    conf = host / "etc/cni/net.d"
    conf.mkdir(parents=True)
    (conf / "10-flannel.conflist").write_text(json.dumps(FLANNEL))
    (conf / "00-netplex.conflist").write_text("{}")  # from when the host still had Python
    err = io.StringIO()
    code = install.main(["run", "--once", "--host-root", str(host), "--plugin", str(node.plugin),
                         "--state-dir", str(node.state), "--service-account-dir", str(node.sa), "--mode", mode],
                        environ=API_ENV, stdout=io.StringIO(), stderr=err)
    assert code == 1
    assert [p.name for p in (host / "opt/cni/bin").iterdir()] == [checked]
    assert (host / "opt/cni/bin" / checked).read_bytes() == node.plugin.read_bytes()
    assert not (conf / "00-netplex.conflist").exists()
    assert not (conf / "netplex.d").exists()
    ready_code, said = node.ready()
    assert ready_code == 1
    assert said.startswith(f"not ready: the host cannot run the netplex plugin /opt/cni/bin/{checked}: `chroot {host} "
                           "/usr/bin/env python3 -c ")
    assert "failed (exit status 127: " in said
    assert "'/usr/bin/env': No such file or directory); install python3 >= 3.11 on the node" in said
    errors = [line for line in err.getvalue().splitlines() if " ERROR " in line]
    assert len(errors) == 1
    assert errors[0].endswith(f" ERROR {said.removesuffix(chr(10))}")


def test_probe_on_a_host_that_can_run_it_reports_the_versions(node: Node) -> None:
    node.bin.joinpath("netplex").write_bytes(node.plugin.read_bytes())
    node.bin.joinpath("netplex").chmod(0o755)
    check = install.host_probe()("/", str(node.bin / "netplex"))
    assert check.ok, check.reason
    assert check.supported_versions == VERSIONS
    assert (check.python, check.executable) == (HOST_PYTHON, HOST_PYTHON_PATH)
    assert os.path.isabs(check.executable) and os.access(check.executable, os.X_OK)


# ------------------------------------------------------------------------ kubeconfig (thin mode, --thin-fallback)


def test_kubeconfig_holds_token_and_ca_inline_with_mode_0600(node: Node) -> None:
    node.write_primary("10-flannel.conflist", FLANNEL)
    assert node.install("--mode", "thin",
                        environ={"KUBERNETES_SERVICE_HOST": "fd00:10:96::1", "KUBERNETES_SERVICE_PORT": "443"})[0] == 0
    assert node.kubeconfig.stat().st_mode & 0o7777 == 0o600
    connection = kubeconfig.from_kubeconfig(str(node.kubeconfig))
    assert connection.server == "https://[fd00:10:96::1]:443"
    assert connection.token == (node.sa / "token").read_text()
    assert connection.ca_data == CA


@pytest.mark.parametrize("mode", ["thin", "thick --thin-fallback"])
def test_a_rotated_token_rewrites_the_kubeconfig(node: Node, mode: str) -> None:
    node.write_primary("10-flannel.conflist", FLANNEL)
    assert node.install(*MODES[mode])[0] == 0
    conflist = fingerprint(node.ours)
    rotated = jwt(time.time() + 7200)
    node.set_token(rotated)
    code, logs = node.install(*MODES[mode])
    assert code == 0
    assert kubeconfig.from_kubeconfig(str(node.kubeconfig)).token == rotated
    assert f"wrote {node.kubeconfig} (service account token sha256 " in logs
    assert fingerprint(node.ours) == conflist


def test_missing_service_account_is_not_ready_with_the_fix(node: Node) -> None:
    node.write_primary("10-flannel.conflist", FLANNEL)
    (node.sa / "token").unlink()
    assert node.install("--mode", "thin")[0] == 1
    assert node.ready() == (1, f"not ready: cannot read the service account from {node.sa}/token (No such file or "
                               "directory); the installer pod needs its service account token mounted "
                               "(automountServiceAccountToken: true)\n")
    assert not node.ours.exists()


def test_missing_api_server_environment_is_not_ready_with_the_fix(node: Node) -> None:
    node.write_primary("10-flannel.conflist", FLANNEL)
    assert node.install("--thin-fallback", environ={"KUBERNETES_SERVICE_HOST": "10.96.0.1"})[0] == 1
    assert node.ready() == (1, 'not ready: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must both be set '
                               '(got host "10.96.0.1", port ""); kubelet sets them in a pod, or set them to an '
                               "API server address that the node can reach\n")


def test_a_token_near_expiry_is_warned_about_once_per_token(node: Node, caplog: pytest.LogCaptureFixture) -> None:
    node.write_primary("10-flannel.conflist", FLANNEL)
    node.set_token(jwt(1_000_100))
    opts = install.Options(host_root="/", bin_dir=str(node.bin), conf_dir=str(node.conf),
                           kubeconfig_dir=str(node.conf / "netplex.d"), plugin=str(node.plugin),
                           state_dir=str(node.state), service_account_dir=str(node.sa), interval=0.01,
                           mode=install.THIN)
    stop = threading.Event()
    ticks = iter([1_000_000.0, 1_000_010.0, 1_000_020.0])

    def clock() -> float:
        now = next(ticks)
        if now == 1_000_020.0:
            stop.set()
        return now

    caplog.set_level(logging.INFO, logger="netplex.install")
    assert install.run(opts, API_ENV, stop, fake_probe, clock=clock) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["the service account token expires in 100s and has not been rotated (warning margin 300s); "
                        "kubelet normally replaces a projected token at 80% of its life: check the kubelet on this "
                        "node and the DaemonSet's token volume, or the plugin's API calls will fail with "
                        "Unauthorized"]
    assert [r.getMessage() for r in caplog.records].count(
        f"ready: {node.ours} delegates to 10-flannel.conflist; the host runs {node.bin}/netplex with Python 3.11.2"
    ) == 1  # readiness is logged when it changes, not every interval


def fake_probe(host_root: str, binary: str) -> HostCheck:
    """The verdict of a host that runs the plugin, for tests about files rather than the host."""
    return HostCheck(True, supported_versions=VERSIONS, python="3.11.2", executable="/usr/bin/python3")


# ------------------------------------------------------------------------ paths under a host root


def test_thin_files_land_under_the_host_root_and_name_host_paths(tmp_path: Path, node: Node) -> None:
    host = tmp_path / "host"
    (host / "etc/cni/net.d").mkdir(parents=True)
    (host / "etc/cni/net.d/10-flannel.conflist").write_text(json.dumps(FLANNEL))
    opts = install.Options(host_root=str(host), plugin=str(node.plugin), state_dir=str(node.state),
                           service_account_dir=str(node.sa), mode=install.THIN)
    outcome = install.reconcile(opts, API_ENV, time.time(), fake_probe)
    assert outcome.ready, outcome.reason
    assert (host / "opt/cni/bin/netplex").stat().st_mode & 0o7777 == 0o755
    generated = json.loads((host / "etc/cni/net.d/00-netplex.conflist").read_text())
    assert generated["plugins"][0]["kubeconfig"] == "/etc/cni/net.d/netplex.d/netplex.kubeconfig"
    assert (host / "etc/cni/net.d/netplex.d/netplex.kubeconfig").stat().st_mode & 0o7777 == 0o600
    assert outcome.reason == ("/etc/cni/net.d/00-netplex.conflist delegates to 10-flannel.conflist; the host runs "
                              "/opt/cni/bin/netplex with Python 3.11.2")


def test_thick_files_land_under_the_host_root_and_the_shim_names_host_paths(tmp_path: Path, node: Node) -> None:
    host = tmp_path / "host"
    (host / "etc/cni/net.d").mkdir(parents=True)
    (host / "etc/cni/net.d/10-flannel.conflist").write_text(json.dumps(FLANNEL))
    probed: list[str] = []

    def probe(host_root: str, binary: str) -> HostCheck:
        probed.append(binary)
        return fake_probe(host_root, binary)

    opts = install.Options(host_root=str(host), plugin=str(node.plugin), state_dir=str(node.state))
    outcome = install.reconcile(opts, {}, time.time(), probe)
    assert outcome.ready, outcome.reason
    assert probed == ["/opt/cni/bin/netplex-thin", "/opt/cni/bin/netplex"]
    assert (host / "opt/cni/bin/netplex-thin").read_bytes() == node.plugin.read_bytes()
    assert (host / "opt/cni/bin/netplex").read_text() == wire.render_shim(
        socket_path="/run/netplex/netplex.sock", thin="/opt/cni/bin/netplex-thin", timeout=300.0,
        python="/usr/bin/python3")
    assert not (host / "etc/cni/net.d/netplex.d").exists()
    assert outcome.reason == ("/etc/cni/net.d/00-netplex.conflist delegates to 10-flannel.conflist; the host runs "
                              "/opt/cni/bin/netplex, the shim to netplex-node at /run/netplex/netplex.sock that falls "
                              "back to /opt/cni/bin/netplex-thin for DEL, CHECK, GC, STATUS and VERSION, with Python "
                              "3.11.2 (/usr/bin/python3)")


@pytest.mark.parametrize(("executable", "reason"), [
    ("", 'the host\'s python3 did not report its absolute path (got ""); the shim /opt/cni/bin/netplex needs it for '
         "its #! line: install python3 as a regular file on the host's PATH"),
    ("python3", 'the host\'s python3 did not report its absolute path (got "python3"); the shim /opt/cni/bin/netplex '
                "needs it for its #! line: install python3 as a regular file on the host's PATH"),
    ("/opt/my python/bin/python3", "cannot write the shim /opt/cni/bin/netplex: shim python path must be absolute, "
                                   "without quotes, backslashes, spaces or newlines (got '/opt/my python/bin/python3')"),
])
def test_a_host_python_the_shim_cannot_name_keeps_netplex_off_the_node(tmp_path: Path, node: Node, executable: str,
                                                                      reason: str) -> None:
    host = tmp_path / "host"
    (host / "etc/cni/net.d").mkdir(parents=True)
    (host / "etc/cni/net.d/10-flannel.conflist").write_text(json.dumps(FLANNEL))
    (host / "etc/cni/net.d/00-netplex.conflist").write_text("{}")

    def probe(host_root: str, binary: str) -> HostCheck:
        return HostCheck(True, supported_versions=VERSIONS, python="3.11.2", executable=executable)

    opts = install.Options(host_root=str(host), plugin=str(node.plugin), state_dir=str(node.state))
    outcome = install.reconcile(opts, {}, time.time(), probe)
    assert (outcome.ready, outcome.reason) == (False, reason)
    assert not (host / "opt/cni/bin/netplex").exists()
    assert not (host / "etc/cni/net.d/00-netplex.conflist").exists()


def test_our_conflist_is_no_more_readable_than_the_primary(tmp_path: Path, node: Node) -> None:
    primary = node.write_primary("10-flannel.conflist", FLANNEL)
    primary.chmod(0o600)
    opts = install.options_from(install.build_parser().parse_args(["run", *node.flags()]), {})
    assert isinstance(opts, install.Options)
    assert install.reconcile(opts, API_ENV, time.time(), fake_probe).ready
    assert node.ours.stat().st_mode & 0o7777 == 0o600


# ------------------------------------------------------------------------ the generated conflist works


class VerbsSeen(daemon.Hooks):
    """The verbs the daemon served: proof that a call went through it, not the fallback."""

    def __init__(self) -> None:
        self.verbs: list[str] = []

    def request_started(self, verb: str) -> None:
        self.verbs.append(verb)


@pytest.mark.parametrize("mode", ["thick, daemon down", "thick, daemon up", "thin"])
def test_the_installed_plugin_runs_the_generated_conflist(node: Node, fake_plugins: FakePlugins, mode: str) -> None:
    """VERSION and STATUS as the runtime sends them: the plugin entry of our conflist with the
    list's cniVersion and name injected; STATUS reaches the primary (the cluster network).
    In thick mode the installer's own host check (VERSION through the shim) passes whether
    the daemon is up (it answers) or not yet (netplex-thin answers in the shim's process)."""
    primary = fake_conflist({"type": "fake-a", "capabilities": {"portMappings": True}}, version="1.1.0",
                            name="primary-net")
    node.write_primary("10-primary.conflist", primary)
    seen = VerbsSeen()
    with contextlib.ExitStack() as stack:
        if mode == "thick, daemon up":
            stack.enter_context(InProcessDaemon(node.socket, kubeconfig=None, base_environ={"PATH": HOST_PATH},
                                                hooks=seen))
        code, logs = node.install("--mode", mode.partition(",")[0])
        assert code == 0, logs
        run_generated_conflist(node, fake_plugins)
    assert seen.verbs == (["VERSION", "VERSION", "STATUS"] if mode == "thick, daemon up" else [])


def run_generated_conflist(node: Node, fake_plugins: FakePlugins) -> None:
    document = node.generated()
    stdin = json.dumps({**document["plugins"][0], "cniVersion": document["cniVersion"], "name": document["name"]})
    environ = {"PATH": HOST_PATH, "CNI_PATH": fake_plugins.dir}

    def runtime(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(node.bin / "netplex")], input=stdin, env={**environ, "CNI_COMMAND": command},
                              capture_output=True, text=True, check=False, cwd=node.base)

    version = runtime("VERSION")
    assert version.returncode == 0, version.stderr
    assert json.loads(version.stdout)["supportedVersions"] == list(VERSIONS)
    status = runtime("STATUS")
    assert (status.returncode, status.stdout) == (0, ""), status.stdout + status.stderr
    calls = fake_plugins.calls()
    assert [(c["plugin"], c["command"]) for c in calls] == [("fake-a", "STATUS")]
    assert calls[0]["request"]["name"] == "primary-net"


# ------------------------------------------------------------------------ uninstall and exit


@pytest.mark.parametrize(("installed_as", "uninstalled_as"), [
    ("thick --thin-fallback", "thick"), ("thick --thin-fallback", "thin"), ("thin", "thick")])
def test_uninstall_removes_the_files_of_either_mode_and_keeps_the_primary(node: Node, installed_as: str,
                                                                         uninstalled_as: str) -> None:
    primary = node.write_primary("10-flannel.conflist", FLANNEL)
    assert node.install(*MODES[installed_as])[0] == 0
    err = io.StringIO()
    assert install.main(["uninstall", *node.flags(), "--mode", uninstalled_as], environ={}, stdout=io.StringIO(),
                        stderr=err) == 0
    assert sorted(p.name for p in node.conf.iterdir()) == ["10-flannel.conflist"]
    assert list(node.bin.iterdir()) == []
    assert json.loads(primary.read_text()) == FLANNEL
    assert f"INFO removed {node.ours}" in err.getvalue()
    assert node.ready() == (1, "not ready: netplex was uninstalled from this node\n")


def test_uninstall_keeps_a_shared_kubeconfig_directory(node: Node) -> None:
    node.write_primary("10-flannel.conflist", FLANNEL)
    assert node.install("--mode", "thin", "--kubeconfig-dir", str(node.conf))[0] == 0
    assert (node.conf / "netplex.kubeconfig").exists()
    assert install.main(["uninstall", *node.flags(), "--kubeconfig-dir", str(node.conf)], environ={},
                        stdout=io.StringIO(), stderr=io.StringIO()) == 0
    assert sorted(p.name for p in node.conf.iterdir()) == ["10-flannel.conflist"]


def test_uninstall_of_a_clean_node_succeeds(node: Node) -> None:
    assert install.main(["uninstall", *node.flags()], environ={}, stdout=io.StringIO(), stderr=io.StringIO()) == 0


@pytest.fixture
def running(node: Node) -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("cleanup", [True, False])
def test_sigterm_stops_run_with_status_0_and_cleans_up_only_when_asked(
    node: Node, running: list[subprocess.Popen[str]], cleanup: bool
) -> None:
    node.write_primary("10-flannel.conflist", FLANNEL)
    environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **API_ENV,
               "NETPLEX_CLEANUP_ON_EXIT": "true" if cleanup else "false"}
    proc = subprocess.Popen([sys.executable, "-m", "plugin.node.install", "run", *node.flags(), "--interval", "0.2"],
                            cwd=REPO, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    running.append(proc)
    deadline = time.monotonic() + 30
    while node.ready()[0] != 0:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "netplex-install run did not become ready"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert node.ours.exists() is not cleanup
    assert (node.bin / "netplex").exists() is not cleanup
    assert (node.bin / "netplex-thin").exists() is not cleanup
    assert not node.kubeconfig.exists()  # thick mode, the default: never written
    if cleanup:
        assert "INFO stopping: uninstalling netplex from this node (cleanup on exit)" in err
    else:
        assert "INFO stopping; netplex stays installed on this node" in err


# ------------------------------------------------------------------------ command line


def test_relative_host_directories_are_a_usage_error(node: Node, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        install.main(["run", "--cni-bin-dir", "opt/cni/bin"], environ={})
    assert exited.value.code == 2
    assert "error: --cni-bin-dir must be an absolute host path (got 'opt/cni/bin')" in capsys.readouterr().err


def test_cleanup_environment_value_must_be_a_boolean(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        install.main(["run"], environ={"NETPLEX_CLEANUP_ON_EXIT": "maybe"})
    assert "error: NETPLEX_CLEANUP_ON_EXIT must be true or false (got 'maybe')" in capsys.readouterr().err


def test_flag_and_environment_both_turn_cleanup_on() -> None:
    parser = install.build_parser()
    by_flag = install.options_from(parser.parse_args(["run", "--cleanup-on-exit"]), {})
    by_env = install.options_from(parser.parse_args(["run"]), {"NETPLEX_CLEANUP_ON_EXIT": "True"})
    default = install.options_from(parser.parse_args(["run"]), {})
    assert [getattr(o, "cleanup_on_exit", None) for o in (by_flag, by_env, default)] == [True, True, False]


def test_defaults_are_the_daemonset_contract() -> None:
    opts = install.options_from(install.build_parser().parse_args(["run"]), {})
    assert opts == install.Options(host_root="/host", bin_dir="/opt/cni/bin", conf_dir="/etc/cni/net.d",
                                   kubeconfig_dir="/etc/cni/net.d/netplex.d", plugin="/usr/local/lib/netplex/netplex",
                                   state_dir="/run/netplex",
                                   service_account_dir="/var/run/secrets/kubernetes.io/serviceaccount",
                                   interval=10.0, mode="thick", socket="/run/netplex/netplex.sock",
                                   shim_timeout=300.0, thin_fallback=False)
    assert opts.binary == "/opt/cni/bin/netplex"
    assert opts.thin_binary == "/opt/cni/bin/netplex-thin"  # the shim's default THIN
    assert opts.socket == daemon.DEFAULT_SOCKET  # where netplex-node listens unless told otherwise


@pytest.mark.parametrize(("argv", "message"), [
    (["--mode", "thin", "--thin-fallback"],
     "error: --thin-fallback applies to --mode thick only (got --mode thin, which always writes the kubeconfig)"),
    (["--socket", "run/netplex.sock"], "error: --socket must be an absolute host path (got 'run/netplex.sock')"),
    (["--socket", "/run/net plex.sock"],
     "error: --socket must not contain spaces, quotes, backslashes or control characters (got '/run/net plex.sock'); "
     "the shim holds it as a literal"),
    (["--cni-bin-dir", '/opt/cni/"bin"'],
     "error: --cni-bin-dir must not contain spaces, quotes, backslashes or control characters (got "
     "'/opt/cni/\"bin\"'); the shim holds it as a literal"),
    (["--shim-timeout", "0"], "error: argument --shim-timeout: must be more than 0 seconds (got '0')"),
    (["--shim-timeout", "soon"], "error: argument --shim-timeout: must be a number of seconds (got 'soon')"),
    (["--shim-timeout", "3601"],
     "error: argument --shim-timeout: must be at most 3600 seconds (got '3601'); the shim only needs to outlast "
     "the slowest ADD"),
    (["--mode", "thicker"], "error: argument --mode: invalid choice: 'thicker' (choose from 'thick', 'thin')"),
])
def test_bad_mode_flags_are_usage_errors_that_say_what_is_accepted(argv: list[str], message: str,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        install.main(["run", *argv], environ={})
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_thin_mode_does_not_restrict_paths_to_what_the_shim_can_hold() -> None:
    args = install.build_parser().parse_args(["run", "--mode", "thin", "--cni-bin-dir", "/opt/cni bin"])
    opts = install.options_from(args, {})
    assert isinstance(opts, install.Options) and opts.binary == "/opt/cni bin/netplex"


def test_the_shim_timeout_limit_is_the_shims_own() -> None:
    wire.render_shim(socket_path="/s", thin="/t", timeout=install.MAX_SHIM_TIMEOUT, python="/p")
    with pytest.raises(ValueError, match="between 0 and 3600 seconds"):
        wire.render_shim(socket_path="/s", thin="/t", timeout=install.MAX_SHIM_TIMEOUT + 1, python="/p")


def test_minimum_python_is_the_projects_requires_python() -> None:
    import tomllib

    from plugin.node.host import MIN_PYTHON

    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=" + ".".join(map(str, MIN_PYTHON))
