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
    _diff(before, after, "", ops)
    return ops


def _diff(a: Any, b: Any, pointer: str, ops: list[Op]) -> None:
    """``pointer`` is where ``a`` and ``b`` sit (RFC 6901, "" for the root)."""
    if a is b:
        return
    if type(a) is dict and type(b) is dict:
        for key in a:
            if key not in b:
                ops.append({"op": "remove", "path": _child(pointer, key)})
        for key, value in b.items():
            if key in a:
                _diff(a[key], value, _child(pointer, key), ops)
            else:
                ops.append({"op": "add", "path": _child(pointer, key), "value": value})
        return
    if type(a) is list and type(b) is list:
        if len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                if x is not y:
                    _diff(x, y, f"{pointer}/{i}", ops)
            return
        for op in jsonpatch.make_patch(a, b).patch:
            moved = {**op, "path": pointer + op["path"]}
            if "from" in op:
                moved["from"] = pointer + op["from"]
            ops.append(moved)
        return
    if type(a) is type(b) and a == b:  # 1 == True == 1.0 in Python, not in JSON
        return
    ops.append({"op": "replace", "path": pointer, "value": b})


def _child(pointer: str, key: str) -> str:
    """RFC 6901: in a key, ``~`` becomes ``~0`` and ``/`` becomes ``~1``, in that order."""
    return f"{pointer}/{key.replace('~', '~0').replace('/', '~1')}"
