"""Benchmark: how many connections select, poll and epoll hold, with the open-file limit at 1024 and raised.

For each model and limit, one client process opens ``--connections`` connections
to an echo server and then checks every one: *served* (its bytes come back),
*refused* (the server hung up on it) or *hung* (no answer within a second), and
reads the server's own accepted and refused counts and the CPU it burned while
the crowd held on. At 1024 all three stop near 1016 (the descriptors run out);
raised, select stops at its FD_SETSIZE wall (descriptors 1024 and above) and
poll and epoll serve everyone. Nobody should hang and no server should spin.

    python bench/fd_wall.py [--connections 1500] [--models select,poll,epoll]
"""

from __future__ import annotations

import argparse
import queue
import resource
import socket
import time

import psutil

from servers.launcher import new_stats_queue, running_server

HOLD_SECONDS = 1.0


def latest_snapshot(stats_queue, settle: float = 0.8) -> dict:
    """The newest snapshot after ``settle`` seconds without a new accept or refusal."""
    last: dict = {}
    quiet_since = time.monotonic()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            message = stats_queue.get(timeout=0.2)
        except queue.Empty:
            message = None
        if message and message.get("type") == "snapshot":
            moved = (message["accepted"], message["refused"]) != (
                last.get("accepted"),
                last.get("refused"),
            )
            last = message
            if moved:
                quiet_since = time.monotonic()
        if last and time.monotonic() - quiet_since >= settle:
            break
    return last


def outcome(conn: socket.socket) -> str:
    try:
        conn.sendall(b"x")
        return "served" if conn.recv(8) == b"x" else "refused"
    except TimeoutError:
        return "hung"
    except OSError:
        return "refused"


def measure(model: str, connections: int, limit: int | None) -> dict:
    stats_queue = new_stats_queue()
    options = {"max_open_files": limit} if limit else {}
    try:
        with running_server("echo", model, options=options, stats_queue=stats_queue) as server:
            conns = []
            try:
                for _ in range(connections):
                    conns.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
                snapshot = latest_snapshot(stats_queue)
                process = psutil.Process(server.pid)
                before = sum(process.cpu_times()[:2])
                time.sleep(HOLD_SECONDS)
                cpu = sum(process.cpu_times()[:2]) - before
                for conn in conns:
                    conn.settimeout(1.0)
                results = [outcome(conn) for conn in conns]
            finally:
                for conn in conns:
                    conn.close()
    finally:
        stats_queue.close()
        stats_queue.cancel_join_thread()
    return {
        "accepted": snapshot.get("accepted", 0),
        "refused": snapshot.get("refused", 0),
        "limit": snapshot.get("max_open_files", 0),
        "served": results.count("served"),
        "turned away": results.count("refused"),
        "hung": results.count("hung"),
        "cpu": cpu / HOLD_SECONDS * 100,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1500)
    parser.add_argument("--models", default="select,poll,epoll")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = args.connections + 100
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise SystemExit(
            f"the hard open-file limit ({hard}) is below {needed}: lower --connections"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, needed), hard))
    print(f"{args.connections} connections to an echo server; server CPU while they hold on")
    header = f"{'model':<8} {'limit':>7} {'accepted':>9} {'refused':>8} {'served':>7} {'hung':>5} {'CPU %':>6}"
    print(header)
    print("-" * len(header))
    for model in args.models.split(","):
        for limit in (1024, None):
            row = measure(model, args.connections, limit)
            print(
                f"{model:<8} {row['limit']:>7} {row['accepted']:>9} {row['refused']:>8} "
                f"{row['served']:>7} {row['hung']:>5} {row['cpu']:>6.1f}"
            )


if __name__ == "__main__":
    main()
