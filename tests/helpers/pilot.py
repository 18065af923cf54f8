"""Running Pilot scenarios and waiting on an app by polling with a deadline, never a fixed sleep."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from rich.syntax import Syntax
from rich.text import Text
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Footer, Static

#: How often ``wait_until`` looks again, seconds: short, so a test waits little past the event.
POLL_INTERVAL = 0.02


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    """Run one async scenario in a fresh event loop (the suite has no asyncio plugin)."""
    asyncio.run(scenario())


def run_async(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Decorate an async Pilot test so pytest runs it in a fresh event loop."""

    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return wrapper


def notifications(app: App[Any]) -> list[str]:
    """Every notification the app is showing, as ``title|message``."""
    return [f"{note.title}|{note.message}" for note in app._notifications]


def notices(app: App[Any]) -> list[str]:
    """The messages of the notifications the app is showing."""
    return [note.message for note in app._notifications]


def shown(static: Static) -> str:
    """The plain text a Static shows, whatever it was given (str, Text or Syntax)."""
    content = static.content
    if isinstance(content, Text):
        return content.plain
    if isinstance(content, Syntax):
        return content.code
    return str(content)


def describe(app: App[Any]) -> str:
    """What a timed-out wait reports: notices, screen, focus, workers and server rows."""
    focused = app.focused
    chain = [node.id for node in getattr(focused, "ancestors", [])]
    parts = [
        f"notices: {notifications(app)}",
        f"screen: {app.screen!r}",
        f"focused: {focused!r} in {chain}",
        f"workers: {[(worker.name, worker.state) for worker in app.workers]}",
    ]
    try:
        parts.append(f"rows: {app.servers_tab.rows}")  # type: ignore[attr-defined]
    except Exception:  # a tab's harness has no Servers tab, a quitting app has lost it
        pass
    return "; ".join(parts)


async def wait_until(
    pilot: Pilot[Any],
    condition: Callable[[], object],
    what: str = "the condition",
    timeout: float = 20.0,
) -> None:
    """Let the app run until ``condition()`` holds; fail after ``timeout`` seconds, saying why."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}; {describe(pilot.app)}")
        await pilot.pause(POLL_INTERVAL)


class TabHarness(App[None]):
    """One tab alone in an app, with a footer and a stand-in for the app's directory of servers."""

    def __init__(self, tab: Widget, server_manager: Any = None) -> None:
        super().__init__()
        self.tab = tab
        self.server_manager = server_manager
        # The snapshots' window title, from when each tab test had its own harness class.
        self.title = f"{type(tab).__name__}Harness"

    def compose(self) -> ComposeResult:
        yield self.tab
        yield Footer()


@contextlib.asynccontextmanager
async def tab_alone(
    tab: Widget, server_manager: Any = None, size: tuple[int, int] = (140, 36)
) -> AsyncIterator[Pilot[None]]:
    """Run ``tab`` alone in a :class:`TabHarness` for the block; the app is ``pilot.app``."""
    app = TabHarness(tab, server_manager)
    async with app.run_test(size=size) as pilot:
        yield pilot
