"""Fuzzing the plugin's ``main()`` (issue 11 §5), bounded for CI.

``plugin.cni.main.main`` runs in this process with random environments (every ``CNI_*``
variable present or not, valid or random text) and random stdin (random bytes, random
JSON, and netplex configurations with random values under the keys it reads, wrong types
included). Property: exit 0 or 1; on 1 exactly one CNI error JSON document on stdout with a
``code`` other than 999 (999 is a bug: every input-caused failure has a spec code) and a
message; on 0 nothing on stdout or exactly one JSON result; never a traceback.

What the plugin could touch is fenced in: every path it may write (``cniDir``,
``logFile``, ...) is a wrong type or lies under the test's directory, and delegates are
never executed: ``exec_fn`` answers as a plugin would (a result for ADD, nothing for DEL, a
version list for VERSION) without running anything.

A failure prints the ``@reproduce_failure`` blob; CI runs are derandomized.
``bench/fuzz.py`` runs the same property for 100,000+ inputs.
"""

from __future__ import annotations

import atexit
import io
import json
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugin.cni import commands, main

CI = settings(max_examples=600, deadline=None, derandomize=True, print_blob=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

any_char = st.characters(codec=None, exclude_categories=())  # surrogates included
text = st.text(any_char, max_size=30) | st.sampled_from(
    ["", "a", "eth0", "net1", "cid1", "../x", "a" * 300, "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web",
     "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_UID=1;IgnoreUnknown=1", "a=b=c;;=", "=", ";",
     "1.0.0", "0.3.1", "1.1.0", "0.1.0", "9" * 5000, "\ud800", "/", "\x00"])
scalar = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | text
json_value = st.recursive(scalar, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(text, inner, max_size=4), max_leaves=10)


def deep(depth: int) -> Any:
    value: Any = 1
    for i in range(depth):
        value = [value] if i % 2 else {"a": value}
    return value


weird = json_value | st.integers(30, 1200).map(deep)
VERBS = ["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION"]


def mostly(draw: st.DrawFn, valid: st.SearchStrategy[Any], wrong: st.SearchStrategy[Any], one_in: int = 8) -> Any:
    """A valid value, a wrong one about once in ``one_in`` draws (not on 0: hypothesis
    draws the simplest value far more often than its share)."""
    return draw(wrong) if draw(st.integers(0, one_in - 1)) == one_in // 2 else draw(valid)


@st.composite
def environments(draw: st.DrawFn, root: str) -> dict[str, str]:
    """Mostly what a runtime passes, each variable sometimes missing or random."""
    env: dict[str, str] = {"PATH": "/usr/bin:/bin"}
    values = {
        "CNI_COMMAND": (st.sampled_from(VERBS), st.sampled_from(["", "add", "VERSION "]) | text),
        "CNI_CONTAINERID": (st.sampled_from(["cid1", "abc.def-1_2"])
                            | st.text("abcdef0123456789", min_size=1, max_size=12), text),
        "CNI_NETNS": (st.sampled_from([f"{root}/no-netns", "/proc/self/ns/net-not"]), text),
        "CNI_IFNAME": (st.sampled_from(["eth0", "net1"]), st.sampled_from(["a" * 16, "lo", "eth0/x", "."]) | text),
        "CNI_ARGS": (st.sampled_from(["K8S_POD_NAMESPACE=default;K8S_POD_NAME=web", ""]), text),
        "CNI_PATH": (st.just(f"{root}/bin"), st.sampled_from([f"{root}/bin:{root}/none", "", ":"])),
    }
    for name, (valid, wrong) in values.items():
        if draw(st.integers(0, 19)) != 10:
            env[name] = mostly(draw, valid, wrong)
    return {k: v.replace("\x00", "") for k, v in env.items()}


@st.composite
def configurations(draw: st.DrawFn, root: str) -> bytes:
    """The config on stdin: mostly a netplex configuration, random values under its keys."""
    shape = draw(st.integers(0, 29))
    if shape == 7:
        return draw(st.binary(max_size=300))
    if shape == 8:
        return json.dumps(draw(weird)).encode()
    if shape == 9:
        return b"[" * 20_000
    inside = st.sampled_from([f"{root}/cni", f"{root}/cni/deeper", f"{root}/file", f"{root}/none/x", root,
                              f"{root}/log"])
    path_value = inside | st.none() | st.integers() | st.lists(inside, max_size=2) | st.just({})
    fake = {"cniVersion": "1.0.0", "name": "cluster-net", "type": "fake-a"}
    delegate = st.one_of(
        st.just(fake),
        st.just({"cniVersion": "1.0.0", "name": "chain", "plugins": [{"type": "fake-a"}, {"type": "fake-b"}]}),
        st.fixed_dictionaries({"cniVersion": text, "name": text, "type": st.just("fake-a") | text},
                              optional={"plugins": weird, "capabilities": weird, "ipam": weird}),
        weird)
    conf: dict[str, Any] = {
        "cniVersion": mostly(draw, st.sampled_from(main.PLUGIN_VERSIONS), text | weird),
        "name": mostly(draw, st.just("netplex"), text | weird),
        "type": "netplex",
        "cniDir": mostly(draw, st.just(f"{root}/cni"), path_value),
        "binDir": mostly(draw, st.just(f"{root}/bin"), path_value),
        "delegates": mostly(draw, st.lists(delegate, min_size=1, max_size=3), weird),
    }
    optional = {  # key: (a valid value, a wrong one)
        "clusterNetwork": (st.just("cluster-net"), text | weird),
        "defaultNetworks": (st.lists(st.sampled_from(["a", "default/b"]), max_size=2), weird),
        "logFile": (st.just(f"{root}/log"), path_value),
        "logLevel": (st.sampled_from(["debug", "verbose", "error", "panic"]), text | weird),
        "logToStderr": (st.booleans(), weird),
        "confDir": (st.just(f"{root}/conf"), path_value),
        "kubeconfig": (st.just(f"{root}/kubeconfig"), path_value),
        "readinessindicatorfile": (st.just(f"{root}/file"), path_value),
        "namespaceIsolation": (st.booleans(), weird),
        "globalNamespaces": (st.just("default,blue"), weird),
        "systemNamespaces": (st.lists(st.just("kube-system"), max_size=1), weird),
        "multusNamespace": (st.just("kube-system"), weird),
        "runtimeConfig": (st.just({"portMappings": []}), weird),
        "prevResult": (st.just({"cniVersion": "1.0.0", "ips": []}), weird),
        "CNIDIR": (st.just(f"{root}/cni"), path_value),
    }
    for key, (valid, wrong) in optional.items():
        if draw(st.integers(0, 5)) == 3:
            conf[key] = mostly(draw, valid, wrong, 3)
    if draw(st.integers(0, 9)) == 3:
        conf[draw(text)] = draw(weird)
    raw = json.dumps(conf).encode()
    if draw(st.integers(0, 19)) == 11:  # cut short
        raw = raw[: draw(st.integers(0, len(raw)))]
    return raw


def fake_exec(path: str, env: Mapping[str, str], stdin: bytes, timeout: float) -> tuple[int, bytes, bytes]:
    """A delegate that answers without running: a result for ADD, VERSION's list, else nothing."""
    command = env.get("CNI_COMMAND", "")
    if command == "ADD":
        return 0, b'{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/x"}],"ips":[]}', b""
    if command == "VERSION":
        return 0, b'{"cniVersion":"1.1.0","supportedVersions":["0.3.1","1.0.0","1.1.0"]}', b""
    return 0, b"", b""


def check_main(root: str, environ: dict[str, str], stdin: bytes) -> None:
    """The property."""
    def environment(env: Mapping[str, str]) -> commands.Environment:
        return commands.Environment(env, exec_fn=fake_exec, readiness_timeout=0.0, pod_attempts=1, pod_delay=0.0,
                                    lock_timeout=1.0, device_info_dir=f"{root}/devinfo")

    out, err = io.StringIO(), io.StringIO()
    code = main.main(environ, io.BytesIO(stdin), out, err, env_factory=environment)
    stdout, stderr = out.getvalue(), err.getvalue()
    assert "Traceback" not in stderr, stderr
    command = environ.get("CNI_COMMAND", "")
    if command == "":
        assert (code, stdout) == (0, ""), (code, stdout)
        return
    assert code in (0, 1), code
    if code == 0:
        assert command in VERBS, command
        if stdout:  # one JSON document (indented as the reference plugins print it)
            assert isinstance(json.loads(stdout).get("cniVersion"), str), stdout
        return
    error = json.loads(stdout)  # exactly one JSON document, or this raises
    assert isinstance(error["code"], int) and error["code"] != 999, error
    assert isinstance(error["msg"], str) and error["msg"], error


ROOT = tempfile.mkdtemp(prefix="netplex-fuzz-")
atexit.register(shutil.rmtree, ROOT, True)


def prepare(root: str) -> None:
    """The fenced-in directory: a bin directory with fake-a and fake-b (never executed)."""
    for name in ("fake-a", "fake-b"):
        path = Path(root) / "bin" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/false\n")
        path.chmod(0o755)
    (Path(root) / "file").write_text("a file, not a directory\n")


prepare(ROOT)


@CI
@given(environ=environments(ROOT), stdin=configurations(ROOT))
def test_main_answers_any_environment_and_stdin_with_one_cni_json_and_never_999(
        environ: dict[str, str], stdin: bytes) -> None:
    check_main(ROOT, environ, stdin)


# ---------------------------------------------------------------------- what the fuzz found


def test_a_cni_dir_that_is_a_file_is_a_config_error_naming_it_not_an_internal_error(tmp_path: Path) -> None:
    """Found by the fuzz: ``cniDir`` naming a file made ADD, DEL, CHECK and GC answer 999
    (the lock directory could not be made). Main fixed the same meanwhile (code 7 naming
    ``cniDir``, ``plugin.cni.cache.CacheDirError``); this holds it for every verb."""
    prepare(str(tmp_path))
    conf = {"cniVersion": "1.1.0", "name": "netplex", "type": "netplex", "cniDir": f"{tmp_path}/file",
            "binDir": f"{tmp_path}/bin", "delegates": [{"cniVersion": "1.0.0", "name": "cluster-net", "type": "fake-a"}]}
    why = (f'"cniDir" {tmp_path}/file is a file, not a directory; set "cniDir" to a directory (netplex creates it '
           "when it is missing)")
    for command, msg in (("ADD", "cannot lock container cid1"), ("DEL", "cannot lock container cid1"),
                         ("CHECK", "cannot lock container cid1"),
                         ("GC", "cannot lock the cache for garbage collection")):
        environ = {"CNI_COMMAND": command, "CNI_CONTAINERID": "cid1", "CNI_NETNS": f"{tmp_path}/netns",
                   "CNI_IFNAME": "eth0", "CNI_PATH": f"{tmp_path}/bin"}
        out, err = io.StringIO(), io.StringIO()
        code = main.main(environ, io.BytesIO(json.dumps(conf).encode()), out, err,
                         env_factory=lambda env: commands.Environment(env, exec_fn=fake_exec, lock_timeout=1.0))
        assert code == 1
        assert json.loads(out.getvalue()) == {"cniVersion": "1.1.0", "code": 7, "msg": msg, "details": why}


def test_gc_with_a_cluster_network_that_cannot_be_found_is_code_7_not_999(tmp_path: Path) -> None:
    """Found by the fuzz: GC collects its problems and answered 999 for all of them, even
    when the one problem was the configuration's (a ``clusterNetwork`` not in ``confDir``).
    One cause keeps its code; a mix of causes is still 999."""
    prepare(str(tmp_path))
    conf = json.dumps({"cniVersion": "1.1.0", "name": "netplex", "type": "netplex", "cniDir": f"{tmp_path}/cni",
                       "binDir": f"{tmp_path}/bin", "confDir": f"{tmp_path}/conf",
                       "clusterNetwork": "cluster-net"}).encode()
    environ = {"CNI_COMMAND": "GC", "CNI_PATH": f"{tmp_path}/bin"}
    out, err = io.StringIO(), io.StringIO()
    code = main.main(environ, io.BytesIO(conf), out, err, env_factory=lambda env: commands.Environment(
        env, exec_fn=fake_exec, lock_timeout=1.0))
    assert code == 1
    assert json.loads(out.getvalue()) == {
        "cniVersion": "1.1.0", "code": 7, "msg": "garbage collection finished with 1 error",
        "details": 'GC of the cluster network: cannot resolve the cluster network: cannot find network '
                   f'"cluster-net": no CNI config named "cluster-net" in {tmp_path}/conf'}


def test_gc_logs_an_unreadable_cache_entry_and_succeeds(tmp_path: Path) -> None:
    """Found by the fuzz (a ``logFile`` inside ``cniDir``): GC answered 999 for a file in the
    cache directory that is no entry, at every run. GC cannot delete without an entry (it
    knows no netns nor interface), so it logs the file and goes on; the container's DEL
    deletes without it."""
    prepare(str(tmp_path))
    (tmp_path / "cni").mkdir()
    (tmp_path / "cni" / "stray").write_text("netplex.log lines, not an entry\n")
    conf = json.dumps({"cniVersion": "1.1.0", "name": "netplex", "type": "netplex", "cniDir": f"{tmp_path}/cni",
                       "binDir": f"{tmp_path}/bin", "logLevel": "verbose",
                       "delegates": [{"cniVersion": "1.0.0", "name": "cluster-net", "type": "fake-a"}]}).encode()
    out, err = io.StringIO(), io.StringIO()
    code = main.main({"CNI_COMMAND": "GC", "CNI_PATH": f"{tmp_path}/bin"}, io.BytesIO(conf), out, err,
                     env_factory=lambda env: commands.Environment(env, exec_fn=fake_exec, lock_timeout=1.0))
    assert (code, out.getvalue()) == (0, "")
    assert f"GC: corrupt cache entry {tmp_path}/cni/stray: Expecting value: line 1 column 1 (char 0); left in " \
           "place" in err.getvalue()
    assert (tmp_path / "cni" / "stray").exists()


def test_a_delegate_cni_version_of_5000_digits_is_code_7_naming_it(tmp_path: Path) -> None:
    """Found by the fuzz: such a ``cniVersion`` in ``delegates`` made ADD answer 999 (the
    shared NAD parser called int() on it, which refuses 4300+ digits)."""
    prepare(str(tmp_path))
    conf = json.dumps({"cniVersion": "1.0.0", "name": "netplex", "type": "netplex", "cniDir": f"{tmp_path}/cni",
                       "binDir": f"{tmp_path}/bin",
                       "delegates": [{"cniVersion": "9" * 5000, "name": "cluster-net", "type": "fake-a"}]}).encode()
    environ = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "cid1", "CNI_NETNS": f"{tmp_path}/netns",
               "CNI_IFNAME": "eth0", "CNI_PATH": f"{tmp_path}/bin"}
    out, err = io.StringIO(), io.StringIO()
    code = main.main(environ, io.BytesIO(conf), out, err,
                     env_factory=lambda env: commands.Environment(env, exec_fn=fake_exec))
    assert code == 1
    error = json.loads(out.getvalue())
    assert (error["code"], error["msg"]) == (7, "cannot resolve the pod's networks")
    assert error["details"].startswith("invalid CNI configuration delegates[0]: delegates[0].cniVersion: cniVersion "
                                       'is not a CNI spec version (got "9999')
