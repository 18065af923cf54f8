"""Snapshots of every tab at 80x24 and 120x32 (and light-theme Servers and HTTP): the classroom sizes."""

from __future__ import annotations

import asyncio
import importlib.util
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from workbench.app import WorkbenchApp
from workbench.tabs.ftp import FtpTab

pytestmark = pytest.mark.timeout(60)

SMALL = (80, 24)
CLASSROOM = (120, 32)
#: Fixed addresses the Chat and HTTP tabs fill in: nothing listens there and nothing is sent.
ENDPOINTS = {"chat": ("127.0.0.1", 40001), "http": ("127.0.0.1", 40003)}
#: Local file times shown in the FTP tab, so the picture does not age.
FILE_TIME = datetime(2026, 3, 2, 9, 30)


def _load_servers_snapshots() -> Any:
    """The Servers panel's fixed feed lives beside its own snapshots; share it rather than copy it."""
    path = Path(__file__).with_name("test_snapshots_servers.py")
    spec = importlib.util.spec_from_file_location("servers_snapshot_feed", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


servers_feed = _load_servers_snapshots()


class FixedEndpointManager(servers_feed.FedServerManager):
    """No servers and no threads: the tabs see fixed addresses, the Servers panel fixed stats.

    FTP gets no address, because its tab connects at once and a port nobody
    owns might be someone else's by the time the test runs.
    """

    def endpoint(self, protocol: str) -> tuple[str, int] | None:
        return ENDPOINTS.get(protocol)


def make_app(tab: str, theme: str = "dark") -> WorkbenchApp:
    return WorkbenchApp(
        server_manager=FixedEndpointManager(),
        start_servers=False,
        initial_tab=tab,
        theme_name=theme,
    )


async def still_cursors(pilot: Pilot[Any]) -> None:
    """A blinking cursor would make the picture depend on timing."""
    for box in pilot.app.screen.query(Input):
        box.cursor_blink = False
    await pilot.pause()


async def settle_tab(pilot: Pilot[Any]) -> None:
    await pilot.pause()
    await still_cursors(pilot)


@pytest.fixture
def classroom_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The FTP tab's local side starts in the working directory: give it a small, fixed one."""
    local = tmp_path / "classroom"
    (local / "exercises").mkdir(parents=True)
    (local / "notes.md").write_text("# notes\n" * 40)
    (local / "server.py").write_text("print('hi')\n" * 300)
    monkeypatch.chdir(local)
    return local


async def settle_ftp(pilot: Pilot[Any]) -> None:
    tab = pilot.app.query_one(FtpTab)
    for _ in range(100):
        if tab.local_pane.entries:
            break
        await pilot.pause(0.02)
    assert tab.local_pane.entries, "the local listing never arrived"
    # The title shows the absolute (temporary) path and times in the local zone: show stable ones.
    entries = [replace(entry, modified=FILE_TIME) for entry in tab.local_pane.entries]
    tab.local_pane.show_entries("~/classroom", entries, can_go_up=True)
    tab.local_pane.focus_table()
    await still_cursors(pilot)


async def settle_http(pilot: Pilot[Any]) -> None:
    url = pilot.app.query_one("#url", Input)
    for _ in range(100):
        if url.value:
            break
        await pilot.pause(0.02)
    assert url.value == "http://127.0.0.1:40003/"
    await still_cursors(pilot)


async def settle_servers(pilot: Pilot[Any]) -> None:
    await servers_feed.feed_fixed_stats(pilot)
    await still_cursors(pilot)


@pytest.mark.parametrize("size", [SMALL, CLASSROOM], ids=["80x24", "120x32"])
def test_chat(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(make_app("chat"), terminal_size=size, run_before=settle_tab)


@pytest.mark.parametrize("size", [SMALL, CLASSROOM], ids=["80x24", "120x32"])
def test_ftp(snap_compare: Any, size: tuple[int, int], classroom_dir: Path) -> None:
    assert snap_compare(make_app("ftp"), terminal_size=size, run_before=settle_ftp)


@pytest.mark.parametrize("size", [SMALL, CLASSROOM], ids=["80x24", "120x32"])
def test_http(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(make_app("http"), terminal_size=size, run_before=settle_http)


@pytest.mark.parametrize("section", ["http-load", "http-compare"])
def test_http_sections_at_80x24(snap_compare: Any, section: str) -> None:
    """The Load and Compare forms' buttons must stay on screen at 80 columns."""

    async def open_section(pilot: Pilot[Any]) -> None:
        await settle_http(pilot)
        pilot.app.query_one("#http-sections").active = section
        await pilot.pause()
        await still_cursors(pilot)

    assert snap_compare(make_app("http"), terminal_size=SMALL, run_before=open_section)


@pytest.mark.parametrize("size", [SMALL, CLASSROOM], ids=["80x24", "120x32"])
def test_labs(snap_compare: Any, size: tuple[int, int]) -> None:
    """The lab list and the first lab's explanation, before any run (test_labs_tab shows one)."""
    assert snap_compare(make_app("labs"), terminal_size=size, run_before=settle_tab)


@pytest.mark.parametrize("size", [SMALL, CLASSROOM], ids=["80x24", "120x32"])
def test_servers(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(make_app("servers"), terminal_size=size, run_before=settle_servers)


def test_new_server_form_at_80x24(snap_compare: Any) -> None:
    """The form is taller than 24 rows: it scrolls, and its buttons are reachable."""

    async def open_form(pilot: Pilot[Any]) -> None:
        await settle_servers(pilot)
        await pilot.press("n")
        await pilot.pause()
        await still_cursors(pilot)

    assert snap_compare(make_app("servers"), terminal_size=SMALL, run_before=open_form)


def test_servers_light(snap_compare: Any) -> None:
    app = make_app("servers", theme="light")
    assert snap_compare(app, terminal_size=CLASSROOM, run_before=settle_servers)


def test_http_light(snap_compare: Any) -> None:
    app = make_app("http", theme="light")
    assert snap_compare(app, terminal_size=CLASSROOM, run_before=settle_http)


#: Rows of fields and buttons that must fit whole at 80x24: (tab, inner section, container).
FORM_ROWS = [
    ("chat", None, "#chat-connection"),
    ("ftp", None, "#ftp-connection"),
    ("http", None, "#request-line"),
    ("http", "http-load", "#http-load .form-row"),
    ("http", "http-compare", "#compare-form .form-row"),
]


@pytest.mark.parametrize(("tab", "section", "selector"), FORM_ROWS)
def test_every_field_and_button_fits_at_80x24(
    tab: str, section: str | None, selector: str, classroom_dir: Path
) -> None:
    """Beyond the pictures: no field or button is cut by the screen edge or squeezed shut."""
    asyncio.run(_check_row_fits(tab, section, selector))


async def _check_row_fits(tab: str, section: str | None, selector: str) -> None:
    app = make_app(tab)
    async with app.run_test(size=SMALL) as pilot:
        if section is not None:
            app.query_one("#http-sections").active = section
        # A busy machine may need a few refreshes to lay out the section just shown.
        problems = ["never checked"]
        for _ in range(100):
            await pilot.pause(0.02)
            problems = _row_problems(app, selector)
            if not problems:
                break
        assert not problems, problems


def _row_problems(app: WorkbenchApp, selector: str) -> list[str]:
    screen = app.screen.region
    widgets = list(app.query_one(selector).query("Input, Button, Select, Checkbox"))
    problems = [] if widgets else [f"nothing in {selector}"]
    for widget in widgets:
        region = widget.region
        if not screen.contains_region(region):
            problems.append(f"{widget} at {region} is off screen")
        elif region.width < 9:
            problems.append(f"{widget} is squeezed to {region.width} cells")
    keys = [key for key in app.screen.query("FooterKey") if key.display and key.key == "f1"]
    if not keys or not screen.contains_region(keys[0].region):
        problems.append("F1 Help is not in the footer")
    return problems


def test_servers_panel_keeps_every_part_at_80x24() -> None:
    """Table, both sparklines, the process tree and the event log (under its view tabs) all show."""

    async def scenario() -> None:
        app = make_app("servers")
        async with app.run_test(size=SMALL) as pilot:
            await settle_servers(pilot)
            screen = app.screen.region
            for selector, rows in (
                ("#server-table", 4),
                ("#rps-sparkline", 1),
                ("#active-sparkline", 1),
                ("#tree-scroll", 2),
                ("#server-views", 6),
                ("#event-lines", 3),
            ):
                region = app.query_one(selector).region
                assert screen.contains_region(region), f"{selector} at {region} is off screen"
                assert region.height >= rows, f"{selector} has {region.height} rows"
            for label in app.query(".graph-label"):
                assert label.region.height == 1, f"{label.id} wraps"

    asyncio.run(scenario())
