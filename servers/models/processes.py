"""Model `processes`: fork a child process for every connection (course 3.1.1 多进程并发).

Each client gets a whole process: a crash or a CPU-bound request in one cannot
touch the others, and CPU work spreads over every core (no GIL between
processes). The price is a fork per connection and no shared memory. Every
child is reaped by a SIGCHLD handler calling waitpid(WNOHANG), so no zombie is
ever left behind (course 2.2.3 僵尸进程).
"""

from __future__ import annotations

import signal
import socket

from servers.adapter import blocking_handler_for, serve_connection
from servers.contracts import Application
from servers.fdlimit import SpareDescriptor, accept_or_refuse
from servers.models._forking import fork_child, reap_children, stop_children


def serve(listener: socket.socket, app: Application, workers: int | None = None) -> None:
    """Serve ``app`` on ``listener`` with a forked child per connection until stopped."""
    handle = blocking_handler_for(app)
    app.stats.enable_child_reports()
    listener.setblocking(True)
    spare = SpareDescriptor(app.stats)
    previous = signal.signal(signal.SIGCHLD, lambda signum, frame: reap_children(app))
    try:
        while True:
            accepted = accept_or_refuse(listener, spare)
            if accepted is None:
                continue  # refused: out of descriptors
            conn, address = accepted

            def serve_in_child(conn: socket.socket = conn, address: tuple = address) -> None:
                listener.close()  # the child only talks to its own client
                serve_connection(app, handle, conn, address)

            fork_child(app, serve_in_child)
            conn.close()  # the parent's copy: the child owns the connection now
    finally:
        signal.signal(signal.SIGCHLD, previous)
        stop_children(app)
