"""Atomic writes onto the host, and reading the answers of the "can the host run it" probe.

The probe itself, run against real files, is in test_install.py (it needs the zipapp).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from plugin.node import host
from plugin.node.host import (
    atomic_write,
    cannot_run,
    check_host,
    failure_of,
    host_command,
    interpreter_of,
    on_host,
    python_problem,
    supported_versions,
    sync_file,
)


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_host_paths_map_into_the_host_root() -> None:
    assert on_host("/host", "/opt/cni/bin/netplex") == "/host/opt/cni/bin/netplex"
    assert on_host("/", "/opt/cni/bin/netplex") == "/opt/cni/bin/netplex"


def test_atomic_write_replaces_the_file_with_the_mode_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "00-netplex.conflist"
    target.write_text("old")
    before = target.stat().st_ino
    atomic_write(str(target), b"new", 0o640)
    assert target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o7777 == 0o640
    assert target.stat().st_ino != before  # renamed into place, not rewritten in place
    assert leftovers(tmp_path) == []


def test_failed_atomic_write_keeps_what_was_there_and_removes_its_temporary(tmp_path: Path) -> None:
    in_the_way = tmp_path / "netplex"
    in_the_way.mkdir()
    (in_the_way / "keep").write_text("x")
    with pytest.raises(OSError):
        atomic_write(str(in_the_way), b"binary", 0o755)
    assert (in_the_way / "keep").read_text() == "x"
    assert leftovers(tmp_path) == []


def test_temporary_names_are_not_network_configs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A runtime listing the conf dir mid-write must not load the temporary file."""
    renamed: list[str] = []
    real_replace = os.replace

    def spy(src: str, dst: str) -> None:
        renamed.append(os.path.basename(src))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    atomic_write(str(tmp_path / "00-netplex.conflist"), b"{}", 0o644)
    assert len(renamed) == 1
    assert renamed[0].startswith(".00-netplex.conflist.")
    assert os.path.splitext(renamed[0])[1] == ".tmp"


def test_sync_file_touches_nothing_when_content_and_mode_match(tmp_path: Path) -> None:
    target = tmp_path / "netplex"
    assert sync_file(str(target), b"zip", 0o755) is True
    stat = target.stat()
    assert sync_file(str(target), b"zip", 0o755) is False
    assert (target.stat().st_ino, target.stat().st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)


def test_sync_file_fixes_only_the_mode_when_the_content_matches(tmp_path: Path) -> None:
    target = tmp_path / "netplex"
    sync_file(str(target), b"zip", 0o644)
    inode = target.stat().st_ino
    assert sync_file(str(target), b"zip", 0o755) is True
    assert (target.stat().st_ino, target.stat().st_mode & 0o7777) == (inode, 0o755)


def test_remove_reports_whether_there_was_something_to_remove(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_text("x")
    assert host.remove(str(target)) is True
    assert host.remove(str(target)) is False


# ------------------------------------------------------------------------ the probe's parts


def test_interpreter_is_split_the_way_the_kernel_splits_a_shebang(tmp_path: Path) -> None:
    script = tmp_path / "s"
    script.write_bytes(b"#!/usr/bin/env python3\nprint()\n")
    assert interpreter_of(str(script)) == ["/usr/bin/env", "python3"]
    script.write_bytes(b"#!/usr/bin/python3.12 -S -E\n")
    assert interpreter_of(str(script)) == ["/usr/bin/python3.12", "-S -E"]
    script.write_bytes(b"\x7fELF")
    assert interpreter_of(str(script)) == []
    assert interpreter_of(str(tmp_path / "missing")) == []


def test_commands_run_through_chroot_unless_the_host_root_is_slash() -> None:
    assert host_command("/", ["/opt/cni/bin/netplex"], "/usr/sbin/chroot") == ["/opt/cni/bin/netplex"]
    assert host_command("/host", ["/opt/cni/bin/netplex"], "/usr/sbin/chroot") == [
        "/usr/sbin/chroot", "/host", "/opt/cni/bin/netplex"]


def test_version_answer_gives_the_supported_versions() -> None:
    answer = b'{"cniVersion": "1.1.0", "supportedVersions": ["1.0.0", "1.1.0"]}\n'
    assert supported_versions(answer) == ("1.0.0", "1.1.0")


@pytest.mark.parametrize("stdout", [b"", b"netplex 0.1.0", b'{"cniVersion": "1.1.0"}', b'{"supportedVersions": []}'])
def test_an_answer_without_supported_versions_is_a_failure(stdout: bytes) -> None:
    reason = supported_versions(stdout)
    assert isinstance(reason, str)
    assert reason.startswith("VERSION did not answer JSON with supportedVersions (got ")


def test_python_older_than_the_plugin_needs_is_named_with_its_version() -> None:
    assert python_problem("3.11.2", ["/usr/bin/env", "python3"]) is None
    assert python_problem("3.13.0", ["/usr/bin/env", "python3"]) is None
    assert python_problem("3.9.2", ["/usr/bin/env", "python3"]) == (
        '`/usr/bin/env python3` on the host is Python 3.9.2 (got "3.9.2")')
    assert python_problem("", ["/usr/bin/env", "python3"]) == '`/usr/bin/env python3` did not report its version (got "")'


def test_failure_names_the_command_its_status_and_last_error_line() -> None:
    done = subprocess.CompletedProcess(["x"], 127, b"", b"warming up\nchroot: failed to run command 'x': No such file\n")
    assert failure_of(["/opt/cni/bin/netplex"], done, "/host") == (
        "`chroot /host /opt/cni/bin/netplex` failed (exit status 127: chroot: failed to run command 'x': No such file)")
    assert failure_of(["/bin/true"], subprocess.CompletedProcess(["x"], 0, b"", b""), "/") is None
    killed = subprocess.CompletedProcess(["x"], -9, b"", b"")
    assert failure_of(["/p"], killed, "/") == "`/p` failed (killed by signal 9: no error output)"


def test_chroot_that_cannot_enter_the_host_points_at_privileges_not_python() -> None:
    failure = "`chroot /host /usr/bin/env python3 -c ...` failed (exit status 125: chroot: cannot change root " \
              "directory to '/host': Operation not permitted)"
    reason = cannot_run("/opt/cni/bin/netplex", failure, ["/usr/bin/env", "python3"], "/host")
    assert reason.endswith("; run the installer as root (privileged) with the host's / mounted at --host-root")


def test_missing_interpreter_points_at_installing_python() -> None:
    reason = cannot_run("/opt/cni/bin/netplex", "`x` failed (exit status 127: ...)", ["/usr/bin/env", "python3"], "/host")
    assert reason == (
        "the host cannot run the netplex plugin /opt/cni/bin/netplex: `x` failed (exit status 127: ...); install "
        "python3 >= 3.11 on the node (the plugin is a Python program started by its '#!/usr/bin/env python3' line); "
        "netplex's CNI config stays off this node until then")


def test_without_a_chroot_command_a_host_root_cannot_be_checked(tmp_path: Path) -> None:
    check = check_host(str(tmp_path), "/opt/cni/bin/netplex", chroot=None)
    assert not check.ok
    assert check.reason.startswith("cannot check that the host can run /opt/cni/bin/netplex: no chroot command in "
                                   "the installer image")
