"""The HTTP tab's request builder: the request line (method, URL, Send) and the header and body editors."""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Button, Input, Select, TabbedContent, TabPane, TextArea

from workbench.clients.http import (
    METHODS,
    HttpClientError,
    HttpRequest,
    parse_header_text,
    parse_url,
)


@dataclass(frozen=True)
class RequestForm:
    """What the builder holds, as typed: compared to tell unsent edits, turned into a request."""

    method: str
    url: str
    headers: str
    body: str

    def to_request(self) -> HttpRequest:
        """The request this form describes; raises HttpClientError on bad input."""
        if not self.url:
            raise HttpClientError("bad url", "bad URL: empty (is the embedded server running?)")
        parse_url(self.url)
        return HttpRequest(
            self.method, self.url, parse_header_text(self.headers), self.body.encode("utf-8")
        )

    def is_untouched(self, default_url: str) -> bool:
        """The form as the tab first shows it: a GET of the server's root, nothing typed."""
        return (
            self.method == "GET"
            and self.url in ("", default_url)
            and not self.headers
            and not self.body
        )

    def describe(self) -> str:
        return (
            f"{self.method} {self.url or '(no URL)'}, {len(self.headers.splitlines())} header"
            f" line(s), {len(self.body.encode()):,} B of body"
        )


class RequestLine(Horizontal):
    """Method, URL and Send: the request line of the course's HTTP anatomy."""

    DEFAULT_CSS = """
    RequestLine { height: auto; padding: 0 1; }
    RequestLine #method { width: 16; }
    RequestLine #url { width: 1fr; }
    RequestLine #send { min-width: 10; }
    """

    #: A request is on its way: Send waits for its answer.
    sending: reactive[bool] = reactive(False)

    class SendRequested(Message):
        """Send pressed, or Enter in the URL box."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        #: The URL the line last filled in itself, following the embedded server.
        self.default_url = ""

    def compose(self) -> ComposeResult:
        yield Select(
            [(method, method) for method in METHODS], value="GET", allow_blank=False, id="method"
        )
        yield Input(placeholder="http://127.0.0.1:PORT/", id="url")
        yield Button("Send", id="send", variant="primary")

    def watch_sending(self, sending: bool) -> None:
        self.query_one("#send", Button).disabled = sending

    @property
    def method(self) -> str:
        return str(self.query_one("#method", Select).value or "GET")

    @property
    def url(self) -> str:
        return self.query_one("#url", Input).value.strip()

    def show(self, method: str, url: str) -> None:
        """Put ``method`` and ``url`` in the line, as a history entry being re-sent."""
        self.query_one("#method", Select).value = method
        self.query_one("#url", Input).value = url

    def follow_server(self, base_url: str) -> None:
        """Point the URL at the server at ``base_url``, unless the user typed another one."""
        url_input = self.query_one("#url", Input)
        wanted = base_url + "/"
        current = url_input.value
        previous = self.default_url.rstrip("/")
        if not current or current == self.default_url:
            url_input.value = wanted
        elif previous and current.startswith(previous):
            # Same server, new port after a restart: keep the user's path.
            url_input.value = base_url + current[len(previous) :]
        self.default_url = wanted

    @on(Button.Pressed, "#send")
    @on(Input.Submitted, "#url")
    def _send(self, event: Message) -> None:
        event.stop()
        self.post_message(self.SendRequested())


class RequestEditors(Widget):
    """The headers (``Name: value`` per line) and the body of the request, one tab each."""

    DEFAULT_CSS = """
    RequestEditors { width: 2fr; height: auto; }
    RequestEditors #headers-editor, RequestEditors #body-editor { height: 1fr; }
    """

    def compose(self) -> ComposeResult:
        with TabbedContent(id="editors"):
            with TabPane("Headers", id="headers-pane"):
                yield TextArea(
                    id="headers-editor",
                    placeholder="Name: value, one per line (e.g. Accept: application/json)",
                )
            with TabPane("Body", id="body-pane"):
                yield TextArea(id="body-editor", placeholder="request body (POST, PUT, PATCH)")

    @property
    def headers(self) -> str:
        return self.query_one("#headers-editor", TextArea).text

    @property
    def body(self) -> str:
        return self.query_one("#body-editor", TextArea).text

    def show(self, request: HttpRequest) -> None:
        """Put ``request``'s headers and body in the editors."""
        self.query_one("#headers-editor", TextArea).text = "\n".join(
            f"{name}: {value}" for name, value in request.headers
        )
        self.query_one("#body-editor", TextArea).text = request.body.decode(
            "utf-8", errors="replace"
        )
