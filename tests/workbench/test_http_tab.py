"""Pilot tests of the HTTP tab against our real HTTP server (started by the launcher), plus its snapshot."""

from __future__ import annotations

import csv
import io
import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.syntax import Syntax
from textual.color import Color
from textual.pilot import Pilot
from textual.widgets import (
    Button,
    DataTable,
    Input,
    Select,
    SelectionList,
    Sparkline,
    Static,
    TextArea,
)

from servers.launcher import ServerProcess, ServerSpec, running_server
from tests.helpers.pilot import TabHarness, notifications, run, shown, tab_alone, wait_until
from tests.helpers.servers import FakeServerDirectory
from workbench.clients.http import METHODS
from workbench.tabs.http import HttpTab
from workbench.widgets.http_dialogs import CurlCommandScreen, ReplaceDraftScreen
from workbench.widgets.http_raw import RawExchange
from workbench.widgets.load_charts import BarChart

pytestmark = pytest.mark.timeout(60)

SITE = Path(__file__).resolve().parents[2] / "servers" / "data" / "site"


class EndpointOnly(FakeServerDirectory):
    """What the tab needs of the ServerManager for requests: where the HTTP server is."""

    def __init__(self, port: int, data_dir: Path | None = None) -> None:
        super().__init__({"http": ("127.0.0.1", port)}, data_dir)  # data_dir: the --data folder


class RestartingManager:
    """A small real ServerManager stand-in: restarts our HTTP server under another model."""

    remote = None
    data_dir = None

    def __init__(self) -> None:
        self.process: ServerProcess | None = None
        self.models_started: list[str] = []

    def default_server_id(self, protocol: str) -> str | None:
        return "http" if self.process is not None else None

    def start(self, protocol: str, model: str) -> str:
        self.restart("http", model=model)
        return "http"

    def restart(self, server_id: str, model: str | None = None) -> int:
        if self.process is not None:
            self.process.stop()
        spec = ServerSpec(
            "http", model or "epoll", "127.0.0.1", 0, None, {"root": str(SITE)}, "http"
        )
        self.process = ServerProcess(spec)
        self.models_started.append(spec.model)
        return self.process.start(timeout=15)

    def endpoint(self, protocol: str) -> tuple[str, int] | None:
        if self.process is None or self.process.port is None:
            return None
        return ("127.0.0.1", self.process.port)

    def row(self, server_id: str) -> Any:
        return self.process.spec if self.process is not None else None

    def rows(self) -> tuple[()]:
        return ()

    def clients(self, server_id: str) -> None:
        return None

    def close(self) -> None:
        if self.process is not None:
            self.process.stop()


@pytest.fixture(scope="module")
def http_server() -> Iterator[ServerProcess]:
    with running_server("http", "epoll", options={"root": str(SITE)}) as server:
        yield server


@pytest.fixture
def closed_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


async def send(pilot: Pilot[Any], tab: HttpTab, method: str, url: str, body: str = "") -> None:
    before = len(tab.history)
    tab.query_one("#method", Select).value = method
    tab.query_one("#url", Input).value = url
    tab.query_one("#body-editor").text = body
    tab.query_one("#url", Input).focus()
    await pilot.press("ctrl+j")
    await wait_until(pilot, lambda: len(tab.history) > before, f"{method} {url}")
    await pilot.pause()


