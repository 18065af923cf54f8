"""Tests of the raw-socket HTTP client: wire bytes, framing, timings and clean errors."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from workbench.clients.http import (
    MAX_BODY_BYTES,
    METHODS,
    HttpClientError,
    HttpRequest,
    build_request_bytes,
    parse_header_text,
    parse_url,
    save_body,
    send_request,
    to_curl,
    visible_wire_text,
)

pytestmark = pytest.mark.timeout(20)
#: 20 MiB of distinct bytes: longer than the view keeps, so it must be spooled whole.
BIG_BODY = os.urandom(1 << 20) * 20


class _EchoHandler(BaseHTTPRequestHandler):
    """Answers every method with what it received; a few paths exercise framing."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body_in = self.rfile.read(length) if length else b""
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b"hello ", b"chunked ", b"world"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
            return
        if self.path == "/until-close":
            self.close_connection = True
            self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nbody until close")
            return
        if self.path in ("/big.bin", "/big-chunked"):
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            chunked = self.path == "/big-chunked"
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", str(len(BIG_BODY)))
            self.end_headers()
            for start in range(0, len(BIG_BODY), 1 << 20):
                piece = BIG_BODY[start : start + (1 << 20)]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
            return
        if self.path == "/empty":
            self.send_response(204)
            self.end_headers()
            return
        payload = b'{"method": "%s", "path": "%s", "body": "%s", "x_test": "%s"}' % (
            self.command.encode(),
            self.path.encode(),
            body_in,
            (self.headers.get("X-Test") or "").encode(),
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _answer


class _QuietServer(ThreadingHTTPServer):
    request_queue_size = 128  # the default backlog of 5 drops SYNs: 1 s retransmit stalls

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that stop mid-run reset connections; that is expected here


@pytest.fixture
def echo_server() -> Iterator[str]:
    server = _QuietServer(("127.0.0.1", 0), _EchoHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers: the timeout case."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


@pytest.mark.parametrize("method", METHODS)
def test_every_method_round_trips(echo_server: str, method: str) -> None:
    body = b"payload" if method in ("POST", "PUT", "PATCH") else b""
    response = send_request(
        HttpRequest(method, echo_server + "/thing?x=1", [("X-Test", "yes")], body)
    )
    assert response.status == 200
    assert response.status_line == "HTTP/1.1 200 OK"
    assert response.content_type == "application/json"
    if method == "HEAD":
        assert response.body == b""
        assert int(response.header("Content-Length")) > 0
    else:
        assert f'"method": "{method}"'.encode() in response.body
        assert b'"path": "/thing?x=1"' in response.body
        assert b'"x_test": "yes"' in response.body
        assert body in response.body
    assert response.raw_request.startswith(f"{method} /thing?x=1 HTTP/1.1\r\n".encode())
    assert b"\r\n\r\n" in response.raw_request
    assert response.raw_response.startswith(b"HTTP/1.1 200 OK\r\n")
    timings = response.timings
    assert 0 <= timings.connect_ms <= timings.first_byte_ms <= timings.total_ms


def test_raw_response_is_the_exact_wire_bytes(echo_server: str) -> None:
    response = send_request(HttpRequest("GET", echo_server + "/"))
    head, _, body = response.raw_response.partition(b"\r\n\r\n")
    assert body == response.body
    assert all(line for line in head.split(b"\r\n"))  # every header line ends in CRLF


def test_chunked_body_is_decoded_and_raw_kept(echo_server: str) -> None:
    response = send_request(HttpRequest("GET", echo_server + "/chunked"))
    assert response.body == b"hello chunked world"
    assert response.raw_response.endswith(b"0\r\n\r\n")
    assert b"6\r\nhello \r\n" in response.raw_response


def test_body_read_until_close(echo_server: str) -> None:
    response = send_request(HttpRequest("GET", echo_server + "/until-close"))
    assert response.http_version == "HTTP/1.0"
    assert response.body == b"body until close"


def test_no_content_response(echo_server: str) -> None:
    response = send_request(HttpRequest("DELETE", echo_server + "/empty"))
    assert response.status == 204
    assert response.body == b""


def test_refused_is_a_clear_error() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens on this port now
    with pytest.raises(HttpClientError) as caught:
        send_request(HttpRequest("GET", f"http://127.0.0.1:{port}/"))
    assert caught.value.kind == "refused"
    assert "refused" in str(caught.value)


def test_timeout_is_a_clear_error(silent_server: str) -> None:
    with pytest.raises(HttpClientError) as caught:
        send_request(HttpRequest("GET", silent_server + "/", timeout=0.3))
    assert caught.value.kind == "timeout"
    assert "0.3 s" in str(caught.value)


@pytest.mark.parametrize(
    "url", ["", "ftp://127.0.0.1/", "http://", "http://127.0.0.1:99999/", "http://a b/"]
)
def test_bad_urls_are_rejected_before_any_io(url: str) -> None:
    with pytest.raises(HttpClientError) as caught:
        send_request(HttpRequest("GET", url))
    assert caught.value.kind == "bad url"
    assert "bad URL" in str(caught.value)


def test_url_without_scheme_means_http() -> None:
    parsed = parse_url("127.0.0.1:8080/a?b=1")
    assert (parsed.scheme, parsed.host, parsed.port, parsed.target) == (
        "http",
        "127.0.0.1",
        8080,
        "/a?b=1",
    )
    assert parsed.host_header == "127.0.0.1:8080"


def test_request_bytes_follow_the_course_anatomy() -> None:
    raw = build_request_bytes(
        HttpRequest("POST", "http://example.test/form", [("X-A", "1")], b"a=1")
    )
    head, blank, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /form HTTP/1.1"
    assert b"Host: example.test" in lines
    assert b"X-A: 1" in lines
    assert b"Content-Length: 3" in lines
    assert blank == b"\r\n\r\n" and body == b"a=1"


def test_header_editor_text_parsing() -> None:
    assert parse_header_text("Accept: text/html\n\n# comment\nX-Y:  z ") == [
        ("Accept", "text/html"),
        ("X-Y", "z"),
    ]
    with pytest.raises(HttpClientError) as caught:
        parse_header_text("Accept text/html")
    assert "line 1" in str(caught.value)


def test_curl_command_is_shell_quoted() -> None:
    command = to_curl(
        HttpRequest(
            "POST", "http://h/x?a=1&b=2", [("Content-Type", "application/json")], b'{"k": "it\'s"}'
        )
    )
    assert command.startswith("curl -i -X POST -H 'Content-Type: application/json'")
    assert "'http://h/x?a=1&b=2'" in command
    import shlex

    assert shlex.split(command)[-2] == '{"k": "it\'s"}'


def test_visible_wire_text_draws_crlf() -> None:
    assert visible_wire_text(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") == (
        "GET / HTTP/1.1␍␊\nHost: x␍␊\n␍␊\n"
    )
    assert visible_wire_text(b"\x00\xff") == "\\x00\\xff"


@pytest.mark.parametrize("path", ["/big.bin", "/big-chunked"])
def test_a_long_body_arrives_whole_and_can_be_saved(
    echo_server: str, path: str, tmp_path: Path
) -> None:
    response = send_request(HttpRequest("GET", echo_server + path))
    try:
        assert response.body == BIG_BODY[:MAX_BODY_BYTES]  # what the view keeps...
        assert response.body_is_partial and not response.truncated
        assert response.body_length == len(BIG_BODY)  # ...of what arrived: all of it
        assert response.received_bytes > len(BIG_BODY)  # plus the head (and chunk framing)
        assert len(response.raw_response) < response.received_bytes
        assert response.body_file is not None
        saved = save_body(response, tmp_path)
        assert saved == tmp_path / path.lstrip("/")
        assert saved.read_bytes() == BIG_BODY
        again = save_body(response, tmp_path)  # never overwrites
        assert again != saved and again.read_bytes() == BIG_BODY
    finally:
        spooled = response.body_file
        response.release()
    assert spooled is not None and spooled.closed  # an unnamed file: closed is gone


def test_a_short_body_is_saved_from_memory(echo_server: str, tmp_path: Path) -> None:
    response = send_request(HttpRequest("GET", echo_server + "/chunked"))
    assert response.body_file is None and not response.body_is_partial
    assert save_body(response, tmp_path).read_bytes() == b"hello chunked world"


class _CannedServer:
    """Answers one connection with fixed bytes, then closes: framing cases a real server avoids."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return  # closed by the test before anyone connected
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                piece = conn.recv(4096)
                if not piece:
                    return
                request += piece
            conn.sendall(self.answer)

    def close(self) -> None:
        self.listener.close()
        self.thread.join(timeout=5)


@pytest.fixture
def canned() -> Iterator[Callable[[bytes], str]]:
    servers: list[_CannedServer] = []

    def start(answer: bytes) -> str:
        servers.append(_CannedServer(answer))
        return servers[-1].url

    try:
        yield start
    finally:
        for server in servers:
            server.close()


def test_an_informational_head_is_followed_by_the_real_one(canned: Callable[[bytes], str]) -> None:
    answer = (
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    )
    response = send_request(HttpRequest("GET", canned(answer)))
    assert (response.status, response.body) == (200, b"ok")
    assert response.raw_response == answer  # the 103 stays visible in the raw view


def test_chunk_trailers_are_read_and_kept_raw(canned: Callable[[bytes], str]) -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Sum: 1\r\n\r\n"
    )
    response = send_request(HttpRequest("GET", canned(answer)))
    assert response.body == b"ok" and response.raw_response == answer


@pytest.mark.parametrize(
    ("answer", "kind", "words"),
    [
        (b"", "closed", "without answering"),
        (b"HTTP/1.1 200 OK\r\nContent-", "protocol", "mid-headers"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", "protocol", "6 body bytes"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", "protocol", "bad Content-Length"),
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "protocol", "status line"),
    ],
)
def test_a_broken_response_is_a_clear_error(
    canned: Callable[[bytes], str], answer: bytes, kind: str, words: str
) -> None:
    with pytest.raises(HttpClientError) as caught:
        send_request(HttpRequest("GET", canned(answer)))
    assert caught.value.kind == kind
    assert words in str(caught.value)
