"""Bookkeeping shared by the IO-multiplexing models (select, poll, epoll, prefork): buffers, timers, pushes.

Each of those models is a subclass of :class:`EventLoopServer` that supplies the
readiness mechanism (``select()``, ``poll()``, ``epoll``) and its loop; this
module holds what they all need around it: accepting without blocking, feeding
sans-IO handlers, buffering output a slow peer cannot take yet, sending file
slices with ``os.sendfile``, firing handler deadlines, and taking output pushed
from other threads (a chat broadcast, an admin announcement) or the wake a
helper thread asks for (an FTP transfer that ended).
"""

from __future__ import annotations

import collections
import heapq
import itertools
import os
import socket
import threading

from servers.contracts import (
    LINGER_SECONDS,
    Application,
    FileSlice,
    Output,
    Peer,
    Wake,
    monotonic,
)
from servers.fdlimit import OUT_OF_DESCRIPTORS, SpareDescriptor

RECV_SIZE = 65536
#: Accepts per readiness event, so a connection storm cannot starve the others.
#: An accept costs far less than serving a busy connection's request, and one
#: batch comes per loop pass (which may serve a thousand ready sockets), so the
#: batch is large: with 64, 10,000 clients arriving at once waited seconds in
#: the kernel's accept queue while the loop served the ones already in.
ACCEPT_BATCH = 512
#: Out of descriptors with no spare to refuse with: stop watching the listener this long.
ACCEPT_PAUSE_SECONDS = 0.1


class LoopConnection:
    """One accepted socket, its sans-IO handler and the output it still owes."""

    __slots__ = (
        "sock",
        "fd",
        "address",
        "handler",
        "outbox",
        "closing",
        "deadline",
        "file",
        "writing",
        "peer_closed",
        "lingering",
    )

    def __init__(self, sock: socket.socket, address: tuple) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.address = address
        self.handler = None
        self.outbox: collections.deque[Output] = collections.deque()
        self.closing = False
        self.deadline: float | None = None
        self.file = None  # open file of the FileSlice being sent
        self.writing = False  # registered for write readiness
        self.peer_closed = False  # the peer's EOF arrived: nothing more will come
        self.lingering = False  # ended by us, half-closed, input drained until EOF


