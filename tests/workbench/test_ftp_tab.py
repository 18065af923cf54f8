"""Pilot tests of the FTP tab against real FTP servers (ours and pyftpdlib), plus its snapshot."""

from __future__ import annotations

import os
import select
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler, ThrottledDTPHandler
from textual.pilot import Pilot
from textual.widgets import Input, Label, ProgressBar

from servers.ftp.users import hash_password
from tests.helpers.pilot import TabHarness, notifications, run, tab_alone, wait_until
from tests.helpers.servers import FakeServerDirectory, in_process_server, pyftpdlib_server
from workbench.clients.ftp import RemoteEntry
from workbench.tabs.ftp import NO_SERVER_TEXT, FtpTab
from workbench.widgets.ftp_dialogs import FtpConfirmScreen, FtpPromptScreen

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:write permissions assigned to anonymous user"),
]

#: Shown as every entry's time in the snapshot: real mtimes render in the machine's time zone.
SNAPSHOT_TIME = datetime(2024, 3, 1, 9, 30)


class RecordingFtpTab(FtpTab):
    """The tab, noting every progress message it receives (Textual then runs FtpTab's handler too)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.progress_seen: list[tuple[int, int | None]] = []

    def on_ftp_tab_transfer_progress(self, message: FtpTab.TransferProgress) -> None:
        self.progress_seen.append((message.done, message.total))


def remote_names(tab: FtpTab) -> list[str]:
    return [entry.name for entry in tab.remote_pane.entries]


def local_names(tab: FtpTab) -> list[str]:
    return [entry.name for entry in tab.local_pane.entries]


async def focus_entry(pilot: Pilot[Any], pane: Any, name: str) -> None:
    pane.focus_table()
    assert pane.select_name(name), f"{name} not listed"
    await pilot.pause()


# ---------------------------------------------------------------------------
# Servers


def _serve_pyftpdlib(root: Path, bytes_per_second: int = 0) -> Iterator[int]:
    authorizer = DummyAuthorizer()
    authorizer.add_anonymous(str(root), perm="elradfmwMT")
    attributes: dict[str, Any] = {"authorizer": authorizer}
    if bytes_per_second:
        # A slow link, so a test can act while the transfer is still running.
        attributes["dtp_handler"] = type(
            "SlowDTPHandler",
            (ThrottledDTPHandler,),
            {"read_limit": bytes_per_second, "write_limit": bytes_per_second},
        )
    attributes["auth_failed_timeout"] = 0.05  # pyftpdlib waits 3 s after a bad login by default
    handler = type("TabTestHandler", (FTPHandler,), attributes)
    with pyftpdlib_server(handler) as port:
        yield port


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    local, remote = tmp_path / "local", tmp_path / "remote"
    local.mkdir()
    remote.mkdir()
    (remote / "readme.txt").write_text("hello from the server\n")
    (remote / "books").mkdir()
    (local / "notes.txt").write_text("my notes\n")
    (local / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    return local, remote


@pytest.fixture
def pyftpdlib_port(dirs: tuple[Path, Path]) -> Iterator[int]:
    yield from _serve_pyftpdlib(dirs[1])


@pytest.fixture
def slow_pyftpdlib_port(dirs: tuple[Path, Path]) -> Iterator[int]:
    yield from _serve_pyftpdlib(dirs[1], bytes_per_second=1024 * 1024)


@pytest.fixture
def our_ftp_port(dirs: tuple[Path, Path], tmp_path: Path) -> Iterator[int]:
    """Our FTP server (threads model, in this process): anonymous may list, read and upload; "teacher" may do all."""
    users = tmp_path / "users.txt"
    users.write_text(f"teacher:{hash_password('secret')}:elradfmw\n")
    options = {"root": str(dirs[1]), "users": str(users), "login_delay": 0.05}
    with in_process_server("ftp", options=options) as server:
        yield server.port


# ---------------------------------------------------------------------------
# The round trip, on both servers


async def _round_trip(
    port: int, local: Path, remote: Path, user: str = "", password: str = ""
) -> None:
    tab = RecordingFtpTab(local_dir=local)
    async with tab_alone(tab, size=(140, 40)) as pilot:
        tab.query_one("#ftp-host", Input).value = "127.0.0.1"
        tab.query_one("#ftp-port", Input).value = str(port)
        tab.query_one("#ftp-user", Input).value = user
        tab.query_one("#ftp-password", Input).value = password
        await pilot.click("#ftp-connect")
        await wait_until(pilot, lambda: tab.client is not None, "connected")
        await wait_until(
            pilot, lambda: remote_names(tab) == ["books", "readme.txt"], "remote listing"
        )
        await wait_until(
            pilot, lambda: local_names(tab) == ["big.bin", "notes.txt"], "local listing"
        )

        # Download a file into the local folder.
        await focus_entry(pilot, tab.remote_pane, "readme.txt")
        await pilot.press("d")
        await wait_until(pilot, lambda: "readme.txt" in local_names(tab), "download lands locally")
        assert (local / "readme.txt").read_text() == "hello from the server\n"

        # Upload a large file: progress is shown and reaches 100%.
        await focus_entry(pilot, tab.local_pane, "big.bin")
        await pilot.press("u")
        await wait_until(pilot, lambda: "big.bin" in remote_names(tab), "upload appears remotely")
        assert (remote / "big.bin").read_bytes() == (local / "big.bin").read_bytes()
        size = (local / "big.bin").stat().st_size
        assert tab.progress_seen[-1] == (size, size)
        assert len(tab.progress_seen) >= 1
        assert tab.query_one("#ftp-progress", ProgressBar).percentage == 1.0
        assert "Uploaded big.bin" in str(tab.query_one("#ftp-transfer-label", Label).render())

        # New remote folder.
        tab.remote_pane.focus_table()
        await pilot.press("m")
        await wait_until(
            pilot, lambda: isinstance(pilot.app.screen, FtpPromptScreen), "mkdir prompt"
        )
        await pilot.press(*"incoming", "enter")
        await wait_until(pilot, lambda: "incoming" in remote_names(tab), "new folder listed")
        assert (remote / "incoming").is_dir()

        # Rename the uploaded file.
        await focus_entry(pilot, tab.remote_pane, "big.bin")
        await pilot.press("r")
        await wait_until(
            pilot, lambda: isinstance(pilot.app.screen, FtpPromptScreen), "rename prompt"
        )
        pilot.app.screen.query_one(Input).value = "renamed.bin"
        await pilot.press("enter")
        await wait_until(pilot, lambda: "renamed.bin" in remote_names(tab), "renamed file listed")
        assert not (remote / "big.bin").exists() and (remote / "renamed.bin").exists()

        # Delete it (after confirming) and the folder.
        await focus_entry(pilot, tab.remote_pane, "renamed.bin")
        await pilot.press("delete")
        await wait_until(
            pilot, lambda: isinstance(pilot.app.screen, FtpConfirmScreen), "delete confirmation"
        )
        await pilot.press("y")
        await wait_until(pilot, lambda: "renamed.bin" not in remote_names(tab), "file deleted")
        await focus_entry(pilot, tab.remote_pane, "incoming")
        await pilot.press("delete", "y")
        await wait_until(pilot, lambda: "incoming" not in remote_names(tab), "folder deleted")
        assert sorted(path.name for path in remote.iterdir()) == ["books", "readme.txt"]

        # Enter a folder and come back up.
        await focus_entry(pilot, tab.remote_pane, "books")
        await pilot.press("enter")
        await wait_until(pilot, lambda: tab.remote_path == "/books", "entered books/")
        await pilot.press("backspace")
        await wait_until(pilot, lambda: tab.remote_path == "/", "back at the root")
        assert not [note for note in pilot.app._notifications if note.severity == "error"]


def test_round_trip_on_our_server(our_ftp_port: int, dirs: tuple[Path, Path]) -> None:
    run(lambda: _round_trip(our_ftp_port, *dirs, user="teacher", password="secret"))


def test_round_trip_on_pyftpdlib(pyftpdlib_port: int, dirs: tuple[Path, Path]) -> None:
    """The tab talks to any FTP server, not just ours."""
    run(lambda: _round_trip(pyftpdlib_port, *dirs))


# ---------------------------------------------------------------------------
# Errors, confirmation, the no-server state


def test_error_reply_is_notified_with_its_code(
    pyftpdlib_port: int, dirs: tuple[Path, Path]
) -> None:
    local, remote = dirs

    async def scenario() -> None:
        tab = FtpTab(endpoint=("127.0.0.1", pyftpdlib_port), local_dir=local)
        async with tab_alone(tab, size=(140, 40)) as pilot:
            await wait_until(pilot, lambda: "readme.txt" in remote_names(tab), "remote listing")
            (remote / "readme.txt").unlink()  # gone behind the browser's back
            await focus_entry(pilot, tab.remote_pane, "readme.txt")
            await pilot.press("d")
            await wait_until(
                pilot,
                lambda: any("FTP 550" in note for note in notifications(pilot.app)),
                "550 notice",
            )
            assert not (local / "readme.txt").exists()
            assert not list(local.glob(".*.part"))
            # The browser still works after the error.
            await pilot.press("ctrl+r")
            await wait_until(pilot, lambda: remote_names(tab) == ["books"], "refreshed listing")

    run(scenario)


def test_refused_mkdir_on_our_server_is_notified(
    our_ftp_port: int, dirs: tuple[Path, Path]
) -> None:
    """Anonymous writes in uploads/ only on our server: a mkdir elsewhere gets its 550 shown."""
    local, remote = dirs

    async def scenario() -> None:
        tab = FtpTab(endpoint=("127.0.0.1", our_ftp_port), local_dir=local)
        async with tab_alone(tab, size=(140, 40)) as pilot:
            await wait_until(pilot, lambda: "readme.txt" in remote_names(tab), "anonymous listing")
            tab.remote_pane.focus_table()
            await pilot.press("m")
            await wait_until(
                pilot, lambda: isinstance(pilot.app.screen, FtpPromptScreen), "mkdir prompt"
            )
            await pilot.press(*"forbidden", "enter")
            await wait_until(
                pilot,
                lambda: any("FTP 550" in note for note in notifications(pilot.app)),
                "550 notice",
            )
            assert "550" in str(tab.remote_pane.query_one(".ftp-pane-status", Label).render())
            assert not (remote / "forbidden").exists()
            assert tab.client is not None  # still connected and usable

    run(scenario)


def access_line(tab: FtpTab) -> str:
    label = tab.remote_pane.query_one(".ftp-pane-access", Label)
    return str(label.render()) if label.display else ""


def test_anonymous_is_told_where_it_may_write_and_may_write_there(
    our_ftp_port: int, dirs: tuple[Path, Path]
) -> None:
    local, remote = dirs
    (remote / "uploads").mkdir()

    async def scenario() -> None:
        tab = FtpTab(endpoint=("127.0.0.1", our_ftp_port), local_dir=local)
        async with tab_alone(tab, size=(140, 40)) as pilot:
            await wait_until(pilot, lambda: "uploads" in remote_names(tab), "anonymous listing")
            assert access_line(tab) == "anonymous: read everywhere, write in uploads/"
            await focus_entry(pilot, tab.remote_pane, "uploads")
            await pilot.press("enter")
            await wait_until(pilot, lambda: tab.remote_path == "/uploads", "in uploads/")
            await pilot.press("m")
            await wait_until(
                pilot, lambda: isinstance(pilot.app.screen, FtpPromptScreen), "mkdir prompt"
            )
            await pilot.press(*"mine", "enter")
            await wait_until(pilot, lambda: "mine" in remote_names(tab), "folder made")
            await focus_entry(pilot, tab.remote_pane, "mine")
            await pilot.press("r")
            await wait_until(pilot, lambda: isinstance(pilot.app.screen, FtpPromptScreen), "rename")
            pilot.app.screen.query_one(Input).value = "ours"
            await pilot.press("enter")
            await wait_until(pilot, lambda: "ours" in remote_names(tab), "renamed")
            await focus_entry(pilot, tab.remote_pane, "ours")
            await pilot.press("delete", "y")
            await wait_until(pilot, lambda: remote_names(tab) == [], "deleted")
            assert list((remote / "uploads").iterdir()) == []
            assert not [note for note in pilot.app._notifications if note.severity == "error"]
            await pilot.click("#ftp-connect")  # disconnect: the line goes with the login
            await wait_until(pilot, lambda: access_line(tab) == "", "access line cleared")

    run(scenario)


def test_a_named_account_is_told_it_may_write(our_ftp_port: int, dirs: tuple[Path, Path]) -> None:
    local, _ = dirs

    async def scenario() -> None:
        tab = FtpTab(local_dir=local)
        async with tab_alone(tab, size=(140, 40)) as pilot:
            tab.query_one("#ftp-host", Input).value = "127.0.0.1"
            tab.query_one("#ftp-port", Input).value = str(our_ftp_port)
            tab.query_one("#ftp-user", Input).value = "teacher"
            tab.query_one("#ftp-password", Input).value = "secret"
            await pilot.click("#ftp-connect")
            await wait_until(pilot, lambda: access_line(tab) != "", "access line")
            assert access_line(tab) == "teacher: read-write"

    run(scenario)


def test_idle_connection_dropped_by_the_server_is_renewed(dirs: tuple[Path, Path]) -> None:
    """Our server closes an idle control connection (421); the next action logs in again by itself."""
    local, remote = dirs

    async def scenario(port: int) -> None:
        tab = FtpTab(endpoint=("127.0.0.1", port), local_dir=local)
        async with tab_alone(tab, size=(140, 40)) as pilot:
            await wait_until(pilot, lambda: "books" in remote_names(tab), "listing")
            await focus_entry(pilot, tab.remote_pane, "books")
            await pilot.press("enter")
            await wait_until(pilot, lambda: tab.remote_path == "/books", "in books/")
            assert tab.client is not None
            readable, _, _ = select.select([tab.client._ftp.sock], [], [], 10)  # type: ignore[union-attr]
            assert readable, "the server kept the idle connection"
            (remote / "books" / "new.txt").write_text("arrived while idle")
            await pilot.press("ctrl+r")
            await wait_until(
                pilot, lambda: "new.txt" in remote_names(tab), "fresh listing after re-login"
            )
            assert tab.remote_path == "/books"
            assert not [note for note in pilot.app._notifications if note.severity == "error"]

    with in_process_server("ftp", options={"root": str(remote), "idle_timeout": 0.5}) as proc:
        run(lambda: scenario(proc.port))


def test_download_refuses_a_name_that_escapes_the_folder(
    pyftpdlib_port: int, dirs: tuple[Path, Path]
) -> None:
    """A hostile server listing "../x" must not choose where the download is written."""
    local, _ = dirs

    async def scenario() -> None:
        tab = FtpTab(endpoint=("127.0.0.1", pyftpdlib_port), local_dir=local)
        async with tab_alone(tab, size=(140, 40)) as pilot:
            await wait_until(pilot, lambda: "readme.txt" in remote_names(tab), "listing")
            hostile = [RemoteEntry("../escape.txt", False, 5)]
            tab.remote_pane.show_entries("/", hostile, can_go_up=False)
            await focus_entry(pilot, tab.remote_pane, "../escape.txt")
            await pilot.press("d")
            await wait_until(
                pilot,
                lambda: any("not a plain file name" in n for n in notifications(pilot.app)),
                "refusal",
            )
            assert not tab.transferring
            assert not (local.parent / "escape.txt").exists()

    run(scenario)


def test_upload_asks_before_overwriting(pyftpdlib_port: int, dirs: tuple[Path, Path]) -> None:
    local, remote = dirs
    (remote / "notes.txt").write_text("server copy\n")

    async def scenario() -> None:
        tab = FtpTab(endpoint=("127.0.0.1", pyftpdlib_port), local_dir=local)
        async with tab_alone(tab, size=(140, 40)) as pilot:
            await wait_until(pilot, lambda: "notes.txt" in remote_names(tab), "remote listing")
            await focus_entry(pilot, tab.local_pane, "notes.txt")
            await pilot.press("u")
            await wait_until(
                pilot, lambda: isinstance(pilot.app.screen, FtpConfirmScreen), "overwrite question"
            )
            await pilot.press("n")
            await pilot.pause()
            assert (remote / "notes.txt").read_text() == "server copy\n"
            await pilot.press("u")
            await wait_until(
                pilot, lambda: isinstance(pilot.app.screen, FtpConfirmScreen), "overwrite question"
            )
            await pilot.press("y")
            await wait_until(
                pilot,
                lambda: (remote / "notes.txt").read_text() == "my notes\n",
                "overwritten after yes",
            )

    run(scenario)


def test_bad_login_and_no_server_state(pyftpdlib_port: int, dirs: tuple[Path, Path]) -> None:
    local, _ = dirs

    async def scenario() -> None:
        tab = FtpTab(local_dir=local)
        async with tab_alone(tab, server_manager=FakeServerDirectory({}), size=(140, 40)) as pilot:
            await pilot.pause()
            assert NO_SERVER_TEXT in str(tab.query_one("#ftp-status", Label).render())
            assert tab.client is None
            await wait_until(
                pilot, lambda: local_names(tab) == ["big.bin", "notes.txt"], "local listing"
            )
            tab.query_one("#ftp-host", Input).value = "127.0.0.1"
            tab.query_one("#ftp-port", Input).value = str(pyftpdlib_port)
            tab.query_one("#ftp-user", Input).value = "mallory"
            tab.query_one("#ftp-password", Input).value = "guess"
            tab.query_one("#ftp-password", Input).focus()
            await pilot.press("enter")
            await wait_until(
                pilot,
                lambda: any("FTP 530" in note for note in notifications(pilot.app)),
                "530 notice",
            )
            assert tab.client is None
            tab.query_one("#ftp-user", Input).value = ""
            tab.query_one("#ftp-password", Input).value = ""
            await pilot.click("#ftp-connect")
            await wait_until(pilot, lambda: tab.client is not None, "anonymous login")

    run(scenario)


def test_endpoint_comes_from_the_server_manager(
    pyftpdlib_port: int, dirs: tuple[Path, Path]
) -> None:
    """The app starts its servers after the tabs mount: the tab notices and connects by itself."""
    local, _ = dirs

    async def scenario() -> None:
        tab = FtpTab(local_dir=local)
        manager = FakeServerDirectory({})
        async with tab_alone(tab, server_manager=manager, size=(140, 40)) as pilot:
            await pilot.pause()
            assert tab.client is None
            manager.move(tab, "ftp", ("127.0.0.1", pyftpdlib_port))
            await wait_until(
                pilot, lambda: "readme.txt" in remote_names(tab), "auto-connected listing"
            )
            assert tab.query_one("#ftp-port", Input).value == str(pyftpdlib_port)

    run(scenario)


def test_typed_address_is_not_overwritten(pyftpdlib_port: int, dirs: tuple[Path, Path]) -> None:
    local, _ = dirs

    async def scenario() -> None:
        tab = FtpTab(local_dir=local)
        manager = FakeServerDirectory({})
        async with tab_alone(tab, server_manager=manager, size=(140, 40)) as pilot:
            tab.query_one("#ftp-host", Input).value = "localhost"
            tab.query_one("#ftp-port", Input).value = "2121"
            manager.move(tab, "ftp", ("127.0.0.1", pyftpdlib_port))
            await pilot.pause()
            assert tab.query_one("#ftp-port", Input).value == "2121"
            assert tab.client is None

    run(scenario)


def test_cancel_a_running_download(slow_pyftpdlib_port: int, dirs: tuple[Path, Path]) -> None:
    local, remote = dirs
    (remote / "huge.bin").write_bytes(b"\0" * (16 * 1024 * 1024))  # 16 s at 1 MiB/s

    async def scenario() -> None:
        tab = RecordingFtpTab(endpoint=("127.0.0.1", slow_pyftpdlib_port), local_dir=local)
        async with tab_alone(tab, size=(140, 40)) as pilot:
            await wait_until(pilot, lambda: "huge.bin" in remote_names(tab), "remote listing")
            await focus_entry(pilot, tab.remote_pane, "huge.bin")
            await pilot.press("d")
            await wait_until(pilot, lambda: bool(tab.progress_seen), "transfer under way")
            await pilot.press("x")
            await wait_until(pilot, lambda: not tab.transferring, "transfer stopped")
            assert "cancelled" in str(tab.query_one("#ftp-transfer-label", Label).render())
            assert not (local / "huge.bin").exists()
            assert not list(local.glob(".*.part"))

    run(scenario)


# ---------------------------------------------------------------------------
# Snapshot


def _snapshot_local_dir(base: Path) -> Path:
    local = base / "classroom"
    (local / "exercises").mkdir(parents=True)
    (local / "notes.md").write_text("# notes\n" * 40)
    (local / "server.py").write_text("print('hi')\n" * 300)
    return local


def test_snapshot_no_server(snap_compare: Any, tmp_path: Path) -> None:
    local = _snapshot_local_dir(tmp_path)
    app = TabHarness(FtpTab(local_dir=local), server_manager=FakeServerDirectory({}))

    async def settle(pilot: Pilot[Any]) -> None:
        tab = app.tab
        await wait_until(pilot, lambda: bool(tab.local_pane.entries), "local listing")
        # The title shows the absolute path and the times the local zone: show stable ones.
        entries = [replace(entry, modified=SNAPSHOT_TIME) for entry in tab.local_pane.entries]
        tab.local_pane.show_entries("~/classroom", entries, can_go_up=True)
        tab.local_pane.focus_table()
        await pilot.pause()

    assert snap_compare(app, terminal_size=(120, 30), run_before=settle)


def test_a_rate_limited_upload_shows_its_eta_and_takes_its_time(
    our_ftp_port: int, dirs: tuple[Path, Path]
) -> None:
    import time

    local, remote = dirs
    (remote / "uploads").mkdir()
    size = 150 * 1024
    (local / "paced.bin").write_bytes(b"\x09" * size)

    async def scenario() -> None:
        tab = FtpTab(endpoint=("127.0.0.1", our_ftp_port), local_dir=local)
        async with tab_alone(tab, size=(140, 40)) as pilot:
            await wait_until(pilot, lambda: "uploads" in remote_names(tab), "remote listing")
            await focus_entry(pilot, tab.remote_pane, "uploads")
            await pilot.press("enter")
            await wait_until(pilot, lambda: tab.remote_path == "/uploads", "in uploads/")
            rate_box = tab.query_one("#ftp-rate", Input)

            rate_box.value = "0"
            await focus_entry(pilot, tab.local_pane, "paced.bin")
            await pilot.press("u")
            await wait_until(
                pilot,
                lambda: any("Limit must be" in n for n in notifications(pilot.app)),
                "refused",
            )
            assert not tab.transferring and rate_box.value == "0"  # nothing lost or started

            rate_box.value = "100"
            label = tab.query_one("#ftp-transfer-label", Label)
            started = time.monotonic()
            await pilot.press("u")
            shown: list[str] = []
            while not str(label.render()).startswith("Uploaded"):
                shown.append(str(label.render()))
                assert time.monotonic() - started < 10, shown[-1]
                await pilot.pause(0.05)
            elapsed = time.monotonic() - started
            assert elapsed >= size / (100 * 1024)
            assert any(" ETA 0:0" in text and "KiB/s" in text for text in shown), shown
            assert (remote / "uploads" / "paced.bin").read_bytes() == b"\x09" * size

    run(scenario)


def test_eta_format() -> None:
    from workbench.tabs.ftp import format_eta, parse_rate_limit

    assert [format_eta(s) for s in (0, 7.4, 65, 3725)] == ["0:00", "0:07", "1:05", "1:02:05"]
    assert parse_rate_limit("") is None and parse_rate_limit(" 64 ") == 64 * 1024
    for bad in ("0", "-5", "fast"):
        with pytest.raises(ValueError, match="whole number of KiB/s"):
            parse_rate_limit(bad)


# ---------------------------------------------------------------------------
# Keyboard and mouse in the file lists


@pytest.fixture
def many_files(tmp_path: Path) -> Path:
    folder = tmp_path / "many"
    (folder / "sub").mkdir(parents=True)
    for name in ("alpha.txt", "beta.txt", "bravo.txt", "data.csv", "zulu.txt"):
        (folder / name).write_text(name)
    # Wider than the pane: End used to scroll the table sideways and cut the names off.
    (folder / ("long-" * 30 + ".txt")).write_text("long")
    return folder


def cursor_name(pane: Any) -> str:
    entry = pane.selected_entry
    return entry.name if entry is not None else ".."


def test_home_and_end_go_to_the_first_and_last_row_without_scrolling_sideways(
    many_files: Path,
) -> None:
    async def scenario() -> None:
        tab = FtpTab(local_dir=many_files)
        async with tab_alone(tab, size=(120, 30)) as pilot:
            pane = tab.local_pane
            await wait_until(pilot, lambda: "zulu.txt" in local_names(tab), "listing")
            await focus_entry(pilot, pane, "beta.txt")
            assert pane.table.max_scroll_x > 0  # the long name makes the table scrollable
            await pilot.press("end")
            assert cursor_name(pane) == "zulu.txt"
            assert pane.table.scroll_x == 0
            await pilot.press("home")
            assert cursor_name(pane) == ".."  # the parent row is the first row
            assert pane.table.scroll_x == 0

    run(scenario)


def test_typing_a_name_jumps_to_it(many_files: Path) -> None:
    async def scenario() -> None:
        tab = FtpTab(local_dir=many_files)
        async with tab_alone(tab, size=(120, 30)) as pilot:
            pane = tab.local_pane
            await wait_until(pilot, lambda: "zulu.txt" in local_names(tab), "listing")
            pane.focus_table()
            await pilot.press("b")
            assert cursor_name(pane) == "beta.txt"
            await pilot.press("r")
            assert cursor_name(pane) == "bravo.txt"
            status = pane.query_one(".ftp-pane-status", Label)
            assert "Find: br" in str(status.render())
            await pilot.press("escape")
            assert "Find" not in str(status.render())
            # d is Download: a find that starts with it begins with "/".
            await pilot.press("slash", "d", "a")
            assert cursor_name(pane) == "data.csv"
            await pilot.press("escape", "Z")
            assert cursor_name(pane) == "zulu.txt"  # case does not matter
            await pilot.press("q")
            assert cursor_name(pane) == "zulu.txt"
            assert "no such name" in str(status.render())
            # A pause ends the find: the line goes back to the listing's summary.
            await wait_until(pilot, lambda: "Find" not in str(status.render()), "find over")
            assert str(status.render()) == "1 folder, 6 files"

    run(scenario)


def test_the_path_box_goes_where_it_is_told_and_keeps_a_bad_path(
    many_files: Path, our_ftp_port: int, dirs: tuple[Path, Path]
) -> None:
    (dirs[1] / "books" / "poems").mkdir()

    async def scenario() -> None:
        tab = FtpTab(endpoint=("127.0.0.1", our_ftp_port), local_dir=many_files)
        async with tab_alone(tab, size=(120, 30)) as pilot:
            await wait_until(pilot, lambda: "books" in remote_names(tab), "remote listing")
            local_box = tab.local_pane.path_input
            local_box.focus()
            local_box.value = "sub"
            await pilot.press("enter")
            await wait_until(pilot, lambda: tab.local_path == many_files / "sub", "local sub/")
            assert local_box.value == str(many_files / "sub")
            assert pilot.app.focused is tab.local_pane.table  # back in the list

            local_box.focus()
            local_box.value = "no/such/folder"
            await pilot.press("enter")
            await wait_until(
                pilot,
                lambda: any("cannot open" in n for n in notifications(pilot.app)),
                "local error",
            )
            assert local_box.value == "no/such/folder"
            assert tab.local_path == many_files / "sub"

            remote_box = tab.remote_pane.path_input
            remote_box.focus()
            remote_box.value = "/books/poems"
            await pilot.press("enter")
            await wait_until(pilot, lambda: tab.remote_path == "/books/poems", "remote folder")
            assert remote_box.value == "/books/poems"
            remote_box.focus()
            remote_box.value = "/nowhere"
            await pilot.press("enter")
            await wait_until(
                pilot, lambda: any("FTP 550" in n for n in notifications(pilot.app)), "remote error"
            )
            await pilot.pause(0.1)
            assert remote_box.value == "/nowhere"  # kept to edit
            assert tab.remote_path == "/books/poems"

    run(scenario)


def test_a_click_on_the_highlighted_folder_opens_it(tmp_path: Path) -> None:
    many_files = tmp_path / "few"
    (many_files / "sub").mkdir(parents=True)
    (many_files / "notes.txt").write_text("notes")

    async def scenario() -> None:
        tab = FtpTab(local_dir=many_files)
        async with tab_alone(tab, size=(120, 30)) as pilot:
            pane = tab.local_pane
            await wait_until(pilot, lambda: "sub" in local_names(tab), "listing")
            await focus_entry(pilot, pane, "sub")
            table = pane.table
            row = table.cursor_row
            # Click the Size cell of the highlighted row: anywhere on the row opens it.
            name_width = table.ordered_columns[0].get_render_width(table)
            await pilot.click(table, offset=(name_width + 2, 1 + row))
            await wait_until(pilot, lambda: tab.local_path == many_files / "sub", "opened")

    run(scenario)
