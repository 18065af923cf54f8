"""GIL lab: the same CPU-bound Python loop on N threads and on N processes, timed, with per-core CPU% (course 2.3.6)."""

from __future__ import annotations

import multiprocessing
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

from workbench.labs._cpu_work import calibrate, processes_ready, spin
from workbench.labs.base import Lab, LabContext, Param

#: Workers' own CPU% above which they must have run on more than one core at once.
_PARALLEL_PCT = 130.0
#: How often the per-core CPU% is sampled while a run goes on.
_SAMPLE_EVERY_S = 0.1


def spin_in_process(loops: int, go: multiprocessing.synchronize.Event, results) -> None:
    """A worker process: say ready, wait for the start signal, spin, report pid and CPU time."""
    results.put(("ready", os.getpid(), 0.0))
    parent = os.getppid()
    while not go.wait(timeout=0.2):
        if os.getppid() != parent:  # the lab died (a cancelled run): do not spin for nobody
            return
    started = time.process_time()
    spin(loops)
    results.put(("done", os.getpid(), time.process_time() - started))


def usable_cores() -> int:
    """CPUs this process may run on (its affinity), not merely the CPUs the machine has."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return psutil.cpu_count() or 1


@dataclass
class CoreSampler:
    """Samples psutil.cpu_percent(percpu=True) in the background while a run goes on."""

    samples: list[list[float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> CoreSampler:
        psutil.cpu_percent(percpu=True)  # the next reading covers the time from now
        self._thread = threading.Thread(target=self._sample, name="cpu-sampler", daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(_SAMPLE_EVERY_S):
            self.samples.append(psutil.cpu_percent(percpu=True))

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self.samples.append(psutil.cpu_percent(percpu=True))

    def per_core(self) -> list[float]:
        """Mean CPU% of each core over the samples."""
        if not self.samples:
            return []
        return [statistics.fmean(core) for core in zip(*self.samples, strict=False)]


@dataclass
class Run:
    label: str
    workers: int
    wall_s: float
    per_core: list[float]
    cpu_s: list[float]

    @property
    def own_cpu_pct(self) -> float:
        """CPU time the workers themselves used per second of wall time: 100% = one core busy."""
        return 100 * sum(self.cpu_s) / self.wall_s


class GilLab(Lab):
    name = "gil"
    title = "The GIL: CPU-bound Python on N threads vs N processes"
    course_term = "GIL问题 (全局解释器锁)"
    course_section = "2.3.6"
    order = 2.36
    explanation = (
        "The same pure-Python loop (no I/O, never blocks) runs once on one thread as a baseline, "
        "then N copies on N threads, then N copies on N processes. CPython's global interpreter "
        "lock lets only one thread execute Python bytecode at a time, so the N threads take about "
        "N times as long as one: their speedup stays near ×1 and the per-core CPU% shows about one "
        "core's worth of work in total. Processes each have their own interpreter and their own "
        "GIL, so on a machine with free cores they run truly in parallel (并行) and the speedup "
        "approaches min(N, cores). As the course concludes: use processes for CPU-bound "
        "concurrency; threads help only when tasks block (I/O). Speedup here = N × baseline time "
        "/ run time. Because other programs slow every run, the lab also adds up the CPU time "
        "the workers themselves used per second of wall time: N threads never get past about "
        "100% (one core), N processes can reach N × 100%. On a machine with few cores, or cores "
        "busy with other work, processes cannot show more than the free cores allow — the lab "
        "says so."
    )
    params = (
        Param("workers", 0, "threads / processes to run (0 = one per core, at least 2)", 0, 16),
        Param("seconds", 0.3, "how long one copy of the work takes alone", 0.05, 2.0),
    )

    def run(self, ctx: LabContext) -> None:
        cores = usable_cores()
        workers = int(ctx["workers"]) or max(2, min(cores, 8))
        idle_before = 100.0 - psutil.cpu_percent(interval=0.2)
        gil = getattr(sys, "_is_gil_enabled", lambda: True)()
        ctx.line(
            f"{cores} usable core(s); {idle_before:.0f}% of the machine idle before the runs; "
            f"Python {sys.version.split()[0]}, GIL {'enabled' if gil else 'DISABLED (free-threaded)'}"
        )
        loops = calibrate(float(ctx["seconds"]))
        ctx.line(f"one copy of the work = {loops:,} loop iterations (≈ {ctx['seconds']} s alone)")

        baseline = self._timed("1 thread (baseline)", 1, lambda: self._threads(1, loops))
        self._say(ctx, baseline)
        if ctx.cancelled:
            return
        threads = self._timed(f"{workers} threads", workers, lambda: self._threads(workers, loops))
        self._say(ctx, threads)
        if ctx.cancelled:
            return
        processes = self._processes(workers, loops)
        self._say(ctx, processes)

        speedup_threads = workers * baseline.wall_s / threads.wall_s
        speedup_processes = workers * baseline.wall_s / processes.wall_s
        shown_cores = min(len(baseline.per_core), 8)
        ctx.table(
            "wall time, the workers' own CPU%, and the machine's mean CPU% per core",
            (
                "run",
                "wall (s)",
                "speedup",
                "workers' CPU%",
                *(f"cpu{n}" for n in range(shown_cores)),
            ),
            [
                (
                    run.label,
                    f"{run.wall_s:.3f}",
                    f"×{workers * baseline.wall_s / run.wall_s:.2f}"
                    if run is not baseline
                    else "×1",
                    f"{run.own_cpu_pct:.0f}%",
                    *(f"{p:.0f}%" for p in run.per_core[:shown_cores]),
                )
                for run in (baseline, threads, processes)
            ],
        )
        ctx.figure("cores", "usable cores", cores)
        ctx.figure("workers", "threads / processes", workers)
        ctx.figure("idle_before_pct", "machine idle before", round(idle_before, 1), "%")
        ctx.figure("baseline_s", "1 thread, 1 copy", round(baseline.wall_s, 3), "s")
        ctx.figure(
            "threads_s", f"{workers} threads, {workers} copies", round(threads.wall_s, 3), "s"
        )
        ctx.figure(
            "processes_s", f"{workers} processes, {workers} copies", round(processes.wall_s, 3), "s"
        )
        ctx.figure("speedup_threads", "speedup with threads", round(speedup_threads, 2), "×")
        ctx.figure("speedup_processes", "speedup with processes", round(speedup_processes, 2), "×")
        ctx.figure(
            "threads_cpu_pct", "threads' own CPU% (100 = one core)", round(threads.own_cpu_pct)
        )
        ctx.figure(
            "processes_cpu_pct",
            "processes' own CPU% (100 = one core)",
            round(processes.own_cpu_pct),
        )
        ctx.verdict(self._verdict(cores, idle_before, threads, processes, baseline))

    @staticmethod
    def _verdict(
        cores: int, idle_before: float, threads: Run, processes: Run, baseline: Run
    ) -> str:
        # Judged on the workers' own CPU time per wall second, not on speedup alone: other
        # programs on the machine slow every run, but cannot make N threads use more than
        # one core's worth of CPU if the GIL holds them to one at a time.
        n = threads.workers
        by_threads = n * baseline.wall_s / threads.wall_s
        by_processes = n * baseline.wall_s / processes.wall_s
        figures = (
            f"{n} threads: ×{by_threads:.2f}, using {threads.own_cpu_pct:.0f}% of a core; "
            f"{n} processes: ×{by_processes:.2f}, using {processes.own_cpu_pct:.0f}%"
        )
        few = f"; with only {cores} cores, ×{cores} is the most processes could ever show"
        if cores < 2:
            return (
                f"{figures} — this machine has a single usable core, so nothing runs in "
                "parallel here and it cannot show the difference"
            )
        if threads.own_cpu_pct >= _PARALLEL_PCT:
            said = (
                f"{figures} — the threads used more than one core: this interpreter runs "
                "them in parallel (no GIL)"
            )
        elif processes.own_cpu_pct >= _PARALLEL_PCT:
            said = (
                f"{figures} — the GIL ran the threads one at a time, while the processes ran in "
                f"parallel on {processes.own_cpu_pct / 100:.1f} cores"
            )
        else:
            said = (
                f"{figures} — the machine was too busy to show it: about "
                f"{cores * idle_before / 100:.1f} of {cores} cores were free, so not even the "
                "processes got more than one core's worth; try again on a quieter machine"
            )
        return said + (few if cores <= 2 else "")

    @staticmethod
    def _timed(label: str, workers: int, body: Callable[[], list[float]]) -> Run:
        with CoreSampler() as sampler:
            started = time.perf_counter()
            cpu_s = body()
            wall = time.perf_counter() - started
        return Run(label, workers, wall, sampler.per_core(), cpu_s)

    @staticmethod
    def _threads(count: int, loops: int) -> list[float]:
        cpu_s: list[float] = []

        def one() -> None:
            started = time.thread_time()
            spin(loops)
            cpu_s.append(time.thread_time() - started)

        threads = [threading.Thread(target=one, name=f"spinner-{n}") for n in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        return cpu_s

    def _processes(self, count: int, loops: int) -> Run:
        with processes_ready(spin_in_process, [(loops,)] * count) as (go, results):
            with CoreSampler() as sampler:
                started = time.perf_counter()
                go.set()
                cpu_s = [results.get(timeout=60)[2] for _ in range(count)]
                wall = time.perf_counter() - started
        return Run(f"{count} processes", count, wall, sampler.per_core(), cpu_s)

    @staticmethod
    def _say(ctx: LabContext, run: Run) -> None:
        cores = " ".join(f"{p:.0f}%" for p in run.per_core)
        ctx.line(
            f"{run.label}: {run.wall_s:.3f} s wall; the workers used "
            f"{' + '.join(f'{c:.2f}' for c in run.cpu_s)} s CPU = {run.own_cpu_pct:.0f}% of a core; "
            f"machine per-core CPU% {cores}"
        )


LABS = (GilLab(),)
