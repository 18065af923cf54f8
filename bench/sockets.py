"""Benchmark: what one sample of the Servers tab's socket view costs, by open connections and TIME_WAITs.

The view probes the selected server about once a second, in a thread worker:
psutil for the pid tree's sockets, ``/proc/PID/fd`` for their inodes, one ``ss``
run for the kernel's figures. This starts an HTTP server under ``epoll``, opens
N idle keep-alive connections (and, for the TIME_WAIT row, N connections the
server closed first), and times ``probe_server`` over ``--rounds`` samples.
Bounded: at most ``--max`` connections per row, each row in its own server.

    python bench/sockets.py [--counts 10,100,1000] [--rounds 20]
"""

from __future__ import annotations

import argparse
import resource
import socket
import statistics
import tempfile
import time
from pathlib import Path

from servers.launcher import running_server
from workbench.socket_probe import probe_server

REQUEST_CLOSE = b"GET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def open_idle(port: int, count: int) -> list[socket.socket]:
    return [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]


def leave_time_waits(port: int, count: int) -> None:
    """``count`` requests the server ends first, so each leaves a server-side TIME_WAIT."""
    for _ in range(count):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(REQUEST_CLOSE)
            while client.recv(65536):
                pass


def time_probe(pid: int, port: int, rounds: int) -> tuple[float, float, int]:
    """(median ms, max ms, rows) over ``rounds`` probes."""
    timings = []
    rows = 0
    for _ in range(rounds):
        started = time.perf_counter()
        report = probe_server(pid, port)
        timings.append((time.perf_counter() - started) * 1000)
        rows = len(report.sockets)
    return statistics.median(timings), max(timings), rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="10,100,1000")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--max", type=int, default=2000)
    args = parser.parse_args()
    counts = [min(int(c), args.max) for c in args.counts.split(",")]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 2 * max(counts) + 64)), hard))
    with tempfile.TemporaryDirectory() as root:
        Path(root, "index.html").write_text("<h1>home</h1>\n")
        print(f"{'case':<28}{'sockets':>8}{'median ms':>11}{'max ms':>9}")
        for count in counts:
            for case in ("idle keep-alive", "server-closed (TIME_WAIT)"):
                options = {"root": root, "keepalive_timeout": 60}
                with running_server("http", "epoll", options=options) as server:
                    clients: list[socket.socket] = []
                    try:
                        if case.startswith("idle"):
                            clients = open_idle(server.port, count)
                            deadline = time.monotonic() + 10
                            while len(probe_server(server.pid, server.port).sockets) <= count:
                                if time.monotonic() > deadline:
                                    break
                        else:
                            leave_time_waits(server.port, count)
                        median, worst, rows = time_probe(server.pid, server.port, args.rounds)
                    finally:
                        for client in clients:
                            client.close()
                print(f"{case + f' ×{count}':<28}{rows:>8}{median:>11.1f}{worst:>9.1f}")


if __name__ == "__main__":
    main()
