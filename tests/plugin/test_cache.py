"""The per-sandbox cache: lossless, atomic, and safe with hostile container IDs."""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from pathlib import Path

import pytest

from plugin.cni import cache


def entry() -> cache.SandboxEntry:
    return cache.SandboxEntry(
        container_id="abc123",
        netns="/var/run/netns/x",
        pod_namespace="default",
        pod_name="p",
        pod_uid="uid-1",
        attachments=(
            cache.CachedAttachment("cluster", "eth0", b'{"cniVersion":"1.0.0","name":"cluster"}', default=True),
            cache.CachedAttachment(
                "default/macvlan-conf", "net1",
                b'{"name": "macvlan-conf",  "plugins": [{"type": "macvlan", "x": "\\u00e9"}]}',
                cni_args="K8S_POD_NAME=p;X=a=b", capability_args={"mac": "02:00:00:00:00:01"},
            ),
        ),
    )


def test_entry_round_trips_the_exact_config_bytes(tmp_path: Path) -> None:
    original = entry()
    cache.write(str(tmp_path), original)
    assert cache.read(str(tmp_path), "abc123") == original


def test_results_are_recorded_per_attachment(tmp_path: Path) -> None:
    updated = entry().with_result(1, {"cniVersion": "1.0.0", "interfaces": [{"name": "net1"}]})
    cache.write(str(tmp_path), updated)
    read = cache.read(str(tmp_path), "abc123")
    assert read is not None
    assert read.attachments[0].result is None
    assert read.attachments[1].result == {"cniVersion": "1.0.0", "interfaces": [{"name": "net1"}]}


def test_files_are_private_and_no_temp_file_is_left(tmp_path: Path) -> None:
    directory = tmp_path / "cni"
    cache.write(str(directory), entry())
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(directory / "abc123").st_mode) == 0o600
    assert os.listdir(directory) == ["abc123"]


def test_missing_entry_is_none(tmp_path: Path) -> None:
    assert cache.read(str(tmp_path), "nothing") is None


def test_corrupt_entry_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "abc123").write_text("{not json")
    with pytest.raises(cache.CacheError, match=re.escape(f"corrupt cache entry {tmp_path}/abc123: ")):
        cache.read(str(tmp_path), "abc123")
    (tmp_path / "abc123").write_text(json.dumps({"kind": "other"}))
    with pytest.raises(cache.CacheError, match="not a netplexCacheV1 entry"):
        cache.read(str(tmp_path), "abc123")


@pytest.mark.parametrize("bad", ["../etc/passwd", "a/b", "", ".hidden"])
def test_container_ids_that_could_escape_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(cache.CacheError, match=r"is not a valid container ID|container ID is empty"):
        cache.read(str(tmp_path), bad)


def test_remove_is_idempotent_and_listing_skips_other_files(tmp_path: Path) -> None:
    cache.write(str(tmp_path), entry())
    (tmp_path / "results").mkdir()
    (tmp_path / ".abc.tmp").write_text("partial")
    assert cache.container_ids(str(tmp_path)) == ["abc123"]
    cache.remove(str(tmp_path), "abc123")
    cache.remove(str(tmp_path), "abc123")
    assert cache.container_ids(str(tmp_path)) == []
    assert cache.container_ids(str(tmp_path / "missing")) == []


def test_a_failed_write_keeps_the_previous_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache.write(str(tmp_path), entry())

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space left"):
        cache.write(str(tmp_path), entry().with_result(0, {"cniVersion": "1.0.0"}))
    monkeypatch.undo()
    assert cache.read(str(tmp_path), "abc123") == entry()
    assert os.listdir(tmp_path) == ["abc123"]


def test_only_durable_writes_are_fsynced_and_both_kinds_replace_the_entry_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    cache.write(str(tmp_path), entry(), durable=False)
    assert synced == []
    assert cache.read(str(tmp_path), "abc123") == entry()
    updated = entry().with_result(0, {"cniVersion": "1.0.0"})
    cache.write(str(tmp_path), updated)
    assert len(synced) == 2  # the file, then the directory that names it
    assert cache.read(str(tmp_path), "abc123") == updated
    assert os.listdir(tmp_path) == ["abc123"]


