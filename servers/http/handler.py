"""The sans-IO HTTP/1.1 connection handler (course 4.2 web服务程序实现): requests in, responses out.

One :class:`HttpHandler` per connection, driven by whichever concurrency model
runs the server. It owns a :class:`~servers.http.parser.RequestParser` and
answers every complete request in the bytes it is fed, in order, in one output
list (pipelining); keep-alive, ``Connection: close``, the idle and header
timeouts and ``/api/sleep`` all work through ``deadline()``/``tick()``, so an
event loop arms a timer while a blocking worker simply waits. ``/api/counter``
bumps a module global, showing which requests share one process's memory.

The hot path — a GET for a file answered a moment ago — is one dict lookup for
the cached file, three header probes, and a ready-made response.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qs

from servers.contracts import BaseSansIOHandler, Output, Peer, monotonic
from servers.http.parser import (
    DEFAULT_MAX_BODY,
    EXPECT_CONTINUE,
    HttpError,
    Request,
    RequestParser,
)
from servers.http.responses import (
    CLOSE,
    CONTINUE,
    KEEP_ALIVE_DEFAULT,
    KEEP_ALIVE_HTTP10,
    build_head,
    error_response,
    simple_response,
)
from servers.http.static import (
    CachedFile,
    Listing,
    Redirect,
    StaticSite,
    file_response,
    listing_page,
)
from servers.stats import ServerStats

#: Longest wait ``/api/sleep`` and longest burn ``/api/work`` accept, milliseconds.
MAX_SLEEP_MS = 60_000
MAX_WORK_MS = 10_000
#: Request events with their request line sent to the live panel per second per process;
#: the rest are only counted (a benchmark makes tens of thousands a second).
REQUEST_EVENTS_PER_SECOND = 20
#: Bytes a client may pipeline while ``/api/sleep`` holds its connection.
MAX_HELD_WHILE_WAITING = 256 * 1024
#: A refused body larger than this is not read to its end: the connection just closes.
MAX_DISCARD = 64 * 1024 * 1024

STATIC_METHODS = "GET, HEAD, OPTIONS"
_JSON = "application/json"

#: ``/api/counter``'s count: a plain module global, so the model decides who sees it —
#: every thread of one process shares it, every forked child has its own copy
#: (course 2.3.7: 进程空间独立 / 线程使用全局变量通信).
request_counter = 0
_counter_lock = threading.Lock()


def count_one_more() -> int:
    """Add one to this process's ``request_counter`` and return the new value."""
    global request_counter
    # A lock, because ``+=`` on a global is several bytecodes: threads could lose updates.
    with _counter_lock:
        request_counter += 1
        return request_counter


@dataclass
class HttpConfig:
    """The server's settings (from ``--root``, ``--max-body`` and the timeouts)."""

    root: str
    max_body: int = DEFAULT_MAX_BODY
    #: Idle seconds allowed between two requests on a kept-alive connection.
    keepalive_timeout: float = 15.0
    #: Seconds allowed to send a complete request head (and for each stall inside a body).
    header_timeout: float = 10.0


class HttpService:
    """What all connections of one server process share: settings, site cache, stats."""

    def __init__(self, config: HttpConfig, stats: ServerStats) -> None:
        self.config = config
        self.stats = stats
        self.site = StaticSite(config.root)
        self._event_second = 0
        self._events_left = 0
        self._lock = threading.Lock()

    def new_handler(self, peer: Peer) -> HttpHandler:
        return HttpHandler(self, peer)

    def after_fork(self) -> None:
        """A forked worker starts with an empty cache of its own."""
        self.site.clear()

    def count(self, method: str, target: str, status: int, second: int) -> None:
        """Count one answered request; name it in the event log while the budget lasts."""
        if second != self._event_second:
            self._event_second = second
            self._events_left = REQUEST_EVENTS_PER_SECOND
        if self._events_left > 0:
            self._events_left -= 1
            self.stats.count_request(f"{method} {target[:120]} -> {status}")
        else:
            self.stats.count_request()


