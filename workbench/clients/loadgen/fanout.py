"""Fan a load test out over worker processes (or a thread), merge their batches, report progress."""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import sys
import threading
import time
from array import array
from collections.abc import Callable
from typing import Any

from workbench.clients.loadgen.config import LoadConfig, build_request, target_of
from workbench.clients.loadgen.engine import WorkerPlan, drive_load
from workbench.clients.loadgen.stats import LoadSnapshot, LoadStats

#: How often the caller's progress callback runs (a few times a second, never per request).
DEFAULT_PROGRESS_INTERVAL = 0.25


def _worker_process_main(plan: WorkerPlan, report: Any, start: Any, stop: Any) -> None:
    """Entry point of a spawned worker process."""
    try:
        drive_load(plan, report, start, stop)
    except KeyboardInterrupt:
        pass
    finally:
        report.close()


def default_processes(concurrency: int) -> int:
    """One worker process per core, never more processes than connections."""
    return max(1, min(os.cpu_count() or 1, concurrency))


def _split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if index < extra else 0) for index in range(parts)]


ProgressCallback = Callable[[LoadSnapshot], None]


def run_load(
    config: LoadConfig,
    on_progress: ProgressCallback | None = None,
    stop_event: threading.Event | None = None,
    progress_interval: float = DEFAULT_PROGRESS_INTERVAL,
) -> LoadSnapshot:
    """Run one load test to the end (or until ``stop_event``); return the final snapshot.

    Blocking: call it from a worker thread in a UI. ``on_progress`` is called in
    this thread at most every ``progress_interval`` seconds with a fresh snapshot.
    """
    config.validated()
    target = target_of(config.url)
    processes = (
        default_processes(config.concurrency) if config.processes is None else config.processes
    )
    worker_count = max(1, min(processes, config.concurrency))
    connections = _split(config.concurrency, worker_count)
    quotas: list[int | None]
    if config.requests is not None:
        # Share the count in proportion to connections, and never give a worker
        # more connections than requests (they would sit idle).
        quotas = list(_split(config.requests, worker_count))
        connections = [
            max(1, min(c, q)) if q else 0 for c, q in zip(connections, quotas, strict=True)
        ]
    else:
        quotas = [None] * worker_count
    request = build_request(config, target)
    plans = [
        WorkerPlan(
            host=target.host,
            port=target.port,
            request=request,
            method=config.method,
            connections=count,
            quota=quota,
            duration=config.duration,
            keepalive=config.keepalive,
            timeout=config.timeout,
        )
        for count, quota in zip(connections, quotas, strict=True)
        if count > 0
    ]
    stats = LoadStats(config, processes=0 if processes == 0 else len(plans))
    if processes == 0:
        start_flag: Any = threading.Event()
        stop_flag: Any = threading.Event()
    else:
        _ensure_resource_tracker()
        context = multiprocessing.get_context("spawn")
        start_flag = context.Event()
        stop_flag = context.Event()
    readers = []
    runners: list[Any] = []
    try:
        for plan in plans:
            reader, writer = multiprocessing.Pipe(duplex=False)
            readers.append(reader)
            if processes == 0:
                runner: Any = threading.Thread(
                    target=_thread_worker_main,
                    args=(plan, writer, start_flag, stop_flag),
                    name="loadgen-worker",
                    daemon=True,
                )
            else:
                runner = context.Process(
                    target=_worker_process_main,
                    args=(plan, writer, start_flag, stop_flag),
                    name="loadgen-worker",
                    daemon=True,
                )
            runner.start()
            if processes != 0:
                writer.close()  # the child holds its copy; EOF then means the child is gone
            runners.append(runner)
        _wait_until_ready(readers)
        stats.start()
        start_flag.set()
        _collect(stats, readers, on_progress, stop_event, stop_flag, progress_interval)
    finally:
        stop_flag.set()
        for runner in runners:
            runner.join(timeout=5)
            if isinstance(runner, multiprocessing.process.BaseProcess) and runner.is_alive():
                runner.kill()
                runner.join(timeout=5)
        for reader in readers:
            reader.close()
    if stats.finished_at is None:
        stats.finish()
    return stats.snapshot()


def _ensure_resource_tracker() -> None:
    """Start multiprocessing's resource tracker with a real stderr.

    Inside a Textual app ``sys.stderr`` is a capture object whose ``fileno()`` is
    -1, and spawning the tracker (needed by the Events below) then fails with
    "bad value(s) in fds_to_keep". Hand it the process's real stderr.
    """
    from multiprocessing import resource_tracker

    captured = sys.stderr
    try:
        try:
            usable = captured.fileno() >= 0
        except (AttributeError, OSError, ValueError):
            usable = False
        if not usable and sys.__stderr__ is not None:
            sys.stderr = sys.__stderr__
        resource_tracker.ensure_running()
    finally:
        sys.stderr = captured


def _wait_until_ready(readers: list[Any], timeout: float = 30.0) -> None:
    """Start the clock only when every worker is up (spawned interpreters take a while)."""
    waiting = list(readers)
    give_up = time.monotonic() + timeout
    while waiting and time.monotonic() < give_up:
        for reader in multiprocessing.connection.wait(waiting, timeout=0.1):
            try:
                reader.recv()
            except (EOFError, OSError):
                pass
            waiting.remove(reader)


def _thread_worker_main(plan: WorkerPlan, report: Any, start: Any, stop: Any) -> None:
    try:
        drive_load(plan, report, start, stop)
    finally:
        report.close()


def _collect(
    stats: LoadStats,
    readers: list[Any],
    on_progress: ProgressCallback | None,
    stop_event: threading.Event | None,
    stop_flag: Any,
    progress_interval: float,
) -> None:
    live = list(readers)
    worker_of = {id(reader): index for index, reader in enumerate(readers)}
    next_progress = time.monotonic() + progress_interval
    while live:
        ready = multiprocessing.connection.wait(live, timeout=0.05)
        for reader in ready:
            try:
                message = reader.recv()
            except (EOFError, OSError):
                live.remove(reader)
                continue
            if message == "ready":  # a late starter: its clock started with the others
                continue
            latency_bytes, statuses, errors, received, answered, waiting_us, final = message
            latencies = array("q")
            latencies.frombytes(latency_bytes)
            stats.record_batch(
                latencies,
                statuses,
                errors,
                received,
                worker=worker_of[id(reader)],
                answered_per_connection=answered,
                unanswered_us=waiting_us,
            )
            if final:
                live.remove(reader)
                if not live:
                    stats.finish()
        if stop_event is not None and stop_event.is_set() and not stop_flag.is_set():
            stats.stopped_early = True
            stop_flag.set()
        now = time.monotonic()
        if on_progress is not None and now >= next_progress and live:
            next_progress = now + progress_interval
            on_progress(stats.snapshot(now))
