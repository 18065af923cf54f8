"""The HTTP tab's regions on their own: request form, URL following the server, load and compare in turn."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import Button, Input, Select, TextArea

from servers.launcher import ServerProcess, running_server
from workbench.clients.http import HttpClientError, HttpRequest
from workbench.tabs.http import HttpTab
from workbench.widgets.http_request import RequestEditors, RequestForm, RequestLine

pytestmark = pytest.mark.timeout(60)

SITE = Path(__file__).resolve().parents[2] / "servers" / "data" / "site"


@pytest.fixture(scope="module")
def http_server() -> Iterator[ServerProcess]:
    with running_server("http", "epoll", options={"root": str(SITE)}) as server:
        yield server


class OneWidget(App[None]):
    def __init__(self, *widgets: Any) -> None:
        super().__init__()
        self.widgets = widgets

    def compose(self) -> ComposeResult:
        yield from self.widgets


async def wait_until(pilot: Pilot[Any], condition: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)


def disabled(app: App[Any], button_id: str) -> bool:
    return app.query_one(f"#{button_id}", Button).disabled


def test_the_form_becomes_a_request_or_says_what_is_wrong() -> None:
    form = RequestForm("POST", "http://127.0.0.1:8080/api/echo", "X-A: 1\nX-B: two", "héllo")
    request = form.to_request()
    assert request.method == "POST" and request.url == "http://127.0.0.1:8080/api/echo"
    assert list(request.headers) == [("X-A", "1"), ("X-B", "two")]
    assert request.body == "héllo".encode()
    assert form.describe() == "POST http://127.0.0.1:8080/api/echo, 2 header line(s), 6 B of body"
    with pytest.raises(HttpClientError, match="bad URL: empty"):
        RequestForm("GET", "", "", "").to_request()
    with pytest.raises(HttpClientError, match="expected 'Name: value'"):
        RequestForm("GET", "http://127.0.0.1/", "no colon", "").to_request()
    assert RequestForm("GET", "http://h:1/", "", "").is_untouched("http://h:1/")
    assert RequestForm("GET", "", "", "").is_untouched("http://h:1/")
    assert not RequestForm("GET", "http://h:1/x", "", "").is_untouched("http://h:1/")
    assert not RequestForm("PUT", "http://h:1/", "", "").is_untouched("http://h:1/")


def test_the_url_follows_the_server_to_a_new_port_and_keeps_the_path() -> None:
    async def scenario() -> None:
        line, editors = RequestLine(id="request-line"), RequestEditors()
        app = OneWidget(line, editors)
        async with app.run_test() as pilot:
            url = app.query_one("#url", Input)
            line.follow_server("http://127.0.0.1:1000")
            assert url.value == "http://127.0.0.1:1000/"
            url.value = "http://127.0.0.1:1000/api/echo?x=1"
            line.follow_server("http://127.0.0.1:2000")  # restarted under another model
            assert url.value == "http://127.0.0.1:2000/api/echo?x=1"
            url.value = "http://example.invalid/"  # the user's own server: left alone
            line.follow_server("http://127.0.0.1:3000")
            assert url.value == "http://example.invalid/"

            editors.show(HttpRequest("PUT", "http://x/", [("X-A", "1")], b"body"))
            line.show("PUT", "http://127.0.0.1:3000/a")
            await pilot.pause()
            assert app.query_one("#headers-editor", TextArea).text == "X-A: 1"
            assert (line.method, line.url, editors.body) == (
                "PUT",
                "http://127.0.0.1:3000/a",
                "body",
            )
            assert app.query_one("#method", Select).value == "PUT"

    asyncio.run(scenario())


def test_a_load_and_a_comparison_wait_for_each_other(http_server: ServerProcess) -> None:
    base = f"http://127.0.0.1:{http_server.port}"

    async def scenario(servers: contextlib.ExitStack) -> None:
        tab = HttpTab(base_url=base)
        tab.load_processes = 0
        app = OneWidget(tab)
        async with app.run_test(size=(140, 48)) as pilot:
            tab.query_one("#load-requests", Input).value = ""
            tab.query_one("#load-duration", Input).value = "30"
            tab.query_one("#load-concurrency", Input).value = "2"
            await pilot.press("ctrl+r")
            await wait_until(pilot, lambda: tab.load_panel.running, "the load to start")
            await pilot.pause()
            assert disabled(app, "load-start") and not disabled(app, "load-stop")
            assert disabled(app, "compare-run")  # one load at a time
            await pilot.press("ctrl+r")
            await wait_until(pilot, lambda: tab.last_load is not None, "the load to stop")
            await pilot.pause()
            assert not disabled(app, "compare-run") and not disabled(app, "load-export")

            class FreshServers:
                """A new real server per model; nothing to put back."""

                def current_model(self) -> str | None:
                    return None

                def restart_under(self, model: str) -> str:
                    options = {"root": str(SITE)}
                    server = servers.enter_context(running_server("http", model, options=options))
                    return f"http://127.0.0.1:{server.port}"

            tab.query_one("#http-sections").active = "http-compare"
            tab.query_one("#compare-seconds", Input).value = "30"
            tab.compare_panel.start(FreshServers())
            await wait_until(pilot, lambda: tab.compare_panel.running, "the comparison")
            await pilot.pause()
            assert disabled(app, "compare-run") and not disabled(app, "compare-stop")
            assert disabled(app, "load-start")
            # Ctrl+R is the load's key on any section: it must not start a load under the comparison.
            await pilot.press("ctrl+r")
            await pilot.pause()
            assert not tab.load_panel.running
            assert any("Compare models is running" in str(n.message) for n in app._notifications)
            await pilot.click("#compare-stop")
            await wait_until(pilot, lambda: not tab.compare_panel.running, "the stop")
            await pilot.pause()
            assert not disabled(app, "load-start") and not disabled(app, "compare-run")
            assert disabled(app, "compare-stop")
            assert len(tab.compare_results) == 1  # stopped during the first model
            assert tab.compare_results[0].snapshot is not None
            assert tab.compare_results[0].snapshot.stopped_early

    with contextlib.ExitStack() as servers:
        asyncio.run(scenario(servers))
