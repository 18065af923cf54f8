"""HTTP tab: a Posting-style request builder with the raw bytes on the wire, and a wrk-style load generator comparing concurrency models."""

from __future__ import annotations

import time
from pathlib import Path
from threading import Event

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widget import Widget
from textual.widgets import TabbedContent, TabPane

from workbench.clients.compare import ModelResult
from workbench.clients.http import HttpClientError, HttpRequest, HttpResponse, send_request, to_curl
from workbench.clients.loadgen import LoadSnapshot
from workbench.messages import EndpointChanged
from workbench.network import host_port
from workbench.server_directory import ServerControl, ServerDirectory
from workbench.tabs.endpoint import server_control, server_directory
from workbench.tabs.http_help import HTTP_TAB_HELP
from workbench.widgets.http_compare import ComparePanel
from workbench.widgets.http_dialogs import CurlCommandScreen, ReplaceDraftScreen
from workbench.widgets.http_history import HistoryEntry, RequestHistory
from workbench.widgets.http_load import LoadPanel
from workbench.widgets.http_request import RequestEditors, RequestForm, RequestLine
from workbench.widgets.http_response import ResponseViewer


def _current_model(manager: ServerDirectory) -> str | None:
    """The embedded HTTP server's model, if the manager can tell."""
    try:
        server_id = manager.default_server_id("http")
        row = manager.row(server_id) if server_id else None
    except Exception:
        return None
    return getattr(row, "model", None)


