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