def test_add_makes_the_entry_durable_before_the_first_delegate_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first write lists every attachment (a DEL after a power loss finds them all); the
    ones after it (one per delegate's result) only add prevResult and need to survive only
    this process."""
    from plugin.cni import commands
    from tests.k8sapi import FakeApiServer, make_pod
    from tests.plugin.netns_fixtures import FAKE_PLUGIN
    from tests.plugin.test_main import Plugin, cluster, fake_nad

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "fake-a").write_text(FAKE_PLUGIN.format(python=sys.executable, record=str(tmp_path / "calls")))
    (bin_dir / "fake-a").chmod(0o755)
    (bin_dir / "fake-b").symlink_to("fake-a")
    writes: list[tuple[int, bool]] = []
    real_write = cache.write

    def write(cache_dir: str, e: cache.SandboxEntry, *, durable: bool = True) -> None:
        writes.append((sum(a.result is not None for a in e.attachments), durable))
        real_write(cache_dir, e, durable=durable)

    monkeypatch.setattr(commands.cache, "write", write)
    with FakeApiServer(tls=True) as api:
        api.create(fake_nad("net-a"))
        api.create(make_pod("web", annotations={"k8s.v1.cni.cncf.io/networks": "net-a, net-a"}))
        plugin = Plugin(tmp_path, str(bin_dir))
        out = plugin.run("ADD", plugin.config(cluster(), kubeconfig=str(api.kubeconfig(tmp_path / "kubeconfig"))))
    assert out.code == 0, out.stdout
    assert writes == [(0, True), (1, False), (2, False), (3, False)]


# ------------------------------------------- a cache directory that cannot be used (issue 12)


def test_a_cni_dir_that_is_a_file_is_a_configuration_error_naming_it(tmp_path: Path) -> None:
    cni_dir = tmp_path / "cni"
    cni_dir.write_text("not a directory")
    with pytest.raises(cache.CacheDirError) as info, cache.sandbox_lock(str(cni_dir), "abc", timeout=1):
        pass
    assert info.value.configured is True
    assert str(info.value) == (f'"cniDir" {cni_dir} is a file, not a directory; set "cniDir" to a directory '
                               "(netplex creates it when it is missing)")


def test_a_cni_dir_under_a_file_is_a_configuration_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    cni_dir = tmp_path / "file" / "cni"
    with pytest.raises(cache.CacheDirError) as info, cache.gc_lock(str(cni_dir), timeout=1):
        pass
    assert info.value.configured is True
    assert str(info.value) == (f'"cniDir" {cni_dir} cannot be created: a directory on its way is a file; set '
                               '"cniDir" to a directory (netplex creates it when it is missing)')


@pytest.mark.parametrize("lock", ["sandbox", "gc"])
def test_a_file_where_the_lock_directory_belongs_is_named_with_the_fix(tmp_path: Path, lock: str) -> None:
    (tmp_path / cache.LOCK_DIR).write_text("")
    with pytest.raises(cache.CacheDirError) as info, (
            cache.sandbox_lock(str(tmp_path), "abc", timeout=1) if lock == "sandbox"
            else cache.gc_lock(str(tmp_path), timeout=1)):
        pass
    assert info.value.configured is False
    assert str(info.value) == (f'{tmp_path / ".locks"} in "cniDir" {tmp_path} is a file, not a directory; remove it '
                               "(netplex keeps its lock files there)")


def test_a_directory_where_a_lock_file_belongs_is_named(tmp_path: Path) -> None:
    (tmp_path / cache.LOCK_DIR / "abc").mkdir(parents=True)
    with pytest.raises(cache.CacheDirError) as info, cache.sandbox_lock(str(tmp_path), "abc", timeout=1):
        pass
    assert info.value.configured is False
    assert str(info.value) == (f'cannot open the lock file {tmp_path / ".locks" / "abc"} in "cniDir" {tmp_path}: '
                               "Is a directory")
