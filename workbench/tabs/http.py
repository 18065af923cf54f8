"""HTTP tab: a Posting-style request builder with the raw bytes on the wire, and a wrk-style load generator comparing concurrency models."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import RenderableType
from rich.syntax import Syntax
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import (
    Button,
    Checkbox,
    DataTable,
    Input,
    Label,
    Select,
    SelectionList,
    Static,
    TabbedContent,
    TabPane,
    TextArea,
)

from workbench.clients.compare import (
    COMPARE_PRESETS,
    ModelResult,
    best_model,
    compare_models,
    in_list_order,
    starvation_rule,
    verdict_note,
)
from workbench.clients.http import (
    METHODS,
    HttpClientError,
    HttpRequest,
    HttpResponse,
    parse_header_text,
    parse_url,
    save_body,
    send_request,
    to_curl,
)
from workbench.clients.loadgen import (
    LoadConfig,
    LoadConfigError,
    LoadSnapshot,
    run_load,
)
from workbench.messages import EndpointChanged
from workbench.network import host_port
from workbench.server_directory import ServerDirectory
from workbench.tabs.endpoint import server_directory
from workbench.widgets.http_dialogs import CurlCommandScreen, ReplaceDraftScreen
from workbench.widgets.http_raw import RawExchange
from workbench.widgets.load_charts import BarChart
from workbench.widgets.load_figures import LoadFigures
from workbench.widgets.server_form import available_models
from workbench.widgets.tick_list import TickList

#: Characters of a response body rendered with highlighting (the raw view has the bytes).
BODY_VIEW_LIMIT = 200_000
#: Models ticked by default in "Compare models": one of each family, so a first run is short.
DEFAULT_COMPARE_MODELS = ("threads", "pool", "epoll", "asyncio", "prefork")
COMPARE_COLUMNS = (
    "model",
    "req/s",
    "p50 ms",
    "p99 ms",
    "max ms",
    "ok",
    "failed",
    "answers/conn min–max",
    "starved",
    "note",
)
PRESET_LABELS = {
    "static": "static file (/index.html)",
    "sleep": "/api/sleep?ms=50 (IO-bound)",
    "work": "/api/work?ms=20 (CPU-bound, the GIL)",
}

RESPONSE_HINT = Text(
    "Ctrl+J sends the request. Things to try on the embedded server:\n"
    "  /index.html          a static file (see Raw for the CRLFs)\n"
    "  /api/echo            any method: your request back as JSON\n"
    "  /api/sleep?ms=500    a slow answer: watch 'first byte'\n"
    "  /api/work?ms=50      CPU work inside the server\n"
    "  /missing             a 404",
    style="italic",
)

HTTP_TAB_HELP = """\
## HTTP tester and load generator

**Request** — build a request like the course's HTTP anatomy: a *request line*
(method, target, version), *headers*, a *blank line*, then the *body*.

- Pick the method, edit the URL (it starts on the embedded HTTP server), put
  headers one per line as `Name: value`, and a body if the method takes one.
- **Ctrl+J** sends it, off the UI thread. The response shows the status line,
  the headers, the body (JSON and HTML highlighted), its size and the timings:
  *connect* (TCP handshake), *first byte* (server think time), *total*.
- **Raw** shows the exact bytes sent and received; `␍␊` marks each CRLF, so the
  blank line that ends the headers is visible.
- A long body is read to its end and every byte counted; the view keeps the first
  8 MiB and says so. **Ctrl+B** saves the whole body into the data folder's
  `downloads/` (the notification gives the full path).
- **History** lists this session's requests; select one to load and re-send it.
  If the builder holds edits you have not sent, it asks first (Keep editing / Replace).
- **Ctrl+O** copies the request as a `curl` command: sent to the terminal's
  clipboard with OSC 52, and shown in a box to select and copy by hand where the
  terminal ignores OSC 52 (tmux unless `set -g set-clipboard on`).

**Load** — runs the request in the builder many times, like `wrk`/`oha`:
a count *or* a duration, a number of concurrent connections, keep-alive on or off
(off pays a TCP handshake per request). **Ctrl+R** starts or stops; figures
update a few times a second: progress, requests/s, latency percentiles
(p50/p90/p99/p99.9/max), a latency histogram, status codes, errors by kind, and
fairness: answers per connection (min, max) and how many connections starved.
**Ctrl+S** exports the last result as JSON and CSV into the data folder's
`exports/` (the notification gives the full paths). Empty boxes take the
defaults: 10 connections, 1,000 requests; give seconds instead of requests to run
for a time.

**Compare models** — restarts the embedded HTTP server under each ticked model, in
the list's order, and runs the same load against it, then draws req/s and p99 side
by side. A first visit ticks one model of each family (threads, pool, epoll,
asyncio, prefork); tick more with Space. The table shows how fairly each model
served its connections (answers per connection, min–max): a connection is
*starved* when it got under 10% of a fair share (answered requests / connections).
A model that starved any connection is never drawn as the best (its bars carry ✗):
percentiles only count the requests that were answered, so the iterative server
(3.1) looks fast to its one client while the others wait the whole run. The note
column says why. Presets:

- *static file*: little work per request, so what shows is each model's own
  overhead; the iterative server and the pool serve only some clients at a time.
