"""Thread labs: daemon threads at exit, lost updates and the Lock, Event wake-ups, a deadlock caught and broken (course 2.3)."""

from __future__ import annotations

import random
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from workbench.labs.base import Lab, LabContext, Param

#: How long a lab waits for one of its threads before calling it hung.
_JOIN_TIMEOUT_S = 5.0


def join_all(threads: list[threading.Thread], timeout: float = _JOIN_TIMEOUT_S) -> int:
    """Join every thread within ``timeout`` in all; returns how many are still alive."""
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return sum(thread.is_alive() for thread in threads)


#: The child interpreter of the daemon lab: a worker (thread or process) outlives the main
#: thread's last line. The process is forked: this interpreter has no other thread then.
_DAEMON_CHILD = textwrap.dedent(
    """
    import multiprocessing, sys, threading, time
    daemon, work, kind = sys.argv[1] == "daemon", float(sys.argv[2]), sys.argv[3]

    def worker():
        deadline = time.monotonic() + work
        while time.monotonic() < deadline:
            time.sleep(0.01)
        print("worker-finished", time.monotonic(), flush=True)

    if kind == "process":
        multiprocessing.get_context("fork").Process(target=worker, daemon=daemon).start()
    else:
        threading.Thread(target=worker, daemon=daemon).start()
    print("main-ended", time.monotonic(), flush=True)
    """
)
#: What the daemon lab's worker may be.
DAEMON_WORKERS = ("thread", "process")


