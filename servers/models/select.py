"""Model `select`: one thread watches every socket with select() (course 3.2.4 IO多路复用).

The course's first IO-multiplexing server: ``rs, ws, xs = select(rlist, wlist,
xlist, timeout)``, the lists in, the ready ones out. The lists are kept here as
sets of descriptors and handed to the kernel whole on every call.

select() describes sockets with a fixed-size bitmap of FD_SETSIZE (1024) bits,
so a descriptor numbered 1024 or above cannot be watched at all. That limit is a
lesson, not a bug: past it this server refuses the connection with a clear
logged error and a counted refusal, and keeps serving everyone else. poll and
epoll lift it; compare the three files: the loops are the same.

The loop follows the steps of 3.2.5 IO并发模型: 【1】 non-blocking sockets,
【2】 put in the read list, 【3】 wait until some are ready, 【4】 walk the ready
list, 【5】 handle each (accept, recv, send), 【6】 and go round again. The
bookkeeping around the socket calls (outboxes, timers, the waker, lingering
close) is shared with poll and epoll in ``servers/models/_eventloop.py``.
"""

from __future__ import annotations

import logging
import os
import select
import socket

from servers.contracts import Application, Output
from servers.fdlimit import ThrottledLog
from servers.models._eventloop import (
    ACCEPT_BATCH,
    RECV_SIZE,
    EventLoopBookkeeping,
    LoopConnection,
)

#: select()'s bitmap size on Linux (glibc's FD_SETSIZE).
FD_SETSIZE = 1024

log = logging.getLogger(__name__)


class SelectServer(EventLoopBookkeeping):
    """The event loop on ``select.select``: rlist and wlist kept as sets."""

    def __init__(self, listener: socket.socket, app: Application) -> None:
        super().__init__(listener, app)
        listener.setblocking(False)  # 【1】
        self.rlist: set[int] = {listener.fileno(), self.waker_reader.fileno()}  # 【2】
        self.wlist: set[int] = set()
        self._log = ThrottledLog(log)

    def run(self) -> None:
        """Wait in select(), handle what is ready, fire the due timers; again, until stopped."""
        listen_fd = self.listener.fileno()
        waker_fd = self.waker_reader.fileno()
        connections = self.connections
        try:
            while True:  # 【6】
                # No xlist: a broken connection shows up readable, and its recv() fails.
                rs, ws, _ = select.select(self.rlist, self.wlist, [], self.next_timeout())  # 【3】
                for fd in ws:  # 【4】
                    conn = connections.get(fd)
                    if conn is not None:  # 【5】
                        self.send_owed(conn)
                for fd in rs:
                    conn = connections.get(fd)
                    if conn is not None:
                        self.receive(conn)
                    elif fd == listen_fd:
                        self.accept_clients()
                    elif fd == waker_fd:
                        self.woken()
                self.run_timers()
        finally:
            self.close_all()

    def accept_clients(self) -> None:
        """The listener is readable: accept the clients waiting (a bounded batch of them)."""
        for _ in range(ACCEPT_BATCH):
            try:
                sock, address = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return  # no one else is waiting
            except OSError as error:
                if self.accept_failed(error):  # out of descriptors: one client turned away
                    continue
                return
            if sock.fileno() >= FD_SETSIZE:
                self.refuse_past_fd_setsize(sock)
                continue
            sock.setblocking(False)  # 【1】
            if sock.family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.rlist.add(sock.fileno())  # 【2】
            conn = self.open_connection(sock, address, sock.getsockname())
            self.answer(conn, conn.handler.start())

    def receive(self, conn: LoopConnection) -> None:
        """``conn`` is readable: recv what came and answer it."""
        try:
            data = conn.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close(conn)
            return
        if conn.lingering:
            if not data:  # what a lingering peer sends is dropped, until its EOF
                self.close(conn)
            return
        if data:
            self.bytes_in += len(data)
            output = conn.handler.feed(data)
        else:
            output = self.peer_closed(conn)
        self.answer(conn, output)

    def answer(self, conn: LoopConnection, output: list[Output]) -> None:
        """Send what the handler said; what the socket does not take waits in the outbox."""
        self.note_handler_state(conn)
        if len(output) == 1 and not conn.outbox and type(output[0]) is bytes:
            # The common case, one answer and nothing owed before it: one send,
            # no trip through the outbox (4% of an echo's CPU time under select).
            data = output[0]
            try:
                sent = conn.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self.close(conn)
                return
            self.bytes_out += sent
            if sent == len(data):
                if conn.closing:
                    self.hang_up(conn)
                return
            output = [data[sent:]]
        conn.outbox.extend(output)
        self.send_owed(conn)

    def send_owed(self, conn: LoopConnection) -> None:
        """Send what the socket takes of ``conn``'s outbox; watch for writability while some is left."""
        outbox = conn.outbox
        try:
            while outbox:
                piece = outbox[0] if len(outbox) == 1 else conn.next_piece()
                if type(piece) is bytes:
                    # MSG_MORE: a response head followed by a file slice leaves in
                    # full segments with the file's first bytes (nginx's tcp_nopush).
                    more = socket.MSG_MORE if len(outbox) > 1 else 0
                    sent = conn.sock.send(piece, more)
                    self.bytes_out += sent
                    if sent < len(piece):
                        outbox[0] = piece[sent:]  # the socket's buffer is full
                        break
                    outbox.popleft()
                else:
                    sent = os.sendfile(conn.fd, conn.file_for(piece), piece.offset, piece.count)
                    self.bytes_out += sent
                    if not conn.file_sent(piece, sent):
                        break  # the socket's buffer is full
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self.close(conn)
            return
        if outbox:
            if not conn.writing:  # read no more requests until these answers are gone
                conn.writing = True
                self.rlist.discard(conn.fd)
                self.wlist.add(conn.fd)
            return
        if conn.writing:
            conn.writing = False
            self.wlist.discard(conn.fd)
            self.rlist.add(conn.fd)
        if conn.closing:
            self.hang_up(conn)

    def hang_up(self, conn: LoopConnection) -> None:
        """All ``conn`` was owed is sent and it is closing: close, gently if the peer may still talk."""
        if conn.peer_closed:
            self.close(conn)
            return
        try:
            conn.sock.shutdown(socket.SHUT_WR)  # FIN after our last byte
        except OSError:
            self.close(conn)
            return
        self.start_lingering(conn)

    def close(self, conn: LoopConnection) -> None:
        """Stop watching ``conn`` and close its socket (once)."""
        if self.forget(conn):
            self.rlist.discard(conn.fd)
            self.wlist.discard(conn.fd)
            conn.sock.close()

    def watch_listener(self, watching: bool) -> None:
        """Resume or pause accepting (paused while out of descriptors)."""
        if watching:
            self.rlist.add(self.listener.fileno())
        else:
            self.rlist.discard(self.listener.fileno())

    def refuse_past_fd_setsize(self, sock: socket.socket) -> None:
        """select() cannot watch this descriptor: close it, and say why once in a while."""
        message = (
            f"refused a connection: descriptor {sock.fileno()} is not below select()'s "
            f"FD_SETSIZE ({FD_SETSIZE}); use poll or epoll for more connections"
        )
        sock.close()
        self._log.error(message)
        self.stats.count_refusal(message)


def serve(listener: socket.socket, app: Application, workers: int | None = None) -> None:
    """Serve ``app`` on ``listener`` with one select() loop until the server is stopped."""
    SelectServer(listener, app).run()
