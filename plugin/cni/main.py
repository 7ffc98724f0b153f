"""The ``netplex`` executable: what the container runtime runs for every pod sandbox.

``main(environ, stdin, stdout, stderr) -> int`` is the whole interface (the test seam):
nothing deeper reads ``os.environ`` or ``sys.stdin``. Results and CNI errors go to stdout
as JSON, logs only to stderr or the log file (``logFile``/``logToStderr``).

Start-up cost is paid once per pod sandbox, so this module imports nothing but ``sys``
at the top: VERSION and the "about" text (no ``CNI_COMMAND``) answer from constants,
without ``json``, ``re``, ``typing`` or ``logging``. Every other verb imports what it
needs when it runs; ``ssl`` and ``http.client`` only when the API server is actually
called (``plugin.cni.k8s``): never for a DEL that finds its cache entry, and for STATUS only
when ``clusterNetwork`` is a bare name (which may be a NAD). ``python -m plugin.node.pack``
builds the same entry point as one executable file (a zipapp) for nodes.

Order of checks, as skel (cni.md §10.10): the ``CNI_*`` environment (code 4, every
missing variable named at once), then stdin (6 when it is not JSON), then the
configuration (7, naming the key), then its ``cniVersion`` (1).

Decisions:

- VERSION ignores stdin and answers ``cniVersion`` 1.1.0, as skel does (cni.md §4.5):
  a runtime's decoder only needs a version it knows, and a VERSION run by hand from a
  terminal does not hang waiting for input.
- netplex accepts its own configuration in 0.3.0 … 1.1.0 (``plugin.cni.protocol.PLUGIN_VERSIONS``);
  like skel, CHECK needs 0.4.0 or later and GC and STATUS 1.1.0 (code 1). The
  delegates' versions are independent of it; results are converted to the version the
  runtime asked for.
- An error JSON carries the request's ``cniVersion`` when it is one CNI knows, and no
  ``cniVersion`` before the configuration was read.
- Anything unexpected (a bug) is still a CNI error on stdout (code 999), with the
  traceback in the log: the runtime must never see a Python traceback instead of JSON.
"""

from __future__ import annotations

import _thread
import sys

TYPE_CHECKING = False  # typing costs ~10 ms at start-up; mypy treats this name as True
if TYPE_CHECKING:
    import logging
    from collections.abc import Callable, Mapping
    from typing import IO

    from plugin.cni.commands import Environment
    from plugin.cni.config import PluginConfig

VERSION = "0.1.0"
DAEMON_DOWN = "NETPLEX_DAEMON_DOWN"
"""Set by the thick-mode shim when it runs this thin path because the daemon is not there."""
# Equal to plugin.cni.protocol.PLUGIN_VERSIONS (a test keeps them equal); repeated here so that
# VERSION does not import the protocol module.
PLUGIN_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
_QUOTED = ", ".join(f'"{v}"' for v in PLUGIN_VERSIONS)
VERSION_ANSWER = f'{{"cniVersion": "1.1.0", "supportedVersions": [{_QUOTED}]}}\n'

ABOUT = (
    f"netplex {VERSION}: a delegating CNI plugin (NPWG multi-network, Multus-compatible configuration).\n"
    "A container runtime runs it with CNI_COMMAND=ADD|DEL|CHECK|GC|STATUS|VERSION, the CNI_* "
    "variables and the network configuration on stdin.\n"
    f"CNI protocol versions supported: {', '.join(PLUGIN_VERSIONS)}\n"
)
LOG_LEVELS = {"debug": 10, "verbose": 20, "info": 20, "error": 40, "panic": 50}
# The lowest configuration version that may carry each verb (skel's rule).
VERB_SINCE = {"CHECK": (0, 4, 0), "GC": (1, 1, 0), "STATUS": (1, 1, 0)}


def main(environ: Mapping[str, str], stdin: IO[bytes] | IO[str], stdout: IO[str], stderr: IO[str],
         *, env_factory: Callable[[Mapping[str, str]], Environment] | None = None) -> int:
    """Run one CNI command; the exit status (0 success, 1 a CNI error printed on stdout).

    ``env_factory`` builds the :class:`plugin.cni.commands.Environment` from ``environ``
    (the test seam for delegate execution, timeouts and the device-info directory).
    """
    command = environ.get("CNI_COMMAND", "")
    if command == "":
        stderr.write(ABOUT)
        return 0
    if command == "VERSION":
        stdout.write(VERSION_ANSWER)
        return 0
    return _run(command, environ, stdin, stdout, stderr, env_factory)


