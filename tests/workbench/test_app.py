"""The workbench app: tabs, default servers, help, themes, command palette, CLI and data folder."""

from __future__ import annotations

import asyncio
import gc
import time

import psutil
import pytest
from textual.widgets import TabbedContent

from tests.helpers.pilot import run_async, wait_until
from workbench import __main__ as cli
from workbench.app import (
    GC_YOUNG_THRESHOLD,
    UnavailableTab,
    WorkbenchApp,
    WorkbenchFooter,
    load_tab,
)
from workbench.data import LIBRARY_FOLDER, SITE_FOLDER, ensure_data_dir, server_options
from workbench.help import MODEL_GUIDES, HelpScreen, build_help
from workbench.themes import WORKBENCH_THEMES, resolve_theme_name

pytestmark = pytest.mark.timeout(60)

SIZE = (140, 42)


# -- the app -----------------------------------------------------------------------------


@run_async
async def test_five_tabs_in_order_and_each_is_the_real_tab(manager):
    app = WorkbenchApp(server_manager=manager, start_servers=False)
    async with app.run_test(size=SIZE) as pilot:
        tabs = app.query_one(TabbedContent)
        assert [pane.id for pane in tabs.query_one("ContentSwitcher").children] == [
            "chat",
            "ftp",
            "http",
            "servers",
            "labs",
        ]
        assert tabs.active == "chat"

        def focus_is_in(pane_id: str) -> bool:
            return app.focused is not None and app.query_one(f"#{pane_id}") in app.focused.ancestors

        await wait_until(pilot, lambda: focus_is_in("chat"))
        real_tab = {
            "chat": "ChatTab",
            "ftp": "FtpTab",
            "http": "HttpTab",
            "servers": "ServersTab",
            "labs": "LabsTab",
        }

        def built(pane_id: str) -> bool:
            children = app.query_one(f"#{pane_id}").children
            return bool(children) and type(children[0]).__name__ == real_tab[pane_id]

        # Startup builds the tab shown and the Servers panel; the others wait to be shown.
        assert [pane_id for pane_id in real_tab if built(pane_id)] == ["chat", "servers"]
        for key, pane_id in (
            ("f5", "servers"),
            ("f6", "labs"),
            ("f3", "ftp"),
            ("f4", "http"),
            ("f2", "chat"),
        ):
            await pilot.press(key)
            await wait_until(pilot, lambda pane_id=pane_id: tabs.active == pane_id)
            assert built(pane_id)
            assert not app.query_one(f"#{pane_id}").query(UnavailableTab)
            # Focus lands inside the tab, so the footer shows the tab's own bindings.
            await wait_until(
                pilot,
                lambda pane_id=pane_id: (
                    app.focused is not None
                    and app.query_one(f"#{pane_id}") in app.focused.ancestors
                ),
            )


@run_async
async def test_a_tab_switch_moves_focus_straight_into_the_new_tab(manager):
    app = WorkbenchApp(server_manager=manager, start_servers=False)
    async with app.run_test(size=SIZE) as pilot:
        chat = app.query_one("#chat")
        await wait_until(pilot, lambda: app.focused is not None and chat in app.focused.ancestors)
        focus_changes = []
        app.screen.watch(
            app.screen, "focused", lambda widget: focus_changes.append(widget), init=False
        )
        await pilot.press("f3")
        await pilot.pause()
        await pilot.pause()
        # One focus change, into the FTP tab: not via the tab bar first.
        ftp = app.query_one("#ftp")
        assert len(focus_changes) == 1
        assert ftp in focus_changes[0].ancestors
        assert app.focused is focus_changes[0]
        footer = app.query_one(WorkbenchFooter)
        await wait_until(
            pilot,
            lambda: "Download" in " ".join(str(k.render()) for k in footer.query("FooterKey")),
        )
        # F3 again on the FTP tab leaves focus where the user put it.
        await pilot.press("tab")
        remote = app.focused
        assert remote is not None and ftp in remote.ancestors
        await pilot.press("f3")
        await pilot.pause()
        assert app.focused is remote


