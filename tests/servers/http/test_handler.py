"""The sans-IO HTTP handler, without sockets: responses, keep-alive, pipelining, timers, the API."""

from __future__ import annotations

import json
import os
import time
import types

import pytest

from servers.contracts import FileSlice, Peer
from servers.http.handler import HttpConfig, HttpHandler, HttpService
from servers.http.static import SMALL_FILE
from servers.stats import ServerStats

pytestmark = pytest.mark.timeout(20)


class Response:
    """One parsed response out of the bytes a handler produced."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def __repr__(self) -> str:
        return f"Response({self.status}, {self.headers}, {self.body[:40]!r})"


def read_file_slice(piece: FileSlice) -> bytes:
    with open(piece.path, "rb") as file:
        file.seek(piece.offset)
        return file.read(piece.count)


def flatten(output: list) -> bytes:
    return b"".join(
        read_file_slice(item) if isinstance(item, FileSlice) else item for item in output
    )


def parse_responses(data: bytes, head_only: bool = False) -> list[Response]:
    responses = []
    while data:
        head, _, data = data.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        status = int(status_line.split()[1])
        length = (
            0 if head_only or status in (100, 204, 304) else int(headers.get("content-length", 0))
        )
        responses.append(Response(status, headers, data[:length]))
        data = data[length:]
    return responses


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_text("<h1>home</h1>\n")
    (root / "hello.txt").write_text("hello, world\n")
    (root / "sub" / "page.html").write_text("<p>sub</p>\n")
    (root / "empty").mkdir()
    (root / "big.bin").write_bytes(os.urandom(SMALL_FILE * 3))
    return root


@pytest.fixture
def service(site):
    return HttpService(
        HttpConfig(root=str(site), max_body=1000, keepalive_timeout=5, header_timeout=2),
        ServerStats(),
    )


def connect(service: HttpService) -> HttpHandler:
    return service.new_handler(Peer(("127.0.0.1", 5555), lambda items: None))


def exchange(service: HttpService, raw: bytes, head_only: bool = False) -> list[Response]:
    handler = connect(service)
    return parse_responses(flatten(handler.feed(raw)), head_only)


def get(path: str, *extra: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: test", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_get_a_file_with_its_headers(service) -> None:
    (response,) = exchange(service, get("/hello.txt"))
    assert response.status == 200
    assert response.body == b"hello, world\n"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["content-length"] == "13"
    for name in ("date", "last-modified", "etag", "server"):
        assert response.headers[name]
    assert "connection" not in response.headers


def test_head_sends_the_headers_only(service) -> None:
    handler = connect(service)
    data = flatten(handler.feed(b"HEAD /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n"))
    assert data.endswith(b"\r\n\r\n") and b"hello" not in data
    assert b"Content-Length: 13\r\n" in data


def test_the_second_get_is_the_cached_response(service) -> None:
    handler = connect(service)
    first = handler.feed(get("/hello.txt"))
    second = handler.feed(get("/hello.txt"))
    assert flatten(first) == flatten(second)
    assert second[0] is service.site.fresh("/hello.txt", int(time.time())).get_outputs[0][0]


def test_pipelined_requests_are_answered_in_order_in_one_output(service) -> None:
    handler = connect(service)
    output = handler.feed(get("/hello.txt") + get("/sub/page.html") + get("/missing") + get("/"))
    responses = parse_responses(flatten(output))
    assert [response.status for response in responses] == [200, 200, 404, 200]
    assert responses[1].body == b"<p>sub</p>\n"
    assert responses[3].body == b"<h1>home</h1>\n"
    assert not handler.should_close


def test_connection_close_is_honoured_and_later_requests_ignored(service) -> None:
    handler = connect(service)
    output = handler.feed(get("/hello.txt", "Connection: close") + get("/hello.txt"))
    responses = parse_responses(flatten(output))
    assert len(responses) == 1
    assert responses[0].headers["connection"] == "close"
    assert handler.should_close


def test_http_1_0_closes_unless_asked_to_keep_alive(service) -> None:
    handler = connect(service)
    (response,) = parse_responses(flatten(handler.feed(b"GET /hello.txt HTTP/1.0\r\n\r\n")))
    assert response.headers["connection"] == "close" and handler.should_close
    handler = connect(service)
    raw = b"GET /hello.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    (response,) = parse_responses(flatten(handler.feed(raw)))
    assert response.headers["connection"] == "keep-alive" and not handler.should_close


def test_large_files_go_out_as_file_slices(service, site) -> None:
    handler = connect(service)
    output = handler.feed(get("/big.bin"))
    assert isinstance(output[-1], FileSlice)
    assert output[-1].count == SMALL_FILE * 3
    (response,) = parse_responses(flatten(output))
    assert response.body == (site / "big.bin").read_bytes()


def test_conditional_get_gives_304(service) -> None:
    (first,) = exchange(service, get("/hello.txt"))
    (by_etag,) = exchange(service, get("/hello.txt", f"If-None-Match: {first.headers['etag']}"))
    assert by_etag.status == 304 and by_etag.body == b""
    (weak,) = exchange(service, get("/hello.txt", f'If-None-Match: "x", W/{first.headers["etag"]}'))
    assert weak.status == 304
    (by_date,) = exchange(
        service, get("/hello.txt", f"If-Modified-Since: {first.headers['last-modified']}")
    )
    assert by_date.status == 304
    (other,) = exchange(service, get("/hello.txt", 'If-None-Match: "other"'))
    assert other.status == 200
    (old,) = exchange(
        service, get("/hello.txt", "If-Modified-Since: Mon, 01 Jan 1990 00:00:00 GMT")
    )
    assert old.status == 200


@pytest.mark.parametrize(
    ("range_value", "status", "body", "content_range"),
    [
        ("bytes=0-4", 206, b"hello", "bytes 0-4/13"),
        ("bytes=7-", 206, b"world\n", "bytes 7-12/13"),
        ("bytes=-3", 206, b"ld\n", "bytes 10-12/13"),
        ("bytes=5-100", 206, b", world\n", "bytes 5-12/13"),
        ("bytes=13-", 416, b"", "bytes */13"),
        ("bytes=-0", 416, b"", "bytes */13"),
        ("bytes=4-2", 200, b"hello, world\n", None),
        ("bytes=0-1,3-4", 200, b"hello, world\n", None),
        ("lines=1-2", 200, b"hello, world\n", None),
    ],
)
def test_ranges(service, range_value, status, body, content_range) -> None:
    (response,) = exchange(service, get("/hello.txt", f"Range: {range_value}"))
    assert response.status == status
    assert response.body == body
    assert response.headers.get("content-range") == content_range


def test_range_of_a_large_file_is_a_file_slice(service, site) -> None:
    handler = connect(service)
    output = handler.feed(get("/big.bin", "Range: bytes=100000-100099"))
    assert output[-1] == FileSlice(str(site / "big.bin"), 100000, 100)
    (response,) = parse_responses(flatten(output))
    assert response.status == 206
    assert response.body == (site / "big.bin").read_bytes()[100000:100100]


def test_if_range_mismatch_sends_the_whole_file(service) -> None:
    (response,) = exchange(service, get("/hello.txt", "Range: bytes=0-1", 'If-Range: "stale"'))
    assert response.status == 200 and response.body == b"hello, world\n"


def test_directories(service) -> None:
    (redirect,) = exchange(service, get("/sub?x=1"))
    assert redirect.status == 301 and redirect.headers["location"] == "/sub/?x=1"
    (listing,) = exchange(service, get("/sub/"))
    assert listing.status == 200 and b'href="page.html"' in listing.body
    (empty,) = exchange(service, get("/empty/"))
    assert empty.status == 200 and b"Index of /empty/" in empty.body
    (index,) = exchange(service, get("/"))
    assert index.body == b"<h1>home</h1>\n"


def test_methods_on_static_files(service) -> None:
    (refused,) = exchange(service, b"DELETE /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
    assert refused.status == 405 and refused.headers["allow"] == "GET, HEAD, OPTIONS"
    (options,) = exchange(service, b"OPTIONS /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
    assert options.status == 204 and "GET" in options.headers["allow"]


def test_a_file_changed_on_disk_is_seen_within_a_second(service, site, monkeypatch) -> None:
    import servers.http.static as static

    clock = {"now": 1_000_000.0}
    fake_time = types.SimpleNamespace(
        time=lambda: clock["now"], gmtime=static.time.gmtime, strftime=static.time.strftime
    )
    monkeypatch.setattr(static, "time", fake_time)
    handler = connect(service)
    (before,) = parse_responses(flatten(handler.feed(get("/hello.txt"))))
    (site / "hello.txt").write_text("changed\n")
    (cached,) = parse_responses(flatten(handler.feed(get("/hello.txt"))))
    assert cached.body == before.body  # same second: the cached answer
    clock["now"] += 1
    (after,) = parse_responses(flatten(handler.feed(get("/hello.txt"))))
    assert after.body == b"changed\n"
    assert after.headers["etag"] != before.headers["etag"]


# -- errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"NONSENSE\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505),
        (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: t\r\n" + b"X: y\r\n" * 101 + b"\r\n", 431),
        (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    ],
)
def test_protocol_errors_are_answered_and_close(service, raw, status) -> None:
    handler = connect(service)
    (response,) = parse_responses(flatten(handler.feed(raw)))
    assert response.status == status
    assert response.headers["connection"] == "close"
    assert str(status).encode() in response.body
    assert handler.should_close
    assert service.stats.errors == 1


def test_a_refused_body_is_read_to_its_end_before_closing(service) -> None:
    handler = connect(service)
    output = handler.feed(
        b"POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n" + b"x" * 1000
    )
    (response,) = parse_responses(flatten(output))
    assert response.status == 413
    assert not handler.should_close
    assert handler.feed(b"x" * 3000) == []
    assert not handler.should_close
    handler.feed(b"x" * 1000)
    assert handler.should_close


def test_expect_continue_is_answered_first(service) -> None:
    handler = connect(service)
    head = b"PUT /api/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
    assert handler.feed(head) == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    (response,) = parse_responses(flatten(handler.feed(b"data")))
    assert json.loads(response.body)["body"] == "data"


# -- timers ----------------------------------------------------------------------------


def test_slow_headers_get_408_at_the_header_timeout(service) -> None:
    handler = connect(service)
    assert handler.feed(b"GET / HTTP/1.1\r\nHo") == []
    deadline = handler.deadline()
    assert deadline is not None
    assert handler.tick(deadline - 0.5) == []  # not yet
    (response,) = parse_responses(flatten(handler.tick(deadline)))
    assert response.status == 408
    assert handler.should_close


def test_a_silent_connection_is_closed_at_the_header_timeout(service) -> None:
    connected = time.monotonic()
    handler = connect(service)
    deadline = handler.deadline()
    assert deadline - connected == pytest.approx(service.config.header_timeout, abs=0.5)
    assert handler.tick(deadline) == []
    assert handler.should_close


def test_idle_keep_alive_connection_closes_quietly(service) -> None:
    handler = connect(service)
    handler.feed(get("/hello.txt"))
    # The timer is only moved forward lazily: an early tick re-arms it.
    first = handler.deadline()
    assert handler.tick(first) == [] and not handler.should_close
    second = handler.deadline()
    assert second > first
    assert handler.tick(second) == []
    assert handler.should_close


def test_sleep_answers_when_the_timer_fires_then_serves_what_was_pipelined(service) -> None:
    handler = connect(service)
    output = handler.feed(get("/api/sleep?ms=300") + get("/hello.txt"))
    assert output == []
    deadline = handler.deadline()
    assert handler.tick(deadline - 0.1) == []
    responses = parse_responses(flatten(handler.tick(deadline)))
    assert [response.status for response in responses] == [200, 200]
    assert json.loads(responses[0].body)["slept_ms"] >= 300
    assert responses[1].body == b"hello, world\n"


def test_sleep_with_connection_close_still_answers(service) -> None:
    handler = connect(service)
    assert handler.feed(get("/api/sleep?ms=10", "Connection: close")) == []
    assert not handler.should_close
    (response,) = parse_responses(flatten(handler.tick(handler.deadline())))
    assert response.status == 200 and handler.should_close


# -- the API -------------------------------------------------------------------------------


def test_echo_returns_the_request(service) -> None:
    raw = b"PATCH /api/echo?a=1&b=two HTTP/1.1\r\nHost: t\r\nX-Thing: yes\r\nContent-Length: 5\r\n\r\nhello"
    (response,) = exchange(service, raw)
    assert response.headers["content-type"] == "application/json"
    echoed = json.loads(response.body)
    assert echoed["method"] == "PATCH"
    assert echoed["query"] == {"a": ["1"], "b": ["two"]}
    assert echoed["headers"]["x-thing"] == "yes"
    assert echoed["body"] == "hello"
    assert echoed["client"] == "127.0.0.1:5555"


def test_echo_keeps_binary_bodies_as_base64(service) -> None:
    raw = b"POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\n\xff\x00\xfe"
    (response,) = exchange(service, raw)
    echoed = json.loads(response.body)
    assert echoed["body_encoding"] == "base64" and echoed["body"] == "/wD+"


def test_stats_reports_this_servers_figures(service) -> None:
    handler = connect(service)
    handler.feed(get("/hello.txt") + get("/missing"))
    (response,) = parse_responses(flatten(handler.feed(get("/api/stats"))))
    figures = json.loads(response.body)
    assert figures["requests"] == 2 and figures["errors"] == 1
    assert figures["pid"] == os.getpid()


def test_work_burns_cpu(service) -> None:
    (response,) = exchange(service, get("/api/work?ms=30"))
    answer = json.loads(response.body)
    # CPU time, not wall time: that is what makes the GIL visible under threads.
    assert answer["worked_ms"] >= 30
    assert answer["wall_ms"] >= answer["worked_ms"] - 1


@pytest.mark.parametrize("query", ["", "?ms=", "?ms=abc", "?ms=-1", "?ms=999999999"])
def test_bad_durations_are_400(service, query) -> None:
    (response,) = exchange(service, get(f"/api/sleep{query}"))
    assert response.status == 400
    (response,) = exchange(service, get(f"/api/work{query}"))
    assert response.status == 400


def test_unknown_endpoint_and_method(service) -> None:
    (missing,) = exchange(service, get("/api/nothing"))
    assert missing.status == 404
    (refused,) = exchange(
        service, b"POST /api/stats HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"
    )
    assert refused.status == 405 and refused.headers["allow"] == "GET, HEAD"
    (index,) = exchange(service, get("/api/"))
    assert "/api/echo" in json.loads(index.body)["endpoints"]


def test_requests_are_counted_with_a_bounded_event_log(service) -> None:
    handler = connect(service)
    for _ in range(100):
        handler.feed(get("/hello.txt"))
    assert service.stats.requests == 100
    kinds = [event[1] for event in service.stats._events]
    assert 0 < kinds.count("request") <= 40
