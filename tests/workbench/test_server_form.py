"""The Servers form's knobs reach real servers: chat transport and drop, FTP read-only, bind address, open files."""

from __future__ import annotations

import ftplib
import io
import socket

import pytest

from servers.ftp.users import Account, hash_password, save_accounts
from tests.helpers.pilot import run_async, wait_until
from tests.helpers.workbench import servers_app
from workbench.app import WorkbenchApp
from workbench.clients.chat import ChatClient
from workbench.widgets.server_form import (
    parse_bind_address,
    parse_drop_rate,
    parse_open_files,
    parse_users_file,
)

pytestmark = pytest.mark.timeout(60)

SIZE = (140, 42)


def running(app: WorkbenchApp, server_id: str, **expected) -> bool:
    row = app.servers_tab.rows.get(server_id)
    if row is None or row.state != "running" or row.pid is None:
        return False
    return all(getattr(row, name) == value for name, value in expected.items())


async def open_form(pilot, key: str) -> None:
    table = pilot.app.query_one("#server-table")
    table.focus()
    await pilot.press(key)
    await wait_until(pilot, lambda: pilot.app.screen.query("#form-model"))


async def submit(pilot) -> None:
    """Click the form's submit button (a button ignores clicks while its press effect shows)."""
    button = pilot.app.screen.query_one("#form-submit")
    await wait_until(pilot, lambda: not button.has_class("-active"))
    # Fields shown for a new protocol move the button down at the next refresh: a click
    # aimed before it lands where the button was (on Cancel, under load).
    await pilot.pause()
    await pilot.click("#form-submit")
    await pilot.pause()


def offered_models(app: WorkbenchApp) -> list[str]:
    return [str(value) for _, value in app.screen.query_one("#form-model")._options]


def shown(app: WorkbenchApp, selector: str) -> bool:
    return app.screen.query_one(selector).display


def chat_login(port: int, transport: str, name: str) -> ChatClient:
    client = ChatClient("127.0.0.1", port, transport)
    client.login(name)
    return client


# -- the parsers: every bad value gets a clear reason -------------------------------------


@pytest.mark.parametrize(
    "parse,text,reason",
    [
        (parse_drop_rate, "1", "below 1"),
        (parse_drop_rate, "-0.1", "at least 0"),
        (parse_drop_rate, "lots", "must be a number"),
        (parse_bind_address, "my laptop", "must be an IP address"),
        (parse_bind_address, "300.1.1.1", "must be an IP address"),
        (parse_open_files, "8", "from 32"),
        (parse_open_files, "many", "from 32"),
        (parse_users_file, "/no/such/users.json", "does not exist"),
    ],
)
def test_bad_values_are_refused_with_a_reason(parse, text, reason):
    with pytest.raises(ValueError, match=reason):
        parse(text)


def test_good_values_are_understood():
    assert parse_drop_rate("0.25") == 0.25
    assert parse_drop_rate("") == 0.0
    assert parse_bind_address("") == "127.0.0.1"
    assert parse_bind_address("[::1]") == "::1"
    assert parse_open_files("") is None
    assert parse_open_files("64") == 64


# -- chat: the model list follows the transport, and what runs is what the table says ----


@run_async
async def test_chat_form_follows_the_transport_and_restart_keeps_it(manager):
    app = servers_app(manager)
    async with app.run_test(size=SIZE) as pilot:
        # Asked for epoll, a UDP chat runs its datagram loop: the table says so.
        app.servers_tab.start_server("chat", "epoll")
        await wait_until(pilot, lambda: running(app, "chat", model="datagram", transport="udp"))
        await open_form(pilot, "m")
        # UDP: the one loop that really runs, preselected, and why no stream model.
        assert offered_models(app) == ["datagram"]
        assert app.screen.query_one("#form-model").value == "datagram"
        note = str(app.screen.query_one("#form-model-note").render())
        assert "datagram loop" in note and "tcp" in note
        assert shown(app, "#form-drop") and shown(app, "#form-transport")
        assert not shown(app, "#form-read-only")
        # TCP: only the models the room really runs under, and why not the others.
        app.screen.query_one("#form-transport").value = "tcp"
        await wait_until(pilot, lambda: "select" in offered_models(app))
        assert offered_models(app) == ["iterative", "threads", "select", "poll", "epoll", "asyncio"]
        assert "processes, pool, prefork" in str(app.screen.query_one("#form-model-note").render())
        assert not shown(app, "#form-drop")
        app.screen.query_one("#form-model").value = "select"
        await submit(pilot)
        await wait_until(pilot, lambda: running(app, "chat", model="select", transport="tcp"))
        port = app.servers_tab.rows["chat"].port
        member = chat_login(port, "tcp", "ada")
        try:
            assert member.logged_in
        finally:
            member.close()
        # The form reopens on what runs now.
        await open_form(pilot, "m")
        assert app.screen.query_one("#form-transport").value == "tcp"
        assert app.screen.query_one("#form-model").value == "select"
        await pilot.press("escape")
        # A plain restart keeps transport and model.
        old_pid = app.servers_tab.rows["chat"].pid
        app.servers_tab.restart_server("chat")
        await wait_until(
            pilot,
            lambda: (
                running(app, "chat", model="select", transport="tcp")
                and app.servers_tab.rows["chat"].pid != old_pid
            ),
        )
        chat_login(app.servers_tab.rows["chat"].port, "tcp", "bob").close()


