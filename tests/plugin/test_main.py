"""The ``netplex`` executable end to end, through ``plugin.cni.main.main``: the CNI protocol
toward the runtime (codes and messages), the order of events of every verb, the cache,
locks, the API (the in-repo test double over real HTTPS) and what each delegate gets.

The delegates here are the recording fake plugins (``netns_fixtures``), so every test
can see exactly what was executed, with what; ``test_e2e.py`` runs the same verbs with
the real reference plugins in real network namespaces.
"""

from __future__ import annotations

import ast
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from plugin.cni import cache, commands, main, protocol
from tests.k8sapi import FakeApiServer, make_nad, make_namespace, make_pod
from tests.plugin.netns_fixtures import (  # noqa: F401  (fixtures are found by name)
    FakePlugins,
    fake_conflist,
    fake_plugins_fixture,
    host_environ,
)

REPO = Path(__file__).resolve().parents[2]
NETWORKS = "k8s.v1.cni.cncf.io/networks"
STATUS = "k8s.v1.cni.cncf.io/network-status"
RESOURCE = "k8s.v1.cni.cncf.io/resourceName"
POD_ARGS = "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=cid1"
NETNS = "/run/netns/not-a-real-one"  # fakes do not care; DEL sees it is gone


# ------------------------------------------------------------------------- harness


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)

    @property
    def error(self) -> dict[str, Any]:
        assert self.code != 0, f"expected a failure, got {self.stdout}"
        data: dict[str, Any] = json.loads(self.stdout)
        return data


class _NoRead(io.BytesIO):
    def read(self, *args: Any) -> bytes:
        raise AssertionError("stdin must not be read")


@dataclass
class Plugin:
    """Runs ``plugin.cni.main.main`` in this process, as a runtime would run the executable."""

    tmp: Path
    bin_dir: str
    env_kw: dict[str, Any] = field(default_factory=dict)

    @property
    def cni_dir(self) -> Path:
        return self.tmp / "cni"

    @property
    def devinfo(self) -> Path:
        return self.tmp / "devinfo"

    def config(self, *delegates: Mapping[str, Any], version: str = "1.0.0", **keys: Any) -> dict[str, Any]:
        conf: dict[str, Any] = {"cniVersion": version, "name": "netplex-net", "type": "netplex",
                                "cniDir": str(self.cni_dir), "binDir": self.bin_dir, "logLevel": "verbose"}
        if delegates:
            conf["delegates"] = list(delegates)
        conf.update(keys)
        return conf

    def environment(self, environ: Mapping[str, str]) -> commands.Environment:
        kw: dict[str, Any] = {"pod_attempts": 2, "pod_delay": 0.01, "lock_timeout": 5.0,
                              "readiness_timeout": 0.2, "device_info_dir": str(self.devinfo)}
        kw.update(self.env_kw)
        return commands.Environment(environ, **kw)

    def run(self, command: str, config: Mapping[str, Any] | bytes | None, *, container_id: str = "cid1",
            ifname: str = "eth0", netns: str = NETNS, args: str | None = POD_ARGS,
            env: Mapping[str, str] | None = None, stdin: Any = None) -> Outcome:
        environ = {**host_environ(), "CNI_COMMAND": command, "CNI_CONTAINERID": container_id,
                   "CNI_NETNS": netns, "CNI_IFNAME": ifname, "CNI_PATH": self.bin_dir}
        if args is not None:
            environ["CNI_ARGS"] = args
        environ.update(env or {})
        environ = {k: v for k, v in environ.items() if v is not None}
        if stdin is None:
            raw = config if isinstance(config, bytes) else json.dumps(config).encode()
            stdin = io.BytesIO(raw)
        out, err = io.StringIO(), io.StringIO()
        code = main.main(environ, stdin, out, err, env_factory=self.environment)
        return Outcome(code, out.getvalue(), err.getvalue())


@pytest.fixture
def plugin(tmp_path: Path, fake_plugins: FakePlugins) -> Plugin:
    return Plugin(tmp_path, fake_plugins.dir)


@pytest.fixture(name="api")
def api_fixture() -> Iterator[FakeApiServer]:
    with FakeApiServer(tls=True) as server:
        server.create(make_namespace("blue"))
        yield server


def cluster(name: str = "cluster-net", version: str = "1.0.0", **behaviour: Any) -> dict[str, Any]:
    return fake_conflist({"type": "fake-a"}, name=name, version=version, behaviour=behaviour or None)


def fake_nad(name: str, namespace: str = "default", *, plugin_type: str = "fake-b",
             annotations: dict[str, str] | None = None, **plugin_keys: Any) -> dict[str, Any]:
    config = {"cniVersion": "1.0.0", "type": plugin_type, **plugin_keys}
    return make_nad(name, namespace, config=config, annotations=annotations)


def uid(obj: Mapping[str, Any]) -> str:
    return str(obj["metadata"]["uid"])


def calls(fake: FakePlugins, command: str | None = None) -> list[dict[str, Any]]:
    return [c for c in fake.calls() if command is None or c["command"] == command]


def first_status_written(api: FakeApiServer) -> list[dict[str, Any]]:
    """The network-status annotation of the plugin's first PATCH of pods/status."""
    status: list[dict[str, Any]] = json.loads(api.requests_matching("PATCH")[0].json()["metadata"]["annotations"][STATUS])
    return status


def summary(fake: FakePlugins) -> list[tuple[str, str, str]]:
    """(verb, plugin, ifname) of every delegate execution, in order."""
    return [(c["command"], c["plugin"], c["env"].get("CNI_IFNAME", "")) for c in fake.calls()]


# -------------------------------------------------------------------- the protocol


