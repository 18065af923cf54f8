"""Process labs: fork's two processes and copied memory, orphans adopted, zombies and three ways to reap them (course 2.2)."""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, NoReturn

import psutil

from workbench.labs.base import Lab, LabContext, Param

_MB = 1024 * 1024
#: The unit in which the kernel copies memory on write (4 KiB on x86-64 and most arm64).
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
#: prctl(2) option that makes a process adopt its orphaned descendants (Linux >= 3.4).
_PR_SET_CHILD_SUBREAPER = 36
#: How long the orphan lab waits for an adopter other than itself to reap the orphan.
_ADOPTER_PATIENCE_S = 3.0
#: A forked helper that hears nothing from the lab for this long gives up and exits.
_CHILD_PATIENCE_S = 10.0


def fork_child(body: Callable[[], Any]) -> int:
    """Fork; the child runs ``body`` and leaves with ``os._exit`` (never returning into the lab).

    Returns the child's pid in the parent. The child's exit status is 0 when
    ``body`` returned and 1 when it raised.
    """
    pid = os.fork()
    if pid:
        return pid
    _child_exit(body)


def _child_exit(body: Callable[[], Any]) -> NoReturn:
    status = 1
    try:
        # The lab's own SIGCHLD disposition (a handler, or SIG_IGN) is no business of the child.
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        body()
        status = 0
    finally:
        os._exit(status)


def write_json(fd: int, payload: dict[str, Any]) -> None:
    """One JSON message per line down a pipe (small enough to be written atomically)."""
    os.write(fd, (json.dumps(payload) + "\n").encode())


class PipeReader:
    """Reads the JSON lines a forked child writes, with a deadline so a lab never hangs on one."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buffer = b""

    def read(self, timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the child sent nothing for {timeout:g} s")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                chunk = os.read(self.fd, 4096)
                if not chunk:
                    raise EOFError("the child closed its pipe without a word")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)


def wait_for_eof(fd: int, timeout: float = _CHILD_PATIENCE_S) -> None:
    """Block (in a child) until the lab closes its end of the pipe, or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if ready and not os.read(fd, 4096):
            return


