"""HTTP load generator (wrk/oha style): keep-alive socket loops fanned out over processes.

Each worker process drives many non-blocking connections from one ``epoll`` loop
(the course's IO multiplexing, 3.2.4, used from the client side) and reports
batches of latencies a few times a second; the parent merges them into
:class:`LoadStats`, whose :class:`LoadSnapshot` the UI or the CLI renders.
No textual or rich import: this module is shared by the TUI, the CLI and bench/.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import errno
import io
import json
import math
import multiprocessing
import multiprocessing.connection
import os
import select
import socket
import sys
import threading
import time
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

#: Percentiles every summary reports (p99.9 is the tail a lesson talks about).
PERCENTILES: tuple[float, ...] = (50.0, 90.0, 99.0, 99.9)
#: Width of one point of the requests/s series, in seconds.
RATE_STEP = 0.5
#: How often a worker ships its batch to the parent.
WORKER_REPORT_INTERVAL = 0.1
#: Bytes asked of one recv(). Python allocates the whole size before it shrinks the
#: result, and glibc serves 128 KiB or more with mmap: a 256 KiB recv cost an
#: mmap, an mremap and a munmap per response and held us to half of wrk's rate.
RECV_SIZE = 65536
#: How often the caller's progress callback runs (a few times a second, never per request).
DEFAULT_PROGRESS_INTERVAL = 0.25
#: A connection is *starved* when it got fewer answers than this fraction of a fair
#: share (answered requests / connections): a tenth of its turn, or nothing at all.
STARVED_FRACTION = 0.1
#: Safety bounds: load loops on loopback stay bounded in time and size.
MAX_CONCURRENCY = 2000
MAX_DURATION = 600.0
MAX_REQUESTS = 10_000_000

METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")


class LoadConfigError(ValueError):
    """The load description is unusable (bad URL, bad numbers); the message says why."""


@dataclass
class LoadConfig:
    """What to send, how hard and for how long."""

    url: str
    method: str = "GET"
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    concurrency: int = 10
    requests: int | None = None
    duration: float | None = None
    keepalive: bool = True
    timeout: float = 10.0
    #: Worker processes; 0 runs the loop in a thread of this process, None picks one per core.
    processes: int | None = None

    def validated(self) -> LoadConfig:
        """Return self after checking every field; raise LoadConfigError with a readable reason."""
        self.method = self.method.upper().strip()
        if not self.method or not self.method.isalpha():
            raise LoadConfigError(f"bad method {self.method!r}")
        target_of(self.url)  # raises on a bad URL
        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise LoadConfigError(f"concurrency must be 1..{MAX_CONCURRENCY}")
        if self.requests is not None and self.duration is not None:
            raise LoadConfigError("give a request count or a duration, not both")
        if self.requests is None and self.duration is None:
            self.requests = 1000
        if self.requests is not None and not 1 <= self.requests <= MAX_REQUESTS:
            raise LoadConfigError(f"request count must be 1..{MAX_REQUESTS}")
        if self.duration is not None and not 0 < self.duration <= MAX_DURATION:
            raise LoadConfigError(f"duration must be between 0 and {MAX_DURATION:.0f} s")
        if self.timeout <= 0:
            raise LoadConfigError("timeout must be positive")
        if self.processes is not None and self.processes < 0:
            raise LoadConfigError("processes must be 0 or more")
        return self


@dataclass(frozen=True)
class Target:
    """Where the load goes: address to connect to and the request-target to ask for."""

    host: str
    port: int
    path: str
    host_header: str


def target_of(url: str) -> Target:
    """Split an http:// URL into a Target; only plain HTTP (the generator never does TLS)."""
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise LoadConfigError(f"bad URL {url!r}: {exc}") from None
    if parts.scheme != "http":
        raise LoadConfigError(f"bad URL {url!r}: only http:// is supported by the load generator")
    if not parts.hostname:
        raise LoadConfigError(f"bad URL {url!r}: no host")
    port = port or 80
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    host_header = parts.hostname if port == 80 else f"{parts.hostname}:{port}"
    if ":" in parts.hostname:
        host_header = f"[{parts.hostname}]" + ("" if port == 80 else f":{port}")
    return Target(parts.hostname, port, path, host_header)


