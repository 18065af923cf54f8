"""Per-server counters and the reporter that streams them to the workbench (course 2.2.5 进程通信).

Every server process owns one :class:`ServerStats`. Handlers and models bump its
counters; a reporter thread puts a snapshot on the launcher's
``multiprocessing.Queue`` about twice a second, with the events (connect,
disconnect, request, error) recorded since the last one.

Forked children (the ``processes``, ``pool`` and ``prefork`` models) cannot use
that queue: a ``multiprocessing.Queue`` inherited through a bare ``os.fork()``
has no feeder thread in the child, so its puts are silently lost. Children
instead write their *deltas* to a pipe the parent made before forking; each
record is one ``os.write`` of at most ``PIPE_BUF`` bytes, which POSIX makes
atomic, so many children can share the pipe without a lock. The parent folds
the deltas into its own figures.
"""

from __future__ import annotations

import collections
import os
import pickle
import select
import struct
import threading
import time
from typing import Any

from servers.signals import HelperThread, serving_thread_count

#: How often a snapshot is reported, seconds.
REPORT_INTERVAL = 0.5
#: Events kept between two snapshots; older ones are dropped and counted.
MAX_EVENTS_PER_REPORT = 400
_PIPE_BUF = select.PIPE_BUF
_LENGTH = struct.Struct("!I")
_COUNTERS = ("active", "accepted", "requests", "bytes_in", "bytes_out", "errors", "refused")


