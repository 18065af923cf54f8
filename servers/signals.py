"""Helper threads of a server leave its stop and child signals to the main thread.

Linux hands a process-directed signal (``kill PID``) to any thread that does not
block it. CPython runs every Python-level handler in the main thread, but only a
signal that arrives *in* the main thread interrupts the system call it is blocked
in: a SIGTERM caught by a helper thread leaves ``accept()`` in the main thread
waiting for the next client, so the server does not stop; a SIGCHLD caught there
leaves a dead child unreaped (a zombie) until then. Every thread a server starts
is therefore a :class:`HelperThread`, which blocks those signals for itself.

Even in the main thread a signal can be missed: if it lands just before the
thread enters ``os.wait()`` or ``accept()``, CPython's C handler notes it but the
call never returns EINTR, and the Python handler waits with it. So a helper
that asks the server to stop (the launcher's control thread, when the app has
gone) repeats SIGTERM until the main thread has heard it: :func:`stop_main_thread`.
"""

from __future__ import annotations

import os
import signal
import threading
import time

#: Signals whose handlers must interrupt the main thread's blocking call.
MAIN_THREAD_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD})


class HelperThread(threading.Thread):
    """A ``threading.Thread`` born with :data:`MAIN_THREAD_SIGNALS` blocked."""

    def start(self) -> None:
        # A new thread starts with its creator's mask: block here, so there is no
        # moment at which the new thread could take one of these signals.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, MAIN_THREAD_SIGNALS)
        try:
            super().start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class ServingThread(HelperThread):
    """A thread that serves clients (a connection's own thread, a transfer), not a helper.

    The stats count these apart from the helpers (reporter, control channel,
    queue feeder), so the panel can say "1 serving thread + 3 helpers".
    """


def serving_thread_count() -> int:
    """Threads of this process that serve clients: the main thread plus every live ServingThread."""
    return 1 + sum(1 for thread in threading.enumerate() if isinstance(thread, ServingThread))


_stop_heard = False


def hear_stop() -> bool:
    """Note, in a stop signal's handler, that the main thread heard it; True the first time."""
    global _stop_heard
    first = not _stop_heard
    _stop_heard = True
    return first


def listen_for_stop() -> None:
    """Start listening afresh (a server's serve loop calls this before it installs its handlers)."""
    global _stop_heard
    _stop_heard = False


def stop_main_thread(interval: float = 0.5) -> None:
    """From a helper thread: SIGTERM this process, again every ``interval`` s, until it is heard."""
    while not _stop_heard:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(interval)
