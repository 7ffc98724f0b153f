"""The daemon imports at start-up what its requests need: the first pod on a node must not
pay the thin plugin's deferred imports (issue 10: "kept warm: imports done once")."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from plugin.node import daemon
from tests.k8sapi import FakeApiServer, make_pod
from tests.node.test_daemon import cni_env
from tests.plugin import thick
from tests.plugin.netns_fixtures import (  # noqa: F401  (fixtures are found by name)
    Netns,
    host_environ,
    host_link_names_fixture,
    make_netns_fixture,
    requires_netns,
)
from tests.plugin.test_e2e import BRIDGE_NET, addresses, bridge_nad, cluster_conf
from tests.plugin.test_main import api_fixture  # noqa: F401

pytestmark = [requires_netns, pytest.mark.netns]


def imports_after(marker: str, stderr: str) -> list[str]:
    """Modules whose ``-X importtime`` line comes after the log line containing ``marker``."""
    lines = stderr.splitlines()
    start = next(i for i, line in enumerate(lines) if marker in line)
    return [line.rsplit("|", 1)[1].strip() for line in lines[start:] if line.startswith("import time:")]


def test_the_first_add_and_del_import_nothing(tmp_path: Path, api: FakeApiServer,
                                              make_netns: Callable[[], Netns],
                                              host_link_names: Callable[[str], str]) -> None:
    data = tmp_path / "ipam"
    api.create(bridge_nad("warm-net", host_link_names("npw"), BRIDGE_NET, data))
    api.create(make_pod("web", annotations={"k8s.v1.cni.cncf.io/networks": "warm-net"}))
    sock = tmp_path / "run" / "netplex.sock"
    shim = thick.write_shim(tmp_path / "bin", sock)
    conf = json.dumps({"cniVersion": "1.0.0", "name": "netplex", "type": "netplex", "cniDir": str(tmp_path / "cni"),
                       "delegates": [cluster_conf(host_link_names("npc"), data)]}).encode()
    log = tmp_path / "daemon.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-X", "importtime", "-m", "plugin.node.daemon", "run", "--socket", str(sock),
             "--metrics-address", "", "--kubeconfig", str(api.kubeconfig(tmp_path / "kubeconfig"))],
            env={**host_environ(), "PYTHONPATH": str(thick.REPO)}, cwd=thick.REPO, stderr=err,
            stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while daemon.probe(str(sock), 1.0) != 0:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        ns = make_netns()
        env = cni_env("ADD", container_id="c-warm", netns=ns.path)
        added = thick.run_shim(shim, env, conf)
        assert added.returncode == 0, added.stdout
        assert sorted(addresses(ns)) == ["eth0", "lo", "net1"]
        deleted = thick.run_shim(shim, {**env, "CNI_COMMAND": "DEL"}, conf)
        assert deleted.returncode == 0, deleted.stdout
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = log.read_text()
    assert "netplex-node serving" in stderr
    before = stderr[:stderr.index("netplex-node serving")]
    assert "| plugin.cni.resolve\n" in before  # lazy in the thin plugin; here imported before serving
    assert imports_after("netplex-node serving", stderr) == []