def test_version_answers_the_supported_versions_without_reading_stdin(plugin: Plugin) -> None:
    """CNI-30: VERSION needs only CNI_COMMAND; skel's answer, stdin ignored."""
    out = io.StringIO()
    code = main.main({"CNI_COMMAND": "VERSION"}, _NoRead(), out, io.StringIO())
    assert code == 0
    assert json.loads(out.getvalue()) == {"cniVersion": "1.1.0",
                                          "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]}


def test_version_constants_of_main_are_the_protocol_modules() -> None:
    assert main.PLUGIN_VERSIONS == protocol.PLUGIN_VERSIONS


def test_run_by_hand_without_cni_command_says_what_it_is_and_exits_0() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert main.main({}, _NoRead(), out, err) == 0
    assert out.getvalue() == ""
    assert err.getvalue().startswith("netplex 0.1.0: a delegating CNI plugin")
    assert "CNI protocol versions supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0" in err.getvalue()


def test_every_missing_variable_is_named_at_once_with_code_4(plugin: Plugin) -> None:
    """CNI-36: all missing names in one error."""
    out = io.StringIO()
    code = main.main({"CNI_COMMAND": "ADD", "CNI_IFNAME": "eth0"}, io.BytesIO(b"{}"), out, io.StringIO())
    error = json.loads(out.getvalue())
    assert code == 1
    assert error["code"] == 4
    assert error["msg"] == "required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_PATH] missing"
    assert "cniVersion" not in error  # the configuration was not read yet


def test_unknown_command_is_code_4(plugin: Plugin) -> None:
    error = plugin.run("RESET", plugin.config(cluster())).error
    assert (error["code"], error["msg"]) == (4, "unknown CNI_COMMAND: RESET")


def test_configuration_that_is_not_json_is_code_6(plugin: Plugin) -> None:
    """CNI-37."""
    error = plugin.run("ADD", b"{not json").error
    assert error["code"] == 6
    assert error["msg"] == "error decoding the network configuration from stdin"
    assert error["details"].startswith("Expecting property name enclosed in double quotes")


def test_configuration_key_of_the_wrong_type_is_code_7_naming_the_key(plugin: Plugin) -> None:
    """CNI-37: a validation failure names the key, the value and what is expected."""
    error = plugin.run("ADD", plugin.config(cluster(), namespaceIsolation="yes")).error
    assert error["code"] == 7
    assert error["msg"] == 'invalid netplex configuration: "namespaceIsolation" must be true or false (got string "yes")'
    assert error["cniVersion"] == "1.0.0"


def test_configuration_without_any_network_is_code_7(plugin: Plugin) -> None:
    error = plugin.run("ADD", {"cniVersion": "1.0.0", "name": "n", "type": "netplex"}).error
    assert error["code"] == 7
    assert error["msg"].startswith('invalid netplex configuration: set "clusterNetwork"')


@pytest.mark.parametrize(("version", "shown"), [("0.2.0", '"0.2.0"'), ("2.0.0", '"2.0.0"'),
                                                ("", "missing (which means 0.1.0)")])
def test_unsupported_cni_version_is_code_1(plugin: Plugin, version: str, shown: str) -> None:
    """CNI-35."""
    error = plugin.run("ADD", plugin.config(cluster(), version=version)).error
    assert (error["code"], error["msg"]) == (1, "incompatible CNI versions")
    assert error["details"] == f"config is {shown}, plugin supports [0.3.0 0.3.1 0.4.0 1.0.0 1.1.0]"


@pytest.mark.parametrize(("command", "version", "since"), [("CHECK", "0.3.1", "0.4.0"), ("GC", "1.0.0", "1.1.0"),
                                                           ("STATUS", "1.0.0", "1.1.0")])
def test_verbs_newer_than_the_configuration_version_are_code_1(plugin: Plugin, command: str, version: str,
                                                               since: str) -> None:
    """CNI-14, CNI-16: as skel, CHECK needs 0.4.0 and GC/STATUS 1.1.0."""
    error = plugin.run(command, plugin.config(cluster(), version=version)).error
    assert (error["code"], error["msg"]) == (1, f"config version does not allow {command}")
    assert error["details"] == f'config is "{version}"; {command} needs {since} or later'


def test_a_bug_is_still_a_cni_error_on_stdout(plugin: Plugin) -> None:
    """CNI-34: never a traceback where the runtime expects JSON."""
    def broken(environ: Mapping[str, str]) -> commands.Environment:
        raise ZeroDivisionError("boom")

    out, err = io.StringIO(), io.StringIO()
    environ = {**host_environ(), "CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c", "CNI_IFNAME": "eth0",
               "CNI_PATH": plugin.bin_dir}
    code = main.main(environ, io.BytesIO(json.dumps(plugin.config(cluster())).encode()), out, err,
                     env_factory=broken)
    assert code == 1
    assert json.loads(out.getvalue()) == {"cniVersion": "1.0.0", "code": 999,
                                          "msg": "internal error during DEL: ZeroDivisionError: boom"}
    assert "Traceback" in err.getvalue()


def test_logs_go_to_the_log_file_and_stderr_never_to_stdout(plugin: Plugin, tmp_path: Path) -> None:
    log_file = tmp_path / "netplex.log"
    conf = plugin.config(cluster(**{"fake-a": {"ADD": {"error": {"code": 7, "msg": "nope"}}}}),
                         logFile=str(log_file), logToStderr=False)
    out = plugin.run("ADD", conf)
    assert out.error["msg"] == ('[default/web]: error adding network "cluster-net" (interface eth0): '
                                'plugin type="fake-a" failed (add): nope')
    assert out.stderr == ""
    assert "[ERROR] netplex: ADD failed: [default/web]: error adding network" in log_file.read_text()


def test_a_run_leaves_the_process_logging_as_it_found_it(plugin: Plugin) -> None:
    """main() may run inside a bigger process (these tests, the webhook's): the
    ``netplex`` logger's level, propagation and handlers are restored."""
    import logging

    logger = logging.getLogger("netplex")
    before = (logger.propagate, logger.level, list(logger.handlers))
    plugin.run("ADD", plugin.config(cluster(), logLevel="debug"))
    assert (logger.propagate, logger.level, list(logger.handlers)) == before


# --------------------------------------------------------------- ADD and DEL, no API


def test_add_without_kubernetes_runs_the_delegates_and_returns_the_cluster_result_in_the_asked_version(
        plugin: Plugin, fake_plugins: FakePlugins) -> None:
    """CNI-24, NPWG-31: the cluster network first, on CNI_IFNAME; its result, converted."""
    result = {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": NETNS}],
              "ips": [{"address": "10.9.0.5/24", "gateway": "10.9.0.1", "interface": 0}]}
    conf = plugin.config(cluster(**{"fake-a": {"ADD": {"result": result}}}),
                         fake_conflist({"type": "fake-b"}, name="extra"), version="0.3.1")
    out = plugin.run("ADD", conf)
    assert out.code == 0, out.stdout
    assert out.json == {"cniVersion": "0.3.1", "interfaces": [{"name": "eth0", "sandbox": NETNS}],
                        "ips": [{"version": "4", "address": "10.9.0.5/24", "gateway": "10.9.0.1", "interface": 0}]}
    assert summary(fake_plugins) == [("ADD", "fake-a", "eth0"), ("ADD", "fake-b", "net1")]
    entry = cache.read(str(plugin.cni_dir), "cid1")
    assert entry is not None
    assert [(a.network, a.ifname, a.default) for a in entry.attachments] == [
        ("cluster-net", "eth0", True), ("extra", "net1", False)]


def test_delegates_get_each_cni_arg_once_and_values_with_equals_sign_do_not_break_add_or_del(
        plugin: Plugin, fake_plugins: FakePlugins) -> None:
    """CNI-21, Multus bugs 5 and 6: one pair per key, IgnoreUnknown; '=' in a value is no error.

    A pair whose value holds '=' is kept from the delegates (libcni's LoadArgs refuses the
    whole CNI_ARGS for it: test_e2e shows host-local does) and the log says so.
    """
    args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;FOO=a=b;K8S_POD_NAME=web;EMPTY="
    conf = plugin.config(cluster())
    added = plugin.run("ADD", conf, args=args)
    assert added.code == 0, added.stdout
    assert "CNI_ARGS FOO is not passed to the delegates: its value contains '='" in added.stderr
    deleted = plugin.run("DEL", conf, args=args)
    assert deleted.code == 0, deleted.stdout
    sent = [c["env"]["CNI_ARGS"] for c in calls(fake_plugins)]
    assert sent == ["IgnoreUnknown=true;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;EMPTY="] * 2


def test_del_uses_the_cache_in_reverse_order_and_removes_it(plugin: Plugin, fake_plugins: FakePlugins) -> None:
    """CNI-12, CNI-27, NPWG-35: reverse order with each prevResult; a second DEL succeeds."""
    conf = plugin.config(cluster(), fake_conflist({"type": "fake-b"}, {"type": "fake-c"}, name="extra"))
    assert plugin.run("ADD", conf).code == 0
    first = plugin.run("DEL", conf)
    assert first.code == 0, first.stdout
    dels = calls(fake_plugins, "DEL")
    assert [(c["plugin"], c["env"]["CNI_IFNAME"]) for c in dels] == [
        ("fake-c", "net1"), ("fake-b", "net1"), ("fake-a", "eth0")]
    assert dels[0]["request"]["prevResult"]["interfaces"][-1]["name"] == "fake-c-net1"
    assert "CNI_NETNS" not in dels[0]["env"]  # CNI-28: the namespace is gone
    assert cache.read(str(plugin.cni_dir), "cid1") is None
    assert os.listdir(plugin.cni_dir / cache.LOCK_DIR) == [cache.GC_LOCK]  # the container's lock went too
    second = plugin.run("DEL", conf)
    assert second.code == 0, second.stdout


def test_del_without_cni_netns_is_accepted(plugin: Plugin, fake_plugins: FakePlugins) -> None:
    """CNI-28: CNI_NETNS is optional on DEL."""
    conf = plugin.config(cluster())
    assert plugin.run("ADD", conf).code == 0
    out = plugin.run("DEL", conf, env={"CNI_NETNS": None})  # type: ignore[dict-item]
    assert out.code == 0, out.stdout


def test_del_failure_is_reported_and_keeps_only_the_networks_still_to_delete(
        plugin: Plugin, fake_plugins: FakePlugins) -> None:
    """NPWG-35: every DEL is tried; the entry keeps what failed, for the runtime's retry."""
    failing = fake_conflist({"type": "fake-b"}, name="extra",
                            behaviour={"fake-b": {"DEL": {"error": {"code": 11, "msg": "ipam busy"}}}})
    conf = plugin.config(cluster(), failing)
    assert plugin.run("ADD", conf).code == 0
    error = plugin.run("DEL", conf).error
    assert error["code"] == 999
    assert error["msg"] == "[default/web]: error deleting 1 of 2 networks"
    assert error["details"] == 'network "extra" (net1): plugin type="fake-b" failed (del): ipam busy'
    assert [c["plugin"] for c in calls(fake_plugins, "DEL")] == ["fake-b", "fake-a"]
    entry = cache.read(str(plugin.cni_dir), "cid1")
    assert entry is not None and [a.network for a in entry.attachments] == ["extra"]


def test_a_second_add_without_del_is_refused_and_changes_nothing(plugin: Plugin, fake_plugins: FakePlugins) -> None:
    conf = plugin.config(cluster())
    assert plugin.run("ADD", conf).code == 0
    error = plugin.run("ADD", conf).error
    assert (error["code"], error["msg"]) == (7, "container cid1 already has networks from an earlier ADD")
    assert error["details"] == (f"{plugin.cni_dir}/cid1 lists cluster-net (eth0); the runtime must DEL the "
                                "container before it ADDs it again")
    assert summary(fake_plugins) == [("ADD", "fake-a", "eth0")]


def test_failing_delegate_is_rolled_back_with_all_earlier_ones_and_the_error_names_pod_network_and_cause(
        plugin: Plugin, fake_plugins: FakePlugins) -> None:
    """CNI-18, NPWG-34: ADD stops at the first failure; the failing one and all before it get DEL."""
    bad = fake_conflist({"type": "fake-c"}, name="third",
                        behaviour={"fake-c": {"ADD": {"error": {"code": 11, "msg": "no IP addresses available",
                                                                 "details": "range 10.0.0.0/30"}}}})
    never = fake_conflist({"type": "fake-a"}, name="fourth")
    conf = plugin.config(cluster(), fake_conflist({"type": "fake-b"}, name="second"), bad, never)
    error = plugin.run("ADD", conf).error
    assert error["code"] == 11
    assert error["msg"] == ('[default/web]: error adding network "third" (interface net2): plugin type="fake-c" '
                            "failed (add): no IP addresses available: range 10.0.0.0/30")
    assert error["details"] == "rolled back: 3 networks deleted again"
    assert summary(fake_plugins) == [("ADD", "fake-a", "eth0"), ("ADD", "fake-b", "net1"), ("ADD", "fake-c", "net2"),
                                     ("DEL", "fake-c", "net2"), ("DEL", "fake-b", "net1"), ("DEL", "fake-a", "eth0")]
    assert cache.container_ids(str(plugin.cni_dir)) == []


def test_rollback_keeps_in_the_cache_what_could_not_be_deleted(plugin: Plugin, fake_plugins: FakePlugins) -> None:
    """The failing delegate's own DEL error is reported but not kept (its ADD failed)."""
    stuck = fake_conflist({"type": "fake-b"}, name="second",
                          behaviour={"fake-b": {"DEL": {"error": {"code": 999, "msg": "device busy"}}}})
    bad = fake_conflist({"type": "fake-c"}, name="third",
                        behaviour={"fake-c": {"ADD": {"error": {"code": 7, "msg": "bad master"}},
                                              "DEL": {"error": {"code": 7, "msg": "bad master"}}}})
    conf = plugin.config(cluster(), stuck, bad)
    error = plugin.run("ADD", conf).error
    assert error["msg"].endswith('error adding network "third" (interface net2): plugin type="fake-c" failed '
                                 "(add): bad master")
    assert error["details"] == (
        "rollback failed for second (net1) (kept in the cache for the runtime's DEL): "
        'network "third" (net2): plugin type="fake-c" failed (del): bad master (ignored: its ADD had failed); '
        'network "second" (net1): plugin type="fake-b" failed (del): device busy')
    entry = cache.read(str(plugin.cni_dir), "cid1")
    assert entry is not None and [(a.network, a.ifname) for a in entry.attachments] == [("second", "net1")]


def test_a_plugin_type_that_is_a_path_fails_before_anything_runs(plugin: Plugin, fake_plugins: FakePlugins) -> None:
    """CNI-2 / issue §6: a delegates entry cannot name another path either."""
    conf = plugin.config(cluster(), {"cniVersion": "1.0.0", "name": "evil", "type": "../../bin/sh"})
    error = plugin.run("ADD", conf).error
    assert error["code"] == 7
    assert error["msg"] == "[default/web]: cannot resolve the pod's networks"
    assert "plugin type must be a bare file name, not a path" in error["details"]
    assert fake_plugins.calls() == []


def test_missing_readiness_file_makes_add_wait_then_try_again_later(plugin: Plugin, tmp_path: Path,
                                                                    fake_plugins: FakePlugins) -> None:
    """NPWG-32."""
    flag = tmp_path / "ready"
    error = plugin.run("ADD", plugin.config(cluster(), readinessindicatorfile=str(flag))).error
    assert (error["code"], error["msg"]) == (11, "cluster network not ready")
    assert error["details"].startswith(f"readiness indicator file {flag} did not appear within 0.2s")
    assert fake_plugins.calls() == []


# -------------------------------------------------------------------------- CHECK


def test_check_runs_on_every_cached_attachment_with_its_result(plugin: Plugin, fake_plugins: FakePlugins) -> None:
    """CNI-13 (Multus bug 4: it checks only its configured delegates)."""
    conf = plugin.config(cluster(), fake_conflist({"type": "fake-b"}, name="extra"))
    assert plugin.run("ADD", conf).code == 0
    out = plugin.run("CHECK", conf)
    assert out.code == 0, out.stdout
    checks = calls(fake_plugins, "CHECK")
    assert [(c["plugin"], c["env"]["CNI_IFNAME"]) for c in checks] == [("fake-a", "eth0"), ("fake-b", "net1")]
    assert checks[1]["request"]["prevResult"]["interfaces"] == [{"name": "fake-b-net1", "sandbox": NETNS}]


def test_check_failure_names_the_network(plugin: Plugin) -> None:
    failing = fake_conflist({"type": "fake-b"}, name="extra",
                            behaviour={"fake-b": {"CHECK": {"error": {"code": 999, "msg": "Link not found"}}}})
    conf = plugin.config(cluster(), failing)
    assert plugin.run("ADD", conf).code == 0
    error = plugin.run("CHECK", conf).error
    assert error["msg"] == 'CHECK of network "extra" (net1) failed: plugin type="fake-b" failed (check): Link not found'


def test_check_of_an_unknown_container_is_code_3(plugin: Plugin) -> None:
    error = plugin.run("CHECK", plugin.config(cluster()), container_id="never").error
    assert (error["code"], error["msg"]) == (3, "container never has no cached attachments")


# ----------------------------------------------------------------------- with the API


def api_plugin(plugin: Plugin, api: FakeApiServer, *delegates: Mapping[str, Any], **keys: Any) -> dict[str, Any]:
    kubeconfig = api.kubeconfig(plugin.tmp / "kubeconfig")
    return plugin.config(*(delegates or (cluster(),)), kubeconfig=str(kubeconfig), **keys)


def test_add_reads_the_pod_and_its_nads_and_writes_network_status(plugin: Plugin, api: FakeApiServer,
                                                                  fake_plugins: FakePlugins) -> None:
    """NPWG-7, 13, 25..28: selections on their interfaces; one status entry per attachment."""
    nad_result = {"cniVersion": "1.0.0", "interfaces": [{"name": "data0", "mac": "02:00:00:00:00:07",
                                                          "sandbox": NETNS}],
                  "ips": [{"address": "192.0.2.7/24", "gateway": "192.0.2.1", "interface": 0}],
                  "routes": [{"dst": "0.0.0.0/0"}]}
    api.create(fake_nad("net-a", fake={"fake-b": {"ADD": {"result": nad_result}}}))
    api.create(fake_nad("net-b", "blue", plugin_type="fake-c"))
    api.create(make_pod("web", annotations={NETWORKS: "net-a@data0, blue/net-b"}))
    out = plugin.run("ADD", api_plugin(plugin, api))
    assert out.code == 0, out.stdout
    assert summary(fake_plugins) == [("ADD", "fake-a", "eth0"), ("ADD", "fake-b", "data0"), ("ADD", "fake-c", "net1")]
    patches = api.requests_matching("PATCH", r"/api/v1/namespaces/default/pods/web/status")
    assert len(patches) == 1
    assert patches[0].header("Content-Type") == "application/merge-patch+json"
    written = json.loads(patches[0].json()["metadata"]["annotations"][STATUS])
    assert written == [
        {"name": "cluster-net", "interface": "fake-a-eth0", "default": True},
        {"name": "default/net-a", "interface": "data0", "ips": ["192.0.2.7/24"], "mac": "02:00:00:00:00:07",
         "default": False, "gateway": ["192.0.2.1"]},
        {"name": "blue/net-b", "interface": "fake-c-net1", "default": False},
    ]


def test_a_hand_written_flow_style_kubeconfig_works_as_in_issue_12(plugin: Plugin, api: FakeApiServer,
                                                                     fake_plugins: FakePlugins) -> None:
    """Issue 12: with ``context: {cluster: local, user: admin}`` every pod failed at sandbox
    creation; now the pod gets its networks and its network-status."""
    assert api.ca_pem is not None
    (plugin.tmp / "ca.crt").write_bytes(api.ca_pem)
    token = yaml.safe_load(api.kubeconfig(plugin.tmp / "generated").read_text())["users"][0]["user"]["token"]
    kubeconfig = plugin.tmp / "admin.conf"
    kubeconfig.write_text(
        "# single-node lab cluster\n---\napiVersion: v1\nkind: Config\n"
        f"clusters:\n  - name: local\n    cluster: {{server: '{api.url}', certificate-authority: ca.crt}}\n"
        f'users:\n  - {{name: admin, user: {{token: "{token}"}}}}\n'
        "contexts:\n  - name: local\n    context: {cluster: local, user: admin}\ncurrent-context: local\n")
    api.create(fake_nad("net-a"))
    api.create(make_pod("web", annotations={NETWORKS: "net-a@data0"}))
    out = plugin.run("ADD", plugin.config(cluster(), kubeconfig=str(kubeconfig)))
    assert out.code == 0, out.stdout
    assert summary(fake_plugins) == [("ADD", "fake-a", "eth0"), ("ADD", "fake-b", "data0")]
    assert [entry["name"] for entry in first_status_written(api)] == ["cluster-net", "default/net-a"]


def test_missing_kubeconfig_is_code_7_naming_it(plugin: Plugin, fake_plugins: FakePlugins) -> None:
    path = plugin.tmp / "nowhere" / "kubeconfig"
    error = plugin.run("ADD", plugin.config(cluster(), kubeconfig=str(path))).error
    assert (error["code"], error["msg"]) == (7, f"cannot use the kubeconfig {path}")
    assert str(path) in error["details"]
    assert fake_plugins.calls() == []


def test_pod_not_found_gets_the_configured_networks_only_and_no_status(plugin: Plugin, api: FakeApiServer,
                                                                       fake_plugins: FakePlugins) -> None:
    """Decision (commands docstring): not Multus' empty result, not a failure."""
    conf = api_plugin(plugin, api, cluster(), fake_conflist({"type": "fake-b"}, name="extra"))
    out = plugin.run("ADD", conf)
    assert out.code == 0, out.stdout
    assert "[default/web]: pod not found in the API after 2 attempts; attaching only the cluster network" in out.stderr
    assert summary(fake_plugins) == [("ADD", "fake-a", "eth0"), ("ADD", "fake-b", "net1")]
    assert len(api.requests_matching("GET", r".*/pods/web")) == 2
    assert api.requests_matching("PATCH") == []


def test_pod_uid_mismatch_fails_with_multus_wording(plugin: Plugin, api: FakeApiServer,
                                                    fake_plugins: FakePlugins) -> None:
    pod = api.create(make_pod("web"))
    error = plugin.run("ADD", api_plugin(plugin, api), args=POD_ARGS + ";K8S_POD_UID=old-uid").error
    assert error["code"] == 7
    assert error["msg"] == (f'[default/web/old-uid]: expected pod UID "old-uid" but got '
                            f'"{pod["metadata"]["uid"]}" from Kube API')
    assert "re-created under the same name" in error["details"]
    assert fake_plugins.calls() == []


def test_rotated_token_works_once_the_kubeconfig_is_rewritten_without_any_restart(
        plugin: Plugin, api: FakeApiServer) -> None:
    """Multus #852: the kubeconfig (and token) are read again on every call."""
    api.create(make_pod("web"))
    conf = api_plugin(plugin, api)
    assert plugin.run("ADD", conf, container_id="c1").code == 0
    api.set_token("rotated-token")
    stale = plugin.run("ADD", conf, container_id="c2").error
    assert stale["msg"] == "[default/web]: error getting pod"
    assert "401 Unauthorized" in stale["details"] and "re-reads" in stale["details"]
    api.kubeconfig(plugin.tmp / "kubeconfig")  # what the node's token refresher does
    fresh = plugin.run("ADD", conf, container_id="c3")
    assert fresh.code == 0, fresh.stdout


def test_namespace_isolation_refuses_a_network_of_another_namespace(plugin: Plugin, api: FakeApiServer,
                                                                    fake_plugins: FakePlugins) -> None:
    """NPWG-37."""
    api.create(fake_nad("net-b", "blue"))
    pod = api.create(make_pod("web", annotations={NETWORKS: "blue/net-b"}))
    error = plugin.run("ADD", api_plugin(plugin, api, namespaceIsolation=True)).error
    assert (error["code"], error["msg"]) == (7, f"[default/web/{uid(pod)}]: cannot resolve the pod's networks")
    assert error["details"] == ('namespace isolation is on: pod in namespace "default" may not use network '
                                '"blue/net-b" (allowed: its own namespace and default)')
    assert fake_plugins.calls() == []


def test_a_nad_whose_type_is_a_path_fails_before_anything_runs(plugin: Plugin, api: FakeApiServer,
                                                               fake_plugins: FakePlugins) -> None:
    """Issue §6: nothing from a NAD can name a binary outside binDir/CNI_PATH; not even the
    cluster network runs."""
    api.create(make_nad("evil", config={"cniVersion": "1.0.0", "type": "../../bin/sh"}))
    api.create(make_pod("web", annotations={NETWORKS: "evil"}))
    error = plugin.run("ADD", api_plugin(plugin, api)).error
    assert error["code"] == 7
    assert error["details"].startswith('network-attachment-definition "default/evil" has an invalid spec.config: ')
    assert 'plugin type must be a bare file name, not a path (got "../../bin/sh")' in error["details"]
    assert fake_plugins.calls() == []
    assert cache.container_ids(str(plugin.cni_dir)) == []


def test_capability_asked_for_but_not_declared_fails_before_anything_runs(plugin: Plugin, api: FakeApiServer,
                                                                          fake_plugins: FakePlugins) -> None:
    """NPWG-14: without capabilities.ips the request would be dropped silently."""
    api.create(fake_nad("net-a"))
    api.create(make_pod("web", annotations={NETWORKS: '[{"name": "net-a", "ips": ["10.1.1.5/24"]}]'}))
    error = plugin.run("ADD", api_plugin(plugin, api)).error
    assert error["code"] == 7
    assert error["details"] == (
        'network "default/net-a" (interface net1): the selection sets "ips" but no plugin in its config declares '
        'the "ips" capability, so it cannot be applied (NPWG); add "capabilities": {"ips": true} to a plugin '
        "that supports it")
    assert fake_plugins.calls() == []


def test_declared_capability_reaches_only_the_plugin_that_declares_it(plugin: Plugin, api: FakeApiServer,
                                                                      fake_plugins: FakePlugins) -> None:
    """NPWG-14/15 and NPWG-38: selection requests go to the NAD's plugins, kubelet's to the cluster's."""
    config = {"cniVersion": "1.0.0", "plugins": [{"type": "fake-b"},
                                                 {"type": "fake-c", "capabilities": {"mac": True, "ips": True}}]}
    api.create(make_nad("net-a", config=config))
    api.create(make_pod("web", annotations={
        NETWORKS: '[{"name": "net-a", "ips": ["10.1.1.5/24"], "mac": "02:00:00:00:00:09"}]'}))
    kubelet = {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}
    cluster_conf = fake_conflist({"type": "fake-a", "capabilities": {"portMappings": True}}, name="cluster-net")
    out = plugin.run("ADD", api_plugin(plugin, api, cluster_conf, runtimeConfig=kubelet))
    assert out.code == 0, out.stdout
    requests = {c["plugin"]: c["request"] for c in calls(fake_plugins, "ADD")}
    assert requests["fake-a"]["runtimeConfig"] == kubelet
    assert "runtimeConfig" not in requests["fake-b"]
    assert requests["fake-c"]["runtimeConfig"] == {"ips": ["10.1.1.5/24"], "mac": "02:00:00:00:00:09"}
    assert requests["fake-c"]["name"] == "net-a"  # NPWG-5: the NAD's name injected


def test_cluster_network_may_be_a_nad_in_the_multus_namespace(plugin: Plugin, api: FakeApiServer,
                                                              fake_plugins: FakePlugins) -> None:
    api.create(fake_nad("cluster", "kube-system", plugin_type="fake-c"))
    api.create(make_pod("web"))
    conf = api_plugin(plugin, api)
    del conf["delegates"]
    conf["clusterNetwork"] = "cluster"
    out = plugin.run("ADD", conf)
    assert out.code == 0, out.stdout
    assert summary(fake_plugins) == [("ADD", "fake-c", "eth0")]
    written = first_status_written(api)
    assert [(s["name"], s["default"]) for s in written] == [("kube-system/cluster", True)]


def test_pod_default_network_annotation_replaces_the_cluster_network(plugin: Plugin, api: FakeApiServer,
                                                                     fake_plugins: FakePlugins) -> None:
    """Multus' ``v1.multus-cni.io/default-network``: a NAD of multusNamespace on CNI_IFNAME."""
    api.create(fake_nad("fast-net", "kube-system", plugin_type="fake-c"))
    api.create(make_pod("web", annotations={"v1.multus-cni.io/default-network": "fast-net"}))
    out = plugin.run("ADD", api_plugin(plugin, api))
    assert out.code == 0, out.stdout
    assert summary(fake_plugins) == [("ADD", "fake-c", "eth0")]
    written = first_status_written(api)
    assert [(s["name"], s["default"]) for s in written] == [("kube-system/fast-net", True)]


def test_pods_in_system_namespaces_get_no_default_networks_and_no_status(plugin: Plugin, api: FakeApiServer,
                                                                        fake_plugins: FakePlugins) -> None:
    """Multus bug 7: the pod's namespace is compared, not its name."""
    api.create(fake_nad("extra", "kube-system"))
    api.create(make_pod("web", "kube-system"))
    conf = api_plugin(plugin, api, defaultNetworks=["extra"])
    out = plugin.run("ADD", conf, args="K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=web")
    assert out.code == 0, out.stdout
    assert summary(fake_plugins) == [("ADD", "fake-a", "eth0")]
    assert api.requests_matching("PATCH") == []
    api.create(make_pod("web"))
    assert plugin.run("ADD", conf, container_id="c2").code == 0
    assert summary(fake_plugins)[1:] == [("ADD", "fake-a", "eth0"), ("ADD", "fake-b", "net1")]
    written = first_status_written(api)
    assert [s["name"] for s in written] == ["cluster-net", "kube-system/extra"]


def test_failed_network_status_write_rolls_the_add_back(plugin: Plugin, api: FakeApiServer,
                                                        fake_plugins: FakePlugins) -> None:
    pod = api.create(make_pod("web"))
    api.fail_next("PATCH", r".*/pods/web/status", 403)
    error = plugin.run("ADD", api_plugin(plugin, api)).error
    assert (error["code"], error["msg"]) == (7, f"[default/web/{uid(pod)}]: error setting the network-status "
                                                "annotation")
    assert "403 Forbidden" in error["details"] and "patch on pods/status" in error["details"]
    assert error["details"].endswith("rolled back: 1 network deleted again")
    assert summary(fake_plugins) == [("ADD", "fake-a", "eth0"), ("DEL", "fake-a", "eth0")]


def test_del_without_a_cache_entry_rebuilds_the_networks_from_the_api(plugin: Plugin, api: FakeApiServer,
                                                                      fake_plugins: FakePlugins) -> None:
    """Issue §5: without an entry, the pod's networks as ADD would make them; best-effort."""
    failing = {"fake": {"fake-b": {"DEL": {"error": {"code": 7, "msg": "no such master"}}}}}
    api.create(fake_nad("net-a", **failing))
    api.create(make_pod("web", annotations={NETWORKS: "net-a"}))
    out = plugin.run("DEL", api_plugin(plugin, api))
    assert out.code == 0, out.stdout
    assert summary(fake_plugins) == [("DEL", "fake-b", "net1"), ("DEL", "fake-a", "eth0")]
    assert 'DEL without a cache entry (ignored): network "default/net-a" (net1)' in out.stderr


def test_del_without_cache_or_api_deletes_the_cluster_network(plugin: Plugin, fake_plugins: FakePlugins) -> None:
    out = plugin.run("DEL", plugin.config(cluster()))
    assert out.code == 0, out.stdout
    assert summary(fake_plugins) == [("DEL", "fake-a", "eth0")]


# ------------------------------------------------------------------- devices


def test_sriov_style_nad_gets_the_pods_device_and_its_device_info(plugin: Plugin, api: FakeApiServer,
                                                                  fake_plugins: FakePlugins) -> None:
    """NPWG-40..44 and the kubelet checkpoint; K8S_POD_UID absent: the pod's own UID is used."""
    api.create(fake_nad("sriov-net", annotations={RESOURCE: "intel.com/sriov"},
                        capabilities={"deviceID": True, "CNIDeviceInfoFile": True}))
    pod = api.create(make_pod("web", annotations={NETWORKS: "sriov-net"}))
    checkpoint = plugin.tmp / "kubelet_internal_checkpoint"
    checkpoint.write_text(json.dumps({"Data": {"PodDeviceEntries": [
        {"PodUID": pod["metadata"]["uid"], "ContainerName": "app", "ResourceName": "intel.com/sriov",
         "DeviceIDs": {"0": ["0000:03:02.3"]}}]}, "Checksum": 1}))
    info = {"type": "pci", "version": "1.1.0", "pci": {"pci-address": "0000:03:02.3"}}
    dp = plugin.devinfo / "dp" / "intel.com-sriov-0000:03:02.3-device.json"
    dp.parent.mkdir(parents=True)
    dp.write_text(json.dumps(info))
    conf = api_plugin(plugin, api, deviceCheckpointFile=str(checkpoint))
    out = plugin.run("ADD", conf)
    assert out.code == 0, out.stdout
    request = calls(fake_plugins, "ADD")[1]["request"]
    copied = plugin.devinfo / "cni" / "default-sriov-net-cid1_net1"
    assert (request["deviceID"], request["pciBusID"]) == ("0000:03:02.3", "0000:03:02.3")
    assert request["runtimeConfig"] == {"deviceID": "0000:03:02.3", "CNIDeviceInfoFile": str(copied)}
    assert json.loads(copied.read_text()) == info
    written = first_status_written(api)
    assert written[1]["device-info"] == info
    assert plugin.run("DEL", conf).code == 0
    assert not copied.exists()


def test_missing_device_checkpoint_fails_the_add_naming_the_file(plugin: Plugin, api: FakeApiServer,
                                                                 fake_plugins: FakePlugins) -> None:
    api.create(fake_nad("sriov-net", annotations={RESOURCE: "intel.com/sriov"}))
    pod = api.create(make_pod("web", annotations={NETWORKS: "sriov-net"}))
    checkpoint = plugin.tmp / "absent"
    error = plugin.run("ADD", api_plugin(plugin, api, deviceCheckpointFile=str(checkpoint))).error
    assert error["msg"] == f"[default/web/{uid(pod)}]: cannot resolve the pod's networks"
    assert error["details"].startswith(f"cannot read the kubelet device checkpoint {checkpoint}: no such file")
    assert fake_plugins.calls() == []


# -------------------------------------------------------------------- GC and STATUS


def add_container(plugin: Plugin, conf: Mapping[str, Any], container_id: str) -> None:
    out = plugin.run("ADD", conf, container_id=container_id, args=None)
    assert out.code == 0, out.stdout


@pytest.mark.parametrize("key", ["cni.dev/valid-attachments", "cni.dev/attachments"])
def test_gc_deletes_the_networks_of_containers_not_listed_and_keeps_the_listed_ones(
        plugin: Plugin, fake_plugins: FakePlugins, key: str) -> None:
    """CNI-15, CNI-33: both key names; the delegates get GC with what stays valid."""
    conf = plugin.config(cluster(version="1.1.0"), fake_conflist({"type": "fake-b"}, name="extra", version="1.1.0"),
                         version="1.1.0")
    add_container(plugin, conf, "keep")
    add_container(plugin, conf, "stale")
    out = plugin.run("GC", {**conf, key: [{"containerID": "keep", "ifname": "eth0"}]}, container_id="")
    assert out.code == 0, out.stdout
    assert cache.container_ids(str(plugin.cni_dir)) == ["keep"]
    assert [(c["plugin"], c["env"]["CNI_CONTAINERID"]) for c in calls(fake_plugins, "DEL")] == [
        ("fake-b", "stale"), ("fake-a", "stale")]
    gcs = {c["request"]["name"]: c["request"] for c in calls(fake_plugins, "GC")}
    assert gcs["cluster-net"]["cni.dev/valid-attachments"] == [{"containerID": "keep", "ifname": "eth0"}]
    assert gcs["extra"]["cni.dev/attachments"] == [{"containerID": "keep", "ifname": "net1"}]
    assert sorted(os.listdir(plugin.cni_dir / cache.LOCK_DIR)) == [cache.GC_LOCK, "keep"]


def test_status_is_50_while_the_readiness_file_is_missing_and_0_once_it_exists(plugin: Plugin,
                                                                               tmp_path: Path) -> None:
    """CNI-31, NPWG-32."""
    flag = tmp_path / "ready"
    conf = plugin.config(cluster(), version="1.1.0", readinessindicatorfile=str(flag))
    error = plugin.run("STATUS", conf, args=None).error
    assert (error["code"], error["msg"]) == (50, "cluster network not ready")
    assert error["details"] == f"readiness indicator file {flag} does not exist"
    flag.write_text("")
    out = plugin.run("STATUS", conf, args=None)
    assert (out.code, out.stdout) == (0, "")


def test_status_asks_the_cluster_network_found_through_the_api(plugin: Plugin, api: FakeApiServer,
                                                               fake_plugins: FakePlugins) -> None:
    """CNI-32: the delegate's STATUS answer is ours."""
    not_ready = {"fake-c": {"STATUS": {"error": {"code": 50, "msg": "IPAM daemon down"}}}}
    config = {"cniVersion": "1.1.0", "type": "fake-c", "fake": not_ready}
    api.create(make_nad("cluster", "kube-system", config=config))
    conf = {**api_plugin(plugin, api, version="1.1.0"), "clusterNetwork": "cluster"}
    error = plugin.run("STATUS", conf, args=None).error
    assert (error["code"], error["msg"]) == (
        50, 'cluster network "kube-system/cluster" is not available: plugin type="fake-c" failed (status): '
            "IPAM daemon down")
    assert [c["request"]["name"] for c in calls(fake_plugins, "STATUS")] == ["cluster"]


# --------------------------------------------------------------------------- locks


def test_operations_on_a_busy_container_wait_then_try_again_later(plugin: Plugin) -> None:
    """CNI-17, NPWG-36."""
    plugin.env_kw["lock_timeout"] = 0.2
    with cache.sandbox_lock(str(plugin.cni_dir), "cid1", timeout=1):
        error = plugin.run("DEL", plugin.config(cluster())).error
    assert (error["code"], error["msg"]) == (11, "container cid1 is busy")
    assert error["details"] == (f"another operation on container cid1 still holds {plugin.cni_dir}/.locks/cid1; "
                                "gave up waiting after 0.2s")


def test_gc_waits_for_running_operations(plugin: Plugin) -> None:
    plugin.env_kw["lock_timeout"] = 0.2
    with cache.sandbox_lock(str(plugin.cni_dir), "cid1", timeout=1):
        error = plugin.run("GC", plugin.config(cluster(), version="1.1.0"), args=None).error
    assert (error["code"], error["msg"]) == (11, "garbage collection must wait")


def test_add_and_del_of_one_container_never_overlap(plugin: Plugin, fake_plugins: FakePlugins) -> None:
    """Two executables at once: the DEL starts only once the whole ADD is done."""
    slow = cluster(**{"fake-a": {"ADD": {"sleep": 0.6}}})
    conf = json.dumps(plugin.config(slow, fake_conflist({"type": "fake-b"}, name="extra"))).encode()
    environ = {**host_environ(), "CNI_CONTAINERID": "cid1", "CNI_NETNS": NETNS, "CNI_IFNAME": "eth0",
               "CNI_PATH": plugin.bin_dir, "PYTHONPATH": str(REPO)}
    procs = []
    for command in ("ADD", "DEL"):
        procs.append(subprocess.Popen([sys.executable, "-m", "plugin.cni.main"], env={**environ, "CNI_COMMAND": command},
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        procs[-1].stdin.write(conf)  # type: ignore[union-attr]
        procs[-1].stdin.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + 20
        while not fake_plugins.calls() and time.monotonic() < deadline:  # the ADD holds the lock now
            time.sleep(0.01)
    assert [p.wait(timeout=30) for p in procs] == [0, 0]
    assert summary(fake_plugins) == [("ADD", "fake-a", "eth0"), ("ADD", "fake-b", "net1"),
                                     ("DEL", "fake-b", "net1"), ("DEL", "fake-a", "eth0")]


def test_the_cache_directory_made_by_a_lock_is_private(tmp_path: Path) -> None:
    with cache.sandbox_lock(str(tmp_path / "cni"), "abc", timeout=1):
        pass
    assert [oct(os.stat(p).st_mode & 0o777) for p in (tmp_path / "cni", tmp_path / "cni" / cache.LOCK_DIR)] == [
        "0o700", "0o700"]


def test_lock_files_are_never_taken_for_cache_entries(tmp_path: Path) -> None:
    """A container may be called ``x.lock``; lock files live apart."""
    with cache.sandbox_lock(str(tmp_path), "abc", timeout=1):
        assert cache.container_ids(str(tmp_path)) == []
    cache.write(str(tmp_path), cache.SandboxEntry("abc.lock", None))
    assert cache.container_ids(str(tmp_path)) == ["abc.lock"]
    assert sorted(os.listdir(tmp_path / cache.LOCK_DIR)) == [cache.GC_LOCK, "abc"]
    assert cache.prune_locks(str(tmp_path)) == ["abc"]


def test_a_waiter_on_a_removed_lock_file_takes_the_new_one_and_never_shares_it(tmp_path: Path) -> None:
    """remove() drops the lock file at the end of a DEL; whoever was waiting on the old
    file must queue behind whoever locked the new one, not hold the lock beside it."""
    events: list[str] = []
    third_inside, release_third = threading.Event(), threading.Event()

    def second() -> None:
        with cache.sandbox_lock(str(tmp_path), "abc", timeout=5):
            events.append("second in")

    def third() -> None:
        with cache.sandbox_lock(str(tmp_path), "abc", timeout=5):
            events.append("third in")
            third_inside.set()
            release_third.wait(5)
            events.append("third out")

    waiter = threading.Thread(target=second)
    newcomer = threading.Thread(target=third)
    with cache.sandbox_lock(str(tmp_path), "abc", timeout=1):
        waiter.start()
        time.sleep(0.3)  # the second one now waits on the old file
        cache.remove(str(tmp_path), "abc")
        newcomer.start()
        assert third_inside.wait(5)  # the new file is free: the third one gets it
    time.sleep(0.2)  # the old file is released: the second one must notice it was removed
    assert events == ["third in"]
    release_third.set()
    waiter.join(5)
    newcomer.join(5)
    assert events == ["third in", "third out", "second in"]


# ------------------------------------------------ bad input gets a code, never 999 (issue 12)

DEPTH = "is nested more than 32 levels deep; at most 32 levels of objects and lists are accepted"


def test_a_log_file_path_with_a_nul_is_code_7_naming_the_key(plugin: Plugin, fake_plugins: FakePlugins) -> None:
    out = plugin.run("ADD", plugin.config(cluster(), logFile="/var/log/netplex\u0000.log"))
    assert out.error == {"cniVersion": "1.0.0", "code": 7,
                         "msg": 'invalid netplex configuration: "logFile" contains a NUL character '
                                           '(got "/var/log/netplex\\u0000.log"); a path cannot contain NUL'}
    assert "Traceback" not in out.stderr
    assert fake_plugins.calls() == []


@pytest.mark.parametrize("command", ["ADD", "DEL", "CHECK"])
def test_a_cni_dir_that_is_a_file_is_code_7_naming_it(plugin: Plugin, fake_plugins: FakePlugins,
                                                      command: str) -> None:
    plugin.cni_dir.write_text("a file")
    out = plugin.run(command, plugin.config(cluster()))
    assert out.error == {"cniVersion": "1.0.0", "code": 7, "msg": "cannot lock container cid1",
                         "details": f'"cniDir" {plugin.cni_dir} is a file, not a directory; set "cniDir" to a '
                                    "directory (netplex creates it when it is missing)"}
    assert "Traceback" not in out.stderr
    assert fake_plugins.calls() == []


@pytest.mark.parametrize(
    ("cni_dir", "message"),
    [
        ("/var/lib/cni/net\u0000plex", '"cniDir" contains a NUL character (got "/var/lib/cni/net\\u0000plex"); '
                                        "a path cannot contain NUL"),
        ("/var/lib/" + "n" * 256, "\"cniDir\" has a name of 256 bytes between two '/' (got \"/var/lib/" + "n" * 67
                                  + "...); each name in a path has at most 255 bytes"),
    ],
)
@pytest.mark.parametrize("command", ["ADD", "DEL", "GC"])
def test_a_cni_dir_the_kernel_would_refuse_is_code_7_naming_the_key(plugin: Plugin, fake_plugins: FakePlugins,
                                                                    command: str, cni_dir: str, message: str) -> None:
    conf = plugin.config(cluster(version="1.1.0"), version="1.1.0", cniDir=cni_dir)
    out = plugin.run(command, conf, container_id="" if command == "GC" else "cid1")
    assert out.error == {"cniVersion": "1.1.0", "code": 7, "msg": f"invalid netplex configuration: {message}"}
    assert fake_plugins.calls() == []


@pytest.mark.parametrize(("command", "msg"), [("ADD", "cannot lock container cid1"),
                                              ("DEL", "cannot lock container cid1"),
                                              ("GC", "cannot lock the cache for garbage collection")])
def test_a_file_where_the_lock_directory_belongs_is_code_5_saying_what_to_remove(
        plugin: Plugin, fake_plugins: FakePlugins, command: str, msg: str) -> None:
    plugin.cni_dir.mkdir()
    (plugin.cni_dir / ".locks").write_text("")
    conf = plugin.config(cluster(version="1.1.0"), version="1.1.0")
    out = plugin.run(command, conf, container_id="" if command == "GC" else "cid1")
    assert out.error == {"cniVersion": "1.1.0", "code": 5, "msg": msg,
                         "details": f'{plugin.cni_dir / ".locks"} in "cniDir" {plugin.cni_dir} is a file, not a '
                                    "directory; remove it (netplex keeps its lock files there)"}
    assert fake_plugins.calls() == []


def test_a_conf_file_nested_1000_deep_does_not_hide_the_cluster_network_in_conf_dir(
        plugin: Plugin, fake_plugins: FakePlugins) -> None:
    conf_dir = plugin.tmp / "net.d"
    conf_dir.mkdir()
    (conf_dir / "00-deep.conflist").write_text('{"name": "cluster-net", "plugins": ' + "[" * 1000 + "]" * 1000 + "}")
    (conf_dir / "10-cluster.conflist").write_text(json.dumps(cluster()))
    out = plugin.run("ADD", plugin.config(clusterNetwork="cluster-net", confDir=str(conf_dir)))
    assert out.code == 0, out.stdout
    assert summary(fake_plugins) == [("ADD", "fake-a", "eth0")]


def test_a_cluster_network_file_nested_1000_deep_is_code_7_naming_the_file(plugin: Plugin,
                                                                          fake_plugins: FakePlugins) -> None:
    deep = plugin.tmp / "deep.conflist"
    deep.write_text("[" * 1000 + "]" * 1000)
    error = plugin.run("ADD", plugin.config(clusterNetwork=str(deep))).error
    assert (error["code"], error["msg"]) == (7, "[default/web]: cannot resolve the pod's networks")
    assert error["details"] == f"cannot load CNI configuration {deep}: the file {DEPTH}"
    assert fake_plugins.calls() == []


def test_a_configuration_nested_too_deep_is_code_7_before_it_is_decoded(plugin: Plugin,
                                                                       fake_plugins: FakePlugins) -> None:
    deep = json.dumps(plugin.config(cluster(), runtimeConfig={"x": "PLACEHOLDER"}))
    deep = deep.replace('"PLACEHOLDER"', "[" * 900 + "]" * 900)  # decodes, then would recurse further on
    out = plugin.run("ADD", deep.encode())
    assert out.error == {"code": 7, "msg": f"invalid netplex configuration: the configuration {DEPTH}"}
    assert fake_plugins.calls() == []


@pytest.mark.parametrize("value", ["", "   ", " \t\n "])
def test_an_empty_networks_annotation_gets_the_cluster_network_only(plugin: Plugin, api: FakeApiServer,
                                                                    fake_plugins: FakePlugins, value: str) -> None:
    """Issue 12: Helm charts render an empty value when no extra network is asked for; Multus
    runs such a pod with its cluster network only (needs the shared parser's rule that an
    empty or blank annotation selects nothing, plugin/model/selection.py)."""
    api.create(make_pod("web", annotations={NETWORKS: value}))
    out = plugin.run("ADD", api_plugin(plugin, api))
    assert out.code == 0, out.stdout
    assert summary(fake_plugins) == [("ADD", "fake-a", "eth0")]
    assert first_status_written(api) == [{"name": "cluster-net", "interface": "fake-a-eth0", "default": True}]


# ------------------------------------------------------------------- start-up cost

PROBE = """
import atexit, os, sys
before = set(sys.modules)  # the interpreter's own start-up (site, .pth files)
def dump():
    loaded = sorted(set(sys.modules) - before)  # before this function imports json itself
    import json
    with open(os.environ["PROBE_OUT"], "w") as f:
        json.dump(loaded, f)
atexit.register(dump)
from plugin.cni.main import console_main
console_main()
"""


def loaded_modules(tmp_path: Path, environ: Mapping[str, str], stdin: bytes = b"") -> list[str]:
    """Modules one run of the console entry (``plugin.cni.main:console_main``) loaded, beyond
    what the interpreter's start-up (site) had loaded already."""
    out = tmp_path / "modules.json"
    env = {**host_environ(), **environ, "PROBE_OUT": str(out), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", PROBE], input=stdin, env=env, capture_output=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    modules: list[str] = json.loads(out.read_text())
    return modules


def third_party(modules: list[str]) -> list[str]:
    return [m for m in modules if m.split(".")[0] not in sys.stdlib_module_names
            and m.split(".")[0] not in ("plugin", "__main__")]


def test_importing_the_entry_point_loads_only_sys() -> None:
    probe = "import sys; before = set(sys.modules); import plugin.cni.main; print(sorted(set(sys.modules) - before))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO)
    # __future__ may already be loaded by the interpreter's start-up (a venv's .pth files).
    loaded = set(ast.literal_eval(done.stdout.strip())) - {"__future__"}
    assert loaded == {"plugin", "plugin.cni", "plugin.cni.main"}


def test_version_loads_no_third_party_module_nor_ssl_nor_http_client_nor_json(tmp_path: Path) -> None:
    modules = loaded_modules(tmp_path, {"CNI_COMMAND": "VERSION"})
    assert third_party(modules) == []
    assert not {"ssl", "http.client", "json", "re", "typing", "plugin.cni.protocol", "plugin.cni.commands"} & set(modules)
    assert "plugin.cni.main" in modules


def test_a_cached_del_without_kubeconfig_loads_neither_ssl_nor_http_client(tmp_path: Path,
                                                                           fake_plugins: FakePlugins) -> None:
    conf = {"cniVersion": "1.0.0", "name": "n", "type": "netplex", "cniDir": str(tmp_path / "cni"),
            "binDir": fake_plugins.dir, "delegates": [cluster()]}
    environ = {"CNI_CONTAINERID": "c1", "CNI_NETNS": NETNS, "CNI_IFNAME": "eth0", "CNI_PATH": fake_plugins.dir}
    loaded_modules(tmp_path, {**environ, "CNI_COMMAND": "ADD"}, json.dumps(conf).encode())
    assert cache.read(str(tmp_path / "cni"), "c1") is not None
    modules = loaded_modules(tmp_path, {**environ, "CNI_COMMAND": "DEL"}, json.dumps(conf).encode())
    assert cache.read(str(tmp_path / "cni"), "c1") is None
    assert "plugin.cni.commands" in modules
    assert third_party(modules) == []
    assert not {"ssl", "_ssl", "http.client", "plugin.cni.k8s", "plugin.cni.kubeconfig"} & set(modules)
    assert not {"plugin.cni.resolve", "plugin.model.selection", "plugin.cni.status"} & set(modules)  # ADD's business only
    # Issue 10 §6, the import diet: no logging (no logFile), no dataclasses (inspect), no typing.
    assert not {"logging", "dataclasses", "inspect", "typing"} & set(modules)


def test_an_add_without_a_log_file_loads_neither_logging_nor_dataclasses_nor_typing(
        tmp_path: Path, fake_plugins: FakePlugins) -> None:
    conf = {"cniVersion": "1.0.0", "name": "n", "type": "netplex", "cniDir": str(tmp_path / "cni"),
            "binDir": fake_plugins.dir, "delegates": [cluster()]}
    environ = {"CNI_CONTAINERID": "c1", "CNI_NETNS": NETNS, "CNI_IFNAME": "eth0", "CNI_PATH": fake_plugins.dir}
    modules = loaded_modules(tmp_path, {**environ, "CNI_COMMAND": "ADD"}, json.dumps(conf).encode())
    assert "plugin.cni.commands" in modules and "plugin.cni.chain" in modules
    assert not {"logging", "dataclasses", "inspect", "typing", "ssl", "http.client"} & set(modules)
    with_file = loaded_modules(tmp_path, {**environ, "CNI_COMMAND": "DEL"},
                               json.dumps({**conf, "logFile": str(tmp_path / "netplex.log")}).encode())
    assert "logging" in with_file  # a log file is what logging is for
