"""``--workers N``: N forked processes serving one listening socket, and their supervisor.

One Python process uses one core for admission decisions (the GIL), so a webhook that
must keep p99 low under a burst of pod creations needs processes. uvicorn's own
multi-process mode starts workers with ``spawn`` and pickles its configuration, which an
``ssl.SSLContext`` and our app cannot survive; forking after the socket is bound needs
neither: every worker inherits the socket, the kernel spreads connections among the
workers that ``accept``, and each builds its own TLS context, index watch and app after
the fork (threads do not survive a fork, so nothing that starts one may run before it).

The supervisor only forwards signals and reaps: SIGTERM/SIGINT go to every worker (each
finishes its requests in flight); a worker that dies on its own is replaced, unless it
died while starting (exit code 1 within ``startup_grace`` seconds: a bad certificate or
an unreachable API server would only fail again), which stops the others and exits 1.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import FrameType

log = logging.getLogger("netplex.webhook")

STARTUP_GRACE = 5.0  # seconds; an exit 1 sooner than this is a start-up failure
RESTART_DELAY = 1.0


def run_workers(
    count: int,
    work: Callable[[], int],
    *,
    on_exit: Callable[[int], None] = lambda pid: None,
    startup_grace: float = STARTUP_GRACE,
    restart_delay: float = RESTART_DELAY,
) -> int:
    """Fork ``count`` workers running ``work()`` (its return is the exit code); supervise.

    Returns 0 when stopped by SIGTERM/SIGINT and every worker exited 0, else 1.
    ``on_exit(pid)`` runs for each worker that is gone (prometheus' ``mark_process_dead``).
    """
    if count < 1:
        raise ValueError(f"need at least one worker, got {count}")
    started: dict[int, float] = {}
    stopping: list[int] = []
    failed = False

    def forward(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)
        for pid in started:
            _signal(pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for _ in range(count):
            pid = _fork(work, previous)
            started[pid] = time.monotonic()
            if stopping:  # the signal came between fork() and the line above
                _signal(pid, signal.SIGTERM)
        log.info("supervising %d workers: %s", count, " ".join(map(str, sorted(started))))
        while started:
            pid, status = _wait()
            if pid not in started:
                continue
            began = started.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            on_exit(pid)
            if stopping or failed:
                # -SIGTERM: our own signal reached a worker before it set its handler
                if code not in (0, -signal.SIGTERM):
                    log.warning("worker %d exited with %s while stopping", pid, _describe(code))
                    failed = True
                continue
            if code == 1 and time.monotonic() - began < startup_grace:
                log.error("worker %d failed to start; stopping the other workers", pid)
                failed = True
                for other in started:
                    _signal(other, signal.SIGTERM)
                continue
            log.error("worker %d exited with %s; starting a new one", pid, _describe(code))
            time.sleep(restart_delay)
            if not stopping:
                new = _fork(work, previous)
                started[new] = time.monotonic()
    finally:
        for sig, action in previous.items():
            signal.signal(sig, action)
    if stopping:
        log.info("stopped by %s", signal.Signals(stopping[0]).name)
    return 1 if failed else 0


def _fork(work: Callable[[], int], handlers: Iterable[signal.Signals]) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:  # the worker: default signal handling until its server installs its own
        for sig in handlers:
            signal.signal(sig, signal.SIG_DFL)
        code = work()
    except BaseException:
        log.exception("worker %d crashed", os.getpid())
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _wait() -> tuple[int, int]:
    """``os.wait`` that a signal arriving in the supervisor does not end (PEP 475 retries)."""
    while True:
        try:
            return os.wait()
        except ChildProcessError:
            return -1, 0


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _describe(code: int) -> str:
    return f"signal {signal.Signals(-code).name}" if code < 0 else f"code {code}"


def children_of(pid: int) -> list[int]:
    """Live child processes of ``pid``, from /proc: a supervisor's workers (tests, bench)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out