def test_every_method_against_the_embedded_server(http_server: ServerProcess) -> None:
    async def scenario() -> None:
        tab = HttpTab()
        app = TabHarness(tab, EndpointOnly(http_server.port))
        async with app.run_test(size=(140, 40)) as pilot:
            base = f"http://127.0.0.1:{http_server.port}"
            await wait_until(
                pilot, lambda: tab.query_one("#url", Input).value == base + "/", "default URL"
            )
            for method in METHODS:
                body = '{"n": 1}' if method in ("POST", "PUT", "PATCH") else ""
                await send(pilot, tab, method, base + "/api/echo?x=1", body)
                entry = tab.history[-1]
                assert entry.error is None, entry.error
                assert shown(tab.query_one("#status-line", Static)) == "HTTP/1.1 200 OK"
                assert "first byte" in shown(tab.query_one("#timings", Static))
                header_names = _column(tab, "#response-headers", 0)
                assert "Content-Type" in header_names
                body_view = tab.query_one("#response-body", Static)
                if method == "HEAD":
                    assert shown(body_view) == "(empty body)"
                else:
                    echoed = json.loads(shown(body_view))
                    assert echoed["method"] == method
                    assert echoed["query"] == {"x": ["1"]}
                    assert echoed["body"] == body
                    assert isinstance(body_view.content, Syntax)  # JSON is highlighted
            history = tab.query_one("#history", DataTable)
            assert history.row_count == len(METHODS)
        assert not [note for note in notifications(app) if "error" in note.lower()]

    run(scenario)


def _column(tab: HttpTab, selector: str, index: int) -> list[str]:
    table = tab.query_one(selector, DataTable)
    return [str(table.get_row_at(row)[index]) for row in range(table.row_count)]


def test_raw_view_shows_the_crlfs(http_server: ServerProcess) -> None:
    async def scenario() -> None:
        base = f"http://127.0.0.1:{http_server.port}"
        tab = HttpTab(base_url=base)
        async with tab_alone(tab, size=(140, 40)) as pilot:
            await send(pilot, tab, "GET", base + "/index.html")
            tab.query_one("#response-tabs").active = "raw-pane"
            await pilot.pause()
            raw = tab.query_one(RawExchange)
            text = shown(raw)
            assert "GET /index.html HTTP/1.1␍␊\n" in text
            assert "HTTP/1.1 200 OK␍␊\n" in text
            assert "\n␍␊\n" in text  # the blank line between headers and body
            assert raw.response_bytes.startswith(b"HTTP/1.1 200 OK\r\n")
            assert b"<html" in raw.response_bytes.lower()
            body_view = tab.query_one("#response-body", Static)
            assert isinstance(body_view.content, Syntax) and body_view.content.lexer is not None

    run(scenario)


def test_bad_url_refused_and_timeouts_are_messages(
    http_server: ServerProcess, closed_port: int
) -> None:
    async def scenario() -> None:
        tab = HttpTab(base_url=f"http://127.0.0.1:{http_server.port}")
        async with tab_alone(tab, size=(140, 40)) as pilot:
            tab.query_one("#url", Input).value = "http://bad host/"
            tab.query_one("#url", Input).focus()
            await pilot.press("ctrl+j")
            await pilot.pause()
            status = tab.query_one("#status-line", Static)
            assert "bad URL" in shown(status)
            assert status.has_class("-failed")
            assert any("bad URL" in note for note in notifications(pilot.app))

            await send(pilot, tab, "GET", f"http://127.0.0.1:{closed_port}/")
            assert "refused" in shown(status)
            assert tab.history[-1].error is not None

            tab.query_one("#headers-editor").text = "no colon here"
            tab.query_one("#url", Input).value = f"http://127.0.0.1:{http_server.port}/"
            await pilot.press("ctrl+j")
            await pilot.pause()
            assert "expected 'Name: value'" in shown(status)
            assert not any("Traceback" in note for note in notifications(pilot.app))

    run(scenario)


