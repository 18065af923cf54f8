"""Model `prefork`: N processes, each its own epoll loop, sharing one port (更高并发: 多进程 + IO多路复用).

nginx's shape: processes for the cores, an event loop in each for the
connections. Every worker binds its own listening socket to the same port with
SO_REUSEPORT, and the kernel spreads new connections across them, so there is no
shared accept queue and no thundering herd. A worker that dies is replaced.
"""

from __future__ import annotations

import os
import socket

from servers.contracts import Application
from servers.models._forking import describe_status, fork_child, stop_children
from servers.models.epoll import EpollServer


def reuseport_listener(family: int, address: tuple) -> socket.socket:
    """A new listening socket on ``address``, sharing the port via SO_REUSEPORT."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    sock.listen(4096)
    return sock


def serve(listener: socket.socket, app: Application, workers: int | None = None) -> None:
    """Serve ``app`` with ``workers`` (default: one per core) epoll processes until stopped."""
    size = workers or os.cpu_count() or 2
    app.stats.enable_child_reports()
    # Fresh sockets for every worker but the first, made before the parent lets
    # go of the original so the port is never unbound.
    family, address = listener.family, listener.getsockname()
    sockets = [listener] + [reuseport_listener(family, address) for _ in range(size - 1)]

    def worker(own: socket.socket) -> None:
        for other in sockets:
            if other is not own:
                other.close()
        EpollServer(own, app).run()

    try:
        pids = {fork_child(app, lambda own=sock: worker(own)): sock for sock in sockets}
        while True:
            pid, status = os.wait()  # blocks until a worker exits
            app.stats.children.discard(pid)
            app.stats.count_error(f"worker {pid} ended ({describe_status(status)}); replacing it")
            # The dead worker's socket still gets its share of new connections
            # while anyone holds it open: close it and give the new worker a fresh one.
            dead = pids.pop(pid, None)
            if dead is not None:
                sockets.remove(dead)
                dead.close()
            fresh = reuseport_listener(family, address)
            sockets.append(fresh)
            pids[fork_child(app, lambda own=fresh: worker(own))] = fresh
    finally:
        stop_children(app)
        for sock in sockets:
            sock.close()