- *`/api/sleep?ms=50`*: IO-bound. Waiting overlaps under threads and event loops;
  the iterative server serves one client at a time, so with keep-alive the first
  client keeps it and the others starve.
- *`/api/work?ms=20`*: CPU-bound. The GIL lets only one thread compute at a time,
  so threads do no better than one loop; processes (pool, prefork) use every core.

Afterwards the HTTP server is put back on the model it had before.
"""


@dataclass(frozen=True)
class HistoryEntry:
    """One request of this session and how it ended."""

    number: int
    request: HttpRequest
    response: HttpResponse | None
    error: str | None
    sent_at: float

    @property
    def outcome(self) -> str:
        if self.response is not None:
            return f"{self.response.status} {self.response.reason}"
        return f"error: {self.error}"


def describe_size(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KiB"
    return f"{count / 1024 / 1024:.1f} MiB"


def _looks_binary(response: HttpResponse) -> bool:
    kind = response.content_type
    if kind.startswith("text/") or any(word in kind for word in ("json", "xml", "javascript")):
        return False
    sample = response.body[:1024]
    if b"\x00" in sample:
        return True
    try:
        sample.decode(response.charset)
    except (UnicodeDecodeError, LookupError):
        return True
    return False


def describe_arrival(response: HttpResponse) -> str:
    """Whether the whole body arrived, and how much of it the view keeps."""
    whole = f"{describe_size(response.body_length)} ({response.body_length:,} B)"
    if response.truncated:
        return (
            f"reading stopped after {whole}: the rest of the body was not read; "
            f"the view keeps the first {describe_size(len(response.body))}"
        )
    if response.body_is_partial:
        return (
            f"all {whole} arrived; the view keeps the first {describe_size(len(response.body))}"
            " — Ctrl+B saves the whole body to a file"
        )
    return ""


def render_body(response: HttpResponse, dark: bool = True) -> RenderableType:
    """Body as a highlighted renderable: JSON pretty-printed, HTML coloured, binary as hex."""
    if not response.body:
        return Text("(empty body)", style="italic")
    arrival = describe_arrival(response)
    if _looks_binary(response):
        preview = response.body[:512]
        lines = [
            f"{offset:08x}  {preview[offset : offset + 16].hex(' '):<47}  "
            + "".join(chr(b) if 32 <= b < 127 else "." for b in preview[offset : offset + 16])
            for offset in range(0, len(preview), 16)
        ]
        note = f"binary body, {describe_size(response.body_length)}"
        if arrival:
            note += f"\n{arrival}"
        if response.body_length > len(preview):
            note += f"\nthe first {len(preview)} bytes as hex:"
        return Text(note + "\n\n" + "\n".join(lines))
    text = response.body_text()
    clipped = len(text) > BODY_VIEW_LIMIT
    text = text[:BODY_VIEW_LIMIT]
    kind = response.content_type
    lexer = None
    if "json" in kind or (not kind and text.lstrip()[:1] in ("{", "[")):
        lexer = "json"
        if not clipped:
            try:
                text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
            except ValueError:
                pass  # show malformed JSON as it came
    elif "html" in kind:
        lexer = "html"
    elif "css" in kind:
        lexer = "css"
    elif "javascript" in kind:
        lexer = "javascript"
    elif "xml" in kind:
        lexer = "xml"
    if clipped:
        text += f"\n… the view shows the first {BODY_VIEW_LIMIT:,} characters"
    if arrival:
        text += f"\n… {arrival}"
    if clipped and not arrival:
        text += "; Ctrl+B saves the whole body to a file"
    if lexer is None:
        return Text(text)
    return Syntax(
        text,
        lexer,
        theme="monokai" if dark else "default",
        word_wrap=True,
        background_color="default",
    )


def _current_model(manager: ServerDirectory) -> str | None:
    """The embedded HTTP server's model, if the manager can tell."""
    try:
        server_id = manager.default_server_id("http")
        row = manager.row(server_id) if server_id else None
    except Exception:
        return None
    return getattr(row, "model", None)


