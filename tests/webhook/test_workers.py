"""webhook.workers: forked workers under a supervisor that forwards signals and reaps.

The supervisor runs in a subprocess (it forks and takes SIGTERM), driven by a tiny
script; each worker writes its pid to a directory and waits for SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.webhook.test_cluster import eventually

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent('''
    import logging, os, signal, sys, time
    from pathlib import Path
    from webhook.workers import run_workers

    logging.basicConfig(level="INFO", stream=sys.stderr, format="%(message)s")
    pids, behaviour = Path(sys.argv[1]), sys.argv[2]
    gone = []
    forks = [0]

    def counted():
        forks[0] += 1

    def at_fork():  # in each new child, before run_workers' own code runs in it
        if behaviour == "term-at-fork" and forks[0] == 1:
            (pids / f"forked-{os.getpid()}").write_text("forked")
            os.kill(os.getpid(), signal.SIGTERM)  # a SIGTERM aimed at the first worker at once
        if behaviour == "orphan-at-fork" and forks[0] == 1:
            parent = os.getppid()
            (pids / f"forked-{os.getpid()}").write_text("forked")
            deadline = time.monotonic() + 20
            while os.getppid() == parent and time.monotonic() < deadline:
                time.sleep(0.01)  # until the test has killed the supervisor

    os.register_at_fork(before=counted, after_in_child=at_fork)

    def work():
        (pids / str(os.getpid())).write_text(str(os.getppid()))
        if behaviour == "fail-at-start":
            return 1
        stop = []
        signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
        while not stop:
            time.sleep(0.02)
        return 3 if behaviour == "dirty-exit" else 0

    code = run_workers(2, work, on_exit=gone.append, restart_delay=0.1)
    print("gone", len(gone), flush=True)
    sys.exit(code)
''')


def start(tmp_path: Path, behaviour: str = "serve") -> subprocess.Popen[str]:
    pids = tmp_path / "pids"
    pids.mkdir()
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(pids), behaviour],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def pids(tmp_path: Path) -> set[int]:
    """The workers that reached ``work()``."""
    return {int(p.name) for p in (tmp_path / "pids").iterdir() if p.name.isdigit()}


def forked(tmp_path: Path) -> int | None:
    """The worker the fork hook of the script held or signalled, once it has."""
    marks = [p.name for p in (tmp_path / "pids").iterdir() if p.name.startswith("forked-")]
    return int(marks[0].removeprefix("forked-")) if marks else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/status").read_text().find("State:\tZ") < 0


def test_sigterm_reaches_every_worker_and_a_clean_stop_exits_0(tmp_path: Path) -> None:
    proc = start(tmp_path)
    assert eventually(lambda: len(pids(tmp_path)) == 2)
    workers = pids(tmp_path)

    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=10)

    assert proc.returncode == 0, err
    assert out.strip() == "gone 2"
    assert "stopped by SIGTERM" in err
    assert not any(alive(pid) for pid in workers)


def test_a_worker_that_dies_later_is_replaced(tmp_path: Path) -> None:
    proc = start(tmp_path)
    try:
        assert eventually(lambda: len(pids(tmp_path)) == 2)
        victim = min(pids(tmp_path))
        time.sleep(0.1)
        os.kill(victim, signal.SIGKILL)
        assert eventually(lambda: len(pids(tmp_path)) == 3)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert f"worker {victim} exited with signal SIGKILL; starting a new one" in err
    assert proc.returncode == 0 and out.strip() == "gone 3"


def test_a_worker_that_fails_at_start_stops_the_others_and_exits_1(tmp_path: Path) -> None:
    proc = start(tmp_path, "fail-at-start")
    out, err = proc.communicate(timeout=15)

    assert proc.returncode == 1
    assert "failed to start; stopping the other workers" in err
    assert out.strip() == "gone 2"


def test_a_worker_that_exits_non_zero_while_stopping_makes_the_stop_exit_1(tmp_path: Path) -> None:
    proc = start(tmp_path, "dirty-exit")
    assert eventually(lambda: len(pids(tmp_path)) == 2)

    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)

    assert proc.returncode == 1
    assert "exited with code 3 while stopping" in err


def test_zero_workers_is_refused() -> None:
    from webhook.workers import run_workers

    with pytest.raises(ValueError, match="need at least one worker, got 0"):
        run_workers(0, lambda: 0)


def test_workers_stop_when_the_supervisor_is_killed_with_sigkill(tmp_path: Path) -> None:
    proc = start(tmp_path)
    try:
        assert eventually(lambda: len(pids(tmp_path)) == 2)
        workers = pids(tmp_path)
        assert {int((tmp_path / "pids" / str(pid)).read_text()) for pid in workers} == {proc.pid}
        proc.kill()  # no handler, no forwarding: only the kernel knows
        proc.wait(timeout=10)
        assert eventually(lambda: not any(alive(pid) for pid in workers), timeout=5)
    finally:
        proc.kill()
        proc.communicate(timeout=10)


def test_a_worker_whose_supervisor_died_before_it_asked_for_the_death_signal_stops(tmp_path: Path) -> None:
    # The first worker is held just after fork() until its supervisor is gone, so the
    # prctl comes too late to be signalled: the getppid() re-check must catch it.
    proc = start(tmp_path, "orphan-at-fork")
    try:
        assert eventually(lambda: forked(tmp_path) is not None)
        orphan = forked(tmp_path)
        assert orphan is not None
        proc.kill()
        proc.wait(timeout=10)
        assert eventually(lambda: not alive(orphan), timeout=5)
        assert orphan not in pids(tmp_path)  # it never began to serve
    finally:
        proc.kill()
        proc.communicate(timeout=10)


def test_a_sigterm_that_reaches_a_worker_before_its_own_handlers_stops_it(tmp_path: Path) -> None:
    # Without the signal mask around fork(), the supervisor's handler (copied into the
    # child) would take that SIGTERM and the worker would go on to serve.
    proc = start(tmp_path, "term-at-fork")
    try:
        assert eventually(lambda: len(pids(tmp_path)) == 2)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    first = forked(tmp_path)
    assert f"worker {first} exited with signal SIGTERM; starting a new one" in err
    assert first not in pids(tmp_path)
    assert proc.returncode == 0 and out.strip() == "gone 3"
