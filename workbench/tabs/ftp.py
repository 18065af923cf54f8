"""The FTP tab: a two-pane local | remote file browser over FTP (course 3.2: the ftp 文件服务器 exercise).

The tab is wiring. Each pane (:class:`FtpFilePane`) owns its file source (the
disk through :class:`LocalFiles`, the server through :class:`FtpClient` once
connected) and its listing and actions; the transfer line
(:class:`FtpTransferBar`) runs downloads and uploads. The tab keeps the
connection bar, follows the app's FTP server, and says which pane a key acts on
and which pane a transfer reads from and writes to.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Button, Input, Label

from workbench.clients.files import FileEntry, is_plain_file_name
from workbench.clients.ftp import FtpClient, FtpError, describe_access
from workbench.clients.local_files import LocalFiles
from workbench.tabs.endpoint import server_endpoint
from workbench.widgets.ftp_dialogs import FtpConfirmScreen
from workbench.widgets.ftp_file_pane import LOCAL_WORDS, FtpFilePane, notify_file_error
from workbench.widgets.ftp_transfers import (
    Direction,
    FtpTransferBar,
    format_eta,
    parse_rate_limit,
)

__all__ = ["NO_SERVER_TEXT", "FtpTab", "format_eta", "parse_rate_limit"]

ConnectionParams = tuple[str, int, str, str]

#: How often the tab asks the app's server manager where the FTP server is (a dict lookup).
ENDPOINT_POLL_SECONDS = 1.0

NO_SERVER_TEXT = "No server — enter host and port, then Connect"


class FtpTab(Widget):
    """Local and remote panes side by side, a connection bar on top and a transfer bar below."""

    HELP = """\
# FTP — the file server (ftp 文件服务器, the exercise of course 3.2 多任务并发模型)

A two-pane browser: **your disk on the left, the FTP server on the right**.
It talks to the workbench's own FTP server by default, and to any FTP server
(host, port, user and password at the top; anonymous when the user is empty).
On the workbench's own server **anonymous reads everywhere and writes (upload,
new folder, rename, delete) inside `uploads/` only**; named accounts from a
users file may write everywhere. The line under the Remote title says what the
current login may do.

FTP keeps **two connections**: a *control* connection where commands and
three-digit replies travel (`RETR file` → `150`, then `226`), and a fresh *data*
connection for each listing or file (passive mode: the server opens a port with
`PASV`/`EPSV`, the client connects). The reply code says what happened:
`2xx` done, `3xx` more needed, `4xx` try again later, `5xx` refused
(`550` no such file or no permission, `530` not logged in).

Every transfer opens its own control connection, so you can keep browsing while
it runs; watch the server's connection count climb in the **Servers** tab and see
how each concurrency model (threads, processes, pool…) serves them. Under the
event-loop models (select, poll, epoll, asyncio) the loop handles the control connections
and each data transfer runs in a thread of its own, so *Thr* reads `2+3` while one
file moves. To serve read-only or with accounts, select the ftp row there, press
**m** and tick *Read-only* or give a *Users file*.

| Key | Action |
|---|---|
| Enter / Backspace | open folder / go up (a click on the highlighted row opens it too) |
| Home / End | first / last row |
| letters | jump to the first name starting with them (`/` first when a name starts with a command key: d, u, m, r, x) |
| path box | type a path at the top of a pane, Enter goes there |
| Tab | next stop: each pane's path box and list, then the connection bar |
| `d` | download the remote file under the cursor into the local folder |
| `u` | upload the local file under the cursor into the remote folder |
| `m` | new folder (in the pane you are in) |
| `r` | rename |
| `Delete` | delete (asks first; a folder goes with its contents) |
| `x` | cancel the running transfer |
| `Ctrl+R` | refresh both panes |

Existing files are never overwritten without asking, and a cancelled or failed
transfer leaves no half-written file behind. A downloaded file keeps the
server's modification time (asked with `MDTM`).

