"""Every concurrency model serves the echo protocol correctly, and its stats say so."""

from __future__ import annotations

import ast
import os
import resource
import socket
import threading
from pathlib import Path

import psutil
import pytest

import servers.models
from servers.launcher import running_server
from servers.registry import MODELS

ALL_MODELS = list(MODELS)
SINGLE_PROCESS_MODELS = ["iterative", "threads", "select", "poll", "epoll", "asyncio"]


def run_clients(count: int, target) -> list[str]:
    """Run ``target(i)`` in ``count`` threads at once; returns the failures."""
    failures: list[str] = []
    start = threading.Barrier(count)

    def body(index: int) -> None:
        try:
            start.wait(timeout=10)
            target(index)
        except Exception as error:  # collected, asserted below
            failures.append(f"client {index}: {error!r}")

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return failures


@pytest.mark.timeout(60)
@pytest.mark.parametrize("model", ALL_MODELS)
def test_fifty_concurrent_clients_get_their_bytes_and_are_counted(model, stats_queue, helpers):
    payloads = {i: (f"client {i} says hello;".encode() * (50 + i)) for i in range(50)}
    with running_server("echo", model, stats_queue=stats_queue, workers=4) as server:

        def client(index: int) -> None:
            assert helpers.round_trip(server.port, payloads[index]) == payloads[index]

        assert run_clients(50, client) == []
        total = sum(len(p) for p in payloads.values())
        snapshot = helpers.snapshot(
            stats_queue,
            lambda s: s["accepted"] == 50 and s["active"] == 0 and s["bytes_out"] == total,
        )
    assert snapshot["bytes_in"] == total
    assert snapshot["model"] == model
    assert snapshot["protocol"] == "echo"
    assert snapshot["pid"] == server.pid


@pytest.mark.parametrize("model", ALL_MODELS)
def test_idle_timeout_fires_under_every_model(model):
    # The handler's deadline must reach tick() whichever model drives it.
    with running_server("echo", model, options={"idle_timeout": 0.3}) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
            conn.sendall(b"ping")
            received = b""
            while chunk := conn.recv(1024):
                received += chunk
    assert received == b"pingbye: idle timeout\n"


@pytest.mark.parametrize("model", SINGLE_PROCESS_MODELS)
def test_announcement_is_pushed_to_connected_clients(model):
    with running_server("echo", model) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
            conn.sendall(b"x")
            assert conn.recv(16) == b"x"  # connected and registered
            server.send_control({"type": "announce", "text": "class starts"})
            assert conn.recv(1024) == b"announce: class starts\n"


def test_line_mode_holds_partial_lines():
    with running_server("echo", "epoll", options={"mode": "lines"}) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
            conn.sendall(b"one\ntw")
            assert conn.recv(1024) == b"one\n"
            conn.sendall(b"o\nthree\n")
            received = b""
            while received != b"two\nthree\n":
                chunk = conn.recv(1024)
                assert chunk, f"closed early after {received!r}"
                received += chunk


@pytest.mark.timeout(90)
def test_processes_model_leaves_no_zombies(stats_queue, helpers):
    with running_server("echo", "processes", stats_queue=stats_queue) as server:
        for i in range(100):
            assert helpers.round_trip(server.port, b"%d" % i) == b"%d" % i
        helpers.snapshot(stats_queue, lambda s: s["accepted"] == 100 and not s["children"])
        children = psutil.Process(server.pid).children()
        zombies = [c.pid for c in children if c.status() == psutil.STATUS_ZOMBIE]
        assert zombies == []
        assert children == []


@pytest.mark.parametrize("model,workers", [("pool", 3), ("prefork", 2)])
def test_worker_count_is_configurable(model, workers, stats_queue, helpers):
    with running_server("echo", model, workers=workers, stats_queue=stats_queue) as server:
        snapshot = helpers.snapshot(stats_queue, lambda s: len(s["children"]) == workers)
        assert sorted(c.pid for c in psutil.Process(server.pid).children()) == snapshot["children"]