def _run(command: str, environ: Mapping[str, str], stdin: IO[bytes] | IO[str], stdout: IO[str],
         stderr: IO[str], env_factory: Callable[[Mapping[str, str]], Environment] | None) -> int:
    import json

    from plugin.cni import logs, protocol

    logging_on = False  # this run holds the "netplex" logger (_enter_logging / _leave_logging)
    version = ""  # the request's cniVersion, once known
    handlers: list[logging.Handler] = []
    try:
        inv = protocol.read_invocation(environ)
        data = _decode_config(_read_stdin(stdin))
        asked = data.get("cniVersion") if isinstance(data, dict) else None
        version = asked if isinstance(asked, str) and asked in protocol.SUPPORTED_VERSIONS else ""
        cfg = _parse_config(data)
        if cfg.log_file or "logging" in sys.modules:
            logging_on = _enter_logging()  # main() may run inside a bigger process (the daemon, tests)
            handlers = _setup_logging(cfg, stderr)
        else:  # stderr at most: logging is not even imported (plugin.cni.logs)
            logs.configure(LOG_LEVELS.get(cfg.log_level, logs.ERROR), stderr if cfg.log_to_stderr else None)
        _check_version(cfg.cni_version, inv.command)
        daemon_down = environ.get(DAEMON_DOWN)
        if daemon_down is not None:
            environ = {name: value for name, value in environ.items() if name != DAEMON_DOWN}
            _check_fallback(inv.command, cfg, daemon_down)
        from plugin.cni import commands

        env = env_factory(environ) if env_factory is not None else commands.Environment(environ)
        if inv.command == "ADD":
            result = commands.cmd_add(cfg, inv, env, cfg.cni_version)
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
    except protocol.CniError as exc:
        stdout.write(exc.to_json(version) + "\n")
        if handlers:
            _logger().error("%s failed: %s", command, exc)
        elif logs.stream is not None:
            logs.get_logger("netplex").error("%s failed: %s", command, exc)
        return 1
    except Exception as exc:  # a bug: still JSON on stdout, the traceback in the log
        if handlers:
            _logger().exception("%s failed unexpectedly", command)
        else:
            import traceback

            if logs.stream is not None:
                logs.get_logger("netplex").error("%s failed unexpectedly", command)
            traceback.print_exc(file=stderr)
        error = protocol.CniError(protocol.INTERNAL, f"internal error during {command}: {type(exc).__name__}: {exc}")
        stdout.write(error.to_json(version) + "\n")
        return 1
    finally:
        logs.configure(logs.ERROR, None)
        if logging_on:
            logger = _logger()
            for handler in handlers:
                logger.removeHandler(handler)
                handler.close()
            _leave_logging()


def _logger() -> logging.Logger:
    import logging

    return logging.getLogger("netplex")


_LOGGING_LOCK = _thread.allocate_lock()
_LOGGING_SAVED: list[tuple[bool, int]] = []  # the logger's settings while runs hold it
_LOGGING_RUNS = [0]


def _enter_logging() -> bool:
    """The first of the runs at once (the daemon serves many) saves the "netplex" logger's
    settings and opens it to every level (each run's handlers filter by its own); the last
    one out restores them. Saving and restoring per run would race: a run that started
    second would "restore" the first one's settings for good."""
    logger = _logger()
    with _LOGGING_LOCK:
        if _LOGGING_RUNS[0] == 0:
            _LOGGING_SAVED.append((logger.propagate, logger.level))
            logger.propagate = False
            logger.setLevel(1)
        _LOGGING_RUNS[0] += 1
    return True


def _leave_logging() -> None:
    logger = _logger()
    with _LOGGING_LOCK:
        _LOGGING_RUNS[0] -= 1
        if _LOGGING_RUNS[0] == 0:
            propagate, level = _LOGGING_SAVED.pop()
            logger.propagate = propagate
            logger.setLevel(level)


