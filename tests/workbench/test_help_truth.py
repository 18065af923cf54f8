"""Every figure the F1 help promises about a model holds on the Servers panel of a real running server."""

from __future__ import annotations

import resource
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from servers.registry import MODELS
from workbench.clients.chat import ChatClient
from workbench.help import MODEL_GUIDES, model_help
from workbench.server_manager import ServerManager, ServerRow
from workbench.server_records import ServersSnapshot
from workbench.tabs.servers import COLUMNS, HELP, format_threads

pytestmark = pytest.mark.timeout(60)

#: Clients each test opens: enough to tell "one per connection" from "one".
CLIENTS = 3
#: Workers asked of pool and prefork: fewer than the clients, so "whatever the load" shows.
WORKERS = 2


@pytest.fixture
def manager() -> Iterator[ServerManager]:
    """A fast-refreshing manager whose published batches are kept; every server is stopped after."""
    server_manager = ServerManager(publish_interval=0.2, poll_interval=0.2)
    server_manager.published = []
    server_manager.open(server_manager.published.append)
    yield server_manager
    server_manager.close()


def settle(manager: ServerManager, server_id: str, figures: Callable[[ServerRow], tuple], want):
    """Poll the row the panel gets until ``figures(row) == want``; then return the row."""
    deadline = time.monotonic() + 15
    row = manager.row(server_id)
    while time.monotonic() < deadline:
        row = manager.row(server_id)
        if row is not None and row.state == "running" and figures(row) == want:
            return row
        time.sleep(0.05)
    assert row is not None
    assert figures(row) == want, row
    return row


def published_events(manager: ServerManager, server_id: str) -> list:
    return [
        event
        for message in list(manager.published)
        if isinstance(message, ServersSnapshot)
        for event in message.events
        if event.server_id == server_id
    ]


def wait_for_event(manager: ServerManager, server_id: str, kind: str) -> list:
    """The events published so far, once one of ``kind`` is among them (a poll)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        events = published_events(manager, server_id)
        if any(event.kind == kind for event in events):
            return events
        time.sleep(0.05)
    raise AssertionError(f"no {kind!r} event; got {[e.kind for e in events]}")


def open_echo_clients(port: int, count: int) -> list[socket.socket]:
    return [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]


def echoes(conn: socket.socket) -> bool:
    conn.sendall(b"ping\n")
    return conn.recv(16) == b"ping\n"


def figures_of(row: ServerRow) -> tuple[int, int, int, int, int]:
    return (row.serving_threads, row.helper_threads, row.children, row.active, row.refused)


@pytest.mark.parametrize("model", list(MODELS))
def test_the_help_figures_hold_for_a_running_server(model, manager):
    claims = MODEL_GUIDES[model].figures
    # What the panel shows is what the help prints: the sentence comes from the claims.
    assert claims.describe() in model_help(model)
    server_id = manager.start("echo", model, workers=WORKERS)
    port = manager.row(server_id).port
    conns = open_echo_clients(port, CLIENTS)
    try:
        served = 1 if claims.one_at_a_time else CLIENTS
        if claims.children == "workers" and model == "pool":
            served = WORKERS  # a pool worker serves one client to the end; the rest wait
        assert all(echoes(conn) for conn in conns[:served])
        children = claims.expected_children(served, WORKERS)
        working, helpers = claims.expected_threads(served, children)
        row = settle(manager, server_id, figures_of, (working, helpers, children, served, 0))
        # The OS agrees: psutil's thread count of the tree is the two added up...
        assert row.threads == working + helpers
        assert len(row.process_tree) == 1 + children
        # ...and the table cell reads the way the help says.
        assert format_threads(row) == f"{working}+{helpers}"
    finally:
        for conn in conns:
            conn.close()
    if claims.one_at_a_time:
        # The waiting clients are served one after another, never together.
        settle(manager, server_id, lambda row: row.active, 0)
        assert manager.row(server_id).accepted == CLIENTS


def test_udp_chat_counts_members_not_connections(manager):
    claims = MODEL_GUIDES["datagram"].figures
    assert claims.members_not_connections
    server_id = manager.start("chat", "epoll")  # asked for epoll, UDP runs its datagram loop
    port = manager.row(server_id).port
    members = [ChatClient("127.0.0.1", port, "udp") for _ in range(2)]
    try:
        for index, member in enumerate(members):
            member.login(f"member{index}")
        working, helpers = claims.expected_threads(0, 0)
        row = settle(
            manager,
            server_id,
            lambda row: (
                (row.model, row.transport, row.serving_threads, row.helper_threads)
                + (row.children, row.active)
            ),
            ("datagram", "udp", working, helpers, 0, 2),
        )
        assert format_threads(row) == f"{working}+{helpers}"
        members[1].leave()
        settle(manager, server_id, lambda row: row.active, 1)
    finally:
        for member in members:
            member.close()
    kinds = {event.kind for event in wait_for_event(manager, server_id, "leave")}
    # The event log speaks of joining and leaving a room, never of connections.
    assert {"join", "leave"} <= kinds
    assert not kinds & {"connect", "disconnect"}


def test_the_table_has_the_columns_the_help_names():
    headers = {header for _, header in COLUMNS}
    for column in ("Thr", "Kids", "Conn", "Refused", "Err"):
        assert column in headers
        assert f"*{column}*" in HELP or f"*{column}*" in model_help("select")


@pytest.fixture
def many_descriptors() -> Iterator[None]:
    """Let this process hold more than 1024 client sockets (the server raises its own limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 4096)
    if wanted < 2500:
        pytest.skip(f"hard RLIMIT_NOFILE is {hard}: cannot pass FD_SETSIZE here")
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.timeout(90)
def test_select_refuses_descriptors_from_1024_and_counts_them(manager, many_descriptors):
    assert MODEL_GUIDES["select"].figures.refuses_at_fd_setsize
    assert not MODEL_GUIDES["poll"].figures.refuses_at_fd_setsize
    server_id = manager.start("echo", "select")
    port = manager.row(server_id).port
    conns = open_echo_clients(port, 1100)
    try:
        row = settle(manager, server_id, lambda row: row.accepted + row.refused, 1100)
        assert row.refused > 0
        # Descriptors 0..1023 hold the server's own files and the accepted clients:
        # nobody was accepted at 1024 or above.
        assert row.accepted < 1024
        events = wait_for_event(manager, server_id, "refused")
        reasons = [event.detail for event in events if event.kind == "refused"]
        assert reasons and "FD_SETSIZE (1024)" in reasons[0]
    finally:
        for conn in conns:
            conn.close()