def test_history_resend_and_copy_as_curl(http_server: ServerProcess) -> None:
    async def scenario() -> None:
        base = f"http://127.0.0.1:{http_server.port}"
        tab = HttpTab(base_url=base)
        async with tab_alone(tab, size=(140, 40)) as pilot:
            tab.query_one("#headers-editor").text = "X-Lesson: http"
            await send(pilot, tab, "POST", base + "/api/echo", "hello")
            tab.query_one("#headers-editor").text = ""
            await send(pilot, tab, "GET", base + "/style.css")
            tab.resend(1)
            await wait_until(pilot, lambda: len(tab.history) == 3, "re-sent request")
            again = tab.history[-1]
            assert again.request.method == "POST" and again.request.body == b"hello"
            assert again.response is not None
            assert json.loads(again.response.body)["headers"]["x-lesson"] == "http"
            assert tab.query_one("#method", Select).value == "POST"

            await pilot.press("ctrl+o")
            assert pilot.app.clipboard.startswith("curl -i -X POST -H 'X-Lesson: http'")
            assert pilot.app.clipboard.endswith(f"{base}/api/echo")
            # OSC 52 may never reach the clipboard (tmux): the command is shown to copy by hand.
            await pilot.pause()
            assert isinstance(pilot.app.screen, CurlCommandScreen)
            box = pilot.app.screen.query_one(TextArea)
            assert box.read_only and box.text == pilot.app.clipboard
            assert box.selected_text == pilot.app.clipboard and box.has_focus
            await pilot.press("escape")
            assert not isinstance(pilot.app.screen, CurlCommandScreen)

    run(scenario)


def test_short_load_run_fills_the_figures_and_exports(
    http_server: ServerProcess, tmp_path: Path
) -> None:
    async def scenario() -> None:
        base = f"http://127.0.0.1:{http_server.port}"
        tab = HttpTab(base_url=base)
        async with tab_alone(
            tab, EndpointOnly(http_server.port, data_dir=tmp_path), size=(140, 48)
        ) as pilot:
            tab.query_one("#url", Input).value = base + "/index.html"
            tab.query_one("#http-sections").active = "http-load"
            tab.query_one("#load-requests", Input).value = "400"
            tab.query_one("#load-concurrency", Input).value = "4"
            await pilot.pause()
            await pilot.press("ctrl+r")
            await wait_until(pilot, lambda: tab.last_load is not None, "load run", timeout=40)
            await pilot.pause()
            result = tab.last_load
            assert result is not None and result.completed == 400
            assert result.statuses == {200: 400} and result.errors == {}
            assert result.processes >= 1  # ran in worker processes, not the UI process
            percentiles = _column(tab, "#load-percentiles", 0)
            assert percentiles == ["p50", "p90", "p99", "p99.9", "max"]
            assert float(_column(tab, "#load-percentiles", 1)[-1].replace(",", "")) > 0
            assert sum(value for _, value in tab.query_one("#load-histogram", BarChart).bars) == 400
            assert "200: 400" in shown(tab.query_one("#load-statuses", Static))
            assert tab.query_one(Sparkline).data  # the requests/s series
            summary = shown(tab.query_one("#load-summary", Static))
            assert summary.startswith("done: 400 of 400 requests in ")
            assert " s · " in summary and "400 ok, 0 failed" in summary
            errors = tab.query_one("#load-errors", Static)
            assert shown(errors) == "errors: none" and not errors.has_class("-errors")
            palette = pilot.app.get_css_variables()
            assert errors.styles.color == Color.parse(palette["success"])  # not drawn as an error
            assert errors.styles.color != Color.parse(palette["error"])
            fairness = shown(tab.query_one("#load-fairness", Static))
            assert fairness.startswith("fairness: answers per connection min ")
            assert tab.query_one("#load-export", Button).disabled is False

            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: tab.last_export is not None, "export")
            assert tab.last_export is not None
            json_path, csv_path = tab.last_export
            assert json_path.parent == csv_path.parent == tmp_path / "exports"  # the data folder
            assert any(str(json_path) in note for note in notifications(pilot.app))
            data = json.loads(json_path.read_text())
            assert data["completed"] == 400 and data["statuses"] == {"200": 400}
            rows = list(csv.DictReader(io.StringIO(csv_path.read_text())))
            assert {"section": "summary", "key": "completed", "value": "400"} in rows
            assert any(row["section"] == "percentile" and row["key"] == "p99.9" for row in rows)

    run(scenario)


