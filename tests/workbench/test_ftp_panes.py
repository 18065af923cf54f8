"""Pilot tests of the FTP tab's panes as regions: the local pane's own mkdir/rename/delete through
LocalFiles, and the remote pane giving up its login when the server goes away."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import Input, Label

from servers.launcher import running_server
from workbench.tabs.ftp import NO_SERVER_TEXT, FtpTab
from workbench.widgets.ftp_dialogs import FtpConfirmScreen, FtpPromptScreen
from workbench.widgets.ftp_file_pane import FtpFilePane

pytestmark = pytest.mark.timeout(60)


class TabOnly(App[None]):
    def __init__(self, tab: FtpTab) -> None:
        super().__init__()
        self.tab = tab

    def compose(self) -> ComposeResult:
        yield self.tab


async def until(pilot: Pilot[Any], condition: Callable[[], bool], what: str) -> None:
    """Let the app run until ``condition`` holds; the panes report back through messages."""
    for _ in range(750):
        if condition():
            return
        await pilot.pause(0.02)
    notes = [f"{note.title}|{note.message}" for note in pilot.app._notifications]
    raise AssertionError(f"timed out waiting for: {what}; notices: {notes}")


def listed(pane: FtpFilePane) -> list[str]:
    return [entry.name for entry in pane.entries]


def status(pane: FtpFilePane) -> str:
    return str(pane.query_one(".ftp-pane-status", Label).render())


async def answer_prompt(pilot: Pilot[Any], text: str) -> None:
    await until(pilot, lambda: isinstance(pilot.app.screen, FtpPromptScreen), "the prompt")
    pilot.app.screen.query_one(Input).value = text
    await pilot.press("enter")


def test_the_local_pane_makes_renames_and_deletes_on_disk(tmp_path: Path) -> None:
    (tmp_path / "docs" / "deep").mkdir(parents=True)
    (tmp_path / "docs" / "deep" / "page.txt").write_text("page")
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "b.txt").write_text("b")

    async def scenario() -> None:
        tab = FtpTab(local_dir=tmp_path)
        app = TabOnly(tab)
        async with app.run_test(size=(140, 40)) as pilot:
            pane = tab.local_pane
            await until(pilot, lambda: listed(pane) == ["docs", "a.txt", "b.txt"], "listing")
            assert NO_SERVER_TEXT in status(tab.remote_pane)  # the remote side has no source
            pane.focus_table()

            await pilot.press("m")
            await answer_prompt(pilot, "new")
            await until(pilot, lambda: "new" in listed(pane), "the new folder listed")
            assert (tmp_path / "new").is_dir()
            assert pane.selected_entry is not None and pane.selected_entry.name == "new"

            assert pane.select_name("a.txt")
            await pilot.press("r")
            await answer_prompt(pilot, "b.txt")  # a listed name: refused before touching the disk
            await until(
                pilot,
                lambda: any("Local: b.txt already exists" in n.message for n in app._notifications),
                "the refusal",
            )
            assert (tmp_path / "a.txt").read_text() == "a" and (
                tmp_path / "b.txt"
            ).read_text() == "b"
            await pilot.press("r")
            await answer_prompt(pilot, "c.txt")
            await until(pilot, lambda: "c.txt" in listed(pane), "the renamed file listed")
            assert not (tmp_path / "a.txt").exists() and (tmp_path / "c.txt").read_text() == "a"

            assert pane.select_name("docs")
            await pilot.press("delete")
            await until(pilot, lambda: isinstance(app.screen, FtpConfirmScreen), "the question")
            assert "the local folder docs and everything in it" in str(
                app.screen.query_one(".ftp-dialog-message", Label).render()
            )
            await pilot.press("y")
            await until(pilot, lambda: "docs" not in listed(pane), "the folder gone")
            assert not (tmp_path / "docs").exists()

            (tmp_path / "late").mkdir()  # made behind the listing's back
            await pilot.press("m")
            await answer_prompt(pilot, "late")
            await until(pilot, lambda: "late" in listed(pane), "the relisting after the error")
            assert status(pane) == "Local: cannot create folder late: it already exists"
            assert any(
                n.title == "FTP error" and n.message == status(pane) for n in app._notifications
            )

    asyncio.run(scenario())


def test_a_server_that_goes_away_takes_the_remote_login_with_it(tmp_path: Path) -> None:
    (tmp_path / "served").mkdir()
    (tmp_path / "served" / "readme.txt").write_text("hello")

    async def scenario(server: Any) -> None:
        tab = FtpTab(endpoint=("127.0.0.1", server.port), local_dir=tmp_path)
        app = TabOnly(tab)
        async with app.run_test(size=(140, 40)) as pilot:
            await until(pilot, lambda: listed(tab.remote_pane) == ["readme.txt"], "listing")
            await asyncio.to_thread(server.stop)
            tab.remote_pane.focus_table()
            await pilot.press(
                "ctrl+r"
            )  # the relist finds the login gone, and no server to renew it
            await until(pilot, lambda: tab.client is None, "the login dropped")
            top_status = str(tab.query_one("#ftp-status", Label).render())
            assert top_status == "Connection lost — press Connect to reconnect"
            assert status(tab.remote_pane) == "Not connected" and tab.remote_pane.entries == []
            assert str(tab.query_one("#ftp-connect").label) == "Connect"  # type: ignore[attr-defined]
            assert listed(tab.local_pane) == ["served"]  # the local side carries on

    with running_server("ftp", "threads", options={"root": str(tmp_path / "served")}) as server:
        asyncio.run(scenario(server))
