"""The load generator's worker: one epoll loop driving many connections (IO multiplexing, 3.2.4)."""

from __future__ import annotations

import contextlib
import errno
import resource
import select
import socket
import time
from array import array
from dataclasses import dataclass
from typing import Any

from workbench.clients.http_wire import ProtocolError, ResponseReader

#: How often a worker ships its batch to the parent.
WORKER_REPORT_INTERVAL = 0.1
#: Bytes asked of one recv(). Python allocates the whole size before it shrinks the
#: result, and glibc serves 128 KiB or more with mmap: a 256 KiB recv cost an
#: mmap, an mremap and a munmap per response and held us to half of wrk's rate.
RECV_SIZE = 65536

_CONNECTING, _SENDING, _RECEIVING = 1, 2, 3


@dataclass
class WorkerPlan:
    """One worker's share of a load test: where, what, how many connections and requests."""

    host: str
    port: int
    request: bytes
    method: str
    connections: int
    quota: int | None
    duration: float | None
    keepalive: bool
    timeout: float


class _Connection:
    """One client slot: reopened after a close, so its answer count spans reconnects."""

    __slots__ = ("sock", "fd", "state", "started_ns", "pending", "reader", "answered")

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.fd = -1
        self.state = 0
        self.started_ns = 0
        self.pending = b""
        self.reader: ResponseReader | None = None
        #: Responses this client slot received over the whole run, across reconnects.
        self.answered = 0


def error_kind(code: int) -> str:
    """A short name for a socket errno, as the error counts show it."""
    return {
        errno.ECONNREFUSED: "refused",
        errno.ECONNRESET: "reset",
        errno.EPIPE: "reset",
        errno.ETIMEDOUT: "timeout",
        errno.EHOSTUNREACH: "unreachable",
        errno.ENETUNREACH: "unreachable",
        errno.EADDRNOTAVAIL: "no local port",
        errno.EMFILE: "too many open files (ulimit -n)",
    }.get(code, errno.errorcode.get(code, f"errno {code}").lower())


#: Descriptors a worker needs besides its connections: epoll, its report pipe, stdio, modules.
OPEN_FILES_MARGIN = 64


