"""Model `pool`: a fixed pool of worker processes, each accepting and serving clients (course 2.2.4 进程池).

The workers are forked once, up front, and all block in accept() on the same
listening socket; the kernel hands each new connection to one idle worker. No
fork per connection, but at most ``workers`` clients are served at a time: the
next one waits in the backlog until a worker is free. A worker that dies is
replaced, so the pool keeps its size.
"""

from __future__ import annotations

import os
import socket

from servers.adapter import blocking_handler_for, serve_connection
from servers.contracts import Application
from servers.fdlimit import SpareDescriptor, accept_or_refuse
from servers.models._forking import describe_status, fork_child, stop_children

DEFAULT_WORKERS = 4


def serve(listener: socket.socket, app: Application, workers: int | None = None) -> None:
    """Serve ``app`` on ``listener`` with ``workers`` pre-forked processes until stopped."""
    size = workers or DEFAULT_WORKERS
    handle = blocking_handler_for(app)
    app.stats.enable_child_reports()
    listener.setblocking(True)
    spare = SpareDescriptor(app.stats)

    def worker_loop() -> None:
        while True:
            accepted = accept_or_refuse(listener, spare)
            if accepted is None:
                continue  # refused: out of descriptors
            conn, address = accepted
            serve_connection(app, handle, conn, address)

    try:
        for _ in range(size):
            fork_child(app, worker_loop)
        while True:
            pid, status = os.wait()  # blocks until a worker exits
            app.stats.children.discard(pid)
            app.stats.count_error(f"worker {pid} ended ({describe_status(status)}); replacing it")
            fork_child(app, worker_loop)
    finally:
        stop_children(app)
