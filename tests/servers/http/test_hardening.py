"""Hostile clients: slowloris under epoll, and path traversal attempts that must never leave the root."""

from __future__ import annotations

import select
import socket
import threading
import time

import psutil
import pytest

from servers.contracts import LINGER_SECONDS
from servers.launcher import running_server

SECRET = b"TOP-SECRET-CONTENT"


def request(port: int, target: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    """Send one raw request (the target exactly as given) and read the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status_line = data.split(b"\r\n", 1)[0]
    return int(status_line.split()[1]), data


# -- lingering close ------------------------------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "model",
    ["epoll", "poll", "select", "prefork", "asyncio", "threads", "processes", "pool", "iterative"],
)
def test_an_answer_before_unread_input_ends_in_fin_not_reset(model, tmp_path) -> None:
    # A body too large even to discard (over 64 MiB announced) is refused and the
    # connection ended while its bytes keep arriving. Closed outright, the kernel
    # would answer the unread bytes with RST and the client could lose the 413;
    # half-closed and drained, the client reads the 413 and then a clean EOF.
    head = b"PUT /x HTTP/1.1\r\nHost: t\r\nContent-Length: 104857600\r\n\r\n"
    with running_server("http", model, options={"root": str(tmp_path)}) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(head + b"\0" * (1024 * 1024))
            data = b""
            while chunk := sock.recv(65536):  # raises ConnectionResetError on an RST
                data += chunk
    assert data.startswith(b"HTTP/1.1 413 ")


def _server_sockets_to(server_pid: int, client_port: int) -> list:
    return [
        conn
        for conn in psutil.Process(server_pid).net_connections(kind="tcp")
        if conn.raddr and conn.raddr.port == client_port
    ]


@pytest.mark.timeout(30)
# Each IO-multiplexing model has its own copy of the lingering code: all three are tried.
@pytest.mark.parametrize("model", ["epoll", "poll", "select", "asyncio", "threads"])
def test_a_peer_that_never_closes_is_let_go_after_the_linger_time(model, tmp_path) -> None:
    (tmp_path / "index.html").write_text("bye\n")
    with running_server("http", model, options={"root": str(tmp_path)}) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
            assert data.endswith(b"bye\n")
            client_port = sock.getsockname()[1]
            # We hold our side open: the server drains it for a while, then closes.
            deadline = time.monotonic() + LINGER_SECONDS + 5
            while _server_sockets_to(server.pid, client_port) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _server_sockets_to(server.pid, client_port) == []


# -- slowloris -----------------------------------------------------------------------------

HEADER_TIMEOUT = 2.0
LORIS_COUNT = 200


@pytest.mark.timeout(40)
def test_slowloris_does_not_delay_a_fresh_client_and_is_cut_at_the_header_timeout(tmp_path) -> None:
    (tmp_path / "index.html").write_text("fresh\n")
    options = {"root": str(tmp_path), "header_timeout": HEADER_TIMEOUT}
    with running_server("http", "epoll", options=options) as server:
        lorises = []
        opened_at = time.monotonic()
        for _ in range(LORIS_COUNT):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")
            lorises.append(sock)
        first_round = threading.Event()
        stop = threading.Event()

        def trickle() -> None:
            # One more header byte per connection every 0.2 s, until the server answers it.
            trickling = list(lorises)
            while trickling and not stop.is_set():
                answered, _, _ = select.select(trickling, [], [], 0)
                trickling = [sock for sock in trickling if sock not in answered]
                for sock in trickling:
                    try:
                        sock.send(b"X")
                    except OSError:
                        pass
                first_round.set()
                stop.wait(0.2)

        trickler = threading.Thread(target=trickle, daemon=True)
        trickler.start()
        try:
            assert first_round.wait(10)
            started = time.monotonic()
            status, data = request(server.port, b"/", timeout=5)
            fresh_elapsed = time.monotonic() - started
            assert status == 200 and data.endswith(b"fresh\n")
            assert fresh_elapsed < 1.0, f"fresh client waited {fresh_elapsed:.2f} s"

            answers, closed_after = [], []
            for sock in lorises:
                data = b""
                # No RST even when a trickled byte crosses the 408: the server
                # half-closes and drains (its lingering close).
                while chunk := sock.recv(65536):
                    data += chunk
                closed_after.append(time.monotonic() - opened_at)
                answers.append(data.split(b"\r\n", 1)[0])
        finally:
            stop.set()
            trickler.join(5)
            for sock in lorises:
                sock.close()
    assert answers == [b"HTTP/1.1 408 Request Timeout"] * LORIS_COUNT
    # Trickling bytes must not extend the deadline: all cut near the header timeout.
    assert min(closed_after) >= HEADER_TIMEOUT - 0.2
    assert max(closed_after) < HEADER_TIMEOUT + 3.0


# -- path traversal -------------------------------------------------------------------------

TRAVERSALS = [
    b"/../secret.txt",
    b"/../../../../etc/passwd",
    b"/%2e%2e/secret.txt",
    b"/%2E%2E/%2E%2E/etc/passwd",
    b"/..%2fsecret.txt",
    b"/..%2Fsecret.txt",
    b"/%2e%2e%2fsecret.txt",
    b"/sub/../../secret.txt",
    b"/sub/%2e%2e/%2e%2e/secret.txt",
    b"/sub/..%2f..%2fsecret.txt",
    b"/./../secret.txt",
    b"/.%2e/secret.txt",
    b"/%2e./secret.txt",
    b"/..\\secret.txt",
    b"/%5c..%5csecret.txt",
    b"/..%5csecret.txt",
    b"/secret.txt%00.html",
    b"/%00../secret.txt",
    b"/%252e%252e/secret.txt",
    b"/..;/secret.txt",
    b"/....//secret.txt",
    b"/.../secret.txt",
    b"/%c0%ae%c0%ae/secret.txt",
    b"/%e0%80%ae%e0%80%ae/secret.txt",
    b"/..%c0%afsecret.txt",
    b"/..%u2215secret.txt",
    b"../secret.txt",
    b"secret.txt",
    b"http://127.0.0.1/../secret.txt",
    b"http://127.0.0.1/%2e%2e/%2e%2e/etc/passwd",
    b"/%2f..%2f..%2fetc/passwd",
    b"//etc/passwd",
    b"/sub/../../../etc/passwd",
    b"/escape/secret.txt",
    b"/escape/",
    b"/escape/../escape/secret.txt",
    b"/secret-link",
    b"/etc-link/passwd",
    b"/etc-link/",
    b"/sub/%2e%2e/escape/secret.txt",
]


@pytest.fixture
def jailed_root(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET + b"\n")
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "hello.txt").write_text("hello\n")
    (root / "sub" / "page.txt").write_text("page\n")
    (root / "escape").symlink_to(outside, target_is_directory=True)
    (root / "secret-link").symlink_to(outside / "secret.txt")
    (root / "etc-link").symlink_to("/etc", target_is_directory=True)
    (root / "inside-link").symlink_to(root / "hello.txt")
    return root


@pytest.mark.timeout(60)
@pytest.mark.parametrize("model", ["epoll", "threads"])
def test_traversal_attempts_are_all_refused(model, jailed_root) -> None:
    assert len(TRAVERSALS) >= 30
    with running_server("http", model, options={"root": str(jailed_root)}) as server:
        outcomes = {target: request(server.port, target) for target in TRAVERSALS}
        # The jail is not simply "no symlinks": one that stays inside is served.
        allowed_status, allowed = request(server.port, b"/inside-link")
        normal_status, _ = request(server.port, b"/sub/../hello.txt")
    leaks = {
        target: data[:120]
        for target, (_, data) in outcomes.items()
        if SECRET in data or b"root:" in data
    }
    assert leaks == {}
    wrong = {
        target: status for target, (status, _) in outcomes.items() if status not in (400, 403, 404)
    }
    assert wrong == {}
    assert allowed_status == 200 and allowed.endswith(b"hello\n")
    assert normal_status == 200
