"""The last-connection sequence, told from a real server's events and sampled kernel states."""

from __future__ import annotations

import re
import socket
import time

import pytest

from workbench.connection_sequence import (
    INFERRED,
    OBSERVED_KERNEL,
    OBSERVED_STATS,
    ConnectionTracker,
    parse_peer,
)
from workbench.server_manager import ServerEvent, ServerManager
from workbench.server_records import ServersSnapshot
from workbench.socket_probe import probe_server, ss_available

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not ss_available(), reason="ss (iproute2) is not installed"),
]


class EventCollector:
    """What the UI would receive from the manager: every event of every batch."""

    def __init__(self) -> None:
        self.events: list[ServerEvent] = []

    def __call__(self, message: object) -> None:
        if isinstance(message, ServersSnapshot):
            self.events.extend(message.events)


@pytest.fixture
def collected(tmp_path):
    (tmp_path / "index.html").write_text("<h1>home</h1>\n")
    manager = ServerManager(publish_interval=0.1, poll_interval=0.2)
    collector = EventCollector()
    manager.open(collector)
    yield manager, collector, tmp_path
    manager.close()


def sample_until(tracker: ConnectionTracker, pid: int, port: int, condition, timeout=10.0):
    """Probe about 20 times a second until ``condition()`` holds, feeding the tracker."""
    deadline = time.monotonic() + timeout
    while True:
        tracker.add_report(probe_server(pid, port))
        if condition():
            return
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.05)


def kinds_for(collector: EventCollector, peer) -> set[str]:
    return {e.kind for e in collector.events if parse_peer(e.detail) == peer}


def test_server_closes_first_tells_the_four_way_close_from_the_servers_side(collected):
    manager, collector, site = collected
    server_id = manager.start("http", "epoll", options={"root": str(site)})
    row = manager.row(server_id)
    tracker = ConnectionTracker()
    with socket.create_connection(("127.0.0.1", row.port), timeout=5) as client:
        peer = client.getsockname()[:2]
        sample_until(tracker, row.pid, row.port, lambda: tracker.samples(peer))
        client.sendall(b"GET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        while client.recv(65536):
            pass
    sample_until(
        tracker,
        row.pid,
        row.port,
        lambda: (
            any(s.state == "TIME_WAIT" for s in tracker.samples(peer))
            and "disconnect" in kinds_for(collector, peer)
        ),
    )
    sequence = tracker.sequence(collector.events)
    assert sequence is not None and sequence.peer == peer
    steps = sequence.steps
    # The handshake was not seen, only inferred; accept() was reported by the server itself.
    assert [s.what for s in steps[:3]] == ["SYN", "SYN+ACK", "ACK"]
    assert all(s.time is None and s.evidence.startswith(INFERRED) for s in steps[:3])
    connect = next(
        e for e in collector.events if e.kind == "connect" and parse_peer(e.detail) == peer
    )
    accept = next(s for s in steps if s.what.startswith("accept()"))
    assert (accept.time, accept.evidence) == (connect.time, OBSERVED_STATS)
    data = [s for s in steps if s.what.startswith("data:")]
    assert [s.what for s in data] == ["data: GET /index.html -> 200"]
    # The server sent the first FIN: its side is the one left in TIME_WAIT, which ss showed.
    fins = [s for s in steps if s.what == "FIN"]
    assert [s.arrow for s in fins] == ["server → client", "client → server"]
    assert fins[0].server_state == "FIN_WAIT1"
    time_wait = next(s for s in steps if s.server_state == "TIME_WAIT" and s.observed)
    assert time_wait.evidence == OBSERVED_KERNEL and time_wait.time is not None
    assert re.fullmatch(r"server side TIME_WAIT for 2×MSL, \d+sec left", time_wait.what)
    # Nothing is called observed without a time, nothing inferred has one.
    assert all((s.time is not None) == s.observed for s in steps)


def test_client_closes_first_puts_time_wait_on_the_clients_side(collected):
    manager, collector, _ = collected
    server_id = manager.start("echo", "threads")
    row = manager.row(server_id)
    tracker = ConnectionTracker()
    client = socket.create_connection(("127.0.0.1", row.port), timeout=5)
    peer = client.getsockname()[:2]
    client.sendall(b"hi\n")
    assert client.recv(16) == b"hi\n"
    sample_until(tracker, row.pid, row.port, lambda: tracker.samples(peer))
    client.close()
    sample_until(
        tracker,
        row.pid,
        row.port,
        lambda: (
            any(s.side == "client" and s.state == "TIME_WAIT" for s in tracker.samples(peer))
            and "disconnect" in kinds_for(collector, peer)
        ),
    )
    steps = tracker.sequence(collector.events).steps
    fins = [s for s in steps if s.what == "FIN"]
    assert [s.arrow for s in fins] == ["client → server", "server → client"]
    observed = next(s for s in steps if s.client_state == "TIME_WAIT" and s.observed)
    assert observed.evidence == OBSERVED_KERNEL
    assert not any(s.server_state == "TIME_WAIT" for s in steps)


def test_a_close_with_no_time_wait_seen_says_so():
    events = [
        ServerEvent("http", 10.0, "connect", "127.0.0.1:5000", 42),
        ServerEvent("http", 10.5, "disconnect", "127.0.0.1:5000", 42),
    ]
    steps = ConnectionTracker().sequence(events).steps
    assert steps[-1].what == "closed — which side sent the first FIN was not seen"
    assert not steps[-1].observed
    assert not any(s.what == "FIN" for s in steps)


def test_no_connection_yet():
    events = [ServerEvent("http", 1.0, "error", "boom", 1)]
    assert ConnectionTracker().sequence(events) is None
    assert parse_peer("[::1]:8080") == ("::1", 8080)
    assert parse_peer("alice") is None


def test_requests_are_marked_uncertain_while_other_connections_of_the_process_are_open():
    events = [
        ServerEvent("http", 1.0, "connect", "127.0.0.1:4000", 42),
        ServerEvent("http", 2.0, "connect", "127.0.0.1:5000", 42),
        ServerEvent("http", 2.1, "request", "GET / -> 200", 42),
        ServerEvent("http", 2.5, "disconnect", "127.0.0.1:5000", 42),
    ]
    [data] = [s for s in ConnectionTracker().sequence(events).steps if s.what.startswith("data")]
    assert "other connections share this pid" in data.evidence
    alone = [e for e in events if e.detail != "127.0.0.1:4000"]
    [data] = [s for s in ConnectionTracker().sequence(alone).steps if s.what.startswith("data")]
    assert data.evidence == OBSERVED_STATS
