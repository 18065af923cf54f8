"""Helper threads of a server leave its stop and child signals to the main thread.

Linux hands a process-directed signal (``kill PID``) to any thread that does not
block it. CPython runs every Python-level handler in the main thread, but only a
signal that arrives *in* the main thread interrupts the system call it is blocked
in: a SIGTERM caught by a helper thread leaves ``accept()`` in the main thread
waiting for the next client, so the server does not stop; a SIGCHLD caught there
leaves a dead child unreaped (a zombie) until then. Every thread a server starts
is therefore a :class:`HelperThread`, which blocks those signals for itself.
"""

from __future__ import annotations

import signal
import threading

#: Signals whose handlers must interrupt the main thread's blocking call.
MAIN_THREAD_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD})


class HelperThread(threading.Thread):
    """A ``threading.Thread`` that blocks :data:`MAIN_THREAD_SIGNALS` before running its target."""

    def run(self) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, MAIN_THREAD_SIGNALS)
        super().run()
