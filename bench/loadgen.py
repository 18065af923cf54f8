"""Benchmark: our load generator against wrk, both hitting our epoll HTTP server on a 1 KiB file.

The generator must not be the bottleneck of a lesson: the target is at least
0.5x the requests/s wrk reaches against the same server in the same run. wrk is
run before and after ours and averaged, so a neighbour's load on a shared
machine does not favour one side.

When the server is the bottleneck both clients show its rate, so the last column
says what each client itself spent: CPU µs per request, from the rusage of its
finished child processes (our workers, or wrk).

    python bench/loadgen.py [--seconds 3] [--connections 20] [--model epoll] [--processes 1,2]
"""

from __future__ import annotations

import argparse
import re
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from servers.launcher import running_server
from workbench.clients.loadgen import LoadConfig, run_load

FILE_NAME = "bench-1k.bin"
TARGET_RATIO = 0.5


def children_cpu_seconds() -> float:
    """User + system CPU of every child process finished and reaped so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(
    url: str, connections: int, seconds: float, threads: int
) -> tuple[float, str, str, float]:
    """(requests/s, p50, p99) as wrk prints them, and wrk's CPU µs per request."""
    cpu_before = children_cpu_seconds()
    completed = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    )
    out = completed.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE)
    cpu = children_cpu_seconds() - cpu_before
    requests = float(re.search(r"(\d+) requests in", out).group(1))
    cpu_us = cpu / requests * 1e6 if requests else 0.0
    return rate, p50.group(1) if p50 else "-", p99.group(1) if p99 else "-", cpu_us


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement (default 3)")
    parser.add_argument("--connections", type=int, default=20, help="concurrent connections")
    parser.add_argument("--model", default="epoll", help="server model (default epoll)")
    parser.add_argument(
        "--processes", default="1,2", help="our worker process counts to try (default 1,2)"
    )
    parser.add_argument("--wrk-threads", type=int, default=2, help="wrk -t (default 2)")
    options = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    process_counts = [int(count) for count in options.processes.split(",")]

    with tempfile.TemporaryDirectory() as root:
        (Path(root) / FILE_NAME).write_bytes(bytes(range(256)) * 4)
        with running_server("http", options.model, options={"root": root}) as server:
            url = f"http://127.0.0.1:{server.port}/{FILE_NAME}"
            run_load(LoadConfig(url, requests=500, concurrency=4, processes=0))  # warm-up
            rows: list[tuple[str, float, str, str, float]] = []
            wrk_before = run_wrk(url, options.connections, options.seconds, options.wrk_threads)
            rows.append((f"wrk -t{options.wrk_threads} (before)", *wrk_before))
            ours: list[tuple[str, float, str, str, float]] = []
            for processes in process_counts:
                cpu_before = children_cpu_seconds()
                snapshot = run_load(
                    LoadConfig(
                        url,
                        concurrency=options.connections,
                        duration=options.seconds,
                        processes=processes,
                    )
                )
                cpu = children_cpu_seconds() - cpu_before
                if snapshot.failed:
                    print(f"  ours -p {processes}: {snapshot.errors}", file=sys.stderr)
                ours.append(
                    (
                        f"ours -p {processes}",
                        snapshot.requests_per_second,
                        f"{snapshot.percentiles_ms['p50']:.2f}ms",
                        f"{snapshot.percentiles_ms['p99']:.2f}ms",
                        cpu / max(snapshot.completed, 1) * 1e6,
                    )
                )
            rows.extend(ours)
            wrk_after = run_wrk(url, options.connections, options.seconds, options.wrk_threads)
            rows.append((f"wrk -t{options.wrk_threads} (after)", *wrk_after))

    wrk_rate = (wrk_before[0] + wrk_after[0]) / 2
    print(
        f"GET 1 KiB file from our {options.model} HTTP server, "
        f"{options.connections} keep-alive connections, {options.seconds:g} s each"
    )
    header = f"{'client':<22}{'req/s':>12}{'p50':>12}{'p99':>12}{'x wrk':>9}{'CPU us/req':>12}"
    print(header)
    print("-" * len(header))
    for name, rate, p50, p99, cpu_us in rows:
        print(f"{name:<22}{rate:>12,.0f}{p50:>12}{p99:>12}{rate / wrk_rate:>9.2f}{cpu_us:>12.1f}")
    best = max(rate for _, rate, *_ in ours)
    ratio = best / wrk_rate
    verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
    print(f"best of ours / mean wrk = {ratio:.2f} ({verdict} the {TARGET_RATIO:g}x target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