def test_load_can_be_stopped(http_server: ServerProcess) -> None:
    async def scenario() -> None:
        base = f"http://127.0.0.1:{http_server.port}"
        tab = HttpTab(base_url=base)
        tab.load_processes = 0
        async with tab_alone(tab, size=(140, 48)) as pilot:
            tab.query_one("#url", Input).value = base + "/api/sleep?ms=20"
            tab.query_one("#load-requests", Input).value = ""
            tab.query_one("#load-duration", Input).value = "30"
            tab.query_one("#load-concurrency", Input).value = "2"
            await pilot.press("ctrl+r")
            await wait_until(pilot, lambda: tab._load_stop is not None, "load started")
            await pilot.pause(0.5)
            await pilot.press("ctrl+r")
            await wait_until(pilot, lambda: tab.last_load is not None, "load stopped")
            assert tab.last_load is not None and tab.last_load.stopped_early
            assert tab.last_load.elapsed < 10
            summary = shown(tab.query_one("#load-summary", Static))
            assert re.match(r"stopped: [\d,]+ requests in \d+\.\d of 30 s · ", summary), summary

    run(scenario)


def test_compare_models_without_a_server_manager_says_so() -> None:
    async def scenario() -> None:
        tab = HttpTab(base_url="http://127.0.0.1:9")
        async with tab_alone(tab, size=(140, 48)) as pilot:
            tab.query_one("#http-sections").active = "http-compare"
            await pilot.pause()
            await pilot.click("#compare-run")
            await pilot.pause()
            assert any("server manager" in note for note in notifications(pilot.app))

    run(scenario)


def test_compare_models_restarts_the_server_and_draws_bars() -> None:
    manager = RestartingManager()

    async def scenario() -> None:
        manager.restart("http", model="poll")
        tab = HttpTab()
        tab.load_processes = 0
        async with tab_alone(tab, manager, size=(140, 48)) as pilot:
            tab.query_one("#http-sections").active = "http-compare"
            models = tab.query_one("#compare-models", SelectionList)
            models.deselect_all()
            models.select("epoll")  # ticked in the other order than the list's:
            models.select("threads")  # they still run, and show, in the list's order
            tab.query_one("#compare-preset", Select).value = "sleep"
            tab.query_one("#compare-seconds", Input).value = "0.6"
            tab.query_one("#compare-concurrency", Input).value = "4"
            await pilot.pause()
            await pilot.click("#compare-run")
            await wait_until(
                pilot,
                lambda: len(tab.compare_results) == 2 and tab._compare_stop is None,
                "comparison",
                timeout=45,
            )
            # ...and afterwards the server is back on the model it had.
            assert manager.models_started == ["poll", "threads", "epoll", "poll"]
            for result in tab.compare_results:
                assert result.snapshot is not None, result.error
                assert result.snapshot.statuses.get(200, 0) > 0
                assert result.snapshot.url.endswith("/api/sleep?ms=50")
                assert result.p99_ms >= 50  # the server really slept
            rps = tab.query_one("#compare-rps", BarChart).bars
            p99 = tab.query_one("#compare-p99", BarChart).bars
            assert [label for label, _ in rps] == ["threads", "epoll"]
            assert all(value > 0 for _, value in rps + p99)
            assert "Compared 2 models: threads, epoll." in shown(
                tab.query_one("#compare-status", Static)
            )
            assert _column(tab, "#compare-table", 0) == ["threads", "epoll"]

    try:
        run(scenario)
    finally:
        manager.close()


def test_snapshot_of_the_tab(snap_compare: Any) -> None:
    tab = HttpTab(base_url="http://127.0.0.1:8080")
    assert snap_compare(TabHarness(tab), terminal_size=(120, 36))


