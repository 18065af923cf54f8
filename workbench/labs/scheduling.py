"""The concurrent-parallel lab (course 2.1 并发/并行, 2.2.1 进程状态): tasks sharing one core vs spread over the cores, with the kernel's own running/ready/waiting times."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from workbench.labs._cpu_work import calibrate, processes_ready, spin
from workbench.labs.base import Lab, LabContext, Param

#: How many sleeps a blocking task's waiting is cut into (each a real block in the kernel).
BLOCKING_PIECES = 10
#: Where the kernel says how long this process ran and how long it waited for a CPU.
SCHEDSTAT = "/proc/self/schedstat"
#: The longest any task may take before the lab gives up on it.
TASK_TIMEOUT = 60.0


def _schedstat() -> tuple[int, int]:
    """(ns this process ran on a CPU, ns it waited on a run queue): the kernel's own account.

    (0, 0) where the kernel keeps none (built without CONFIG_SCHED_INFO): the lab says so.
    """
    try:
        with open(SCHEDSTAT) as stat:
            running, ready, _slices = stat.read().split()
    except OSError:
        return 0, 0
    return int(running), int(ready)


def _context_switches() -> tuple[int, int]:
    """(voluntary, involuntary) context switches of this process so far."""
    counts = {}
    with open("/proc/self/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
                counts[name] = int(value)
    return counts.get("voluntary_ctxt_switches", 0), counts.get("nonvoluntary_ctxt_switches", 0)


def run_task(kind: str, loops: int, pause_s: float, core: int, go, results) -> None:
    """One task in its own process: pin it, say ready, wait for the start, work, report."""
    os.sched_setaffinity(0, {core})
    results.put(("ready", os.getpid()))
    parent = os.getppid()
    while not go.wait(timeout=0.2):
        if os.getppid() != parent:  # the lab died (a cancelled run): do not work for nobody
            return
    ran_before, ready_before = _schedstat()
    voluntary_before, involuntary_before = _context_switches()
    started = time.monotonic()
    if kind == "cpu":
        spin(loops)
    else:  # blocking: the same total as waits, each a sleep the kernel takes it off the CPU for
        for _ in range(BLOCKING_PIECES):
            time.sleep(pause_s / BLOCKING_PIECES)
    ended = time.monotonic()
    ran_after, ready_after = _schedstat()
    voluntary_after, involuntary_after = _context_switches()
    results.put(
        (
            "done",
            os.getpid(),
            started,
            ended,
            (ran_after - ran_before) / 1e9,
            (ready_after - ready_before) / 1e9,
            voluntary_after - voluntary_before,
            involuntary_after - involuntary_before,
        )
    )


@dataclass(frozen=True)
class TaskTimes:
    """One task's time split the way the course's 三态 split it, as the kernel counted."""

    wall_s: float
    running_s: float  # 运行态: on a CPU
    ready_s: float  # 就绪态: runnable, waiting on the run queue for a CPU
    voluntary: int  # it gave the CPU up: it blocked (等待态)
    involuntary: int  # the scheduler took the CPU away: its time slice was up

    @property
    def waiting_s(self) -> float:
        """等待态: neither running nor ready, so blocked (sleeping, waiting on I/O)."""
        return max(0.0, self.wall_s - self.running_s - self.ready_s)


@dataclass(frozen=True)
class SharingRun:
    """One run of the lab: its label, its wall time, and each of its tasks' times."""

    label: str
    wall_s: float
    tasks: tuple[TaskTimes, ...]

    def mean(self, field: str) -> float:
        return sum(getattr(task, field) for task in self.tasks) / len(self.tasks)


