"""The plugin's loggers, without importing :mod:`logging` unless a log file is used.

``import logging`` costs about 4 ms on a node's python3 (threading, traceback, weakref,
string ...), paid by every run of the thin plugin, which logs nothing most of the time
(the default ``logLevel`` is ``error``). So the plugin's modules log through
:class:`Logger`:

- when :mod:`logging` is loaded (``plugin.cni.main`` loads and configures it for a
  ``logFile``; the netplex-node daemon always has it), records go to the real logger;
- otherwise ``plugin.cni.main`` has called :func:`configure` with the run's level and,
  with ``logToStderr`` (the default), its stderr: a record at or above the level is
  written there in the very format the stream handler used
  (``2026-12-04 16:43:37,547 [WARNING] netplex: ...``), and anything else is dropped,
  as the real logger would have dropped it. Without a stream, a record from WARNING up
  still reaches Python's last-resort handler, as before: :mod:`logging` is imported then.
"""

from __future__ import annotations

import sys
import time

TYPE_CHECKING = False  # typing is not imported at run time; mypy takes this as True
if TYPE_CHECKING:
    from typing import IO

DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40

NAMES = {DEBUG: "DEBUG", INFO: "INFO", WARNING: "WARNING", ERROR: "ERROR", 50: "CRITICAL"}

threshold = ERROR
"""The run's ``logLevel`` while :mod:`logging` is not loaded (set by :func:`configure`)."""
stream: IO[str] | None = None
"""Where records go while :mod:`logging` is not loaded: the run's stderr, or nowhere."""


def configure(level: int, to: IO[str] | None) -> None:
    global threshold, stream
    threshold, stream = level, to


class Logger:
    """The few methods of :class:`logging.Logger` the plugin calls."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def log(self, level: int, msg: str, *args: object) -> None:
        if "logging" not in sys.modules:
            if level < threshold:
                return
            if stream is not None:
                _write(stream, level, msg % args if args else msg)
                return
            if level < WARNING:
                return
        import logging

        logging.getLogger(self.name).log(level, msg, *args)

    def debug(self, msg: str, *args: object) -> None:
        self.log(DEBUG, msg, *args)

    def info(self, msg: str, *args: object) -> None:
        self.log(INFO, msg, *args)

    def warning(self, msg: str, *args: object) -> None:
        self.log(WARNING, msg, *args)

    def error(self, msg: str, *args: object) -> None:
        self.log(ERROR, msg, *args)


def get_logger(name: str) -> Logger:
    return Logger(name)


def _write(to: IO[str], level: int, message: str) -> None:
    """One line as ``logging.Formatter("%(asctime)s [%(levelname)s] netplex: %(message)s")``
    writes it."""
    now = time.time()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
    to.write(f"{stamp},{int((now - int(now)) * 1000):03d} [{NAMES.get(level, f'Level {level}')}] netplex: {message}\n")
