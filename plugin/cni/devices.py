"""Which SR-IOV (device plugin) devices belong to a pod, and which attachment gets which.

A NAD with ``k8s.v1.cni.cncf.io/resourceName: intel.com/sriov`` needs one device of that
resource per attachment; the pod requests them (the netplex webhook injects the
requests), the kubelet allocates them, and the plugin must find out which: the kubelet
writes its allocations to the device-manager checkpoint file, matched here by pod UID.
Multus prefers the kubelet's pod-resources gRPC socket; gRPC (HTTP/2 + protobuf) is out of
reach for a standard-library plugin, and the checkpoint holds the same allocations.

Checkpoint shape (``kubelet_internal_checkpoint``)::

    {"Data": {"PodDeviceEntries": [{"PodUID": "...", "ContainerName": "...",
                                    "ResourceName": "intel.com/sriov",
                                    "DeviceIDs": {"0": ["0000:03:02.0"]}}],   # per NUMA node
              "RegisteredDevices": {...}},
     "Checksum": 123}

Kubelets before 1.20 wrote ``"DeviceIDs": ["0000:03:02.0"]`` (no NUMA level); both are read.

Devices of a resource are handed out in sorted order, the n-th to the n-th attachment
that needs that resource (Multus HEAD sorts too, so both agree on a node).

The Device Information spec paths (npwg.md §7.2) are built here as well.

Exceptions::

    DeviceError(Exception)   checkpoint missing, unreadable or malformed (names the file);
                             fewer devices than attachments (names network and resource)
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

TYPE_CHECKING = False  # typing is not imported at run time (~4 ms per start); mypy takes this as True
if TYPE_CHECKING:
    from typing import Any

DEFAULT_CHECKPOINT = "/var/lib/kubelet/device-plugins/kubelet_internal_checkpoint"
DEVINFO_DIR = "/var/run/k8s.cni.cncf.io/devinfo"


class DeviceError(Exception):
    """The pod's devices cannot be known, or there are too few of them."""


def device_ids(checkpoint_path: str, pod_uid: str) -> dict[str, list[str]]:
    """Resource name → sorted device IDs allocated to any container of the pod.

    A device given to an init container and then reused by an app container appears
    in both entries; it is one device, so each ID is listed once.
    """
    if not pod_uid:
        raise DeviceError(
            "the pod UID is unknown (CNI_ARGS has no K8S_POD_UID), so its devices cannot be "
            f"found in {checkpoint_path}"
        )
    data = _load(checkpoint_path)
    where = f"kubelet device checkpoint {checkpoint_path}"
    body = data.get("Data")
    if not isinstance(body, Mapping):
        raise DeviceError(f"{where}: expected an object under \"Data\" (got {_kind(body)})")
    entries = body.get("PodDeviceEntries")
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise DeviceError(f"{where}: Data.PodDeviceEntries must be a list (got {_kind(entries)})")
    found: dict[str, set[str]] = {}
    for i, entry in enumerate(entries):
        path = f"{where}: Data.PodDeviceEntries[{i}]"
        if not isinstance(entry, Mapping):
            raise DeviceError(f"{path} must be an object (got {_kind(entry)})")
        if entry.get("PodUID") != pod_uid:
            continue
        resource = entry.get("ResourceName")
        if not isinstance(resource, str) or not resource:
            raise DeviceError(f"{path}.ResourceName must be a non-empty string (got {_kind(resource)})")
        found.setdefault(resource, set()).update(_ids(entry.get("DeviceIDs"), f"{path}.DeviceIDs"))
    return {resource: sorted(ids) for resource, ids in sorted(found.items())}


def _ids(value: Any, path: str) -> list[str]:
    """Both shapes: ``{numa: [ids] | null}`` (kubelet ≥ 1.20) and ``[ids]`` (older)."""
    if value is None:
        return []
    groups: list[Any]
    if isinstance(value, list):
        groups = [value]
    elif isinstance(value, Mapping):
        groups = [v for v in value.values() if v is not None]
    else:
        raise DeviceError(f"{path} must be a list or an object of lists per NUMA node (got {_kind(value)})")
    out: list[str] = []
    for group in groups:
        if not isinstance(group, list) or not all(isinstance(x, str) for x in group):
            raise DeviceError(f"{path} must hold lists of device ID strings (got {json.dumps(group)[:80]})")
        out.extend(group)
    return out


def _load(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError as exc:
        raise DeviceError(
            f"cannot read the kubelet device checkpoint {path}: no such file; is a device plugin "
            "registered with the kubelet on this node, and is the kubelet's device-plugins "
            "directory mounted into the plugin's environment?"
        ) from exc
    except OSError as exc:
        raise DeviceError(f"cannot read the kubelet device checkpoint {path}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise DeviceError(f"kubelet device checkpoint {path} is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise DeviceError(f"kubelet device checkpoint {path}: expected a JSON object (got {_kind(data)})")
    return data


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return json.dumps(value)[:80]
    return {dict: "an object", list: "a list", bool: "a boolean"}.get(type(value), type(value).__name__)


class DeviceAllocator:
    """Hands out the n-th device of a resource to the n-th attachment that needs it.

    Two attachments of ``sriov-net`` (resource ``intel.com/sriov``) in one pod get
    ``devices["intel.com/sriov"][0]`` and ``[1]``, as in Multus.
    """

    def __init__(self, devices: Mapping[str, Sequence[str]]) -> None:
        self._devices = {resource: list(ids) for resource, ids in devices.items()}
        self._used: dict[str, int] = {}

    def next(self, resource: str, network: str) -> str:
        """The next unused device of ``resource`` for ``network`` (used in messages)."""
        ids = self._devices.get(resource, [])
        index = self._used.get(resource, 0)
        if index >= len(ids):
            have = "none" if not ids else f"only {len(ids)}"
            raise DeviceError(
                f"network \"{network}\" needs a device of resource {resource} (the {_ordinal(index + 1)} "
                f"attachment using it) but the pod was allocated {have}; check the pod's resource "
                f"requests for {resource} (the netplex webhook injects them)"
            )
        self._used[resource] = index + 1
        return ids[index]

    @property
    def handed_out(self) -> dict[str, list[str]]:
        """What has been given so far, per resource (for logs and tests)."""
        return {r: self._devices[r][:n] for r, n in self._used.items()}


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


# ----------------------------------------------------------- Device Info spec paths


def dp_device_info_path(resource: str, device_id: str, *, devinfo_dir: str = DEVINFO_DIR) -> str:
    """Where a device plugin leaves a device's info: ``dp/<resource>-<deviceID>-device.json``.

    ``/`` becomes ``-`` in the resource (spec) and in the device ID (as the NAD client does).
    """
    name = f"{resource.replace('/', '-')}-{device_id.replace('/', '-')}-device.json"
    return os.path.join(devinfo_dir, "dp", name)


def cni_device_info_path(network_name: str, container_id: str, ifname: str, *,
                         devinfo_dir: str = DEVINFO_DIR) -> str:
    """The attachment's own copy: ``cni/<network>-<containerID>_<ifname>`` with ``/`` → ``-``
    (Multus' unique name, so ``ns/net1`` on ``net1`` of ``cid`` is ``ns-net1-cid_net1``)."""
    name = f"{network_name}-{container_id}_{ifname}".replace("/", "-")
    return os.path.join(devinfo_dir, "cni", name)
