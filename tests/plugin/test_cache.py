"""The per-sandbox cache: lossless, atomic, and safe with hostile container IDs."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest

from plugin import cache


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
