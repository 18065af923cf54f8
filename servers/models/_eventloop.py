"""I/O-free bookkeeping shared by the select, poll and epoll loops: outboxes, timers, the waker, lingering.

The socket calls are not here. Each model file (``select.py``, ``poll.py``,
``epoll.py``) owns its loop and its ``accept``, ``recv``, ``send``,
``sendfile``, ``shutdown`` and ``close``, in the shape the course teaches
(3.2.4 IO多路复用 for the calls, the six steps of 3.2.5 IO并发模型 for the
loop). What every such loop needs
around those calls lives in :class:`EventLoopBookkeeping`: which connection
owes which bytes and file slices, whose idle timer is due, output other
threads pushed or a wake a helper thread asked for (an FTP transfer that
ended; both come through the waker), which connections are lingering after a
close, and the counts the stats panel shows.
"""

from __future__ import annotations

import collections
import heapq
import itertools
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
    """One accepted socket, its sans-IO handler and the output it still owes (its outbox)."""

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
        self.writing = False  # watched for writability, not readability: answers are owed
        self.peer_closed = False  # the peer's EOF arrived: nothing more will come
        self.lingering = False  # ended by us, half-closed, input drained until EOF

    def next_piece(self) -> Output:
        """The outbox's first piece, with the byte strings queued behind it joined into one send.

        Pipelined requests answered in one go leave many small answers queued:
        joined, they cost one send instead of one each.
        """
        outbox = self.outbox
        piece = outbox[0]
        if type(piece) is bytes and len(outbox) > 1 and type(outbox[1]) is bytes:
            parts = []
            while outbox and type(outbox[0]) is bytes:
                parts.append(outbox.popleft())
            piece = b"".join(parts)
            outbox.appendleft(piece)
        return piece

    def file_for(self, piece: FileSlice) -> int:
        """The descriptor of ``piece``'s file, opened once and kept until the slice is all sent."""
        if self.file is None:
            self.file = open(piece.path, "rb")  # noqa: SIM115 - kept open across sends
        return self.file.fileno()

    def file_sent(self, piece: FileSlice, count: int) -> bool:
        """sendfile() sent ``count`` bytes of ``piece``: True when it is all gone, False when the socket is full."""
        outbox = self.outbox
        if count == piece.count or count == 0:
            outbox.popleft()
            self.file.close()
            self.file = None
            if count == 0 and piece.count:
                # The file is shorter than the headers promised: the response is broken.
                outbox.clear()
                self.closing = True
            return True
        outbox[0] = FileSlice(piece.path, piece.offset + count, piece.count - count)
        return False


