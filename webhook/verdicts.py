"""What a handler decides about one admission request, independent of the wire format.

Handlers return a :class:`Verdict`; only ``webhook.reviews`` turns it into an
AdmissionReview response (uid, patchType, base64, warnings, ``status.details.causes``).
Constructors are small pure functions and values are frozen, so a warning is attached by
making a new verdict, never by mutating a shared one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from plugin.model.problems import Findings, Problem


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    errors: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()
    patch: tuple[dict[str, Any], ...] = ()  # RFC 6902 operations; empty = no change

    @property
    def message(self) -> str:
        """One line per problem, as kubectl shows it after ``denied the request:``."""
        return "\n".join(str(p) for p in self.errors)

    def with_warnings(self, *warnings: Problem) -> Verdict:
        return replace(self, warnings=self.warnings + tuple(warnings))


def allowed(*warnings: Problem) -> Verdict:
    return Verdict(True, warnings=tuple(warnings))


def denied(errors: tuple[Problem, ...] | list[Problem], warnings: tuple[Problem, ...] = ()) -> Verdict:
    return Verdict(False, errors=tuple(errors), warnings=tuple(warnings))


def patched(ops: list[dict[str, Any]], *warnings: Problem) -> Verdict:
    return Verdict(True, warnings=tuple(warnings), patch=tuple(ops))


def from_findings(findings: Findings) -> Verdict:
    """Deny when there is any error; otherwise allow, carrying the warnings."""
    if findings.errors:
        return denied(findings.errors, findings.warnings)
    return allowed(*findings.warnings)
