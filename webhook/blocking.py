"""Run CPU-only admission decisions on the event loop, and step aside when they must wait.

Nearly every admission decision is a few dict lookups in the in-memory index: handing it
to a worker thread costs more (two loop wake-ups, a queue, the GIL hand-over) than the
decision itself. The exception is the one confirming GET before a NAD is declared
missing. So the transport first runs a handler that declares ``decides_inline`` on the
loop, inside :func:`inline`; code about to block calls :func:`may_block`, which raises
:class:`WouldBlock` there, and the transport runs the same decision again in a worker
thread, where :func:`may_block` returns and the GET happens. Decisions are pure up to that
point, so running one twice is safe.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_on_loop: ContextVar[bool] = ContextVar("netplex_decision_on_loop", default=False)


class WouldBlock(Exception):
    """The decision needs blocking I/O; run it again off the event loop."""


def may_block(what: str) -> None:
    """Call before blocking I/O in a decision; raises :class:`WouldBlock` on the loop."""
    if _on_loop.get():
        raise WouldBlock(what)


@contextmanager
def inline() -> Iterator[None]:
    """Mark the code inside as running on the event loop (no blocking allowed)."""
    token = _on_loop.set(True)
    try:
        yield
    finally:
        _on_loop.reset(token)
