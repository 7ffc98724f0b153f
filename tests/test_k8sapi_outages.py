"""The API double's outage controls: ``down()``/``up()`` and ``drop_watches(cut=True)``.

They model what a client sees from a real kube-apiserver that restarts (connections
refused, open connections cut, then the same address, state and resourceVersions) and from
a watch cut by the network (the chunked stream ends without its last chunk).
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Iterator

import pytest

from tests.k8sapi import FakeApiServer, make_pod
from tests.webhook.test_cluster import eventually

POD_PATH = "/api/v1/namespaces/default/pods"
AUTH = {"Authorization": "Bearer test-token"}


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    with FakeApiServer() as server:
        yield server


def connection(api: FakeApiServer) -> http.client.HTTPConnection:
    host, port = api.address.rsplit(":", 1)
    return http.client.HTTPConnection(host, int(port), timeout=5)


def test_down_refuses_new_connections_cuts_kept_alive_ones_and_up_serves_the_same_state(api: FakeApiServer) -> None:
    api.create(make_pod("before"))
    kept = connection(api)
    kept.request("GET", f"{POD_PATH}/before", headers=AUTH)
    assert kept.getresponse().read() and kept.sock is not None  # HTTP/1.1 keep-alive: still open
    url, version = api.url, api.resource_version

    api.down()
    host, port = api.address.rsplit(":", 1)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, int(port)), timeout=5)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        kept.request("GET", f"{POD_PATH}/before", headers=AUTH)
        kept.getresponse()
    api.create(make_pod("meanwhile"))  # the store goes on: other clients wrote meanwhile

    api.up()
    assert api.url == url
    fresh = connection(api)
    fresh.request("GET", POD_PATH, headers=AUTH)
    listing = fresh.getresponse()
    body = json.loads(listing.read())
    assert listing.status == 200
    assert [p["metadata"]["name"] for p in body["items"]] == ["before", "meanwhile"]
    assert int(body["metadata"]["resourceVersion"]) == int(version) + 1


def test_drop_watches_with_cut_ends_an_open_watch_without_its_last_chunk(api: FakeApiServer) -> None:
    watch = connection(api)
    watch.request("GET", f"{POD_PATH}?watch=true&resourceVersion={api.resource_version}", headers=AUTH)
    response = watch.getresponse()
    assert response.status == 200 and response.getheader("Transfer-Encoding") == "chunked"
    api.wait_for_watches(1)
    api.create(make_pod("seen"))
    first = response.readline()  # http.client de-chunks: one JSON event per line
    assert b'"type":"ADDED"' in first and b'"seen"' in first

    threading.Timer(0.2, lambda: api.drop_watches(cut=True)).start()
    with pytest.raises(http.client.IncompleteRead):
        response.read()  # a clean end would be the zero-length chunk, then b""
    assert eventually(lambda: api.cluster.open_watches == 0)  # the double counts it closed


def test_a_watch_opened_after_drop_watches_is_not_cut(api: FakeApiServer) -> None:
    api.drop_watches(cut=True)
    watch = connection(api)
    watch.request("GET", f"{POD_PATH}?watch=true&timeoutSeconds=1&resourceVersion={api.resource_version}", headers=AUTH)
    response = watch.getresponse()
    api.create(make_pod("later"))
    body = response.read()  # ends at its timeout, cleanly
    assert b'"later"' in body