def test_pool_replaces_a_worker_that_dies(stats_queue, helpers):
    with running_server("echo", "pool", workers=2, stats_queue=stats_queue) as server:
        first = helpers.snapshot(stats_queue, lambda s: len(s["children"]) == 2)["children"]
        os.kill(first[0], 9)
        replaced = helpers.snapshot(
            stats_queue, lambda s: len(s["children"]) == 2 and first[0] not in s["children"]
        )
        assert replaced["errors"] >= 1
        assert helpers.round_trip(server.port, b"still here") == b"still here"


@pytest.fixture
def many_descriptors():
    """Raise the soft RLIMIT_NOFILE so this process and its servers can pass 1024 fds."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 8192)
    if wanted < 3000:
        pytest.skip(f"hard RLIMIT_NOFILE is {hard}: cannot pass FD_SETSIZE here")
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def open_connections(port: int, count: int) -> list[socket.socket]:
    conns = []
    for _ in range(count):
        conns.append(socket.create_connection(("127.0.0.1", port), timeout=10))
    return conns


def connection_is_served(conn: socket.socket, payload: bytes) -> bool:
    try:
        conn.sendall(payload)
        received = b""
        while len(received) < len(payload):
            chunk = conn.recv(65536)
            if not chunk:
                return False
            received += chunk
        return received == payload
    except OSError:
        return False


@pytest.mark.timeout(90)
def test_select_refuses_past_fd_setsize_and_keeps_serving(many_descriptors, stats_queue, helpers):
    with running_server("echo", "select", stats_queue=stats_queue) as server:
        conns = open_connections(server.port, 1100)
        try:
            snapshot = helpers.snapshot(
                stats_queue, lambda s: s["accepted"] + s["refused"] == 1100, timeout=20
            )
            assert snapshot["refused"] > 0
            assert any(
                "FD_SETSIZE" in event[2] for event in snapshot["events"] if event[1] == "refused"
            )
            # The first connections still get their bytes back; a refused one is closed.
            assert connection_is_served(conns[0], b"alive")
            assert connection_is_served(conns[500], b"alive")
            assert not connection_is_served(conns[-1], b"refused?")
            fresh_refusals = snapshot["refused"]
        finally:
            for conn in conns:
                conn.close()
        # With the crowd gone, a new client is served again.
        helpers.snapshot(stats_queue, lambda s: s["active"] == 0, timeout=20)
        assert helpers.round_trip(server.port, b"after") == b"after"
        assert fresh_refusals == 1100 - snapshot["accepted"]


@pytest.mark.timeout(90)
def test_epoll_serves_the_load_select_refuses(many_descriptors, stats_queue, helpers):
    with running_server("echo", "epoll", stats_queue=stats_queue) as server:
        conns = open_connections(server.port, 1100)
        try:
            helpers.snapshot(stats_queue, lambda s: s["active"] == 1100, timeout=20)
            assert all(connection_is_served(conn, b"x") for conn in conns)
        finally:
            for conn in conns:
                conn.close()
        snapshot = helpers.snapshot(stats_queue, lambda s: s["active"] == 0, timeout=20)
        assert snapshot["refused"] == 0


# -- the event-loop models read like the course's lesson --------------------------------------


def socket_calls(path: Path) -> set[str]:
    """Names of the socket and readiness calls made in a module (``x.accept()``, ``os.sendfile()``…)."""
    wanted = {"accept", "recv", "send", "sendfile", "shutdown", "select", "poll", "register"}
    tree = ast.parse(path.read_text())
    return {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in wanted
        # The waker is bookkeeping: another thread's byte that wakes the loop.
        and "waker" not in ast.unparse(node.func.value)
    }


@pytest.mark.parametrize(
    ("model", "readiness"), [("select", "select"), ("poll", "poll"), ("epoll", "poll")]
)
def test_each_event_loop_model_makes_its_own_socket_calls(model, readiness):
    models = Path(servers.models.__file__).parent
    assert socket_calls(models / "_eventloop.py") == set()
    calls = socket_calls(models / f"{model}.py")
    assert {"accept", "recv", "send", "sendfile", "shutdown", readiness} <= calls
