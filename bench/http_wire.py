"""Benchmark: what framing one response costs — http_wire's reader on each of its paths, and h11.

The load generator frames every response with ``ResponseReader.feed_status``;
this prints its cost per response next to the general ``feed()`` (events) and
h11 (the oracle of the tests), on a real response of our HTTP server (1 KiB file).

    python bench/http_wire.py [--model epoll] [--number 200000]
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path

from servers.launcher import running_server
from workbench.clients.http_wire import ResponseReader

FILE_NAME = "bench-1k.bin"


def fetch_one_response(model: str) -> bytes:
    """One whole keep-alive response, exactly as the server sent it."""
    with tempfile.TemporaryDirectory() as root:
        (Path(root) / FILE_NAME).write_bytes(bytes(range(256)) * 4)
        with (
            running_server("http", model, options={"root": root}) as server,
            socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock,
        ):
            sock.sendall(f"GET /{FILE_NAME} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
            reader, data = ResponseReader(), b""
            while not reader.complete:
                piece = sock.recv(65536)
                if not piece:
                    raise RuntimeError("the server closed before answering")
                data += piece
                reader.feed(piece)
            return data


def per_response_ns(run: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(run, number=number, repeat=5)) / number * 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="epoll", help="server model (default epoll)")
    parser.add_argument("--number", type=int, default=200_000, help="responses per timing")
    options = parser.parse_args(argv)
    response = fetch_one_response(options.model)

    repeat_reader = ResponseReader()
    repeat_reader.feed_status(response)

    def feed_status_repeat() -> object:
        return repeat_reader.feed_status(response)

    new_head_reader = ResponseReader()

    def feed_status_new_head() -> object:
        new_head_reader._repeat_size = -1  # as if the Date had just changed
        return new_head_reader.feed_status(response)

    events_reader = ResponseReader()

    def feed_events() -> object:
        events = events_reader.feed(response)
        events_reader.next_response()
        return events

    rows = [
        ("feed_status, same head as the last", feed_status_repeat),
        ("feed_status, a new head", feed_status_new_head),
        ("feed (events)", feed_events),
    ]
    try:
        import h11
    except ImportError:
        h11 = None
    if h11 is not None:
        client = h11.Connection(our_role=h11.CLIENT)

        def h11_events() -> object:
            client.send(h11.Request(method="GET", target="/", headers=[("Host", "bench")]))
            client.send(h11.EndOfMessage())
            client.receive_data(response)
            events = [client.next_event() for _ in range(3)]
            client.start_next_cycle()
            return events

        rows.append(("h11 (send request + events)", h11_events))

    print(f"one {len(response)}-byte response of our {options.model} server, in one piece")
    header = f"{'path':<40}{'ns/response':>14}"
    print(header)
    print("-" * len(header))
    for name, run in rows:
        number = options.number if "feed_status" in name else max(1, options.number // 10)
        print(f"{name:<40}{per_response_ns(run, number):>14,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
