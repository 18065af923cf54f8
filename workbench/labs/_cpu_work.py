"""What the CPU labs share: pure-Python work calibrated to a duration, and worker processes started on one signal."""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from collections.abc import Callable, Iterator
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import Any


def spin(loops: int) -> int:
    """Pure-Python CPU work that never blocks: the kind of task the GIL serialises."""
    total = 0
    for number in range(loops):
        total += number % 7
    return total


def calibrate(seconds: float) -> int:
    """How many ``spin`` loops take about ``seconds`` on this machine, now."""
    loops = 20_000
    while True:
        started = time.perf_counter()
        spin(loops)
        elapsed = time.perf_counter() - started
        if elapsed > 0.02:
            return max(1, int(loops * seconds / elapsed))
        loops *= 4


@contextlib.contextmanager
def processes_ready(
    target: Callable[..., None], args_per_process: list[tuple[Any, ...]]
) -> Iterator[tuple[Event, Queue]]:
    """Start one process per args tuple and yield (go, results) once every one has said ready.

    Each process runs ``target(*args, go, results)``: it puts one message on ``results``
    when ready, waits for ``go``, works and reports on ``results``. The caller sets ``go``
    and reads the reports; on leaving, every process is joined (killed if it hangs).
    Spawned, not forked: a lab's process may have threads, and forking those is unsafe.
    """
    context = multiprocessing.get_context("spawn")
    go = context.Event()
    results = context.Queue()
    processes = [
        context.Process(target=target, args=(*args, go, results), name=f"worker-{index}")
        for index, args in enumerate(args_per_process)
    ]
    try:
        for process in processes:
            process.start()
        for _ in processes:  # the clock starts only once every interpreter is up
            results.get(timeout=30)
        yield go, results
    finally:
        go.set()
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
        results.close()
        results.join_thread()
