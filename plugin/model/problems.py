"""Problems found in user input, and how they are carried.

Parsers in this package never raise on bad input: they return what they could make of
it together with a tuple of :class:`Problem` values. A caller that needs a single
exception (the CNI plugin at the edge) raises it from the problems itself; the webhook
turns them into ``status.details.causes`` one for one.
"""

from __future__ import annotations

import json

from plugin.model import limits
from plugin.model.records import field, record

TYPE_CHECKING = False  # typing is not imported at run time (~4 ms per start); mypy takes this as True
if TYPE_CHECKING:
    from typing import Any

ANNOTATION_PATH = "metadata.annotations[{key}]"


@record(frozen=True, slots=True)
class Problem:
    """One thing wrong (or suspicious) with one field.

    ``path`` is where the user has to look (``spec.config.plugins[0].type``), and
    ``message`` says what is wrong, the value seen and what is accepted; together they
    read as one line: ``<path>: <message>``.
    """

    path: str
    message: str

    def __post_init__(self) -> None:
        # Paths and messages quote user input, which may hold an unpaired surrogate
        # (JSON's "\ud800"): escaped here, every problem can be encoded, printed and sent.
        object.__setattr__(self, "path", printable(self.path))
        object.__setattr__(self, "message", printable(self.message))

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


@record(frozen=True, slots=True)
class Findings:
    """Errors (the object must not be admitted) and warnings (it works, but is probably wrong)."""

    errors: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors

    def __add__(self, other: Findings) -> Findings:
        return Findings(self.errors + other.errors, self.warnings + other.warnings)


@record(slots=True)
class Collector:
    """Mutable accumulator used while one parser walks its input."""

    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def error(self, path: str, message: str) -> None:
        self.errors.append(Problem(path, message))

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(Problem(path, message))

    def extend(self, findings: Findings) -> None:
        self.errors.extend(findings.errors)
        self.warnings.extend(findings.warnings)

    def freeze(self) -> Findings:
        return Findings(tuple(self.errors), tuple(self.warnings))


def show(value: Any, limit: int = 80) -> str:
    """Render a user's value for a message: JSON-quoted, and cut when it is long.

    JSON quoting makes invisible characters (a trailing space, a tab, a NUL) visible,
    which is exactly what the user needs to see in a rejection. Any value can be shown:
    an unpaired surrogate is written as its JSON escape (``"\\ud800"``), and a value
    nested deeper than :data:`plugin.model.limits.MAX_DEPTH` is named, not rendered
    (``json.dumps`` would recurse through it).
    """
    if isinstance(value, dict | list) and limits.value_depth(value) > limits.MAX_DEPTH:
        return f"<{type_name(value)} nested more than {limits.MAX_DEPTH} levels deep>"
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError, RecursionError):
        text = "<unprintable value>"
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return printable(text)


def printable(text: str) -> str:
    """``text`` with unpaired surrogates written as ``\\udXXX``, so it encodes as UTF-8.

    Python's JSON decoder accepts ``"\\ud800"`` and yields a string that no UTF-8
    encoder (the HTTP answer, a terminal, a log file) can write.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def type_name(value: Any) -> str:
    """JSON's name for the type of a decoded value (users write JSON, not Python)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
