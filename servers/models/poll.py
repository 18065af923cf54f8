"""Model `poll`: one thread watches every socket with poll() (course 3.2.4 IO多路复用).

Like select, but the interest set is a list of (fd, events) pairs with no
FD_SETSIZE ceiling; each call still hands the whole list to the kernel, so the
cost grows with the number of sockets watched, ready or not.
"""

from __future__ import annotations

import select
import socket

from servers.contracts import Application
from servers.models._eventloop import EventLoopServer

READ = select.POLLIN | select.POLLPRI
WRITE = select.POLLOUT


class PollServer(EventLoopServer):
    """The event loop on ``select.poll``."""

    def __init__(self, listener: socket.socket, app: Application) -> None:
        super().__init__(listener, app)
        self.poller = select.poll()
        self.poller.register(listener.fileno(), select.POLLIN)
        self.poller.register(self.waker_reader.fileno(), select.POLLIN)

    def watch(self, fd: int, write: bool) -> None:
        # poll.register() on a known fd modifies its mask.
        self.poller.register(fd, WRITE if write else READ)

    def unwatch(self, fd: int) -> None:
        self.poller.unregister(fd)

    def run(self) -> None:
        listen_fd = self.listener.fileno()
        waker_fd = self.waker_reader.fileno()
        connections = self.connections
        try:
            while True:
                timeout = self.next_timeout()
                # poll() takes milliseconds; round up so a due timer is not missed by 1 ms.
                events = self.poller.poll(None if timeout is None else int(timeout * 1000) + 1)
                for fd, mask in events:
                    if fd in connections:
                        if mask & WRITE:
                            self.writable(fd)
                        else:
                            self.readable(fd)
                    elif fd == listen_fd:
                        self.accept_ready()
                    elif fd == waker_fd:
                        self.wake_ready()
                self.run_timers()
        finally:
            self.close_all()


def serve(listener: socket.socket, app: Application, workers: int | None = None) -> None:
    """Serve ``app`` on ``listener`` with one poll() loop until the server is stopped."""
    PollServer(listener, app).run()
