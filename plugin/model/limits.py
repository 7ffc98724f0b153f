"""Bounds on how deeply user input may nest, checked before any recursive code runs.

Every JSON text netplex reads from a user (annotations, NAD configs, conf files, CNI
results, request bodies) can nest as deeply as its author likes, and a repeated key can
hide a deep value from a check made on the decoded object (the decoder keeps the last
value; ``object_pairs_hook`` code still sees the first). So the guard reads the *text*:
brackets outside strings, counted with one regular expression (C speed, no recursion),
before ``json.loads`` or any walk of the result. Decoded values (from YAML, say) have
:func:`value_depth`, which walks iteratively.

Numbers get the same treatment: Python refuses to turn more than 4,300 digits into an
``int`` (``ValueError``), and a count nobody can mean should be a message, not a crash.
:func:`parse_count` reads a non-negative decimal integer with a length limit.
"""

from __future__ import annotations

import re

MAX_DEPTH = 32
"""Nesting allowed in annotations and configs: far beyond any real one (NAD configs nest
4-5 levels), far below the interpreter's recursion limit."""

DOCUMENT_MAX_DEPTH = 100
"""Nesting allowed in a whole Kubernetes object (a YAML document, an AdmissionReview's
object, a policy file): real objects nest 10-20 levels; the interpreter's limit is 1,000."""

COUNT_MAX_DIGITS = 18
"""Digits allowed in a count (``max-networks``, a device quantity): fits in Go's int64."""

INT_MAX_DIGITS = 100
"""Digits allowed in any integer read from JSON or YAML: no Kubernetes or CNI field holds
more than 20 (uint64), and ``int()`` raises past 4,300 with advice meant for programmers."""

_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]')  # unrolled: one step per run of plain characters


def text_depth(text: str, stop_after: int = MAX_DEPTH) -> int:
    """How deeply the brackets of a JSON text nest (strings skipped), up to ``stop_after + 1``.

    Unbalanced or otherwise invalid text is measured as far as it goes: the decoder that
    runs next reports the syntax error; this only has to keep it from recursing."""
    depth = deepest = 0
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > stop_after:
                    break
        elif token in "]}":
            depth -= 1
    return deepest


def value_depth(value: object, stop_after: int = MAX_DEPTH) -> int:
    """How deeply dicts and lists nest in a decoded value, up to ``stop_after + 1``."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: list[object] | object = list(item.values())
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > stop_after:
            break
        stack.extend((child, depth + 1) for child in children)  # type: ignore[union-attr]
    return deepest


def depth_problem(depth: int, limit: int = MAX_DEPTH) -> str | None:
    """The message for a value nested ``depth`` levels (from the two functions above)."""
    if depth <= limit:
        return None
    return f"is nested more than {limit} levels deep; at most {limit} levels of objects and lists are accepted"


_DIGITS = re.compile(r"[0-9]+")


def parse_count(text: str, max_digits: int = COUNT_MAX_DIGITS) -> int | None:
    """A non-negative decimal integer written with ASCII digits only, or ``None``.

    ``str.isdigit`` accepts ``"²"`` and ``"٣"``, which ``int()`` then refuses or reads
    as something else; and ``int()`` raises on more than 4,300 digits. Here both are
    just "not a count": callers say why with :func:`count_problem`."""
    if len(text) > max_digits or _DIGITS.fullmatch(text) is None:
        return None
    return int(text)


def count_problem(text: str, max_digits: int = COUNT_MAX_DIGITS) -> str:
    """Why :func:`parse_count` refused ``text``: too long, or not plain digits."""
    if _DIGITS.fullmatch(text) is not None:
        return f"has {len(text)} digits, more than {max_digits}"
    return "is not a whole number"


def int_problem(text: str, max_digits: int = INT_MAX_DIGITS) -> str | None:
    """Why an integer literal is refused before ``int()`` reads it (``None``: fine)."""
    digits = len(text.lstrip("+-"))
    if digits <= max_digits:
        return None
    return f"a number has {digits} digits ({text[:12]}...); at most {max_digits} digits are accepted"
