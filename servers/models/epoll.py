"""Model `epoll`: one thread watches every socket with Linux epoll (course 3.2.4 IO多路复用).

The kernel keeps the interest list, so each wait costs in proportion to the
sockets that are *ready*, not to all the sockets watched: this is how one
process holds ten thousand idle keep-alive connections. Level-triggered, so the
loop reads the way the course's select example does.
"""

from __future__ import annotations

import select
import socket

from servers.contracts import Application
from servers.models._eventloop import EventLoopServer

READ = select.EPOLLIN | select.EPOLLRDHUP
WRITE = select.EPOLLOUT


class EpollServer(EventLoopServer):
    """The event loop on ``select.epoll``."""

    def __init__(self, listener: socket.socket, app: Application) -> None:
        super().__init__(listener, app)
        self.epoll = select.epoll()
        self.epoll.register(listener.fileno(), select.EPOLLIN)
        self.epoll.register(self.waker_reader.fileno(), select.EPOLLIN)
        self._registered: set[int] = set()

    def watch(self, fd: int, write: bool) -> None:
        mask = WRITE if write else READ
        if fd in self._registered:
            self.epoll.modify(fd, mask)
        else:
            self.epoll.register(fd, mask)
            self._registered.add(fd)

    def unwatch(self, fd: int) -> None:
        self._registered.discard(fd)
        self.epoll.unregister(fd)

    def run(self) -> None:
        listen_fd = self.listener.fileno()
        waker_fd = self.waker_reader.fileno()
        connections = self.connections
        try:
            while True:
                timeout = self.next_timeout()
                events = self.epoll.poll(-1 if timeout is None else timeout)
                for fd, mask in events:
                    if fd in connections:
                        if mask & WRITE:
                            self.writable(fd)
                        elif mask & (READ | select.EPOLLERR | select.EPOLLHUP):
                            self.readable(fd)
                    elif fd == listen_fd:
                        self.accept_ready()
                    elif fd == waker_fd:
                        self.wake_ready()
                self.run_timers()
        finally:
            self.close_all()
            self.epoll.close()


def serve(listener: socket.socket, app: Application, workers: int | None = None) -> None:
    """Serve ``app`` on ``listener`` with one epoll loop until the server is stopped."""
    EpollServer(listener, app).run()
