"""Forking helpers for the multi-process models: child set-up, reaping, stopping (course 2.2.3 进程处理细节)."""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import time
from collections.abc import Callable

from servers.contracts import Application

_PR_SET_PDEATHSIG = 1
_libc = None


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask Linux to send ``sig`` to this process when its parent dies: no orphans, even after kill -9."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        _libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the parent's stop() still cleans up
        pass


def fork_child(app: Application, body: Callable[[], None]) -> int:
    """Fork; the child runs ``body`` with fresh stats reporting to the parent, then exits.

    Returns the child's pid in the parent. The child never returns: it leaves
    with ``os._exit`` so it cannot run the parent's cleanup a second time.
    """
    parent = os.getpid()
    # Hold SIGCHLD until the pid is recorded, so a child that exits at once is
    # not reaped before the parent has written it down. Hold the stop signals
    # too: one that lands while fork() runs its at-fork hooks (logging's, in
    # both processes) raises inside them, where Python prints "Exception
    # ignored" and drops it, and a parent that loses its SIGTERM never stops.
    # Held, it stays pending until after the pid is recorded (in the parent)
    # or the default dispositions are back (in the child).
    held = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        pid = os.fork()
    except OSError:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)
        raise
    if pid:
        app.stats.children.add(pid)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)
        return pid
    status = 0
    try:
        # Default dispositions: a SIGTERM from the parent simply ends the child,
        # and the parent's SIGCHLD reaper does not run here.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)
        die_with_parent()
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)
        app.stats.become_child()
        if app.after_fork is not None:
            app.after_fork()
        body()
    except BaseException:  # noqa: BLE001 - a child must never return into the parent's code
        status = 1
    finally:
        try:
            app.stats.finish_child()
        finally:
            os._exit(status)
    raise AssertionError("unreachable")  # pragma: no cover


def reap_children(app: Application) -> list[tuple[int, int]]:
    """Collect every child that has exited (waitpid WNOHANG): no zombies left behind."""
    reaped = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        app.stats.children.discard(pid)
        reaped.append((pid, status))
    return reaped


def stop_children(app: Application, timeout: float = 2.0) -> None:
    """SIGTERM every child, wait up to ``timeout``, SIGKILL the rest, reap them all."""
    pids = set(app.stats.children)
    everyone = set(pids)
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        for pid, _ in reap_children(app):
            pids.discard(pid)
        pids = {pid for pid in pids if _alive(pid)}
        if pids:
            time.sleep(0.01)
    for pid in pids:
        _signal(pid, signal.SIGKILL)
    for pid in pids:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    reap_children(app)
    app.stats.children.difference_update(everyone)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    except OSError as error:  # pragma: no cover
        return error.errno != errno.ECHILD
    return done == 0


def describe_status(status: int) -> str:
    """'exit code N' or 'killed by SIGNAME' for a wait status."""
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"
