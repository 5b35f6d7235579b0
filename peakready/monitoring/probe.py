"""The synthetic checkout probe: the customer's order flow, end to end, every few seconds.

``python -m peakready.monitoring.probe --endpoint URL --token-file F --listen HOST:PORT``

Each round places a flagged test order (``X-Peakready-Synthetic``: the audit token; the
storefront leaves it out of its business figures and of the back office) for the
synthetic product with a new idempotency key, then reads it back with
``GET /orders/{id}``. A round passes only when both answer as the HTTP contract says
(201 with the order, then 200 with the same order) within ``--timeout``. Prometheus
scrapes ``/metrics`` on ``--listen``; the ``CheckoutProbe`` alert watches
``peakready_checkout_probe_success``. On AWS a CloudWatch Synthetics canary walks the
same flow (``infra/canary.py``).

Standard library only: it runs all the time beside the lab, so it stays small. It
talks to loopback endpoints only, one order per round.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

#: The storefront's synthetic product (``peakready.app.db.SYNTHETIC_PRODUCT_ID``; not
#: imported: the storefront's module pulls in its whole stack).
SYNTHETIC_PRODUCT_ID = 999_999


class Figures:
    """What ``/metrics`` shows: the last round's result and duration, rounds by result."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.success: int | None = None
        self.duration_s = 0.0
        self.last_error = ""
        self.rounds = {"ok": 0, "failed": 0}

    def record(self, ok: bool, duration_s: float, error: str = "") -> None:
        with self.lock:
            self.success, self.duration_s, self.last_error = int(ok), duration_s, error
            self.rounds["ok" if ok else "failed"] += 1

    def exposition(self) -> str:
        with self.lock:
            lines = [
                "# HELP peakready_checkout_probe_rounds_total Probe rounds by result.",
                "# TYPE peakready_checkout_probe_rounds_total counter",
                *(
                    f'peakready_checkout_probe_rounds_total{{result="{k}"}} {v}'
                    for k, v in self.rounds.items()
                ),
            ]
            if self.success is not None:  # nothing before the first round
                lines += [
                    "# HELP peakready_checkout_probe_success 1 when the last round passed.",
                    "# TYPE peakready_checkout_probe_success gauge",
                    f"peakready_checkout_probe_success {self.success}",
                    "# HELP peakready_checkout_probe_duration_seconds The last round's time.",
                    "# TYPE peakready_checkout_probe_duration_seconds gauge",
                    f"peakready_checkout_probe_duration_seconds {self.duration_s:.4f}",
                ]
        return "\n".join(lines) + "\n"


def checkout(host: str, port: int, token: str, timeout_s: float) -> str | None:
    """One round: None when it passed, else what failed (one line)."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        body = json.dumps({"product_id": SYNTHETIC_PRODUCT_ID, "quantity": 1})
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": f"synthetic-{uuid.uuid4()}",
            "X-Peakready-Synthetic": token,
        }
        placed = _exchange(connection, "POST", "/orders", body, headers)
        if placed[0] != 201 or not isinstance(placed[1].get("id"), int):
            return f"POST /orders answered {placed[0]}"
        read = _exchange(connection, "GET", f"/orders/{placed[1]['id']}", None, {})
        if read[0] != 200 or read[1].get("id") != placed[1]["id"]:
            return f"GET /orders/{placed[1]['id']} answered {read[0]}"
        return None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"[:200]
    finally:
        connection.close()


def _exchange(
    connection: http.client.HTTPConnection,
    method: str,
    path: str,
    body: str | None,
    headers: dict[str, str],
) -> tuple[int, dict[str, Any]]:
    connection.request(method, path, body, headers)
    answer = connection.getresponse()
    data = answer.read()
    found = json.loads(data) if data and answer.status < 500 else {}
    return answer.status, found if isinstance(found, dict) else {}


def serve(figures: Figures, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/metrics":
                self.send_error(404)
                return
            data = figures.exposition().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one scrape every 2 s: no access log

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m peakready.monitoring.probe")
    parser.add_argument("--endpoint", required=True, help="the storefront, http://127.0.0.1:PORT")
    parser.add_argument("--token-file", type=Path, required=True, help="the audit token (0600)")
    parser.add_argument("--listen", required=True, help="127.0.0.1:PORT for /metrics")
    parser.add_argument("--every", type=float, default=1.0, help="seconds between rounds (1)")
    parser.add_argument("--timeout", type=float, default=3.0, help="per request, seconds (3)")
    args = parser.parse_args(argv)
    target = urlsplit(args.endpoint)
    if target.scheme != "http" or target.hostname != "127.0.0.1" or not target.port:
        parser.error(f"--endpoint {args.endpoint!r}: expected http://127.0.0.1:PORT")
    host, _, port = args.listen.rpartition(":")
    if host != "127.0.0.1" or not port.isdigit():
        parser.error(f"--listen {args.listen!r}: expected 127.0.0.1:PORT")
    if not 0.2 <= args.every <= 300 or not 0.1 <= args.timeout <= 60:
        parser.error("--every: expected 0.2..300 s; --timeout: expected 0.1..60 s")
    try:
        args.token = args.token_file.read_text().strip()
    except OSError as exc:
        parser.error(f"--token-file {args.token_file}: {exc.strerror}")
    if not args.token:
        parser.error(f"--token-file {args.token_file}: empty")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    figures = Figures()
    target = urlsplit(args.endpoint)
    host, _, port = args.listen.rpartition(":")
    serve(figures, host, int(port))
    while True:  # a service: one bounded round every --every seconds until stopped
        started = time.monotonic()
        error = checkout(str(target.hostname), int(target.port or 80), args.token, args.timeout)
        elapsed = time.monotonic() - started
        figures.record(error is None, elapsed, error or "")
        if error:
            print(f"checkout probe: {error}", file=sys.stderr, flush=True)
        time.sleep(max(0.0, args.every - elapsed))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
