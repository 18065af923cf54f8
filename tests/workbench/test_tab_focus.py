"""Coming back to the Chat or FTP tab puts the focus where it was; Tab walks a short, useful order."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable

from tests.helpers.pilot import run_async, wait_until
from workbench.app import WorkbenchApp
from workbench.tabs.chat import ChatTab
from workbench.tabs.ftp import FtpTab

pytestmark = pytest.mark.timeout(60)

SIZE = (140, 42)


@run_async
async def test_returning_to_a_tab_restores_its_last_focus(manager):
    app = WorkbenchApp(server_manager=manager, start_servers=False)
    async with app.run_test(size=SIZE) as pilot:
        chat = app.query_one(ChatTab)
        await wait_until(pilot, lambda: app.focused is not None, "first focus")
        bobs_name = chat.panes[1].name_input
        bobs_name.focus()
        await pilot.press("f3")
        ftp = app.query_one(FtpTab)
        await wait_until(pilot, lambda: app.focused in ftp.query("*"), "focus in FTP")
        remote_table = ftp.remote_pane.query_one(DataTable)
        remote_table.focus()
        await pilot.pause()
        await pilot.press("f2")
        await wait_until(pilot, lambda: app.focused is bobs_name, "bob's name box again")
        await pilot.press("f3")
        await wait_until(pilot, lambda: app.focused is remote_table, "the remote list again")


@run_async
async def test_tab_walks_inputs_not_every_widget(manager):
    app = WorkbenchApp(server_manager=manager, start_servers=False)
    async with app.run_test(size=SIZE) as pilot:
        chat = app.query_one(ChatTab)
        alice, bob = chat.panes
        alice.name_input.focus()
        await pilot.pause()
        walked = []
        while not walked or walked[-1] is not alice.name_input:
            await pilot.press("tab")
            walked.append(app.focused)
            assert len(walked) < 20, walked
        # Out of the room a pane has one stop, its name box (not its button or log), and the
        # connection bar has its four: one round is the tab bar plus those.
        bar = [chat.query_one(f"#chat-{name}") for name in ("host", "port", "transport", "add")]
        stops = [widget for widget in walked if widget in chat.query("*")]
        assert set(stops) == {*bar, alice.name_input, bob.name_input}
        assert len(walked) == 7, walked


@run_async
async def test_the_ftp_tab_starts_in_the_file_list_and_tab_walks_pane_by_pane(manager):
    app = WorkbenchApp(server_manager=manager, start_servers=False)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.focused is not None, "first focus")
        await pilot.press("f3")
        ftp = app.query_one(FtpTab)
        local, remote = ftp.local_pane, ftp.remote_pane
        await wait_until(pilot, lambda: app.focused is local.table, "the local list first")
        walked = []
        for _ in range(3):
            await pilot.press("tab")
            walked.append(app.focused)
        assert walked == [remote.path_input, remote.table, app.query_one("ContentTabs")]
