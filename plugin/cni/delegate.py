"""Executing one CNI plugin binary, the way libcni's ``invoke`` package does.

This is the only module that starts a delegate. Everything that decides *what* to send
(the request JSON, the order of plugins) lives in :mod:`plugin.cni.chain`; this module finds
the binary, builds the environment, runs it, and turns what came back into a result or
a :class:`DelegateError`.

Process execution is injected (:data:`ExecFn`): production uses
:func:`subprocess_exec`; tests pass a recording fake to prove that, for example, a
``type`` of ``../../bin/sh`` never reaches ``exec``.

Exceptions::

    Exception
    ├── plugin.cni.protocol.CniError        the request cannot be sent at all: the type is not a
    │                              bare file name (code 7), or no directory holds it
    │                              (code 7, the directories searched are listed)
    └── DelegateError              the plugin ran (or was started) and failed: its own
                                   error JSON, a libcni-style message built from its
                                   stdout/stderr, a timeout, or an undecodable result

Error codes chosen here (and why):

- ``type`` refused by :func:`plugin.model.names.plugin_type_problem` → ``CniError(7)``: it
  is a configuration the webhook could have rejected, so it is "invalid configuration".
- binary not found / not executable → ``CniError(7)``: the network configuration names
  a plugin this node cannot run; the message lists every directory searched (CNI-20).
- plugin printed nothing usable on failure → ``DelegateError(code 0)``, libcni's
  ``ErrUnknown`` (cni.md §7.4); callers that must emit a spec code map 0 to 999.
- timeout → ``DelegateError(11)`` ("try again later"): a plugin that hangs is nearly
  always waiting on a lock or a daemon (IPAM store, dhcp), which is transient.
- a successful ADD whose stdout is not a JSON object → ``DelegateError(6)``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence

from plugin.cni import logs, protocol
from plugin.model.names import plugin_type_problem

TYPE_CHECKING = False  # typing is not imported at run time (~4 ms per start); mypy takes this as True
if TYPE_CHECKING:
    from typing import Any

log = logs.get_logger("netplex.delegate")

ExecFn = Callable[[str, Mapping[str, str], bytes, float], tuple[int, bytes, bytes]]
"""``(path, env, stdin, timeout) -> (returncode, stdout, stderr)``.

Raises ``OSError`` when the binary cannot be started (``ETXTBSY`` is retried by
:func:`invoke`) and ``subprocess.TimeoutExpired`` when ``timeout`` passed.
"""

COMMANDS = ("ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION")
ATTACHMENT_COMMANDS = frozenset({"ADD", "DEL", "CHECK"})
ATTACHMENT_VARIABLES = ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS")

EXEC_ATTEMPTS = 6  # libcni RawExec: 6 tries in total on "text file busy"
RETRY_INTERVAL = 1.0
DEFAULT_TIMEOUT = 60.0
UNKNOWN = 0  # libcni's ErrUnknown: what a runtime reports when the plugin explained nothing

LIBCNI_VERSION = "1.1.0"  # what libcni sends on stdin for VERSION


class DelegateError(Exception):
    """A delegate plugin failed; ``code``/``msg``/``details`` are the plugin's own when it
    printed an error JSON, so the pod's events show the real cause."""

    def __init__(self, code: int, msg: str, details: str = "", *, plugin: str = "",
                 command: str = "") -> None:
        self.code = code
        self.msg = msg
        self.details = details
        self.plugin = plugin
        self.command = command
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f'plugin type="{self.plugin}"' if self.plugin else "plugin"
        verb = f" ({self.command.lower()})" if self.command else ""
        text = f"{where} failed{verb}: {self.msg}"
        return f"{text}: {self.details}" if self.details else text


# ------------------------------------------------------------------------- finding


def find_plugin(plugin_type: str, dirs: Sequence[str]) -> str:
    """The path of ``plugin_type`` in the first of ``dirs`` that holds it as an executable.

    The type is checked to be a bare file name *before* any directory is looked at: a
    NAD author must not be able to run ``../../bin/sh`` (or probe the node's file
    system). Symlinks inside a configured directory are followed (distributions install
    plugins that way) and the target must be a regular, executable file; the returned
    path is the one inside the directory, so a multi-call binary still sees its name
    in ``argv[0]``.
    """
    problem = plugin_type_problem(plugin_type)
    if problem is not None:
        raise protocol.CniError(protocol.INVALID_CONFIG, f"refusing to run plugin type {json.dumps(plugin_type)}",
                           problem)
    searched: list[str] = []
    unusable: list[str] = []
    for directory in dirs:
        if not directory or directory in searched:
            continue
        searched.append(directory)
        candidate = os.path.join(directory, plugin_type)
        real = os.path.realpath(candidate)
        try:
            mode = os.stat(real).st_mode
        except OSError:
            continue
        if not stat.S_ISREG(mode):
            unusable.append(f"{candidate} is not a regular file")
        elif not os.access(real, os.X_OK):
            unusable.append(f"{candidate} is not executable")
        else:
            return candidate
    details = f"searched {', '.join(searched)}" if searched else "no plugin directories are configured"
    if unusable:
        details += "; " + "; ".join(unusable)
    raise protocol.CniError(protocol.INVALID_CONFIG,
                       f"failed to find plugin {json.dumps(plugin_type)} in path [{':'.join(searched)}]",
                       details)


