"""The single-file ``netplex`` (a zipapp) that nodes without a virtualenv install:
built by ``python -m plugin.pack``, it runs by itself from anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.plugin.netns_fixtures import FakePlugins, fake_conflist, fake_plugins_fixture  # noqa: F401

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def zipapp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("dist") / "netplex"
    done = subprocess.run([sys.executable, "-m", "plugin.pack", "--output", str(output)], cwd=REPO,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(output)
    return output


def bare_environ(**cni: str) -> dict[str, str]:
    """No PYTHONPATH, no virtualenv: what a runtime on a node passes."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **cni}


def test_build_holds_the_plugin_package_only_and_is_executable(zipapp: Path) -> None:
    assert os.access(zipapp, os.X_OK)
    assert zipapp.read_bytes().startswith(b"#!/usr/bin/env python3\n")
    with zipfile.ZipFile(zipapp) as archive:
        names = archive.namelist()
    assert "__main__.py" in names
    assert {"plugin/main.py", "plugin/commands.py", "plugin/k8s.py", "plugin/cache.py"} <= set(names)
    assert "plugin/pack.py" not in names
    assert not [n for n in names if n.startswith("plugin/install")]  # runs in its container only
    assert not [n for n in names if n.split("/")[0] not in ("plugin", "__main__.py")]


def test_version_runs_from_a_directory_without_the_repository(zipapp: Path, tmp_path: Path) -> None:
    done = subprocess.run([str(zipapp)], env=bare_environ(CNI_COMMAND="VERSION"), cwd=tmp_path,
                          capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"cniVersion": "1.1.0",
                                       "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]}


def test_add_and_del_run_from_the_single_file(zipapp: Path, tmp_path: Path, fake_plugins: FakePlugins) -> None:
    """Every module the verbs import lazily is inside the archive."""
    conf = json.dumps({"cniVersion": "1.0.0", "name": "n", "type": "netplex", "cniDir": str(tmp_path / "cni"),
                       "binDir": fake_plugins.dir, "delegates": [fake_conflist({"type": "fake-a"})]})
    environ = bare_environ(CNI_CONTAINERID="c1", CNI_NETNS="/run/netns/none", CNI_IFNAME="eth0",
                           CNI_PATH=fake_plugins.dir, CNI_ARGS="K8S_POD_NAMESPACE=default;K8S_POD_NAME=web")
    for command in ("ADD", "DEL"):
        done = subprocess.run([str(zipapp)], input=conf, env={**environ, "CNI_COMMAND": command}, cwd=tmp_path,
                              capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
    assert [c["command"] for c in fake_plugins.calls()] == ["ADD", "DEL"]


def test_errors_from_the_single_file_are_cni_json(zipapp: Path, tmp_path: Path) -> None:
    done = subprocess.run([str(zipapp)], input="{}", env=bare_environ(CNI_COMMAND="DEL"), cwd=tmp_path,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert json.loads(done.stdout)["msg"] == "required env variables [CNI_CONTAINERID,CNI_IFNAME,CNI_PATH] missing"
