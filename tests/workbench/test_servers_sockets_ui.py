"""Servers tab: the socket view, the last-connection sequence, R without SO_REUSEADDR, the honest event log, the announce dialog."""

from __future__ import annotations

import asyncio
import socket

import psutil
import pytest
from textual.widgets import DataTable, Log

from tests.helpers.pilot import run_async, wait_until
from tests.helpers.workbench import QuietServerManager, servers_app
from workbench.app import WorkbenchApp
from workbench.clients.chat import Admin, ChatClient
from workbench.messages import ServersUpdated
from workbench.server_manager import ServerEvent, ServerRow
from workbench.socket_probe import ss_available
from workbench.widgets.announce_dialog import AnnounceScreen
from workbench.widgets.event_log import EVENTS_KEPT, EventLog
from workbench.widgets.socket_view import SequenceView, SocketTable

pytestmark = pytest.mark.timeout(60)

SIZE = (120, 32)
needs_ss = pytest.mark.skipif(not ss_available(), reason="ss (iproute2) is not installed")


@pytest.fixture
def site(tmp_path):
    (tmp_path / "index.html").write_text("<h1>home</h1>\n")
    return tmp_path


def table_states(app: WorkbenchApp) -> list[tuple[str, str]]:
    """(state, remote) of every row the socket table shows."""
    table = app.query_one(SocketTable).query_one(DataTable)
    return [
        (str(table.get_row_at(index)[0]), str(table.get_row_at(index)[2]))
        for index in range(table.row_count)
    ]


