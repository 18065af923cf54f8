"""The HTTP tab's response viewer: status line, timings, then body, headers, raw bytes and history as tabs."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import RenderableType
from rich.syntax import Syntax
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable, Static, TabbedContent, TabPane

from workbench.clients.http import HttpResponse, save_body
from workbench.widgets.http_history import HistoryEntry, RequestHistory
from workbench.widgets.http_raw import RawExchange

#: Characters of a response body rendered with highlighting (the raw view has the bytes).
BODY_VIEW_LIMIT = 200_000

RESPONSE_HINT = Text(
    "Ctrl+J sends the request. Things to try on the embedded server:\n"
    "  /index.html          a static file (see Raw for the CRLFs)\n"
    "  /api/echo            any method: your request back as JSON\n"
    "  /api/sleep?ms=500    a slow answer: watch 'first byte'\n"
    "  /api/work?ms=50      CPU work inside the server\n"
    "  /missing             a 404",
    style="italic",
)


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


def status_class(status: int) -> str:
    """The status line's colour class: 2xx ok, 3xx redirect, anything else failed."""
    return "-ok" if status < 300 else "-redirect" if status < 400 else "-failed"


class ResponseViewer(Vertical):
    """Everything about the last answer; set :attr:`response` and every view follows."""

    DEFAULT_CSS = """
    ResponseViewer { width: 3fr; }
    ResponseViewer #status-line { height: auto; padding: 0 1; text-style: bold; color: $text; }
    ResponseViewer #status-line.-ok { color: $success; }
    ResponseViewer #status-line.-redirect { color: $warning; }
    ResponseViewer #status-line.-failed { color: $error; }
    ResponseViewer #timings { height: auto; padding: 0 1; color: $text-muted; }
    ResponseViewer #response-tabs { height: 1fr; }
    ResponseViewer #response-body { height: auto; padding: 0 1; }
    """

    #: The status line: its text and colour class (``-ok``, ``-redirect``, ``-failed`` or none).
    status: reactive[tuple[str, str]] = reactive(("No request sent yet.", ""), init=False)
    #: The response on show; the one it replaces has its spooled long body deleted.
    response: reactive[HttpResponse | None] = reactive(None, always_update=True, init=False)

    class BodySaved(Message):
        def __init__(self, path: Path | None, size: int = 0, error: str | None = None) -> None:
            super().__init__()
            self.path = path
            self.size = size
            self.error = error

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        #: This session's requests, the History tab.
        self.history = RequestHistory(id="history")
        self.last_saved_body: Path | None = None

    def compose(self) -> ComposeResult:
        yield Static(self.status[0], id="status-line", markup=False)
        yield Static("", id="timings", markup=False)
        with TabbedContent(id="response-tabs"):
            with TabPane("Body", id="response-body-pane"), VerticalScroll():
                yield Static(RESPONSE_HINT, id="response-body")
            with TabPane("Headers", id="response-headers-pane"):
                yield DataTable(id="response-headers", cursor_type="row")
            with TabPane("Raw", id="raw-pane"), VerticalScroll():
                yield RawExchange(id="raw")
            with TabPane("History", id="history-pane"):
                yield self.history

    def on_mount(self) -> None:
        headers = self.query_one("#response-headers", DataTable)
        headers.add_column("header", key="name")
        headers.add_column("value", key="value")

    def on_unmount(self) -> None:
        if self.response is not None:
            self.response.release()

    def watch_response(self, previous: HttpResponse | None, response: HttpResponse | None) -> None:
        if previous is not None and previous is not response:
            previous.release()
        if response is None:
            return
        self.status = (response.status_line, status_class(response.status))
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
        self.query_one(RawExchange).show_exchange(
            response.raw_request, response.raw_response, response.received_bytes
        )

    def show_entry(self, entry: HistoryEntry) -> None:
        """A request came back: add it to the history, show its response or why it failed."""
        entry = self.history.remember(entry)
        if entry.response is not None:
            self.response = entry.response
        else:
            self.show_failure(entry.error or "request failed")

    def watch_status(self, status: tuple[str, str]) -> None:
        text, kind = status
        line = self.query_one("#status-line", Static)
        line.remove_class("-ok", "-redirect", "-failed")
        if kind:
            line.add_class(kind)
        line.update(text)

    def show_failure(self, reason: str) -> None:
        """A request that got no answer: the reason in red, no timings, and a notification."""
        self.status = (reason, "-failed")
        self.query_one("#timings", Static).update("")
        self.notify(reason, title="HTTP request", severity="error")

    def save_body(self, folder: Path) -> None:
        """Write the whole body of the response on show into ``folder``, off the UI thread."""
        if self.response is None:
            self.notify("Send a request first.", title="Save body", severity="warning")
            return
        self._save_body_in_thread(self.response, folder)

    @work(thread=True, group="http-save", exit_on_error=False)
    def _save_body_in_thread(self, response: HttpResponse, folder: Path) -> None:
        try:
            path = save_body(response, folder)
        except OSError as error:
            self.post_message(self.BodySaved(None, error=f"cannot save the body: {error}"))
        else:
            self.post_message(self.BodySaved(path, response.body_length))

    def on_response_viewer_body_saved(self, message: BodySaved) -> None:
        if message.path is None:
            self.notify(message.error or "not saved", title="Save body", severity="error")
            return
        self.last_saved_body = message.path
        self.notify(f"{describe_size(message.size)} written to\n{message.path}", title="Body saved")
