"""Executing one delegate: finding it, its environment, retries, timeouts and libcni's
reading of what a failed plugin printed (cni.md §3, §7.4, §10.9)."""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from plugin.cni import delegate, protocol
from plugin.cni.delegate import DelegateError
from tests.plugin.netns_fixtures import (  # noqa: F401  (fixtures are found by name)
    CNI_BIN,
    FakePlugins,
    fake_plugins_fixture,
    host_environ,
    requires_netns,
)

REQUEST = json.dumps({"cniVersion": "1.0.0", "name": "n"}).encode()


class RecordingExec:
    """An ExecFn that answers from a script of outcomes and remembers every call."""

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes) or [(0, b"", b"")]
        self.calls: list[tuple[str, dict[str, str], bytes, float]] = []

    def __call__(self, path: str, env: Mapping[str, str], stdin: bytes, timeout: float) -> tuple[int, bytes, bytes]:
        self.calls.append((path, dict(env), stdin, timeout))
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def call(plugin_type: str = "fake-a", command: str = "ADD", *, dirs: list[str], exec_fn: Any = None,
         stdin: bytes = REQUEST, **kw: Any) -> dict[str, Any] | None:
    args: dict[str, Any] = {"container_id": "c1", "netns": "/run/netns/x", "ifname": "net1",
                            "cni_args": "IgnoreUnknown=true", "environ": {"PATH": "/usr/bin:/bin"},
                            "request_version": "1.0.0", "retry_interval": 0.0, **kw}
    return delegate.invoke(plugin_type, command, stdin, dirs=dirs, exec_fn=exec_fn, **args)


def executable(path: Path, text: str = "#!/bin/sh\nexit 0\n") -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


# ---------------------------------------------------------------------------- finding


