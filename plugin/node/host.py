"""The node installer's hands on the host: atomic file writes and the "can the host run it" probe.

Everything the installer writes lands on the host through ``--host-root`` (the host's
``/`` mounted into the container), so paths come in two forms: the *host path*
(``/opt/cni/bin/netplex``, what the runtime and the generated config use) and the
*container path* (``/host/opt/cni/bin/netplex``, what this process opens);
:func:`on_host` maps one to the other.

Writes are atomic (temporary file in the same directory, ``fsync``, ``rename``, ``fsync``
of the directory): the runtime may read the conf dir or exec the plugin at any moment,
and a rename never exposes a half-written file. Renaming over the binary also avoids
Multus' ``cp: ... Text file busy`` loop (reference/multus.md §14.4): a running plugin
keeps its old inode. Temporary names start with ``.`` and end with ``.tmp``, which no
runtime loads as a network config.

The probe runs the installed plugin the way the runtime will, inside the host:
``chroot <host-root> <bin>/netplex`` with ``CNI_COMMAND=VERSION``, after checking that
the interpreter of its ``#!`` line is a new enough Python there. That check also reports
the interpreter's absolute path (``sys.executable``), which thick mode writes into the
shim's ``#!`` line: ``/usr/bin/env`` would cost the shim a PATH search and an extra exec
on every call, and ``-IS`` cannot be passed through it. The ``chroot``
command (not ``os.chroot`` in a ``preexec_fn``) keeps the failure's reason: its exit
status says whether entering the host or running the command failed.
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import subprocess
import zipapp
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from plugin.cni import files

# What a container runtime started by systemd passes to plugins (systemd's default PATH).
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MIN_PYTHON = (3, 11)  # pyproject's requires-python; the plugin uses 3.11 syntax and stdlib
PROBE_TIMEOUT = 10.0
# The version, then the absolute path of the interpreter that ran (empty when Python cannot tell).
PYTHON_VERSION_CODE = 'import sys; print(*sys.version_info[:3], sep="."); print(sys.executable)'
VERSION_STDIN = b'{"cniVersion":"1.0.0"}'
# chroot(1) exits 125 when it could not enter the new root (126/127 when it could not run
# the command, like a shell): only 125 means the installer lacks privileges.
CHROOT_FAILED = 125

PYTHON_HINT = (
    "install python3 >= {min} on the node (the plugin is a Python program started by its "
    "'#!{interpreter}' line); netplex's CNI config stays off this node until then"
)
ROOT_HINT = "run the installer as root (privileged) with the host's / mounted at --host-root"


@dataclass(frozen=True, slots=True)
class HostCheck:
    """The probe's verdict: ``reason`` is one log line when ``ok`` is false.

    ``python`` is the host Python's version and ``executable`` its absolute path, both as
    that Python reported them (empty when the plugin has no ``#!`` line to check).
    """

    ok: bool
    reason: str = ""
    supported_versions: tuple[str, ...] = ()
    python: str = ""
    executable: str = ""


# ------------------------------------------------------------------------ paths and files


def on_host(host_root: str, path: str) -> str:
    """The container path of host path ``path`` (``/host`` + ``/opt/cni/bin`` …)."""
    return os.path.join(host_root, path.lstrip("/"))


def is_host_root(host_root: str) -> bool:
    """True when the container *is* the host's filesystem (tests, or a non-containerised run)."""
    return os.path.realpath(host_root) == "/"


def read_bytes(path: str) -> bytes | None:
    """The file's content, or None when it does not exist."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def atomic_write(path: str, data: bytes, mode: int) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, never a part."""
    files.atomic_write(path, data, mode)


def sync_file(path: str, data: bytes, mode: int) -> bool:
    """Make ``path`` hold ``data`` with ``mode``; False when it already did (nothing touched)."""
    if read_bytes(path) == data:
        if os.stat(path).st_mode & 0o7777 == mode:
            return False
        os.chmod(path, mode)
        return True
    atomic_write(path, data, mode)
    return True


def remove(path: str) -> bool:
    """Delete ``path``; False when it was already gone."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    files.sync_directory(os.path.dirname(path))
    return True


# ------------------------------------------------------------------------ the probe


def check_host(host_root: str, plugin: str, *, chroot: str | None, timeout: float = PROBE_TIMEOUT) -> HostCheck:
    """Can the host run the plugin installed at host path ``plugin``?

    ``chroot`` is the chroot command of this container (None when there is none); it is
    not needed when ``host_root`` is ``/``.
    """
    if chroot is None and not is_host_root(host_root):
        return HostCheck(False, f"cannot check that the host can run {plugin}: no chroot command in the installer "
                                f"image (PATH {os.environ.get('PATH', '')}); use an image with coreutils")
    interpreter = interpreter_of(on_host(host_root, plugin))
    python = executable = ""
    if interpreter:
        out, failure = _output(host_root, [*interpreter, "-c", PYTHON_VERSION_CODE], chroot, {}, b"", timeout)
        python, _, executable = out.decode("utf-8", "replace").strip().partition("\n")
        failure = failure or python_problem(python, interpreter)
        if failure is not None:
            return HostCheck(False, cannot_run(plugin, failure, interpreter, host_root))
    out, failure = _output(host_root, [plugin], chroot, {"CNI_COMMAND": "VERSION"}, VERSION_STDIN, timeout)
    if failure is None:
        versions = supported_versions(out)
        if not isinstance(versions, str):
            return HostCheck(True, supported_versions=versions, python=python, executable=executable.strip())
        failure = versions
    return HostCheck(False, cannot_run(plugin, failure, interpreter, host_root))


def _output(host_root: str, argv: Sequence[str], chroot: str | None, environ: Mapping[str, str], stdin: bytes,
            timeout: float) -> tuple[bytes, str | None]:
    """The command's stdout, and why it failed (None when it exited 0)."""
    done = run_on_host(host_root, argv, chroot=chroot, environ=environ, stdin=stdin, timeout=timeout)
    if isinstance(done, str):
        return b"", done
    return done.stdout, failure_of(argv, done, host_root)


def interpreter_of(path: str) -> list[str]:
    """The ``#!`` line as the kernel splits it: the interpreter and at most one argument."""
    try:
        line = zipapp.get_interpreter(path)
    except (OSError, ValueError):
        return []
    if not line:
        return []
    program, _, argument = line.strip().partition(" ")
    return [program, argument.strip()] if argument.strip() else [program]


def host_command(host_root: str, argv: Sequence[str], chroot: str | None) -> list[str]:
    """``argv`` as run inside the host: directly when we are the host, else through chroot."""
    if is_host_root(host_root) or chroot is None:
        return list(argv)
    return [chroot, host_root, *argv]


def run_on_host(host_root: str, argv: Sequence[str], *, chroot: str | None, environ: Mapping[str, str],
                stdin: bytes, timeout: float) -> subprocess.CompletedProcess[bytes] | str:
    """Run ``argv`` inside the host with the runtime's PATH; a string says why it did not run."""
    command = host_command(host_root, argv, chroot)
    env = {"PATH": HOST_PATH, "LC_ALL": "C", **environ}
    shown = shlex.join(command)
    try:
        return subprocess.run(command, input=stdin, env=env, capture_output=True, timeout=timeout, check=False,
                              cwd="/")
    except subprocess.TimeoutExpired:
        return f"`{shown}` did not finish within {timeout:g}s"
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return f"`{shown}` cannot start: {exc.strerror} (the file or its #! interpreter is missing)"
        return f"`{shown}` cannot start: {exc.strerror or exc}"


def failure_of(argv: Sequence[str], done: subprocess.CompletedProcess[bytes], host_root: str) -> str | None:
    """None when the command exited 0, else what went wrong, with its last stderr line."""
    if done.returncode == 0:
        return None
    lines = [ln.strip() for ln in done.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    last = lines[-1][:300] if lines else "no error output"
    shown = shlex.join(argv) if is_host_root(host_root) else f"chroot {host_root} {shlex.join(argv)}"
    status = f"killed by signal {-done.returncode}" if done.returncode < 0 else f"exit status {done.returncode}"
    return f"`{shown}` failed ({status}: {last})"


def python_problem(version: str, interpreter: Sequence[str]) -> str | None:
    """Why the host's Python is not enough for the plugin, or None."""
    try:
        found = tuple(int(part) for part in version.split(".")[:3])
    except ValueError:
        return f"`{' '.join(interpreter)}` did not report its version (got {json.dumps(version[:80])})"
    if found[:2] < MIN_PYTHON:
        return f"`{' '.join(interpreter)}` on the host is Python {version} (got {json.dumps(version)})"
    return None


def supported_versions(stdout: bytes) -> tuple[str, ...] | str:
    """``supportedVersions`` from a VERSION answer, or why the answer is not one."""
    text = stdout.decode("utf-8", "replace").strip()
    try:
        answer = json.loads(text)
    except ValueError:
        answer = None
    versions = answer.get("supportedVersions") if isinstance(answer, dict) else None
    if not isinstance(versions, list) or not versions or not all(isinstance(v, str) for v in versions):
        return f"VERSION did not answer JSON with supportedVersions (got {json.dumps(text[:120])})"
    return tuple(versions)


def cannot_run(plugin: str, failure: str, interpreter: Sequence[str], host_root: str) -> str:
    """The one log line (and readiness reason) for a host that cannot run the plugin."""
    if f"exit status {CHROOT_FAILED}:" in failure and not is_host_root(host_root):
        hint = ROOT_HINT
    else:
        hint = PYTHON_HINT.format(min=".".join(map(str, MIN_PYTHON)),
                                  interpreter=" ".join(interpreter) or "/usr/bin/env python3")
    return f"the host cannot run the netplex plugin {plugin}: {failure}; {hint}"