class HttpHandler(BaseSansIOHandler):
    """One HTTP/1.1 connection: keep-alive, pipelining, timeouts, static files and /api/."""

    def __init__(self, service: HttpService, peer: Peer) -> None:
        self._service = service
        self._site = service.site
        self._config = service.config
        self._peer = peer
        self._parser = RequestParser(service.config.max_body)
        self.should_close = False
        now = monotonic()
        self._last_activity = now
        # The header clock of the first request starts at connect, so a client
        # that connects and says nothing is timed out like a slow one.
        self._request_started = now
        self._answered = False
        #: The instant the model will call tick(); may be early, never late (see _rearm).
        self._timer = now + self._config.header_timeout
        #: /api/sleep in progress: when it ends, and what to answer then.
        self._sleep_until: float | None = None
        self._sleep_answer: tuple[Request, int, float] | None = None
        #: Bytes of a refused (413) body still to read and drop before closing.
        self._discarding = 0

    # -- the SansIOHandler contract -------------------------------------------------

    def feed(self, data: bytes) -> list[Output]:
        now = monotonic()
        self._last_activity = now
        if self._discarding:
            self._discarding -= len(data)
            if self._discarding <= 0:
                self.should_close = True
            return []
        parser = self._parser
        if parser.idle and self._answered:
            self._request_started = now
        parser.feed(data)
        if self._sleep_until is not None:
            if parser.buffered > MAX_HELD_WHILE_WAITING:
                self._service.stats.count_error("pipelined too far ahead of a pending answer")
                self.should_close = True
            return []
        return self._answer(now)

    def deadline(self) -> float | None:
        if self._sleep_until is not None:
            return self._sleep_until
        return self._timer

    def tick(self, now: float) -> list[Output]:
        if self._sleep_until is not None:
            if now < self._sleep_until:
                return []
            output = self._finish_sleep(now)
            if not self.should_close:
                output.extend(self._answer(now))
            return output
        expiry = self._expiry()
        if now < expiry:
            # The timer fired early (it is only moved forward lazily): re-arm.
            self._timer = expiry
            return []
        self.should_close = True
        if self._discarding or self._parser.idle:
            return []  # an idle keep-alive connection just closes, as nginx does
        timeout = self._config.header_timeout
        self._service.stats.count_error(f"408 request not complete within {timeout:g} s")
        return [error_response(408, f"request not complete within {timeout:g} s", CLOSE)]

    # -- timers -----------------------------------------------------------------------

    def _expiry(self) -> float:
        """When the current wait (idle, head, body, discard) runs out."""
        config = self._config
        parser = self._parser
        if self._discarding or parser.in_body:
            return self._last_activity + config.header_timeout
        if parser.idle and self._answered:
            return self._last_activity + config.keepalive_timeout
        # A new connection gets the header timeout for its first request too.
        return self._request_started + config.header_timeout

    def _rearm(self) -> None:
        # Only ever move the timer *earlier* here. Moving it later on every
        # request would make the event loop push a heap entry per request; an
        # early timer costs one spurious tick() per timeout period instead.
        expiry = self._expiry()
        if expiry < self._timer:
            self._timer = expiry

    # -- answering ------------------------------------------------------------------

    def _answer(self, now: float) -> list[Output]:
        """Answer every complete request buffered, in order, into one output list."""
        output: list[Output] = []
        parser = self._parser
        second = int(time.time())
        while not self.should_close:
            event = parser.next_event()
            if event is None:
                break
            if type(event) is Request:
                self._answered = True
                self._respond(event, output, second)
                if self._sleep_until is not None:
                    return output
                if parser.idle:
                    # The usual end of a batch: the idle timer runs from now.
                    expiry = now + self._config.keepalive_timeout
                    if expiry < self._timer:
                        self._timer = expiry
                    return output
                self._request_started = now
            elif event is EXPECT_CONTINUE:
                output.append(CONTINUE)
            else:
                assert isinstance(event, HttpError)
                self._refuse(event, output)
                break
        self._rearm()
        return output

    def _respond(self, request: Request, output: list[Output], second: int) -> None:
        method = request.method
        target = request.target
        if request.keep_alive:
            connection = KEEP_ALIVE_DEFAULT if request.version == "HTTP/1.1" else KEEP_ALIVE_HTTP10
        else:
            connection = CLOSE
        # The hot path: a file answered within the last second, no conditions or ranges.
        if method == "GET" or method == "HEAD":
            entry = self._site.fresh(target, second)
            if entry is not None:
                headers = request.headers
                if (
                    "if-none-match" not in headers
                    and "if-modified-since" not in headers
                    and "range" not in headers
                ):
                    if method == "GET":
                        output.extend(entry.get_outputs[connection])
                    else:
                        output.append(entry.head_outputs[connection])
                    self._service.count(method, target, 200, second)
                    if connection == CLOSE:
                        self.should_close = True
                    return
        try:
            if target.startswith("/api/") or target == "/api":
                status = self._respond_api(request, connection, output)
            else:
                status = self._respond_static(request, connection, output)
        except HttpError as error:
            status = error.status
            self._service.stats.count_error(f"{status} {error.detail}")
            output.append(
                error_response(
                    status,
                    error.detail,
                    connection,
                    list(error.headers.items()),
                    head_only=method == "HEAD",
                )
            )
        if status:
            self._service.count(method, target, status, second)
        if connection == CLOSE and self._sleep_until is None:
            self.should_close = True

    def _refuse(self, error: HttpError, output: list[Output]) -> None:
        """A request the parser rejected: answer its status and end the connection."""
        self._service.stats.count_error(f"{error.status} {error.detail}")
        output.append(
            error_response(error.status, error.detail, CLOSE, list(error.headers.items()))
        )
        unread = self._parser.unread_body
        if error.status == 413 and 0 < unread <= MAX_DISCARD:
            # Read the rest of the refused body before closing, or closing with
            # unread data would reset the connection and lose the 413.
            self._discarding = unread
            self._last_activity = monotonic()
            self._timer = min(self._timer, self._last_activity + self._config.header_timeout)
        else:
            self.should_close = True

    # -- static files -------------------------------------------------------------------

    def _respond_static(self, request: Request, connection: int, output: list[Output]) -> int:
        method = request.method
        if method == "OPTIONS":
            output.append(build_head(204, [("Allow", STATIC_METHODS)], connection))
            return 204
        if method != "GET" and method != "HEAD":
            raise HttpError(
                405, f"{method} is not allowed on static files", {"Allow": STATIC_METHODS}
            )
        resolution = self._site.resolve(request.target)
        if type(resolution) is CachedFile:
            status, outputs = file_response(resolution, method, request.headers, connection)
            output.extend(outputs)
            return status
        if type(resolution) is Redirect:
            body = f"Moved to {resolution.location}\n".encode()
            output.append(
                simple_response(
                    301,
                    body,
                    connection=connection,
                    extra_headers=[("Location", resolution.location)],
                    head_only=method == "HEAD",
                )
            )
            return 301
        assert isinstance(resolution, Listing)
        page = listing_page(resolution)
        output.append(
            simple_response(
                200,
                page,
                "text/html; charset=utf-8",
                connection,
                [("Cache-Control", "no-cache")],
                head_only=method == "HEAD",
            )
        )
        return 200

    # -- /api/ ------------------------------------------------------------------------

    def _respond_api(self, request: Request, connection: int, output: list[Output]) -> int:
        path, _, query = request.target.partition("?")
        name = path[len("/api/") :].rstrip("/") if path != "/api" else ""
        method = request.method
        if name == "echo":
            return self._json(output, 200, self._echo(request, path, query), connection, method)
        if name == "sleep":
            milliseconds = _milliseconds(query, MAX_SLEEP_MS)
            now = monotonic()
            self._sleep_until = now + milliseconds / 1000
            self._sleep_answer = (request, connection, now)
            return 0  # answered (and counted) when the timer fires
        if method not in ("GET", "HEAD"):
            raise HttpError(405, f"{method} is not allowed on {path}", {"Allow": "GET, HEAD"})
        if name == "stats":
            return self._json(output, 200, self._service.stats.snapshot(), connection, method)
        if name == "work":
            milliseconds = _milliseconds(query, MAX_WORK_MS)
            started = time.perf_counter()
            spent = burn_cpu(milliseconds / 1000)
            answer = {
                "worked_ms": round(spent * 1000, 3),
                "wall_ms": round((time.perf_counter() - started) * 1000, 3),
                "pid": os.getpid(),
                "thread": threading.current_thread().name,
            }
            return self._json(output, 200, answer, connection, method)
        if name == "counter":
            answer = {
                "counter": count_one_more(),
                "pid": os.getpid(),
                "thread": threading.current_thread().name,
            }
            return self._json(output, 200, answer, connection, method)
        if name == "":
            answer = {
                "endpoints": {
                    "/api/echo": "any method: your request back as JSON",
                    "/api/stats": "this server's figures",
                    "/api/sleep?ms=N": "answer after N ms (a timer, or a blocked worker)",
                    "/api/work?ms=N": "use N ms of CPU time before answering (the GIL at work)",
                    "/api/counter": "add 1 to a global of the process that answers and return"
                    " it: threads share one, each forked process counts alone",
                }
            }
            return self._json(output, 200, answer, connection, method)
        raise HttpError(404, f"no API endpoint {path}")

    def _echo(self, request: Request, path: str, query: str) -> dict:
        body = request.body
        try:
            text, encoding = body.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text, encoding = base64.b64encode(body).decode("ascii"), "base64"
        host, port = (tuple(self._peer.address) + ("", ""))[:2]
        return {
            "method": request.method,
            "target": request.target,
            "path": path,
            "query": parse_qs(query, keep_blank_values=True),
            "version": request.version,
            "headers": request.headers,
            "body": text,
            "body_encoding": encoding,
            "body_length": len(body),
            "client": f"{host}:{port}",
        }

    def _finish_sleep(self, now: float) -> list[Output]:
        assert self._sleep_answer is not None and self._sleep_until is not None
        request, connection, started = self._sleep_answer
        self._sleep_until = None
        self._sleep_answer = None
        answer = {"slept_ms": round((now - started) * 1000, 3), "pid": os.getpid()}
        output: list[Output] = []
        self._json(output, 200, answer, connection, request.method)
        self._service.count(request.method, request.target, 200, int(time.time()))
        if connection == CLOSE:
            self.should_close = True
        self._last_activity = now
        self._request_started = now
        self._timer = now + self._config.header_timeout
        return output

    @staticmethod
    def _json(
        output: list[Output], status: int, value: object, connection: int, method: str
    ) -> int:
        body = (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
        output.append(
            simple_response(
                status,
                body,
                _JSON,
                connection,
                [("Cache-Control", "no-store")],
                head_only=method == "HEAD",
            )
        )
        return status


def burn_cpu(seconds: float) -> float:
    """Spin in Python bytecode until this thread has used ``seconds`` of CPU; returns the CPU used.

    Measured in thread CPU time, not wall time, so the GIL shows: ten threads
    asking for 200 ms each need two seconds between them on any number of
    cores, while ten processes share the cores.
    """
    started = time.thread_time()
    end = started + seconds
    total = 0
    while time.thread_time() < end:
        for number in range(1000):
            total += number * number
    return time.thread_time() - started


def _milliseconds(query: str, limit: int) -> int:
    values = parse_qs(query).get("ms")
    if not values:
        raise HttpError(400, "missing ms=N in the query")
    value = values[-1]
    if not (value.isascii() and value.isdigit()) or int(value) > limit:
        raise HttpError(400, f"ms must be a whole number from 0 to {limit}")
    return int(value)
