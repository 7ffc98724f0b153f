"""Namespace policy annotations and the cluster policy file."""

from __future__ import annotations

from pathlib import Path

import pytest

from webhook import policy


def test_namespace_policy_parses_every_key() -> None:
    parsed = policy.parse_namespace_policy(
        "tenant-a",
        {
            "netplex.io/default-networks": "shared/storage-net",
            "netplex.io/allowed-networks": "tenant-a/*, shared/macvlan-?",
            "netplex.io/max-networks": "2",
            "netplex.io/policy-mode": "warn",
            "unrelated.io/key": "x",
        },
    )
    assert parsed.findings.errors == ()
    assert parsed.default_networks == "shared/storage-net"
    assert parsed.allowed_patterns == ("tenant-a/*", "shared/macvlan-?")
    assert parsed.max_networks == 2
    assert parsed.mode == "warn"
    assert parsed.allows("tenant-a/anything")
    assert parsed.allows("shared/macvlan-1")
    assert not parsed.allows("shared/macvlan-10")
    assert not parsed.allows("other/net")


def test_namespace_without_policy_allows_everything() -> None:
    parsed = policy.parse_namespace_policy("default", None)
    assert parsed.allows("any/thing")
    assert parsed.max_networks is None
    assert parsed.mode == "enforce"


def test_policy_key_typo_is_rejected_with_a_suggestion() -> None:
    findings = policy.check_namespace_annotations("ns", {"netplex.io/allowed-network": "a/*"})
    assert [str(p) for p in findings.errors] == [
        'metadata.annotations[netplex.io/allowed-network]: unknown netplex policy annotation '
        '(got "netplex.io/allowed-network"); did you mean "netplex.io/allowed-networks"? '
        "known keys: netplex.io/default-networks, netplex.io/allowed-networks, "
        "netplex.io/max-networks, netplex.io/policy-mode"
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("two", 'is not a whole number (got "two"); use a count such as "2"'),
        ("-1", 'is not a whole number (got "-1")'),
        ("", 'is not a whole number (got "")'),
    ],
)
def test_max_networks_must_be_a_count(value: str, message: str) -> None:
    findings = policy.check_namespace_annotations("ns", {"netplex.io/max-networks": value})
    assert len(findings.errors) == 1
    assert findings.errors[0].path == "metadata.annotations[netplex.io/max-networks]"
    assert findings.errors[0].message.startswith(message)


def test_policy_mode_accepts_only_enforce_or_warn() -> None:
    findings = policy.check_namespace_annotations("ns", {"netplex.io/policy-mode": "audit"})
    assert [p.message for p in findings.errors] == [
        'is not a policy mode (got "audit"); use "enforce" or "warn"'
    ]


@pytest.mark.parametrize(
    ("value", "path", "message"),
    [
        ("macvlan-conf", "[0]", 'is not a namespace/name pattern (got "macvlan-conf"); write it as "<namespace>/macvlan-conf"'),
        ("a/b/c", "[0]", 'is not a namespace/name pattern (got "a/b/c")'),
        ("a/*,", "[1]", "is empty (a trailing or double comma?)"),
        ("Tenant/*", "[0]", 'has characters a NAD reference cannot contain (got "Tenant/*")'),
        ("", "", "is empty; list the networks pods may use"),
    ],
)
def test_allowed_networks_patterns_are_checked(value: str, path: str, message: str) -> None:
    findings = policy.check_namespace_annotations("ns", {"netplex.io/allowed-networks": value})
    assert len(findings.errors) == 1
    assert findings.errors[0].path == f"metadata.annotations[netplex.io/allowed-networks]{path}"
    assert findings.errors[0].message.startswith(message)


def test_default_networks_annotation_uses_the_selection_rules() -> None:
    findings = policy.check_namespace_annotations("ns", {"netplex.io/default-networks": "a/b/c"})
    assert len(findings.errors) == 1
    assert findings.errors[0].path.startswith("metadata.annotations[netplex.io/default-networks]")
    assert "a/b/c" in findings.errors[0].message


def test_pod_opt_out_must_be_a_boolean_string() -> None:
    findings = policy.check_pod_annotations({"netplex.io/skip-default-networks": "yes"})
    assert [str(p) for p in findings.errors] == [
        'metadata.annotations[netplex.io/skip-default-networks]: must be "true" or "false" (got "yes")'
    ]
    assert policy.check_pod_annotations({"netplex.io/skip-default-networks": "true"}).errors == ()
    assert policy.skips_default_networks({"netplex.io/skip-default-networks": "true"})
    assert not policy.skips_default_networks({})


def test_namespace_keys_on_a_pod_are_a_warning() -> None:
    findings = policy.check_pod_annotations({"netplex.io/max-networks": "1"})
    assert findings.errors == ()
    assert "is a Namespace policy annotation and has no effect on a pod" in findings.warnings[0].message


def test_cluster_policy_defaults_are_strict() -> None:
    parsed, problems = policy.parse_cluster_policy(None)
    assert problems == []
    assert parsed.missing_networks == "deny"
    assert parsed.pod_network_update == "deny"
    assert parsed.global_namespaces == ("default",)


def test_cluster_policy_accepts_multus_comma_list_for_global_namespaces() -> None:
    parsed, problems = policy.parse_cluster_policy(
        {"namespaceIsolation": True, "globalNamespaces": "default, shared", "missingNetworks": "warn"}
    )
    assert problems == []
    assert parsed.namespace_isolation is True
    assert parsed.global_namespaces == ("default", "shared")
    assert parsed.missing_networks == "warn"


def test_cluster_policy_rejects_unknown_keys_and_bad_values() -> None:
    _, problems = policy.parse_cluster_policy({"missingNetworks": "maybe", "namespaceIsolaton": True})
    assert any(p.startswith("policy: missingNetworks: Input should be 'deny', 'warn' or 'ignore'") for p in problems)
    assert any(p.startswith("policy: namespaceIsolaton: Extra inputs are not permitted") for p in problems)


def test_cluster_policy_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("missingNetworks: [\n")
    _, problems = policy.load_cluster_policy(path)
    assert problems and problems[0].startswith(f"{path}: cannot read policy:")
    path.write_text("defaultNetworks: 'a/b/c'\n")
    _, problems = policy.load_cluster_policy(path)
    assert problems and problems[0].startswith(f"{path}: defaultNetworks")
