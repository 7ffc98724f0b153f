"""Pod Events of the node daemon: the builders (pure), the poster (queue, worker, failures), and
both fed with what the real plugin writes and returns, checked in the API test double."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from plugin.cni import commands, k8s, protocol
from plugin.cni.kubeconfig import Connection
from plugin.node import events
from plugin.node.events import EventPoster
from tests.k8sapi import FakeApiServer, make_namespace, make_pod
from tests.plugin.netns_fixtures import FakePlugins, fake_plugins_fixture  # noqa: F401  (fixture by name)
from tests.plugin.test_main import NETWORKS, STATUS, Plugin, api_plugin, cluster, fake_nad

POD = commands.PodRef("tenant-a", "web", "5e1d2c3b-0000-4000-8000-000000000001")
NOW = dt.datetime(2026, 12, 4, 16, 18, 15, 734000, tzinfo=dt.UTC)
NAME = re.compile(r"^web\.[0-9a-f]{16}$")


def entry(name: str, interface: str, *ips: str, default: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "interface": interface, "default": default}
    if ips:
        out["ips"] = list(ips)
    return out


def poster_for(api: FakeApiServer, **kw: Any) -> EventPoster:
    client = k8s.Client(Connection(server=api.url, ca_data=api.ca_pem, token="test-token"),
                        timeout=kw.pop("timeout", 5.0), attempts=1, deadline=5.0)
    return EventPoster(client, **kw)


def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with FakeApiServer(tls=True) as server:
        server.create(make_namespace("tenant-a"))
        server.create(make_namespace("blue"))
        yield server


# ------------------------------------------------------------------ builders


def test_added_interface_message_is_multus_wording_with_every_address() -> None:
    assert events.added_interface_message(entry("tenant-a/macvlan-conf", "net1", "10.1.1.5/24")) == \
        "Add net1 [10.1.1.5/24] from tenant-a/macvlan-conf"
    assert events.added_interface_message(entry("cbr0", "eth0", "10.244.1.9/24", "fd00::9/64", default=True)) == \
        "Add eth0 [10.244.1.9/24 fd00::9/64] from cbr0"
    assert events.added_interface_message(entry("blue/l2", "net2")) == "Add net2 [] from blue/l2"
    assert events.added_interface_message({"interface": "net3", "ips": ["192.0.2.1/32"]}) == "Add net3 [192.0.2.1/32]"


def test_an_entry_with_neither_interface_nor_address_gets_no_event() -> None:
    assert events.added_interface_message({"name": "blue/ipam-only", "default": False}) is None
    assert events.added_interface_events(POD, [{"name": "x"}, "not a map"], node="n1", now=NOW) == []  # type: ignore[list-item]


def test_one_normal_event_per_attachment_in_order_cluster_network_first() -> None:
    statuses = [entry("cbr0", "eth0", "10.244.1.9/24", default=True),
                entry("tenant-a/macvlan-conf", "net1", "10.1.1.5/24")]
    built = events.added_interface_events(POD, statuses, node="node-1", now=NOW)
    assert [(e["type"], e["reason"], e["message"]) for e in built] == [
        ("Normal", "AddedInterface", "Add eth0 [10.244.1.9/24] from cbr0"),
        ("Normal", "AddedInterface", "Add net1 [10.1.1.5/24] from tenant-a/macvlan-conf"),
    ]
    assert len({e["metadata"]["name"] for e in built}) == 2


def test_an_event_has_every_field_a_legacy_recorder_sets_and_passes_the_v1_schema() -> None:
    [event] = events.added_interface_events(POD, [entry("tenant-a/macvlan-conf", "net1", "10.1.1.5/24")],
                                            node="node-1", now=NOW)
    assert NAME.match(event["metadata"]["name"])
    assert {k: v for k, v in event.items() if k != "metadata"} == {
        "apiVersion": "v1", "kind": "Event",
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": "tenant-a", "name": "web",
                           "uid": POD.uid},
        "reason": "AddedInterface", "message": "Add net1 [10.1.1.5/24] from tenant-a/macvlan-conf",
        "type": "Normal", "source": {"component": "netplex-node", "host": "node-1"},
        "reportingComponent": "netplex-node", "reportingInstance": "node-1",
        "firstTimestamp": "2026-12-04T16:18:15Z", "lastTimestamp": "2026-12-04T16:18:15Z",
        "eventTime": None, "count": 1,
    }
    assert event["metadata"]["namespace"] == "tenant-a"
    kubernetes_validate.validate(event, "1.31", strict=True)


def test_event_names_stay_unique_when_built_in_a_burst() -> None:
    names = [events.build_event(POD, "Normal", "AddedInterface", "m", node="n")["metadata"]["name"]
             for _ in range(2000)]
    assert len(set(names)) == 2000
    assert all(NAME.match(n) for n in names)


def test_a_pod_without_uid_gets_an_involved_object_without_uid() -> None:
    event = events.build_event(commands.PodRef("tenant-a", "web", ""), "Normal", "AddedInterface", "m", node="n")
    assert "uid" not in event["involvedObject"]


def test_a_naive_time_is_taken_as_utc_and_another_zone_is_converted() -> None:
    naive = events.build_event(POD, "Normal", "r", "m", node="n", now=dt.datetime(2026, 1, 2, 3, 4, 5))
    zoned = events.build_event(POD, "Normal", "r", "m", node="n",
                               now=dt.datetime(2026, 1, 2, 5, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))))
    assert naive["firstTimestamp"] == zoned["firstTimestamp"] == "2026-01-02T03:04:05Z"


def test_messages_are_cut_to_1024_bytes_without_breaking_a_character() -> None:
    assert events.truncate("x" * 1024) == "x" * 1024
    cut = events.truncate("x" * 1020 + "é" * 10)
    assert len(cut.encode()) <= 1024 and cut.endswith("...") and cut.startswith("x" * 1020)
    assert events.truncate("€" * 400).encode().decode() == "€" * 340 + "..."  # 3 bytes each: 340*3 + 3 = 1023
    event = events.build_event(POD, "Warning", "FailedAddInterface", "y" * 5000, node="n")
    assert len(event["message"].encode()) == 1024


def test_a_failed_delegate_is_a_warning_naming_network_interface_plugin_message_and_code() -> None:
    error = protocol.CniError(11, f'[tenant-a/web/{POD.uid}]: error adding network "tenant-a/full-conf" '
                                  '(interface net2): plugin type="macvlan" failed (add): no IP addresses '
                                  'available in range set: 10.9.0.10-10.9.0.10',
                              "rolled back: 2 networks deleted again")
    event = events.add_failed_event(POD, error, node="node-1", now=NOW)
    assert (event["type"], event["reason"]) == ("Warning", "FailedAddInterface")
    assert event["message"] == ('error adding network "tenant-a/full-conf" (interface net2): plugin type="macvlan" '
                                "failed (add): no IP addresses available in range set: 10.9.0.10-10.9.0.10; "
                                "rolled back: 2 networks deleted again (CNI error 11)")
    kubernetes_validate.validate(event, "1.31", strict=True)


def test_network_and_delegate_given_by_the_observer_are_named_once() -> None:
    bare = protocol.CniError(999, "[tenant-a/web]: cannot write the network status", "")
    assert events.failure_message(POD, bare, network="tenant-a/macvlan-conf", delegate="macvlan") == (
        'network "tenant-a/macvlan-conf", plugin type="macvlan": cannot write the network status (CNI error 999)')
    named = protocol.CniError(7, '[tenant-a/web]: error adding network "tenant-a/m" (interface net1): '
                                 'plugin type="macvlan" failed (add): bad master', "")
    assert events.failure_message(POD, named, network="tenant-a/m", delegate="macvlan") == (
        'error adding network "tenant-a/m" (interface net1): plugin type="macvlan" failed (add): bad master '
        "(CNI error 7)")
    event = events.add_failed_event(POD, bare, node="n", network="tenant-a/macvlan-conf", delegate="")
    assert event["message"] == 'network "tenant-a/macvlan-conf": cannot write the network status (CNI error 999)'


def test_a_missing_nad_is_no_network_found_as_in_multus() -> None:
    error = protocol.CniError(7, "[tenant-a/web]: cannot resolve the pod's networks",
                              "cannot find a network-attachment-definition (nope) in namespace (tenant-a)")
    event = events.add_failed_event(POD, error, node="node-1")
    assert event["reason"] == "NoNetworkFound"
    assert event["message"] == ("cannot resolve the pod's networks; cannot find a network-attachment-definition "
                                "(nope) in namespace (tenant-a) (CNI error 7)")


def test_a_message_for_another_pod_keeps_its_prefix_and_an_empty_one_says_add_failed() -> None:
    other = protocol.CniError(7, "[tenant-a/db]: invalid network selection", "")
    assert events.failure_message(POD, other) == "[tenant-a/db]: invalid network selection (CNI error 7)"
    found_uid = protocol.CniError(7, "[tenant-a/web/0caa2c13-81f0]: invalid network selection", "")
    assert events.failure_message(POD, found_uid) == "invalid network selection (CNI error 7)"
    assert events.failure_message(POD, protocol.CniError(999, "", "")) == "ADD failed (CNI error 999)"


# ------------------------------------------------------------------ poster


def test_posted_events_appear_in_the_api_with_their_fields(api: FakeApiServer) -> None:
    poster = poster_for(api)
    built = events.added_interface_events(POD, [entry("cbr0", "eth0", "10.244.1.9/24", default=True),
                                                entry("tenant-a/macvlan-conf", "net1", "10.1.1.5/24")], node="node-1")
    assert poster.enqueue_all(built) == 2
    assert poster.stop(5) == 0
    stored = api.list_objects("events", "tenant-a")
    assert sorted(e["message"] for e in stored) == ["Add eth0 [10.244.1.9/24] from cbr0",
                                                    "Add net1 [10.1.1.5/24] from tenant-a/macvlan-conf"]
    assert (poster.posted, poster.failed, poster.dropped) == (2, 0, 0)
    [post, _] = api.requests_matching("POST", "/api/v1/namespaces/tenant-a/events")
    assert post.header("Authorization") == "Bearer test-token"


def test_a_full_queue_drops_without_blocking_while_the_api_is_stalled(api: FakeApiServer) -> None:
    api.delay(3.0, "POST", r"/api/v1/namespaces/.*/events")
    poster = poster_for(api, capacity=1000)
    event = events.build_event(POD, "Normal", "AddedInterface", "Add net1 [] from tenant-a/x", node="n")
    took: list[float] = []
    accepted = 0
    for _ in range(10_000):
        t0 = time.perf_counter()
        accepted += poster.enqueue(event)
        took.append(time.perf_counter() - t0)
    took.sort()
    # a blocking enqueue would wait out the 3 s stall; the max allows a scheduler hiccup on a shared CPU
    assert took[-1] < 0.02, f"slowest enqueue {took[-1] * 1000:.2f} ms"
    assert took[9_900] < 0.001, f"99th percentile {took[9_900] * 1000:.3f} ms"
    assert sum(took) < 1.0, f"10,000 enqueues took {sum(took):.2f} s"
    assert 1000 <= accepted <= 1001  # the queue, plus the one the worker may have taken out
    assert poster.dropped == 10_000 - accepted
    left = poster.stop(0.1)
    assert left >= 998
    assert poster.dropped == 10_000 - accepted + left


def test_an_api_server_that_is_down_is_a_counted_failure_never_an_exception(api: FakeApiServer) -> None:
    poster = poster_for(api)
    api.stop()
    assert poster.enqueue(events.build_event(POD, "Normal", "AddedInterface", "m", node="n"))
    wait_until(lambda: poster.failed == 1)
    assert (poster.posted, poster.dropped) == (0, 0)
    assert poster.stop(1) == 0


def test_a_refused_event_is_counted_as_failed_and_the_next_one_still_goes(api: FakeApiServer) -> None:
    poster = poster_for(api)
    event = events.build_event(POD, "Normal", "AddedInterface", "m", node="n")
    poster.enqueue(event)
    poster.enqueue(event)  # same name: 409 AlreadyExists
    poster.enqueue(events.build_event(POD, "Normal", "AddedInterface", "m2", node="n"))
    poster.stop(5)
    assert (poster.posted, poster.failed) == (2, 1)
    assert [r.status for r in api.requests_matching("POST")] == [201, 409, 201]


def test_enqueue_after_stop_is_dropped_and_stop_twice_is_harmless(api: FakeApiServer) -> None:
    poster = poster_for(api)
    assert poster.stop(1) == 0
    assert poster.enqueue(events.build_event(POD, "Normal", "r", "m", node="n")) is False
    assert poster.dropped == 1
    assert poster.stop(1) == 0


def test_enqueue_from_many_threads_loses_nothing_that_fits(api: FakeApiServer) -> None:
    poster = poster_for(api, capacity=2000)
    def burst() -> None:
        for _ in range(50):
            poster.enqueue(events.build_event(POD, "Normal", "AddedInterface", "m", node="n"))
    threads = [threading.Thread(target=burst) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert poster.stop(20) == 0
    assert (poster.posted, poster.dropped, poster.failed) == (400, 0, 0)
    assert len(api.list_objects("events", "tenant-a")) == 400


# ------------------------------------------------------------------ fed by the real plugin


def test_events_from_a_real_add_match_the_network_status_it_wrote(tmp_path: Path, api: FakeApiServer,
                                                                 fake_plugins: FakePlugins) -> None:
    plugin = Plugin(tmp_path, fake_plugins.dir)
    result = {"cniVersion": "1.0.0", "interfaces": [{"name": "net1", "sandbox": "/run/netns/x"}],
              "ips": [{"address": "10.1.1.5/24", "interface": 0}]}
    api.create(fake_nad("macvlan-conf", "blue", fake={"fake-b": {"ADD": {"result": result}}}))
    api.create(make_pod("web", annotations={NETWORKS: "blue/macvlan-conf"}))
    assert plugin.run("ADD", api_plugin(plugin, api)).code == 0
    [patch] = api.requests_matching("PATCH")
    statuses = json.loads(patch.json()["metadata"]["annotations"][STATUS])
    pod = commands.PodRef("default", "web", "")
    poster = poster_for(api)
    poster.enqueue_all(events.added_interface_events(pod, statuses, node="node-1"))
    poster.stop(5)
    stored = api.list_objects("events", "default")
    assert [e["message"] for e in sorted(stored, key=lambda e: e["metadata"]["name"])] == [
        "Add fake-a-eth0 [] from cluster-net", "Add net1 [10.1.1.5/24] from blue/macvlan-conf"]


def test_the_warning_from_a_real_failed_add_names_the_network_and_the_plugin(tmp_path: Path, api: FakeApiServer,
                                                                           fake_plugins: FakePlugins) -> None:
    plugin = Plugin(tmp_path, fake_plugins.dir)
    api.create(fake_nad("bad", "blue", plugin_type="fake-c",
                        fake={"fake-c": {"ADD": {"error": {"code": 7, "msg": "master eth9 not found"}}}}))
    api.create(make_pod("web", annotations={NETWORKS: "blue/bad"}))
    error = plugin.run("ADD", api_plugin(plugin, api, cluster())).error
    pod = commands.PodRef("default", "web", "")
    cni_error = protocol.CniError(error["code"], error["msg"], error.get("details", ""))
    poster = poster_for(api)
    poster.enqueue(events.add_failed_event(pod, cni_error, node="node-1"))
    poster.stop(5)
    [stored] = api.list_objects("events", "default")
    assert (stored["type"], stored["reason"]) == ("Warning", "FailedAddInterface")
    assert stored["message"] == ('error adding network "blue/bad" (interface net1): plugin type="fake-c" failed '
                                 "(add): master eth9 not found; rolled back: 2 networks deleted again (CNI error 7)")


def test_a_real_add_with_a_missing_nad_gives_no_network_found(tmp_path: Path, api: FakeApiServer,
                                                               fake_plugins: FakePlugins) -> None:
    plugin = Plugin(tmp_path, fake_plugins.dir)
    api.create(make_pod("web", annotations={NETWORKS: "blue/nope"}))
    error = plugin.run("ADD", api_plugin(plugin, api, cluster())).error
    event = events.add_failed_event(commands.PodRef("default", "web", ""),
                                    protocol.CniError(error["code"], error["msg"], error.get("details", "")),
                                    node="node-1")
    assert event["reason"] == "NoNetworkFound"
    assert "cannot find a network-attachment-definition (nope) in namespace (blue)" in event["message"]
