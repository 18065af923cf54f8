"""Servers panel and ServerManager: real servers started, changed, killed and stopped through the UI."""

from __future__ import annotations

import os
import signal
import socket

import psutil
import pytest
from textual.widgets import Log

from tests.helpers.pilot import run_async, wait_until
from tests.helpers.workbench import servers_app
from workbench.app import WorkbenchApp
from workbench.server_manager import ServerManager
from workbench.widgets.event_log import EventLog
from workbench.widgets.process_tree import ProcessTreeView

pytestmark = pytest.mark.timeout(60)

SIZE = (140, 42)


def echo_round_trip(address: tuple[str, int], payload: bytes = b"hello\n") -> socket.socket:
    """Connect, send a line, read the echo; returns the still-open connection."""
    connection = socket.create_connection(address, timeout=5)
    connection.sendall(payload)
    received = b""
    while len(received) < len(payload):
        chunk = connection.recv(1024)
        assert chunk, "server closed the connection"
        received += chunk
    assert received == payload
    return connection


async def focus_table(pilot) -> None:
    table = pilot.app.query_one("#server-table")
    table.focus()
    await wait_until(pilot, lambda: pilot.app.focused is table)


def row_of(app: WorkbenchApp, server_id: str):
    return app.servers_tab.rows.get(server_id)


def is_running(app: WorkbenchApp, server_id: str) -> bool:
    row = row_of(app, server_id)
    return row is not None and row.state == "running" and row.pid is not None


@run_async
async def test_start_shows_a_running_row_and_figures_arrive(manager):
    app = servers_app(manager)
    async with app.run_test(size=SIZE) as pilot:
        app.servers_tab.start_server("echo", "threads")
        await wait_until(pilot, lambda: is_running(app, "echo"))
        address = manager.endpoint("echo")
        assert address is not None
        connection = echo_round_trip(address)
        try:
            # Figures from the server's own stats reporter: one open connection, one accepted.
            await wait_until(pilot, lambda: row_of(app, "echo").active == 1)
            await wait_until(pilot, lambda: row_of(app, "echo").accepted == 1)
            # The psutil poller: under `threads` the open connection has its own thread.
            await wait_until(pilot, lambda: row_of(app, "echo").rss_bytes > 0)
            await wait_until(pilot, lambda: row_of(app, "echo").threads >= 2)
        finally:
            connection.close()
        await wait_until(pilot, lambda: row_of(app, "echo").active == 0)
        # The connect and disconnect events reached the live log of the selected server.
        kinds = {event.kind for event in app.query_one(EventLog).kept_events("echo")}
        assert {"connect", "disconnect"} <= kinds
        table = app.query_one("#server-table")
        assert table.row_count == 1
        assert "running" in str(table.get_cell("echo", "state"))


@run_async
async def test_stop_action_stops_the_process_and_keeps_the_row(manager):
    app = servers_app(manager)
    async with app.run_test(size=SIZE) as pilot:
        app.servers_tab.start_server("echo", "threads")
        await wait_until(pilot, lambda: is_running(app, "echo"))
        pid = row_of(app, "echo").pid
        await focus_table(pilot)
        await pilot.press("x")
        await wait_until(pilot, lambda: row_of(app, "echo").state == "stopped")
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() != "zombie"
        assert manager.endpoint("echo") is None
        # A stopped server comes back with r, on the port it had.
        port = row_of(app, "echo").port
        await focus_table(pilot)
        await pilot.press("r")
        await wait_until(pilot, lambda: is_running(app, "echo"))
        assert row_of(app, "echo").port == port
        echo_round_trip(("127.0.0.1", port)).close()


@run_async
async def test_model_change_restarts_under_processes_with_children_in_the_tree(manager):
    app = servers_app(manager)
    async with app.run_test(size=SIZE) as pilot:
        app.servers_tab.start_server("echo", "threads")
        await wait_until(pilot, lambda: is_running(app, "echo"))
        old_pid = row_of(app, "echo").pid
        app.servers_tab.restart_server("echo", model="processes")
        await wait_until(
            pilot,
            lambda: is_running(app, "echo") and row_of(app, "echo").model == "processes",
        )
        assert row_of(app, "echo").pid != old_pid
        connection = echo_round_trip(manager.endpoint("echo"))
        try:
            # A per-connection child appears in the pstree view...
            await wait_until(pilot, lambda: len(row_of(app, "echo").process_tree) >= 2)
            tree_text = str(app.query_one(ProcessTreeView).render())
            assert "└─" in tree_text
        finally:
            connection.close()
        # ...and vanishes, reaped: no zombie left.
        await wait_until(pilot, lambda: len(row_of(app, "echo").process_tree) == 1)
        assert row_of(app, "echo").zombies == 0


@run_async
async def test_change_form_validates_and_applies(manager):
    app = servers_app(manager)
    async with app.run_test(size=SIZE) as pilot:
        app.servers_tab.start_server("echo", "threads")
        await wait_until(pilot, lambda: is_running(app, "echo"))
        await focus_table(pilot)
        await pilot.press("m")
        await wait_until(
            pilot, lambda: app.screen.id != "_default" and app.screen.query("#form-port")
        )
        app.screen.query_one("#form-workers").value = "zero"
        await pilot.click("#form-submit")
        assert "workers must be a number" in str(app.screen.query_one("#form-error").render())
        app.screen.query_one("#form-model").value = "pool"
        workers_box = app.screen.query_one("#form-workers")
        workers_box.value = "2"
        workers_box.focus()
        await pilot.press("enter")
        await wait_until(
            pilot,
            lambda: is_running(app, "echo") and row_of(app, "echo").model == "pool",
        )
        await wait_until(pilot, lambda: row_of(app, "echo").children == 2)
        assert row_of(app, "echo").workers == 2