def build_request(config: LoadConfig, target: Target) -> bytes:
    """The exact bytes every request puts on the wire (same for all, as wrk does)."""
    lines = [f"{config.method} {target.path} HTTP/1.1", f"Host: {target.host_header}"]
    names = {name.lower() for name in config.headers}
    if "user-agent" not in names:
        lines.append("User-Agent: workbench-loadgen")
    for name, value in config.headers.items():
        lines.append(f"{name}: {value}")
    wants_length = config.body or config.method in ("POST", "PUT", "PATCH")
    if wants_length and "content-length" not in names:
        lines.append(f"Content-Length: {len(config.body)}")
    if not config.keepalive and "connection" not in names:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + config.body


# ---------------------------------------------------------------------------
# Statistics


def percentile_of_counts(counts: Counter, total: int, percent: float) -> int:
    """Nearest-rank percentile of a multiset given as value -> count (0 when empty).

    The smallest recorded value v such that at least ``percent`` % of the samples
    are <= v; that is what wrk/HdrHistogram report, without interpolation.
    """
    if total <= 0:
        return 0
    # round() first: 99.9 / 100 * 1000 is 999.0000000000001 in floating point.
    rank = max(1, math.ceil(round(percent * total / 100.0, 9)))
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        if seen >= rank:
            return value
    return max(counts)


def histogram_bins(counts: Counter, bins: int = 20) -> list[tuple[int, int, int]]:
    """Group latencies (µs) into ``bins`` log-spaced ranges: (low_us, high_us, count).

    Log spacing keeps both the 100 µs body of a loopback run and its 50 ms tail
    readable in one picture.
    """
    if not counts:
        return []
    low, high = min(counts), max(counts)
    if low == high:
        return [(low, high, sum(counts.values()))]
    log_low, log_high = math.log(max(low, 1)), math.log(max(high, 2))
    width = (log_high - log_low) / bins or 1.0
    edges = [round(math.exp(log_low + width * index)) for index in range(bins + 1)]
    edges[0], edges[-1] = low, high
    totals = [0] * bins
    for value, count in counts.items():
        index = int((math.log(max(value, 1)) - log_low) / width) if value > low else 0
        totals[min(max(index, 0), bins - 1)] += count
    return [(edges[index], edges[index + 1], totals[index]) for index in range(bins)]


