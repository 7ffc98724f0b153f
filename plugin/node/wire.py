"""The daemon's side of the shim ↔ netplex-node wire format, and the shim file itself.

The format (drawn in ``plugin/node/shim.py``, which repeats it with ``int.to_bytes`` as it may
import nothing) is length-prefixed so that the daemon can refuse an oversized request
from its header, before reading a byte of it, and so that stdout and stderr come back
as the exact bytes the thin plugin would have written.
"""

from __future__ import annotations

import re
import socket
import struct
from pathlib import Path

MAGIC = b"NPX1"
REQUEST = struct.Struct("!4sII")  # magic, environment length, stdin length
ANSWER = struct.Struct("!4sIII")  # magic, exit status, stdout length, stderr length
SHIM_SOURCE = Path(__file__).with_name("shim.py")


class WireError(Exception):
    """A request that is not netplex's wire format, or larger than allowed."""


def read_request(sock: socket.socket, max_bytes: int) -> tuple[dict[str, str], bytes]:
    """The ``CNI_*`` environment and the stdin bytes of one request.

    Raises :class:`WireError` for a foreign or oversized request (the size is checked on
    the header, nothing more is read), ``EOFError`` when the peer hangs up early.
    """
    magic, env_len, stdin_len = REQUEST.unpack(recv_exact(sock, REQUEST.size))
    if magic != MAGIC:
        raise WireError(f"not a netplex shim request (starts with {magic!r})")
    if env_len + stdin_len > max_bytes:
        raise WireError(f"the request is {env_len + stdin_len} bytes, more than this daemon's limit of "
                        f"{max_bytes} (netplex-node --max-request-bytes)")
    raw_env = recv_exact(sock, env_len)
    stdin = recv_exact(sock, stdin_len)
    environ: dict[str, str] = {}
    for pair in raw_env.split(b"\0") if raw_env else ():
        name, sep, value = pair.partition(b"=")
        if not sep or not name.startswith(b"CNI_"):
            raise WireError(f"environment entry {pair[:60]!r} is not a CNI_NAME=value pair")
        environ[name.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
    return environ, stdin


def answer(status: int, stdout: bytes, stderr: bytes) -> bytes:
    return ANSWER.pack(MAGIC, status, len(stdout), len(stderr)) + stdout + stderr


def recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            raise EOFError("the peer closed the connection")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def render_shim(*, socket_path: str, thin: str, timeout: float, python: str) -> str:
    """The shim script with a node's settings: what the installer writes to ``<bin>/netplex``.

    ``python`` is the interpreter line's program (``-IS`` is always added: no site, no
    environment variables, no current directory on ``sys.path``).
    """
    for name, value in (("socket", socket_path), ("thin", thin), ("python", python)):
        if not value.startswith("/") or any(c in value for c in "\"\\\n\0 "):
            raise ValueError(f"shim {name} path must be absolute, without quotes, backslashes, spaces or "
                             f"newlines (got {value!r})")
    if not 0 < timeout <= 3600:
        raise ValueError(f"shim timeout must be between 0 and 3600 seconds (got {timeout})")
    text = SHIM_SOURCE.read_text()
    text = re.sub(r"\A#![^\n]*", f"#!{python} -IS", text)
    for name, literal in (("SOCKET", f'"{socket_path}"'), ("THIN", f'"{thin}"'), ("TIMEOUT", repr(float(timeout)))):
        text, count = re.subn(rf"^{name} = .*$", f"{name} = {literal}", text, count=1, flags=re.M)
        if count != 1:
            raise RuntimeError(f"plugin/node/shim.py has no {name} constant to set")
    return text


def main(argv: list[str] | None = None) -> int:
    """``python -m plugin.node.wire``: print a shim for by-hand runs (the installer writes
    the one on nodes)."""
    import argparse
    import shutil
    import sys

    parser = argparse.ArgumentParser(prog="python -m plugin.node.wire", description=main.__doc__)
    parser.add_argument("--socket", default="/run/netplex/netplex.sock", help="the daemon's socket")
    parser.add_argument("--thin", default="/opt/cni/bin/netplex-thin", help="the thin plugin zipapp (fallback)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the daemon's answer")
    parser.add_argument("--python", default=shutil.which("python3") or sys.executable,
                        help="interpreter of the #! line (default: python3 on PATH)")
    args = parser.parse_args(argv)
    try:
        sys.stdout.write(render_shim(socket_path=args.socket, thin=args.thin, timeout=args.timeout,
                                     python=args.python))
    except ValueError as exc:
        parser.error(str(exc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
