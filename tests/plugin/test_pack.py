"""The single-file ``netplex`` (a zipapp) that nodes without a virtualenv install:
built by ``python -m plugin.node.pack``, it runs by itself from anywhere."""

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
    done = subprocess.run([sys.executable, "-m", "plugin.node.pack", "--output", str(output)], cwd=REPO,
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
    assert {"plugin/cni/main.py", "plugin/cni/commands.py", "plugin/cni/k8s.py", "plugin/cni/cache.py"} <= set(names)
    assert "plugin/node/pack.py" not in names
    assert not [n for n in names if n.startswith("plugin/node/")]  # runs in its container only
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


# -- a node whose python3 is another version than the builder's ---------------------------

OTHER_MAGIC = b"\x00\x00\r\n"  # no real interpreter has it


def run_verbose(app: Path, cache: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """VERSION with PYTHONVERBOSE: stderr names the file every module's code came from."""
    env = bare_environ(CNI_COMMAND="VERSION", NETPLEX_CODE_CACHE=str(cache), PYTHONVERBOSE="1")
    return subprocess.run([str(app)], env=env, cwd=cwd, capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL)


def import_of_main(stderr: str) -> str:
    """Where ``plugin.cni.main`` came from: a zipimporter (the archive) or a file loader (a cache)."""
    found = [line for line in stderr.splitlines() if line.startswith("import 'plugin.cni.main' #")]
    assert found, stderr[-2000:]
    return found[-1]


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from plugin.node import pack

    return pack.build(tmp_path_factory.mktemp("foreign") / "netplex", magic=OTHER_MAGIC)


def test_on_another_python_the_plugin_is_compiled_once_into_a_code_cache_and_run_from_it(
    foreign: Path, tmp_path: Path
) -> None:
    import importlib.util

    cache = tmp_path / "code"
    first = run_verbose(foreign, cache, tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    assert json.loads(first.stdout)["supportedVersions"][-1] == "1.1.0"
    (entry,) = cache.iterdir()
    assert entry.name.endswith("-" + importlib.util.MAGIC_NUMBER.hex())
    assert list((entry / "plugin" / "cni" / "__pycache__").glob(f"main.{sys.implementation.cache_tag}.pyc"))
    assert oct(cache.stat().st_mode & 0o777) == "0o700"

    second = run_verbose(foreign, cache, tmp_path)
    assert second.returncode == 0
    assert f"# code object from '{entry}/plugin/cni/__pycache__/main.{sys.implementation.cache_tag}.pyc'" in second.stderr
    assert "zipimporter" not in import_of_main(second.stderr)


def test_a_cache_others_could_write_to_is_not_used_and_a_broken_one_only_costs_speed(
    foreign: Path, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    done = run_verbose(foreign, shared, tmp_path)
    assert done.returncode == 0 and json.loads(done.stdout)["cniVersion"] == "1.1.0"
    assert list(shared.iterdir()) == []  # nothing unpacked where others could swap it
    assert "zipimporter" in import_of_main(done.stderr)  # compiled from the archive's source

    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    done = run_verbose(foreign, blocked, tmp_path)
    assert done.returncode == 0 and json.loads(done.stdout)["cniVersion"] == "1.1.0"


def test_on_the_builders_python_no_cache_is_made(zipapp: Path, tmp_path: Path) -> None:
    cache = tmp_path / "code"
    done = run_verbose(zipapp, cache, tmp_path)
    assert done.returncode == 0
    assert not cache.exists()
