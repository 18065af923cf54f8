"""Tabs follow their server from the app's EndpointChanged: a real restart on a new port, no polling."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Input

from workbench.app import WorkbenchApp
from workbench.data import ensure_data_dir
from workbench.messages import EndpointChanged
from workbench.server_manager import ServerManager
from workbench.server_records import Address
from workbench.tabs.chat import ChatTab
from workbench.tabs.ftp import FtpTab
from workbench.tabs.http import HttpTab

pytestmark = pytest.mark.timeout(90)

SIZE = (140, 42)
#: How often the tabs used to ask where their server was: watching longer than this proves
#: they no longer ask on a timer.
OLD_POLL_SECONDS = 1.0


async def wait_until(
    pilot: Pilot[Any], condition: Callable[[], bool], what: str, timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            notices = [note.message for note in pilot.app._notifications]
            raise AssertionError(f"timed out waiting for {what}; notices: {notices}")
        await pilot.pause(0.02)


class CountingManager(ServerManager):
    """The real manager, counting how often anyone asks where a server is."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.endpoint_calls = 0

    def endpoint(self, protocol: str) -> Address | None:
        self.endpoint_calls += 1
        return super().endpoint(protocol)


@pytest.fixture
def manager(tmp_path) -> Iterator[CountingManager]:
    server_manager = CountingManager(ensure_data_dir(tmp_path / "data"), publish_interval=0.2)
    yield server_manager
    server_manager.close()


def shown_addresses(app: WorkbenchApp) -> dict[str, str]:
    return {
        "chat": app.query_one("#chat-port", Input).value,
        "ftp": app.query_one("#ftp-port", Input).value,
        "http": app.query_one("#url", Input).value,
    }


def showing(app: WorkbenchApp, ports: dict[str, int]) -> bool:
    shown = shown_addresses(app)
    return (
        shown["chat"] == str(ports["chat"])
        and shown["ftp"] == str(ports["ftp"])
        and shown["http"] == f"http://127.0.0.1:{ports['http']}/"
    )


def test_a_restart_on_a_new_port_reaches_every_tab_and_nobody_polls(manager) -> None:
    async def scenario() -> None:
        app = WorkbenchApp(server_manager=manager, start_servers=True)
        async with app.run_test(size=SIZE) as pilot:
            protocols = ("chat", "ftp", "http")
            await wait_until(
                pilot,
                lambda: all(manager.row(p) and manager.endpoint(p) for p in protocols),
                "servers",
            )
            before = {p: manager.endpoint(p)[1] for p in protocols}
            await show_every_client_tab(pilot)
            await wait_until(pilot, lambda: showing(app, before), "the tabs filled in")
            ftp = app.query_one(FtpTab)
            await wait_until(pilot, lambda: ftp.client is not None, "the FTP tab connected")

            # No timer left on the tabs to ask where their server is.
            for tab in (app.query_one(ChatTab), ftp, app.query_one(HttpTab)):
                assert not list(tab._timers), (type(tab).__name__, list(tab._timers))

            for protocol in protocols:
                await asyncio.to_thread(manager.restart, protocol, port=0)  # any free port
            after = {p: manager.endpoint(p)[1] for p in protocols}
            assert all(after[p] != before[p] for p in protocols), (before, after)
            await wait_until(pilot, lambda: showing(app, after), "the tabs followed", timeout=5)
            await wait_until(
                pilot,
                lambda: ftp.client is not None and ftp.client.port == after["ftp"],
                "the FTP tab reconnected to the new port",
            )

            # Left alone, the tabs do not ask the manager where their server is.
            asked = manager.endpoint_calls
            await pilot.pause(OLD_POLL_SECONDS * 1.5)
            assert manager.endpoint_calls == asked

    asyncio.run(scenario())


async def show_every_client_tab(pilot: Pilot[Any]) -> None:
    """Show FTP, HTTP, then Chat again: a tab is built the first time it is shown."""
    for key, pane_id in (("f3", "ftp"), ("f4", "http"), ("f2", "chat")):
        await pilot.press(key)
        await wait_until(
            pilot, lambda pane_id=pane_id: pilot.app.current_tab_id() == pane_id, pane_id
        )


def test_a_tab_first_shown_after_its_server_moved_shows_where_it_is_now(manager) -> None:
    async def scenario() -> None:
        app = WorkbenchApp(server_manager=manager, start_servers=True)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: manager.endpoint("http"), "the HTTP server")
            before = manager.endpoint("http")[1]
            assert not app.query(HttpTab)  # not shown yet, so not built yet
            await asyncio.to_thread(manager.restart, "http", port=0)
            after = manager.endpoint("http")[1]
            assert after != before
            await pilot.press("f4")
            await wait_until(
                pilot,
                lambda: (
                    app.query(HttpTab)
                    and app.query_one("#url", Input).value == f"http://127.0.0.1:{after}/"
                ),
                "the HTTP tab shows the new port",
            )

    asyncio.run(scenario())


class OneTab(App[None]):
    """A tab alone over a real manager, told of moves as the workbench tells its tabs."""

    def __init__(self, tab: Widget, manager: ServerManager) -> None:
        super().__init__()
        self.tab = tab
        self.server_manager = manager

    def compose(self) -> ComposeResult:
        yield self.tab


@pytest.mark.parametrize(
    ("make_tab", "protocol", "field", "given"),
    [
        (lambda: ChatTab(endpoint=("127.0.0.1", 7)), "chat", "#chat-port", "7"),
        (lambda: FtpTab(endpoint=("127.0.0.1", 7)), "ftp", "#ftp-port", "7"),
        (lambda: HttpTab(base_url="http://127.0.0.1:7"), "http", "#url", "http://127.0.0.1:7/"),
    ],
    ids=["chat", "ftp", "http"],
)
def test_an_address_given_to_the_tab_wins_over_the_apps_server(
    make_tab: Callable[[], Widget], protocol: str, field: str, given: str
) -> None:
    """``--connect`` or a tab built for one server: the app's moves do not drag it away."""
    manager = ServerManager()

    async def scenario() -> None:
        tab = make_tab()
        app = OneTab(tab, manager)
        async with app.run_test(size=SIZE) as pilot:
            box = tab.query_one(field, Input)
            await wait_until(pilot, lambda: box.value == given, "the given address")
            tab.post_message(EndpointChanged(protocol, ("127.0.0.1", 9)))
            await pilot.pause()
            await pilot.pause()
            assert box.value == given

    try:
        asyncio.run(scenario())
    finally:
        manager.close()
