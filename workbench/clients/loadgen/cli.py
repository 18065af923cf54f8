"""``workbench bench URL ...``: the load generator on the command line (oha-style summary)."""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Sequence

from workbench.clients.loadgen.config import LoadConfig, LoadConfigError, parse_header_lines
from workbench.clients.loadgen.fanout import run_load


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench bench",
        description="HTTP load generator (wrk/oha style) with latency percentiles.",
    )
    parser.add_argument("url", help="http://HOST:PORT/PATH")
    parser.add_argument("-c", "--connections", type=int, default=10, help="concurrent connections")
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument("-n", "--requests", type=int, help="total requests (default 1000)")
    amount.add_argument("-d", "--duration", type=float, help="run for SECONDS instead")
    parser.add_argument("-m", "--method", default="GET", help="HTTP method (default GET)")
    parser.add_argument("--body", default="", help="request body (text)")
    parser.add_argument(
        "-H", "--header", action="append", default=[], help="extra header 'Name: value'"
    )
    parser.add_argument(
        "--no-keepalive", action="store_true", help="one connection per request (Connection: close)"
    )
    parser.add_argument(
        "-p", "--processes", type=int, default=None, help="worker processes (default: one per core)"
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="per-request timeout, seconds")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--csv", action="store_true", help="print the result as CSV")
    return parser


def cli_main(argv: Sequence[str] | None = None) -> int:
    """``workbench bench``: run a load and print the summary; exit 0 ok, 1 all failed, 2 bad input."""
    parser = build_parser()
    options = parser.parse_args(argv)
    try:
        config = LoadConfig(
            url=options.url,
            method=options.method,
            body=options.body.encode("utf-8"),
            headers=parse_header_lines(options.header),
            concurrency=options.connections,
            requests=options.requests,
            duration=options.duration,
            keepalive=not options.no_keepalive,
            timeout=options.timeout,
            processes=options.processes,
        ).validated()
    except LoadConfigError as exc:
        print(f"workbench bench: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    try:
        snapshot = run_load(config, stop_event=stop)
    except KeyboardInterrupt:
        print("workbench bench: interrupted", file=sys.stderr)
        return 130
    if options.json:
        text = snapshot.to_json() + "\n"
    elif options.csv:
        text = snapshot.to_csv()
    else:
        text = snapshot.summary_text() + "\n"
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # `workbench bench ... | head`: the reader left; that is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0 if snapshot.succeeded or not snapshot.completed else 1