@run_async
async def test_kill_9_from_outside_shows_crashed_and_can_restart(manager):
    app = servers_app(manager)
    async with app.run_test(size=SIZE) as pilot:
        app.servers_tab.start_server("echo", "epoll")
        await wait_until(pilot, lambda: is_running(app, "echo"))
        pid = row_of(app, "echo").pid
        os.kill(pid, signal.SIGKILL)
        await wait_until(pilot, lambda: row_of(app, "echo").state == "crashed")
        assert row_of(app, "echo").exit_description == "killed by SIGKILL"
        # The crash is written to the event log too: server id, pid and signal.
        log = app.query_one(EventLog)
        await wait_until(pilot, lambda: any(e.kind == "crash" for e in log.kept_events("echo")))
        [crash] = [e for e in log.kept_events("echo") if e.kind == "crash"]
        assert crash.detail == f"echo (pid {pid}) killed by SIGKILL"
        assert any(
            f"echo (pid {pid}) killed by SIGKILL" in line for line in log.query_one(Log).lines
        )
        assert "crashed SIGKILL" in str(app.query_one("#server-table").get_cell("echo", "state"))
        status = str(app.query_one("#server-status").render())
        assert "echo crashed: killed by SIGKILL — press r to restart it" in status
        assert any("crashed" in n.message for n in app._notifications)
        await focus_table(pilot)
        await pilot.press("r")
        await wait_until(pilot, lambda: is_running(app, "echo"))
        echo_round_trip(manager.endpoint("echo")).close()


@run_async
async def test_second_instance_gets_its_own_row_and_id(manager):
    app = servers_app(manager)
    async with app.run_test(size=SIZE) as pilot:
        app.servers_tab.start_server("echo", "threads")
        await wait_until(pilot, lambda: is_running(app, "echo"))
        app.servers_tab.start_server("echo", "select")
        await wait_until(pilot, lambda: is_running(app, "echo-2"))
        assert row_of(app, "echo-2").model == "select"
        assert row_of(app, "echo").port != row_of(app, "echo-2").port
        # The first instance stays the one the other tabs use.
        assert manager.endpoint("echo") == ("127.0.0.1", row_of(app, "echo").port)
        assert app.query_one("#server-table").row_count == 2


@run_async
async def test_unknown_model_is_a_notification_not_a_crash(manager):
    app = servers_app(manager)
    async with app.run_test(size=SIZE) as pilot:
        app.servers_tab.start_server("echo", "no-such-model")
        await wait_until(pilot, lambda: any("failed" in n.message for n in app._notifications))
        assert manager.server_ids() == []


@run_async
async def test_quit_stops_every_server_leaving_no_child(manager):
    app = servers_app(manager)
    async with app.run_test(size=SIZE) as pilot:
        app.servers_tab.start_server("echo", "processes")
        app.servers_tab.start_server("echo", "pool")
        await wait_until(pilot, lambda: is_running(app, "echo") and is_running(app, "echo-2"))
        connection = echo_round_trip(manager.endpoint("echo"))
        await wait_until(pilot, lambda: len(row_of(app, "echo").process_tree) >= 2)
        server_pids = {
            node.pid for row in app.servers_tab.rows.values() for node in row.process_tree
        }
        await pilot.press("ctrl+q")
    connection.close()
    assert server_pids
    leftover = [pid for pid in server_pids if psutil.pid_exists(pid)]
    assert leftover == [], f"server processes outlived the app: {leftover}"


def test_event_log_filter_and_pause_on_synthetic_events():
    """The log keeps events while paused and filters what it shows."""
    from workbench.server_manager import ServerEvent

    events = [
        ServerEvent("http", 1000.0 + i, kind, detail, 42)
        for i, (kind, detail) in enumerate(
            [("connect", "127.0.0.1:5000"), ("request", "GET /"), ("error", "bad request line")]
        )
    ]
    log = EventLog()
    log.server_id = "http"
    log.paused = True  # not mounted: only the memory is exercised
    log.add_events(events)
    assert log.kept_events("http") == events
    log.filter_text = "error"
    assert [e.kind for e in log._matching(log.kept_events("http"))] == ["error"]


def test_manager_rates_events_and_stale_reports():
    manager = ServerManager()
    from workbench.server_manager import _ManagedServer

    class FakeProcess:
        pid = 111

    server = _ManagedServer("http", "http", "epoll", 8080, None, {})
    server.process = FakeProcess()
    server.state = "running"
    manager._servers["http"] = server
    base = {"type": "snapshot", "server_id": "http", "pid": 111, "events": [], "events_dropped": 0}
    manager.absorb({**base, "time": 10.0, "requests": 100, "bytes_in": 1000, "bytes_out": 0})
    manager.absorb(
        {
            **base,
            "time": 10.5,
            "requests": 150,
            "bytes_in": 2000,
            "bytes_out": 500,
            "active": 3,
            "events": [(10.4, "request", "GET /", 111)],
            "events_dropped": 7,
        }
    )
    # A late report from a previous process of the same server is ignored.
    manager.absorb({**base, "pid": 99, "time": 11.0, "requests": 10_000})
    row = manager.row("http")
    assert row.requests_per_second == pytest.approx(100.0)
    assert row.bytes_in_per_second == pytest.approx(2000.0)
    assert row.bytes_out_per_second == pytest.approx(1000.0)
    assert row.active == 3
    assert row.events_dropped == 7
    published = []
    manager._publish_news = published.append
    manager._publish()
    (message,) = published
    assert [event.detail for event in message.events] == ["GET /"]
    assert message.events_dropped == 7