@dataclass(frozen=True)
class LoadSnapshot:
    """An immutable picture of a run so far: safe to hand to another thread."""

    url: str
    method: str
    concurrency: int
    keepalive: bool
    processes: int
    planned_requests: int | None
    planned_duration: float | None
    elapsed: float
    completed: int
    succeeded: int
    failed: int
    bytes_received: int
    requests_per_second: float
    rate_series: tuple[float, ...]
    percentiles_ms: dict[str, float]
    mean_ms: float
    min_ms: float
    max_ms: float
    histogram: tuple[tuple[float, float, int], ...]
    statuses: dict[int, int]
    errors: dict[str, int]
    finished: bool
    stopped_early: bool = False
    #: Responses each connection got, one entry per client connection (fairness).
    answered_per_connection: tuple[int, ...] = ()
    #: Requests still waiting for an answer when the run ended (not in the latencies).
    unanswered: int = 0
    #: How long the oldest of them had waited, ms.
    longest_unanswered_ms: float = 0.0

    @property
    def fair_share(self) -> float:
        """Answers each connection would have got if the server had shared its time evenly."""
        counts = self.answered_per_connection
        return sum(counts) / len(counts) if counts else 0.0

    @property
    def starved_connections(self) -> int:
        """Connections served less than STARVED_FRACTION of a fair share (0 answers counts)."""
        floor = STARVED_FRACTION * self.fair_share
        return sum(1 for count in self.answered_per_connection if count == 0 or count < floor)

    @property
    def progress(self) -> float:
        """Fraction done, 0..1, by count or by time."""
        if self.finished:
            return 1.0
        if self.planned_requests:
            return min(1.0, self.completed / self.planned_requests)
        if self.planned_duration:
            return min(1.0, self.elapsed / self.planned_duration)
        return 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["statuses"] = {str(code): count for code, count in self.statuses.items()}
        data["histogram"] = [
            {"low_ms": low, "high_ms": high, "count": count} for low, high, count in self.histogram
        ]
        data["rate_series"] = list(self.rate_series)
        data["answered_per_connection"] = list(self.answered_per_connection)
        data["starved_connections"] = self.starved_connections
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_csv(self) -> str:
        """Long format ``section,key,value`` so one csv.DictReader reads every figure."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["section", "key", "value"])
        for key in (
            "url",
            "method",
            "concurrency",
            "keepalive",
            "processes",
            "elapsed",
            "completed",
            "succeeded",
            "failed",
            "bytes_received",
            "requests_per_second",
            "mean_ms",
            "min_ms",
            "max_ms",
            "unanswered",
            "longest_unanswered_ms",
            "starved_connections",
        ):
            writer.writerow(["summary", key, getattr(self, key)])
        for name, value in self.percentiles_ms.items():
            writer.writerow(["percentile", name, value])
        for code, count in sorted(self.statuses.items()):
            writer.writerow(["status", code, count])
        for kind, count in sorted(self.errors.items()):
            writer.writerow(["error", kind, count])
        for low, high, count in self.histogram:
            writer.writerow(["histogram", f"{low}-{high}", count])
        for index, count in enumerate(self.answered_per_connection):
            writer.writerow(["connection", index, count])
        return out.getvalue()

    def summary_text(self) -> str:
        """The plain-text summary the CLI prints (oha-like)."""
        lines = [
            f"{self.method} {self.url}  concurrency={self.concurrency}  "
            f"keep-alive={'on' if self.keepalive else 'off'}  processes={self.processes}",
            f"  requests     {self.completed} in {self.elapsed:.2f} s"
            f"  ({self.succeeded} ok, {self.failed} failed)"
            + ("  [stopped early]" if self.stopped_early else ""),
            f"  throughput   {self.requests_per_second:,.0f} req/s"
            f"  {self.bytes_received / max(self.elapsed, 1e-9) / 1e6:.2f} MB/s",
            f"  latency ms   min {self.min_ms:.3f}  mean {self.mean_ms:.3f}  max {self.max_ms:.3f}",
            "  percentiles  "
            + "  ".join(f"{name} {value:.3f}" for name, value in self.percentiles_ms.items()),
        ]
        if self.answered_per_connection:
            lines.append("  fairness     " + describe_fairness(self))
        if self.unanswered and self.longest_unanswered_ms > self.max_ms:
            # Only worth a line when a wait outlasted every answer: then the
            # percentiles, made of answered requests only, hide it.
            lines.append(
                f"  unanswered   {self.unanswered} request(s) still waiting at the end,"
                f" the oldest for {self.longest_unanswered_ms:,.0f} ms (not in the latencies)"
            )
        if self.statuses:
            lines.append(
                "  status       "
                + "  ".join(f"{code}: {count}" for code, count in sorted(self.statuses.items()))
            )
        if self.errors:
            lines.append(
                "  errors       "
                + "  ".join(f"{kind}: {count}" for kind, count in sorted(self.errors.items()))
            )
        if self.histogram:
            lines.append("  histogram (ms)")
            peak = max(count for _, _, count in self.histogram) or 1
            for low, high, count in self.histogram:
                bar = "#" * max(0, round(40 * count / peak))
                lines.append(f"    {low:9.3f} - {high:9.3f}  {count:8d}  {bar}")
        return "\n".join(lines)


class LoadStats:
    """Merges worker batches; exact latencies kept as a µs -> count multiset."""

    def __init__(self, config: LoadConfig, processes: int) -> None:
        self.config = config
        self.processes = processes
        self.latency_counts: Counter[int] = Counter()
        self.statuses: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.succeeded = 0
        self.failed = 0
        self.bytes_received = 0
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.stopped_early = False
        self._rate_counts: list[int] = []
        #: Per worker: answers per connection so far (each batch carries the running totals).
        self._answered: dict[int, tuple[int, ...]] = {}
        self.unanswered_us: list[int] = []

    @property
    def completed(self) -> int:
        return self.succeeded + self.failed

    def start(self, now: float | None = None) -> None:
        self.started_at = time.monotonic() if now is None else now

    def finish(self, now: float | None = None) -> None:
        self.finished_at = time.monotonic() if now is None else now

    def record_batch(
        self,
        latencies_us: Sequence[int],
        statuses: dict[int, int],
        errors: dict[str, int],
        bytes_received: int,
        now: float | None = None,
        *,
        worker: int = 0,
        answered_per_connection: Sequence[int] | None = None,
        unanswered_us: Sequence[int] = (),
    ) -> None:
        """Add one worker batch; latencies of successful responses only.

        ``answered_per_connection`` is the worker's running total per connection
        (it replaces the last one); ``unanswered_us`` the waits of requests still
        in flight when that worker stopped.
        """
        if answered_per_connection is not None:
            self._answered[worker] = tuple(answered_per_connection)
        self.unanswered_us.extend(unanswered_us)
        self.latency_counts.update(latencies_us)
        self.statuses.update(statuses)
        self.errors.update(errors)
        self.succeeded += len(latencies_us)
        failed = sum(errors.values())
        self.failed += failed
        self.bytes_received += bytes_received
        if self.started_at is not None:
            moment = time.monotonic() if now is None else now
            slot = int(max(0.0, moment - self.started_at) / RATE_STEP)
            while len(self._rate_counts) <= slot:
                self._rate_counts.append(0)
            self._rate_counts[slot] += len(latencies_us) + failed

    def elapsed(self, now: float | None = None) -> float:
        if self.started_at is None:
            return 0.0
        end = self.finished_at
        if end is None:
            end = time.monotonic() if now is None else now
        return max(0.0, end - self.started_at)

    def _rate_series(self, elapsed: float) -> tuple[float, ...]:
        """Requests/s per RATE_STEP slot, without the fake dip of a slot still filling."""
        counts = self._rate_counts
        if not counts:
            return ()
        if self.finished_at is None:
            counts = counts[:-1]  # the current slot is still filling
            return tuple(count / RATE_STEP for count in counts)
        last_length = elapsed - (len(counts) - 1) * RATE_STEP
        if len(counts) > 1 and last_length < RATE_STEP / 2:
            # A sliver at the end (mostly the last batches arriving): not a rate.
            return tuple(count / RATE_STEP for count in counts[:-1])
        last_rate = counts[-1] / min(max(last_length, 1e-3), RATE_STEP)
        return tuple(count / RATE_STEP for count in counts[:-1]) + (last_rate,)

    def snapshot(self, now: float | None = None) -> LoadSnapshot:
        elapsed = self.elapsed(now)
        total = self.succeeded
        counts = self.latency_counts
        to_ms = 1000.0
        percentiles = {
            _percentile_name(p): percentile_of_counts(counts, total, p) / to_ms for p in PERCENTILES
        }
        percentiles["max"] = (max(counts) if counts else 0) / to_ms
        mean = sum(value * count for value, count in counts.items()) / total if total else 0.0
        rates = self._rate_series(elapsed)
        return LoadSnapshot(
            url=self.config.url,
            method=self.config.method,
            concurrency=self.config.concurrency,
            keepalive=self.config.keepalive,
            processes=self.processes,
            planned_requests=self.config.requests,
            planned_duration=self.config.duration,
            elapsed=elapsed,
            completed=self.completed,
            succeeded=self.succeeded,
            failed=self.failed,
            bytes_received=self.bytes_received,
            requests_per_second=self.completed / elapsed if elapsed > 0 else 0.0,
            rate_series=rates,
            percentiles_ms=percentiles,
            mean_ms=mean / to_ms,
            min_ms=(min(counts) if counts else 0) / to_ms,
            max_ms=percentiles["max"],
            histogram=tuple(
                (low / to_ms, high / to_ms, count) for low, high, count in histogram_bins(counts)
            ),
            statuses=dict(sorted(self.statuses.items())),
            errors=dict(sorted(self.errors.items())),
            finished=self.finished_at is not None,
            stopped_early=self.stopped_early,
            answered_per_connection=tuple(
                count for worker in sorted(self._answered) for count in self._answered[worker]
            ),
            unanswered=len(self.unanswered_us),
            longest_unanswered_ms=max(self.unanswered_us, default=0) / to_ms,
        )


def describe_fairness(snapshot: LoadSnapshot) -> str:
    """How evenly the connections were served: min/max answers and the starved count."""
    counts = snapshot.answered_per_connection
    if not counts:
        return "-"
    if not any(counts):
        return f"no answer yet on any of the {len(counts)} connections"
    text = (
        f"answers per connection min {min(counts):,} max {max(counts):,}"
        f" (fair share {snapshot.fair_share:,.0f})"
    )
    starved = snapshot.starved_connections
    if starved:
        text += (
            f"; {starved} of {len(counts)} connections starved"
            f" (under {STARVED_FRACTION:.0%} of a fair share)"
        )
    return text


def _percentile_name(percent: float) -> str:
    return f"p{percent:g}"


# ---------------------------------------------------------------------------
# The worker: one epoll loop over many connections (runs in a child process or a thread)

_CONNECTING, _SENDING, _RECEIVING = 1, 2, 3
_NO_BODY_STATUSES = frozenset({204, 304})


class _Connection:
    __slots__ = ("sock", "fd", "state", "started_ns", "pending", "buffer", "uses", "answered")

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.fd = -1
        self.state = 0
        self.started_ns = 0
        self.pending = b""
        self.buffer = b""
        self.uses = 0
        #: Responses this client slot received over the whole run, across reconnects.
        self.answered = 0


def _error_kind(code: int) -> str:
    return {
        errno.ECONNREFUSED: "refused",
        errno.ECONNRESET: "reset",
        errno.EPIPE: "reset",
        errno.ETIMEDOUT: "timeout",
        errno.EHOSTUNREACH: "unreachable",
        errno.ENETUNREACH: "unreachable",
        errno.EADDRNOTAVAIL: "no local port",
        errno.EMFILE: "too many open files",
    }.get(code, errno.errorcode.get(code, f"errno {code}").lower())


def _response_length(head: bytes, method_is_head: bool) -> tuple[int, int, bool]:
    """(status, body length or -1 for chunked / -2 for until-close, server wants close)."""
    status = int(head[9:12])
    lower = head.lower()
    closing = b"\nconnection: close" in lower or head.startswith(b"HTTP/1.0")
    if method_is_head or status in _NO_BODY_STATUSES or status < 200:
        return status, 0, closing
    at = lower.find(b"\ncontent-length:")
    if at >= 0:
        end = lower.find(b"\r", at + 16)
        return status, int(lower[at + 16 : end if end >= 0 else None]), closing
    if b"\ntransfer-encoding: chunked" in lower:
        return status, -1, closing
    return status, -2, True


def _chunked_complete(body: bytes) -> bool:
    """True when a chunked body (without trailers of interest) has ended."""
    position = 0
    while True:
        line_end = body.find(b"\r\n", position)
        if line_end < 0:
            return False
        size = int(body[position:line_end].split(b";")[0], 16)
        if size == 0:
            return body.find(
                b"\r\n\r\n", line_end - 2 if line_end >= 2 else 0
            ) >= 0 or body.endswith(b"\r\n\r\n")
        position = line_end + 2 + size + 2
        if position > len(body):
            return False


@dataclass
class _WorkerPlan:
    host: str
    port: int
    request: bytes
    method_is_head: bool
    connections: int
    quota: int | None
    duration: float | None
    keepalive: bool
    timeout: float


def _drive_load(plan: _WorkerPlan, report: Any, start: Any, stop: Any) -> None:
    """Send ``plan`` until its quota or duration runs out; ship batches through ``report``.

    Why a hand-written epoll loop: httpx costs ~100 µs a request in Python, a raw
    non-blocking loop a few µs, and the generator must not be the bottleneck.
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
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.sock, conn.fd, conn.uses = sock, sock.fileno(), 0
        conn.state, conn.started_ns, conn.buffer = _CONNECTING, perf_ns(), b""
        connections[conn.fd] = conn
        code = sock.connect_ex(address)
        if code not in (0, errno.EINPROGRESS):
            close_connection(conn)
            fail(conn, _error_kind(code))
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

    def send_request(conn: _Connection, fresh: bool) -> None:
        if not fresh:
            conn.started_ns = perf_ns()
        try:
            sent = conn.sock.send(request)
        except OSError as exc:
            fail(conn, _error_kind(exc.errno or 0))
            return
        conn.uses += 1
        if sent < len(request):
            conn.pending, conn.state = request[sent:], _SENDING
            poller.modify(conn.fd, EPOLLOUT)
        else:
            conn.state = _RECEIVING
            if fresh:
                poller.modify(conn.fd, EPOLLIN)

    def complete(conn: _Connection, status: int, closing: bool, size: int) -> None:
        nonlocal received
        latencies.append((perf_ns() - conn.started_ns) // 1000)
        statuses[status] = statuses.get(status, 0) + 1
        received += size
        conn.answered += 1
        conn.buffer = b""
        if keepalive and not closing:
            if take_request():
                send_request(conn, fresh=False)
            else:
                close_connection(conn)
        else:
            close_connection(conn)
            if take_request():
                open_connection(conn)

    def on_readable(conn: _Connection) -> None:
        try:
            data = conn.sock.recv(RECV_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            fail(conn, _error_kind(exc.errno or 0))
            return
        if not data:
            on_closed(conn)
            return
        if conn.buffer:
            if type(conn.buffer) is not bytearray:
                # A response longer than one recv: grow it in place. ``bytes + bytes``
                # copied the whole buffer per recv, quadratic: 2 s for a 20 MiB body.
                conn.buffer = bytearray(conn.buffer)
            conn.buffer += data
        else:
            conn.buffer = data
        settle_buffer(conn)

    def on_closed(conn: _Connection) -> None:
        buffer = conn.buffer
        if buffer:
            head_end = buffer.find(b"\r\n\r\n")
            if head_end >= 0 and _response_length(buffer[: head_end + 2], False)[1] == -2:
                complete(conn, int(buffer[9:12]), True, len(buffer))
                return
        # A kept-alive connection the server closed between requests is
        # what wrk counts as a read error; count it, reconnect, go on.
        fail(conn, "closed by server")

    def settle_buffer(conn: _Connection) -> None:
        buffer = conn.buffer
        head_end = buffer.find(b"\r\n\r\n")
        if head_end < 0:
            conn.buffer = buffer
            return
        try:
            status, length, closing = _response_length(buffer[: head_end + 2], plan.method_is_head)
        except ValueError:
            fail(conn, "bad response")
            return
        body_size = len(buffer) - head_end - 4
        if length >= 0:
            if body_size >= length:
                complete(conn, status, closing, len(buffer))
                return
        elif length == -1:
            try:
                done = _chunked_complete(buffer[head_end + 4 :])
            except ValueError:
                fail(conn, "bad response")
                return
            if done:
                complete(conn, status, closing, len(buffer))
                return
        conn.buffer = buffer

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
    raw_statuses: dict[bytes, int] = {}
    fast_path_ok = keepalive and not plan.method_is_head

    def ship(final: bool) -> None:
        nonlocal received
        for code, count in raw_statuses.items():
            try:
                statuses[int(code)] = statuses.get(int(code), 0) + count
            except ValueError:
                errors["bad response"] = errors.get("bad response", 0) + count
        raw_statuses.clear()
        answered = [slot.answered for slot in slots]
        report.send((latencies.tobytes(), statuses, errors, received, answered, waiting_us, final))
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
                    # Fast path, inlined because it runs once per request: a whole
                    # keep-alive response with a Content-Length in one recv.
                    if fast_path_ok and not conn.buffer:
                        try:
                            data = conn.sock.recv(RECV_SIZE)
                        except BlockingIOError:
                            continue
                        except OSError as exc:
                            fail(conn, _error_kind(exc.errno or 0))
                            continue
                        head_end = data.find(b"\r\n\r\n")
                        at = data.find(b"\r\nContent-Length: ", 0, head_end)
                        if (
                            head_end > 0
                            and at > 0
                            and data.startswith(b"HTTP/1.1 ")
                            and data.find(b"close", 0, head_end) < 0
                        ):
                            line_end = data.find(b"\r", at + 18)
                            length_text = data[at + 18 : line_end]
                            if length_text.isdigit() and len(data) - head_end - 4 >= int(
                                length_text
                            ):
                                latencies_append((perf_ns() - conn.started_ns) // 1000)
                                conn.answered += 1
                                code = data[9:12]
                                raw_statuses[code] = raw_statuses.get(code, 0) + 1
                                received += len(data)
                                if remaining != 0 and not stopping:
                                    if remaining > 0:
                                        remaining -= 1
                                    conn.started_ns = perf_ns()
                                    try:
                                        sent = conn.sock.send(request)
                                    except OSError as exc:
                                        fail(conn, _error_kind(exc.errno or 0))
                                        continue
                                    conn.uses += 1
                                    if sent < len(request):
                                        conn.pending, conn.state = request[sent:], _SENDING
                                        poller.modify(conn.fd, EPOLLOUT)
                                else:
                                    close_connection(conn)
                                continue
                        conn.buffer = data
                        if not data:
                            conn.buffer = b""
                            on_closed(conn)
                        else:
                            settle_buffer(conn)
                        continue
                    on_readable(conn)
                elif state == _CONNECTING:
                    code = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if code or mask & EPOLLERR_HUP:
                        fail(conn, _error_kind(code or errno.ECONNREFUSED))
                    else:
                        send_request(conn, fresh=True)
                elif state == _SENDING:
                    try:
                        sent = conn.sock.send(conn.pending)
                    except OSError as exc:
                        fail(conn, _error_kind(exc.errno or 0))
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


def _worker_process_main(plan: _WorkerPlan, report: Any, start: Any, stop: Any) -> None:
    """Entry point of a spawned worker process."""
    try:
        _drive_load(plan, report, start, stop)
    except KeyboardInterrupt:
        pass
    finally:
        report.close()


# ---------------------------------------------------------------------------
# The parent: start workers, merge batches, call back a few times a second


def default_processes(concurrency: int) -> int:
    """One worker process per core, never more processes than connections."""
    return max(1, min(os.cpu_count() or 1, concurrency))


def _split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if index < extra else 0) for index in range(parts)]


ProgressCallback = Callable[[LoadSnapshot], None]


def run_load(
    config: LoadConfig,
    on_progress: ProgressCallback | None = None,
    stop_event: threading.Event | None = None,
    progress_interval: float = DEFAULT_PROGRESS_INTERVAL,
) -> LoadSnapshot:
    """Run one load test to the end (or until ``stop_event``); return the final snapshot.

    Blocking: call it from a worker thread in a UI. ``on_progress`` is called in
    this thread at most every ``progress_interval`` seconds with a fresh snapshot.
    """
    config.validated()
    target = target_of(config.url)
    processes = (
        default_processes(config.concurrency) if config.processes is None else config.processes
    )
    worker_count = max(1, min(processes, config.concurrency))
    connections = _split(config.concurrency, worker_count)
    quotas: list[int | None]
    if config.requests is not None:
        # Share the count in proportion to connections, and never give a worker
        # more connections than requests (they would sit idle).
        quotas = list(_split(config.requests, worker_count))
        connections = [
            max(1, min(c, q)) if q else 0 for c, q in zip(connections, quotas, strict=True)
        ]
    else:
        quotas = [None] * worker_count
    request = build_request(config, target)
    plans = [
        _WorkerPlan(
            host=target.host,
            port=target.port,
            request=request,
            method_is_head=config.method == "HEAD",
            connections=count,
            quota=quota,
            duration=config.duration,
            keepalive=config.keepalive,
            timeout=config.timeout,
        )
        for count, quota in zip(connections, quotas, strict=True)
        if count > 0
    ]
    stats = LoadStats(config, processes=0 if processes == 0 else len(plans))
    if processes == 0:
        start_flag: Any = threading.Event()
        stop_flag: Any = threading.Event()
    else:
        _ensure_resource_tracker()
        context = multiprocessing.get_context("spawn")
        start_flag = context.Event()
        stop_flag = context.Event()
    readers = []
    runners: list[Any] = []
    try:
        for plan in plans:
            reader, writer = multiprocessing.Pipe(duplex=False)
            readers.append(reader)
            if processes == 0:
                runner: Any = threading.Thread(
                    target=_thread_worker_main,
                    args=(plan, writer, start_flag, stop_flag),
                    name="loadgen-worker",
                    daemon=True,
                )
            else:
                runner = context.Process(
                    target=_worker_process_main,
                    args=(plan, writer, start_flag, stop_flag),
                    name="loadgen-worker",
                    daemon=True,
                )
            runner.start()
            if processes != 0:
                writer.close()  # the child holds its copy; EOF then means the child is gone
            runners.append(runner)
        _wait_until_ready(readers)
        stats.start()
        start_flag.set()
        _collect(stats, readers, on_progress, stop_event, stop_flag, progress_interval)
    finally:
        stop_flag.set()
        for runner in runners:
            runner.join(timeout=5)
            if isinstance(runner, multiprocessing.process.BaseProcess) and runner.is_alive():
                runner.kill()
                runner.join(timeout=5)
        for reader in readers:
            reader.close()
    if stats.finished_at is None:
        stats.finish()
    return stats.snapshot()


def _ensure_resource_tracker() -> None:
    """Start multiprocessing's resource tracker with a real stderr.

    Inside a Textual app ``sys.stderr`` is a capture object whose ``fileno()`` is
    -1, and spawning the tracker (needed by the Events below) then fails with
    "bad value(s) in fds_to_keep". Hand it the process's real stderr.
    """
    from multiprocessing import resource_tracker

    captured = sys.stderr
    try:
        try:
            usable = captured.fileno() >= 0
        except (AttributeError, OSError, ValueError):
            usable = False
        if not usable and sys.__stderr__ is not None:
            sys.stderr = sys.__stderr__
        resource_tracker.ensure_running()
    finally:
        sys.stderr = captured


def _wait_until_ready(readers: list[Any], timeout: float = 30.0) -> None:
    """Start the clock only when every worker is up (spawned interpreters take a while)."""
    waiting = list(readers)
    give_up = time.monotonic() + timeout
    while waiting and time.monotonic() < give_up:
        for reader in multiprocessing.connection.wait(waiting, timeout=0.1):
            try:
                reader.recv()
            except (EOFError, OSError):
                pass
            waiting.remove(reader)


def _thread_worker_main(plan: _WorkerPlan, report: Any, start: Any, stop: Any) -> None:
    try:
        _drive_load(plan, report, start, stop)
    finally:
        report.close()


def _collect(
    stats: LoadStats,
    readers: list[Any],
    on_progress: ProgressCallback | None,
    stop_event: threading.Event | None,
    stop_flag: Any,
    progress_interval: float,
) -> None:
    live = list(readers)
    worker_of = {id(reader): index for index, reader in enumerate(readers)}
    next_progress = time.monotonic() + progress_interval
    while live:
        ready = multiprocessing.connection.wait(live, timeout=0.05)
        for reader in ready:
            try:
                message = reader.recv()
            except (EOFError, OSError):
                live.remove(reader)
                continue
            if message == "ready":  # a late starter: its clock started with the others
                continue
            latency_bytes, statuses, errors, received, answered, waiting_us, final = message
            latencies = array("q")
            latencies.frombytes(latency_bytes)
            stats.record_batch(
                latencies,
                statuses,
                errors,
                received,
                worker=worker_of[id(reader)],
                answered_per_connection=answered,
                unanswered_us=waiting_us,
            )
            if final:
                live.remove(reader)
                if not live:
                    stats.finish()
        if stop_event is not None and stop_event.is_set() and not stop_flag.is_set():
            stats.stopped_early = True
            stop_flag.set()
        now = time.monotonic()
        if on_progress is not None and now >= next_progress and live:
            next_progress = now + progress_interval
            on_progress(stats.snapshot(now))


# ---------------------------------------------------------------------------
# CLI: workbench bench URL ...


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench bench",
        description="HTTP load generator (wrk/oha style) with latency percentiles.",
    )
    parser.add_argument("url", help="http://HOST:PORT/PATH")
    parser.add_argument("-c", "--connections", type=int, default=10, help="concurrent connections")
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument("-n", "--requests", type=int, help="total requests (default 1000)")
    amount.add_argument("-d", "--duration", type=float, help="run for SECONDS instead")
    parser.add_argument("-m", "--method", default="GET", help="HTTP method (default GET)")
    parser.add_argument("--body", default="", help="request body (text)")
    parser.add_argument(
        "-H", "--header", action="append", default=[], help="extra header 'Name: value'"
    )
    parser.add_argument(
        "--no-keepalive", action="store_true", help="one connection per request (Connection: close)"
    )
    parser.add_argument(
        "-p", "--processes", type=int, default=None, help="worker processes (default: one per core)"
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="per-request timeout, seconds")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--csv", action="store_true", help="print the result as CSV")
    return parser