**Limit** (KiB/s, empty for none) holds each transfer to that speed, so a
class can watch one move: the bottom line shows bytes, speed and ETA. The
server has the same knob for every client: `--max-rate` (KiB/s per transfer).
"""

    DEFAULT_CSS = """
    FtpTab {
        height: 1fr;
        layout: vertical;
    }
    FtpTab #ftp-top {
        dock: top;
        height: auto;
    }
    FtpTab #ftp-connection {
        height: auto;
        padding: 0 1;
    }
    FtpTab #ftp-connection Label {
        padding: 1 1 0 1;
        color: $text-muted;
    }
    FtpTab #ftp-connection Input {
        width: 1fr;
    }
    FtpTab #ftp-connection #ftp-port {
        width: 12;
    }
    FtpTab #ftp-connection #ftp-rate {
        width: 11;
    }
    FtpTab #ftp-connection Button {
        margin-left: 1;
        min-width: 14;
    }
    FtpTab #ftp-status {
        width: 1fr;
        padding: 0 2;
        color: $text-muted;
    }
    FtpTab #ftp-status.-connected {
        color: $text-success;
    }
    FtpTab #ftp-status.-error {
        color: $text-error;
    }
    FtpTab #ftp-panes {
        height: 1fr;
    }
    """

    BINDINGS = [
        Binding("d", "download", "Download"),
        Binding("u", "upload", "Upload"),
        Binding("m", "mkdir", "Mkdir"),
        Binding("r", "rename", "Rename"),
        Binding("delete", "delete", "Delete"),
        Binding("x", "cancel_transfer", "Cancel transfer"),
        Binding("ctrl+r", "refresh", "Refresh"),
    ]

    #: The transfer line's events, which bubble up here.
    TransferProgress = FtpTransferBar.Progress
    TransferFinished = FtpTransferBar.Finished

    class Connected(Message, bubble=False):
        """The browsing connection is up and the first listing is in."""

        def __init__(self, client: FtpClient, path: str, entries: list[FileEntry]) -> None:
            super().__init__()
            self.client = client
            self.path = path
            self.entries = entries

    class ConnectFailed(Message, bubble=False):
        def __init__(self, error: str, code: str | None) -> None:
            super().__init__()
            self.error = error
            self.code = code

    def __init__(
        self,
        endpoint: Any = None,
        local_dir: str | os.PathLike[str] | None = None,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._endpoint_override = endpoint
        self.local_files = LocalFiles(local_dir)
        self.local_pane = FtpFilePane(
            "Local", source=self.local_files, words=LOCAL_WORDS, id="ftp-local"
        )
        self.remote_pane = FtpFilePane("Remote", id="ftp-remote")
        self.transfers = FtpTransferBar(id="ftp-transfer")
        self._connecting = False
        #: The address last filled in from the server manager (to follow a restart, not override typing).
        self._auto_endpoint: tuple[str, int] | None = None

    def compose(self) -> ComposeResult:
        # The panes come first in the DOM so focusing "the first focusable widget" (what the app
        # does when the tab is shown) lands in the file list; the bars are docked into place.
        with Horizontal(id="ftp-panes"):
            yield self.local_pane
            yield self.remote_pane
        with Vertical(id="ftp-top"):
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
        yield self.transfers

    @property
    def client(self) -> FtpClient | None:
        """The browsing login, while connected."""
        source = self.remote_pane.source
        return source if isinstance(source, FtpClient) else None

    @property
    def local_path(self) -> Path:
        """The local folder shown (where downloads land)."""
        return Path(self.local_pane.path) if self.local_pane.path else self.local_files.directory

    @property
    def remote_path(self) -> str:
        """The server folder shown ("" while not connected)."""
        return self.remote_pane.path

    @property
    def transferring(self) -> bool:
        return self.transfers.running

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # "Cancel transfer" appears in the footer only while a transfer runs.
        if action == "cancel_transfer":
            return self.transferring
        return True

    def on_mount(self) -> None:
        self.local_pane.refresh_listing()
        self.remote_pane.show_placeholder(NO_SERVER_TEXT)
        self._set_status(NO_SERVER_TEXT)
        self.follow_server_endpoint()
        # The app starts its servers after the tabs mount, and may restart them on other ports.
        self.set_interval(ENDPOINT_POLL_SECONDS, self.follow_server_endpoint)

    def on_show(self) -> None:
        # The app may start its servers after the tabs mount: look again when shown.
        self.follow_server_endpoint()

    def on_unmount(self) -> None:
        client = self.client
        if client is not None:
            # Workers are being cancelled with the widget: say QUIT from a plain daemon thread.
            threading.Thread(target=client.close, name="ftp-quit", daemon=True).start()

    # -- endpoint and connection ----------------------------------------

    def _server_endpoint(self) -> tuple[str, int] | None:
        return server_endpoint(self, "ftp", self._endpoint_override)

    def follow_server_endpoint(self) -> None:
        """Fill the fields from the app's FTP server and connect; follow it if it restarts elsewhere.

        Only fields still holding what this method put there are changed: an
        address the user typed is never overwritten.
        """
        address = self._server_endpoint()
        if address is None or address == self._auto_endpoint or self._connecting:
            return
        host_input = self.query_one("#ftp-host", Input)
        port_input = self.query_one("#ftp-port", Input)
        fields = (host_input.value.strip(), port_input.value.strip())
        filled_by_us = self._auto_endpoint is not None and fields == (
            self._auto_endpoint[0],
            str(self._auto_endpoint[1]),
        )
        if fields != ("", "") and not filled_by_us:
            return
        self._auto_endpoint = address
        host_input.value, port_input.value = address[0], str(address[1])
        if self.client is not None:
            if (self.client.host, self.client.port) == address:
                return
            self._disconnect(f"The workbench's FTP server moved to port {address[1]}")
        self.action_connect()

    def _connection_params(self) -> ConnectionParams | None:
        host = self.query_one("#ftp-host", Input).value.strip()
        port_text = self.query_one("#ftp-port", Input).value.strip() or "21"
        if not host:
            self._set_status("Enter the server's host (and port) to connect", error=True)
            self.query_one("#ftp-host", Input).focus()
            return None
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            self._set_status(
                f"Port must be a number from 1 to 65535, not {port_text!r}", error=True
            )
            self.query_one("#ftp-port", Input).focus()
            return None
        user = self.query_one("#ftp-user", Input).value.strip() or "anonymous"
        password = self.query_one("#ftp-password", Input).value
        return host, int(port_text), user, password

    def action_connect(self) -> None:
        """Connect with the fields' values, or disconnect when connected."""
        if self.client is not None:
            self._disconnect("Disconnected")
            return
        params = self._connection_params()
        if params is None or self._connecting:
            return
        self._connecting = True
        self._set_status(f"Connecting to {params[0]}:{params[1]}…")
        self.query_one("#ftp-connect", Button).label = "Connecting…"
        self._connect_worker(params)

    @work(thread=True, group="ftp-connect", exit_on_error=False)
    def _connect_worker(self, params: ConnectionParams) -> None:
        client = FtpClient(*params)
        try:
            client.connect()
            path = client.pwd()
            entries = client.list_dir()
        except FtpError as error:
            client.close()
            self.post_message(self.ConnectFailed(str(error), error.code))
            return
        except Exception as error:  # never let a worker take the app down
            client.close()
            self.post_message(self.ConnectFailed(f"connect: {error}", None))
            return
        self.post_message(self.Connected(client, path, entries))

    def on_ftp_tab_connected(self, message: FtpTab.Connected) -> None:
        self._connecting = False
        client = message.client
        self.query_one("#ftp-connect", Button).label = "Disconnect"
        self._set_status(
            f"Connected to {client.host}:{client.port} as {client.user}", connected=True
        )
        self.remote_pane.attach(client, message.path, message.entries)
        self.remote_pane.access = describe_access(client.user, client.login_reply)
        # Move into the listing only from our own connection bar: focusing a widget of a hidden
        # tab would make the app switch to it in the middle of whatever the user is doing.
        focused = self.screen.focused
        connection_bar = self.query_one("#ftp-connection")
        if focused is not None and connection_bar in focused.ancestors:
            self.remote_pane.focus_table()

    def on_ftp_tab_connect_failed(self, message: FtpTab.ConnectFailed) -> None:
        self._connecting = False
        self.query_one("#ftp-connect", Button).label = "Connect"
        self._set_status(message.error, error=True)
        self.remote_pane.detach("Not connected", error=True)
        notify_file_error(self, message.error, message.code)

    def _disconnect(self, reason: str, *, error: bool = False) -> None:
        if self.client is not None:
            self._close_in_background(self.client)
        self.query_one("#ftp-connect", Button).label = "Connect"
        self._set_status(f"{reason} — press Connect to reconnect", error=error)
        self.remote_pane.detach("Not connected", error=error)

    @work(thread=True, group="ftp-close", exit_on_error=False)
    def _close_in_background(self, client: FtpClient) -> None:
        client.close()

    @on(Button.Pressed, "#ftp-connect")
    def _connect_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_connect()

    @on(Input.Submitted, "#ftp-connection Input")
    def _field_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "ftp-rate":
            # The limit applies to the next transfer: no need to reconnect for it.
            try:
                limit = parse_rate_limit(event.value)
            except ValueError as error:
                self._set_status(str(error), error=True)
                return
            self.notify(
                f"Each transfer limited to {limit // 1024} KiB/s" if limit else "No transfer limit",
                title="FTP",
            )
            return
        if self.client is not None:
            # New fields mean a new server: drop the old connection first.
            self._disconnect("Disconnected")
        self.action_connect()

    def on_ftp_file_pane_source_lost(self, message: FtpFilePane.SourceLost) -> None:
        message.stop()
        if message.pane is self.remote_pane and self.client is not None:
            self._disconnect("Connection lost", error=True)

    def action_refresh(self) -> None:
        self.local_pane.refresh_listing()
        self.remote_pane.refresh_listing()

    # -- which pane a key acts on -----------------------------------------------

    def _active_pane(self) -> FtpFilePane | None:
        focused = self.screen.focused
        for pane in (self.local_pane, self.remote_pane):
            if focused is not None and (focused is pane or pane in focused.ancestors):
                return pane
        self.notify("Move to the local or remote pane first (Tab)", severity="warning")
        return None

    def action_mkdir(self) -> None:
        if pane := self._active_pane():
            pane.ask_mkdir()

    def action_rename(self) -> None:
        if pane := self._active_pane():
            pane.ask_rename()

    def action_delete(self) -> None:
        if pane := self._active_pane():
            pane.ask_delete()

    # -- transfers: from one pane's folder into the other's ----------------------

    def action_download(self) -> None:
        if self.client is None:
            self.notify("Connect to an FTP server first", severity="warning")
            return
        entry = self.remote_pane.selected_entry
        if entry is None or entry.is_dir:
            self.notify("Put the remote pane's cursor on a file to download", severity="warning")
            return
        if not is_plain_file_name(entry.name):
            # A hostile server could list "../../.bashrc": never let it pick where we write.
            notify_file_error(
                self, f"Refusing to download {entry.name!r}: not a plain file name", None
            )
            return
        target = self.local_path / entry.name
        self._confirm_then(
            self.local_files.exists(entry.name),
            f"{target} already exists. Overwrite it with the remote {entry.name}?",
            lambda: self._start_transfer("download", entry.name, target),
        )

    def action_upload(self) -> None:
        if self.client is None:
            self.notify("Connect to an FTP server first", severity="warning")
            return
        entry = self.local_pane.selected_entry
        if entry is None or entry.is_dir:
            self.notify("Put the local pane's cursor on a file to upload", severity="warning")
            return
        remote_name = f"{self.remote_path.rstrip('/')}/{entry.name}"
        self._confirm_then(
            entry.name in self.remote_pane.names,
            f"{remote_name} already exists on the server. Overwrite it?",
            lambda: self._start_transfer("upload", entry.name, self.local_path / entry.name),
        )

    def _confirm_then(self, ask: bool, question: str, proceed: Callable[[], None]) -> None:
        if not ask:
            proceed()
            return

        def answered(yes: bool | None) -> None:
            if yes:
                proceed()

        self.app.push_screen(FtpConfirmScreen(question, "Overwrite"), answered)

    def _start_transfer(self, direction: Direction, name: str, local_path: Path) -> None:
        if self.transferring:
            self.notify("A transfer is already running (x cancels it)", severity="warning")
            return
        if self.client is None:
            return
        try:
            max_rate = parse_rate_limit(self.query_one("#ftp-rate", Input).value)
        except ValueError as error:
            self._set_status(str(error), error=True)
            self.notify(str(error), title="Transfer not started", severity="error")
            return
        self.transfers.start(self.client, self.remote_path, direction, name, local_path, max_rate)

    def on_ftp_tab_transfer_finished(self, message: FtpTransferBar.Finished) -> None:
        # The folder the file went into shows it, under the cursor.
        select = message.name if message.outcome == "done" else None
        target = self.local_pane if message.direction == "download" else self.remote_pane
        target.refresh_listing(select)

    def action_cancel_transfer(self) -> None:
        self.transfers.cancel()

    def _set_status(self, text: str, *, connected: bool = False, error: bool = False) -> None:
        status = self.query_one("#ftp-status", Label)
        status.update(text)
        status.set_class(connected, "-connected")
        status.set_class(error, "-error")
