"""``netplexctl``: the webhook's rules, offline, and its certificates.

``netplexctl check FILE...`` lints Pods, workloads' pod templates, NADs and Namespaces
exactly as the admission webhook would judge them (same ``webhook.validators``), resolving
network references against the NADs in the given files and in ``--nads DIR``.

Exit status: 0 no errors (warnings are printed but do not fail, unless ``--strict``),
1 findings, 2 usage error or unreadable input.

``netplexctl certs`` makes a CA and a serving certificate for the webhook's Service and,
with ``--apply``, writes them to the cluster: see :mod:`certs.command`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from certs import command as certs_command
from plugin.model.problems import printable
from webhook import documents, validators
from webhook.index import MemoryIndex, object_name, object_namespace
from webhook.policy import ClusterPolicy, load_cluster_policy

EXIT_CLEAN, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Finding:
    source: str
    line: int
    kind: str
    namespace: str
    name: str
    path: str
    message: str
    severity: str  # "error" | "warning"

    def text(self) -> str:
        who = f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"
        label = "warning: " if self.severity == "warning" else ""
        return f"{self.source}:{self.line}: {who}: {self.path}: {label}{self.message}"

    def as_json(self) -> dict[str, object]:
        return {
            "file": self.source,
            "line": self.line,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "path": self.path,
            "message": self.message,
            "severity": self.severity,
        }


def check_documents(
    docs: Sequence[documents.Document],
    *,
    extra_nads: Sequence[documents.Document] = (),
    policy: ClusterPolicy | None = None,
    default_namespace: str = "default",
) -> tuple[list[Finding], int]:
    """Findings for every checked object, and how many objects were checked."""
    index = MemoryIndex()
    for doc in (*extra_nads, *docs):
        index.put(doc.obj, default_namespace)
    ctx = validators.Context(index=index, policy=policy or ClusterPolicy())
    findings: list[Finding] = []
    checked = 0
    for doc in docs:
        obj = doc.obj
        kind = str(obj.get("kind", ""))
        if kind not in validators.CHECKED_KINDS:
            continue
        checked += 1
        namespace = "" if kind == "Namespace" else object_namespace(obj, default_namespace)
        result = validators.check_object(obj, namespace or default_namespace, ctx)
        for severity, problems in (("error", result.errors), ("warning", result.warnings)):
            for problem in problems:
                findings.append(
                    Finding(doc.source, doc.line, kind, namespace, object_name(obj),
                            problem.path, problem.message, severity)
                )
    return findings, checked


def _read_inputs(paths: Sequence[str], stdin: TextIO) -> list[documents.Document]:
    docs: list[documents.Document] = []
    for raw in paths:
        if raw == "-":
            docs.extend(documents.parse_yaml(_read_stdin(stdin), "<stdin>"))
        else:
            path = Path(raw)
            docs.extend(documents.read_directory(path) if path.is_dir() else documents.read_file(path))
    return docs


def _read_stdin(stdin: TextIO) -> str:
    """stdin as UTF-8, read as bytes: the text layer would raise on a bad byte mid-read."""
    buffer = getattr(stdin, "buffer", None)
    if buffer is not None:
        return documents.decode(buffer.read(), "<stdin>")
    return stdin.read()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netplexctl",
        description="netplex tools: lint manifests offline with the webhook's rules; make its certificates",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser(
        "check",
        help="check Pods, workloads, NADs and Namespaces in YAML files",
        description="Exit 0: no errors; 1: findings; 2: usage error or unreadable input.",
    )
    check.add_argument("files", nargs="+", metavar="FILE", help="YAML file or directory; - for stdin")
    check.add_argument("--nads", type=Path, action="append", default=[], metavar="DIR",
                       help="more NADs and Namespaces to resolve references against")
    check.add_argument("--policy", type=Path, metavar="FILE", help="cluster policy file of the webhook")
    check.add_argument("-n", "--namespace", default="default",
                       help="namespace for objects that do not name one (default: default)")
    check.add_argument("-o", "--output", choices=("text", "json"), default="text")
    check.add_argument("--strict", action="store_true", help="warnings fail the check too")
    certs_command.add_parser(sub)
    return parser


def _api_client(kubeconfig: str | None) -> Any:
    """The Kubernetes client, imported only when ``certs --apply`` talks to a cluster."""
    from webhook.cluster import load_api_client

    return load_api_client(kubeconfig)


def main(argv: Sequence[str] | None = None, stdout: TextIO | None = None,
         stderr: TextIO | None = None, stdin: TextIO | None = None) -> int:
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed the usage
        return EXIT_USAGE if exc.code else EXIT_CLEAN
    if args.command == "certs":
        return certs_command.run(args, out, err, connect=_api_client)
    policy = None
    try:
        if args.policy is not None:
            policy, problems = load_cluster_policy(args.policy)
            if problems:
                for problem in problems:
                    print(printable(f"netplexctl: {problem}"), file=err)
                return EXIT_USAGE
        extra: list[documents.Document] = []
        for directory in args.nads:
            extra.extend(documents.read_directory(directory))
        docs = _read_inputs(args.files, stdin or sys.stdin)
    except documents.DocumentError as exc:
        print(printable(f"netplexctl: {exc}"), file=err)
        return EXIT_USAGE

    findings, checked = check_documents(docs, extra_nads=extra, policy=policy,
                                        default_namespace=args.namespace)
    errors = sum(1 for f in findings if f.severity == "error")
    warnings = len(findings) - errors
    if args.output == "json":
        json.dump({"checked": checked, "errors": errors, "warnings": warnings,
                   "findings": [f.as_json() for f in findings]}, out, indent=2)
        out.write("\n")
    else:
        for finding in findings:
            print(printable(finding.text()), file=out)
        print(f"{checked} objects checked: {errors} errors, {warnings} warnings", file=err)
    if errors or (args.strict and warnings):
        return EXIT_FINDINGS
    return EXIT_CLEAN


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
