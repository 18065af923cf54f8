"""A class on one machine: 127.0.0.2 stands in for the teacher's LAN address, other 127.0.0.x for students."""

from __future__ import annotations

import functools
import socket
import time

import pytest
from textual.widgets import Input, Label

from tests.helpers.pilot import run_async, shown
from tests.helpers.pilot import wait_until as wait_a_while
from workbench import __main__ as cli
from workbench.app import WorkbenchApp
from workbench.connected_clients import ClientsView
from workbench.data import ensure_data_dir
from workbench.messages import ServersUpdated
from workbench.network import CLASS_PORTS, LOCAL_HOST, LOCAL_ONLY_TEXT, RemoteServers
from workbench.server_manager import DEFAULT_MODELS, DEFAULT_PROTOCOLS, ServerManager, ServerRow
from workbench.tabs.ftp import FtpTab
from workbench.tabs.http import HttpTab
from workbench.widgets.chat_participant import ChatParticipantPane
from workbench.widgets.classroom_bar import ClassroomBar

pytestmark = pytest.mark.timeout(90)

SIZE = (140, 40)
TEACHER = "127.0.0.2"


#: Starting a teacher's servers and letting students in takes longer than a single tab's work.
wait_until = functools.partial(wait_a_while, timeout=30.0)


@pytest.fixture
def teacher(tmp_path):
    """The teacher's three default servers, bound to 127.0.0.2 only (no UI)."""
    manager = ServerManager(
        ensure_data_dir(tmp_path / "teacher"), bind_host=TEACHER, publish_interval=0.2
    )
    manager.open(lambda message: None)
    try:
        for protocol in DEFAULT_PROTOCOLS:
            manager.start(protocol, DEFAULT_MODELS[protocol])
        yield manager
    finally:
        manager.close()


@run_async
async def test_by_default_the_header_says_local_only_and_how_to_open_up(tmp_path):
    manager = ServerManager(ensure_data_dir(tmp_path / "data"))
    app = WorkbenchApp(server_manager=manager, start_servers=False)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert app.sub_title == LOCAL_ONLY_TEXT
            assert "--listen 0.0.0.0" in app.sub_title
            assert not app.query_one(ClassroomBar).display
    finally:
        manager.close()


@run_async
async def test_a_new_server_is_offered_the_listening_address(tmp_path):
    manager = ServerManager(ensure_data_dir(tmp_path / "data"), bind_host=TEACHER)
    app = WorkbenchApp(server_manager=manager, start_servers=False, initial_tab="servers")
    try:
        async with app.run_test(size=SIZE) as pilot:
            app.servers_tab.action_new_server()
            await wait_until(pilot, lambda: app.screen.query("#form-host"), "the form")
            assert app.screen.query_one("#form-host", Input).value == TEACHER
    finally:
        manager.close()


@run_async
async def test_a_teacher_listening_shows_the_addresses_and_who_connects_from_where(tmp_path):
    manager = ServerManager(
        ensure_data_dir(tmp_path / "data"), bind_host=TEACHER, publish_interval=0.2
    )
    app = WorkbenchApp(
        server_manager=manager, start_servers=True, ports={"chat": 0, "ftp": 0, "http": 0}
    )
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(
                pilot, lambda: all(manager.endpoint(p) for p in DEFAULT_PROTOCOLS), "servers"
            )
            ports = {protocol: manager.endpoint(protocol)[1] for protocol in DEFAULT_PROTOCOLS}
            assert {manager.endpoint(p)[0] for p in DEFAULT_PROTOCOLS} == {TEACHER}
            assert manager.row("http").address == f"{TEACHER}:{ports['http']}"
            assert app.sub_title == f"listening for a class on {TEACHER}"
            bar = app.query_one(ClassroomBar)
            expected = [
                f"Students: chat {TEACHER}:{ports['chat']} · ftp {TEACHER}:{ports['ftp']} · "
                f"http http://{TEACHER}:{ports['http']}/ (loopback: this machine only)",
                f"Or run: workbench --connect {TEACHER} --chat-port {ports['chat']} "
                f"--ftp-port {ports['ftp']} --http-port {ports['http']}",
            ]
            await wait_until(pilot, lambda: bar.lines == expected, f"the bar to say {expected}")

            # Bound to that address only: the usual 127.0.0.1 finds nobody there.
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((LOCAL_HOST, ports["http"]), timeout=5).close()

            # A "student" at 127.0.0.3 opens an HTTP connection; one at 127.0.0.4 joins the chat.
            visitor = socket.create_connection(
                (TEACHER, ports["http"]), timeout=5, source_address=("127.0.0.3", 0)
            )
            member = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                member.bind(("127.0.0.4", 0))
                member.settimeout(5)
                member.sendto(b"LOGIN carol", (TEACHER, ports["chat"]))
                assert member.recv(1024).startswith(b"OK LOGIN carol")
                member_port = member.getsockname()[1]

                app.action_show_tab("servers")
                await pilot.pause()
                app.servers_tab.select_server("http")
                clients = app.query_one("#server-clients", Label)
                await wait_until(
                    pilot,
                    lambda: shown(clients) == "Clients: 1 connected — 127.0.0.3",
                    "the HTTP visitor in the Servers tab",
                )
                app.servers_tab.select_server("chat")
                await wait_until(
                    pilot,
                    lambda: shown(clients) == "Members: 1 in the room — carol@127.0.0.4",
                    "the chat member in the Servers tab",
                )
                assert manager.clients("chat").addresses == (f"127.0.0.4:{member_port}",)

                app.action_show_tab("chat")
                room_line = app.query_one("#chat-room-hosts", Label)
                await wait_until(
                    pilot,
                    lambda: "carol@127.0.0.4" in shown(room_line) and room_line.display,
                    "the member's host in the Chat tab",
                )

                visitor.close()
                member.sendto(b"QUIT", (TEACHER, ports["chat"]))
                app.action_show_tab("servers")
                await pilot.pause()
                app.servers_tab.select_server("http")
                await wait_until(
                    pilot,
                    lambda: shown(clients) == "Clients: 0 connected",
                    "the visitor gone",
                )
                await wait_until(
                    pilot, lambda: manager.clients("chat").addresses == (), "carol gone"
                )
            finally:
                visitor.close()
                member.close()
    finally:
        manager.close()


