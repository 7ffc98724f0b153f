"""README "Try the plugin by hand" runs as written, so the section cannot rot.

The ``sh`` blocks of that section are run in order by one ``bash -eu -o pipefail``, from
the repository root, as a newcomer would paste them. One thing is changed: the two
namespace names get a random suffix, so that a run never collides with another run or
with a newcomer's own ``netplex-node``; ``mktemp -d`` makes its directory under pytest's
``tmp_path``. Each block's output is kept apart (a marker line is echoed between blocks)
and checked: ``net1`` after ADD, the network-status annotation, nothing left after DEL,
and after the last block no namespace, no directory and no API double.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.plugin.netns_fixtures import ip, requires_netns, unique

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
SECTION = "## Try the plugin by hand"
MARKER = "=== netplex readme block {} ==="


def section_blocks(text: str, title: str = SECTION) -> list[str]:
    """The ``sh`` blocks of the section, in order."""
    start = text.index(title + "\n")
    end = text.find("\n## ", start + len(title))
    section = text[start:end if end != -1 else len(text)]
    return re.findall(r"^```sh\n(.*?)^```$", section, flags=re.M | re.S)


def test_the_section_has_the_steps_a_newcomer_needs() -> None:
    """Runs everywhere (no root needed): the section exists and holds every step."""
    blocks = section_blocks(README.read_text())
    script = "\n".join(blocks)
    for step in ("ip netns add netplex-pod", "-m tests.k8sapi", "CNI_COMMAND=ADD", "ip -n netplex-pod addr",
                 "network-status", "CNI_COMMAND=DEL", "ip netns del netplex-node", 'rm -r "$DEMO"'):
        assert step in script, step


@pytest.fixture
def names() -> Iterator[dict[str, str]]:
    """README name -> the name this run uses; the namespaces are deleted whatever happens."""
    chosen = {"netplex-node": unique("npr-node-"), "netplex-pod": unique("npr-pod-")}
    yield chosen
    for ns in chosen.values():
        ip("netns", "del", ns, check=False)


def run_section(tmp_path: Path, names: dict[str, str], title: str = SECTION) -> tuple[list[str], list[str]]:
    """(blocks as run, their outputs); fails with the whole transcript when a command fails."""
    blocks = section_blocks(README.read_text(), title)
    for readme_name, name in names.items():
        blocks = [b.replace(readme_name, name) for b in blocks]
    script = "".join(f"echo '{MARKER.format(i)}'\n{block}" for i, block in enumerate(blocks))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNI_") and k != "PYTHONPATH"}
    env["TMPDIR"] = str(tmp_path)
    proc = subprocess.Popen(["bash", "-eu", "-o", "pipefail", "-c", script], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    timed_out = False
    try:
        out, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        # The API double runs in the background of that shell: whatever is left of the
        # session started here (nothing, when the section's own clean-up ran) goes too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    if timed_out:
        out, _ = proc.communicate(timeout=10)
        pytest.fail(f"the README section did not finish within 120 s:\n{out}")
    assert proc.returncode == 0, f"the README section failed (exit {proc.returncode}):\n{out}"
    outputs = re.split(r"^=== netplex readme block \d+ ===\n", out, flags=re.M)[1:]
    assert len(outputs) == len(blocks), out
    return blocks, outputs


@requires_netns
@pytest.mark.netns
def test_the_readme_section_adds_net1_and_del_cleans_up(tmp_path: Path, names: dict[str, str]) -> None:
    if not os.access(REPO / ".venv" / "bin" / "netplex", os.X_OK):
        pytest.skip("the section uses the repository's .venv (python -m venv .venv; .venv/bin/pip install -e .)")
    for tool in ("curl", "python3"):
        if subprocess.run(["bash", "-c", f"command -v {tool}"], capture_output=True).returncode != 0:
            pytest.skip(f"the section uses {tool}, which is not installed")
    blocks, outputs = run_section(tmp_path, names)

    def output_of(command: str, after: int = -1) -> tuple[int, str]:
        found = [i for i, b in enumerate(blocks) if command in b and i > after]
        assert found, f"no block runs {command!r} (after block {after})"
        return found[0], outputs[found[0]]

    add, _ = output_of("CNI_COMMAND=ADD")
    at, inside = output_of("ip -n", after=add)
    assert re.search(r"^\d+: eth0@\S+: .*\n(.*\n)*?    inet 10\.88\.0\.\d+/24 ", inside, flags=re.M), inside
    assert re.search(r"^\d+: net1@\S+: .*\n(.*\n)*?    inet 192\.168\.77\.\d+/24 ", inside, flags=re.M), inside

    _, annotation = output_of("network-status", after=at)
    status = json.loads(annotation)
    assert [(s["name"], s["interface"]) for s in status] == [("cluster-net", "eth0"), ("default/data-net", "net1")]

    _, after_del = output_of("CNI_COMMAND=DEL")
    assert re.findall(r"^\d+: (\S+?)[:@]", after_del, flags=re.M) == ["lo"], after_del
    assert "last_reserved_ip.0" in after_del
    assert not re.search(r"^192\.168\.77\.", after_del, flags=re.M), "host-local still holds an address"

    _, log = output_of("wait \"$API_PID\"")
    assert "PATCH /api/v1/namespaces/default/pods/web/status 200" in log
    assert log.rstrip().endswith("stopped")
    assert not set(names.values()) & set(ip("netns", "list").stdout.split())
    assert list(tmp_path.iterdir()) == [], "the scratch directory was not removed"
