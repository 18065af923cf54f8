"""Model `select`: one thread watches every socket with select() (course 3.2.4 IO多路复用).

The course's first IO-multiplexing server: three lists in, the ready ones out.
select() describes sockets with a fixed-size bitmap of FD_SETSIZE (1024) bits,
so a descriptor numbered 1024 or above cannot be watched at all. That limit is a
lesson, not a bug: past it this server refuses the connection with a clear
logged error and a counted refusal, and keeps serving everyone else.
"""

from __future__ import annotations

import logging
import select
import socket

from servers.contracts import Application
from servers.fdlimit import ThrottledLog
from servers.models._eventloop import EventLoopServer

#: select()'s bitmap size on Linux (glibc's FD_SETSIZE).
FD_SETSIZE = 1024

log = logging.getLogger(__name__)


class SelectServer(EventLoopServer):
    """The event loop on ``select.select``: rlist and wlist kept as sets."""

    def __init__(self, listener: socket.socket, app: Application) -> None:
        super().__init__(listener, app)
        self.read_fds: set[int] = {listener.fileno(), self.waker_reader.fileno()}
        self.write_fds: set[int] = set()
        self._log = ThrottledLog(log)

    def watch(self, fd: int, write: bool) -> None:
        if write:
            self.read_fds.discard(fd)
            self.write_fds.add(fd)
        else:
            self.write_fds.discard(fd)
            self.read_fds.add(fd)

    def unwatch(self, fd: int) -> None:
        self.read_fds.discard(fd)
        self.write_fds.discard(fd)

    def accept_allowed(self, sock: socket.socket) -> bool:
        if sock.fileno() < FD_SETSIZE:
            return True
        message = (
            f"refused a connection: descriptor {sock.fileno()} is not below select()'s "
            f"FD_SETSIZE ({FD_SETSIZE}); use poll or epoll for more connections"
        )
        self._log.error(message)
        self.stats.count_refusal(message)
        return False

    def run(self) -> None:
        listen_fd = self.listener.fileno()
        waker_fd = self.waker_reader.fileno()
        connections = self.connections
        try:
            while True:
                readable, writable, _ = select.select(
                    self.read_fds, self.write_fds, [], self.next_timeout()
                )
                for fd in writable:
                    self.writable(fd)
                for fd in readable:
                    if fd in connections:
                        self.readable(fd)
                    elif fd == listen_fd:
                        self.accept_ready()
                    elif fd == waker_fd:
                        self.wake_ready()
                self.run_timers()
        finally:
            self.close_all()


def serve(listener: socket.socket, app: Application, workers: int | None = None) -> None:
    """Serve ``app`` on ``listener`` with one select() loop until the server is stopped."""
    SelectServer(listener, app).run()
