"""/api/counter: a per-process global — shared by threads, copied by every forked child."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from servers.contracts import Peer
from servers.http import DEFAULT_ROOT
from servers.http.handler import HttpConfig, HttpService
from servers.launcher import running_server
from servers.stats import ServerStats

pytestmark = pytest.mark.timeout(30)


def body_of(raw: bytes) -> dict:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    return json.loads(body)


def ask_counter(service: HttpService) -> dict:
    handler = service.new_handler(Peer(("127.0.0.1", 5555), lambda items: None))
    output = handler.feed(b"GET /api/counter HTTP/1.1\r\nHost: t\r\n\r\n")
    return body_of(b"".join(output))


def fetch_counter_on_a_new_connection(port: int) -> dict:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /api/counter HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        received = bytearray()
        while chunk := sock.recv(65536):
            received += chunk
    return body_of(bytes(received))


@pytest.fixture
def service():
    return HttpService(HttpConfig(root=DEFAULT_ROOT), ServerStats())


def test_each_request_adds_one_to_the_process_global(service) -> None:
    first = ask_counter(service)
    second = ask_counter(service)  # another connection, same process: same global
    assert second["counter"] == first["counter"] + 1
    assert first["pid"] == second["pid"]


def test_threads_lose_no_update_of_the_counter(service) -> None:
    start = ask_counter(service)["counter"]
    threads = [
        threading.Thread(target=lambda: [ask_counter(service) for _ in range(25)]) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert ask_counter(service)["counter"] == start + 100 + 1


def test_the_counter_is_listed_with_the_other_endpoints(service) -> None:
    handler = service.new_handler(Peer(("127.0.0.1", 5555), lambda items: None))
    index = body_of(b"".join(handler.feed(b"GET /api/ HTTP/1.1\r\nHost: t\r\n\r\n")))
    assert "/api/counter" in index["endpoints"]


def test_threads_share_the_counter_and_forked_children_each_start_from_zero() -> None:
    with running_server("http", "threads") as server:
        counts = [fetch_counter_on_a_new_connection(server.port)["counter"] for _ in range(4)]
    assert counts == [1, 2, 3, 4]
    with running_server("http", "processes") as server:
        answers = [fetch_counter_on_a_new_connection(server.port) for _ in range(4)]
    assert [answer["counter"] for answer in answers] == [1, 1, 1, 1]
    assert len({answer["pid"] for answer in answers}) == 4
