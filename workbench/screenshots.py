"""Regenerate screenshots/*.svg, one per tab (Labs after a real run) plus the help screen: ``python -m workbench.screenshots``.

Runs the real app headless with the real chat, FTP and HTTP servers on free
ports, sends a little HTTP traffic so the Servers panel has something to show,
saves an SVG of every tab, and stops every server before it returns.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Input

from workbench.app import WorkbenchApp
from workbench.data import ensure_data_dir
from workbench.server_manager import ServerManager
from workbench.tabs.chat import ChatTab
from workbench.tabs.http import HttpTab
from workbench.tabs.labs import LabsTab

#: Terminal size of every screenshot: a common projector-friendly size.
SIZE = (130, 40)
#: (file name, key that shows it, theme) in README order.
SHOTS = (
    ("chat", "f2", "workbench-dark"),
    ("ftp", "f3", "workbench-dark"),
    ("http", "f4", "workbench-dark"),
    ("servers", "f5", "workbench-dark"),
    ("servers-light", "f5", "workbench-light"),
    ("help", "f1", "workbench-dark"),
    ("labs", "f6", "workbench-dark"),
)
#: The lab the Labs screenshot shows after a real run: 粘包, the course's first surprise.
SCREENSHOT_LAB = "framing"


def _send_some_requests(port: int, count: int = 12) -> None:
    for index in range(count):
        path = "/index.html" if index % 4 else "/missing"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
                answer.read()
        except OSError:  # the 404s: still a request for the log
            pass


async def _wait_for(pilot: Pilot, condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 20
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"screenshots: timed out waiting for {what}")
        await pilot.pause(0.05)


async def _show_tab(app: WorkbenchApp, pilot: Pilot, key: str, pane_id: str) -> None:
    """Press the tab's key and wait until it is shown (built, if this is its first showing)."""
    await pilot.press(key)
    await _wait_for(pilot, lambda: app.current_tab_id() == pane_id, f"the {pane_id} tab")


async def _chat_a_little(app: WorkbenchApp, pilot: Pilot) -> None:
    """Two members join the room and talk, as a class demo starts."""
    await _show_tab(app, pilot, "f2", "chat")
    chat = app.query_one(ChatTab)
    alice, bob = chat.panes[:2]
    for pane, name in ((alice, "alice"), (bob, "bob")):
        pane.name_input.value = name
        pane.name_input.focus()
        await pilot.press("enter")
        await _wait_for(pilot, lambda pane=pane, name=name: pane.joined_name == name, name)
    for pane, text in (
        (alice, "hi bob, is the room on UDP?"),
        (bob, "yes: one datagram per message, numbered"),
        (alice, "so a lost one shows up in the count"),
    ):
        pane.message_input.value = text
        pane.message_input.focus()
        await pilot.press("enter")
        await _wait_for(pilot, lambda pane=pane: not pane.message_input.value, "a message sent")
    await pilot.pause(0.5)


async def _send_from_the_http_tab(app: WorkbenchApp, pilot: Pilot, port: int) -> None:
    """One GET of the API's echo, so the response view is filled."""
    await _show_tab(app, pilot, "f4", "http")
    http = app.query_one(HttpTab)
    before = len(http.history)
    url = http.query_one("#url", Input)
    url.value = f"http://127.0.0.1:{port}/api/echo?lesson=sockets"
    url.focus()
    await pilot.press("ctrl+j")
    await _wait_for(pilot, lambda: len(http.history) > before, "the HTTP answer")


async def _run_a_lab(app: WorkbenchApp, pilot: Pilot) -> None:
    """A real run of one lab, in its child process, to its verdict."""
    await _show_tab(app, pilot, "f6", "labs")
    labs = app.query_one(LabsTab)
    labs.select_lab(SCREENSHOT_LAB)
    await pilot.press("r")
    await _wait_for(
        pilot,
        lambda: SCREENSHOT_LAB in labs.runs and labs.running is None,
        f"the {SCREENSHOT_LAB} lab",
    )
    if labs.runs[SCREENSHOT_LAB].state != "done":
        raise SystemExit(f"screenshots: the {SCREENSHOT_LAB} lab did not finish cleanly")
    await pilot.pause(0.5)


async def take_screenshots(output: Path, data_dir: Path) -> list[Path]:
    manager = ServerManager(data_dir)
    app = WorkbenchApp(server_manager=manager, start_servers=True)
    saved: list[Path] = []
    async with app.run_test(size=SIZE) as pilot:
        deadline = time.monotonic() + 60
        while not all(manager.endpoint(name) for name in ("chat", "ftp", "http")):
            if time.monotonic() > deadline:
                raise SystemExit("the servers did not start within 60 s")
            await pilot.pause(0.1)
        http_port = manager.endpoint("http")[1]
        await asyncio.to_thread(_send_some_requests, http_port)
        await _chat_a_little(app, pilot)
        await _send_from_the_http_tab(app, pilot, http_port)
        await pilot.pause(1.5)  # two stats batches and a psutil reading
        for name, key, theme in SHOTS:
            app.theme = theme
            if name == "help":
                await pilot.press("f5")
                app.servers_tab.select_server("http")
            if name == "labs":
                await _run_a_lab(app, pilot)
            await pilot.press(key)
            if name.startswith("servers"):
                app.servers_tab.select_server("http")
            await pilot.pause(1.0)  # let the tab fetch what it shows from its server
            app.clear_notifications()
            await pilot.pause()
            saved.append(Path(app.save_screenshot(f"{name}.svg", str(output))))
            if name == "help":
                await pilot.press("escape")
    manager.close()
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output", type=Path, default=Path("screenshots"), help="folder for the SVGs"
    )
    options = parser.parse_args(argv)
    output = options.output.resolve()
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="workbench-shots-") as scratch:
        data_dir = ensure_data_dir(Path(scratch))
        # The FTP tab's local pane opens on the working folder: show the samples, not ours.
        os.chdir(data_dir)
        saved = asyncio.run(take_screenshots(output, data_dir))
    for path in saved:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
