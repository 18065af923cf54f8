"""Adapter from the sans-IO contract to the blocking one: one flow of control drives one handler.

This is how the per-connection models (iterative, threads, processes, pool) run
a protocol written as a sans-IO handler: the loop below is the course's
``handle(c)`` function, ``recv`` then answer, with the handler deciding what to
answer. Timers block the worker: the loop waits on the socket only until the
handler's deadline, so ``/api/sleep`` really holds a thread or a process here.
"""

from __future__ import annotations

import os
import select
import socket
import threading

from servers.contracts import (
    LINGER_SECONDS,
    Application,
    FileSlice,
    Output,
    Peer,
    SansIOHandler,
    monotonic,
)
from servers.stats import ServerStats

RECV_SIZE = 65536


def send_output(conn: socket.socket, items: list[Output]) -> int:
    """Send every item on a blocking socket; FileSlices go out with os.sendfile. Returns bytes sent."""
    sent = 0
    pending: list[bytes] = []
    for item in items:
        if isinstance(item, FileSlice):
            if pending:
                data = b"".join(pending)
                conn.sendall(data)
                sent += len(data)
                pending = []
            sent += sendfile_blocking(conn, item)
        else:
            pending.append(item)
    if pending:
        data = b"".join(pending)
        conn.sendall(data)
        sent += len(data)
    return sent


def sendfile_blocking(conn: socket.socket, piece: FileSlice) -> int:
    """Copy a file slice to the socket inside the kernel (zero-copy ``os.sendfile``)."""
    with open(piece.path, "rb") as file:
        offset, remaining = piece.offset, piece.count
        out_fd, in_fd = conn.fileno(), file.fileno()
        while remaining > 0:
            try:
                count = os.sendfile(out_fd, in_fd, offset, remaining)
            except BlockingIOError:
                select.poll().poll()  # pragma: no cover - blocking sockets do not get here
                continue
            if count == 0:  # file shorter than announced: stop rather than spin
                break
            offset += count
            remaining -= count
    return piece.count - remaining


def blocking_from_sans_io(app: Application):
    """Make a ``handle(conn, addr)`` function that drives ``app.new_handler``."""
    assert app.new_handler is not None
    factory = app.new_handler
    stats: ServerStats = app.stats

    def handle(conn: socket.socket, address: tuple) -> None:
        conn.setblocking(True)
        send_lock = threading.Lock()

        def push(items: list[Output]) -> None:
            # Called from other threads (a chat broadcast, an admin announcement).
            with send_lock:
                try:
                    stats.add_bytes(sent=send_output(conn, items))
                except OSError:
                    pass

        handler: SansIOHandler = factory(Peer(address, push))
        waiter = select.poll()
        waiter.register(conn, select.POLLIN)
        try:
            output = handler.start()
            while True:
                if output:
                    with send_lock:
                        stats.add_bytes(sent=send_output(conn, output))
                if handler.should_close:
                    linger(conn)
                    break
                deadline = handler.deadline()
                if deadline is not None:
                    now = monotonic()
                    if deadline <= now:
                        output = handler.tick(now)
                        continue
                    # Wait for data only until the handler's timer is due.
                    if not waiter.poll(max(1, int((deadline - now) * 1000) + 1)):
                        output = handler.tick(monotonic())
                        continue
                data = conn.recv(RECV_SIZE)
                if not data:
                    output = handler.eof()
                    if output:
                        with send_lock:
                            stats.add_bytes(sent=send_output(conn, output))
                    break
                stats.add_bytes(received=len(data))
                output = handler.feed(data)
        except OSError:
            pass  # peer reset or vanished: the connection is simply over
        finally:
            handler.close()

    return handle


def linger(conn: socket.socket, seconds: float = LINGER_SECONDS) -> None:
    """Half-close ``conn`` and drop its input until EOF or ``seconds`` (see LINGER_SECONDS)."""
    try:
        conn.shutdown(socket.SHUT_WR)
        deadline = monotonic() + seconds
        while (left := deadline - monotonic()) > 0:
            conn.settimeout(left)
            if not conn.recv(RECV_SIZE):
                return
    except OSError:  # the peer reset, or the time is up (TimeoutError)
        pass


def blocking_handler_for(app: Application):
    """The blocking handler a per-connection model runs for ``app``."""
    if app.handle_blocking is not None:
        return app.handle_blocking
    return blocking_from_sans_io(app)


def serve_connection(app: Application, handle, conn: socket.socket, address: tuple) -> None:
    """Run one connection to the end with stats and closing done right (all blocking models)."""
    stats = app.stats
    stats.connection_opened(address)
    try:
        handle(conn, address)
    except Exception as error:  # a handler bug must not take the server down
        stats.count_error(f"{type(error).__name__}: {error}")
    finally:
        try:
            conn.close()
        finally:
            stats.connection_closed(address)