class DaemonThreadsLab(Lab):
    name = "daemon-threads"
    title = "Daemon threads and processes: who keeps a program alive after its main thread ends"
    course_term = "daemon 属性"
    course_section = "2.3.2, 2.2.2"
    order = 2.32
    explanation = (
        "The lab starts a fresh Python interpreter twice. Each starts a worker thread that works "
        "for `work` seconds, and then its main thread reaches its last line at once. With "
        "daemon=False (the default) the interpreter waits for every non-daemon thread before it "
        "exits, so the process lives on until the worker finishes. With daemon=True the course's "
        "rule holds — 'daemon为True时主线程退出分支线程也退出': the interpreter exits as soon as "
        "the main thread is done and the daemon thread is simply stopped mid-work (its 'finished' "
        "line never prints, its finally blocks never run). The lab times, from outside, how long "
        "each process lived after its main thread ended. (The course's t.setDaemon() and "
        "t.isDaemon() are deprecated since Python 3.10: set daemon=True or t.daemon = True.) "
        "With worker=process the worker is a multiprocessing.Process and the same rule holds "
        "for p.daemon (2.2.2, '子进程会随父进程的退出而结束'): at exit the parent terminates "
        "its daemonic children (SIGTERM) and joins the others, which it waits for."
    )
    params = (
        Param("work", 1.0, "seconds the worker works", minimum=0.2, maximum=5.0),
        Param("worker", "thread", "what the worker is: thread or process"),
    )

    def run(self, ctx: LabContext) -> None:
        work = float(ctx["work"])
        worker = str(ctx["worker"]).strip().lower()
        if worker not in DAEMON_WORKERS:
            ctx.line(f"worker must be thread or process, not {worker!r}")
            ctx.verdict("Nothing measured: worker must be thread or process.")
            return
        rows = []
        for kind in ("non-daemon", "daemon"):
            if ctx.cancelled:
                return
            lived, finished = self._one_child(ctx, kind, work, worker)
            key = kind.replace("-", "")
            ctx.figure(
                f"{key}_exit_after_main_s", f"{kind}: exit after main ended", round(lived, 3), "s"
            )
            ctx.figure(f"{key}_worker_finished", f"{kind}: worker finished", finished)
            rows.append((kind, f"{lived:.3f}", "yes" if finished else "no (killed at exit)"))
        ctx.table(
            "after the main thread ended",
            (f"worker {worker}", "program lived on (s)", "worker finished"),
            rows,
        )
        values = ctx.report.figures
        nondaemon = float(values["nondaemon_exit_after_main_s"].value)
        daemon = float(values["daemon_exit_after_main_s"].value)
        if values["nondaemon_worker_finished"].value and not values["daemon_worker_finished"].value:
            ctx.verdict(
                f"the non-daemon worker {worker} kept its program alive {nondaemon:.2f} s after "
                f"the main thread ended (work = {work:g} s); the daemon worker {worker} was "
                f"stopped at exit, {daemon * 1000:.0f} ms after the main thread ended"
            )
        else:
            ctx.verdict(
                f"unexpected: non-daemon lived {nondaemon:.2f} s, daemon {daemon:.2f} s after main"
            )

    def _one_child(
        self, ctx: LabContext, kind: str, work: float, worker: str
    ) -> tuple[float, bool]:
        child = subprocess.Popen(
            [sys.executable, "-c", _DAEMON_CHILD, kind.replace("-", ""), str(work), worker],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            # stdout reaches EOF when the process exits: that moment is its exit time.
            output, _ = child.communicate(timeout=work + _JOIN_TIMEOUT_S)
            exited_at = time.monotonic()
        finally:
            if child.poll() is None:
                child.kill()
            child.wait()
        stamps = dict(line.split() for line in output.splitlines() if line.strip())
        main_ended = float(stamps["main-ended"])
        finished = "worker-finished" in stamps
        lived = exited_at - main_ended
        ctx.line(
            f"{kind} worker {worker}: pid {child.pid}'s main thread ended; the program exited "
            f"{lived:.3f} s later (code {child.returncode}); the worker "
            + ("finished its work" if finished else "never finished")
        )
        return lived, finished


#: Times the lock lab runs its unlocked race, at most, until an update is lost.
UNLOCKED_ROUNDS = 3


class Shared:
    """The shared resource (共享资源) the lock lab's threads update."""

    def __init__(self) -> None:
        self.count = 0


def switch_point(value: int) -> int:
    """A tiny bit of work between the read and the write.

    CPython 3.11 hands the GIL to another thread only where it checks for a
    pending switch: on entering a Python function and on a loop's backward
    jump. Calling a Python function here puts such a point inside the
    read-modify-write, where a real program's work (a lookup, a log call) would.
    """
    return value


def increment_unlocked(shared: Shared, times: int, start: threading.Barrier) -> None:
    start.wait(timeout=_JOIN_TIMEOUT_S)
    for _ in range(times):
        value = shared.count  # read ...
        value = switch_point(value)  # ... another thread may run here ...
        shared.count = value + 1  # ... write back: its updates since our read are lost


def increment_locked(
    shared: Shared, times: int, start: threading.Barrier, lock: threading.Lock
) -> None:
    start.wait(timeout=_JOIN_TIMEOUT_S)
    for _ in range(times):
        with lock:
            value = shared.count
            value = switch_point(value)
            shared.count = value + 1


class LockLab(Lab):
    name = "lock"
    title = "Lost updates: read-modify-write from many threads, without and with a Lock"
    course_term = "线程锁 Lock (同步互斥)"
    course_section = "2.3.4"
    order = 2.341
    explanation = (
        "Each thread adds 1 to a shared counter many times by reading it, calling a tiny "
        "function, and writing back value + 1 — a critical section (临界区) on a shared resource. "
        "The GIL runs one thread at a time, but it can hand over to another thread in the middle "
        "of that sequence (CPython checks for a switch on entering a function and at a loop's "
        "jump back); the lab asks it to switch very often (sys.setswitchinterval, restored "
        "afterwards) so the race shows in a fraction of a second. A thread switched out between "
        "its read and its write overwrites every increment the others made meanwhile: lost "
        "updates. With threading.Lock around the read-modify-write (互斥), only one thread is ever "
        "inside it and the count comes out exact. The GIL does not make Python code thread-safe."
    )
    params = (
        Param("threads", 4, "threads incrementing the counter", minimum=2, maximum=16),
        Param("increments", 100000, "increments per thread", minimum=1000, maximum=1000000),
        Param(
            "switch_us", 1.0, "thread switch interval (µs) during the run", minimum=1, maximum=5000
        ),
    )

    def run(self, ctx: LabContext) -> None:
        threads, times = int(ctx["threads"]), int(ctx["increments"])
        expected = threads * times
        previous = sys.getswitchinterval()
        sys.setswitchinterval(float(ctx["switch_us"]) / 1e6)
        try:
            ctx.line(
                f"switch interval set to {sys.getswitchinterval() * 1e6:g} µs "
                f"(was {previous * 1e3:g} ms)"
            )
            # A race is luck: on a busy machine the threads may happen not to interleave
            # at all, so an unlucky round is said and the race run again, a few times at most.
            for attempt in range(1, UNLOCKED_ROUNDS + 1):
                unlocked, unlocked_s = self._race(
                    threads, lambda s, go: increment_unlocked(s, times, go)
                )
                ctx.line(
                    f"{threads} threads × {times:,} increments without a Lock: count = "
                    f"{unlocked:,} (expected {expected:,}) in {unlocked_s * 1000:.0f} ms"
                    + (f" (round {attempt})" if attempt > 1 else "")
                )
                if unlocked != expected or ctx.cancelled:
                    break
                ctx.line("no update lost this time: the threads happened not to interleave")
            lock = threading.Lock()
            locked, locked_s = self._race(
                threads, lambda s, go: increment_locked(s, times, go, lock)
            )
            ctx.line(
                f"{threads} threads × {times:,} increments with a Lock: count = {locked:,} "
                f"in {locked_s * 1000:.0f} ms"
            )
        finally:
            sys.setswitchinterval(previous)
            ctx.line(f"switch interval restored to {sys.getswitchinterval() * 1e3:g} ms")
        lost, lost_locked = expected - unlocked, expected - locked
        ctx.figure("expected", "expected count", expected)
        ctx.figure("actual_without_lock", "count without a Lock", unlocked)
        ctx.figure("lost_without_lock", "lost updates without a Lock", lost)
        ctx.figure("actual_with_lock", "count with a Lock", locked)
        ctx.figure("lost_with_lock", "lost updates with a Lock", lost_locked)
        ctx.figure("seconds_without_lock", "time without a Lock", round(unlocked_s, 4), "s")
        ctx.figure("seconds_with_lock", "time with a Lock", round(locked_s, 4), "s")
        if lost > 0 and lost_locked == 0:
            ctx.verdict(
                f"without a Lock {lost:,} of {expected:,} updates were lost "
                f"({lost / expected:.0%}); with a Lock none were"
            )
        else:
            ctx.verdict(
                f"without a Lock {lost:,} updates were lost, with a Lock {lost_locked:,} "
                "(no race showed this time: try more increments or a shorter switch interval)"
            )

    @staticmethod
    def _race(threads: int, work: Callable[[Shared, threading.Barrier], None]) -> tuple[int, float]:
        shared = Shared()
        start_together = threading.Barrier(threads)  # no thread finishes before the last starts
        workers = [
            threading.Thread(target=work, args=(shared, start_together), name=f"incrementer-{n}")
            for n in range(threads)
        ]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        if join_all(workers):
            raise RuntimeError("an incrementing thread did not finish")
        return shared.count, time.perf_counter() - started


def thread_state(native_id: int) -> str:
    """The kernel's state letter for one of this process's threads (S = sleeping), '?' if unknown."""
    try:
        with open(f"/proc/self/task/{native_id}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0]
    except OSError:
        return "?"


class EventLab(Lab):
    name = "event"
    title = "threading.Event: workers block in wait() until the main thread sets it"
    course_term = "线程Event"
    course_section = "2.3.4"
    order = 2.342
    explanation = (
        "Event is the course's synchronisation (同步) tool: e.wait() blocks a thread until another "
        "calls e.set(). The lab starts workers that all call wait(); while they wait the kernel "
        "shows each of their threads sleeping (state S in /proc) — blocked, using no CPU. After "
        "`delay` seconds the main thread calls set() and every worker wakes; the lab measures each "
        "one's wake-up delay, from set() to the line after its wait(). One more worker waits with "
        "a timeout shorter than the delay: its wait() returns False, as the course's e.wait([timeout]) "
        "describes."
    )
    params = (
        Param("workers", 4, "threads waiting on the event", minimum=1, maximum=32),
        Param("delay", 0.3, "seconds before the main thread sets it", minimum=0.05, maximum=3.0),
    )

    def run(self, ctx: LabContext) -> None:
        count, delay = int(ctx["workers"]), float(ctx["delay"])
        event = threading.Event()
        ready = threading.Barrier(count + 2)  # the workers, the impatient one, the main thread
        woke: dict[str, float] = {}
        native: dict[str, int] = {}
        impatient_result: list[bool] = []

        def worker() -> None:
            name = threading.current_thread().name
            native[name] = threading.get_native_id()
            try:
                ready.wait(timeout=_JOIN_TIMEOUT_S)
            except threading.BrokenBarrierError:
                return  # the run was abandoned before it began
            event.wait()
            woke[name] = time.perf_counter()

        def impatient() -> None:
            try:
                ready.wait(timeout=_JOIN_TIMEOUT_S)
            except threading.BrokenBarrierError:
                return
            impatient_result.append(event.wait(timeout=delay / 3))

        workers = [threading.Thread(target=worker, name=f"worker-{n}") for n in range(count)]
        workers.append(threading.Thread(target=impatient, name="impatient"))
        for thread in workers:
            thread.start()
        try:
            ready.wait(timeout=_JOIN_TIMEOUT_S)
            ctx.line(
                f"{count} workers called event.wait(); one more waits with timeout={delay / 3:.3g} s"
            )
            time.sleep(delay / 2)
            states = [thread_state(native[name]) for name in sorted(native)]
            ctx.line(
                f"{delay / 2:.3g} s later the kernel shows the waiting threads in states "
                f"{''.join(states)} (S = sleeping, R = running); is_set() = {event.is_set()}"
            )
            time.sleep(delay / 2)
            set_at = time.perf_counter()
            event.set()
            ctx.line("the main thread called event.set()")
        finally:
            ready.abort()  # a no-op once all have passed it; frees them if the run failed first
            event.set()  # never leave a worker waiting
            left = join_all(workers)
        delays_ms = sorted((woke[name] - set_at) * 1000 for name in woke)
        ctx.line(
            f"{len(woke)} workers woke, after {delays_ms[0]:.3f} … {delays_ms[-1]:.3f} ms; "
            f"the impatient wait() returned {impatient_result[0] if impatient_result else '?'}"
        )
        ctx.table(
            "wake-up after set()",
            ("worker", "delay (ms)"),
            [(name, f"{(woke[name] - set_at) * 1000:.3f}") for name in sorted(woke)],
        )
        blocked = sum(state == "S" for state in states)
        ctx.figure("workers", "workers", count)
        ctx.figure("woken", "workers woken", len(woke))
        ctx.figure("blocked_while_waiting", "workers sleeping while they waited", blocked)
        ctx.figure(
            "wake_ms_median", "median wake-up delay", round(statistics.median(delays_ms), 3), "ms"
        )
        ctx.figure("wake_ms_max", "slowest wake-up delay", round(delays_ms[-1], 3), "ms")
        ctx.figure(
            "timeout_wait_returned",
            "wait(timeout) returned",
            bool(impatient_result and impatient_result[0]),
        )
        ctx.figure("threads_left", "threads still alive", left)
        ctx.verdict(
            f"{len(woke)} of {count} workers slept in wait() ({blocked} seen in state S) and woke "
            f"{statistics.median(delays_ms):.2f} ms (median) after set(), the slowest after "
            f"{delays_ms[-1]:.2f} ms; a wait(timeout) that expired first returned "
            f"{bool(impatient_result and impatient_result[0])}"
        )


@dataclass
class WaitForBoard:
    """Who holds which lock and who waits for which: the wait-for graph a deadlock detector reads."""

    holders: dict[str, str] = field(default_factory=dict)
    waiting: dict[str, str] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def wants(self, thread: str, lock: str) -> None:
        with self._guard:
            self.waiting[thread] = lock

    def got(self, thread: str, lock: str | None) -> None:
        with self._guard:
            self.waiting.pop(thread, None)
            if lock is not None:
                self.holders[lock] = thread

    def released(self, lock: str) -> None:
        with self._guard:
            self.holders.pop(lock, None)

    def cycle(self) -> list[tuple[str, str, str]] | None:
        """A cycle of (thread, lock it holds, lock it waits for), or None: a deadlock, found."""
        with self._guard:
            holders, waiting = dict(self.holders), dict(self.waiting)
        held_by: dict[str, list[str]] = {}
        for lock, thread in holders.items():
            held_by.setdefault(thread, []).append(lock)
        for start in sorted(waiting):
            path, thread = [], start
            while thread in waiting and thread not in [step[0] for step in path]:
                wanted = waiting[thread]
                path.append((thread, ",".join(sorted(held_by.get(thread, []))), wanted))
                thread = holders.get(wanted, "")
            if thread == start:
                return path
        return None


class TracedLock:
    """A Lock that writes on a WaitForBoard who holds it and who waits for it."""

    def __init__(self, name: str, board: WaitForBoard) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._board = board

    def acquire(self, timeout: float = -1, give_up: threading.Event | None = None) -> bool:
        """Like Lock.acquire; with ``give_up``, waits (forever if need be) until got or given up."""
        me = threading.current_thread().name
        self._board.wants(me, self.name)
        if give_up is None:
            got = self._lock.acquire(timeout=timeout)
        else:
            got = False
            while not got and not give_up.is_set():
                got = self._lock.acquire(timeout=0.01)
        self._board.got(me, self.name if got else None)
        return got

    def release(self) -> None:
        self._board.released(self.name)
        self._lock.release()


class DeadlockLab(Lab):
    name = "deadlock"
    title = "Deadlock: two threads, two locks, opposite order — caught, then avoided"
    course_term = "死锁"
    course_section = "2.3.5"
    order = 2.35
    explanation = (
        "T1 takes lock A then wants B; T2 takes B then wants A. A barrier makes sure each holds "
        "its first lock before asking for the second, so both block forever: all four of the "
        "course's conditions hold (互斥, 请求和保持, 不剥夺, 环路等待). The locks are instrumented: "
        "each records who holds it and who waits for it, and the lab, acting as the detector, "
        "finds the cycle in that wait-for graph and prints it. Then it plays the outside force "
        "(外力) the course speaks of: it tells both threads to give up, and they release their "
        "locks and end. Two cures follow, each run for real: acquire(timeout=…) — a thread that "
        "cannot get its second lock in time releases its first and retries (breaks 请求和保持); "
        "and lock ordering — both threads take A before B, so no cycle can form (breaks 环路等待)."
    )
    params = (
        Param(
            "timeout", 0.05, "acquire timeout (s) of the back-off cure", minimum=0.005, maximum=1.0
        ),
    )

    def run(self, ctx: LabContext) -> None:
        left = 0
        found, detect_ms, left_now = self._deadlock(ctx)
        left += left_now
        if found is None:
            raise RuntimeError("the two threads did not deadlock within 2 s")
        pair = "; ".join(f"{t} holds {held} waits {wanted}" for t, held, wanted in found)
        ctx.figure("deadlock_detected", "deadlock detected", True)
        ctx.figure("wait_for", "wait-for cycle", pair)
        ctx.figure("detect_ms", "detected after", round(detect_ms, 2), "ms")
        backoffs, backoff_ok, backoff_s, left_now = self._backoff(ctx, float(ctx["timeout"]))
        left += left_now
        ctx.figure("backoffs", "back-offs before both finished", backoffs)
        ctx.figure("timeout_completed", "timeout cure: both finished", backoff_ok)
        ordered_ok, cycle_seen, left_now = self._ordered(ctx)
        left += left_now
        ctx.figure("ordering_completed", "lock ordering: both finished", ordered_ok)
        ctx.figure("ordering_cycle_seen", "lock ordering: a cycle seen", cycle_seen)
        ctx.figure("threads_left", "threads still alive", left)
        ctx.table(
            "three runs",
            ("run", "outcome"),
            [
                ("opposite order", f"deadlock: {pair}"),
                (
                    "acquire(timeout)",
                    f"both finished after {backoffs} back-off(s) in {backoff_s * 1000:.0f} ms"
                    if backoff_ok
                    else "did not finish",
                ),
                (
                    "lock ordering A<B",
                    "both finished, no cycle" if ordered_ok and not cycle_seen else "failed",
                ),
            ],
        )
        ctx.verdict(
            f"deadlock caught in {detect_ms:.0f} ms: {pair}; acquire(timeout) "
            + (f"ended it with {backoffs} back-off(s)" if backoff_ok else "did NOT end it")
            + ", lock ordering "
            + ("never let it form" if ordered_ok and not cycle_seen else "did NOT prevent it")
            + f"; {left} thread(s) left alive"
        )

    def _deadlock(self, ctx: LabContext) -> tuple[list[tuple[str, str, str]] | None, float, int]:
        board = WaitForBoard()
        a, b = TracedLock("A", board), TracedLock("B", board)
        both_hold_one = threading.Barrier(2)
        give_up = threading.Event()
        finished: list[str] = []

        def take(first: TracedLock, second: TracedLock) -> None:
            first.acquire()
            try:
                both_hold_one.wait(timeout=_JOIN_TIMEOUT_S)
                if second.acquire(give_up=give_up):
                    finished.append(threading.current_thread().name)
                    second.release()
            finally:
                first.release()

        threads = [
            threading.Thread(target=take, args=(a, b), name="T1"),
            threading.Thread(target=take, args=(b, a), name="T2"),
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        ctx.line("T1 takes A then wants B; T2 takes B then wants A")
        found = None
        try:
            deadline = time.monotonic() + 2.0
            while found is None and time.monotonic() < deadline and not ctx.cancelled:
                found = board.cycle()
                if found is None:
                    time.sleep(0.002)
            detect_ms = (time.perf_counter() - started) * 1000
            if found:
                ctx.line(
                    "detector: wait-for cycle "
                    + " -> ".join(
                        f"{t} (holds {held}, waits {wanted})" for t, held, wanted in found
                    )
                    + f" -> {found[0][0]}: deadlock"
                )
                time.sleep(0.1)
                ctx.line(
                    f"100 ms later: still stuck, {len(finished)} thread(s) finished; "
                    "the lab tells both to give up"
                )
        finally:
            give_up.set()
            left = join_all(threads)
        ctx.line(f"both released their locks and ended ({left} still alive)")
        return found, detect_ms, left

    def _backoff(self, ctx: LabContext, timeout: float) -> tuple[int, bool, float, int]:
        board = WaitForBoard()
        a, b = TracedLock("A", board), TracedLock("B", board)
        both_hold_one = threading.Barrier(2)
        backoffs: list[str] = []
        finished: list[str] = []
        jitter = random.Random(0x10C)

        def take(first: TracedLock, second: TracedLock, pause: float) -> None:
            for attempt in range(50):
                first.acquire()
                if attempt == 0:
                    both_hold_one.wait(timeout=_JOIN_TIMEOUT_S)  # make the first round collide
                if second.acquire(timeout=timeout):
                    finished.append(threading.current_thread().name)
                    second.release()
                    first.release()
                    return
                first.release()  # back off: give up what we hold, so the other can finish
                backoffs.append(threading.current_thread().name)
                time.sleep(pause)

        threads = [
            threading.Thread(target=take, args=(a, b, jitter.uniform(0.001, 0.01)), name="T1"),
            threading.Thread(target=take, args=(b, a, jitter.uniform(0.02, 0.04)), name="T2"),
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        left = join_all(threads)
        seconds = time.perf_counter() - started
        ok = sorted(finished) == ["T1", "T2"]
        ctx.line(
            f"cure 1, acquire(timeout={timeout:g}): {len(backoffs)} back-off(s) "
            f"({', '.join(backoffs) or 'none'}), then "
            + (f"both finished in {seconds * 1000:.0f} ms" if ok else "they did not both finish")
        )
        return len(backoffs), ok, seconds, left

    def _ordered(self, ctx: LabContext) -> tuple[bool, bool, int]:
        board = WaitForBoard()
        a, b = TracedLock("A", board), TracedLock("B", board)
        start_together = threading.Barrier(2)
        finished: list[str] = []
        cycle_seen = False
        give_up = threading.Event()

        def take() -> None:
            start_together.wait(timeout=_JOIN_TIMEOUT_S)
            for _ in range(200):
                if not a.acquire(give_up=give_up):
                    return
                if b.acquire(give_up=give_up):
                    b.release()
                a.release()
            finished.append(threading.current_thread().name)

        threads = [threading.Thread(target=take, name=name) for name in ("T1", "T2")]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 2.0
        while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
            cycle_seen = cycle_seen or board.cycle() is not None
            time.sleep(0.001)
        give_up.set()
        left = join_all(threads)
        ok = sorted(finished) == ["T1", "T2"]
        ctx.line(
            "cure 2, lock ordering (both take A, then B, 200 times each): "
            + ("both finished" if ok else "they did not both finish")
            + (", and a cycle was seen" if cycle_seen else ", no cycle ever seen")
        )
        return ok, cycle_seen, left


LABS = (DaemonThreadsLab(), LockLab(), EventLab(), DeadlockLab())
