"""Small look-ups and route changes inside a container's network namespace.

Used for ``default-route`` (NPWG §4.1.2.1.9) after the delegates ran, and by tests to
see what a plugin did. Every operation is one ``nsenter --net=<path> ip -j ...``
subprocess rather than a ``setns()`` in this process, because:

- ``os.setns`` only exists from Python 3.12 (ctypes would be the alternative, and a
  plugin that runs once per pod should not carry it);
- a netns belongs to a *thread*; entering one from a process that has (or may later
  start) other threads leaves them in a different namespace, and a failure to switch
  back would leave the plugin itself in the pod's network;
- ``ip -j`` gives JSON that needs no parsing code of ours, and its own error text
  is what a node operator knows. ``nsenter`` accepts any netns path (``/run/netns/x``,
  ``/proc/<pid>/ns/net``), where ``ip -n`` only knows names under ``/run/netns``.

Exceptions::

    Exception
    └── NetnsError                 a command failed; ``.command`` and ``.stderr`` say
        └── NetnsMissing           the netns path does not exist (DEL treats this as
                                   "already gone", i.e. success)
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence

TYPE_CHECKING = False  # typing is not imported at run time (~4 ms per start); mypy takes this as True
if TYPE_CHECKING:
    from typing import Any

COMMAND_TIMEOUT = 10.0
FAMILIES = {4: "-4", 6: "-6"}


class NetnsError(Exception):
    """A command in a network namespace failed."""

    def __init__(self, command: Sequence[str], stderr: str, returncode: int | None = None) -> None:
        self.command = list(command)
        self.stderr = stderr.strip()
        self.returncode = returncode
        super().__init__(str(self))

    def __str__(self) -> str:
        shown = " ".join(self.command)
        return f"{shown}: {self.stderr}" if self.stderr else f"{shown}: exit status {self.returncode}"


class NetnsMissing(NetnsError):
    """The netns path is gone (the runtime already removed the sandbox)."""


def run_ip(netns: str, args: Sequence[str], *, timeout: float = COMMAND_TIMEOUT) -> str:
    """Run ``ip <args>`` inside ``netns``; its stdout.

    The path is tested first so that a vanished namespace is reported as
    :class:`NetnsMissing`, not as whatever nsenter happens to print.
    """
    command = ["nsenter", f"--net={netns}", "ip", *args]
    if not netns or not os.path.exists(netns):
        raise NetnsMissing(command, f"network namespace {netns or '(none)'} does not exist")
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise NetnsError(command, f"cannot run nsenter: {exc.strerror}") from exc
    except subprocess.TimeoutExpired as exc:
        raise NetnsError(command, f"did not finish within {timeout:g}s") from exc
    stderr = done.stderr.decode("utf-8", "replace")
    if done.returncode != 0:
        if not os.path.exists(netns):  # removed while we were entering it
            raise NetnsMissing(command, stderr or f"network namespace {netns} does not exist")
        raise NetnsError(command, stderr, done.returncode)
    return done.stdout.decode("utf-8", "replace")


def _json(netns: str, args: Sequence[str]) -> list[dict[str, Any]]:
    out = run_ip(netns, ["-j", *args])
    if not out.strip():  # some iproute2 versions print nothing for an empty table
        return []
    try:
        data = json.loads(out)
    except ValueError as exc:
        raise NetnsError(["ip", "-j", *args], f"output is not JSON: {exc}") from exc
    if not isinstance(data, list):
        raise NetnsError(["ip", "-j", *args], "output is not a JSON list")
    return [entry for entry in data if isinstance(entry, dict)]


def _family(family: int) -> str:
    try:
        return FAMILIES[family]
    except KeyError:
        raise ValueError(f"family must be 4 or 6 (got {family!r})") from None


def links(netns: str) -> list[dict[str, Any]]:
    """``ip -j link show``: every interface, as iproute2 describes it."""
    return _json(netns, ["link", "show"])


def addresses(netns: str, ifname: str | None = None) -> list[dict[str, Any]]:
    """``ip -j addr show [dev <ifname>]``: interfaces with their ``addr_info``."""
    return _json(netns, ["addr", "show", *(["dev", ifname] if ifname else [])])


def routes(netns: str, family: int | None = None) -> list[dict[str, Any]]:
    """``ip -j route show`` of the main table (both families when ``family`` is None)."""
    if family is None:
        return _json(netns, ["-4", "route", "show"]) + _json(netns, ["-6", "route", "show"])
    return _json(netns, [_family(family), "route", "show"])


def default_routes(netns: str, family: int) -> list[dict[str, Any]]:
    """The default routes of one family in the main table."""
    return [r for r in routes(netns, family) if r.get("dst") == "default"]


def set_default_route(netns: str, ifname: str, gateway: str, family: int) -> None:
    """Make ``gateway`` on ``ifname`` the default route (``replace``: idempotent)."""
    run_ip(netns, [_family(family), "route", "replace", "default", "via", gateway, "dev", ifname])


def delete_default_routes(netns: str, family: int, except_ifname: str | None) -> list[dict[str, Any]]:
    """Delete every default route of ``family`` except those through ``except_ifname``;
    the routes deleted. Each is deleted by its exact device, gateway and metric, so a
    route that is not the one we saw is never touched."""
    deleted = []
    for route in default_routes(netns, family):
        dev = route.get("dev")
        if except_ifname is not None and dev == except_ifname:
            continue
        spec = ["default"]
        if route.get("gateway"):
            spec += ["via", str(route["gateway"])]
        if dev:
            spec += ["dev", str(dev)]
        if route.get("metric") is not None:
            spec += ["metric", str(route["metric"])]
        run_ip(netns, [_family(family), "route", "del", *spec])
        deleted.append(route)
    return deleted