def allow_open_files(needed: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE to ``needed`` if it is lower; returns the limit now.

    Never past the hard limit (only root may raise that): 1,100 connections, enough to
    take a select() server past its 1024 wall, must not die at the usual soft limit of 1024.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return soft
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def drive_load(plan: WorkerPlan, report: Any, start: Any, stop: Any) -> None:
    """Send ``plan`` until its quota or duration runs out; ship batches through ``report``.

    Why a hand-written epoll loop: httpx costs ~100 µs a request in Python, a raw
    non-blocking loop a few µs, and the generator must not be the bottleneck.
    Responses are framed by http_wire's ResponseReader, whose ``feed_status``
    recognises a whole small response in one recv with a few ``find`` calls.
    """
    poller = select.epoll()
    connections: dict[int, _Connection] = {}
    latencies = array("q")
    statuses: dict[int, int] = {}
    errors: dict[str, int] = {}
    received = 0
    remaining = plan.quota if plan.quota is not None else -1
    address = (plan.host, plan.port)
    request = plan.request
    method = plan.method
    perf_ns = time.perf_counter_ns
    monotonic = time.monotonic
    keepalive = plan.keepalive
    timeout_ns = int(plan.timeout * 1e9)
    family = socket.AF_INET6 if ":" in plan.host else socket.AF_INET
    with contextlib.suppress(OSError):
        family = socket.getaddrinfo(plan.host, plan.port, type=socket.SOCK_STREAM)[0][0]
    EPOLLIN, EPOLLOUT = select.EPOLLIN, select.EPOLLOUT
    EPOLLERR_HUP = select.EPOLLERR | select.EPOLLHUP

    def take_request() -> bool:
        nonlocal remaining
        if remaining == 0 or stopping:
            return False
        if remaining > 0:
            remaining -= 1
        return True

    def open_connection(conn: _Connection) -> None:
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as exc:  # EMFILE: the open-file limit, even after allow_open_files
            fail(conn, error_kind(exc.errno or 0))
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.sock, conn.fd, conn.reader = sock, sock.fileno(), ResponseReader(method)
        conn.state, conn.started_ns = _CONNECTING, perf_ns()
        connections[conn.fd] = conn
        code = sock.connect_ex(address)
        if code not in (0, errno.EINPROGRESS):
            close_connection(conn)
            fail(conn, error_kind(code))
            return
        poller.register(conn.fd, EPOLLOUT)

    def close_connection(conn: _Connection) -> None:
        if conn.sock is None:
            return
        connections.pop(conn.fd, None)
        with contextlib.suppress(OSError, ValueError):
            poller.unregister(conn.fd)
        conn.sock.close()
        conn.sock, conn.fd, conn.state = None, -1, 0

    def fail(conn: _Connection, kind: str) -> None:
        # Reopen from the main loop, not here: a refused connect fails at once
        # and would otherwise recurse for as long as the server is down.
        errors[kind] = errors.get(kind, 0) + 1
        close_connection(conn)
        reopen.append(conn)

    def send_first_request(conn: _Connection) -> None:
        try:
            sent = conn.sock.send(request)
        except OSError as exc:
            fail(conn, error_kind(exc.errno or 0))
            return
        if sent < len(request):
            conn.pending, conn.state = request[sent:], _SENDING
        else:
            conn.state = _RECEIVING
            poller.modify(conn.fd, EPOLLIN)

    def answered(conn: _Connection, status: int) -> None:
        """Count an answer, then ask again on this connection or on a fresh one."""
        nonlocal remaining
        latencies.append((perf_ns() - conn.started_ns) // 1000)
        statuses[status] = statuses.get(status, 0) + 1
        conn.answered += 1
        if keepalive and conn.reader.keep_alive and conn.sock is not None:
            if take_request():
                conn.started_ns = perf_ns()
                try:
                    sent = conn.sock.send(request)
                except OSError as exc:
                    fail(conn, error_kind(exc.errno or 0))
                    return
                if sent < len(request):
                    conn.pending, conn.state = request[sent:], _SENDING
                    poller.modify(conn.fd, EPOLLOUT)
            else:
                close_connection(conn)
        else:
            close_connection(conn)
            if take_request():
                open_connection(conn)

    def on_closed(conn: _Connection) -> None:
        try:
            status = conn.reader.feed_eof_status()  # a body that runs until the close
        except ProtocolError:
            status = 0
        if status:
            close_connection(conn)
            answered(conn, status)
        else:
            # A kept-alive connection the server closed between requests, or one
            # cut mid-response: what wrk counts as a read error. Count, reconnect, go on.
            fail(conn, "closed by server")

    allow_open_files(plan.connections + OPEN_FILES_MARGIN)
    slots = [_Connection() for _ in range(plan.connections)]
    reopen: list[_Connection] = []
    report.send("ready")
    start.wait()
    started = monotonic()
    deadline = started + plan.duration if plan.duration is not None else None
    stopping = False
    for conn in slots:
        if take_request():
            open_connection(conn)
    next_report = started + WORKER_REPORT_INTERVAL
    next_timeout_scan = started + 0.5
    waiting_us: list[int] = []
    latencies_append = latencies.append
    statuses_get = statuses.get

    def ship(final: bool) -> None:
        nonlocal received
        counts = [slot.answered for slot in slots]
        report.send((latencies.tobytes(), statuses, errors, received, counts, waiting_us, final))
        # Cleared in place: the hot loop holds bound methods of these objects.
        del latencies[:]
        statuses.clear()
        errors.clear()
        received = 0

    try:
        while connections or reopen:
            if reopen:
                waiting, reopen[:] = list(reopen), []
                for conn in waiting:
                    if take_request():
                        open_connection(conn)
            events = poller.poll(0 if reopen else 0.05)
            for fd, mask in events:
                conn = connections.get(fd)
                if conn is None:
                    continue
                state = conn.state
                if state == _RECEIVING:
                    try:
                        data = conn.sock.recv(RECV_SIZE)
                    except BlockingIOError:
                        continue
                    except OSError as exc:
                        fail(conn, error_kind(exc.errno or 0))
                        continue
                    if not data:
                        on_closed(conn)
                        continue
                    received += len(data)
                    try:
                        status = conn.reader.feed_status(data)
                    except ProtocolError:
                        fail(conn, "bad response")
                        continue
                    if not status:
                        continue
                    # Inlined from answered(): this runs once per request, and a
                    # kept-alive connection asking again is nearly every request.
                    if keepalive and conn.reader.keep_alive and remaining != 0 and not stopping:
                        latencies_append((perf_ns() - conn.started_ns) // 1000)
                        statuses[status] = statuses_get(status, 0) + 1
                        conn.answered += 1
                        if remaining > 0:
                            remaining -= 1
                        conn.started_ns = perf_ns()
                        try:
                            sent = conn.sock.send(request)
                        except OSError as exc:
                            fail(conn, error_kind(exc.errno or 0))
                            continue
                        if sent < len(request):
                            conn.pending, conn.state = request[sent:], _SENDING
                            poller.modify(conn.fd, EPOLLOUT)
                    else:
                        answered(conn, status)
                elif state == _CONNECTING:
                    code = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if code or mask & EPOLLERR_HUP:
                        fail(conn, error_kind(code or errno.ECONNREFUSED))
                    else:
                        send_first_request(conn)
                elif state == _SENDING:
                    try:
                        sent = conn.sock.send(conn.pending)
                    except OSError as exc:
                        fail(conn, error_kind(exc.errno or 0))
                        continue
                    conn.pending = conn.pending[sent:]
                    if not conn.pending:
                        conn.state = _RECEIVING
                        poller.modify(conn.fd, EPOLLIN)
            now = monotonic()
            if now >= next_report:
                next_report = now + WORKER_REPORT_INTERVAL
                if deadline is not None and now >= deadline:
                    break  # like wrk: stop on time, drop what is in flight
                if stop.is_set():
                    stopping = True
                    break
                ship(False)
            if now >= next_timeout_scan:
                next_timeout_scan = now + 0.5
                limit = perf_ns() - timeout_ns
                for conn in list(connections.values()):
                    if conn.started_ns < limit:
                        fail(conn, "timeout")
    except Exception as exc:
        # A bug here must not print a traceback over the TUI: report it as data.
        kind = f"internal error: {type(exc).__name__}: {exc}"
        errors[kind] = errors.get(kind, 0) + 1
    finally:
        # Requests still without an answer at the end never reach the latencies:
        # report how long each waited, or a server that starved them looks fast.
        ended_ns = perf_ns()
        waiting_us = [(ended_ns - conn.started_ns) // 1000 for conn in connections.values()]
        for conn in list(connections.values()):
            close_connection(conn)
        poller.close()
        ship(True)
