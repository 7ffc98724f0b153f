"""The Event poster waits for a moment without requests (or ``max_delay``), so that posting
an Event never competes with the pods being set up, and is never late by more."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from plugin.node import events
from plugin.node.daemon import Activity
from tests.k8sapi import FakeApiServer, make_namespace
from tests.node.test_events import POD, entry, poster_for


@pytest.fixture(name="api")
def api_fixture() -> Iterator[FakeApiServer]:
    with FakeApiServer(tls=True) as server:
        server.create(make_namespace("tenant-a"))
        yield server


def an_event(interface: str = "net1") -> dict[str, Any]:
    return events.added_interface_events(POD, [entry("tenant-a/macvlan-conf", interface, "10.1.1.5/24")],
                                         node="node-1")[0]


def posted(api: FakeApiServer) -> list[str]:
    return [e["message"] for e in api.list_objects("events", "tenant-a")]


def first_seen(api: FakeApiServer, count: int, timeout: float = 10.0) -> float:
    deadline = time.monotonic() + timeout
    while len(posted(api)) < count:
        assert time.monotonic() < deadline, f"{count} event(s) not posted within {timeout} s: {posted(api)}"
        time.sleep(0.01)
    return time.monotonic()


def test_an_event_waits_for_the_request_in_flight_and_goes_when_it_ends(api: FakeApiServer) -> None:
    activity = Activity()
    poster = poster_for(api, quiet=activity.wait_quiet, max_delay=30.0)
    try:
        activity.started()
        assert poster.enqueue(an_event())
        time.sleep(0.5)
        assert posted(api) == []
        assert poster.pending() == 0  # taken by the worker, which is waiting
        ended = time.monotonic()
        activity.finished()
        assert first_seen(api, 1) - ended < 2.0
        assert posted(api) == ["Add net1 [10.1.1.5/24] from tenant-a/macvlan-conf"]
    finally:
        poster.stop(5.0)


def test_under_constant_load_an_event_is_late_by_max_delay_and_no_more(api: FakeApiServer) -> None:
    activity = Activity()
    poster = poster_for(api, quiet=activity.wait_quiet, max_delay=0.6)
    activity.started()  # a request that never ends
    try:
        queued = time.monotonic()
        poster.enqueue(an_event("net1"))
        time.sleep(0.3)
        poster.enqueue(an_event("net2"))
        assert 0.55 < first_seen(api, 1) - queued < 3.0
        assert 0.85 < first_seen(api, 2) - queued < 3.5  # its own deadline, not 0.6 s after the first
    finally:
        activity.finished()
        poster.stop(5.0)


def test_nothing_in_flight_means_no_wait(api: FakeApiServer) -> None:
    activity = Activity()
    poster = poster_for(api, quiet=activity.wait_quiet, max_delay=30.0)
    try:
        queued = time.monotonic()
        poster.enqueue(an_event())
        assert first_seen(api, 1) - queued < 2.0
    finally:
        poster.stop(5.0)


def test_stop_posts_what_waits_without_waiting_for_quiet(api: FakeApiServer) -> None:
    activity = Activity()
    poster = poster_for(api, quiet=activity.wait_quiet, max_delay=0.3)
    activity.started()
    try:
        poster.enqueue(an_event())
        started = time.monotonic()
        assert poster.stop(5.0) == 0
        assert time.monotonic() - started < 3.0
        assert posted(api) == ["Add net1 [10.1.1.5/24] from tenant-a/macvlan-conf"]
    finally:
        activity.finished()


def test_activity_counts_overlapping_requests() -> None:
    activity = Activity()
    activity.started()
    activity.started()
    activity.finished()
    assert activity.wait_quiet(0.05) is False  # one still in flight
    activity.finished()
    assert activity.wait_quiet(0.05) is True
