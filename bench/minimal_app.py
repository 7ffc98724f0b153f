"""The baseline for ``bench/webhook.py``: the smallest ASGI app that answers an AdmissionReview.

    python bench/minimal_app.py --host 127.0.0.1 --port 0

It reads the whole request body and returns one fixed ``{"allowed": true}`` review: no
JSON parsing, no FastAPI, no rules. It is served exactly as ``netplex-webhook`` is: the
same uvicorn configuration (``webhook.server.serve``), the same ``--workers`` forking, and a self-signed
certificate from ``webhook.tls`` whose CA is printed on stdout in the same format.
The gap between the two is what the webhook's framework, parsing and checks cost.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from webhook import server, tls, workers

BODY = (
    b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview",'
    b'"response":{"uid":"00000000-0000-0000-0000-000000000000","allowed":true}}'
)
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level="WARNING", stream=sys.stderr)
    pair = tls.self_signed([args.host])
    ctx = tls.context_from_pem(pair.cert, pair.key)
    sock = server.bind(args.host, args.port)
    url = server._url(args.host, sock.getsockname()[1])
    server.print_ca_bundle(pair.ca, url, sys.stdout)

    def run() -> int:
        return server.serve(app, ctx, sock, url=url, shutdown_timeout=5, log_level="warning")  # type: ignore[arg-type]

    return run() if args.workers == 1 else workers.run_workers(args.workers, run)


if __name__ == "__main__":
    sys.exit(main())