def parse_header_lines(lines: Sequence[str]) -> dict[str, str]:
    """'Name: value' strings -> dict; raise LoadConfigError on a line without a colon."""
    headers: dict[str, str] = {}
    for line in lines:
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip() or any(ch.isspace() for ch in name.strip()):
            raise LoadConfigError(f"bad header {line!r}: expected 'Name: value'")
        headers[name.strip()] = value.strip()
    return headers


def cli_main(argv: Sequence[str] | None = None) -> int:
    """``workbench bench``: run a load and print the summary; exit 0 ok, 1 all failed, 2 bad input."""
    parser = build_parser()
    options = parser.parse_args(argv)
    try:
        config = LoadConfig(
            url=options.url,
            method=options.method,
            body=options.body.encode("utf-8"),
            headers=parse_header_lines(options.header),
            concurrency=options.connections,
            requests=options.requests,
            duration=options.duration,
            keepalive=not options.no_keepalive,
            timeout=options.timeout,
            processes=options.processes,
        ).validated()
    except LoadConfigError as exc:
        print(f"workbench bench: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    try:
        snapshot = run_load(config, stop_event=stop)
    except KeyboardInterrupt:
        print("workbench bench: interrupted", file=sys.stderr)
        return 130
    if options.json:
        text = snapshot.to_json() + "\n"
    elif options.csv:
        text = snapshot.to_csv()
    else:
        text = snapshot.summary_text() + "\n"
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # `workbench bench ... | head`: the reader left; that is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0 if snapshot.succeeded or not snapshot.completed else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli_main())
