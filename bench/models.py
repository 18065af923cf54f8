"""Benchmark: echo round trips per second under every concurrency model at 1, 50 and 500 clients.

Each client keeps one connection and plays ping-pong (send 64 bytes, wait for
them back, repeat) for a fixed time. The clients all live in one epoll loop in
a separate process pinned to the last core; the server is pinned to the first
(``--no-pin`` to let both float). Models that serve a bounded number of
connections at a time (iterative: 1, pool: its workers) only ever answer that
many clients: their figure is the lesson, not a fault.

    python bench/models.py [--seconds 2] [--clients 1,50,500] [--models epoll,threads]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import select
import socket
import sys
import time

import psutil

from servers.launcher import running_server
from servers.registry import MODELS

MESSAGE = b"x" * 63 + b"\n"


def ping_pong(port: int, clients: int, seconds: float, core: int | None, results) -> None:
    """Client process: ``clients`` connections echoing MESSAGE for ``seconds``; puts round trips."""
    if core is not None:
        os.sched_setaffinity(0, {core})
    epoll = select.epoll()
    conns: dict[int, socket.socket] = {}
    received: dict[int, int] = {}
    for _ in range(clients):
        conn = socket.create_connection(("127.0.0.1", port))
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.setblocking(False)
        conns[conn.fileno()] = conn
        received[conn.fileno()] = 0
        epoll.register(conn.fileno(), select.EPOLLIN)
    round_trips = 0
    size = len(MESSAGE)
    for conn in conns.values():
        conn.send(MESSAGE)
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for fd, _ in epoll.poll(0.05):
            data = conns[fd].recv(65536)
            if not data:
                epoll.unregister(fd)
                continue
            received[fd] += len(data)
            while received[fd] >= size:
                received[fd] -= size
                round_trips += 1
                conns[fd].send(MESSAGE)
    for conn in conns.values():
        conn.close()
    results.put(round_trips / seconds)


def pin_tree(pid: int, core: int) -> None:
    """Pin a server process and every process it has forked to one core."""
    process = psutil.Process(pid)
    for member in [process, *process.children(recursive=True)]:
        try:
            member.cpu_affinity([core])
        except psutil.Error:
            pass


def measure(model: str, clients: int, seconds: float, pin: bool) -> float:
    cores = os.sched_getaffinity(0)
    server_core, client_core = (min(cores), max(cores)) if pin and len(cores) > 1 else (None, None)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    with running_server("echo", model, workers=4) as server:
        if server_core is not None:
            time.sleep(0.2)  # let pool/prefork workers fork before pinning them
            pin_tree(server.pid, server_core)
        client = context.Process(
            target=ping_pong, args=(server.port, clients, seconds, client_core, results)
        )
        client.start()
        rate = results.get(timeout=seconds + 60)
        client.join(10)
    return rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement (default 2)")
    parser.add_argument("--clients", default="1,50,500", help="comma-separated client counts")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated models")
    parser.add_argument(
        "--no-pin", action="store_true", help="do not pin server and client to cores"
    )
    options = parser.parse_args(argv)
    client_counts = [int(n) for n in options.clients.split(",")]
    models = options.models.split(",")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))

    header = f"{'model':<11}" + "".join(f"{f'{n} clients':>14}" for n in client_counts)
    print("echo round trips per second (64-byte messages, one connection per client)")
    print(header)
    print("-" * len(header))
    for model in models:
        cells = []
        for clients in client_counts:
            try:
                cells.append(
                    f"{measure(model, clients, options.seconds, not options.no_pin):>14,.0f}"
                )
            except Exception as error:  # one failing cell should not hide the others
                cells.append(f"{'failed':>14}")
                print(f"  {model} at {clients}: {error}", file=sys.stderr)
        print(f"{model:<11}" + "".join(cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