class EventLoopBookkeeping:
    """Everything an IO-multiplexing loop keeps besides its sockets. The model supplies the I/O.

    A model subclasses this and provides its socket calls: ``answer(conn,
    output)`` sends a handler's output (queuing what the socket does not take),
    ``send_owed(conn)`` sends what the socket takes of ``conn``'s outbox,
    ``close(conn)`` closes it for good, and ``watch_listener(watching)`` stops
    or resumes watching the listener (paused while out of descriptors).
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
        #: Other threads push output (a chat broadcast) or ask for a tick (an FTP
        #: transfer ended) and write a byte here to wake the loop.
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

    # -- the model's socket calls -------------------------------------------------

    def watch_listener(self, watching: bool) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def answer(self, conn: LoopConnection, output: list[Output]) -> None:  # pragma: no cover
        raise NotImplementedError

    def send_owed(self, conn: LoopConnection) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self, conn: LoopConnection) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- connections coming and going -------------------------------------------------

    def open_connection(
        self, sock: socket.socket, address: tuple, local_address: tuple
    ) -> LoopConnection:
        """Count a freshly accepted socket and give it a handler; the model watches it."""
        conn = LoopConnection(sock, address)
        self.connections[conn.fd] = conn
        self.stats.connection_opened(address)
        peer = Peer(address, self._make_push(conn), self._make_wake(conn), local_address)
        conn.handler = self.new_handler(peer)
        return conn

    def accept_failed(self, error: OSError) -> bool:
        """accept() failed: True if one queued client was turned away and the next may be tried.

        Out of descriptors (EMFILE), the client is still queued and the listener
        still readable: giving up would only be woken again at once (a spin). So
        the spare descriptor is let go to accept and close it with a counted
        refusal; with no spare, the listener is not watched for a moment.
        """
        if error.errno not in OUT_OF_DESCRIPTORS:
            # ECONNABORTED and friends: that client gave up; keep serving.
            self.stats.count_refusal(f"accept failed: {error.strerror or error}")
            return False
        if not self.spare.available:
            self._pause_accepting(error)
            return False
        return self.spare.refuse(self.listener, error)  # False: nobody was waiting after all

    def _pause_accepting(self, error: OSError) -> None:
        self.spare.note_shortage(error)
        if self._accept_paused_until is None:
            self.watch_listener(False)
        self._accept_paused_until = monotonic() + ACCEPT_PAUSE_SECONDS

    def _resume_accepting(self) -> None:
        self._accept_paused_until = None
        self.spare.reserve()
        self.watch_listener(True)

    def peer_closed(self, conn: LoopConnection) -> list[Output]:
        """recv() said EOF: nothing more will come; the handler's last words."""
        conn.closing = conn.peer_closed = True
        return conn.handler.eof()

    def start_lingering(self, conn: LoopConnection) -> None:
        """``conn`` is half-closed by us: over for the application, its socket drained until EOF.

        The peer may have bytes on the way; closing now would answer them with
        a reset that can destroy our last answer in its receive buffer. So the
        connection counts as closed, and the model drops what still arrives
        until the peer's EOF or ``LINGER_SECONDS``, then closes.
        """
        self._retire(conn)
        conn.lingering = True
        conn.deadline = monotonic() + LINGER_SECONDS
        heapq.heappush(self._timers, (conn.deadline, next(self._timer_order), conn))

    def forget(self, conn: LoopConnection) -> bool:
        """Drop ``conn`` from the books before the model closes its socket; False if already gone."""
        if self.connections.get(conn.fd) is not conn:
            return False
        del self.connections[conn.fd]
        conn.deadline = None
        if not conn.lingering:
            self._retire(conn)
        return True

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

    # -- handler output -----------------------------------------------------------

    def note_handler_state(self, conn: LoopConnection) -> None:
        """After a handler call: note its wish to close, re-arm its timer if its deadline moved."""
        handler = conn.handler
        if handler.should_close:
            conn.closing = True
        deadline = handler.deadline()
        if deadline != conn.deadline:
            conn.deadline = deadline
            if deadline is not None:
                heapq.heappush(self._timers, (deadline, next(self._timer_order), conn))

    def _make_push(self, conn: LoopConnection):
        def push(items: list[Output]) -> None:
            if threading.get_ident() == self._loop_thread:
                if self._pushed:  # earlier pushes from other threads go first
                    self._take_pushed()
                conn.outbox.extend(items)
                self._dirty.add(conn)
                return
            self._pushed.append((conn, items))
            self._poke_waker()

        return push

    def _make_wake(self, conn: LoopConnection) -> Wake:
        def wake() -> None:
            self._woken.append(conn)
            self._poke_waker()

        return wake

    def _poke_waker(self) -> None:
        """From another thread: make the loop's wait return, once until it has looked."""
        if not self._wake_pending:
            self._wake_pending = True
            try:
                self._waker_writer.send(b"\0")
            except (BlockingIOError, OSError):
                pass  # full: a wake-up is already waiting to be read

    def woken(self) -> None:
        """The waker is readable: send what other threads pushed, tick the handlers they woke."""
        try:
            while self.waker_reader.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        self._wake_pending = False
        self._take_pushed()
        self._tick_woken()
        self._send_dirty()

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
                self.answer(conn, conn.handler.tick(monotonic()))

    def _send_dirty(self) -> None:
        dirty, self._dirty = self._dirty, set()
        for conn in dirty:
            if self.connections.get(conn.fd) is conn and not conn.lingering:
                self.send_owed(conn)

    # -- timers, once per pass of the loop ---------------------------------------------

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
                self._send_dirty()
            return
        now = monotonic()
        while timers and timers[0][0] <= now:
            deadline, _, conn = heapq.heappop(timers)
            if conn.deadline != deadline or self.connections.get(conn.fd) is not conn:
                continue  # re-armed or closed since: a stale entry
            if conn.lingering:
                self.close(conn)  # the peer kept its side open: enough
                continue
            conn.deadline = None
            self.answer(conn, conn.handler.tick(now))
        if self._dirty:
            self._send_dirty()

    def close_all(self) -> None:
        for conn in list(self.connections.values()):
            self.close(conn)
        self.publish_counters()
        self.spare.close()
        self.waker_reader.close()
        self._waker_writer.close()