def test_compare_models_never_crowns_a_model_that_starved_connections() -> None:
    manager = RestartingManager()

    async def scenario() -> None:
        manager.restart("http", model="epoll")
        tab = HttpTab()
        tab.load_processes = 0
        async with tab_alone(tab, manager, size=(160, 48)) as pilot:
            tab.query_one("#http-sections").active = "http-compare"
            models = tab.query_one("#compare-models", SelectionList)
            models.deselect_all()
            models.select("iterative")
            models.select("epoll")
            tab.query_one("#compare-preset", Select).value = "static"
            tab.query_one("#compare-seconds", Input).value = "0.8"
            tab.query_one("#compare-concurrency", Input).value = "5"
            await pilot.pause()
            await pilot.click("#compare-run")
            await wait_until(
                pilot,
                lambda: len(tab.compare_results) == 2 and tab._compare_stop is None,
                "comparison",
                timeout=45,
            )
            iterative, epoll = tab.compare_results
            assert iterative.model == "iterative" and iterative.starved == 4
            for chart in ("#compare-rps", "#compare-p99"):
                bars = tab.query_one(chart, BarChart)
                assert bars.unranked == {"iterative"}
                assert bars.best_label() == "epoll"
                assert "✗" in bars.render().plain
            table = tab.query_one("#compare-table", DataTable)
            row = [str(cell) for cell in table.get_row_at(0)]
            assert row[0] == "iterative"
            assert row[7].startswith("0–")  # answers per connection: some got none
            assert row[8] == "4 of 5"
            assert row[9].startswith(
                "one client at a time (循环网络模型, 3.1): 4 of 5 waited up to "
            )
            assert [str(cell) for cell in table.get_row_at(1)][8:] == ["0 of 5", ""]
            status = shown(tab.query_one("#compare-status", Static))
            assert "best p99: epoll" in status
            assert "Not ranked (starved connections): iterative" in status

    try:
        run(scenario)
    finally:
        manager.close()


def test_unticked_models_draw_an_empty_box() -> None:
    async def scenario() -> None:
        tab = HttpTab(base_url="http://127.0.0.1:9")
        async with tab_alone(tab, size=(140, 48)) as pilot:
            tab.query_one("#http-sections").active = "http-compare"
            await pilot.pause()
            models = tab.query_one("#compare-models", SelectionList)
            lines = {
                models.get_option_at_index(index).value: "".join(
                    segment.text for segment in models.render_line(index)
                )
                for index in range(models.option_count)
            }
            assert "X" in lines["epoll"] and "X" not in lines["iterative"]
            status = shown(tab.query_one("#compare-status", Static))
            assert (
                "Will compare 5 of 9 models (one of each family, ticked by default),"
                " in this order: threads, pool, epoll, asyncio, prefork." in status
            )
            models.select("iterative")
            await pilot.pause()
            status = shown(tab.query_one("#compare-status", Static))
            assert "6 of 9 models, in this order: iterative, threads" in status

    run(scenario)


def test_a_long_body_is_counted_whole_and_saved_on_request(tmp_path: Path) -> None:
    site, data = tmp_path / "site", tmp_path / "data"
    site.mkdir()
    big = bytes(range(256)) * (20 * 4096)  # 20 MiB, longer than the 8 MiB the view keeps
    (site / "big.bin").write_bytes(big)

    async def scenario(port: int) -> None:
        base = f"http://127.0.0.1:{port}"
        tab = HttpTab(base_url=base)
        tab.data_dir = data
        async with tab_alone(tab, size=(160, 40)) as pilot:
            await send(pilot, tab, "GET", base + "/big.bin")
            response = tab.current_response
            assert response is not None and response.body_length == len(big)
            timings = shown(tab.query_one("#timings", Static))
            assert "body 20.0 MiB" in timings
            assert f"{response.received_bytes:,} B received" in timings
            assert response.received_bytes > len(big)
            assert "all 20.0 MiB (20,971,520 B) arrived; the view keeps the first 8.0 MiB" in (
                timings
            )
            body_note = shown(tab.query_one("#response-body", Static))
            assert "the view keeps the first 8.0 MiB" in body_note
            raw = shown(tab.query_one(RawExchange))
            assert f"response: {response.received_bytes:,} bytes received" in raw
            assert "more arrived" in raw

            await pilot.press("ctrl+b")
            await wait_until(pilot, lambda: tab.last_saved_body is not None, "saved body")
            saved = tab.last_saved_body
            assert saved == data / "downloads" / "big.bin"
            assert saved.read_bytes() == big
            assert any(str(saved) in note for note in notifications(pilot.app))
            spooled = response.body_file
            assert spooled is not None and not spooled.closed
        assert spooled.closed  # the temporary copy goes with the tab

    with running_server("http", "epoll", options={"root": str(site)}) as server:
        run(lambda: scenario(server.port))