class EmbeddedHttpServer:
    """Compare models' handle on the app's HTTP server: the model it runs, a restart under another."""

    def __init__(self, manager: ServerControl) -> None:
        self._manager = manager

    def current_model(self) -> str | None:
        return _current_model(self._manager)

    def restart_under(self, model: str) -> str:
        server_id = self._manager.default_server_id("http")
        if server_id is None:
            self._manager.start("http", model)
        else:
            self._manager.restart(server_id, model=model)
        endpoint = self._manager.endpoint("http")
        if not endpoint:
            raise RuntimeError("the HTTP server is not running after the restart")
        return f"http://{host_port(str(endpoint[0]), int(endpoint[1]))}"


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
    HttpTab #exchange { height: 1fr; }
    """

    class RequestDone(Message):
        """A request sent from the builder came back, with a response or an error."""

        def __init__(self, entry: HistoryEntry) -> None:
            super().__init__()
            self.entry = entry

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
        self.request_line = RequestLine(id="request-line")
        self.editors = RequestEditors(id="request-editors")
        self.response_viewer = ResponseViewer(id="response-area")
        self.load_panel = LoadPanel(id="load-panel")
        self.compare_panel = ComparePanel(id="compare-panel")
        #: The builder's form when last sent: edits since are unsent.
        self._sent_form: RequestForm | None = None
        #: The data folder (saved bodies, load exports); None asks the app, then the default.
        self.data_dir: Path | None = None

    # -- what tests and the screenshots read of the regions ------------------------------

    @property
    def load_processes(self) -> int | None:
        """Load worker processes: None = one per core; 0 = a thread (no spawn)."""
        return self.load_panel.processes

    @load_processes.setter
    def load_processes(self, processes: int | None) -> None:
        self.load_panel.processes = self.compare_panel.processes = processes

    @property
    def history(self) -> list[HistoryEntry]:
        return self.response_viewer.history.entries

    @property
    def current_response(self) -> HttpResponse | None:
        return self.response_viewer.response

    @property
    def last_saved_body(self) -> Path | None:
        return self.response_viewer.last_saved_body

    @property
    def last_load(self) -> LoadSnapshot | None:
        return self.load_panel.last_load

    @property
    def last_export(self) -> tuple[Path, Path] | None:
        return self.load_panel.last_export

    @property
    def compare_results(self) -> list[ModelResult]:
        return list(self.compare_panel.results)

    @property
    def _load_stop(self) -> Event | None:
        return self.load_panel.stop_event

    @property
    def _compare_stop(self) -> Event | None:
        return self.compare_panel.stop_event

    # -- layout ---------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with TabbedContent(id="http-sections", initial="http-request"):
            with TabPane("Request", id="http-request"):
                yield self.request_line
                with Horizontal(id="exchange"):
                    yield self.editors
                    yield self.response_viewer
            with TabPane("Load", id="http-load"):
                yield self.load_panel
            with TabPane("Compare models", id="http-compare"):
                yield self.compare_panel

    def on_mount(self) -> None:
        # One load at a time on this machine: a load and a comparison wait for each other.
        self.watch(self.load_panel, "running", self._load_running_changed, init=False)
        self.watch(self.compare_panel, "running", self._compare_running_changed, init=False)
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
        base = self.embedded_base_url()
        if base is not None:
            self.request_line.follow_server(base)

    # -- request builder ----------------------------------------------------------------

    def _form(self) -> RequestForm:
        line, editors = self.request_line, self.editors
        return RequestForm(line.method, line.url, editors.headers, editors.body)

    def build_request(self) -> HttpRequest:
        """The request described by the builder; raises HttpClientError on bad input."""
        return self._form().to_request()

    @on(RequestLine.SendRequested)
    def action_send(self) -> None:
        self._sent_form = self._form()
        try:
            request = self._sent_form.to_request()
        except HttpClientError as error:
            self.response_viewer.show_failure(str(error))
            return
        self.response_viewer.status = (f"Sending {request.method} {request.url} …", "")
        self.request_line.sending = True
        self._send_in_thread(request)

    @work(thread=True, group="http-send", exit_on_error=False)
    def _send_in_thread(self, request: HttpRequest) -> None:
        number = len(self.history) + 1
        sent_at = time.time()
        try:
            response, error = send_request(request), None
        except HttpClientError as failure:
            response, error = None, str(failure)
        except Exception as failure:  # never a traceback in the UI
            response, error = None, f"unexpected {type(failure).__name__}: {failure}"
        self.post_message(self.RequestDone(HistoryEntry(number, request, response, error, sent_at)))

    def on_http_tab_request_done(self, message: RequestDone) -> None:
        self.request_line.sending = False
        self.response_viewer.show_entry(message.entry)

    def has_unsent_edits(self) -> bool:
        """True when the builder holds a request the user changed and has not sent."""
        form = self._form()
        return form != self._sent_form and not form.is_untouched(self.request_line.default_url)

    @on(RequestHistory.Chosen)
    def _history_chosen(self, message: RequestHistory.Chosen) -> None:
        number, chosen = message.entry.number, message.entry.request
        if not self.has_unsent_edits():
            self.resend(number)
            return
        question = (
            f"The request you are editing ({self._form().describe()}) has not been sent.\n\n"
            f"Replace it with history #{number} ({chosen.method} {chosen.url}) and send that?"
            " Your edits would be lost."
        )

        def answered(replace: bool | None) -> None:
            if replace:
                self.resend(number)

        self.app.push_screen(ReplaceDraftScreen(question), answered)

    def resend(self, number: int) -> None:
        """Load history entry ``number`` into the builder and send it again."""
        request = self.response_viewer.history.entry(number).request
        self.request_line.show(request.method, request.url)
        self.editors.show(request)
        self.action_send()

    def data_folder(self) -> Path:
        """Where saved bodies and load exports go: ``--data``'s folder, else the default one."""
        if self.data_dir is not None:
            return self.data_dir
        manager = self._server_manager()
        if manager is not None and manager.data_dir is not None:
            return Path(manager.data_dir)
        from workbench.data import default_data_dir

        return default_data_dir()

    def action_save_body(self) -> None:
        self.response_viewer.save_body(self.data_folder() / "downloads")

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

    # -- load generator and compare models ----------------------------------------------

    def action_toggle_load(self) -> None:
        if self.load_panel.running:
            self.load_panel.stop()
        else:
            self.start_load()

    @on(LoadPanel.RunRequested)
    def start_load(self) -> None:
        if self.load_panel.running:
            return
        if self.compare_panel.running:
            # A second load would skew every model's figures and the server restarts under it.
            self.notify(
                "Compare models is running: stop it (or let it finish) before a load run.",
                title="Load",
                severity="warning",
            )
            return
        try:
            request = self.build_request()
        except HttpClientError as error:
            self.notify(str(error), title="Load", severity="error")
            return
        self.load_panel.start(request)

    @on(LoadPanel.ExportRequested)
    def action_export(self) -> None:
        self.load_panel.export(self.data_folder() / "exports")

    def _load_running_changed(self, running: bool) -> None:
        self.compare_panel.load_running = running

    def _compare_running_changed(self, running: bool) -> None:
        self.load_panel.compare_running = running
        if not running:
            self._refresh_default_url()  # the server came back on another port

    @on(ComparePanel.RunRequested)
    def start_compare(self) -> None:
        if self.compare_panel.running or self.load_panel.running:
            return
        manager = server_control(self)
        if manager is None:
            self.notify(
                "Compare models needs the workbench's embedded server manager "
                "(run the full workbench app).",
                title="Compare models",
                severity="error",
            )
            return
        if manager.remote is not None:
            # It restarts the server under each model: the teacher's is not ours to restart.
            self.notify(
                "Compare models restarts this workbench's own HTTP server; this one is "
                "connected to the teacher's (--connect). Run it on the teacher's workbench.",
                title="Compare models",
                severity="error",
            )
            return
        self.compare_panel.start(EmbeddedHttpServer(manager))
