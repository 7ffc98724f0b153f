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

A worker never outlives its supervisor, however the supervisor dies (SIGKILL and the OOM
killer included): orphaned workers would keep the port, serve with nobody to restart
them, and make the next ``netplex-webhook`` fail to bind. In a pod the container's PID 1
going takes them along; on a laptop or under systemd (``KillMode=process``) nothing
does. Each worker therefore asks Linux, right after the fork, for the parent-death
signal (``prctl(PR_SET_PDEATHSIG, SIGTERM)``): the kernel sends it SIGTERM when the
supervisor's thread ends, and the worker stops gracefully as if the supervisor had
forwarded a SIGTERM. The supervisor may already be gone before the ``prctl``; the
worker then sees a different ``getppid()`` than the pid it was forked from and sends
itself the same SIGTERM.

Why not a pipe whose write end only the supervisor holds (EOF = supervisor gone)? It is
portable, but the worker must watch it: a thread (created after the fork, for nothing
else) or a reader in uvicorn's event loop, which the server owns. The parent-death
signal needs neither and reaches a worker that is still starting (default action: it
ends at once) or one that serves (uvicorn's handler: graceful stop). Its one condition
is that it follows the *thread* that forked: :func:`run_workers` forks from the thread
that calls it and stays in it until every worker is gone, so that thread ending means
the supervisor ended. Linux only, like the rest of netplex.

Signals and the fork: SIGTERM/SIGINT are blocked from just before ``fork()`` until the
child has put the default handlers back (and the parent has recorded the pid), so a
signal aimed at a worker in between is held, not handled by the supervisor's handler
copied into the child (which would swallow it and leave the worker serving).
"""

from __future__ import annotations

import contextlib
import ctypes
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
DEATH_SIGNAL = signal.SIGTERM  # what a worker gets when its supervisor is gone
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


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
    supervisor = os.getpid()
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        pid = os.fork()
    except BaseException:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        raise
    if pid:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        return pid
    code = 1
    try:  # the worker: default signal handling until its server installs its own
        die_with(supervisor)
        for sig in handlers:
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)  # a held SIGTERM ends us here
        code = work()
    except BaseException:
        log.exception("worker %d crashed", os.getpid())
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def die_with(parent: int) -> None:
    """Have the kernel send :data:`DEATH_SIGNAL` to this process when ``parent`` is gone.

    Call right after the fork, in the child. If ``parent`` died before the ``prctl`` (the
    orphan was already adopted by init or a subreaper), send the signal now instead.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, *[ctypes.c_ulong] * 4]  # int prctl(int option, unsigned long...)
    libc.prctl.restype = ctypes.c_int
    if libc.prctl(_PR_SET_PDEATHSIG, int(DEATH_SIGNAL), 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(errno)}")
    if os.getppid() != parent:
        log.warning("worker %d: supervisor %d is already gone; stopping", os.getpid(), parent)
        os.kill(os.getpid(), DEATH_SIGNAL)


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
