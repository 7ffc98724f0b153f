"""``netplexctl check``: the seeds pass, the broken variants fail with field and fix."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from webhook import ctl

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SEEDS = FIXTURES / "seeds"
BROKEN = FIXTURES / "broken.yaml"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(*argv: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = ctl.main(list(argv), stdout=out, stderr=err, stdin=io.StringIO(stdin))
    return code, out.getvalue(), err.getvalue()


def test_seed_examples_pass() -> None:
    code, out, err = run("check", str(SEEDS / "nads.yaml"), str(SEEDS / "pods.yaml"))
    errors = [line for line in out.splitlines() if ": warning: " not in line]
    assert errors == []
    assert code == 0, out
    assert "objects checked: 0 errors" in err


def test_seed_warnings_are_the_expected_ones() -> None:
    code, out, _ = run("check", "-o", "json", str(SEEDS))
    report = json.loads(out)
    assert code == 0
    assert report["errors"] == 0
    warned = {(f["name"], f["path"]) for f in report["findings"]}
    # The Intel seed's NAD "macvlan" has no cniVersion and names its network "mynet".
    assert ("macvlan", "spec.config.cniVersion") in warned
    assert ("macvlan", "spec.config.name") in warned


def test_examples_directory_passes() -> None:
    code, out, _ = run("check", str(EXAMPLES))
    assert code == 0, out


# (object name, field path, words the message must contain)
BROKEN_EXPECTATIONS = [
    ("bad-interface", "metadata.annotations[k8s.v1.cni.cncf.io/networks][0]", ["data/1"]),
    ("long-interface", "metadata.annotations[k8s.v1.cni.cncf.io/networks][0].interface",
     ["a-very-long-ifname", "15 bytes"]),
    ("too-many-slashes", "metadata.annotations[k8s.v1.cni.cncf.io/networks][0]", ["a/b/c"]),
    ("two-ats", "metadata.annotations[k8s.v1.cni.cncf.io/networks][0]", ["net@a@b"]),
    ("trailing-comma", "metadata.annotations[k8s.v1.cni.cncf.io/networks][1]", ["empty"]),
    ("object-not-list", "metadata.annotations[k8s.v1.cni.cncf.io/networks]", ["list"]),
    ("bad-mac", "metadata.annotations[k8s.v1.cni.cncf.io/networks][0].mac", ["zz:11:22:33:44:55", "02:00:00:00:00:01"]),
    ("duplicate-interface", "metadata.annotations[k8s.v1.cni.cncf.io/networks][1].interface", ["net1"]),
    ("typo-in-network", "metadata.annotations[k8s.v1.cni.cncf.io/networks][0].name",
     ['did you mean "macvlan-conf"?']),
    ("eth0-taken", "spec.template.metadata.annotations[k8s.v1.cni.cncf.io/networks][0].interface", ["eth0"]),
    ("plugins-five", "spec.config.plugins", ["5", "list"]),
    ("shell-type", "spec.config.type", ["../../bin/sh"]),
    ("range-outside", "spec.config.ipam.rangeStart", ["192.168.2.10", "192.168.1.0/24"]),
    ("vlan-5000", "spec.config.vlan", ["5000", "4094"]),
    ("static-no-prefix", "spec.config.ipam.addresses[0].address", ["10.10.0.1", "prefix"]),
    ("My.Net", "metadata.name", ["My.Net", "DNS-1123"]),
    ("tenant-c", "metadata.annotations[netplex.io/allowed-network]", ['did you mean "netplex.io/allowed-networks"?']),
    ("tenant-c", "metadata.annotations[netplex.io/max-networks]", ['"two"']),
]


def broken_report() -> dict[str, object]:
    code, out, _ = run("check", "-o", "json", "--nads", str(SEEDS), str(BROKEN))
    assert code == 1
    report = json.loads(out)
    assert isinstance(report, dict)
    return report


@pytest.mark.parametrize(("name", "path", "words"), BROKEN_EXPECTATIONS)
def test_broken_variant_is_reported_with_field_and_fix(name: str, path: str, words: list[str]) -> None:
    findings = [f for f in broken_report()["findings"] if f["name"] == name and f["severity"] == "error"]  # type: ignore[index,union-attr]
    matching = [f for f in findings if f["path"] == path]
    assert matching, f"no error at {path} for {name}; got {findings}"
    message = matching[0]["message"]
    for word in words:
        assert word in message, message
    assert ";" in message  # what is wrong; what is accepted


def test_every_broken_object_has_an_error() -> None:
    report = broken_report()
    names = {f["name"] for f in report["findings"] if f["severity"] == "error"}  # type: ignore[index,union-attr]
    assert names == {name for name, _, _ in BROKEN_EXPECTATIONS}
    assert report["checked"] == 17


def test_text_output_is_file_line_kind_name_path_message() -> None:
    code, out, _ = run("check", "--nads", str(SEEDS), str(BROKEN))
    assert code == 1
    first = out.splitlines()[0]
    assert first.startswith(
        f"{BROKEN}:3: Pod default/bad-interface: metadata.annotations[k8s.v1.cni.cncf.io/networks][0]"
    )
    lines = [line for line in out.splitlines() if "NetworkAttachmentDefinition default/shell-type" in line]
    assert lines and lines[0].startswith(f"{BROKEN}:")
    line_no = int(lines[0].split(":")[1])
    assert BROKEN.read_text().splitlines()[line_no - 1].startswith("apiVersion:")
    assert "name: shell-type" in "\n".join(BROKEN.read_text().splitlines()[line_no - 1 : line_no + 3])


def test_stdin_is_read_with_dash() -> None:
    code, out, _ = run("check", "-", stdin="kind: Pod\nmetadata:\n  name: p\n  annotations:\n"
                       "    k8s.v1.cni.cncf.io/networks: a/b/c\n")
    assert code == 1
    assert out.startswith("<stdin>:1: Pod default/p: metadata.annotations[k8s.v1.cni.cncf.io/networks][0]")


def test_namespace_flag_sets_the_namespace_of_objects_without_one() -> None:
    doc = "kind: Pod\nmetadata:\n  name: p\n  annotations:\n    k8s.v1.cni.cncf.io/networks: tenant-a-net\n"
    code, out, _ = run("check", "--nads", str(SEEDS), "-n", "tenant-a", "-", stdin=doc)
    assert (code, out) == (0, "")
    code, out, _ = run("check", "--nads", str(SEEDS), "-", stdin=doc)
    assert code == 1 and 'in namespace "default"' in out


def test_strict_makes_warnings_fail() -> None:
    code, _, _ = run("check", "--strict", str(SEEDS))
    assert code == 1


def test_unreadable_input_exits_2_with_the_reason(tmp_path: Path) -> None:
    code, _, err = run("check", str(tmp_path / "missing.yaml"))
    assert code == 2
    assert "missing.yaml: cannot read:" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: Pod\nmetadata: [\n")
    code, _, err = run("check", str(bad))
    assert code == 2
    assert f"{bad}:3: cannot parse YAML:" in err or f"{bad}:2: cannot parse YAML:" in err


def test_a_scalar_document_is_unreadable_input(tmp_path: Path) -> None:
    bad = tmp_path / "scalar.yaml"
    bad.write_text("just text\n")
    code, _, err = run("check", str(bad))
    assert code == 2
    assert "expected a Kubernetes object (a mapping), got str" in err


def test_usage_errors_exit_2() -> None:
    code, _, _ = run("check")
    assert code == 2
    code, _, _ = run("lint", "x")
    assert code == 2


def test_bad_policy_file_exits_2(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("missingNetworks: sometimes\n")
    code, _, err = run("check", "--policy", str(policy), str(SEEDS))
    assert code == 2
    assert "missingNetworks" in err


def test_policy_file_changes_the_verdict(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("missingNetworks: warn\n")
    doc = "kind: Pod\nmetadata:\n  name: p\n  annotations:\n    k8s.v1.cni.cncf.io/networks: nope\n"
    code, out, _ = run("check", "--policy", str(policy), "-", stdin=doc)
    assert code == 0 and ": warning: " in out


def test_list_documents_are_unpacked_with_item_lines(tmp_path: Path) -> None:
    listing = tmp_path / "list.yaml"
    listing.write_text(
        "apiVersion: v1\nkind: List\nitems:\n"
        "- kind: Pod\n  metadata:\n    name: a\n"
        "- kind: Pod\n  metadata:\n    name: b\n    annotations:\n"
        "      k8s.v1.cni.cncf.io/networks: a/b/c\n"
    )
    code, out, _ = run("check", str(listing))
    assert code == 1
    assert out.startswith(f"{listing}:7: Pod default/b:")


def test_console_script_checks_100_generated_objects(tmp_path: Path) -> None:
    """The module runs as a program; its timing lives in bench/ (bench/check.py), not here."""
    docs = []
    for i in range(50):
        docs.append(
            "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\n"
            f"metadata:\n  name: net-{i}\nspec:\n  config: '{{\"cniVersion\": \"0.3.1\", \"type\": \"macvlan\", "
            f"\"master\": \"eth0\", \"ipam\": {{\"type\": \"host-local\", \"subnet\": \"10.{i}.0.0/24\"}}}}'\n"
        )
        docs.append(
            f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: pod-{i}\n  annotations:\n"
            f"    k8s.v1.cni.cncf.io/networks: net-{i}, net-{(i + 1) % 50}@data0\n"
            "spec:\n  containers: [{name: c, image: nginx}]\n"
        )
    path = tmp_path / "many.yaml"
    path.write_text("---\n".join(docs))
    result = subprocess.run([sys.executable, "-m", "webhook.ctl", "check", str(path)],
                            capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "100 objects checked: 0 errors, 0 warnings" in result.stderr