@run_async
async def test_footer_rebuilds_once_for_a_burst_of_binding_changes(manager, monkeypatch):
    rebuilds = []
    original = WorkbenchFooter.recompose

    async def counting_recompose(self):
        rebuilds.append(time.monotonic())
        await original(self)

    monkeypatch.setattr(WorkbenchFooter, "recompose", counting_recompose)
    app = WorkbenchApp(server_manager=manager, start_servers=False)
    async with app.run_test(size=SIZE) as pilot:
        footer = app.query_one(WorkbenchFooter)

        def footer_text() -> str:
            return " ".join(str(key.render()) for key in footer.query("FooterKey"))

        await pilot.press("f3")  # the FTP tab: its bindings in the footer
        await wait_until(pilot, lambda: "Download" in footer_text())
        await pilot.pause()
        # Binding signals that change nothing on show rebuild nothing.
        rebuilds.clear()
        for _ in range(5):
            app.screen.refresh_bindings()
        await pilot.pause()
        await pilot.pause()
        assert rebuilds == []
        # A burst that does change them (focus to the tab bar, and more signals): one rebuild.
        app.query_one("#tabs > ContentTabs").focus()
        for _ in range(5):
            app.screen.refresh_bindings()
        await pilot.pause()
        await pilot.pause()
        assert len(rebuilds) == 1
        assert "Download" not in footer_text()
        assert "Help" in footer_text()


@run_async
async def test_the_app_eases_the_garbage_collector_while_it_runs_and_restores_it(manager):
    threshold = gc.get_threshold()
    app = WorkbenchApp(server_manager=manager, start_servers=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: gc.get_freeze_count() > 0)
        assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == threshold


def test_a_tab_that_fails_to_import_becomes_a_clear_notice():
    widget = load_tab("Chat", "workbench.tabs.no_such_tab", "ChatTab")
    assert isinstance(widget, UnavailableTab)
    assert "not available" in str(widget.render())
    assert "ModuleNotFoundError" in str(widget.render())


@run_async
async def test_default_servers_start_serve_the_data_folder_and_stop_on_quit(manager):
    app = WorkbenchApp(server_manager=manager, start_servers=True, models={"http": "threads"})
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(
            pilot, lambda: all(manager.endpoint(p) for p in ("chat", "ftp", "http")), timeout=40
        )
        assert manager.row("http").model == "threads"
        assert manager.row("ftp").model == "threads"
        assert manager.row("http").state == "running"
        host, port = manager.endpoint("http")
        # The HTTP server serves the data folder's site copied on first run.
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), timeout=10)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 200")
        pids = [manager.row(p).pid for p in ("chat", "ftp", "http")]
        await pilot.press("ctrl+q")
    assert [pid for pid in pids if psutil.pid_exists(pid)] == []


@run_async
async def test_a_default_server_that_cannot_start_is_a_notification(manager):
    app = WorkbenchApp(server_manager=manager, start_servers=True, models={"ftp": "no-such-model"})
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(
            pilot, lambda: any("ftp" in note.message for note in app._notifications), timeout=40
        )
        await wait_until(pilot, lambda: manager.endpoint("http") is not None, timeout=40)
        assert manager.endpoint("ftp") is None
        message = next(note.message for note in app._notifications if "ftp" in note.message)
        assert "Could not start the ftp server (no-such-model)" in message
        assert "unknown model" in message


@run_async
async def test_f1_explains_the_tab_and_its_running_model(manager):
    app = WorkbenchApp(server_manager=manager, start_servers=False, initial_tab="servers")
    async with app.run_test(size=SIZE) as pilot:
        app.servers_tab.start_server("echo", "threads")
        await wait_until(pilot, lambda: app.servers_tab.selected_row is not None)
        await pilot.press("f1")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = app.screen.markdown
        assert "# Servers tab" in text
        assert "多线程并发模型" in text
        assert "Thread per connection" in text
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, HelpScreen))
        # On the FTP tab the help is the FTP tab's own, plus the FTP server's model if running.
        await pilot.press("f3")
        await pilot.press("f1")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        assert "# FTP tab" in app.screen.markdown
        assert "No server is running for this tab" in app.screen.markdown


def test_every_model_has_a_guide_with_its_course_term():
    from servers.registry import MODELS

    for model in MODELS:
        guide = MODEL_GUIDES[model]
        assert guide.course_term and guide.how_it_works and guide.what_to_watch
    assert "3.1.1" in build_help("Servers", "x", [("http", "processes")])