def test_plugin_is_taken_from_the_first_directory_that_holds_it(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    executable(second / "bridge")
    executable(first / "bridge")
    assert delegate.find_plugin("bridge", [str(first), str(second)]) == str(first / "bridge")


@pytest.mark.parametrize("bad", ["../../bin/sh", "/bin/sh", "sub/dir", "..", "", "a\\b"])
def test_type_that_is_not_a_bare_file_name_is_refused_before_anything_runs(bad: str, tmp_path: Path) -> None:
    recorder = RecordingExec()
    with pytest.raises(protocol.CniError) as caught:
        call(bad, dirs=[str(tmp_path)], exec_fn=recorder)
    assert caught.value.code == protocol.INVALID_CONFIG
    assert caught.value.msg == f"refusing to run plugin type {json.dumps(bad)}"
    assert caught.value.details  # plugin_type_problem's explanation
    assert recorder.calls == []


def test_type_is_refused_without_looking_at_the_file_system(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_stat(*args: Any, **kw: Any) -> Any:
        raise AssertionError("the file system was consulted for a refused type")

    monkeypatch.setattr(delegate.os, "stat", no_stat)
    monkeypatch.setattr(delegate.os.path, "realpath", no_stat)
    with pytest.raises(protocol.CniError):
        delegate.find_plugin("../../bin/sh", ["/usr/lib/cni"])


def test_missing_plugin_error_lists_every_directory_searched(tmp_path: Path) -> None:
    recorder = RecordingExec()
    with pytest.raises(protocol.CniError) as caught:
        call("nosuch", dirs=[str(tmp_path / "one"), str(tmp_path / "two")], exec_fn=recorder)
    err = caught.value
    assert err.code == protocol.INVALID_CONFIG
    assert err.msg == f'failed to find plugin "nosuch" in path [{tmp_path}/one:{tmp_path}/two]'
    assert err.details == f"searched {tmp_path}/one, {tmp_path}/two"
    assert recorder.calls == []


def test_no_configured_directories_is_said_plainly() -> None:
    with pytest.raises(protocol.CniError) as caught:
        delegate.find_plugin("bridge", [])
    assert caught.value.details == "no plugin directories are configured"


def test_file_that_is_not_executable_is_skipped_and_named(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (first / "bridge").write_text("not a program")
    (second / "bridge").mkdir()
    with pytest.raises(protocol.CniError) as caught:
        delegate.find_plugin("bridge", [str(first), str(second)])
    assert f"{first}/bridge is not executable" in caught.value.details
    assert f"{second}/bridge is not a regular file" in caught.value.details
    executable(second / "bridge" / "x")  # a directory named like the plugin never runs
    third = tmp_path / "c"
    third.mkdir()
    executable(third / "bridge")
    assert delegate.find_plugin("bridge", [str(first), str(second), str(third)]) == str(third / "bridge")


def test_symlinked_plugin_runs_under_its_own_name(fake_plugins: FakePlugins) -> None:
    call("fake-b", dirs=[fake_plugins.dir], command="DEL")
    (seen,) = fake_plugins.calls()
    assert seen["argv0"] == os.path.join(fake_plugins.dir, "fake-b")
    assert seen["plugin"] == "fake-b"


def test_dangling_symlink_counts_as_not_found(tmp_path: Path) -> None:
    (tmp_path / "bridge").symlink_to(tmp_path / "gone")
    with pytest.raises(protocol.CniError, match="failed to find plugin"):
        delegate.find_plugin("bridge", [str(tmp_path)])


# ------------------------------------------------------------------------ environment


def test_add_environment_carries_the_attachment_and_the_plugin_path(fake_plugins: FakePlugins) -> None:
    call(dirs=[fake_plugins.dir, "/usr/lib/cni"], command="ADD")
    (seen,) = fake_plugins.calls()
    assert seen["env"] == {
        "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/x", "CNI_IFNAME": "net1",
        "CNI_ARGS": "IgnoreUnknown=true", "CNI_PATH": f"{fake_plugins.dir}:/usr/lib/cni",
    }
    assert seen["stdin"] == REQUEST.decode()


def test_callers_own_cni_variables_are_replaced_not_inherited() -> None:
    recorder = RecordingExec((0, b"{}", b""))
    environ = {"PATH": "/bin", "CNI_COMMAND": "ADD", "CNI_IFNAME": "eth0", "CNI_NETNS": "/run/netns/pod",
               "CNI_CONTAINERID": "runtime-cid", "CNI_ARGS": "K8S_POD_NAME=x", "CNI_PATH": "/opt/cni/bin",
               "OTHER": "kept"}
    call("bridge", "DEL", dirs=[CNI_BIN], exec_fn=recorder, environ=environ, netns=None, cni_args=None)
    env = recorder.calls[0][1]
    assert env == {"PATH": "/bin", "OTHER": "kept", "CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c1",
                   "CNI_IFNAME": "net1", "CNI_PATH": CNI_BIN}


@pytest.mark.parametrize("command", ["GC", "STATUS"])
def test_gc_and_status_get_no_attachment_variables(command: str) -> None:
    recorder = RecordingExec()
    environ = {"CNI_IFNAME": "eth0", "CNI_NETNS": "/run/netns/pod", "CNI_CONTAINERID": "cid", "CNI_ARGS": "A=B"}
    assert call("bridge", command, dirs=[CNI_BIN, "/opt/cni/bin"], exec_fn=recorder, environ=environ) is None
    assert recorder.calls[0][1] == {"CNI_COMMAND": command, "CNI_PATH": f"{CNI_BIN}:/opt/cni/bin"}


def test_timeout_is_handed_to_the_exec_function() -> None:
    recorder = RecordingExec()
    call("bridge", "DEL", dirs=[CNI_BIN], exec_fn=recorder, timeout=7.5)
    assert recorder.calls[0][3] == 7.5


def test_unknown_command_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown CNI command 'FROB'"):
        call("bridge", "FROB", dirs=[CNI_BIN], exec_fn=RecordingExec())


# ------------------------------------------------------------------ text file busy


def test_text_file_busy_is_retried_until_the_plugin_starts() -> None:
    busy = OSError(errno.ETXTBSY, "Text file busy")
    recorder = RecordingExec(busy, busy, (0, b'{"cniVersion":"1.0.0","ips":[]}', b""))
    assert call("bridge", dirs=[CNI_BIN], exec_fn=recorder) == {"cniVersion": "1.0.0", "ips": []}
    assert len(recorder.calls) == 3


def test_text_file_busy_gives_up_after_six_attempts() -> None:
    recorder = RecordingExec(OSError(errno.ETXTBSY, "Text file busy"))
    with pytest.raises(DelegateError) as caught:
        call("bridge", dirs=[CNI_BIN], exec_fn=recorder)
    assert len(recorder.calls) == 6
    assert caught.value.msg == ("netplugin failed with no error message: fork/exec /usr/lib/cni/bridge: "
                                "Text file busy after 6 attempts")


def test_other_exec_failures_are_not_retried() -> None:
    recorder = RecordingExec(OSError(errno.ENOEXEC, "Exec format error"))
    with pytest.raises(DelegateError) as caught:
        call("bridge", dirs=[CNI_BIN], exec_fn=recorder)
    assert len(recorder.calls) == 1
    assert caught.value.code == delegate.UNKNOWN
    assert caught.value.msg.endswith("fork/exec /usr/lib/cni/bridge: Exec format error")


def test_retries_wait_the_configured_interval() -> None:
    busy = OSError(errno.ETXTBSY, "Text file busy")
    recorder = RecordingExec(busy, (0, b"", b""))
    started = time.monotonic()
    call("bridge", "DEL", dirs=[CNI_BIN], exec_fn=recorder, retry_interval=0.2)
    assert time.monotonic() - started >= 0.2


def test_a_plugin_still_being_written_runs_once_the_writer_closes_it(tmp_path: Path) -> None:
    path = tmp_path / "late"
    writer = path.open("w")
    writer.write("#!/bin/sh\necho '{\"cniVersion\":\"1.0.0\",\"ips\":[]}'\n")
    writer.flush()
    path.chmod(0o755)
    closer = threading.Timer(0.3, writer.close)
    closer.start()
    try:
        result = call("late", dirs=[str(tmp_path)], retry_interval=0.2)
    finally:
        closer.cancel()
        writer.close()
    assert result == {"cniVersion": "1.0.0", "ips": []}


# ------------------------------------------------------------------ reading failures


def test_plugin_error_json_gives_its_code_msg_and_details() -> None:
    out = json.dumps({"cniVersion": "1.0.0", "code": 7, "msg": "Invalid Configuration",
                      "details": "Network 192.168.0.0/31 too small"}).encode()
    with pytest.raises(DelegateError) as caught:
        call("bridge", dirs=[CNI_BIN], exec_fn=RecordingExec((1, out, b"")))
    err = caught.value
    assert (err.code, err.msg, err.details, err.plugin, err.command) == (
        7, "Invalid Configuration", "Network 192.168.0.0/31 too small", "bridge", "ADD")
    assert str(err) == 'plugin type="bridge" failed (add): Invalid Configuration: Network 192.168.0.0/31 too small'


def test_non_json_on_stdout_gives_libcnis_parse_message() -> None:
    with pytest.raises(DelegateError) as caught:
        call("bridge", dirs=[CNI_BIN], exec_fn=RecordingExec((1, b"panic: oops\n", b"")))
    assert caught.value.code == 0
    assert caught.value.msg.startswith(
        'netplugin failed but error parsing its diagnostic message "panic: oops\\n": ')


@pytest.mark.parametrize("stdout", [b"[1, 2]", b'{"code": "seven", "msg": "x"}', b'{"code": 7, "msg": 3}'])
def test_error_json_of_the_wrong_shape_is_reported_as_unparseable(stdout: bytes) -> None:
    with pytest.raises(DelegateError) as caught:
        call("bridge", dirs=[CNI_BIN], exec_fn=RecordingExec((1, stdout, b"")))
    assert caught.value.msg.startswith("netplugin failed but error parsing its diagnostic message")


def test_empty_stdout_uses_stderr_as_the_message() -> None:
    with pytest.raises(DelegateError) as caught:
        call("bridge", dirs=[CNI_BIN], exec_fn=RecordingExec((2, b"", b"cannot open /x\n")))
    assert caught.value.code == 0
    assert caught.value.msg == 'netplugin failed: "cannot open /x\\n": exit status 2'


def test_no_output_at_all_reports_the_exit_status() -> None:
    with pytest.raises(DelegateError) as caught:
        call("bridge", dirs=[CNI_BIN], exec_fn=RecordingExec((3, b"", b"")))
    assert caught.value.msg == "netplugin failed with no error message: exit status 3"


def test_plugin_killed_by_a_signal_says_so(fake_plugins: FakePlugins) -> None:
    fake = {"fake-a": {"ADD": {"signal": int(signal.SIGKILL)}}}
    stdin = json.dumps({"cniVersion": "1.0.0", "name": "n", "fake": fake}).encode()
    with pytest.raises(DelegateError) as caught:
        call(dirs=[fake_plugins.dir], stdin=stdin)
    assert caught.value.msg == "netplugin failed with no error message: signal: killed"


def test_timeout_kills_the_plugin_and_its_children_and_names_both(fake_plugins: FakePlugins) -> None:
    fake = {"fake-a": {"ADD": {"spawn": ["sleep", "30"], "sleep": 30}}}
    stdin = json.dumps({"cniVersion": "1.0.0", "name": "n", "fake": fake}).encode()
    started = time.monotonic()
    with pytest.raises(DelegateError) as caught:
        call(dirs=[fake_plugins.dir], stdin=stdin, timeout=1.0)
    assert time.monotonic() - started < 10  # a surviving child holding stdout would hang here
    err = caught.value
    assert err.code == protocol.TRY_AGAIN_LATER
    assert err.msg == 'plugin "fake-a" did not finish ADD within 1s'
    assert err.details == f"{fake_plugins.dir}/fake-a was killed"
    for pid in fake_plugins.children():
        assert _gone(pid), f"child {pid} of the timed-out plugin survived"


def _gone(pid: int) -> bool:
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def test_plugin_stderr_is_forwarded_to_the_delegate_logger(fake_plugins: FakePlugins,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    fake = {"fake-a": {"DEL": {"stderr": "first line\n\nsecond line\n"}}}
    stdin = json.dumps({"cniVersion": "1.0.0", "name": "n", "fake": fake}).encode()
    with caplog.at_level(logging.INFO, logger="netplex.delegate"):
        call(command="DEL", dirs=[fake_plugins.dir], stdin=stdin)
    lines = [r.getMessage() for r in caplog.records if r.name == "netplex.delegate" and r.levelno == logging.INFO]
    assert lines == ["fake-a (DEL): first line", "fake-a (DEL): second line"]


# ------------------------------------------------------------------------ results


def test_add_result_without_a_version_is_taken_to_be_the_request_version() -> None:
    recorder = RecordingExec((0, b'{"ips": []}', b""))
    assert call("bridge", dirs=[CNI_BIN], exec_fn=recorder, request_version="0.4.0") == {
        "ips": [], "cniVersion": "0.4.0"}


@pytest.mark.parametrize("stdout", [b"", b"not json", b"[]"])
def test_add_output_that_is_not_a_json_object_is_a_decode_failure(stdout: bytes) -> None:
    with pytest.raises(DelegateError) as caught:
        call("bridge", dirs=[CNI_BIN], exec_fn=RecordingExec((0, stdout, b"")))
    assert caught.value.code == protocol.DECODE_FAILURE
    assert caught.value.msg.startswith('plugin "bridge" printed a ADD result that is not')


@pytest.mark.parametrize("command", ["DEL", "CHECK", "GC", "STATUS"])
def test_verbs_other_than_add_have_no_result(command: str) -> None:
    assert call("bridge", command, dirs=[CNI_BIN], exec_fn=RecordingExec((0, b"noise", b""))) is None


def test_version_info_of_an_ancient_plugin_is_0_1_0() -> None:
    out = json.dumps({"code": 4, "msg": "unknown CNI_COMMAND: VERSION"}).encode()
    assert delegate.version_info("bridge", dirs=[CNI_BIN], environ={},
                                 exec_fn=RecordingExec((1, out, b""))) == ["0.1.0"]


def test_version_info_of_a_0_2_0_plugin_without_a_list() -> None:
    recorder = RecordingExec((0, b'{"cniVersion": "0.2.0"}', b""))
    assert delegate.version_info("bridge", dirs=[CNI_BIN], environ={}, exec_fn=recorder) == ["0.1.0", "0.2.0"]
    _, env, stdin, _ = recorder.calls[0]
    assert env == {"CNI_COMMAND": "VERSION", "CNI_NETNS": "dummy", "CNI_IFNAME": "dummy", "CNI_PATH": CNI_BIN}
    assert json.loads(stdin) == {"cniVersion": "1.1.0"}


def test_version_answer_without_supported_versions_is_a_decode_failure() -> None:
    with pytest.raises(DelegateError) as caught:
        delegate.version_info("bridge", dirs=[CNI_BIN], environ={},
                              exec_fn=RecordingExec((0, b'{"cniVersion": "1.0.0"}', b"")))
    assert caught.value.code == protocol.DECODE_FAILURE
    assert caught.value.msg == 'plugin "bridge" answered VERSION without a list of supportedVersions'


# ------------------------------------------------------------------ real plugins


@pytest.mark.netns
@requires_netns
def test_real_bridge_reports_the_versions_it_supports() -> None:
    versions = delegate.version_info("bridge", dirs=[CNI_BIN], environ=host_environ())
    assert "1.0.0" in versions and "0.3.1" in versions


@pytest.mark.netns
@requires_netns
def test_real_bridge_with_a_bad_config_fails_with_its_own_code_and_message() -> None:
    stdin = json.dumps({"cniVersion": "1.0.0", "name": "n", "type": "bridge", "mtu": "x"}).encode()
    with pytest.raises(DelegateError) as caught:
        call("bridge", dirs=[CNI_BIN], stdin=stdin, environ=host_environ())
    err = caught.value
    assert err.code == 999
    assert err.msg == ("failed to load netconf: json: cannot unmarshal string into Go struct field "
                       "NetConf.mtu of type int")
    assert err.plugin == "bridge"


@pytest.mark.netns
@requires_netns
def test_real_bridge_rejects_a_version_it_does_not_know_with_code_1_and_details() -> None:
    stdin = json.dumps({"cniVersion": "1.1.0", "name": "n", "type": "bridge"}).encode()
    with pytest.raises(DelegateError) as caught:
        call("bridge", dirs=[CNI_BIN], stdin=stdin, environ=host_environ(), request_version="1.1.0")
    assert caught.value.code == protocol.INCOMPATIBLE_VERSION
    assert caught.value.msg == "incompatible CNI versions"
    assert caught.value.details.startswith('config is "1.1.0", plugin supports [')


# --------------------------------------------------------------- subprocess_exec


@pytest.fixture(name="no_pidfd", params=["pidfd", "no pidfd"])
def no_pidfd_fixture(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every subprocess_exec test runs twice: with the pidfd loop, and as on a kernel
    without pidfd_open (before 5.3), where the standard ``communicate`` does the work."""
    if request.param == "no pidfd":
        def refuse(pid: int, flags: int = 0) -> int:
            raise OSError(errno.ENOSYS, "Function not implemented")

        monkeypatch.setattr(os, "pidfd_open", refuse)
    return str(request.param)


def test_exec_passes_a_large_stdin_and_returns_both_outputs_whole(tmp_path: Path, no_pidfd: str) -> None:
    # 1 MiB each way: more than a pipe holds, so writing stdin and reading stdout/stderr must interleave.
    plugin = executable(tmp_path / "echo", "#!/bin/sh\ntee /dev/stderr\nexit 3\n")
    data = os.urandom(1 << 20)
    code, out, err = delegate.subprocess_exec(str(plugin), {"PATH": "/usr/bin:/bin"}, data, 30.0)
    assert (code, out, err) == (3, data, data)


def test_exec_of_a_plugin_that_reads_no_stdin_returns_its_answer(tmp_path: Path, no_pidfd: str) -> None:
    plugin = executable(tmp_path / "deaf", "#!/bin/sh\nprintf '{\"cniVersion\":\"1.0.0\"}'\n")
    code, out, err = delegate.subprocess_exec(str(plugin), {"PATH": "/usr/bin:/bin"}, b"x" * (4 << 20), 30.0)
    assert (code, out, err) == (0, b'{"cniVersion":"1.0.0"}', b"")


def test_exec_with_empty_stdin_gives_the_plugin_an_immediate_eof(tmp_path: Path, no_pidfd: str) -> None:
    plugin = executable(tmp_path / "count", "#!/bin/sh\nwc -c\n")
    code, out, _ = delegate.subprocess_exec(str(plugin), {"PATH": "/usr/bin:/bin"}, b"", 10.0)
    assert (code, out.strip()) == (0, b"0")


def test_exec_times_out_a_plugin_that_closes_its_pipes_but_keeps_running(tmp_path: Path, no_pidfd: str) -> None:
    # The pipes end long before the process: waiting for the exit is what the timeout bounds.
    plugin = executable(tmp_path / "linger", "#!/bin/sh\nexec >&- 2>&- <&-\necho $$ > \"$PIDFILE\"\nexec sleep 30\n")
    pidfile = tmp_path / "pid"
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as caught:
        delegate.subprocess_exec(str(plugin), {"PATH": "/usr/bin:/bin", "PIDFILE": str(pidfile)}, b"{}", 1.0)
    assert 0.9 < time.monotonic() - started < 10
    assert caught.value.cmd == [str(plugin)]
    assert _gone(int(pidfile.read_text())), "the lingering plugin was not killed"


def test_exec_reports_a_plugin_that_cannot_be_started(tmp_path: Path, no_pidfd: str) -> None:
    plugin = tmp_path / "broken"
    plugin.write_text("#!/nonexistent/interpreter\n")
    plugin.chmod(0o755)
    with pytest.raises(FileNotFoundError):
        delegate.subprocess_exec(str(plugin), {"PATH": "/usr/bin:/bin"}, b"{}", 10.0)
