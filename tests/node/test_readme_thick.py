"""README "Try thick mode by hand" runs as written (the daemon, the shim, the fallback),
with the harness of ``tests/plugin/test_readme_by_hand.py``."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.plugin.netns_fixtures import ip, requires_netns, unique
from tests.plugin.test_readme_by_hand import README, REPO, run_section, section_blocks

SECTION = "## Try thick mode by hand"


@pytest.fixture
def names() -> Iterator[dict[str, str]]:
    """README namespace -> the one this run uses; deleted whatever happens."""
    chosen = {"thick-node": unique("npt-node-"), "thick-pod": unique("npt-pod-")}
    yield chosen
    for ns in chosen.values():
        ip("netns", "del", ns, check=False)


def test_the_section_has_the_steps_a_newcomer_needs() -> None:
    script = "\n".join(section_blocks(README.read_text(), SECTION))
    for step in ("netplex-node\" run --socket", "netplex-node\" ready", "-m plugin.node.wire", "-m plugin.node.pack",
                 "CNI_COMMAND=ADD", "kill \"$DAEMON_PID\"", "CNI_COMMAND=DEL", 'rm -r "$DEMO"'):
        assert step in script, step
    assert '"kubeconfig"' not in script  # thick mode: the plugin configuration has no credentials


@requires_netns
@pytest.mark.netns
def test_the_thick_section_adds_net1_through_the_daemon_and_dels_without_it(names: dict[str, str]) -> None:
    if not os.access(REPO / ".venv" / "bin" / "netplex-node", os.X_OK):
        pytest.skip("the section uses the repository's .venv (python -m venv .venv; .venv/bin/pip install -e .)")
    if not os.access("/usr/bin/python3", os.X_OK):
        pytest.skip("the section writes a shim for /usr/bin/python3, which is not installed")
    # A unix socket path has at most 107 bytes: pytest's tmp_path is too deep for one.
    scratch = Path(tempfile.mkdtemp(prefix="npr-", dir="/tmp"))
    try:
        blocks, outputs = run_section(scratch, names, SECTION)
        assert list(scratch.iterdir()) == [], "the scratch directory was not removed"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    def output_of(command: str) -> str:
        found = [i for i, b in enumerate(blocks) if command in b]
        assert found, f"no block runs {command!r}"
        return outputs[found[0]]

    assert output_of("stat -c").strip() == "srw------- root netplex.sock"
    assert output_of("head -1 netplex").strip() == "#!/usr/bin/python3 -IS"
    added = output_of("CNI_COMMAND=ADD")
    assert re.match(r"\[\{'interface': 2, 'address': '10\.88\.0\.\d+/24', 'gateway': '10\.88\.0\.1'\}\]\n", added), added
    assert re.search(r"^eth0@\S+ +UP +10\.88\.0\.\d+/24", added, flags=re.M), added
    assert re.search(r"^net1@\S+ +UP +192\.168\.77\.\d+/24", added, flags=re.M), added
    deleted = output_of("CNI_COMMAND=DEL")
    assert deleted.splitlines()[0].endswith("[INFO] netplex-node: stopped by SIGTERM"), deleted
    assert deleted.splitlines()[1:] == ["DEL: exit 0", "lo"], deleted
    assert not set(names.values()) & set(ip("netns", "list").stdout.split())
