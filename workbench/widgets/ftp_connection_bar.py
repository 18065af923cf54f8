"""The FTP tab's connection bar: host, port, user, password, the transfer limit, Connect and a status line.

It logs in (in a thread worker) and hands the login on in a message; who browses
with it, and when to log out, is the tab's business.
"""

from __future__ import annotations

from typing import Literal

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Button, Input, Label

from workbench.clients.files import FileEntry
from workbench.clients.ftp import FtpClient, FtpError
from workbench.widgets.ftp_transfers import parse_rate_limit

#: host, port, user, password: what an FTP login needs.
ConnectionParams = tuple[str, int, str, str]
Phase = Literal["disconnected", "connecting", "connected"]

_BUTTON_LABELS: dict[Phase, str] = {
    "disconnected": "Connect",
    "connecting": "Connecting…",
    "connected": "Disconnect",
}


class FtpConnectionBar(Vertical):
    """The fields of a login, the login itself, and where it stands."""

    DEFAULT_CSS = """
    FtpConnectionBar {
        dock: top;
        height: auto;
    }
    FtpConnectionBar #ftp-connection {
        height: auto;
        padding: 0 1;
    }
    FtpConnectionBar #ftp-connection Label {
        padding: 1 1 0 1;
        color: $text-muted;
    }
    FtpConnectionBar #ftp-connection Input {
        width: 1fr;
    }
    FtpConnectionBar #ftp-connection #ftp-port {
        width: 12;
    }
    FtpConnectionBar #ftp-connection #ftp-rate {
        width: 11;
    }
    FtpConnectionBar #ftp-connection Button {
        margin-left: 1;
        min-width: 14;
    }
    FtpConnectionBar #ftp-status {
        width: 1fr;
        padding: 0 2;
        color: $text-muted;
    }
    FtpConnectionBar #ftp-status.-connected {
        color: $text-success;
    }
    FtpConnectionBar #ftp-status.-error {
        color: $text-error;
    }
    """

    #: Where the login stands; the button says what pressing it does next.
    phase: reactive[Phase] = reactive("disconnected", init=False)

    class ConnectRequested(Message):
        """Connect was pressed (``fresh`` False: it toggles) or Enter given in a field (``fresh``:
        connect anew with these fields, dropping any login first)."""

        def __init__(self, fresh: bool) -> None:
            super().__init__()
            self.fresh = fresh

    class LoggedIn(Message):
        """The login is up and its first listing is in."""

        def __init__(self, client: FtpClient, path: str, entries: list[FileEntry]) -> None:
            super().__init__()
            self.client = client
            self.path = path
            self.entries = entries

    class LoginFailed(Message):
        """The login was refused or the server could not be reached; ``code`` is its reply code."""

        def __init__(self, error: str, code: str | None) -> None:
            super().__init__()
            self.error = error
            self.code = code

    def compose(self) -> ComposeResult:
        with Horizontal(id="ftp-connection"):
            yield Label("Host")
            yield Input(placeholder="127.0.0.1", id="ftp-host")
            yield Label("Port")
            yield Input(placeholder="21", id="ftp-port", type="integer")
            yield Label("User")
            yield Input(placeholder="anonymous", id="ftp-user")
            yield Label("Password")
            yield Input(placeholder="(anonymous)", password=True, id="ftp-password")
            yield Label("Limit")
            yield Input(
                placeholder="KiB/s",
                type="integer",
                id="ftp-rate",
                tooltip="Most KiB/s each transfer may move, to watch it happen; empty: no limit",
            )
            yield Button("Connect", id="ftp-connect", variant="primary")
        yield Label("", id="ftp-status", markup=False)

    def watch_phase(self, phase: Phase) -> None:
        self.query_one("#ftp-connect", Button).label = _BUTTON_LABELS[phase]

    def set_status(self, text: str, *, connected: bool = False, error: bool = False) -> None:
        status = self.query_one("#ftp-status", Label)
        status.update(text)
        status.set_class(connected, "-connected")
        status.set_class(error, "-error")

    def params(self) -> ConnectionParams | None:
        """The login the fields describe; None (with the reason shown, the field focused) if unusable."""
        host_input = self.query_one("#ftp-host", Input)
        port_input = self.query_one("#ftp-port", Input)
        host = host_input.value.strip()
        port_text = port_input.value.strip() or "21"
        if not host:
            self.set_status("Enter the server's host (and port) to connect", error=True)
            host_input.focus()
            return None
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            self.set_status(f"Port must be a number from 1 to 65535, not {port_text!r}", error=True)
            port_input.focus()
            return None
        user = self.query_one("#ftp-user", Input).value.strip() or "anonymous"
        password = self.query_one("#ftp-password", Input).value
        return host, int(port_text), user, password

    def rate_limit(self) -> int | None:
        """The Limit field in bytes per second (None: no limit); ValueError, shown, when it is not a number."""
        try:
            return parse_rate_limit(self.query_one("#ftp-rate", Input).value)
        except ValueError as error:
            self.set_status(str(error), error=True)
            raise

    def connect(self) -> None:
        """Log in with the fields' values; LoggedIn or LoginFailed follows."""
        params = self.params()
        if params is None or self.phase == "connecting":
            return
        self.phase = "connecting"
        self.set_status(f"Connecting to {params[0]}:{params[1]}…")
        self._login_worker(params)

    @work(thread=True, group="ftp-connect", exit_on_error=False)
    def _login_worker(self, params: ConnectionParams) -> None:
        client = FtpClient(*params)
        try:
            client.connect()
            path = client.pwd()
            entries = client.list_dir()
        except FtpError as error:
            client.close()
            self.post_message(self.LoginFailed(str(error), error.code))
            return
        except Exception as error:  # never let a worker take the app down
            client.close()
            self.post_message(self.LoginFailed(f"connect: {error}", None))
            return
        self.post_message(self.LoggedIn(client, path, entries))

    @on(LoggedIn)
    def _show_logged_in(self, message: LoggedIn) -> None:
        client = message.client
        self.phase = "connected"
        self.set_status(
            f"Connected to {client.host}:{client.port} as {client.user}", connected=True
        )

    @on(LoginFailed)
    def _show_login_failed(self, message: LoginFailed) -> None:
        self.phase = "disconnected"
        self.set_status(message.error, error=True)

    def log_out(self, client: FtpClient | None, reason: str, *, error: bool = False) -> None:
        """Close ``client`` (QUIT, off the UI thread) and say why."""
        if client is not None:
            self._close_worker(client)
        self.phase = "disconnected"
        self.set_status(f"{reason} — press Connect to reconnect", error=error)

    @work(thread=True, group="ftp-close", exit_on_error=False)
    def _close_worker(self, client: FtpClient) -> None:
        client.close()

    @property
    def has_focus_within(self) -> bool:
        focused = self.screen.focused
        return focused is not None and self in focused.ancestors

    @on(Button.Pressed, "#ftp-connect")
    def _connect_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(self.ConnectRequested(fresh=False))

    @on(Input.Submitted, "#ftp-connection Input")
    def _field_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id != "ftp-rate":
            self.post_message(self.ConnectRequested(fresh=True))
            return
        # The limit applies to the next transfer: no need to reconnect for it.
        try:
            limit = self.rate_limit()
        except ValueError:
            return
        self.notify(
            f"Each transfer limited to {limit // 1024} KiB/s" if limit else "No transfer limit",
            title="FTP",
        )