@run_async
async def test_themes_are_registered_and_selectable(manager):
    app = WorkbenchApp(server_manager=manager, start_servers=False, theme_name="contrast")
    async with app.run_test(size=SIZE) as pilot:
        assert app.theme == "workbench-contrast"
        for theme in WORKBENCH_THEMES:
            assert theme.name in app.available_themes
        app.theme = "workbench-light"
        await pilot.pause()
        assert app.current_theme.dark is False


def test_theme_aliases():
    assert resolve_theme_name("light") == "workbench-light"
    assert resolve_theme_name("High-Contrast") == "workbench-contrast"
    assert resolve_theme_name(None) == "workbench-dark"
    assert resolve_theme_name("textual-dark") == "textual-dark"


@run_async
async def test_command_palette_offers_the_main_actions(manager):
    app = WorkbenchApp(server_manager=manager, start_servers=False, initial_tab="servers")
    async with app.run_test(size=SIZE) as pilot:
        app.servers_tab.start_server("echo", "threads")
        await wait_until(pilot, lambda: manager.endpoint("echo") is not None)
        titles = {command.title for command in app.get_system_commands(app.screen)}
        for expected in (
            "Help",
            "Start a server…",
            "Stop all servers",
            "Restart echo",
            "Change model of echo…",
            "Go to Servers",
            "Use the high-contrast theme",
        ):
            assert expected in titles
        await pilot.press("ctrl+p")
        await pilot.press(*"stop all")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_until(pilot, lambda: manager.row("echo").state == "stopped")


# -- command line ---------------------------------------------------------------------------


def test_model_option_parses_and_rejects_bad_values(capsys):
    options = cli.build_parser().parse_args(["--model", "http=epoll", "--model", "ftp=pool"])
    assert dict(options.model) == {"http": "epoll", "ftp": "pool"}
    for bad in ("http", "http=nope", "gopher=epoll"):
        with pytest.raises(SystemExit) as exit_info:
            cli.build_parser().parse_args(["--model", bad])
        assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "expected PROTOCOL=MODEL" in error
    assert "unknown model 'nope'" in error
    assert "unknown protocol 'gopher'" in error


def test_bench_subcommand_is_delegated_to_the_load_generator(monkeypatch):
    seen = []

    def fake_cli_main(argv):
        seen.append(argv)
        return 3

    import workbench.clients.loadgen as loadgen

    monkeypatch.setattr(loadgen, "cli_main", fake_cli_main)
    assert cli.main(["bench", "http://127.0.0.1:1/", "-n", "5"]) == 3
    assert seen == [["http://127.0.0.1:1/", "-n", "5"]]


def test_main_runs_the_app_with_the_options(monkeypatch, tmp_path):
    calls = []
    import workbench.app

    monkeypatch.setattr(workbench.app, "run_app", lambda **kwargs: calls.append(kwargs))
    data = tmp_path / "data"
    assert cli.main(["--no-servers", "--data", str(data), "--theme", "light"]) == 0
    (call,) = calls
    assert call["start_servers"] is False
    assert call["theme_name"] == "light"
    assert call["data_dir"] == data.resolve()
    assert (data / SITE_FOLDER / "index.html").is_file()


def test_unusable_data_folder_is_a_clear_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert cli.main(["--no-servers", "--data", str(blocker / "sub")]) == 2
    assert "cannot prepare the data folder" in capsys.readouterr().err


# -- data folder ----------------------------------------------------------------------------


def test_data_folder_is_copied_once_and_never_overwritten(tmp_path):
    data_dir = ensure_data_dir(tmp_path / "wb")
    index = data_dir / SITE_FOLDER / "index.html"
    assert index.is_file()
    assert any((data_dir / LIBRARY_FOLDER).iterdir())
    index.write_text("edited by the user")
    ensure_data_dir(tmp_path / "wb")
    assert index.read_text() == "edited by the user"
    assert server_options("http", data_dir) == {"root": str(data_dir / SITE_FOLDER)}
    assert server_options("ftp", data_dir) == {"root": str(data_dir / LIBRARY_FOLDER)}
    assert server_options("chat", data_dir) == {}