@run_async
async def test_new_chat_with_a_drop_rate_loses_datagrams(manager):
    app = servers_app(manager)
    async with app.run_test(size=SIZE) as pilot:
        await open_form(pilot, "n")
        app.screen.query_one("#form-protocol").value = "chat"
        await wait_until(pilot, lambda: offered_models(app) == ["datagram"])
        drop = app.screen.query_one("#form-drop")
        drop.value = "1.5"
        await submit(pilot)
        assert "below 1" in str(app.screen.query_one("#form-error").render())
        assert drop.value == "1.5"  # nothing lost: fix it and go on
        drop.value = "0.5"
        await submit(pilot)
        await wait_until(pilot, lambda: running(app, "chat", transport="udp"))
        notices = [note.message for note in app._notifications]
        assert any("Started chat (chat over udp, datagram)" in text for text in notices), notices
        port = app.servers_tab.rows["chat"].port
        speaker, listener = chat_login(port, "udp", "speaker"), chat_login(port, "udp", "listener")
        try:
            # Half the room's datagrams are dropped: the listener sees gaps in the sequence.
            for index in range(60):
                speaker.say(f"message {index}")
                await pilot.pause(0.1)  # keep under the room's rate limit (5/s, bursts of 10)
                if listener.lost:
                    break
            assert listener.lost > 0
        finally:
            speaker.close()
            listener.close()


# -- FTP, bind address, open-file limit ------------------------------------------------


@run_async
async def test_ftp_read_only_and_users_file_from_the_form(manager, tmp_path):
    users = tmp_path / "users.txt"
    app = servers_app(manager)
    async with app.run_test(size=SIZE) as pilot:
        await open_form(pilot, "n")
        app.screen.query_one("#form-protocol").value = "ftp"
        await wait_until(pilot, lambda: shown(app, "#form-read-only"))
        assert not shown(app, "#form-transport") and not shown(app, "#form-drop")
        app.screen.query_one("#form-users").value = "/no/such/file"
        await submit(pilot)
        assert "does not exist" in str(app.screen.query_one("#form-error").render())
        app.screen.query_one("#form-users").value = ""
        app.screen.query_one("#form-model").value = "threads"
        app.screen.query_one("#form-read-only").value = True
        await submit(pilot)
        await wait_until(pilot, lambda: running(app, "ftp", model="threads"))
        ftp = ftplib.FTP()
        ftp.connect("127.0.0.1", app.servers_tab.rows["ftp"].port, timeout=10)
        try:
            ftp.login()
            assert ftp.nlst()  # reading works
            with pytest.raises(ftplib.error_perm, match="^550"):
                ftp.storbinary("STOR new.txt", io.BytesIO(b"no"))
        finally:
            ftp.close()
        # Change it: writable again, with an accounts file. The form shows what runs.
        save_accounts(str(users), {"alice": Account("alice", hash_password("s3cret"), "elrw")})
        await open_form(pilot, "m")
        assert app.screen.query_one("#form-read-only").value is True
        app.screen.query_one("#form-read-only").value = False
        app.screen.query_one("#form-users").value = str(users)
        await submit(pilot)
        await wait_until(
            pilot,
            lambda: (
                running(app, "ftp", model="threads")
                and app.servers_tab.rows["ftp"].options.get("users") == str(users)
            ),
        )
        ftp = ftplib.FTP()
        ftp.connect("127.0.0.1", app.servers_tab.rows["ftp"].port, timeout=10)
        try:
            ftp.login("alice", "s3cret")
            ftp.storbinary("STOR new.txt", io.BytesIO(b"yes"))
            assert "new.txt" in ftp.nlst()
        finally:
            ftp.close()


def ipv6_loopback_works() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@run_async
async def test_bind_address_and_open_file_limit_reach_the_server(manager):
    if not ipv6_loopback_works():
        pytest.skip("no IPv6 loopback here")
    app = servers_app(manager)
    async with app.run_test(size=SIZE) as pilot:
        await open_form(pilot, "n")
        app.screen.query_one("#form-protocol").value = "echo"
        app.screen.query_one("#form-host").value = "::1"
        app.screen.query_one("#form-open-files").value = "64"
        await submit(pilot)
        await wait_until(pilot, lambda: running(app, "echo", host="::1", max_open_files=64))
        row = app.servers_tab.rows["echo"]
        assert row.address == f"[::1]:{row.port}"
        assert manager.endpoint("echo") == ("::1", row.port)
        with socket.create_connection(("::1", row.port), timeout=5) as conn:
            conn.sendall(b"six\n")
            assert conn.recv(16) == b"six\n"
        # A restart keeps both.
        app.servers_tab.restart_server("echo", model="poll")
        await wait_until(
            pilot, lambda: running(app, "echo", model="poll", host="::1", max_open_files=64)
        )
