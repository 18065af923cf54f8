"""Snapshots of the Servers panel and the F1 help, fed by fixed stats (no real server, no clock)."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.helpers.workbench import QuietServerManager
from workbench.app import WorkbenchApp
from workbench.connected_clients import ClientsView
from workbench.messages import ServersUpdated
from workbench.server_manager import ProcessNode, ServerEvent, ServerRow
from workbench.socket_probe import ServerSocket, SocketReport
from workbench.widgets.socket_view import SequenceView, SocketTable

pytestmark = pytest.mark.timeout(60)

SIZE = (140, 40)
#: A local-time instant, so the log's HH:MM:SS reads the same in every time zone.
T0 = datetime(2026, 3, 2, 10, 0, 0).timestamp()


class FedServerManager(QuietServerManager):
    """A manager with no threads and no servers (the test posts the batches), with FTP clients."""

    def clients(self, server_id: str) -> ClientsView | None:
        # Fed like the rows: three FTP clients (the fixed rows' last step has 3 active).
        if server_id != "ftp":
            return None
        addresses = ("192.168.1.21:50110", "192.168.1.21:50111", "192.168.1.34:41002")
        return ClientsView(addresses, {}, partial=False)


def fixed_rows(step: int) -> tuple[ServerRow, ...]:
    """Four servers; figures move with ``step`` so the sparklines have a shape."""
    wave = [3, 5, 8, 13, 9, 6, 10, 14, 18, 12, 7, 11][step % 12]
    ftp_children = tuple(
        ProcessNode(5001 + index, "python3", "sleeping", 2, 1) for index in range(wave % 4)
    )
    zombie = (ProcessNode(5099, "python3", "zombie", 0, 1),) if step == 11 else ()
    return (
        ServerRow(
            "chat",
            "chat",
            "datagram",
            port=40001,
            transport="udp",
            pid=4100,
            state="running",
            uptime=3725,
            threads=4,
            serving_threads=1,
            active=2,
            accepted=3,
            refused=1,
            requests=1200,
            requests_per_second=2.5,
            bytes_in_per_second=512,
            bytes_out_per_second=4096,
            cpu_percent=1.0,
            rss_bytes=18_000_000,
            process_tree=(ProcessNode(4100, "python3", "sleeping", 4, 0),),
            is_default=True,
        ),
        ServerRow(
            "ftp",
            "ftp",
            "processes",
            port=40002,
            pid=5000,
            state="running",
            uptime=754,
            threads=4 + 2 * len(ftp_children),
            serving_threads=1 + len(ftp_children),
            children=len(ftp_children),
            active=len(ftp_children),
            accepted=40 + step,
            requests_per_second=float(wave),
            bytes_in_per_second=1536,
            bytes_out_per_second=3_500_000,
            errors=2,
            cpu_percent=37.0,
            rss_bytes=95_000_000,
            zombies=len(zombie),
            process_tree=(ProcessNode(5000, "python3", "sleeping", 4, 0), *ftp_children, *zombie),
            is_default=True,
        ),
        ServerRow(
            "http",
            "http",
            "epoll",
            port=40003,
            pid=6000,
            state="running",
            uptime=61,
            threads=4,
            serving_threads=1,
            active=1500 + 10 * wave,
            accepted=98_765,
            requests_per_second=12_345.6,
            bytes_in_per_second=2_400_000,
            bytes_out_per_second=48_000_000,
            cpu_percent=99.0,
            rss_bytes=60_000_000,
            process_tree=(ProcessNode(6000, "python3", "running", 4, 0),),
            is_default=True,
        ),
        ServerRow(
            "http-2",
            "http",
            "prefork",
            port=40004,
            state="crashed",
            exit_description="killed by SIGKILL",
            workers=4,
            uptime=12,
            accepted=7,
        ),
    )


def fixed_events(step: int) -> tuple[ServerEvent, ...]:
    base = T0 + step
    pid = 5001 + step % 3
    return (
        ServerEvent("ftp", base + 0.10, "connect", f"127.0.0.1:{50000 + step}", pid),
        ServerEvent("ftp", base + 0.20, "request", "RETR big.bin", pid),
        ServerEvent("ftp", base + 0.30, "error", "550 no such file: missing.txt", pid)
        if step % 4 == 3
        else ServerEvent("ftp", base + 0.30, "request", "LIST", pid),
        ServerEvent("ftp", base + 0.90, "disconnect", f"127.0.0.1:{50000 + step}", pid),
    )


async def feed_fixed_stats(pilot) -> None:
    app = pilot.app
    for step in range(12):
        app.post_message(ServersUpdated(fixed_rows(step), fixed_events(step)))
    await pilot.pause()
    app.servers_tab.select_server("ftp")
    app.query_one("#server-table").focus()
    await pilot.pause()


def servers_app() -> WorkbenchApp:
    return WorkbenchApp(
        server_manager=FedServerManager(),
        start_servers=False,
        initial_tab="servers",
        theme_name="dark",
    )


def test_servers_panel(snap_compare):
    assert snap_compare(servers_app(), terminal_size=SIZE, run_before=feed_fixed_stats)


def test_servers_panel_light_theme(snap_compare):
    app = servers_app()
    app.initial_theme = "workbench-light"
    assert snap_compare(app, terminal_size=SIZE, run_before=feed_fixed_stats)


def test_servers_panel_paused_and_filtered(snap_compare):
    async def pause_and_filter(pilot) -> None:
        await feed_fixed_stats(pilot)
        await pilot.press("p")
        pilot.app.query_one("#event-filter").value = "error"
        await pilot.pause()
        # Arriving events are kept but not shown while paused.
        pilot.app.post_message(ServersUpdated(fixed_rows(0), fixed_events(7)))
        await pilot.pause()
        pilot.app.query_one("#server-table").focus()
        pilot.app.clear_notifications()
        await pilot.pause()

    assert snap_compare(servers_app(), terminal_size=SIZE, run_before=pause_and_filter)


def test_help_screen_for_the_processes_model(snap_compare):
    async def open_help(pilot) -> None:
        await feed_fixed_stats(pilot)
        await pilot.press("f1")
        await pilot.pause()

    assert snap_compare(servers_app(), terminal_size=SIZE, run_before=open_help)


def fixed_socket_report(pid: int | None, port: int, other_ports=()) -> SocketReport:
    """What the probe might read of the ftp server: a backlog, a connection, a TIME_WAIT."""
    client = ("127.0.0.1", 50011)
    sockets = (
        ServerSocket("TCP", "LISTEN", ("127.0.0.1", 40002), None, (5000,), 5, 2, 4096),
        ServerSocket(
            "TCP",
            "ESTABLISHED",
            ("127.0.0.1", 40002),
            ("127.0.0.1", 50012),
            (5001,),
            7,
            0,
            0,
            0.051,
            None,
            None,
        ),
        ServerSocket(
            "TCP", "ESTABLISHED", ("127.0.0.1", 40002), ("127.0.0.1", 50013), (), None, 0, 0, 0.04
        ),
        ServerSocket(
            "TCP", "ESTABLISHED", ("127.0.0.1", 40002), ("127.0.0.1", 50014), (), None, 0, 0, 0.04
        ),
        ServerSocket(
            "TCP",
            "TIME_WAIT",
            ("127.0.0.1", 40002),
            client,
            (),
            None,
            0,
            0,
            timer="timewait,52sec,0",
        ),
    )
    return SocketReport(T0 + 12, pid or 0, port, sockets)


def test_servers_panel_sockets(snap_compare, monkeypatch):
    # The fixed rows' pids are not ours: read fixed sockets instead of whatever has that pid.
    monkeypatch.setattr("workbench.tabs.servers.probe_server", fixed_socket_report)

    async def show_sockets(pilot) -> None:
        await feed_fixed_stats(pilot)
        await pilot.press("v")
        app = pilot.app
        while app.query_one(SocketTable).report is None:
            await pilot.pause(0.05)
        await pilot.pause()

    assert snap_compare(servers_app(), terminal_size=SIZE, run_before=show_sockets)


def test_servers_panel_last_connection(snap_compare, monkeypatch):
    monkeypatch.setattr("workbench.tabs.servers.probe_server", fixed_socket_report)

    async def show_sequence(pilot) -> None:
        await feed_fixed_stats(pilot)
        await pilot.press("v", "v")
        app = pilot.app
        while app.query_one(SequenceView).sequence is None:
            await pilot.pause(0.05)
        await pilot.pause()

    assert snap_compare(servers_app(), terminal_size=SIZE, run_before=show_sequence)