def http_get_close(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(b"GET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        while client.recv(65536):  # to EOF: the server sends the first FIN
            pass
        host, port = client.getsockname()[:2]
        return f"{host}:{port}"


@needs_ss
@run_async
async def test_socket_view_time_wait_sequence_and_restart_without_reuse_address(manager, site):
    app = servers_app(manager)
    async with app.run_test(size=SIZE) as pilot:
        server_id = await asyncio.to_thread(
            manager.start, "http", "epoll", options={"root": str(site)}
        )
        await wait_until(pilot, lambda: server_id in app.servers_tab.rows)
        app.servers_tab.select_server(server_id)
        port = manager.row(server_id).port
        app.query_one("#server-table").focus()
        await pilot.press("v")
        assert app.servers_tab.detail_view == "sockets-view"
        # The listener, from psutil (pid, fd) and ss (its backlog limit in Send-Q).
        await wait_until(pilot, lambda: ("LISTEN", "*") in table_states(app))
        table = app.query_one(SocketTable).query_one(DataTable)
        listen = table.get_row_at(0)
        assert listen[5] == str(manager.row(server_id).pid) and listen[4] != "-"

        client = await asyncio.to_thread(http_get_close, port)
        await wait_until(pilot, lambda: ("TIME_WAIT", client) in table_states(app))
        row = next(
            table.get_row_at(i)
            for i in range(table.row_count)
            if str(table.get_row_at(i)[2]) == client
        )
        assert row[5] == "-" and str(row[1]).startswith("2×MSL ")  # no process holds it
        assert "TIME_WAIT 1" in str(app.query_one("#socket-summary").render())

        await pilot.press("v")
        assert app.servers_tab.detail_view == "sequence-view"
        sequence_view = app.query_one(SequenceView)
        await wait_until(pilot, lambda: sequence_view.sequence is not None)
        steps = sequence_view.sequence.steps
        assert f"{sequence_view.sequence.peer[0]}:{sequence_view.sequence.peer[1]}" == client
        assert [s.arrow for s in steps if s.what == "FIN"][0] == "server → client"
        assert any(s.server_state == "TIME_WAIT" and s.observed for s in steps)

        # R: the same port without SO_REUSEADDR — the TIME_WAIT makes the bind fail.
        await pilot.press("R")
        await wait_until(pilot, lambda: app.servers_tab.rows[server_id].state == "failed")
        await wait_until(
            pilot, lambda: any("address already in use" in n.message for n in app._notifications)
        )
        notice = next(n.message for n in app._notifications if "address already" in n.message)
        assert f"a TIME_WAIT socket still holds port {port}" in notice
        assert "SO_REUSEADDR lets a new listener bind anyway" in notice
        status = str(app.query_one("#server-status").render())
        assert "address already in use" in status and "r restarts with SO_REUSEADDR" in status
        # r restarts with SO_REUSEADDR, on the same port, TIME_WAIT or not.
        await pilot.press("r")
        await wait_until(pilot, lambda: app.servers_tab.rows[server_id].state == "running")
        assert manager.row(server_id).port == port


@run_async
async def test_view_keys_show_only_where_they_apply(manager):
    app = servers_app(manager)
    async with app.run_test(size=SIZE) as pilot:
        app.query_one("#server-table").focus()
        await pilot.pause()

        def footer_keys() -> set[str]:
            return {
                binding.key
                for (_, binding, enabled, _) in app.screen.active_bindings.values()
                if enabled
            }

        assert {"p", "slash", "v"} <= footer_keys() and "R" not in footer_keys()
        await pilot.press("v")
        await wait_until(pilot, lambda: "R" in footer_keys())
        assert "p" not in footer_keys()
        await pilot.press("v", "v")
        assert app.servers_tab.detail_view == "events-view"


def flood(app: WorkbenchApp, start: int, batches: int, per_batch: int = 60) -> int:
    row = ServerRow("http", "http", "epoll", port=40003, pid=6000, state="running")
    number = start
    for _ in range(batches):
        events = tuple(
            ServerEvent("http", 1e9 + number + i, "request", f"GET /{number + i}", 6000)
            for i in range(per_batch)
        )
        number += per_batch
        app.post_message(ServersUpdated((row,), events))
    return number


@run_async
async def test_event_log_label_says_live_only_while_the_newest_line_is_on_screen():
    app = WorkbenchApp(
        server_manager=QuietServerManager(), start_servers=False, initial_tab="servers"
    )
    async with app.run_test(size=SIZE) as pilot:
        log_widget = app.query_one(EventLog)
        lines = log_widget.query_one(Log)
        status = log_widget.query_one("#event-status")
        total = flood(app, 0, 40)
        await pilot.pause()
        await wait_until(
            pilot, lambda: lines.lines and lines.lines[-1].endswith(f"GET /{total - 1}")
        )
        await pilot.pause()
        assert log_widget.newest_line_visible
        assert str(status.render()) == "live"

        # The user scrolls up: the label stops saying live and counts what arrives below.
        lines.focus()
        await pilot.press("pageup")
        await wait_until(pilot, lambda: not log_widget.following)
        assert str(status.render()) == "scrolled ↓ End"
        total = flood(app, total, 3)
        await wait_until(pilot, lambda: log_widget.unseen == 180)
        assert str(status.render()) == "180 new lines ↓ End"
        assert not log_widget.newest_line_visible
        assert lines.line_count == EVENTS_KEPT

        # End jumps back: live again, with the newest line on screen.
        await pilot.press("end")
        await wait_until(pilot, lambda: log_widget.following)
        await pilot.pause()
        assert str(status.render()) == "live" and log_widget.newest_line_visible
        total = flood(app, total, 5)
        await wait_until(pilot, lambda: lines.lines[-1].endswith(f"GET /{total - 1}"))
        await pilot.pause()
        assert log_widget.newest_line_visible and str(status.render()) == "live"

        # Paused: nothing is written, the label counts what is waiting.
        app.query_one("#server-table").focus()
        await pilot.press("p")
        flood(app, total, 2)
        await wait_until(pilot, lambda: log_widget.unseen == 120)
        assert str(status.render()) == "PAUSED · 120 new"
        await pilot.press("p")
        await wait_until(pilot, lambda: str(status.render()) == "live")
        assert lines.lines[-1].endswith(f"GET /{total + 119}")
        # The label says it: no toasts, which stacked over that label on quick presses.
        assert not [note for note in app._notifications if "Event log" in note.message]


@run_async
async def test_announce_is_a_dialog_stray_keys_send_nothing(manager):
    app = servers_app(manager)
    async with app.run_test(size=SIZE) as pilot:
        server_id = await asyncio.to_thread(manager.start, "chat", "epoll")
        await wait_until(pilot, lambda: server_id in app.servers_tab.rows)
        member = ChatClient("127.0.0.1", manager.row(server_id).port)
        try:
            await asyncio.to_thread(member.connect)
            await asyncio.to_thread(member.login, "student")
            app.query_one("#server-table").focus()
            await pilot.pause()

            # A stray a then Enter: the dialog refuses empty text, nothing is broadcast.
            await pilot.press("a")
            await wait_until(pilot, lambda: isinstance(app.screen, AnnounceScreen))
            await pilot.press("enter")
            assert isinstance(app.screen, AnnounceScreen)
            assert "Type the announcement first" in str(
                app.screen.query_one("#announce-error").render()
            )
            # Esc cancels, typed text and all.
            await pilot.press("h", "i", "escape")
            await wait_until(pilot, lambda: not isinstance(app.screen, AnnounceScreen))

            await pilot.press("a")
            await wait_until(pilot, lambda: isinstance(app.screen, AnnounceScreen))
            assert app.screen.query_one("#announce-text").value == ""
            app.screen.query_one("#announce-text").value = "exam on Friday"
            await pilot.click("#announce-send")
            await wait_until(pilot, lambda: not isinstance(app.screen, AnnounceScreen))
            received = []

            def admin_arrived() -> bool:
                received.extend(e for e in member.drain() if isinstance(e, Admin))
                return bool(received)

            await wait_until(pilot, admin_arrived)
            assert [e.text for e in received] == ["exam on Friday"]

            # A send that fails loses nothing: the next a offers the text again.
            await asyncio.to_thread(manager.stop, server_id)
            await wait_until(pilot, lambda: app.servers_tab.rows[server_id].state == "stopped")
            await pilot.press("a")
            await wait_until(pilot, lambda: isinstance(app.screen, AnnounceScreen))
            app.screen.query_one("#announce-text").value = "room closes at five"
            await pilot.press("enter")
            await wait_until(
                pilot,
                lambda: any("chat is not running" in n.message for n in app._notifications),
            )
            await pilot.press("a")
            await wait_until(pilot, lambda: isinstance(app.screen, AnnounceScreen))
            assert app.screen.query_one("#announce-text").value == "room closes at five"
            await pilot.press("escape")
        finally:
            await asyncio.to_thread(member.close)


@run_async
async def test_a_probe_that_fails_says_why_in_the_view(monkeypatch):
    def denied(pid, port, other_ports=()):
        raise psutil.AccessDenied(pid, "net_connections")

    monkeypatch.setattr("workbench.tabs.servers.probe_server", denied)
    app = WorkbenchApp(
        server_manager=QuietServerManager(), start_servers=False, initial_tab="servers"
    )
    async with app.run_test(size=SIZE) as pilot:
        row = ServerRow("http", "http", "epoll", port=40003, pid=6000, state="running")
        app.post_message(ServersUpdated((row,), ()))
        await pilot.pause()
        app.query_one("#server-table").focus()
        await pilot.press("v")
        summary = app.query_one("#socket-summary")
        await wait_until(pilot, lambda: "cannot read sockets" in str(summary.render()))
        assert app.query_one(SocketTable).report is None
