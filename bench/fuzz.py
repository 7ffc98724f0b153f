"""A long fuzzing session (issue 11 §5): the CI fuzz properties, 100,000+ inputs each.

Not run by the test suite. The targets and their properties are the CI ones
(``tests/webhook/test_fuzz.py``, ``tests/plugin/test_fuzz.py``): the webhook app in-process
(/validate and /mutate per input), ``netplexctl check -`` on random YAML, and the plugin's
``main()``. A failure stops the target after hypothesis has shrunk it, printing the
minimal input and its ``@reproduce_failure`` blob; ``--seed`` makes a session repeatable.

    python bench/fuzz.py --examples 100000            # all three targets
    python bench/fuzz.py --examples 2000 --target ctl  # one target
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import HealthCheck, given, seed, settings

from tests.plugin import test_fuzz as plugin_fuzz
from tests.webhook import test_fuzz as webhook_fuzz

COUNTS = {"webhook": 0, "ctl": 0, "plugin": 0}
"""Inputs each target's property has seen (hypothesis runs more than max_examples when it shrinks)."""


def targets(examples: int) -> dict[str, Callable[[], None]]:
    long = settings(max_examples=examples, deadline=None, database=None, print_blob=True,
                    suppress_health_check=list(HealthCheck))
    loop = asyncio.new_event_loop()
    app = webhook_fuzz.make_app()
    counts = COUNTS

    @long
    @given(case=webhook_fuzz.reviews())
    def webhook(case: tuple[bytes, Any, Any]) -> None:
        counts["webhook"] += 1
        webhook_fuzz.check_review(app, *case, loop)

    @long
    @given(document=webhook_fuzz.yaml_documents)
    def ctl(document: str) -> None:
        counts["ctl"] += 1
        webhook_fuzz.check_ctl(document)

    @long
    @given(environ=plugin_fuzz.environments(plugin_fuzz.ROOT), stdin=plugin_fuzz.configurations(plugin_fuzz.ROOT))
    def plugin(environ: dict[str, str], stdin: bytes) -> None:
        counts["plugin"] += 1
        plugin_fuzz.check_main(plugin_fuzz.ROOT, environ, stdin)

    return {"webhook": webhook, "ctl": ctl, "plugin": plugin}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100_000, help="inputs per target (default 100000)")
    parser.add_argument("--target", choices=("webhook", "ctl", "plugin"), action="append",
                        help="run only this target (repeatable)")
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (default: random, printed)")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # the webhook logs every 400; the property watches for tracebacks itself
    failed = 0
    for name, run in targets(args.examples).items():
        if args.target and name not in args.target:
            continue
        chosen = args.seed if args.seed is not None else int(time.time())
        started = time.monotonic()
        try:
            seed(chosen)(run)()
            outcome = "ok"
        except Exception:  # the property failed: hypothesis printed the shrunk input and its blob
            traceback.print_exc()
            outcome = "FAILED"
            failed += 1
        print(f"{name}: {COUNTS[name]} inputs in {time.monotonic() - started:.0f} s, seed {chosen}: {outcome}",
              flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
