"""Model `poll`: one thread watches every socket with poll() (course 3.2.4 IO多路复用).

Like select, but the interest set is a list of (fd, events) pairs kept in the
poll object (``register`` adds or changes one, ``unregister`` drops it), with
no FD_SETSIZE ceiling. Each ``poll()`` still hands the whole list to the
kernel, so its cost grows with the number of sockets watched, ready or not;
epoll removes that. Compare the three files: the loops are the same.

The loop follows the steps of 3.2.5 IO并发模型: 【1】 non-blocking sockets,
【2】 registered with poll, 【3】 wait until some are ready, 【4】 walk the ready
list, 【5】 handle each (accept, recv, send), 【6】 and go round again. The
bookkeeping around the socket calls (outboxes, timers, the waker, lingering
close) is shared with select and epoll in ``servers/models/_eventloop.py``.
"""

from __future__ import annotations

import os
import select
import socket

from servers.contracts import Application, Output
from servers.models._eventloop import (
    ACCEPT_BATCH,
    RECV_SIZE,
    EventLoopBookkeeping,
    LoopConnection,
)

READ = select.POLLIN | select.POLLPRI
WRITE = select.POLLOUT


class PollServer(EventLoopBookkeeping):
    """The event loop on ``select.poll``."""

    def __init__(self, listener: socket.socket, app: Application) -> None:
        super().__init__(listener, app)
        listener.setblocking(False)  # 【1】
        self.poller = select.poll()
        self.poller.register(listener.fileno(), select.POLLIN)  # 【2】
        self.poller.register(self.waker_reader.fileno(), select.POLLIN)

    def run(self) -> None:
        """Wait in poll(), handle what is ready, fire the due timers; again, until stopped."""
        listen_fd = self.listener.fileno()
        waker_fd = self.waker_reader.fileno()
        connections = self.connections
        try:
            while True:  # 【6】
                timeout = self.next_timeout()
                # poll() takes milliseconds; round up so a due timer is not missed by 1 ms.
                milliseconds = None if timeout is None else int(timeout * 1000) + 1
                events = self.poller.poll(milliseconds)  # 【3】
                for fd, event in events:  # 【4】
                    conn = connections.get(fd)
                    if conn is not None:  # 【5】
                        if event & WRITE:
                            self.send_owed(conn)
                        else:
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
            sock.setblocking(False)  # 【1】
            if sock.family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.poller.register(sock.fileno(), READ)  # 【2】
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
                self.poller.register(conn.fd, WRITE)  # register() on a known fd changes its mask
            return
        if conn.writing:
            conn.writing = False
            self.poller.register(conn.fd, READ)
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
            self.poller.unregister(conn.fd)
            conn.sock.close()

    def watch_listener(self, watching: bool) -> None:
        """Resume or pause accepting (paused while out of descriptors)."""
        if watching:
            self.poller.register(self.listener.fileno(), select.POLLIN)
        else:
            self.poller.unregister(self.listener.fileno())


def serve(listener: socket.socket, app: Application, workers: int | None = None) -> None:
    """Serve ``app`` on ``listener`` with one poll() loop until the server is stopped."""
    PollServer(listener, app).run()
