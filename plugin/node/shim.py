#!/usr/bin/python3 -IS
"""netplex shim: the /opt/cni/bin/netplex that container runtimes execute in thick mode.

It is the whole per-call cost of thick mode, so it imports only the C halves of os and
socket (``posix``, ``_socket``: ``os.py`` brings posixpath, stat and collections.abc,
``socket.py`` enum, selectors and collections, ~5 ms together on a node's python3) and
``sys``; nothing else (no json, no re, no struct: ``int.to_bytes`` does, no site: ``-IS``);
it is a plain script (no zipimport, no runpy), it leaves with ``_exit`` (what it wrote went
out unbuffered, and an interpreter's orderly shutdown costs ~1 ms), and does one thing: hand the ``CNI_*`` environment and the stdin bytes, verbatim, to the netplex-node
daemon over its root-only unix socket, then write back the daemon's stdout and stderr
bytes and exit with its status. What the runtime sees is what the thin plugin would print.

The installer writes this file with the node's settings in place of the three constants
below (``plugin.node.wire.render_shim``); nothing from the environment changes them.

When the daemon cannot be reached (no socket, connection refused, permission denied),
the thin plugin runs in this process instead (``runpy`` on the zipapp at ``THIN``), told
through ``NETPLEX_DAEMON_DOWN`` why: DEL, CHECK, GC, STATUS and VERSION work from the
local cache without the daemon or the API server; ADD runs only when the netplex
configuration names a plugin kubeconfig, and otherwise fails with a CNI error naming the
socket (``plugin.cni.main``). A daemon that dies or stalls mid-request is a CNI error
(code 11, try again later) after at most ``TIMEOUT`` seconds, never a hang.

Wire format (``plugin.node.wire`` is the daemon's side; these few lines repeat it because
this file may import nothing):
request  ``b"NPX1"``, u32 environment length, u32 stdin length, the environment as
         NUL-separated ``NAME=value`` byte strings, the stdin bytes;
answer   ``b"NPX1"``, u32 exit status, u32 stdout length, u32 stderr length, the bytes.
"""

import _socket
import posix
import sys

SOCKET = "/run/netplex/netplex.sock"
THIN = "/opt/cni/bin/netplex-thin"
TIMEOUT = 300.0

MAGIC = b"NPX1"
ANSWER_SIZE = 16  # magic, status, stdout length, stderr length
TRY_AGAIN_LATER = 11


def main() -> int:
    env = posix.environ  # bytes keys and values: passed on verbatim
    path, timeout = SOCKET, TIMEOUT
    command = env.get(b"CNI_COMMAND", b"")
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        return fallback(path, exc)
    # VERSION and the "about" text take no stdin: a terminal would wait for an EOF.
    stdin = b"" if command in (b"VERSION", b"") else read_all(0)
    cni = b"\0".join(k + b"=" + v for k, v in env.items() if k.startswith(b"CNI_"))
    try:
        try:  # noqa: SIM105  (contextlib.suppress would cost an import)
            sock.sendall(b"".join((MAGIC, u32(len(cni)), u32(len(stdin)), cni, stdin)))
        except (BrokenPipeError, ConnectionResetError):
            pass  # a refusal (peer uid, size) is answered before the request is read: read it
        head = recv_exact(sock, ANSWER_SIZE)
        if head[:4] != MAGIC:
            raise OSError("the answer is not in netplex's wire format")
        status, out_len, err_len = (int.from_bytes(head[at:at + 4], "big") for at in (4, 8, 12))
        out = recv_exact(sock, out_len)
        err = recv_exact(sock, err_len)
    except TimeoutError:
        return fail(stdin, f"netplex-node did not answer within {timeout:g} s",
                    f"socket {path}; the daemon is alive but stuck (see its log), or the shim timeout is too short")
    except (OSError, EOFError) as exc:
        return fail(stdin, f"netplex-node stopped before answering ({describe(exc)})",
                    f"socket {path}; the daemon may have crashed or been restarted: the runtime retries, "
                    "and a DEL cleans up what the interrupted request left")
    finally:
        sock.close()
    write_all(1, out)
    write_all(2, err)
    return status


def fallback(path: str, exc: OSError) -> int:
    """Run the thin plugin here: the daemon is not there to ask."""
    import os
    os.environ["NETPLEX_DAEMON_DOWN"] = f"cannot connect to {path} ({describe(exc)})"
    thin = THIN
    if not os.path.isfile(thin):
        return fail(b"" if os.environ.get("CNI_COMMAND") in ("VERSION", "") else read_all(0),
                    "netplex-node is not running and the thin plugin is missing",
                    f"{os.environ['NETPLEX_DAEMON_DOWN']}; and {thin}, which runs in its place, does not exist: "
                    "reinstall netplex on this node")
    import runpy

    runpy.run_path(thin, run_name="__main__")  # exits with the thin plugin's status (SystemExit)
    sys.stdout.flush()  # in case it returned instead: main's caller leaves with _exit
    sys.stderr.flush()
    return 0


def u32(value: int) -> bytes:
    return value.to_bytes(4, "big")


def read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = posix.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def recv_exact(sock: _socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            raise EOFError("connection closed")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[posix.write(fd, view):]


def describe(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__


def fail(stdin: bytes, msg: str, details: str) -> int:
    """A CNI error result (code 11) on stdout, in the request's cniVersion when it has one.

    Only on a failure: this path may import json (its compile and import would cost
    every call if they were at the top)."""
    import json

    try:
        request = json.loads(stdin)
    except (ValueError, RecursionError):
        request = None
    version = request.get("cniVersion") if isinstance(request, dict) else None
    error: dict[str, object] = {"cniVersion": version} if isinstance(version, str) and version and all(
        c in "0123456789." for c in version) else {}
    error.update(code=TRY_AGAIN_LATER, msg=msg, details=details)
    write_all(1, (json.dumps(error) + "\n").encode())
    return 1


if __name__ == "__main__":
    posix._exit(main())