def test_an_emptied_box_means_its_default_not_an_error(http_server: ServerProcess) -> None:
    async def scenario() -> None:
        base = f"http://127.0.0.1:{http_server.port}"
        tab = HttpTab(base_url=base)
        tab.load_processes = 0
        async with tab_alone(tab, size=(140, 48)) as pilot:
            tab.query_one("#url", Input).value = base + "/index.html"
            tab.query_one("#http-sections").active = "http-load"
            await pilot.pause()
            for box_id in ("#load-requests", "#load-concurrency"):
                box = tab.query_one(box_id, Input)
                box.focus()
                box.value = ""
                await pilot.pause()
                tab.query_one("#load-duration", Input).focus()  # leaving validates
                await pilot.pause()
                assert not box.has_class("-invalid"), box_id
            tab.query_one("#load-requests", Input).value = "12x"
            await pilot.pause()
            assert tab.query_one("#load-requests", Input).has_class("-invalid")
            tab.query_one("#load-requests", Input).value = ""
            await pilot.press("ctrl+r")
            await wait_until(pilot, lambda: tab.last_load is not None, "load with defaults")
            assert tab.last_load is not None
            assert tab.last_load.completed == 1000 and tab.last_load.concurrency == 10

    run(scenario)


def test_choosing_history_asks_before_replacing_unsent_edits(
    http_server: ServerProcess,
) -> None:
    async def scenario() -> None:
        base = f"http://127.0.0.1:{http_server.port}"
        tab = HttpTab(base_url=base)
        async with tab_alone(tab, size=(140, 40)) as pilot:
            await send(pilot, tab, "GET", base + "/style.css")
            assert not tab.has_unsent_edits()  # just sent: nothing to lose
            headers = tab.query_one("#headers-editor", TextArea)
            body = tab.query_one("#body-editor", TextArea)
            tab.query_one("#method", Select).value = "POST"
            headers.text = "X-Draft: keep me"
            body.text = "a long request I typed"
            assert tab.has_unsent_edits()
            tab.query_one("#response-tabs").active = "history-pane"
            history = tab.query_one("#history", DataTable)
            history.focus()
            await pilot.pause()

            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(pilot.app.screen, ReplaceDraftScreen)
            assert "has not been sent" in str(pilot.app.screen.message)
            await pilot.press("enter")  # focus starts on "Keep editing"
            await pilot.pause()
            assert not isinstance(pilot.app.screen, ReplaceDraftScreen)
            assert headers.text == "X-Draft: keep me"
            assert body.text == "a long request I typed"
            assert len(tab.history) == 1

            history.focus()
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(pilot.app.screen, ReplaceDraftScreen)
            await pilot.press("y")
            await wait_until(pilot, lambda: len(tab.history) == 2, "history entry re-sent")
            assert tab.history[-1].request.url == base + "/style.css"
            assert headers.text == "" and body.text == ""
            assert tab.query_one("#method", Select).value == "GET"

            # Unchanged since the last send: a history entry loads without asking.
            history.focus()
            await pilot.press("enter")
            await wait_until(pilot, lambda: len(tab.history) == 3, "re-sent without asking")
            assert not isinstance(pilot.app.screen, ReplaceDraftScreen)

    run(scenario)