class ServerStats:
    """Counters of one server: own process plus every forked child's deltas."""

    def __init__(
        self,
        server_id: str = "",
        protocol: str = "",
        model: str = "",
        queue: Any = None,
    ) -> None:
        self.server_id = server_id
        self.protocol = protocol
        self.model = model
        self.host = ""
        self.port = 0
        #: "tcp" (connections) or "udp" (a datagram server: members, not connections).
        self.transport = "tcp"
        #: The soft RLIMIT_NOFILE the server runs with (set by the runner), 0 if unknown.
        self.max_open_files = 0
        self.queue = queue
        self.started = time.time()
        self.active = 0
        self.accepted = 0
        self.requests = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.errors = 0
        self.refused = 0
        #: pids of live worker or per-connection children, kept by the model.
        self.children: set[int] = set()
        self._events: collections.deque = collections.deque(maxlen=MAX_EVENTS_PER_REPORT)
        self._events_seen = 0
        self._lock = threading.Lock()
        self._child_pipe: tuple[int, int] | None = None
        self._is_child = False
        self._reported: dict[str, int] = dict.fromkeys(_COUNTERS, 0)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- counting (any thread) -------------------------------------------------

    def connection_opened(self, address: Any = None) -> None:
        with self._lock:
            self.active += 1
            self.accepted += 1
        self.event("connect", format_address(address))

    def connection_closed(self, address: Any = None) -> None:
        with self._lock:
            self.active -= 1
        self.event("disconnect", format_address(address))

    def member_joined(self) -> None:
        """A datagram server's member arrived: counted like a connection, logged by the room as *join*."""
        with self._lock:
            self.active += 1
            self.accepted += 1

    def member_left(self) -> None:
        with self._lock:
            self.active -= 1

    def add_bytes(self, received: int = 0, sent: int = 0) -> None:
        with self._lock:
            self.bytes_in += received
            self.bytes_out += sent

    def count_request(self, detail: str | None = None) -> None:
        with self._lock:
            self.requests += 1
        if detail is not None:
            self.event("request", detail)

    def count_error(self, detail: str) -> None:
        with self._lock:
            self.errors += 1
        self.event("error", detail)

    def count_refusal(self, detail: str) -> None:
        with self._lock:
            self.refused += 1
        self.event("refused", detail)

    def event(self, kind: str, detail: str = "") -> None:
        """Record an event for the live log (bounded; never blocks)."""
        self._events_seen += 1
        self._events.append((time.time(), kind, detail, os.getpid()))

    # -- snapshots -------------------------------------------------------------

    def snapshot(self) -> dict:
        """The figures as one plain dict (also served by ``/api/stats``)."""
        with self._lock:
            figures = {name: getattr(self, name) for name in _COUNTERS}
        return {
            "type": "snapshot",
            "server_id": self.server_id,
            "protocol": self.protocol,
            "model": self.model,
            "host": self.host,
            "port": self.port,
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "transport": self.transport,
            "threads": threading.active_count(),
            "serving_threads": serving_thread_count(),
            "max_open_files": self.max_open_files,
            "children": sorted(self.children),
            "uptime": time.time() - self.started,
            "time": time.time(),
            **figures,
        }

    def _take_events(self) -> tuple[list, int]:
        events = []
        while self._events:
            try:
                events.append(self._events.popleft())
            except IndexError:  # pragma: no cover - raced with another taker
                break
        seen, self._events_seen = self._events_seen, 0
        return events, max(0, seen - len(events))

    def report_now(self) -> None:
        """Put one snapshot (with pending events) on the launcher's queue."""
        if self.queue is None:
            return
        message = self.snapshot()
        message["events"], message["events_dropped"] = self._take_events()
        try:
            self.queue.put(message)
        except (OSError, ValueError):  # queue closed while shutting down
            pass

    def start_reporting(self) -> None:
        """Start the reporter thread (and the child-delta reader, if enabled)."""
        if self._threads:
            return
        reporter = HelperThread(target=self._report_loop, name="stats-reporter", daemon=True)
        self._threads.append(reporter)
        reporter.start()

    def stop_reporting(self) -> None:
        """Final report, then stop the reporter thread."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)
        self._drain_child_pipe(timeout=0)
        self.report_now()

    def _report_loop(self) -> None:
        next_report = time.monotonic() + REPORT_INTERVAL
        while not self._stop.is_set():
            # Child records wake this thread early; snapshots still go out on the beat.
            self._drain_child_pipe(timeout=max(0.0, next_report - time.monotonic()))
            now = time.monotonic()
            if now >= next_report:
                self.report_now()
                next_report = max(next_report + REPORT_INTERVAL, now)

    # -- forked children ---------------------------------------------------------

    def enable_child_reports(self) -> None:
        """Make the pipe children report through. Call before the first fork."""
        if self._child_pipe is None:
            read_fd, write_fd = os.pipe()
            os.set_blocking(read_fd, False)
            self._child_pipe = (read_fd, write_fd)
            self._pending = b""

    def become_child(self, flush_interval: float = REPORT_INTERVAL) -> None:
        """In a freshly forked child: count from zero and report deltas upward.

        Starts a small flusher thread so a long connection's figures (an FTP
        transfer, a slow client) still reach the panel while it lasts.
        """
        assert self._child_pipe is not None, "enable_child_reports() before forking"
        read_fd, _ = self._child_pipe
        os.close(read_fd)
        self._is_child = True
        self._lock = threading.Lock()  # the parent's may have been held at fork time
        self._stop = threading.Event()
        self._threads = []
        self.queue = None
        self.children = set()
        for name in _COUNTERS:
            setattr(self, name, 0)
        self._events.clear()
        self._events_seen = 0
        self._reported = dict.fromkeys(_COUNTERS, 0)
        flusher = HelperThread(
            target=self._flush_loop, args=(flush_interval,), name="stats-flusher", daemon=True
        )
        flusher.start()

    def _flush_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.flush_to_parent()

    def flush_to_parent(self) -> None:
        """Send this child's counter deltas and events to the parent. Thread-safe."""
        if not self._is_child or self._child_pipe is None:
            return
        with self._lock:
            delta = {}
            for name in _COUNTERS:
                value = getattr(self, name)
                if value != self._reported[name]:
                    delta[name] = value - self._reported[name]
                    self._reported[name] = value
            events, dropped = self._take_events()
        if not delta and not events and not dropped:
            return
        self._write_record({"delta": delta, "events": [], "dropped": dropped})
        # Events go in chunks so each record fits in one atomic pipe write.
        chunk: list = []
        for event in events:
            chunk.append(event)
            if len(chunk) == 20:
                self._write_record({"delta": {}, "events": chunk, "dropped": 0})
                chunk = []
        if chunk:
            self._write_record({"delta": {}, "events": chunk, "dropped": 0})

    def finish_child(self) -> None:
        """Last flush before the child calls ``os._exit``."""
        self._stop.set()
        self.flush_to_parent()

    def _write_record(self, record: dict) -> None:
        payload = pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
        if len(payload) + _LENGTH.size > _PIPE_BUF:
            # Too big to be atomic: keep the counters, shorten the event texts.
            record["events"] = [(t, k, d[:60], p) for t, k, d, p in record["events"]]
            payload = pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
        _, write_fd = self._child_pipe  # type: ignore[misc]
        try:
            os.write(write_fd, _LENGTH.pack(len(payload)) + payload)
        except OSError:  # parent gone: nothing left to report to
            pass

    def _drain_child_pipe(self, timeout: float) -> None:
        if self._child_pipe is None or self._is_child:
            if timeout:
                self._stop.wait(timeout)
            return
        read_fd = self._child_pipe[0]
        try:
            ready, _, _ = select.select([read_fd], [], [], timeout)
        except (OSError, ValueError):
            return
        if not ready:
            return
        while True:
            try:
                data = os.read(read_fd, 65536)
            except BlockingIOError:
                break
            except OSError:
                return
            if not data:
                break
            self._pending += data
        self._apply_records()

    def _apply_records(self) -> None:
        buffer = self._pending
        offset = 0
        while len(buffer) - offset >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(buffer, offset)
            end = offset + _LENGTH.size + length
            if end > len(buffer):
                break
            record = pickle.loads(buffer[offset + _LENGTH.size : end])
            offset = end
            with self._lock:
                for name, value in record["delta"].items():
                    setattr(self, name, getattr(self, name) + value)
            self._events.extend(record["events"])
            self._events_seen += len(record["events"]) + record["dropped"]
        self._pending = buffer[offset:]


def format_address(address: Any) -> str:
    """A peer address as the event log shows it: ``host:port``, ``[v6 host]:port``."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return "" if address is None else str(address)
