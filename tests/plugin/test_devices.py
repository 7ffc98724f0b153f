"""SR-IOV device IDs from the kubelet checkpoint, their hand-out, and Device Info paths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from plugin.cni import devices
from plugin.cni.devices import DeviceAllocator, DeviceError

POD = "6f1c2a9e-0b7d-4d8e-9a55-1f3b2c4d5e6f"
OTHER = "0a0a0a0a-1111-2222-3333-444444444444"


def checkpoint(tmp_path: Path, entries: list[dict[str, Any]] | None, **extra: Any) -> str:
    doc = {"Data": {"PodDeviceEntries": entries, "RegisteredDevices": {
        "intel.com/sriov_a": ["0000:03:02.0", "0000:03:02.1", "0000:03:02.2"]}}, "Checksum": 2384923832}
    doc.update(extra)
    path = tmp_path / "kubelet_internal_checkpoint"
    path.write_text(json.dumps(doc))
    return str(path)


def entry(uid: str, container: str, resource: str, ids: Any) -> dict[str, Any]:
    return {"PodUID": uid, "ContainerName": container, "ResourceName": resource, "DeviceIDs": ids}


# ------------------------------------------------------------------ device_ids


def test_device_ids_of_the_pod_are_gathered_per_resource_over_all_containers_and_sorted(tmp_path: Path) -> None:
    path = checkpoint(tmp_path, [
        entry(POD, "app", "intel.com/sriov_a", {"0": ["0000:03:02.2"], "1": ["0000:03:02.0"]}),
        entry(POD, "sidecar", "intel.com/sriov_a", {"0": ["0000:03:02.1"]}),
        entry(POD, "app", "mellanox.com/rdma", {"1": ["mlx-7"]}),
        entry(OTHER, "app", "intel.com/sriov_a", {"0": ["0000:03:09.0"]}),
    ])
    assert devices.device_ids(path, POD) == {
        "intel.com/sriov_a": ["0000:03:02.0", "0000:03:02.1", "0000:03:02.2"],
        "mellanox.com/rdma": ["mlx-7"],
    }


def test_older_kubelets_flat_device_id_lists_are_read_too(tmp_path: Path) -> None:
    path = checkpoint(tmp_path, [entry(POD, "app", "intel.com/sriov_a", ["0000:03:02.1", "0000:03:02.0"])])
    assert devices.device_ids(path, POD) == {"intel.com/sriov_a": ["0000:03:02.0", "0000:03:02.1"]}


def test_a_device_reused_by_an_init_container_is_counted_once(tmp_path: Path) -> None:
    path = checkpoint(tmp_path, [
        entry(POD, "init", "intel.com/sriov_a", {"0": ["0000:03:02.0"]}),
        entry(POD, "app", "intel.com/sriov_a", {"0": ["0000:03:02.0"]}),
    ])
    assert devices.device_ids(path, POD) == {"intel.com/sriov_a": ["0000:03:02.0"]}


def test_pod_without_devices_and_null_entries_give_nothing(tmp_path: Path) -> None:
    assert devices.device_ids(checkpoint(tmp_path, None), POD) == {}
    path = checkpoint(tmp_path, [entry(POD, "app", "intel.com/sriov_a", {"0": None})])
    assert devices.device_ids(path, POD) == {"intel.com/sriov_a": []}


def test_missing_checkpoint_is_named_with_what_to_check(tmp_path: Path) -> None:
    path = tmp_path / "absent"
    with pytest.raises(DeviceError) as info:
        devices.device_ids(str(path), POD)
    assert str(info.value) == (
        f"cannot read the kubelet device checkpoint {path}: no such file; is a device plugin registered "
        "with the kubelet on this node, and is the kubelet's device-plugins directory mounted into the "
        "plugin's environment?")


def test_unreadable_checkpoint_is_named(tmp_path: Path) -> None:
    with pytest.raises(DeviceError) as info:
        devices.device_ids(str(tmp_path), POD)  # a directory
    assert str(info.value) == f"cannot read the kubelet device checkpoint {tmp_path}: Is a directory"


def test_corrupt_checkpoint_is_named(tmp_path: Path) -> None:
    path = tmp_path / "kubelet_internal_checkpoint"
    path.write_text('{"Data": {"PodDeviceEntries": [')
    with pytest.raises(DeviceError) as info:
        devices.device_ids(str(path), POD)
    assert str(info.value) == (
        f"kubelet device checkpoint {path} is not valid JSON (Expecting value: line 1 column 32 (char 31))")


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "expected a JSON object (got a list)"),
        ({"Checksum": 1}, 'expected an object under "Data" (got null)'),
        ({"Data": {"PodDeviceEntries": {}}}, "Data.PodDeviceEntries must be a list (got an object)"),
        ({"Data": {"PodDeviceEntries": ["x"]}}, 'Data.PodDeviceEntries[0] must be an object (got "x")'),
        ({"Data": {"PodDeviceEntries": [entry(POD, "app", "", ["a"])]}},
         'Data.PodDeviceEntries[0].ResourceName must be a non-empty string (got "")'),
        ({"Data": {"PodDeviceEntries": [entry(POD, "app", "r", "0000:03:02.0")]}},
         'Data.PodDeviceEntries[0].DeviceIDs must be a list or an object of lists per NUMA node '
         '(got "0000:03:02.0")'),
        ({"Data": {"PodDeviceEntries": [entry(POD, "app", "r", {"0": [1, 2]})]}},
         "Data.PodDeviceEntries[0].DeviceIDs must hold lists of device ID strings (got [1, 2])"),
    ],
)
def test_malformed_checkpoint_names_the_file_and_the_field(tmp_path: Path, doc: Any, message: str) -> None:
    path = tmp_path / "kubelet_internal_checkpoint"
    path.write_text(json.dumps(doc))
    with pytest.raises(DeviceError) as info:
        devices.device_ids(str(path), POD)
    prefix = f"kubelet device checkpoint {path}: "
    assert str(info.value) == prefix + message


def test_entries_of_other_pods_are_not_validated_beyond_their_uid(tmp_path: Path) -> None:
    path = checkpoint(tmp_path, [entry(OTHER, "app", "", "garbage"), entry(POD, "app", "r", ["d1"])])
    assert devices.device_ids(path, POD) == {"r": ["d1"]}


def test_unknown_pod_uid_is_reported(tmp_path: Path) -> None:
    with pytest.raises(DeviceError) as info:
        devices.device_ids(checkpoint(tmp_path, []), "")
    assert str(info.value) == (
        "the pod UID is unknown (CNI_ARGS has no K8S_POD_UID), so its devices cannot be found in "
        f"{tmp_path / 'kubelet_internal_checkpoint'}")


# ------------------------------------------------------------------ DeviceAllocator


def test_nth_attachment_of_a_resource_gets_the_nth_device() -> None:
    allocator = DeviceAllocator({"intel.com/sriov_a": ["0000:03:02.0", "0000:03:02.1"], "r2": ["x"]})
    assert allocator.next("intel.com/sriov_a", "blue/sriov-net") == "0000:03:02.0"
    assert allocator.next("r2", "blue/other") == "x"
    assert allocator.next("intel.com/sriov_a", "blue/sriov-net") == "0000:03:02.1"
    assert allocator.handed_out == {"intel.com/sriov_a": ["0000:03:02.0", "0000:03:02.1"], "r2": ["x"]}


def test_more_attachments_than_devices_is_a_clear_error() -> None:
    allocator = DeviceAllocator({"intel.com/sriov_a": ["0000:03:02.0"]})
    allocator.next("intel.com/sriov_a", "blue/sriov-net")
    with pytest.raises(DeviceError) as info:
        allocator.next("intel.com/sriov_a", "blue/sriov-net-2")
    assert str(info.value) == (
        'network "blue/sriov-net-2" needs a device of resource intel.com/sriov_a (the 2nd attachment using '
        "it) but the pod was allocated only 1; check the pod's resource requests for intel.com/sriov_a "
        "(the netplex webhook injects them)")


def test_resource_the_pod_was_not_allocated_at_all_is_a_clear_error() -> None:
    with pytest.raises(DeviceError) as info:
        DeviceAllocator({}).next("intel.com/sriov_a", "blue/sriov-net")
    assert str(info.value) == (
        'network "blue/sriov-net" needs a device of resource intel.com/sriov_a (the 1st attachment using '
        "it) but the pod was allocated none; check the pod's resource requests for intel.com/sriov_a "
        "(the netplex webhook injects them)")


# ------------------------------------------------------------------ Device Info paths


def test_device_plugin_info_path_replaces_slashes_in_resource_and_device() -> None:
    assert devices.dp_device_info_path("intel.com/sriov_a", "0000:03:02.0") == (
        "/var/run/k8s.cni.cncf.io/devinfo/dp/intel.com-sriov_a-0000:03:02.0-device.json")
    assert devices.dp_device_info_path("example.com/r", "a/b", devinfo_dir="/tmp/d") == (
        "/tmp/d/dp/example.com-r-a-b-device.json")


def test_cni_device_info_path_is_multus_unique_name() -> None:
    assert devices.cni_device_info_path("test/net1", "cid123", "net1") == (
        "/var/run/k8s.cni.cncf.io/devinfo/cni/test-net1-cid123_net1")
    assert devices.cni_device_info_path("ns/n", "c", "eth1", devinfo_dir="/tmp/d") == "/tmp/d/cni/ns-n-c_eth1"