@run_async
async def test_a_student_workbench_points_every_tab_at_the_teacher(teacher, tmp_path):
    ports = {protocol: teacher.endpoint(protocol)[1] for protocol in DEFAULT_PROTOCOLS}
    remote = RemoteServers(TEACHER, ports)
    student = ServerManager(ensure_data_dir(tmp_path / "student"), remote=remote)
    # start_servers as the CLI leaves it: a connected workbench must still start none.
    app = WorkbenchApp(server_manager=student, start_servers=True)
    try:
        async with app.run_test(size=SIZE) as pilot:
            assert app.sub_title == f"connected to the class at {TEACHER}"
            assert app.query_one(ClassroomBar).lines == [remote.describe()]

            # Chat: the address bar is the teacher's, and joining really enters the room there.
            await wait_until(
                pilot,
                lambda: (
                    (
                        app.query_one("#chat-host", Input).value,
                        app.query_one("#chat-port", Input).value,
                    )
                    == (TEACHER, str(ports["chat"]))
                ),
                "the chat address",
            )
            pane = app.query(ChatParticipantPane).first()
            pane.name_input.value = "dora"
            pane.name_input.focus()
            await pilot.press("enter")
            await wait_until(pilot, lambda: pane.joined_name == "dora", "dora joins")
            await wait_until(
                pilot,
                lambda: "dora" in teacher.clients("chat").names.values(),
                "the teacher's room to have dora",
            )
            # The room is the teacher's: the student's own workbench knows no hosts.
            assert not app.query_one("#chat-room-hosts", Label).display

            # FTP: the tab connects to the teacher's server by itself and lists its library.
            await pilot.press("f3")
            await wait_until(pilot, lambda: app.current_tab_id() == "ftp", "the FTP tab")
            ftp = app.query_one(FtpTab)
            await wait_until(
                pilot, lambda: [e.name for e in ftp.remote_pane.entries], "the FTP listing"
            )
            assert app.query_one("#ftp-host", Input).value == TEACHER
            assert app.query_one("#ftp-port", Input).value == str(ports["ftp"])
            assert "texts" in [entry.name for entry in ftp.remote_pane.entries]

            # HTTP: the URL is the teacher's, and a GET comes back 200 from there.
            await pilot.press("f4")
            await wait_until(pilot, lambda: app.current_tab_id() == "http", "the HTTP tab")
            http = app.query_one(HttpTab)
            url = f"http://{TEACHER}:{ports['http']}/"
            url_input = app.query_one("#url", Input)
            await wait_until(pilot, lambda: url_input.value == url, "the HTTP URL")
            url_input.focus()
            await pilot.press("ctrl+j")
            await wait_until(pilot, lambda: http.history, "the HTTP answer")
            entry = http.history[-1]
            assert entry.error is None and entry.response.status == 200

            # Compare models restarts a server under each model: never the teacher's.
            http.start_compare()
            await pilot.pause()
            assert any("connected to the teacher's" in n.message for n in app._notifications)
            assert student.server_ids() == []  # no server of its own
            # F1 says whose server the tab uses, not "no server is running".
            help_text = app.help_markdown()
            assert f"the teacher's server at `{TEACHER}:{ports['http']}`" in help_text
            assert "No server is running" not in help_text
            await pilot.press("ctrl+q")
    finally:
        student.close()


