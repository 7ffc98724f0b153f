"""plugin.cni.logs: the plugin logs without importing logging, in the stream handler's very
format, and drops what the real logger would drop (issue 10 §6)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \[(\w+)\] netplex: (.*)$")

PROBE = """
import io, sys
from plugin.cni import logs
out = io.StringIO()
log = logs.get_logger("netplex.delegate")
logs.configure(logs.INFO, out)
log.debug("not shown %s", 1)
log.info("bridge (ADD): %s", "hello")
log.warning("50%% done")
log.error("no args %s")
lazy = "logging" not in sys.modules
logs.configure(logs.ERROR, None)
log.warning("dropped: below the run's level")
log.error("to the last-resort handler %d", 7)
print(lazy, "logging" in sys.modules)
print(out.getvalue(), end="")
import logging
handler = logging.StreamHandler(io.StringIO())
handler.setFormatter(logging.Formatter("%(asctime)s [%(levelname)s] netplex: %(message)s"))
record = logging.LogRecord("netplex", logging.INFO, "", 0, "bridge (ADD): %s", ("hello",), None)
print(handler.format(record))
"""


def test_lazy_lines_match_the_stream_handlers_and_only_a_printed_record_imports_logging() -> None:
    done = subprocess.run([sys.executable, "-S", "-c", PROBE], capture_output=True, text=True, check=True, cwd=REPO)
    first, *lines = done.stdout.splitlines()
    assert first == "True True"  # nothing imported logging until the record for the last-resort handler
    *lazy, real = lines
    assert [LINE.match(line).groups() for line in lazy] == [  # type: ignore[union-attr]
        ("INFO", "bridge (ADD): hello"), ("WARNING", "50%% done"), ("ERROR", "no args %s")]  # % only with args
    assert LINE.match(real).groups() == ("INFO", "bridge (ADD): hello")  # type: ignore[union-attr]
    assert done.stderr == "to the last-resort handler 7\n"


def test_a_thin_run_logs_to_stderr_in_that_format(tmp_path: Path) -> None:
    """An error after the configuration was read, at the default level (error), with
    logToStderr (the default); before that, there is no level to log at (as before)."""
    conf = ('{"cniVersion": "1.0.0", "name": "n", "type": "netplex", "cniDir": "%s", '
            '"delegates": [{"cniVersion": "1.0.0", "name": "c", "type": "bridge"}]}' % (tmp_path / "cni"))
    env = {"CNI_COMMAND": "GC", "CNI_PATH": "/usr/lib/cni", "PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "plugin.cni.main"], input=conf, env=env, capture_output=True,
                          text=True, check=False)
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    level, message = LINE.match(line).groups()  # type: ignore[union-attr]
    assert (level, message) == ("ERROR", 'GC failed: config version does not allow GC: config is "1.0.0"; '
                                         "GC needs 1.1.0 or later")


def test_runs_at_once_leave_the_netplex_logger_as_they_found_it(tmp_path: Path) -> None:
    """The daemon runs many commands at once in one process. Run A starts, run B starts, A
    ends, B ends: a per-run save and restore would let B "restore" the closed logger A had
    made, for good (caplog and the daemon's own log then lose every netplex record)."""
    import io
    import logging
    import threading
    from collections.abc import Mapping

    from plugin.cni import commands, main

    logger = logging.getLogger("netplex")
    before = (logger.propagate, logger.level, list(logger.handlers))
    in_delegate = {"A": threading.Event(), "B": threading.Event()}
    release = {"A": threading.Event(), "B": threading.Event()}

    def exec_fn(path: str, env: Mapping[str, str], stdin: bytes, timeout: float) -> tuple[int, bytes, bytes]:
        run = env["CNI_CONTAINERID"]
        in_delegate[run].set()
        assert release[run].wait(10)
        return 0, b"", b""

    conf = ('{"cniVersion": "1.0.0", "name": "n", "type": "netplex", "cniDir": "%s", "logLevel": "debug", '
            '"delegates": [{"cniVersion": "1.0.0", "name": "c", "type": "bridge"}]}' % (tmp_path / "cni")).encode()
    errors: dict[str, str] = {}

    def run(name: str) -> None:
        env = {"CNI_COMMAND": "DEL", "CNI_CONTAINERID": name, "CNI_IFNAME": "eth0", "CNI_PATH": "/usr/lib/cni"}
        err = io.StringIO()
        code = main.main(env, io.BytesIO(conf), io.StringIO(), err,
                         env_factory=lambda e: commands.Environment(e, exec_fn=exec_fn))
        errors[name] = f"{code} {err.getvalue()}"

    a, b = threading.Thread(target=run, args=("A",)), threading.Thread(target=run, args=("B",))
    a.start()
    assert in_delegate["A"].wait(10)
    b.start()
    assert in_delegate["B"].wait(10)
    release["A"].set()
    a.join(10)
    assert (logger.propagate, logger.level) == (False, 1)  # B still runs: the logger stays open for it
    release["B"].set()
    b.join(10)
    assert (logger.propagate, logger.level, list(logger.handlers)) == before
    assert errors["A"].startswith("0 ") and errors["B"].startswith("0 ")
