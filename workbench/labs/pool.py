"""Process pool lab: multiprocessing.Pool hands many tasks to a few reused workers; a fresh process per task costs more (course 2.2.4)."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import Counter
from typing import Any

import psutil

from workbench.labs.base import Lab, LabContext, Param

#: How long the lab waits for a result before calling the pool stuck.
_RESULT_TIMEOUT_S = 30.0


def pool_task(number: int, seconds: float) -> tuple[int, int, float]:
    """One small task: a short sleep stands in for work; returns who ran it and when it ended."""
    time.sleep(seconds)
    return number, os.getpid(), time.monotonic()


def one_shot_task(number: int, seconds: float, results: multiprocessing.Queue) -> None:
    """The same task run as a whole process of its own, reporting through a queue."""
    results.put(pool_task(number, seconds))


def is_worker(process: psutil.Process) -> bool:
    """True for a spawned worker, False for multiprocessing's resource tracker (not a worker)."""
    try:
        return "resource_tracker" not in " ".join(process.cmdline())
    except psutil.Error:
        return False


class ProcessPoolLab(Lab):
    name = "process-pool"
    title = "Process pool: a fixed set of workers reused for many tasks"
    course_term = "进程池"
    course_section = "2.2.4"
    order = 2.24
    explanation = (
        "multiprocessing.Pool starts a fixed number of worker processes once; apply_async() "
        "pickles each task into a task queue, any idle worker takes it, runs it, and sends the "
        "pickled result back through a result queue — the workers do not exit between tasks, "
        "which is the course's point: creating and destroying a process per small task costs far "
        "more than reusing one. The lab maps every task to the PID that ran it (fewer PIDs than "
        "tasks, all of them the pool's), then runs a few tasks the expensive way, one fresh "
        "process each, and compares the cost per task. Our servers' `pool` model is a pool too, "
        "but no manager hands out tasks: its pre-forked workers all block in accept() on the one "
        "shared listening socket, the kernel gives each new connection to one idle worker, and "
        "that worker serves the whole connection itself."
    )
    params = (
        Param("workers", 3, "processes in the pool", minimum=1, maximum=8),
        Param("tasks", 12, "tasks to hand to the pool", minimum=2, maximum=100),
        Param("task_ms", 20, "how long each task works (ms)", minimum=0, maximum=500),
        Param(
            "fresh", 4, "tasks to run one fresh process each, for comparison", minimum=0, maximum=8
        ),
    )

    def run(self, ctx: LabContext) -> None:
        workers, tasks = int(ctx["workers"]), int(ctx["tasks"])
        seconds = int(ctx["task_ms"]) / 1000
        # spawn: the pool's own threads and a parent with threads make fork unsafe.
        context = multiprocessing.get_context("spawn")
        me = psutil.Process()
        before = {child.pid for child in me.children()}
        started = time.monotonic()
        pool = context.Pool(workers)
        try:
            pool_pids = sorted(
                child.pid for child in me.children() if child.pid not in before and is_worker(child)
            )
            ctx.line(f"Pool({workers}) started worker processes {', '.join(map(str, pool_pids))}")
            handed = time.monotonic()
            pending = [pool.apply_async(pool_task, (number, seconds)) for number in range(tasks)]
            ctx.line(f"apply_async() handed {tasks} tasks of {seconds * 1000:g} ms to the pool")
            results = sorted(
                (result.get(timeout=_RESULT_TIMEOUT_S) for result in pending), key=lambda r: r[2]
            )
            pool_s = time.monotonic() - handed
            pool.close()
            pool.join()
            total_pool_s = time.monotonic() - started
        finally:
            pool.terminate()
            pool.join()
        ctx.line(
            f"all {tasks} results back in {pool_s * 1000:.0f} ms (the workers' start-up included); "
            f"close() and join() ended the "
            f"workers ({total_pool_s * 1000:.0f} ms from Pool() to join(), start-up included)"
        )
        per_pid = Counter(pid for _, pid, _ in results)
        ctx.table(
            "task -> worker pid (in the order they finished)",
            ("task", "pid", "that worker's task #"),
            self._rows(results),
        )
        fresh = int(ctx["fresh"])
        fresh_s = self._fresh_processes(ctx, context, fresh, seconds) if fresh else None

        distinct = len(per_pid)
        ctx.figure("tasks", "tasks", tasks)
        ctx.figure("workers", "pool workers", workers)
        ctx.figure("distinct_pids", "distinct PIDs that ran them", distinct)
        ctx.figure("all_pids_in_pool", "every PID is a pool worker", set(per_pid) <= set(pool_pids))
        ctx.figure("most_tasks_per_worker", "most tasks one worker ran", max(per_pid.values()))
        ctx.figure(
            "pool_ms_per_task", "pool: wall time per task", round(pool_s * 1000 / tasks, 2), "ms"
        )
        if fresh_s is not None:
            ctx.figure(
                "fresh_ms_per_task",
                "fresh process per task: wall time per task",
                round(fresh_s * 1000 / fresh, 2),
                "ms",
            )
        verdict = (
            f"{tasks} tasks ran on {distinct} PIDs, all from the pool of {workers} "
            if set(per_pid) <= set(pool_pids)
            else f"{tasks} tasks ran on {distinct} PIDs, NOT all the pool's {workers} "
        )
        verdict += f"(one worker ran {max(per_pid.values())}): workers are reused, not re-created"
        if fresh_s is not None:
            verdict += (
                f"; a fresh process per task cost {fresh_s * 1000 / fresh:.0f} ms a task against "
                f"{pool_s * 1000 / tasks:.1f} ms in the pool"
            )
        ctx.verdict(verdict)

    @staticmethod
    def _rows(results: list[tuple[int, int, float]]) -> list[tuple[int, int, int]]:
        seen: Counter[int] = Counter()
        rows = []
        for number, pid, _ in results:
            seen[pid] += 1
            rows.append((number, pid, seen[pid]))
        return rows

    @staticmethod
    def _fresh_processes(ctx: LabContext, context: Any, count: int, seconds: float) -> float:
        """Run ``count`` tasks one process each, one after another; returns the wall time."""
        results = context.Queue()
        pids = []
        started = time.monotonic()
        try:
            for number in range(count):
                process = context.Process(target=one_shot_task, args=(number, seconds, results))
                process.start()
                try:
                    results.get(timeout=_RESULT_TIMEOUT_S)
                finally:
                    process.join(timeout=5)
                    if process.is_alive():
                        process.kill()
                        process.join()
                pids.append(process.pid)
            elapsed = time.monotonic() - started
        finally:
            results.close()
            results.join_thread()
        ctx.line(
            f"the same task {count} times, one fresh process each (created, run, joined): "
            f"PIDs {', '.join(map(str, pids))} — {elapsed * 1000 / count:.0f} ms per task"
        )
        return elapsed


LABS = (ProcessPoolLab(),)