class ConcurrentParallelLab(Lab):
    name = "concurrent-parallel"
    title = "Concurrent or parallel: tasks sharing one core, or spread over the cores"
    course_term = "并发 / 并行, 进程三态"
    course_section = "2.1, 2.2.1"
    order = 2.1
    explanation = (
        "The same tasks run three ways, each task a process of its own pinned to a core "
        "(sched_setaffinity). CPU-bound tasks all on one core: the CPU switches between them "
        "(轮训), so they are concurrent (并发) but never at the same instant, and together they "
        "take as long as one after another. CPU-bound tasks spread over the cores, one core "
        "each while there are cores enough: parallel (并行), together as fast as one. Blocking tasks (they sleep, as a task waiting on the network "
        "does) all on one core: while one waits the other runs, so concurrency alone speeds "
        "them up — 有阻塞时并行并发都能提高效率. Each task's time is split as the kernel "
        "counted it (/proc/self/schedstat): running (运行态, on a CPU), ready (就绪态, runnable "
        "but waiting on the run queue for the CPU) and waiting (等待态, blocked). ps shows both "
        "running and ready as R; only the run queue's clock tells them apart."
    )
    params = (
        Param("tasks", 2, "tasks (processes) in each run", minimum=2, maximum=8),
        Param("work_ms", 300, "how long one task takes alone", minimum=50, maximum=2000),
    )

    def run(self, ctx: LabContext) -> None:
        count, work_s = int(ctx["tasks"]), int(ctx["work_ms"]) / 1000
        cores = sorted(os.sched_getaffinity(0))
        loops = calibrate(work_s)
        ctx.line(
            f"{len(cores)} usable core(s): {', '.join(map(str, cores))}; one task = {loops:,} "
            f"loop iterations (≈ {work_s * 1000:,.0f} ms alone) or {work_s * 1000:,.0f} ms of sleeps"
        )
        first = cores[0]
        if not os.path.exists(SCHEDSTAT):
            ctx.line(f"this kernel keeps no {SCHEDSTAT}: running and ready times will read 0")
        plan: list[tuple[str, str, list[int]]] = [
            ("1 CPU-bound task alone", "cpu", [first]),
            (f"{count} CPU-bound tasks on core {first}", "cpu", [first] * count),
        ]
        if len(cores) > 1:
            plan.append(
                (
                    f"{count} CPU-bound tasks over {min(count, len(cores))} cores",
                    "cpu",
                    [cores[index % len(cores)] for index in range(count)],
                )
            )
        plan.append((f"{count} blocking tasks on core {first}", "sleep", [first] * count))
        runs: list[SharingRun] = []
        for label, kind, placement in plan:
            if ctx.cancelled:
                return
            run = self._run(label, kind, loops, work_s, placement)
            runs.append(run)
            ctx.line(
                f"{label}: {run.wall_s * 1000:,.0f} ms; each task ran "
                f"{run.mean('running_s') * 1000:,.0f} ms, was ready (on the run queue) "
                f"{run.mean('ready_s') * 1000:,.0f} ms, waited (blocked) "
                f"{run.mean('waiting_s') * 1000:,.0f} ms"
            )
        alone = runs[0]
        shared = runs[1]
        taken = shared.mean("involuntary")
        if taken:
            ctx.line(
                f"on one core the scheduler took the CPU from each task {taken:,.0f} times: "
                f"a turn lasted about {shared.mean('running_s') / taken * 1000:.1f} ms, and "
                "switching that fast is why concurrent tasks look simultaneous (cpu轮训)"
            )
        spread = runs[2] if len(cores) > 1 else None
        blocking = runs[-1]

        def speedup(run: SharingRun, one_by_one_s: float) -> float:
            return one_by_one_s / run.wall_s

        one_by_one_cpu = count * alone.wall_s
        one_by_one_sleep = count * work_s
        ctx.table(
            "Each run, and each task's time as the kernel split it (means per task)",
            (
                "run",
                "wall ms",
                "vs one after another",
                "running ms",
                "ready ms",
                "waiting ms",
                "switches: gave up / taken",
            ),
            [
                (
                    run.label,
                    f"{run.wall_s * 1000:,.0f}",
                    "—"
                    if run is alone
                    else f"×{speedup(run, one_by_one_sleep if run is blocking else one_by_one_cpu):.2f}",
                    f"{run.mean('running_s') * 1000:,.0f}",
                    f"{run.mean('ready_s') * 1000:,.0f}",
                    f"{run.mean('waiting_s') * 1000:,.0f}",
                    f"{run.mean('voluntary'):,.0f} / {run.mean('involuntary'):,.0f}",
                )
                for run in runs
            ],
        )
        ctx.figure("cores", "usable cores", len(cores))
        ctx.figure("alone_ms", "one CPU-bound task alone", round(alone.wall_s * 1000), "ms")
        ctx.figure(
            "one_core_ms", f"{count} CPU-bound on one core", round(shared.wall_s * 1000), "ms"
        )
        ctx.figure(
            "one_core_ready_ms",
            "one core: each task ready (on the run queue)",
            round(shared.mean("ready_s") * 1000),
            "ms",
        )
        ctx.figure(
            "one_core_taken",
            "one core: times the CPU was taken from each task",
            round(shared.mean("involuntary")),
        )
        if spread is not None:
            ctx.figure(
                "one_core_each_ms",
                f"{count} CPU-bound over {min(count, len(cores))} cores",
                round(spread.wall_s * 1000),
                "ms",
            )
            ctx.figure(
                "one_core_each_ready_ms",
                "spread: each task ready (on the run queue)",
                round(spread.mean("ready_s") * 1000),
                "ms",
            )
        ctx.figure(
            "blocking_ms", f"{count} blocking on one core", round(blocking.wall_s * 1000), "ms"
        )
        ctx.figure(
            "blocking_gave_up",
            "blocking: times each task gave the CPU up",
            round(blocking.mean("voluntary")),
        )
        ctx.verdict(self._verdict(count, len(cores), alone, shared, spread, blocking, work_s))

    @staticmethod
    def _verdict(
        count: int,
        cores: int,
        alone: SharingRun,
        shared: SharingRun,
        spread: SharingRun | None,
        blocking: SharingRun,
        work_s: float,
    ) -> str:
        one_by_one = count * alone.wall_s
        said = (
            f"On one core, {count} CPU-bound tasks took {shared.wall_s * 1000:,.0f} ms "
            f"(×{one_by_one / shared.wall_s:.2f} of running them one after another): each ran "
            f"{shared.mean('running_s') * 1000:,.0f} ms and sat ready "
            f"{shared.mean('ready_s') * 1000:,.0f} ms while another had the CPU — concurrent, "
            "not parallel"
        )
        if spread is None:
            said += "; this machine has one usable core, so nothing here can run in parallel"
        else:
            usable = min(count, cores)
            said += (
                f". Spread over {usable} cores they took {spread.wall_s * 1000:,.0f} ms "
                f"(×{one_by_one / spread.wall_s:.2f}; ×{usable} at most), ready "
                f"only {spread.mean('ready_s') * 1000:,.0f} ms each — parallel"
            )
        said += (
            f". {count} blocking tasks on one core took {blocking.wall_s * 1000:,.0f} ms "
            f"(×{count * work_s / blocking.wall_s:.2f}): they spent their time waiting "
            "(blocked), not ready, so sharing one core cost them nothing."
        )
        return said

    @staticmethod
    def _run(label: str, kind: str, loops: int, pause_s: float, placement: list[int]) -> SharingRun:
        placed = [(kind, loops, pause_s, core) for core in placement]
        with processes_ready(run_task, placed) as (go, results):
            go.set()
            done = [results.get(timeout=TASK_TIMEOUT) for _ in placed]
        wall = max(report[3] for report in done) - min(report[2] for report in done)
        tasks = tuple(
            TaskTimes(
                wall_s=ended - started,
                running_s=running,
                ready_s=ready,
                voluntary=voluntary,
                involuntary=involuntary,
            )
            for _, _, started, ended, running, ready, voluntary, involuntary in done
        )
        return SharingRun(label, wall, tasks)


LABS = (ConcurrentParallelLab(),)