class HttpTab(Widget):
    """Request builder, response inspector, history, load generator and model comparison."""

    HELP = HTTP_TAB_HELP

    BINDINGS = [
        Binding("ctrl+j", "send", "Send"),
        Binding("ctrl+r", "toggle_load", "Run/stop load"),
        Binding("ctrl+o", "copy_curl", "Copy as curl"),
        Binding("ctrl+b", "save_body", "Save body"),
        Binding("ctrl+s", "export", "Export load"),
    ]

    DEFAULT_CSS = """
    HttpTab { height: 1fr; }
    HttpTab #http-sections { height: 1fr; }
    HttpTab #request-line { height: auto; padding: 0 1; }
    HttpTab #method { width: 16; }
    HttpTab #url { width: 1fr; }
    HttpTab #send { min-width: 10; }
    HttpTab #exchange { height: 1fr; }
    HttpTab #editors { width: 2fr; }
    HttpTab #response-area { width: 3fr; }
    HttpTab #headers-editor, HttpTab #body-editor { height: 1fr; }
    HttpTab #status-line { height: auto; padding: 0 1; text-style: bold; color: $text; }
    HttpTab #status-line.-ok { color: $success; }
    HttpTab #status-line.-redirect { color: $warning; }
    HttpTab #status-line.-failed { color: $error; }
    HttpTab #timings { height: auto; padding: 0 1; color: $text-muted; }
    HttpTab #response-tabs { height: 1fr; }
    HttpTab #response-body { height: auto; padding: 0 1; }
    HttpTab .form-row { height: auto; padding: 0 1; }
    HttpTab .form-row Label { padding: 1 1 0 1; }
    HttpTab .form-row Input { width: 10; }
    HttpTab .form-row Button { min-width: 10; margin-left: 1; }
    HttpTab #load-target, HttpTab #compare-status, HttpTab #compare-preset-note {
        height: auto; padding: 0 1; color: $text-muted;
    }
    HttpTab #compare-top { height: auto; }
    HttpTab #compare-models { width: 30; height: 11; }
    HttpTab #compare-form { height: auto; width: 1fr; }
    HttpTab #compare-preset { width: 44; }
    HttpTab #compare-charts { height: auto; }
    HttpTab #compare-rps, HttpTab #compare-p99 { width: 1fr; }
    HttpTab #compare-table { height: auto; }
    HttpTab #compare-legend { height: auto; padding: 0 1; color: $text-muted; }
    """

    class ResponseReceived(Message):
        def __init__(self, entry: HistoryEntry) -> None:
            super().__init__()
            self.entry = entry

    class RequestFailed(Message):
        def __init__(self, entry: HistoryEntry) -> None:
            super().__init__()
            self.entry = entry

    class BodySaved(Message):
        def __init__(self, path: Path | None, size: int = 0, error: str | None = None) -> None:
            super().__init__()
            self.path = path
            self.size = size
            self.error = error

    class Exported(Message):
        def __init__(self, paths: tuple[Path, Path] | None, error: str | None = None) -> None:
            super().__init__()
            self.paths = paths
            self.error = error

    class LoadUpdated(Message):
        def __init__(self, snapshot: LoadSnapshot, final: bool) -> None:
            super().__init__()
            self.snapshot = snapshot
            self.final = final

    class LoadFailed(Message):
        def __init__(self, reason: str) -> None:
            super().__init__()
            self.reason = reason

    class CompareProgress(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class CompareModelDone(Message):
        def __init__(self, result: ModelResult) -> None:
            super().__init__()
            self.result = result

    class CompareFinished(Message):
        def __init__(self, results: list[ModelResult], error: str | None = None) -> None:
            super().__init__()
            self.results = results
            self.error = error

    def __init__(
        self,
        base_url: str | None = None,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._base_url = base_url.rstrip("/") if base_url else None
        self._auto_url = ""
        self.history: list[HistoryEntry] = []
        self.last_load: LoadSnapshot | None = None
        self.compare_results: list[ModelResult] = []
        self._load_stop: threading.Event | None = None
        self._compare_stop: threading.Event | None = None
        #: Load worker processes: None = one per core; 0 = a thread (no spawn).
        self.load_processes: int | None = None
        self.last_export: tuple[Path, Path] | None = None
        #: The response on show; its spooled long body is deleted when it is replaced.
        self.current_response: HttpResponse | None = None
        #: The builder's (method, URL, headers, body) when last sent: edits since are unsent.
        self._sent_form: tuple[str, str, str, str] | None = None
        self.last_saved_body: Path | None = None
        #: The data folder (saved bodies, load exports); None asks the app, then the default.
        self.data_dir: Path | None = None

    # -- layout ---------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with TabbedContent(id="http-sections", initial="http-request"):
            with TabPane("Request", id="http-request"):
                yield from self._compose_request()
            with TabPane("Load", id="http-load"), VerticalScroll():
                yield from self._compose_load()
            with TabPane("Compare models", id="http-compare"), VerticalScroll():
                yield from self._compose_compare()

    def _compose_request(self) -> ComposeResult:
        with Horizontal(id="request-line"):
            yield Select(
                [(method, method) for method in METHODS],
                value="GET",
                allow_blank=False,
                id="method",
            )
            yield Input(placeholder="http://127.0.0.1:PORT/", id="url")
            yield Button("Send", id="send", variant="primary")
        with Horizontal(id="exchange"):
            with TabbedContent(id="editors"):
                with TabPane("Headers", id="headers-pane"):
                    yield TextArea(
                        id="headers-editor",
                        placeholder="Name: value, one per line (e.g. Accept: application/json)",
                    )
                with TabPane("Body", id="body-pane"):
                    yield TextArea(id="body-editor", placeholder="request body (POST, PUT, PATCH)")
            with Vertical(id="response-area"):
                yield Static("No request sent yet.", id="status-line", markup=False)
                yield Static("", id="timings", markup=False)
                with TabbedContent(id="response-tabs"):
                    with TabPane("Body", id="response-body-pane"), VerticalScroll():
                        yield Static(RESPONSE_HINT, id="response-body")
                    with TabPane("Headers", id="response-headers-pane"):
                        yield DataTable(id="response-headers", cursor_type="row")
                    with TabPane("Raw", id="raw-pane"), VerticalScroll():
                        yield RawExchange(id="raw")
                    with TabPane("History", id="history-pane"):
                        yield DataTable(id="history", cursor_type="row", zebra_stripes=True)

    def _compose_load(self) -> ComposeResult:
        with Horizontal(classes="form-row"):
            # valid_empty: an empty box means "the default", not a mistake to paint red.
            yield Label("connections")
            yield Input(
                "10", id="load-concurrency", type="integer", placeholder="10", valid_empty=True
            )
            yield Label("requests")
            yield Input(
                "2000", id="load-requests", type="integer", placeholder="1000", valid_empty=True
            )
            yield Label("or seconds")
            yield Input("", id="load-duration", type="number", placeholder="-", valid_empty=True)
            yield Checkbox("keep-alive", True, id="load-keepalive")
            yield Button("Run", id="load-start", variant="primary")
            yield Button("Stop", id="load-stop", variant="error", disabled=True)
            yield Button("Export", id="load-export", disabled=True)
        yield Static(
            "Target: the request in the Request tab. An empty box takes its default:"
            " 10 connections; 1,000 requests unless seconds are given.",
            id="load-target",
            markup=False,
        )
        yield LoadFigures(id="load-figures")

    def _compose_compare(self) -> ComposeResult:
        with Horizontal(id="compare-top"):
            yield TickList(
                *[
                    (model, model, model in DEFAULT_COMPARE_MODELS)
                    for model in self._available_models()
                ],
                id="compare-models",
            )
            with Vertical(id="compare-form"):
                yield Select(
                    [(label, key) for key, label in PRESET_LABELS.items()],
                    value="sleep",
                    allow_blank=False,
                    id="compare-preset",
                )
                yield Static(
                    " — ".join(COMPARE_PRESETS["sleep"]), id="compare-preset-note", markup=False
                )
                with Horizontal(classes="form-row"):
                    yield Label("connections")
                    yield Input(
                        "20",
                        id="compare-concurrency",
                        type="integer",
                        placeholder="20",
                        valid_empty=True,
                    )
                    yield Label("seconds each")
                    yield Input(
                        "3", id="compare-seconds", type="number", placeholder="3", valid_empty=True
                    )
                    yield Button("Compare", id="compare-run", variant="primary")
                    yield Button("Stop", id="compare-stop", variant="error", disabled=True)
                yield Static(
                    self._ticked_text(self._default_ticked()), id="compare-status", markup=False
                )
        with Horizontal(id="compare-charts"):
            yield BarChart("requests/s (higher is better)", id="compare-rps", best="max")
            yield BarChart(
                "p99 latency ms (lower is better)",
                id="compare-p99",
                best="min",
                value_format=lambda value: f"{value:,.1f}",
            )
        yield Static(
            "Green: the best among models that served every connection. ✗: not ranked — "
            + starvation_rule()
            + ".",
            id="compare-legend",
            markup=False,
        )
        yield DataTable(id="compare-table", cursor_type="none", zebra_stripes=True)

    def _default_ticked(self) -> list[str]:
        return [model for model in self._available_models() if model in DEFAULT_COMPARE_MODELS]

    def _ticked_text(self, models: list[str]) -> str:
        total = len(self._available_models())
        if not models:
            return f"No model ticked (of {total}): tick some with Space, then press Compare."
        why = " (one of each family, ticked by default)" if models == self._default_ticked() else ""
        return (
            f"Will compare {len(models)} of {total} models{why}, in this order:"
            f" {', '.join(models)}. Space ticks or unticks."
        )

    def ticked_models(self) -> list[str]:
        """The ticked models in the list's order (SelectionList keeps the ticking order)."""
        selected = self.query_one("#compare-models", SelectionList).selected
        return in_list_order(selected, self._available_models())

    @on(SelectionList.SelectedChanged, "#compare-models")
    def _ticks_changed(self) -> None:
        if self._compare_stop is None:
            self.query_one("#compare-status", Static).update(
                self._ticked_text(self.ticked_models())
            )

    @staticmethod
    def _available_models() -> tuple[str, ...]:
        return available_models()

    def on_mount(self) -> None:
        headers = self.query_one("#response-headers", DataTable)
        headers.add_column("header", key="name")
        headers.add_column("value", key="value")
        history = self.query_one("#history", DataTable)
        for label, key in (
            ("#", "number"),
            ("time", "time"),
            ("method", "method"),
            ("URL", "url"),
            ("result", "result"),
            ("ms", "ms"),
        ):
            history.add_column(label, key=key)
        table = self.query_one("#compare-table", DataTable)
        for label in COMPARE_COLUMNS:
            table.add_column(label, key=label)
        self._refresh_default_url()

    def on_endpoint_changed(self, message: EndpointChanged) -> None:
        # The embedded server started after the tab mounted, or moved port on a restart.
        if message.protocol == "http":
            self._refresh_default_url()

    # -- the embedded server ----------------------------------------------------------

    def _server_manager(self) -> ServerDirectory | None:
        return server_directory(self)

    def embedded_base_url(self) -> str | None:
        """``http://host:port`` of the embedded HTTP server (or ``base_url``), None if not running."""
        if self._base_url:
            return self._base_url
        manager = self._server_manager()
        if manager is None:
            return None
        try:
            endpoint = manager.endpoint("http")
        except Exception:
            return None
        if not endpoint:
            return None
        if isinstance(endpoint, str):
            return (endpoint if "://" in endpoint else "http://" + endpoint).rstrip("/")
        return f"http://{host_port(str(endpoint[0]), int(endpoint[1]))}"

    def _refresh_default_url(self) -> None:
        url_input = self.query_one("#url", Input)
        base = self.embedded_base_url()
        if base is None:
            return
        wanted = base + "/"
        current = url_input.value
        if not current or current == self._auto_url:
            url_input.value = wanted
        elif self._auto_url and current.startswith(self._auto_url.rstrip("/")):
            # Same server, new port after a restart: keep the user's path.
            url_input.value = base + current[len(self._auto_url.rstrip("/")) :]
        self._auto_url = wanted

    # -- request builder ----------------------------------------------------------------

    def build_request(self) -> HttpRequest:
        """The request described by the editors; raises HttpClientError on bad input."""
        method = str(self.query_one("#method", Select).value or "GET")
        url = self.query_one("#url", Input).value.strip()
        if not url:
            raise HttpClientError("bad url", "bad URL: empty (is the embedded server running?)")
        parse_url(url)
        headers = parse_header_text(self.query_one("#headers-editor", TextArea).text)
        body = self.query_one("#body-editor", TextArea).text.encode("utf-8")
        return HttpRequest(method, url, headers, body)

    def action_send(self) -> None:
        self._sent_form = self._form_state()
        try:
            request = self.build_request()
        except HttpClientError as error:
            self._show_failure(str(error))
            return
        self._set_status(f"Sending {request.method} {request.url} …", "")
        self.query_one("#send", Button).disabled = True
        self._send_in_thread(request)

    @on(Button.Pressed, "#send")
    def _send_pressed(self) -> None:
        self.action_send()

    @on(Input.Submitted, "#url")
    def _url_submitted(self) -> None:
        self.action_send()

    @work(thread=True, group="http-send", exit_on_error=False)
    def _send_in_thread(self, request: HttpRequest) -> None:
        number = len(self.history) + 1
        sent_at = time.time()
        try:
            response = send_request(request)
        except HttpClientError as error:
            self.post_message(
                self.RequestFailed(HistoryEntry(number, request, None, str(error), sent_at))
            )
        except Exception as error:  # never a traceback in the UI
            reason = f"unexpected {type(error).__name__}: {error}"
            self.post_message(
                self.RequestFailed(HistoryEntry(number, request, None, reason, sent_at))
            )
        else:
            self.post_message(
                self.ResponseReceived(HistoryEntry(number, request, response, None, sent_at))
            )

    def on_http_tab_response_received(self, message: ResponseReceived) -> None:
        self.query_one("#send", Button).disabled = False
        entry = self._remember(message.entry)
        response = entry.response
        assert response is not None
        if self.current_response is not None:
            self.current_response.release()
        self.current_response = response
        status_class = (
            "-ok" if response.status < 300 else "-redirect" if response.status < 400 else "-failed"
        )
        self._set_status(response.status_line, status_class)
        timings = response.timings
        arrival = describe_arrival(response)
        self.query_one("#timings", Static).update(
            f"connect {timings.connect_ms:.2f} ms · first byte {timings.first_byte_ms:.2f} ms · "
            f"total {timings.total_ms:.2f} ms · body {describe_size(response.body_length)}"
            f" · {response.received_bytes:,} B received" + (f"\n{arrival}" if arrival else "")
        )
        headers = self.query_one("#response-headers", DataTable)
        headers.clear()
        for name, value in response.headers:
            headers.add_row(name, value)
        dark = bool(getattr(self.app.current_theme, "dark", True))
        self.query_one("#response-body", Static).update(render_body(response, dark))
        self.query_one("#raw", RawExchange).show_exchange(
            response.raw_request, response.raw_response, response.received_bytes
        )

    def on_http_tab_request_failed(self, message: RequestFailed) -> None:
        self.query_one("#send", Button).disabled = False
        entry = self._remember(message.entry)
        self._show_failure(entry.error or "request failed")

    def _show_failure(self, reason: str) -> None:
        self._set_status(reason, "-failed")
        self.query_one("#timings", Static).update("")
        self.notify(reason, title="HTTP request", severity="error")

    def _set_status(self, text: str, status_class: str) -> None:
        line = self.query_one("#status-line", Static)
        line.remove_class("-ok", "-redirect", "-failed")
        if status_class:
            line.add_class(status_class)
        line.update(text)

    def _remember(self, entry: HistoryEntry) -> HistoryEntry:
        entry = replace(entry, number=len(self.history) + 1)
        self.history.append(entry)
        total = f"{entry.response.timings.total_ms:.1f}" if entry.response else "-"
        self.query_one("#history", DataTable).add_row(
            str(entry.number),
            time.strftime("%H:%M:%S", time.localtime(entry.sent_at)),
            entry.request.method,
            entry.request.url,
            entry.outcome,
            total,
            key=str(entry.number),
        )
        return entry

    def _form_state(self) -> tuple[str, str, str, str]:
        return (
            str(self.query_one("#method", Select).value or "GET"),
            self.query_one("#url", Input).value.strip(),
            self.query_one("#headers-editor", TextArea).text,
            self.query_one("#body-editor", TextArea).text,
        )

    def has_unsent_edits(self) -> bool:
        """True when the builder holds a request the user changed and has not sent."""
        state = self._form_state()
        if state == self._sent_form:
            return False
        method, url, headers, body = state
        untouched = method == "GET" and url in ("", self._auto_url) and not headers and not body
        return not untouched

    @on(DataTable.RowSelected, "#history")
    def _history_selected(self, event: DataTable.RowSelected) -> None:
        number = int(str(event.row_key.value))
        if not self.has_unsent_edits():
            self.resend(number)
            return
        method, url, headers, body = self._form_state()
        chosen = self.history[number - 1].request
        question = (
            f"The request you are editing ({method} {url or '(no URL)'}"
            f", {len(headers.splitlines())} header line(s), {len(body.encode()):,} B of body)"
            " has not been sent.\n\n"
            f"Replace it with history #{number} ({chosen.method} {chosen.url}) and send that?"
            " Your edits would be lost."
        )

        def answered(replace: bool | None) -> None:
            if replace:
                self.resend(number)

        self.app.push_screen(ReplaceDraftScreen(question), answered)

    def resend(self, number: int) -> None:
        """Load history entry ``number`` into the builder and send it again."""
        entry = self.history[number - 1]
        request = entry.request
        self.query_one("#method", Select).value = request.method
        self.query_one("#url", Input).value = request.url
        self.query_one("#headers-editor", TextArea).text = "\n".join(
            f"{name}: {value}" for name, value in request.headers
        )
        self.query_one("#body-editor", TextArea).text = request.body.decode(
            "utf-8", errors="replace"
        )
        self.action_send()

    def on_unmount(self) -> None:
        if self.current_response is not None:
            self.current_response.release()

    def data_folder(self) -> Path:
        """Where saved bodies and load exports go: ``--data``'s folder, else the default one."""
        if self.data_dir is not None:
            return self.data_dir
        manager = self._server_manager()
        folder = getattr(manager, "data_dir", None)
        if isinstance(folder, Path):
            return folder
        from workbench.data import default_data_dir

        return default_data_dir()

    def action_save_body(self) -> None:
        response = self.current_response
        if response is None:
            self.notify("Send a request first.", title="Save body", severity="warning")
            return
        self._save_body_in_thread(response, self.data_folder() / "downloads")

    @work(thread=True, group="http-save", exit_on_error=False)
    def _save_body_in_thread(self, response: HttpResponse, folder: Path) -> None:
        try:
            path = save_body(response, folder)
        except OSError as error:
            self.post_message(self.BodySaved(None, error=f"cannot save the body: {error}"))
        else:
            self.post_message(self.BodySaved(path, response.body_length))

    def on_http_tab_body_saved(self, message: BodySaved) -> None:
        if message.path is None:
            self.notify(message.error or "not saved", title="Save body", severity="error")
            return
        self.last_saved_body = message.path
        self.notify(f"{describe_size(message.size)} written to\n{message.path}", title="Body saved")

    def action_copy_curl(self) -> None:
        try:
            command = to_curl(self.build_request())
        except HttpClientError as error:
            self.notify(str(error), title="Copy as curl", severity="error")
            return
        # OSC 52 reaches the clipboard only where the terminal allows it (not tmux by
        # default), and nothing tells us whether it did: show the command as well.
        self.app.copy_to_clipboard(command)
        self.app.push_screen(CurlCommandScreen(command))

    # -- load generator -----------------------------------------------------------------

    def _int_field(self, selector: str, name: str) -> int | None:
        text = self.query_one(selector, Input).value.strip()
        if not text:
            return None
        try:
            return int(text)
        except ValueError:
            raise LoadConfigError(f"{name} must be a whole number") from None

    def _float_field(self, selector: str, name: str) -> float | None:
        text = self.query_one(selector, Input).value.strip()
        if not text:
            return None
        try:
            return float(text)
        except ValueError:
            raise LoadConfigError(f"{name} must be a number") from None

    def build_load_config(self) -> LoadConfig:
        """The load described by the Load form and the request builder; raises LoadConfigError."""
        try:
            request = self.build_request()
        except HttpClientError as error:
            raise LoadConfigError(str(error)) from None
        if request.url.startswith("https://"):
            raise LoadConfigError("the load generator speaks plain http:// only")
        return LoadConfig(
            url=request.url,
            method=request.method,
            body=request.body,
            headers=dict(request.headers),
            concurrency=self._int_field("#load-concurrency", "connections") or 10,
            requests=self._int_field("#load-requests", "requests"),
            duration=self._float_field("#load-duration", "seconds"),
            keepalive=self.query_one("#load-keepalive", Checkbox).value,
            processes=self.load_processes,
        ).validated()

    def action_toggle_load(self) -> None:
        if self._load_stop is not None:
            self._load_stop.set()
            return
        self.start_load()

    @on(Button.Pressed, "#load-start")
    def start_load(self) -> None:
        if self._load_stop is not None:
            return
        try:
            config = self.build_load_config()
        except LoadConfigError as error:
            self.notify(str(error), title="Load", severity="error")
            return
        amount = f"{config.requests:,} requests" if config.requests else f"{config.duration:g} s"
        self.query_one("#load-target", Static).update(
            f"Target: {config.method} {config.url} · {amount} · {config.concurrency} connections"
            f" · keep-alive {'on' if config.keepalive else 'off'}"
        )
        self.query_one(LoadFigures).reset()
        self._load_stop = threading.Event()
        self._set_load_running(True)
        self._run_load_in_thread(config, self._load_stop)

    @on(Button.Pressed, "#load-stop")
    def stop_load(self) -> None:
        if self._load_stop is not None:
            self._load_stop.set()

    def _set_load_running(self, running: bool) -> None:
        self.query_one("#load-start", Button).disabled = running
        self.query_one("#load-stop", Button).disabled = not running
        self.query_one("#compare-run", Button).disabled = running
        self.query_one("#load-export", Button).disabled = running or self.last_load is None

    @work(thread=True, group="http-load", exit_on_error=False)
    def _run_load_in_thread(self, config: LoadConfig, stop: threading.Event) -> None:
        try:
            final = run_load(
                config,
                on_progress=lambda snapshot: self.post_message(self.LoadUpdated(snapshot, False)),
                stop_event=stop,
            )
        except (LoadConfigError, OSError) as error:
            self.post_message(self.LoadFailed(str(error)))
        except Exception as error:  # never a traceback in the UI
            self.post_message(self.LoadFailed(f"unexpected {type(error).__name__}: {error}"))
        else:
            self.post_message(self.LoadUpdated(final, True))

    def on_http_tab_load_updated(self, message: LoadUpdated) -> None:
        if not message.final and self._load_stop is None:
            return  # a late progress message after the run ended
        self.query_one(LoadFigures).show(message.snapshot)
        if message.final:
            self.last_load = message.snapshot
            self._load_stop = None
            self._set_load_running(False)
            snapshot = message.snapshot
            severity = "warning" if snapshot.failed else "information"
            self.notify(
                f"{snapshot.completed:,} requests, {snapshot.requests_per_second:,.0f} req/s, "
                f"p99 {snapshot.percentiles_ms.get('p99', 0):.2f} ms, {snapshot.failed:,} failed",
                title="Load finished",
                severity=severity,
            )

    def on_http_tab_load_failed(self, message: LoadFailed) -> None:
        self._load_stop = None
        self._set_load_running(False)
        self.notify(message.reason, title="Load", severity="error")

    @on(Button.Pressed, "#load-export")
    def action_export(self) -> None:
        snapshot = self.last_load
        if snapshot is None:
            self.notify("Run a load first, then export it.", title="Export", severity="warning")
            return
        self._export_in_thread(snapshot, self.data_folder() / "exports")

    @work(thread=True, group="http-export", exit_on_error=False)
    def _export_in_thread(self, snapshot: LoadSnapshot, folder: Path) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            base, number = folder / f"workbench-load-{stamp}", 1
            while base.with_suffix(".json").exists() or base.with_suffix(".csv").exists():
                base, number = folder / f"workbench-load-{stamp}-{number}", number + 1
            json_path = base.with_suffix(".json")
            csv_path = base.with_suffix(".csv")
            json_path.write_text(snapshot.to_json(), encoding="utf-8")
            csv_path.write_text(snapshot.to_csv(), encoding="utf-8")
        except OSError as error:
            self.post_message(self.Exported(None, f"cannot write the export: {error}"))
        else:
            self.post_message(self.Exported((json_path, csv_path)))

    def on_http_tab_exported(self, message: Exported) -> None:
        if message.paths is None:
            self.notify(message.error or "not exported", title="Export", severity="error")
            return
        self.last_export = message.paths
        json_path, csv_path = message.paths
        self.notify(f"{json_path}\n{csv_path}", title="Exported")

    # -- compare models -------------------------------------------------------------------

    @on(Select.Changed, "#compare-preset")
    def _preset_changed(self, event: Select.Changed) -> None:
        preset = COMPARE_PRESETS.get(str(event.value))
        if preset is not None:
            self.query_one("#compare-preset-note", Static).update(f"{preset[0]} — {preset[1]}")

    @on(Button.Pressed, "#compare-run")
    def start_compare(self) -> None:
        if self._compare_stop is not None or self._load_stop is not None:
            return
        manager = self._server_manager()
        if manager is None or not hasattr(manager, "restart"):
            self.notify(
                "Compare models needs the workbench's embedded server manager "
                "(run the full workbench app).",
                title="Compare models",
                severity="error",
            )
            return
        if getattr(manager, "remote", None) is not None:
            # It restarts the server under each model: the teacher's is not ours to restart.
            self.notify(
                "Compare models restarts this workbench's own HTTP server; this one is "
                "connected to the teacher's (--connect). Run it on the teacher's workbench.",
                title="Compare models",
                severity="error",
            )
            return
        models = self.ticked_models()
        if not models:
            self.notify("Tick at least one model.", title="Compare models", severity="warning")
            return
        try:
            concurrency = self._int_field("#compare-concurrency", "connections") or 20
            seconds = self._float_field("#compare-seconds", "seconds") or 3.0
            LoadConfig("http://127.0.0.1/", concurrency=concurrency, duration=seconds).validated()
        except LoadConfigError as error:
            self.notify(str(error), title="Compare models", severity="error")
            return
        preset = str(self.query_one("#compare-preset", Select).value)
        path = COMPARE_PRESETS[preset][0]
        self.compare_results = []
        self.query_one("#compare-rps", BarChart).set_bars([])
        self.query_one("#compare-p99", BarChart).set_bars([])
        self.query_one("#compare-table", DataTable).clear()
        self._compare_stop = threading.Event()
        self._set_compare_running(True)
        self._compare_in_thread(manager, models, path, concurrency, seconds, self._compare_stop)

    @on(Button.Pressed, "#compare-stop")
    def stop_compare(self) -> None:
        if self._compare_stop is not None:
            self._compare_stop.set()

    def _set_compare_running(self, running: bool) -> None:
        self.query_one("#compare-run", Button).disabled = running
        self.query_one("#compare-stop", Button).disabled = not running
        self.query_one("#load-start", Button).disabled = running

    @work(thread=True, group="http-compare", exit_on_error=False)
    def _compare_in_thread(
        self,
        manager: Any,
        models: list[str],
        path: str,
        concurrency: int,
        seconds: float,
        stop: threading.Event,
    ) -> None:
        def prepare_server(model: str) -> str:
            server_id = manager.default_server_id("http")
            if server_id is None:
                manager.start("http", model)
            else:
                manager.restart(server_id, model=model)
            endpoint = manager.endpoint("http")
            if not endpoint:
                raise RuntimeError("the HTTP server is not running after the restart")
            return f"http://{host_port(str(endpoint[0]), int(endpoint[1]))}"

        def place(model: str) -> str:
            return f"{model} ({models.index(model) + 1} of {len(models)})"

        def progress(model: str, snapshot: LoadSnapshot) -> None:
            starved = snapshot.starved_connections
            self.post_message(
                self.CompareProgress(
                    f"{place(model)}: {snapshot.elapsed:.1f} of {seconds:g} s · "
                    f"{snapshot.requests_per_second:,.0f} req/s · "
                    f"p99 {snapshot.percentiles_ms.get('p99', 0):.1f} ms · "
                    f"{starved} of {len(snapshot.answered_per_connection)} connections starved"
                    " so far"
                )
            )

        original_model = _current_model(manager)
        try:
            results = compare_models(
                models,
                prepare_server,
                path,
                concurrency=concurrency,
                duration=seconds,
                processes=self.load_processes,
                on_model_start=lambda model: self.post_message(
                    self.CompareProgress(f"{place(model)}: restarting the HTTP server…")
                ),
                on_progress=progress,
                on_model_done=lambda result: self.post_message(self.CompareModelDone(result)),
                stop_event=stop,
            )
        except Exception as error:  # never a traceback in the UI
            self.post_message(self.CompareFinished([], f"{type(error).__name__}: {error}"))
            return
        restore_error = None
        if original_model is not None and _current_model(manager) != original_model:
            self.post_message(self.CompareProgress(f"putting the server back on {original_model}…"))
            try:
                manager.restart(manager.default_server_id("http") or "http", model=original_model)
            except Exception as error:
                restore_error = f"could not put the server back on {original_model}: {error}"
        self.post_message(self.CompareFinished(results, restore_error))

    def on_http_tab_compare_progress(self, message: CompareProgress) -> None:
        self.query_one("#compare-status", Static).update(message.text)

    def on_http_tab_compare_model_done(self, message: CompareModelDone) -> None:
        result = message.result
        self.compare_results.append(result)
        ran = [r for r in self.compare_results if r.snapshot is not None]
        unranked = {r.model for r in ran if not r.fair}
        self.query_one("#compare-rps", BarChart).set_bars(
            [(r.model, r.requests_per_second) for r in ran], unranked
        )
        self.query_one("#compare-p99", BarChart).set_bars(
            [(r.model, r.p99_ms) for r in ran], unranked
        )
        table = self.query_one("#compare-table", DataTable)
        snapshot = result.snapshot
        if snapshot is None:
            table.add_row(result.model, *["-"] * 8, verdict_note(result))
            return
        answered = snapshot.answered_per_connection
        spread = f"{min(answered):,}–{max(answered):,}" if answered else "-"
        table.add_row(
            result.model,
            f"{snapshot.requests_per_second:,.0f}",
            f"{snapshot.percentiles_ms['p50']:.2f}",
            f"{snapshot.percentiles_ms['p99']:.2f}",
            f"{snapshot.max_ms:.2f}",
            f"{snapshot.succeeded:,}",
            f"{snapshot.failed:,}",
            spread,
            f"{result.starved} of {result.connections}",
            verdict_note(result),
        )

    def on_http_tab_compare_finished(self, message: CompareFinished) -> None:
        self._compare_stop = None
        self._set_compare_running(False)
        if message.error and not message.results:
            self.query_one("#compare-status", Static).update(f"Comparison failed: {message.error}")
            self.notify(message.error, title="Compare models", severity="error")
            return
        done = [r for r in message.results if r.snapshot is not None]
        failed = [r for r in message.results if r.snapshot is None]
        text = f"Compared {len(done)} model{'s' if len(done) != 1 else ''}"
        text += f": {', '.join(r.model for r in done)}." if done else "."
        fastest, quickest = best_model(done, "rps"), best_model(done, "p99")
        if fastest and quickest:
            text += f" Best req/s: {fastest}; best p99: {quickest}."
        elif done:
            text += " No model served every connection: none is ranked."
        unranked = [r.model for r in done if not r.fair]
        if unranked:
            text += f" Not ranked (starved connections): {', '.join(unranked)}."
        if failed:
            text += " Could not run: " + "; ".join(f"{r.model} ({r.error})" for r in failed)
        if message.error:
            text += " " + message.error
            self.notify(message.error, title="Compare models", severity="error")
        self.query_one("#compare-status", Static).update(text)
        self._refresh_default_url()