def reap(pid: int, timeout: float = 2.0) -> int | None:
    """waitpid ``pid``, killing it if it has not ended within ``timeout``; returns its wait status."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return None  # already reaped (or not ours)
        if done:
            return status
        if time.monotonic() > deadline:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return os.waitpid(pid, 0)[1]
        time.sleep(0.005)


def process_status(pid: int) -> str | None:
    """What psutil (that is, /proc) says of ``pid`` right now: 'sleeping', 'zombie'... or None if gone."""
    try:
        return psutil.Process(pid).status()
    except psutil.NoSuchProcess:
        return None


def describe_process(pid: int) -> str:
    try:
        process = psutil.Process(pid)
        return f"pid {pid} ({process.name()})"
    except psutil.Error:
        return f"pid {pid}"


def _other_threads_note(ctx: LabContext) -> None:
    others = threading.active_count() - 1
    if others:
        ctx.line(
            f"note: this process has {others} other thread(s); fork() copies only the calling "
            "thread, so locks those threads held stay locked in the child"
        )


class ForkLab(Lab):
    name = "fork"
    title = "fork(): one process becomes two, each with its own copy of memory"
    course_term = "子进程复制父进程全部内存空间"
    course_section = "2.2.2"
    order = 2.22
    explanation = (
        "os.fork() returns twice: in the parent it returns the child's PID, in the child it "
        "returns 0. The child is a copy of the parent — same code, same variables, even the same "
        "addresses (id() is equal in both) — but a separate process: os.getpid() differs, the "
        "child's os.getppid() is the parent's PID, and a variable the child changes stays "
        "unchanged in the parent, because each process now has its own memory (Linux copies a "
        "page only when one side writes it: copy-on-write — the lab measures it: the child's "
        "private memory (USS) grows by about the size of a buffer only once it writes to every "
        "page of it). The parent must still reap the child with waitpid (join in "
        "multiprocessing) or it lingers as a zombie (2.2.3)."
    )
    params = (
        Param("start", 1, "the value of the variable before fork()"),
        Param("child_sets", 42, "the value the child writes into it"),
        Param("buffer_mb", 32, "MB buffer the child writes to, to show copy-on-write", 0, 256),
    )

    def run(self, ctx: LabContext) -> None:
        _other_threads_note(ctx)
        shared = {"counter": int(ctx["start"])}
        address = id(shared)
        # Filled, not zeroed: every page really exists in the parent before fork().
        buffer = bytearray(b"\x01") * (int(ctx["buffer_mb"]) * _MB)
        parent = os.getpid()
        report_r, report_w = os.pipe()
        go_r, go_w = os.pipe()
        ctx.line(f"parent pid {parent}: counter = {shared['counter']} at address {address:#x}")

        def child() -> None:
            os.close(report_r)
            os.close(go_w)
            shared["counter"] = int(ctx["child_sets"])
            me = psutil.Process()
            private_before = me.memory_full_info().uss
            for offset in range(0, len(buffer), _PAGE):
                buffer[offset] = 2  # one write per page: the kernel must copy each page
            private_after = me.memory_full_info().uss
            write_json(
                report_w,
                {
                    "pid": os.getpid(),
                    "ppid": os.getppid(),
                    "counter": shared["counter"],
                    "address": id(shared),
                    "private_before": private_before,
                    "private_after": private_after,
                },
            )
            wait_for_eof(go_r)  # stay alive until the parent has looked at us

        started = time.perf_counter()
        pid = fork_child(child)
        fork_ms = (time.perf_counter() - started) * 1000
        os.close(report_w)
        os.close(go_r)
        try:
            ctx.line(
                f"fork() returned {pid} in the parent (and 0 in the child) after {fork_ms:.2f} ms"
            )
            seen = PipeReader(report_r).read()
            ctx.line(
                f"child says: os.getpid() = {seen['pid']}, os.getppid() = {seen['ppid']}; "
                f"it set counter = {seen['counter']} at address {seen['address']:#x}"
            )
            if buffer:
                ctx.line(
                    f"child wrote to each page of a {len(buffer) // _MB} MB buffer it shared "
                    f"with the parent: its private memory went from "
                    f"{seen['private_before'] / _MB:.1f} to {seen['private_after'] / _MB:.1f} MB"
                )
            process = psutil.Process(pid)
            ctx.line(
                f"psutil sees child {pid}: ppid {process.ppid()}, status {process.status()}, "
                f"name {process.name()!r}"
            )
            ctx.line(
                f"parent pid {parent}: counter is still {shared['counter']} at {id(shared):#x}"
                + (f"; its buffer still holds {buffer[0]}s" if buffer else "")
            )
        finally:
            os.close(go_w)  # the child's wait ends: it exits
            os.close(report_r)
            status = reap(pid)
        ctx.line(
            f"parent reaped child {pid} with waitpid: exit code {os.waitstatus_to_exitcode(status or 0)}"
        )

        ctx.figure("parent_pid", "parent PID", parent)
        ctx.figure("child_pid", "child PID", seen["pid"])
        ctx.figure("child_ppid", "child's getppid()", seen["ppid"])
        ctx.figure("child_counter", "counter in the child", seen["counter"])
        ctx.figure("parent_counter", "counter in the parent afterwards", shared["counter"])
        ctx.figure("same_address", "same address in both", seen["address"] == address)
        ctx.figure("fork_ms", "fork() took", round(fork_ms, 3), "ms")
        copied_mb = (seen["private_after"] - seen["private_before"]) / _MB
        if buffer:
            ctx.figure("buffer_mb", "buffer shared at fork()", len(buffer) // _MB, "MB")
            ctx.figure(
                "copied_on_write_mb",
                "child's memory copied by its writes",
                round(copied_mb, 1),
                "MB",
            )
            ctx.figure(
                "parent_buffer_untouched", "parent's buffer unchanged", set(buffer[::_PAGE]) == {1}
            )
        copied = seen["counter"] != shared["counter"] and seen["address"] == address
        ctx.verdict(
            f"two processes: parent {parent}, child {seen['pid']} whose parent is "
            f"{seen['ppid']}{' (the parent)' if seen['ppid'] == parent else ' (NOT the parent?)'}; "
            + (
                f"the child's counter = {seen['counter']} never reached the parent "
                f"(still {shared['counter']}) although both live at {address:#x}: separate memory"
                if copied
                else f"the counters agree ({shared['counter']}): the child's write was not separate"
            )
            + (
                f"; writing the shared {len(buffer) // _MB} MB buffer copied {copied_mb:.1f} MB "
                "into the child (copy-on-write)"
                if buffer
                else ""
            )
        )


def _set_subreaper(on: bool) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"prctl(PR_SET_CHILD_SUBREAPER) failed: {os.strerror(error)}")


class OrphanLab(Lab):
    name = "orphan"
    title = "Orphans: kill the parent and the child is adopted"
    course_term = "孤儿进程"
    course_section = "2.2.3"
    order = 2.231
    explanation = (
        "The lab forks a parent, which forks a child, and then kills the parent with SIGKILL. "
        "The child keeps running — an orphan (孤儿进程) — and the kernel gives it a new parent at "
        "once: the nearest ancestor that declared itself a 'child subreaper' "
        "(prctl PR_SET_CHILD_SUBREAPER; systemd --user does this on a desktop), or else PID 1 of "
        "its PID namespace, init. The lab reads the new PPID from psutil and from the child's "
        "own os.getppid(), names the adopter, and then lets the orphan exit and watches whether "
        "the adopter reaps it. The course says the system process reaps orphans automatically; "
        "that holds for a real init, but an init that never calls wait() (a bare program as PID 1 "
        "in a container) collects zombies — run with subreaper=true to make the lab itself the "
        "adopter that reaps."
    )
    params = (
        Param("subreaper", False, "make the lab a child subreaper, so it adopts the orphan itself"),
    )

    def run(self, ctx: LabContext) -> None:
        if not sys.platform.startswith("linux"):
            raise RuntimeError("the orphan lab reads /proc and prctl: it runs on Linux only")
        _other_threads_note(ctx)
        lab_pid = os.getpid()
        subreaper = bool(ctx["subreaper"])
        if subreaper:
            _set_subreaper(True)
            ctx.line(f"the lab (pid {lab_pid}) made itself a child subreaper")
        try:
            self._orphan(ctx, lab_pid)
        finally:
            if subreaper:
                _set_subreaper(False)

    def _orphan(self, ctx: LabContext, lab_pid: int) -> None:
        report_r, report_w = os.pipe()
        hold_r, hold_w = os.pipe()

        def orphan_body() -> None:
            # Only the lab keeps hold_w open (the parent closed its copy before forking us):
            # EOF means "exit now", and also "the lab died".
            first = os.getppid()
            write_json(report_w, {"who": "child", "pid": os.getpid(), "ppid": first})
            deadline = time.monotonic() + _CHILD_PATIENCE_S
            while os.getppid() == first and time.monotonic() < deadline:
                time.sleep(0.001)
            write_json(report_w, {"who": "child", "ppid": os.getppid()})
            wait_for_eof(hold_r)
            write_json(report_w, {"who": "child", "exiting_at": time.monotonic()})

        def parent_body() -> None:
            os.close(report_r)
            os.close(hold_w)
            fork_child(orphan_body)
            # Wait to be killed; should the lab itself die first, EOF lets this parent go too.
            wait_for_eof(hold_r)

        parent = fork_child(parent_body)
        os.close(report_w)
        os.close(hold_r)
        reader = PipeReader(report_r)
        orphan = None
        try:
            ctx.line(f"the lab (pid {lab_pid}) forked parent {parent}")
            hello = reader.read()
            orphan = int(hello["pid"])
            ctx.line(
                f"parent {parent} forked child {orphan}; the child's os.getppid() = {hello['ppid']}"
            )
            before = psutil.Process(orphan).ppid()
            ctx.line(f"psutil: child {orphan} has ppid {before}")
            killed_at = time.monotonic()
            os.kill(parent, signal.SIGKILL)
            ctx.line(f"the lab killed parent {parent} with SIGKILL")
            after = before
            while after == before and time.monotonic() - killed_at < 5:
                after = psutil.Process(orphan).ppid()
                time.sleep(0.0005)
            adopt_ms = (time.monotonic() - killed_at) * 1000
            own_view = reader.read()["ppid"]
            adopter = describe_process(after)
            who = (
                "the lab itself (a subreaper)"
                if after == lab_pid
                else ("init, PID 1" if after == 1 else "a subreaper between the lab and init")
            )
            ctx.line(
                f"psutil: orphan {orphan} now has ppid {after} = {adopter}, {who}; "
                f"its own os.getppid() says {own_view}"
            )
            reap(parent)
            ctx.line(f"the lab reaped the dead parent {parent} (its own child)")
            os.close(hold_w)  # the orphan exits now
            hold_w = -1
            exited_at = reader.read()["exiting_at"]
            reap_ms = self._watch_orphan_end(ctx, orphan, after, lab_pid, exited_at)
        finally:
            if hold_w >= 0:
                os.close(hold_w)
            os.close(report_r)
            reap(parent)

        ctx.figure("old_ppid", "orphan's first parent", before)
        ctx.figure("new_ppid", "orphan's new parent", after)
        ctx.figure("adopter", "adopted by", adopter)
        ctx.figure("adopter_is_init", "adopter is PID 1", after == 1)
        ctx.figure("adopt_ms", "adopted within", round(adopt_ms, 3), "ms")
        ctx.figure("child_agrees", "os.getppid() agrees with psutil", own_view == after)
        ctx.figure("reaped", f"orphan reaped within {_ADOPTER_PATIENCE_S:g} s", reap_ms is not None)
        if reap_ms is not None:
            ctx.figure("reap_ms", "orphan's exit to reaped by adopter", round(reap_ms), "ms")
        ctx.verdict(
            f"orphan {orphan} lost parent {before} and was adopted by {adopter} within "
            f"{adopt_ms:.1f} ms; "
            + (
                f"when it exited, its new parent reaped it {reap_ms:.0f} ms later"
                if reap_ms is not None
                else f"when it exited, {adopter} had not reaped it {_ADOPTER_PATIENCE_S:g} s "
                "later: a zombie of an init that does not wait (subreaper=true avoids it)"
            )
        )

    def _watch_orphan_end(
        self, ctx: LabContext, orphan: int, adopter: int, lab: int, exited_at: float
    ) -> float | None:
        """After the orphan exits: reap it if the lab adopted it, else time how long its adopter takes."""
        if adopter == lab:
            status = reap(orphan)
            reap_ms = (time.monotonic() - exited_at) * 1000
            ctx.line(
                f"orphan {orphan} exited (code {os.waitstatus_to_exitcode(status or 0)}); "
                "the lab, its new parent, reaped it with waitpid"
            )
            return reap_ms
        deadline = time.monotonic() + _ADOPTER_PATIENCE_S
        state = process_status(orphan)
        zombie = False
        while state is not None and time.monotonic() < deadline:
            zombie = zombie or state == psutil.STATUS_ZOMBIE
            time.sleep(0.002)
            state = process_status(orphan)
        if state is None:
            reap_ms = (time.monotonic() - exited_at) * 1000
            ctx.line(
                f"orphan {orphan} exited; {'it was a zombie until ' if zombie else ''}its adopter "
                f"reaped it {reap_ms:.0f} ms after its exit"
            )
            return reap_ms
        ctx.line(
            f"orphan {orphan} exited but is still in /proc with status {state!r} "
            f"{_ADOPTER_PATIENCE_S:g} s later: its adopter has not reaped it"
        )
        return None


#: The three ways the zombie lab ends a child, in the order it tries them.
REAPING_WAYS = ("none", "handler", "ignore")


class ZombieLab(Lab):
    name = "zombie"
    title = "Zombies: a child that exits unreaped, and three ways to reap"
    course_term = "僵尸进程"
    course_section = "2.2.3"
    order = 2.232
    explanation = (
        "A process that exits keeps its PID and exit status in the kernel until its parent "
        "collects them with wait()/waitpid(): until then it is a zombie (僵尸进程; status Z in ps). "
        "The lab forks a child that exits at once, three times. With no reaping, psutil shows the "
        "child as 'zombie' for as long as the parent does nothing — here until the lab finally "
        "calls waitpid. With a SIGCHLD handler that calls waitpid, the kernel's 'child ended' "
        "signal reaps it within a millisecond or so. With signal(SIGCHLD, SIG_IGN), the course's "
        "recipe, the kernel discards the exit status itself and no zombie ever appears (the price: "
        "the parent can no longer learn its children's exit codes)."
    )
    params = (
        Param("hold", 0.5, "seconds to leave the unreaped zombie alone", minimum=0.05, maximum=5.0),
    )

    def run(self, ctx: LabContext) -> None:
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("the zombie lab sets SIGCHLD handlers: run it in the main thread")
        _other_threads_note(ctx)
        hold = float(ctx["hold"])
        results: dict[str, tuple[bool, float]] = {}
        for way in REAPING_WAYS:
            if ctx.cancelled:
                break
            previous = signal.getsignal(signal.SIGCHLD)
            try:
                results[way] = self._one_way(ctx, way, hold)
            finally:
                signal.signal(signal.SIGCHLD, previous)
        rows = []
        for way, (seen, reap_ms) in results.items():
            ctx.figure(f"zombie_seen_{way}", f"zombie seen ({way})", seen)
            ctx.figure(f"reap_ms_{way}", f"exit to reaped ({way})", round(reap_ms, 3), "ms")
            rows.append((way, "yes" if seen else "no", f"{reap_ms:.2f}"))
        ctx.table("reaping", ("way", "zombie seen", "exit to reaped (ms)"), rows)
        if len(results) == len(REAPING_WAYS):
            ctx.verdict(self._verdict(results))

    @staticmethod
    def _verdict(results: dict[str, tuple[bool, float]]) -> str:
        parts = []
        for way, label in (
            ("none", "unreaped"),
            ("handler", "SIGCHLD handler + waitpid"),
            ("ignore", "SIGCHLD = SIG_IGN"),
        ):
            seen, reap_ms = results[way]
            parts.append(
                f"{label}: {'a zombie' if seen else 'no zombie seen'}, gone {reap_ms:.1f} ms after exit"
            )
        return "; ".join(parts)

    def _one_way(self, ctx: LabContext, way: str, hold: float) -> tuple[bool, float]:
        reaped_at: list[float] = []
        child_pid = 0

        def reap_on_sigchld(signum: int, frame: object) -> None:
            # Reap only the lab's own child: other children of this process are not ours to take.
            if child_pid and os.waitpid(child_pid, os.WNOHANG)[0]:
                reaped_at.append(time.monotonic())

        if way == "handler":
            signal.signal(signal.SIGCHLD, reap_on_sigchld)
        elif way == "ignore":
            signal.signal(signal.SIGCHLD, signal.SIG_IGN)
        else:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        report_r, report_w = os.pipe()
        go_r, go_w = os.pipe()

        def child() -> None:
            os.close(report_r)
            os.close(go_w)
            wait_for_eof(go_r)
            write_json(report_w, {"exiting_at": time.monotonic()})

        # Hold SIGCHLD until child_pid is set, so the handler cannot run before it knows the pid.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        try:
            child_pid = fork_child(child)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        os.close(report_w)
        os.close(go_r)
        zombie_seen = False
        gone_at = None
        try:
            os.close(go_w)  # tell the child to exit
            exited_at = PipeReader(report_r).read()["exiting_at"]
            watch_until = time.monotonic() + (hold if way == "none" else max(hold, 1.0))
            first_zombie = None
            while time.monotonic() < watch_until:
                state = process_status(child_pid)
                if state is None:
                    gone_at = time.monotonic()
                    break
                if state == psutil.STATUS_ZOMBIE and first_zombie is None:
                    zombie_seen = True
                    first_zombie = time.monotonic()
                time.sleep(0.0005)
            if way == "none":
                still = process_status(child_pid)
                ctx.line(
                    f"no reaping: child {child_pid} exited; psutil saw status 'zombie' "
                    f"{(first_zombie - exited_at) * 1000 if first_zombie else float('nan'):.1f} ms "
                    f"after its exit and still says {still!r} {hold:g} s later"
                )
                os.waitpid(child_pid, 0)
                gone_at = time.monotonic()
                ctx.line(f"the lab called waitpid({child_pid}): the zombie is gone")
            elif way == "handler":
                if reaped_at:
                    gone_at = reaped_at[0]
                ctx.line(
                    f"SIGCHLD handler: child {child_pid} exited; the handler's waitpid reaped it "
                    f"{'(zombie glimpsed first)' if zombie_seen else '(no zombie seen)'}"
                )
            else:
                ctx.line(
                    f"SIGCHLD = SIG_IGN: child {child_pid} exited and the kernel reaped it "
                    f"{'(a zombie was seen!)' if zombie_seen else '(no zombie ever seen)'}"
                )
        finally:
            os.close(report_r)
            if way != "ignore":
                reap(child_pid)
            elif (state := process_status(child_pid)) == psutil.STATUS_ZOMBIE:
                reap(child_pid)  # SIG_IGN did not reap it (not Linux?): do not leave it behind
            elif state is not None:
                os.kill(child_pid, signal.SIGKILL)  # still SIG_IGN here: the kernel reaps it
        if gone_at is None:
            raise RuntimeError(f"child {child_pid} was never reaped under way {way!r}")
        return zombie_seen, (gone_at - exited_at) * 1000


LABS = (ForkLab(), OrphanLab(), ZombieLab())