# ------------------------------------------------------------------------ executing


def subprocess_exec(path: str, env: Mapping[str, str], stdin: bytes, timeout: float, *,
                    argv: Sequence[str] | None = None) -> tuple[int, bytes, bytes]:
    """The production :data:`ExecFn`.

    The plugin gets its own process group so that a timeout kills its children too
    (bridge runs host-local; a surviving grandchild would hold the stdout pipe open
    and we would wait for it). ``argv`` replaces ``[path]`` (the netplex-node daemon
    runs ``chroot <host root> <path>``); there is no ``preexec_fn`` on purpose: it would
    cost a full fork instead of vfork, ~3 ms per delegate in a process the size of the
    daemon.
    """
    proc = subprocess.Popen(
        list(argv) if argv is not None else [path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=dict(env), close_fds=True, process_group=0,
    )
    try:
        stdout, stderr = _exchange(proc, stdin, timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()  # killed: it goes at once; a descendant that left the group may keep the pipes, not us
        raise
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    return proc.returncode, stdout, stderr


def _exchange(proc: subprocess.Popen[bytes], stdin: bytes, timeout: float) -> tuple[bytes, bytes]:
    """``proc.communicate(stdin, timeout)``, minus the sleeps of its wait.

    With a timeout, ``Popen.wait`` polls: ``waitpid(WNOHANG)``, then sleeps of 1, 2, 4 ...
    ms. A plugin closes its pipes just before it exits, so that first check nearly
    always misses and every delegate cost 1-3 ms more than its own run (6 delegates for
    a 3-network pod). A pidfd is readable the moment the child exits: one ``poll`` waits
    for the pipes and the exit together and wakes at once. Kernels before 5.3 have no
    pidfd; there the standard ``communicate`` runs.
    """
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        stdout, stderr = proc.communicate(stdin, timeout=timeout)
        return stdout, stderr
    deadline = time.monotonic() + timeout
    in_fd, out_fd, err_fd = proc.stdin.fileno(), proc.stdout.fileno(), proc.stderr.fileno()
    received: dict[int, list[bytes]] = {out_fd: [], err_fd: []}
    poller = select.poll()
    waiting = {pidfd, out_fd, err_fd}
    pending = memoryview(stdin)
    try:
        if pending:
            os.set_blocking(in_fd, False)  # a plugin that reads nothing must not block us in write()
            poller.register(in_fd, select.POLLOUT)
            waiting.add(in_fd)
        else:
            proc.stdin.close()
        for fd in (pidfd, out_fd, err_fd):
            poller.register(fd, select.POLLIN)
        while waiting:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise subprocess.TimeoutExpired(proc.args, timeout)
            for fd, _event in poller.poll(remaining * 1000):
                if fd == in_fd:
                    try:
                        pending = pending[os.write(fd, pending):]
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:  # it exited or closed stdin without reading it all, as communicate allows
                        pending = pending[:0]
                    if not pending:
                        poller.unregister(fd)
                        waiting.discard(fd)
                        proc.stdin.close()
                    continue
                data = os.read(fd, 1 << 16) if fd != pidfd else b""
                if data:
                    received[fd].append(data)
                else:  # end of a pipe, or the child exited
                    poller.unregister(fd)
                    waiting.discard(fd)
    finally:
        os.close(pidfd)
    proc.wait()  # it has exited: no sleep
    return b"".join(received[out_fd]), b"".join(received[err_fd])


def build_env(command: str, environ: Mapping[str, str], *, dirs: Sequence[str], container_id: str | None,
              netns: str | None, ifname: str | None, cni_args: str | None) -> dict[str, str]:
    """The caller's environment with the CNI variables of ``command`` (libcni ``AsEnv``).

    ADD/DEL/CHECK get the attachment variables that are known and lose stale ones
    (our own environment holds the runtime's ``CNI_IFNAME`` etc.). GC and STATUS have no
    attachment, so none of them is passed (CNI-19). VERSION gets libcni's dummies.
    """
    env = dict(environ)
    env["CNI_COMMAND"] = command
    env["CNI_PATH"] = ":".join(dirs)
    for key in ATTACHMENT_VARIABLES:
        env.pop(key, None)
    if command in ATTACHMENT_COMMANDS:
        for key, value in (("CNI_CONTAINERID", container_id), ("CNI_NETNS", netns),
                           ("CNI_IFNAME", ifname), ("CNI_ARGS", cni_args)):
            if value is not None:
                env[key] = value
    elif command == "VERSION":
        env["CNI_NETNS"] = env["CNI_IFNAME"] = "dummy"  # keeps pre-0.2.0 skel happy (libcni)
    return env


def invoke(plugin_type: str, command: str, stdin: bytes, *, dirs: Sequence[str], environ: Mapping[str, str],
           request_version: str, container_id: str | None = None, netns: str | None = None,
           ifname: str | None = None, cni_args: str | None = None, timeout: float = DEFAULT_TIMEOUT,
           exec_fn: ExecFn | None = None, retry_interval: float = RETRY_INTERVAL) -> dict[str, Any] | None:
    """Run one plugin for one command; the ADD (or VERSION) result, else ``None``.

    ``request_version`` is the ``cniVersion`` that ``stdin`` carries; a result without
    one is taken to be in that version (libcni, CNI-46).
    """
    if command not in COMMANDS:
        raise ValueError(f"unknown CNI command {command!r}")
    path = find_plugin(plugin_type, dirs)
    env = build_env(command, environ, dirs=dirs, container_id=container_id, netns=netns, ifname=ifname,
                    cni_args=cni_args)
    run = exec_fn or subprocess_exec
    log.debug("%s %s (%s) ifname=%s netns=%s", command, plugin_type, path, ifname, netns)
    returncode, stdout, stderr = _run_with_retry(run, path, env, stdin, timeout, retry_interval,
                                                 plugin_type, command)
    _forward_stderr(stderr, plugin_type, command, failed=returncode != 0)
    if returncode != 0:
        raise plugin_error(returncode, stdout, stderr, plugin=plugin_type, command=command)
    if command not in ("ADD", "VERSION"):
        return None
    return _decode_result(stdout, plugin_type, command, request_version)


def _run_with_retry(run: ExecFn, path: str, env: Mapping[str, str], stdin: bytes, timeout: float,
                    retry_interval: float, plugin_type: str, command: str) -> tuple[int, bytes, bytes]:
    """libcni retries "text file busy": the binary is being replaced (a DaemonSet is
    copying a new version into the bin dir) and will be runnable in a moment."""
    for attempt in range(1, EXEC_ATTEMPTS + 1):
        try:
            return run(path, env, stdin, timeout)
        except subprocess.TimeoutExpired as exc:
            raise DelegateError(protocol.TRY_AGAIN_LATER,
                                f'plugin "{plugin_type}" did not finish {command} within {timeout:g}s',
                                f"{path} was killed", plugin=plugin_type, command=command) from exc
        except OSError as exc:
            if exc.errno == errno.ETXTBSY and attempt < EXEC_ATTEMPTS:
                log.info("%s is busy (being written?); retrying in %gs (attempt %d of %d)",
                         path, retry_interval, attempt, EXEC_ATTEMPTS)
                time.sleep(retry_interval)
                continue
            tried = f" after {attempt} attempts" if exc.errno == errno.ETXTBSY else ""
            raise DelegateError(UNKNOWN, f"netplugin failed with no error message: fork/exec {path}: "
                                f"{exc.strerror or exc}{tried}", plugin=plugin_type, command=command) from exc
    raise AssertionError("unreachable")  # pragma: no cover


def _forward_stderr(stderr: bytes, plugin_type: str, command: str, *, failed: bool) -> None:
    """A plugin's stderr is its log (libcni copies it to the runtime's stderr)."""
    level = logs.WARNING if failed else logs.INFO
    for line in stderr.decode("utf-8", "replace").splitlines():
        if line.strip():
            log.log(level, "%s (%s): %s", plugin_type, command, line.rstrip())


def plugin_error(returncode: int, stdout: bytes, stderr: bytes, *, plugin: str = "",
                 command: str = "") -> DelegateError:
    """What a failed plugin said, by libcni's ``pluginErr`` rules (cni.md §7.4).

    stdout holds the error JSON; if it is empty, stderr is the message; if both are
    empty, only the exit status is left. Messages keep libcni's wording so that they
    can be searched for. Unlike libcni, a stdout of only whitespace counts as empty
    (libcni would report a JSON parse error and lose the stderr text).
    """
    status = _exit_status(returncode)
    if not stdout.strip():
        if not stderr.strip():
            return DelegateError(UNKNOWN, f"netplugin failed with no error message: {status}",
                                 plugin=plugin, command=command)
        return DelegateError(UNKNOWN, f"netplugin failed: {_quote(stderr)}: {status}",
                             plugin=plugin, command=command)
    try:
        data = json.loads(stdout)
        code, msg, details = _error_fields(data)
    except ValueError as exc:
        return DelegateError(UNKNOWN, f"netplugin failed but error parsing its diagnostic message "
                             f"{_quote(stdout)}: {exc}", plugin=plugin, command=command)
    return DelegateError(code, msg, details, plugin=plugin, command=command)


def _error_fields(data: Any) -> tuple[int, str, str]:
    """``code``/``msg``/``details`` with Go's decoding strictness (types.Error)."""
    if not isinstance(data, dict):
        raise ValueError(f"the error is a JSON {type(data).__name__}, not an object")
    code = data.get("code", UNKNOWN)
    if isinstance(code, bool) or not isinstance(code, int) or code < 0:
        raise ValueError(f"code must be a non-negative integer (got {json.dumps(code)})")
    msg, details = data.get("msg", ""), data.get("details", "")
    if not isinstance(msg, str) or not isinstance(details, str):
        raise ValueError("msg and details must be strings")
    return code, msg, details


def _exit_status(returncode: int) -> str:
    """Go's ``*exec.ExitError`` text: ``exit status 1`` or ``signal: killed``."""
    if returncode < 0:
        try:
            name = signal.strsignal(-returncode) or f"signal {-returncode}"
        except ValueError:
            name = f"signal {-returncode}"
        return f"signal: {name.lower()}"
    return f"exit status {returncode}"


def _quote(raw: bytes, limit: int = 2000) -> str:
    text = raw.decode("utf-8", "replace")
    if len(text) > limit:
        text = text[:limit] + "..."
    return json.dumps(text, ensure_ascii=False)


def _decode_result(stdout: bytes, plugin_type: str, command: str, request_version: str) -> dict[str, Any]:
    try:
        data = json.loads(stdout)
    except ValueError as exc:
        raise DelegateError(protocol.DECODE_FAILURE, f'plugin "{plugin_type}" printed a {command} result that is '
                            f"not JSON: {_quote(stdout, 200)}", str(exc), plugin=plugin_type,
                            command=command) from exc
    if not isinstance(data, dict):
        raise DelegateError(protocol.DECODE_FAILURE, f'plugin "{plugin_type}" printed a {command} result that is '
                            f"not a JSON object: {_quote(stdout, 200)}", plugin=plugin_type, command=command)
    if command == "ADD" and not data.get("cniVersion"):
        data["cniVersion"] = request_version
    return data


# ------------------------------------------------------------------------ VERSION


def version_info(plugin_type: str, *, dirs: Sequence[str], environ: Mapping[str, str],
                 timeout: float = DEFAULT_TIMEOUT, exec_fn: ExecFn | None = None,
                 retry_interval: float = RETRY_INTERVAL) -> list[str]:
    """The spec versions a plugin supports (libcni ``GetVersionInfo``; CNI-47)."""
    request = json.dumps({"cniVersion": LIBCNI_VERSION}).encode()
    try:
        answer = invoke(plugin_type, "VERSION", request, dirs=dirs, environ=environ,
                        request_version=LIBCNI_VERSION, timeout=timeout, exec_fn=exec_fn,
                        retry_interval=retry_interval)
    except DelegateError as exc:
        if exc.msg == "unknown CNI_COMMAND: VERSION":
            return ["0.1.0"]  # a plugin older than VERSION itself
        raise
    assert answer is not None
    return _supported_versions(answer, plugin_type)


def _supported_versions(answer: Mapping[str, Any], plugin_type: str) -> list[str]:
    version = answer.get("cniVersion")
    supported = answer.get("supportedVersions")
    if not isinstance(version, str) or not version:
        raise DelegateError(protocol.DECODE_FAILURE, f'plugin "{plugin_type}" answered VERSION without cniVersion',
                            json.dumps(answer), plugin=plugin_type, command="VERSION")
    if supported is None and version == "0.2.0":
        return ["0.1.0", "0.2.0"]  # the 0.2.0 decoder's special case
    if not isinstance(supported, list) or not supported or not all(isinstance(v, str) for v in supported):
        raise DelegateError(protocol.DECODE_FAILURE,
                            f'plugin "{plugin_type}" answered VERSION without a list of supportedVersions',
                            json.dumps(answer), plugin=plugin_type, command="VERSION")
    return list(supported)
