"""The JSON patch from a pod to its mutated copy, in time proportional to the change.

``jsonpatch.make_patch`` compares the two documents everywhere, and on a pod that is
most of a mutating admission's cost. The mutators copy on write (see
``webhook.mutation``): every part of the pod they did not touch is the *same object* in
both documents. So this walk skips identical objects, descends into dicts and
equal-length lists itself (keys and positions are stable there), and hands the only
hard case, a list whose length changed, to ``jsonpatch.make_patch`` for that list
alone, re-rooting its paths. The result is a valid RFC 6902 patch: applied to the
original it gives the mutated document (a property test checks this on arbitrary
JSON, where nothing is shared).
"""

from __future__ import annotations

from typing import Any

import jsonpatch

Op = dict[str, Any]


def make_patch(before: Any, after: Any) -> list[Op]:
    """RFC 6902 operations turning ``before`` into ``after``; ``[]`` when they are equal."""
    ops: list[Op] = []
    _diff(before, after, [], ops)
    return ops


def _diff(a: Any, b: Any, parts: list[str | int], ops: list[Op]) -> None:
    if a is b:
        return
    if type(a) is dict and type(b) is dict:
        for key in a:
            if key not in b:
                ops.append({"op": "remove", "path": _path(parts, key)})
        for key, value in b.items():
            if key in a:
                _diff(a[key], value, [*parts, key], ops)
            else:
                ops.append({"op": "add", "path": _path(parts, key), "value": value})
        return
    if type(a) is list and type(b) is list:
        if len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                _diff(x, y, [*parts, i], ops)
            return
        prefix = _pointer(parts)
        for op in jsonpatch.make_patch(a, b).patch:
            moved = {**op, "path": prefix + op["path"]}
            if "from" in op:
                moved["from"] = prefix + op["from"]
            ops.append(moved)
        return
    if type(a) is type(b) and a == b:  # 1 == True == 1.0 in Python, not in JSON
        return
    ops.append({"op": "replace", "path": _pointer(parts), "value": b})


def _path(parts: list[str | int], key: str) -> str:
    return _pointer([*parts, key])


def _pointer(parts: list[str | int]) -> str:
    """RFC 6901: ``~`` becomes ``~0`` and ``/`` becomes ``~1``, in that order."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)
