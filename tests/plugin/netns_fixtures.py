"""Fixtures for the runtime tests: network namespaces, veth pairs, host-side names, and
recording fake plugins.

Real CNI plugins run in the host network namespace (CNI-22), so what they create there
(a bridge, the host end of a veth, a macvlan master) gets a unique ``np…`` name and is
deleted after the test. Containers are namespaces made with ``ip netns add np-<random>``.
Nothing else on the host is touched: no addresses on host interfaces, no iptables rules
(the portmap test runs its whole "node" inside a namespace of its own).

A test module imports the ``*_fixture`` functions it uses; pytest finds them in the
module's globals under their fixture names (``netns``, ``fake_plugins``, ...), so the
test parameters do not shadow the imports.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CNI_BIN = "/usr/lib/cni"


def _netns_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    for tool in ("ip", "nsenter"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not os.access(os.path.join(CNI_BIN, "bridge"), os.X_OK):
        return f"the CNI reference plugins are not installed in {CNI_BIN}"
    return None


NETNS_UNAVAILABLE = _netns_unavailable()

requires_netns = pytest.mark.skipif(NETNS_UNAVAILABLE is not None, reason=NETNS_UNAVAILABLE or "")
"""Mark for tests that run real plugins in real namespaces (use with ``pytest.mark.netns``)."""


def unique(prefix: str) -> str:
    """A name nobody else uses; at most 15 characters for interface names."""
    return f"{prefix}{secrets.token_hex(3)}"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def host_environ() -> dict[str, str]:
    """What a runtime would pass: a PATH (portmap runs iptables) and nothing CNI-ish."""
    return {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}


@dataclass(frozen=True)
class Netns:
    name: str

    @property
    def path(self) -> str:
        return f"/run/netns/{self.name}"


@pytest.fixture(name="make_netns")
def make_netns_fixture() -> Iterator[Callable[[], Netns]]:
    """A factory of fresh namespaces, all deleted at the end of the test."""
    made: list[Netns] = []

    def make() -> Netns:
        ns = Netns(unique("np-"))
        ip("netns", "add", ns.name)
        made.append(ns)
        return ns

    yield make
    for ns in made:
        ip("netns", "del", ns.name, check=False)


@pytest.fixture(name="netns")
def netns_fixture(make_netns: Callable[[], Netns]) -> Netns:
    """One fresh, empty network namespace (only ``lo``, down)."""
    return make_netns()


@pytest.fixture(name="host_link_names")
def host_link_names_fixture() -> Iterator[Callable[[str], str]]:
    """Unique names for links that plugins create in the host namespace (a bridge);
    whatever exists under them at the end is deleted."""
    names: list[str] = []

    def name(prefix: str) -> str:
        names.append(unique(prefix))
        return names[-1]

    yield name
    for n in names:
        ip("link", "del", n, check=False)


@pytest.fixture(name="veth_master")
def veth_master_fixture() -> Iterator[str]:
    """One end of a veth pair in the host namespace, up: a macvlan master (the kernel
    here has no dummy link type)."""
    base = unique("npv")
    ip("link", "add", f"{base}a", "type", "veth", "peer", "name", f"{base}b")
    try:
        ip("link", "set", f"{base}a", "up")
        ip("link", "set", f"{base}b", "up")
        yield f"{base}a"
    finally:
        ip("link", "del", f"{base}a", check=False)


# --------------------------------------------------------------- recording fake plugins

FAKE_PLUGIN = '''\
#!{python} -S
"""A CNI plugin that records what it was given and does what its config's "fake" says."""
import json, os, subprocess, sys, time

raw = sys.stdin.buffer.read()
name = os.path.basename(sys.argv[0])
command = os.environ.get("CNI_COMMAND", "")
with open({record!r}, "a") as f:
    f.write(json.dumps({{"plugin": name, "argv0": sys.argv[0], "command": command,
                        "env": {{k: v for k, v in os.environ.items() if k.startswith("CNI_")}},
                        "stdin": raw.decode("utf-8", "replace")}}) + "\\n")
try:
    conf = json.loads(raw)
except ValueError:
    conf = {{}}
act = ((conf.get("fake") or {{}}).get(name) or {{}}).get(command) or {{}}
if "spawn" in act:
    child = subprocess.Popen(act["spawn"])
    with open({record!r} + ".children", "a") as f:
        f.write(f"{{child.pid}}\\n")
if "stderr" in act:
    sys.stderr.write(act["stderr"])
    sys.stderr.flush()
if "sleep" in act:
    time.sleep(act["sleep"])
if "signal" in act:
    os.kill(os.getpid(), act["signal"])
if "stdout" in act:
    sys.stdout.write(act["stdout"])
    sys.exit(act.get("exit", 0))
if "error" in act:
    sys.stdout.write(json.dumps(act["error"]))
    sys.exit(act.get("exit", 1))
if act.get("exit"):
    sys.exit(act["exit"])
if command == "ADD":
    prev = conf.get("prevResult") or {{}}
    result = {{"cniVersion": conf.get("cniVersion"), **{{k: v for k, v in prev.items() if k != "cniVersion"}}}}
    if "result" in act:
        result = act["result"]
    else:
        result["interfaces"] = [*prev.get("interfaces", []),
                                {{"name": name + "-" + os.environ.get("CNI_IFNAME", ""), "sandbox": os.environ.get("CNI_NETNS", "")}}]
        result.setdefault("ips", [])
    print(json.dumps(result))
elif command == "VERSION":
    print(json.dumps({{"cniVersion": "1.1.0", "supportedVersions": act.get("versions",
                      ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])}}))
'''


@dataclass
class FakePlugins:
    """A directory of recording plugins: ``fake-a`` is a script, the others link to it."""

    dir: str
    record: Path

    def calls(self) -> list[dict[str, Any]]:
        """Every invocation so far, oldest first, with ``stdin`` decoded when it is JSON."""
        if not self.record.exists():
            return []
        out = []
        for line in self.record.read_text().splitlines():
            call = json.loads(line)
            try:
                call["request"] = json.loads(call["stdin"])
            except ValueError:
                call["request"] = None
            out.append(call)
        return out

    def children(self) -> list[int]:
        path = Path(f"{self.record}.children")
        return [int(x) for x in path.read_text().split()] if path.exists() else []


@pytest.fixture(name="fake_plugins")
def fake_plugins_fixture(tmp_path: Path) -> FakePlugins:
    """``fake-a``, ``fake-b``, ``fake-c`` (same script; behaviour keyed by name and verb in
    the config's ``fake`` key, which the runtime must pass through untouched)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "calls.jsonl"
    script = bin_dir / "fake-a"
    script.write_text(FAKE_PLUGIN.format(python=sys.executable, record=str(record)))
    script.chmod(0o755)
    for other in ("fake-b", "fake-c"):
        (bin_dir / other).symlink_to("fake-a")
    return FakePlugins(str(bin_dir), record)


def fake_conflist(*plugins: dict[str, Any], version: str = "1.0.0", name: str = "fakenet",
                  behaviour: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
    """A conflist of fake plugins; ``behaviour`` goes into every plugin's ``fake`` key."""
    out: dict[str, Any] = {"cniVersion": version, "name": name, **top, "plugins": []}
    for plugin in plugins:
        entry = dict(plugin)
        if behaviour is not None:
            entry["fake"] = behaviour
        out["plugins"].append(entry)
    return out