def _read_stdin(stdin: IO[bytes] | IO[str]) -> bytes:
    from plugin.cni import protocol

    try:
        data = stdin.read()
    except (OSError, ValueError) as exc:
        raise protocol.CniError(protocol.IO_FAILURE, "cannot read the network configuration from stdin", str(exc)) from exc
    return data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data


def _decode_config(raw: bytes) -> object:
    import json

    from plugin.cni import protocol
    from plugin.model import limits

    problem = limits.depth_problem(limits.text_depth(raw.decode("utf-8", "replace")))
    if problem:  # checked on the text: the decoder and every walk of the result recurse
        raise protocol.CniError(protocol.INVALID_CONFIG, f"invalid netplex configuration: the configuration {problem}")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise protocol.CniError(protocol.DECODE_FAILURE, "error decoding the network configuration from stdin",
                           f"{exc}; the runtime must pass the netplex configuration as a JSON object") from exc


def _parse_config(data: object) -> PluginConfig:
    from plugin.cni import protocol
    from plugin.cni.config import ConfigError, parse_plugin_config

    try:
        return parse_plugin_config(data)
    except ConfigError as exc:
        raise protocol.CniError(protocol.INVALID_CONFIG, f"invalid netplex configuration: {exc}") from exc


def _check_version(version: str, command: str) -> None:
    from plugin.cni import protocol

    if version not in PLUGIN_VERSIONS:
        shown = f'"{version}"' if version else "missing (which means 0.1.0)"
        raise protocol.CniError(protocol.INCOMPATIBLE_VERSION, "incompatible CNI versions",
                           f"config is {shown}, plugin supports [{' '.join(PLUGIN_VERSIONS)}]")
    since = VERB_SINCE.get(command)
    if since is not None and protocol.parse_version(version) < since:
        raise protocol.CniError(protocol.INCOMPATIBLE_VERSION, f"config version does not allow {command}",
                           f'config is "{version}"; {command} needs {".".join(map(str, since))} or later')


def _check_fallback(command: str, cfg: PluginConfig, why: str) -> None:
    """The shim runs this thin path when the daemon cannot be reached (``why``). DEL, CHECK,
    GC and STATUS need only the local cache; ADD needs the API server, so it runs here only
    when this node gives the plugin a kubeconfig of its own (thick mode keeps API
    credentials off the host by default)."""
    if command != "ADD" or cfg.kubeconfig:
        return
    from plugin.cni import protocol

    raise protocol.CniError(
        protocol.TRY_AGAIN_LATER, f"the netplex-node daemon is not running: {why}",
        "ADD needs the daemon (kubectl -n netplex-system get pods -l app.kubernetes.io/component=node); "
        "to let ADD run without it, give the plugin a kubeconfig on this node (\"kubeconfig\" in the netplex "
        "configuration, as netplex-install --thin-fallback writes it)")


def _setup_logging(cfg: PluginConfig, stderr: IO[str]) -> list[logging.Handler]:
    """Handlers for this run (removed again by the caller): stderr and/or ``logFile``.

    Each handler takes only this thread's records, at this run's level: the netplex-node
    daemon runs many commands at once in one process, each with its own stderr and
    ``logFile`` (the logger itself is opened by :func:`_enter_logging`)."""
    import logging
    import threading

    logger = logging.getLogger("netplex")
    level = LOG_LEVELS.get(cfg.log_level, logging.ERROR)
    thread = threading.get_ident()
    fmt = logging.Formatter("%(asctime)s [%(levelname)s] netplex: %(message)s")
    handlers: list[logging.Handler] = []
    if cfg.log_to_stderr:
        handlers.append(logging.StreamHandler(stderr))
    if cfg.log_file:
        try:
            handlers.append(logging.FileHandler(cfg.log_file))
        except OSError as exc:
            stderr.write(f"netplex: cannot open log file {cfg.log_file}: {exc}\n")
    for handler in handlers:
        handler.setFormatter(fmt)
        handler.setLevel(level)
        handler.addFilter(lambda record: record.thread == thread)
        logger.addHandler(handler)
    return handlers


def console_main() -> None:
    """The ``netplex`` console script and the zipapp's entry point."""
    import os

    sys.exit(main(os.environ, sys.stdin.buffer, sys.stdout, sys.stderr))


if __name__ == "__main__":
    console_main()