def test_the_manager_keeps_clients_from_the_events_and_heals_when_none_are_left(tmp_path):
    manager = ServerManager(ensure_data_dir(tmp_path / "data"))  # not opened: only what we feed
    try:
        server_id = manager.start("echo", "threads")
        pid = manager.row(server_id).pid

        def report(active: int, events=(), dropped: int = 0) -> None:
            manager.absorb(
                {
                    "type": "snapshot",
                    "server_id": server_id,
                    "pid": pid,
                    "time": time.time(),
                    "active": active,
                    "events": [(time.time(), kind, detail, pid) for kind, detail in events],
                    "events_dropped": dropped,
                }
            )

        report(2, [("connect", "10.0.0.7:1"), ("connect", "10.0.0.7:2")], dropped=40)
        view = manager.clients(server_id)
        assert view.addresses == ("10.0.0.7:1", "10.0.0.7:2") and view.partial
        # The lost events may have been disconnects: partial until the server counts nobody.
        report(1, [("disconnect", "10.0.0.7:1")])
        assert manager.clients(server_id).partial
        report(0)
        view = manager.clients(server_id)
        assert view.addresses == () and not view.partial
        manager.stop(server_id)
        assert manager.clients(server_id).addresses == ()
    finally:
        manager.close()


class ClassroomFedManager(ServerManager):
    """Listening on every interface, with no threads and no servers: the test feeds the rows."""

    def open(self, post) -> None:
        self._post = post

    def clients(self, server_id: str) -> ClientsView | None:
        members = {"192.168.1.31:50412": "wang", "192.168.1.47:39001": "li"}
        return ClientsView(tuple(members), members, partial=False) if server_id == "chat" else None


def test_snapshot_a_teacher_with_a_class_in_the_room(snap_compare):
    rows = tuple(
        ServerRow(
            protocol,
            protocol,
            model,
            host="0.0.0.0",
            port=port,
            pid=pid,
            state="running",
            uptime=125,
            threads=threads,
            active=active,
            accepted=active,
            is_default=True,
            transport="udp" if protocol == "chat" else "tcp",
        )
        for protocol, model, port, pid, threads, active in (
            ("chat", "datagram", 9000, 4100, 4, 2),
            ("ftp", "threads", 2121, 4200, 5, 0),
            ("http", "epoll", 8080, 4300, 4, 0),
        )
    )
    app = WorkbenchApp(
        server_manager=ClassroomFedManager(bind_host="0.0.0.0"),
        start_servers=False,
        initial_tab="servers",
        theme_name="dark",
    )
    # This machine's interfaces are not the classroom's: the addresses are given.
    app._interface_addresses = ["192.168.1.20"]

    async def feed(pilot) -> None:
        pilot.app.post_message(ServersUpdated(rows, ()))
        await pilot.pause()
        pilot.app.servers_tab.select_server("chat")
        await pilot.pause()

    assert snap_compare(app, terminal_size=(120, 32), run_before=feed)


def _run_app_arguments(monkeypatch, argv):
    calls = []
    import workbench.app

    monkeypatch.setattr(workbench.app, "run_app", lambda **kwargs: calls.append(kwargs))
    assert cli.main(argv) == 0
    (call,) = calls
    return call


def test_listen_binds_there_and_takes_the_class_ports(monkeypatch, tmp_path):
    call = _run_app_arguments(
        monkeypatch, ["--data", str(tmp_path), "--listen", "0.0.0.0", "--http-port", "8181"]
    )
    assert call["bind_host"] == "0.0.0.0"
    assert call["ports"] == {**CLASS_PORTS, "http": 8181}
    assert call["remote"] is None


def test_the_default_is_local_with_free_ports(monkeypatch, tmp_path):
    call = _run_app_arguments(monkeypatch, ["--data", str(tmp_path)])
    assert call["bind_host"] == LOCAL_HOST and call["ports"] == {} and call["remote"] is None


def test_connect_finds_the_class_ports_unless_told_otherwise(monkeypatch, tmp_path):
    call = _run_app_arguments(
        monkeypatch, ["--data", str(tmp_path), "--connect", "192.168.1.20", "--chat-port", "9001"]
    )
    assert call["remote"] == RemoteServers("192.168.1.20", {**CLASS_PORTS, "chat": 9001})


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--listen", "my laptop"], "expected an IP address"),
        (["--connect", "0.0.0.0"], "the teacher's address"),
        (["--connect", "10.0.0.1", "--ftp-port", "0"], "the teacher's real ports"),
        (["--http-port", "70000"], "from 0 to 65535"),
        (["--listen", "0.0.0.0", "--connect", "10.0.0.1"], "not allowed with"),
    ],
)
def test_bad_classroom_options_are_clear_errors(argv, complaint, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert complaint in capsys.readouterr().err
