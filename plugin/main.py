"""The ``netplex`` executable: what the container runtime runs for every pod sandbox.

``main(environ, stdin, stdout, stderr) -> int`` is the whole interface (the test seam):
nothing deeper reads ``os.environ`` or ``sys.stdin``. Results and CNI errors go to stdout
as JSON, logs only to stderr or the log file. Start-up imports only the standard library;
``ssl`` and ``http.client`` are imported only when the API server is actually called,
so VERSION, STATUS and a cached DEL never pay for them.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from typing import IO, Any

from plugin import cni
from plugin.config import ConfigError, PluginConfig, parse_plugin_config

VERSION = "0.1.0"
ABOUT = (
    f"netplex {VERSION}: a delegating CNI plugin (NPWG multi-network, Multus-compatible configuration).\n"
    "Run by a container runtime with CNI_COMMAND=ADD|DEL|CHECK|GC|STATUS|VERSION and the network "
    "configuration on stdin.\n"
    f"CNI versions supported: {', '.join(cni.PLUGIN_VERSIONS)}\n"
)
LEVELS = {"debug": logging.DEBUG, "verbose": logging.INFO, "info": logging.INFO,
          "error": logging.ERROR, "panic": logging.CRITICAL}


def _setup_logging(cfg: PluginConfig, stderr: IO[str]) -> None:
    logger = logging.getLogger("netplex")
    logger.handlers.clear()
    logger.propagate = False
    logger.setLevel(LEVELS.get(cfg.log_level, logging.ERROR))
    fmt = logging.Formatter("%(asctime)s netplex %(levelname)s %(message)s")
    if cfg.log_to_stderr:
        handler = logging.StreamHandler(stderr)
        handler.setFormatter(fmt)
        logger.addHandler(handler)
    if cfg.log_file:
        try:
            file_handler = logging.FileHandler(cfg.log_file)
        except OSError as exc:
            print(f"netplex: cannot open log file {cfg.log_file}: {exc}", file=stderr)
        else:
            file_handler.setFormatter(fmt)
            logger.addHandler(file_handler)
    for name in ("netplex.delegate",):
        logging.getLogger(name).parent = logger


def _read_stdin(stdin: IO[bytes] | IO[str]) -> bytes:
    try:
        data = stdin.read()
    except OSError as exc:
        raise cni.CniError(cni.IO_FAILURE, "cannot read the configuration from stdin", str(exc)) from exc
    return data.encode("utf-8") if isinstance(data, str) else data


def _load_config(raw: bytes) -> tuple[PluginConfig, Mapping[str, Any]]:
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise cni.CniError(cni.DECODE_FAILURE, "cannot decode the network configuration", str(exc)) from exc
    try:
        return parse_plugin_config(data), data
    except ConfigError as exc:
        raise cni.CniError(cni.INVALID_CONFIG, "invalid netplex configuration", str(exc)) from exc


def run(environ: Mapping[str, str], stdin: IO[bytes] | IO[str], stdout: IO[str], stderr: IO[str],
        env_factory: Any = None) -> int:
    command = environ.get("CNI_COMMAND", "")
    if command == "":
        stderr.write(ABOUT)
        return 0
    request_version = cni.PLUGIN_VERSIONS[-1]
    try:
        if command == "VERSION":
            raw = _read_stdin(stdin)
            try:
                asked = json.loads(raw).get("cniVersion", request_version) if raw.strip() else request_version
            except (ValueError, AttributeError):
                asked = request_version
            stdout.write(json.dumps(cni.version_result(str(asked))) + "\n")
            return 0
        inv = cni.read_invocation(environ)
        cfg, _ = _load_config(_read_stdin(stdin))
        request_version = cfg.cni_version or "0.1.0"
        if request_version not in cni.PLUGIN_VERSIONS:
            raise cni.CniError(cni.INCOMPATIBLE_VERSION, "incompatible CNI versions",
                               f'config is "{request_version}", plugin supports {list(cni.PLUGIN_VERSIONS)}')
        _setup_logging(cfg, stderr)
        from plugin import commands

        env = env_factory(environ) if env_factory else commands.Environment(environ)
        if inv.command == "ADD":
            result = commands.cmd_add(cfg, inv, env, request_version)
            stdout.write(json.dumps(result) + "\n")
        elif inv.command == "DEL":
            commands.cmd_del(cfg, inv, env)
        elif inv.command == "CHECK":
            commands.cmd_check(cfg, inv, env)
        elif inv.command == "GC":
            commands.cmd_gc(cfg, inv, env)
        elif inv.command == "STATUS":
            commands.cmd_status(cfg, inv, env)
        return 0
    except cni.CniError as exc:
        stdout.write(exc.to_json(request_version) + "\n")
        logging.getLogger("netplex").error("%s failed: %s %s", command, exc.msg, getattr(exc, "details", ""))
        return 1
    except Exception as exc:  # never a traceback on stdout: the runtime parses it
        logging.getLogger("netplex").exception("%s failed unexpectedly", command)
        stdout.write(cni.CniError(cni.INTERNAL, f"internal error during {command}", repr(exc)).to_json(request_version) + "\n")
        return 1


def main(environ: Mapping[str, str], stdin: IO[bytes] | IO[str], stdout: IO[str], stderr: IO[str]) -> int:
    return run(environ, stdin, stdout, stderr)


def console_main() -> None:
    import os

    sys.exit(main(os.environ, sys.stdin.buffer, sys.stdout, sys.stderr))


if __name__ == "__main__":
    console_main()
