"""The HTTP server on real sockets under every concurrency model: curl, httpx, raw pipelining, the API."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time

import httpx
import psutil
import pytest

from servers.launcher import running_server
from servers.registry import MODELS

ALL_MODELS = list(MODELS)
WORKERS = 2
CURL = shutil.which("curl")

pytestmark = pytest.mark.timeout(60)


def make_site(root) -> None:
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_text("<h1>home</h1>\n")
    (root / "hello.txt").write_text("hello, world\n")
    (root / "sub" / "index.html").write_text("<p>sub</p>\n")
    # Large enough to go out with sendfile, in several sends.
    (root / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    make_site(root)
    return root


@pytest.fixture(scope="module", params=ALL_MODELS)
def server(request, site):
    options = {"root": str(site), "max_body": 4096, "header_timeout": 5, "keepalive_timeout": 5}
    with running_server("http", request.param, options=options, workers=WORKERS) as proc:
        proc.model = request.param
        if request.param in ("pool", "prefork"):
            wait_for_workers(proc.pid, WORKERS)
        yield proc


def wait_for_workers(pid: int, count: int, timeout: float = 10.0) -> None:
    """Workers are forked after the ready message: let them all exist before the tests
    (the suite's leak check counts children new since a test began)."""
    deadline = time.monotonic() + timeout
    while len(psutil.Process(pid).children()) < count:
        assert time.monotonic() < deadline, "the workers never started"
        time.sleep(0.02)


def url(server, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


def curl(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CURL, "--silent", "--show-error", "--max-time", "10", *arguments],
        capture_output=True,
        timeout=20,
        check=False,
    )


def read_response(sock: socket.socket, buffer: bytearray) -> tuple[int, dict[str, str], bytes]:
    """Read one response off a raw socket (``buffer`` keeps what belongs to the next)."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response head; got {bytes(buffer)!r}")
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed inside a response body")
        rest += chunk
    buffer[:] = rest[length:]
    return int(status_line.split()[1]), headers, rest[:length]


# -- curl -----------------------------------------------------------------------------


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_curl_get_head_range_and_conditional(server, site) -> None:
    got = curl(url(server, "/hello.txt"))
    assert got.returncode == 0, got.stderr
    assert got.stdout == b"hello, world\n"

    head = curl("--head", url(server, "/hello.txt"))
    assert b"HTTP/1.1 200 OK" in head.stdout and b"Content-Length: 13" in head.stdout
    etag = next(
        line.split(b":", 1)[1].strip()
        for line in head.stdout.splitlines()
        if line.lower().startswith(b"etag:")
    )

    ranged = curl("--range", "7-11", "--write-out", "%{http_code}", url(server, "/hello.txt"))
    assert ranged.stdout == b"world206"

    conditional = curl(
        "--header",
        b"If-None-Match: ".decode() + etag.decode(),
        "--write-out",
        "%{http_code}",
        url(server, "/hello.txt"),
    )
    assert conditional.stdout == b"304"

    big = curl(url(server, "/big.bin"))
    assert big.stdout == (site / "big.bin").read_bytes()


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_curl_reuses_one_connection_for_two_urls(server) -> None:
    got = curl(
        "--write-out",
        "[%{http_code} connects=%{num_connects}]",
        url(server, "/hello.txt"),
        url(server, "/sub/"),
    )
    assert got.returncode == 0, got.stderr
    assert got.stdout == b"hello, world\n[200 connects=1]<p>sub</p>\n[200 connects=0]"


# -- httpx ------------------------------------------------------------------------------


def test_httpx_methods_and_api(server) -> None:
    with httpx.Client(base_url=url(server, ""), timeout=10) as client:
        page = client.get("/")
        assert page.status_code == 200 and page.text == "<h1>home</h1>\n"
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            echoed = client.request(method, "/api/echo?x=1", content=b"body of " + method.encode())
            assert echoed.status_code == 200
            answer = echoed.json()
            assert answer["method"] == method
            assert answer["body"] == f"body of {method}"
            assert answer["query"] == {"x": ["1"]}
        assert client.delete("/hello.txt").status_code == 405
        assert client.get("/nothing-here").status_code == 404
        redirect = client.get("/sub")
        assert redirect.status_code == 301 and redirect.headers["location"] == "/sub/"

        started = time.monotonic()
        slept = client.get("/api/sleep", params={"ms": 200})
        assert slept.status_code == 200
        assert time.monotonic() - started >= 0.2
        assert slept.json()["slept_ms"] >= 200

        worked = client.get("/api/work", params={"ms": 20})
        assert worked.status_code == 200 and worked.json()["wall_ms"] >= 20

        stats = client.get("/api/stats").json()
        assert stats["protocol"] == "http" and stats["model"] == server.model
        assert stats["requests"] >= 1

        too_big = client.post("/api/echo", content=b"x" * 20_000)
        assert too_big.status_code == 413


# -- raw sockets ----------------------------------------------------------------------------


def test_pipelined_requests_are_answered_in_order(server) -> None:
    paths = ["/hello.txt", "/sub/", "/missing", "/api/echo", "/hello.txt"] * 4
    batch = b"".join(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode() for path in paths)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(batch)
        buffer = bytearray()
        answers = [read_response(sock, buffer) for _ in paths]
        # The connection is still open for more.
        sock.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        status, headers, body = read_response(sock, buffer)
        assert (status, headers["connection"], body) == (200, "close", b"hello, world\n")
        assert sock.recv(1024) == b""
    assert [status for status, _, _ in answers] == [200, 200, 404, 200, 200] * 4
    assert answers[0][2] == b"hello, world\n" and answers[1][2] == b"<p>sub</p>\n"
    assert json.loads(answers[3][2])["path"] == "/api/echo"


def test_pipelined_files_to_a_reader_that_waits_arrive_whole_and_in_order(server, site) -> None:
    # 12 MiB of answers overflow loopback's socket buffers before the client
    # reads a byte: the server must hold the rest (sendfile slices behind byte
    # heads) until the socket is writable again, and not lose, reorder or join them.
    paths = ["/big.bin", "/hello.txt", "/big.bin", "/big.bin", "/hello.txt", "/big.bin"]
    batch = b"".join(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode() for path in paths)
    files = {path: (site / path.lstrip("/")).read_bytes() for path in set(paths)}
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(batch)
        buffer = bytearray()
        answers = [read_response(sock, buffer) for _ in paths]
    assert [status for status, _, _ in answers] == [200] * len(paths)
    # Compared as booleans: a 3 MiB mismatch would bury the report.
    matches = [body == files[path] for (_, _, body), path in zip(answers, paths, strict=True)]
    assert matches == [True] * len(paths)


def test_malformed_request_gets_400_and_the_server_keeps_serving(server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"THIS IS NOT HTTP\r\n\r\n")
        status, headers, _ = read_response(sock, bytearray())
        assert status == 400 and headers["connection"] == "close"
        assert sock.recv(1024) == b""
    assert curl(url(server, "/hello.txt")).stdout == b"hello, world\n"


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET / HTTP/3.0\r\nHost: t\r\n\r\n", 505),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: t\r\n" + b"X-Many: yes\r\n" * 120 + b"\r\n", 431),
        (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: br\r\n\r\n", 501),
        (b"POST /api/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 99999\r\n\r\n", 413),
    ],
    ids=["505", "414", "431", "501", "413"],
)
# The statuses come from the sans-IO core, so one event loop and one blocking model suffice.
@pytest.mark.parametrize("server", ["epoll", "threads"], indirect=True)
def test_refusals_over_the_wire(server, raw, status) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(raw)
        assert read_response(sock, bytearray())[0] == status


# -- what the API shows about the models -----------------------------------------------------


def concurrent_gets(port: int, path: str, count: int) -> float:
    """Seconds until ``count`` simultaneous GETs of ``path`` have all been answered."""
    import threading

    barrier = threading.Barrier(count + 1)
    statuses: list[int] = []

    def client() -> None:
        with httpx.Client(timeout=30) as http:
            barrier.wait(timeout=10)
            statuses.append(http.get(f"http://127.0.0.1:{port}{path}").status_code)

    threads = [threading.Thread(target=client) for _ in range(count)]
    for thread in threads:
        thread.start()
    barrier.wait(timeout=10)
    started = time.monotonic()
    for thread in threads:
        thread.join(40)
    elapsed = time.monotonic() - started
    assert statuses == [200] * count
    return elapsed


def test_sleep_is_a_timer_under_epoll_and_blocks_the_iterative_server(site) -> None:
    with running_server("http", "epoll", options={"root": str(site)}) as epoll_server:
        # Ten waits of 300 ms overlap on one thread: far less than the 3 s in series.
        assert concurrent_gets(epoll_server.port, "/api/sleep?ms=300", 10) < 2.0
    with running_server("http", "iterative", options={"root": str(site)}) as iterative:
        # One client at a time: three waits of 200 ms cannot take less than 600 ms.
        assert concurrent_gets(iterative.port, "/api/sleep?ms=200", 3) >= 0.6


def test_work_is_serialised_by_the_gil_under_threads(site) -> None:
    with running_server("http", "threads", options={"root": str(site)}) as server:
        # 150 ms of CPU each, in three threads of one process: one GIL, so >= 450 ms.
        assert concurrent_gets(server.port, "/api/work?ms=150", 3) >= 0.45
