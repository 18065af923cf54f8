"""Model `threads`: a new thread for every connection (course 3.1.2 多线程并发).

Threads are cheap to start and share the server's memory, so a chat room or a
cache needs no inter-process plumbing; but under CPython's GIL only one of them
runs Python code at a time (course 2.3.6 GIL问题): they overlap waiting, not
computing. Watch the thread count climb with the connections.
"""

from __future__ import annotations

import socket
import threading

from servers.adapter import blocking_handler_for, serve_connection
from servers.contracts import Application
from servers.fdlimit import SpareDescriptor, accept_or_refuse
from servers.signals import ServingThread

#: How long a stopping server lets running connections finish, seconds.
SHUTDOWN_GRACE = 1.0


def serve(listener: socket.socket, app: Application, workers: int | None = None) -> None:
    """Serve ``app`` on ``listener`` with a thread per connection until the server is stopped."""
    handle = blocking_handler_for(app)
    listener.setblocking(True)
    spare = SpareDescriptor(app.stats)
    live: dict[threading.Thread, socket.socket] = {}
    lock = threading.Lock()

    def run_connection(conn: socket.socket, address: tuple) -> None:
        try:
            serve_connection(app, handle, conn, address)
        finally:
            with lock:
                live.pop(threading.current_thread(), None)

    try:
        while True:
            accepted = accept_or_refuse(listener, spare)
            if accepted is None:
                continue  # refused: out of descriptors
            conn, address = accepted
            thread = ServingThread(
                target=run_connection, args=(conn, address), name=f"conn-{address[1]}", daemon=True
            )
            with lock:
                live[thread] = conn
            thread.start()
    finally:
        # Wake every connection thread blocked in recv() so it can finish cleanly.
        with lock:
            conns = list(live.items())
        for _, conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread, _ in conns:
            thread.join(SHUTDOWN_GRACE)