class EventLoopServer:
    """The model-independent half of an event loop. Subclasses provide the readiness calls.

    Subclass contract: ``watch(fd, write)`` starts or changes interest in ``fd``
    (always readable interest unless ``write`` is set, then writable only, which
    is the back-pressure: no new requests are read while answers are owed);
    ``unwatch(fd)`` forgets it; ``run()`` is the loop.
    """

    def __init__(self, listener: socket.socket, app: Application) -> None:
        self.listener = listener
        self.app = app
        self.stats = app.stats
        self.new_handler = app.new_handler
        self.connections: dict[int, LoopConnection] = {}
        self._timers: list[tuple[float, int, LoopConnection]] = []
        self._timer_order = itertools.count()
        self._pushed: collections.deque[tuple[LoopConnection, list[Output]]] = collections.deque()
        self._woken: collections.deque[LoopConnection] = collections.deque()
        self._dirty: set[LoopConnection] = set()
        self._loop_thread = threading.get_ident()
        self.waker_reader, self._waker_writer = socket.socketpair()
        self.waker_reader.setblocking(False)
        self._waker_writer.setblocking(False)
        self._wake_pending = False
        #: Bytes moved since the last batch of events; published to the stats once
        #: per batch (see publish_counters) rather than under its lock on every send.
        self.bytes_in = 0
        self.bytes_out = 0
        #: Given up for an instant to turn a client away when descriptors run out (EMFILE).
        self.spare = SpareDescriptor(self.stats)
        #: monotonic() instant at which a paused listener is watched again, or None.
        self._accept_paused_until: float | None = None
        listener.setblocking(False)

    # -- readiness API the subclasses implement ---------------------------------

    def watch(self, fd: int, write: bool) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def unwatch(self, fd: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def accept_allowed(self, sock: socket.socket) -> bool:
        """Last word on a freshly accepted socket (select refuses fds past FD_SETSIZE)."""
        return True

    # -- events the subclasses dispatch ------------------------------------------

    def accept_ready(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                sock, address = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                if error.errno not in OUT_OF_DESCRIPTORS:
                    # ECONNABORTED and friends: that client gave up; keep serving.
                    self.stats.count_refusal(f"accept failed: {error.strerror or error}")
                    return
                # The client is still queued and the listener still readable:
                # returning would only be woken again at once (a spin). Turn it away.
                if not self.spare.available:
                    self._pause_accepting(error)
                    return
                if self.spare.refuse(self.listener, error):
                    continue
                return  # nobody was waiting after all
            if not self.accept_allowed(sock):
                sock.close()
                continue
            self.open_connection(sock, address)

    def _pause_accepting(self, error: OSError) -> None:
        """No spare descriptor to refuse with: leave the queued clients waiting a moment."""
        self.spare.note_shortage(error)
        if self._accept_paused_until is None:
            self.unwatch(self.listener.fileno())
        self._accept_paused_until = monotonic() + ACCEPT_PAUSE_SECONDS

    def _resume_accepting(self) -> None:
        self._accept_paused_until = None
        self.spare.reserve()
        self.watch(self.listener.fileno(), False)

    def open_connection(self, sock: socket.socket, address: tuple) -> None:
        sock.setblocking(False)
        if sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = LoopConnection(sock, address)
        self.connections[conn.fd] = conn
        self.stats.connection_opened(address)
        peer = Peer(address, self._make_push(conn), self._make_wake(conn), sock.getsockname())
        conn.handler = self.new_handler(peer)
        self.watch(conn.fd, False)
        self.after_handler(conn, conn.handler.start())

    def readable(self, fd: int) -> None:
        conn = self.connections.get(fd)
        if conn is None:
            return
        if conn.lingering:
            self._drain_lingering(conn)
            return
        try:
            data = conn.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close_connection(conn)
            return
        if not data:
            conn.closing = conn.peer_closed = True
            self.after_handler(conn, conn.handler.eof())
            return
        self.bytes_in += len(data)
        self.after_handler(conn, conn.handler.feed(data))

    def writable(self, fd: int) -> None:
        conn = self.connections.get(fd)
        if conn is not None:
            self.flush(conn)

    def wake_ready(self) -> None:
        """Another thread pushed output: move it into the connections' outboxes."""
        try:
            while self.waker_reader.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        self._wake_pending = False
        self._take_pushed()
        self._tick_woken()
        self.flush_dirty()

    def _take_pushed(self) -> None:
        while self._pushed:
            conn, items = self._pushed.popleft()
            if self.connections.get(conn.fd) is conn and not conn.lingering:
                conn.outbox.extend(items)
                self._dirty.add(conn)

    def _tick_woken(self) -> None:
        while self._woken:
            conn = self._woken.popleft()
            if self.connections.get(conn.fd) is conn and not conn.lingering:
                self.after_handler(conn, conn.handler.tick(monotonic()))

    # -- handler output, flushing and closing -----------------------------------------

    def after_handler(self, conn: LoopConnection, output: list[Output]) -> None:
        """Queue what the handler said, send what the socket takes, re-arm its timer."""
        handler = conn.handler
        if handler.should_close:
            conn.closing = True
        deadline = handler.deadline()
        if deadline != conn.deadline:
            conn.deadline = deadline
            if deadline is not None:
                heapq.heappush(self._timers, (deadline, next(self._timer_order), conn))
        if not output:
            if conn.closing and not conn.outbox:
                self.end_connection(conn)
            return
        if len(output) == 1 and not conn.outbox and type(output[0]) is bytes:
            # The common case — one answer, nothing owed before it — skips the
            # outbox: a single send, and done if the socket took it all.
            data = output[0]
            try:
                sent = conn.sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self.close_connection(conn)
                return
            self.bytes_out += sent
            if sent == len(data):
                if conn.closing:
                    self.end_connection(conn)
                return
            output = [data[sent:]]
        conn.outbox.extend(output)
        self.flush(conn)

    def flush(self, conn: LoopConnection) -> None:
        outbox = conn.outbox
        sock = conn.sock
        try:
            while outbox:
                item = outbox[0]
                if type(item) is bytes:
                    # Coalesce consecutive byte strings into one send.
                    if len(outbox) > 1 and type(outbox[1]) is bytes:
                        parts = []
                        while outbox and type(outbox[0]) is bytes:
                            parts.append(outbox.popleft())
                        item = b"".join(parts)
                        outbox.appendleft(item)
                    # MSG_MORE: a response head followed by a file slice leaves in
                    # full segments with the file's first bytes (nginx's tcp_nopush).
                    more = len(outbox) > 1
                    sent = sock.send(item, socket.MSG_MORE) if more else sock.send(item)
                    self.bytes_out += sent
                    if sent < len(item):
                        outbox[0] = item[sent:]
                        break
                    outbox.popleft()
                else:
                    if not self._send_file_slice(conn, item):
                        break
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self.close_connection(conn)
            return
        if outbox:
            if not conn.writing:
                conn.writing = True
                self.watch(conn.fd, True)
        elif conn.closing:
            self.end_connection(conn)
        elif conn.writing:
            conn.writing = False
            self.watch(conn.fd, False)

    def _send_file_slice(self, conn: LoopConnection, piece: FileSlice) -> bool:
        """Send what the socket takes of ``piece``; True when it is all gone."""
        if conn.file is None:
            conn.file = open(piece.path, "rb")  # noqa: SIM115 - kept open across sends
        try:
            sent = os.sendfile(conn.fd, conn.file.fileno(), piece.offset, piece.count)
        except BlockingIOError:
            return False
        self.bytes_out += sent
        if sent == piece.count or sent == 0:
            conn.outbox.popleft()
            conn.file.close()
            conn.file = None
            if sent == 0 and piece.count:
                # The file is shorter than the headers promised: the response is broken.
                conn.outbox.clear()
                conn.closing = True
            return True
        conn.outbox[0] = FileSlice(piece.path, piece.offset + sent, piece.count - sent)
        return False

    def flush_dirty(self) -> None:
        dirty, self._dirty = self._dirty, set()
        for conn in dirty:
            if self.connections.get(conn.fd) is conn and not conn.lingering:
                self.flush(conn)

    def end_connection(self, conn: LoopConnection) -> None:
        """We are done with ``conn`` and all it was owed is sent: close it, gently if it may still talk.

        A peer that has not closed its side may have bytes on the way: half-close
        (FIN after our last byte), count the connection closed, and drop what
        still arrives until its EOF or ``LINGER_SECONDS``, then close.
        """
        if conn.peer_closed:
            self.close_connection(conn)
            return
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close_connection(conn)
            return
        self._retire(conn)
        conn.lingering = True
        if conn.writing:
            conn.writing = False
            self.watch(conn.fd, False)
        conn.deadline = monotonic() + LINGER_SECONDS
        heapq.heappush(self._timers, (conn.deadline, next(self._timer_order), conn))

    def _drain_lingering(self, conn: LoopConnection) -> None:
        try:
            data = conn.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.close_connection(conn)

    def close_connection(self, conn: LoopConnection) -> None:
        if self.connections.get(conn.fd) is not conn:
            return
        del self.connections[conn.fd]
        try:
            self.unwatch(conn.fd)
        except (OSError, KeyError, ValueError):
            pass
        conn.sock.close()
        conn.deadline = None
        if not conn.lingering:
            self._retire(conn)

    def _retire(self, conn: LoopConnection) -> None:
        """The connection is over for the application: close its file and handler, count it."""
        if conn.file is not None:
            conn.file.close()
            conn.file = None
        try:
            conn.handler.close()
        except Exception as error:
            self.stats.count_error(f"handler close failed: {error}")
        self.stats.connection_closed(conn.address)

    def _make_push(self, conn: LoopConnection):
        def push(items: list[Output]) -> None:
            if threading.get_ident() == self._loop_thread:
                if self._pushed:  # earlier pushes from other threads go first
                    self._take_pushed()
                conn.outbox.extend(items)
                self._dirty.add(conn)
                return
            self._pushed.append((conn, items))
            if not self._wake_pending:
                self._wake_pending = True
                try:
                    self._waker_writer.send(b"\0")
                except (BlockingIOError, OSError):
                    pass

        return push

    def _make_wake(self, conn: LoopConnection) -> Wake:
        def wake() -> None:
            self._woken.append(conn)
            if not self._wake_pending:
                self._wake_pending = True
                try:
                    self._waker_writer.send(b"\0")
                except (BlockingIOError, OSError):
                    pass

        return wake

    # -- timers ------------------------------------------------------------------

    def next_timeout(self, default: float | None = None) -> float | None:
        """Seconds until the earliest handler deadline (None: wait for IO only)."""
        if self._dirty:
            return 0.0
        earliest = self._timers[0][0] if self._timers else None
        if self._accept_paused_until is not None:
            earliest = min(earliest or self._accept_paused_until, self._accept_paused_until)
        if earliest is None:
            return default
        return max(0.0, earliest - monotonic())

    def publish_counters(self) -> None:
        """Hand the batch's byte counts to the stats (one lock round instead of two per request)."""
        if self.bytes_in or self.bytes_out:
            self.stats.add_bytes(received=self.bytes_in, sent=self.bytes_out)
            self.bytes_in = self.bytes_out = 0

    def run_timers(self) -> None:
        """After each batch of events: publish the byte counts, fire the handlers' due timers."""
        self.publish_counters()
        if self._accept_paused_until is not None and monotonic() >= self._accept_paused_until:
            self._resume_accepting()
        timers = self._timers
        if not timers:
            if self._dirty:
                self.flush_dirty()
            return
        now = monotonic()
        while timers and timers[0][0] <= now:
            deadline, _, conn = heapq.heappop(timers)
            if conn.deadline != deadline or self.connections.get(conn.fd) is not conn:
                continue  # re-armed or closed since: a stale entry
            if conn.lingering:
                self.close_connection(conn)  # the peer kept its side open: enough
                continue
            conn.deadline = None
            self.after_handler(conn, conn.handler.tick(now))
        if self._dirty:
            self.flush_dirty()

    def close_all(self) -> None:
        for conn in list(self.connections.values()):
            self.close_connection(conn)
        self.publish_counters()
        self.spare.close()
        self.waker_reader.close()
        self._waker_writer.close()
