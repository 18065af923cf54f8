"""The FTP tab: a two-pane local | remote file browser over FTP (course 3.2: the ftp 文件服务器 exercise).

The tab is wiring between regions. Each pane (:class:`FtpFilePane`) owns its file
source (the disk through :class:`LocalFiles`, the server through an
:class:`FtpClient` login) with its listing and actions; the connection bar logs
in; the transfer line runs downloads and uploads. The tab follows the app's FTP
server, hands a login to the remote pane, says which pane a key acts on and which
pane a transfer reads from and writes into.
"""

from __future__ import annotations

import threading
from functools import partial
from os import PathLike
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import Input

from workbench.clients.files import is_plain_file_name
from workbench.clients.ftp import FtpClient, describe_access
from workbench.clients.local_files import LocalFiles
from workbench.messages import EndpointChanged
from workbench.tabs.endpoint import server_endpoint
from workbench.tabs.ftp_help import FTP_TAB_HELP
from workbench.widgets.ftp_connection_bar import FtpConnectionBar
from workbench.widgets.ftp_dialogs import confirm_then
from workbench.widgets.ftp_file_pane import LOCAL_WORDS, FtpFilePane, notify_file_error
from workbench.widgets.ftp_transfers import (
    Direction,
    FtpTransferBar,
    format_eta,
    parse_rate_limit,
)

__all__ = ["NO_SERVER_TEXT", "FtpTab", "format_eta", "parse_rate_limit"]

NO_SERVER_TEXT = "No server — enter host and port, then Connect"


class FtpTab(Widget):
    """Local and remote panes side by side, a connection bar on top and a transfer bar below."""

    HELP = FTP_TAB_HELP

    DEFAULT_CSS = """
    FtpTab {
        height: 1fr;
        layout: vertical;
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

    def __init__(
        self,
        endpoint: Any = None,
        local_dir: str | PathLike[str] | None = None,
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
        self.connection_bar = FtpConnectionBar(id="ftp-top")
        #: The address last filled in from the server manager (to follow a restart, not override typing).
        self._auto_endpoint: tuple[str, int] | None = None

    def compose(self) -> ComposeResult:
        # The panes come first in the DOM so focusing "the first focusable widget" (what the app
        # does when the tab is shown) lands in the file list; the bars are docked into place.
        with Horizontal(id="ftp-panes"):
            yield self.local_pane
            yield self.remote_pane
        yield self.connection_bar
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
    def _connecting(self) -> bool:
        return self.connection_bar.phase == "connecting"

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
        self.connection_bar.set_status(NO_SERVER_TEXT)
        self.follow_server_endpoint()

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

    def on_endpoint_changed(self, message: EndpointChanged) -> None:
        # The app started its FTP server after the tabs mounted, or restarted it elsewhere;
        # where it listens is read afresh, a newer move may already be on its way.
        if message.protocol == "ftp":
            self.follow_server_endpoint()

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

    def action_connect(self) -> None:
        """Connect with the fields' values, or disconnect when connected."""
        if self.client is not None:
            self._disconnect("Disconnected")
        else:
            self.connection_bar.connect()

    def on_ftp_connection_bar_logged_in(self, message: FtpConnectionBar.LoggedIn) -> None:
        message.stop()
        client = message.client
        self.remote_pane.attach(client, message.path, message.entries)
        self.remote_pane.access = describe_access(client.user, client.login_reply)
        # Move into the listing only from our own connection bar: focusing a widget of a hidden
        # tab would make the app switch to it in the middle of whatever the user is doing.
        if self.connection_bar.has_focus_within:
            self.remote_pane.focus_table()

    def on_ftp_connection_bar_login_failed(self, message: FtpConnectionBar.LoginFailed) -> None:
        message.stop()
        self.remote_pane.detach("Not connected", error=True)
        notify_file_error(self, message.error, message.code)

    def _disconnect(self, reason: str, *, error: bool = False) -> None:
        self.connection_bar.log_out(self.client, reason, error=error)
        self.remote_pane.detach("Not connected", error=error)

    def on_ftp_connection_bar_connect_requested(
        self, message: FtpConnectionBar.ConnectRequested
    ) -> None:
        message.stop()
        if message.fresh and self.client is not None:
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
        download = partial(self._start_transfer, "download", entry.name, target)
        if self.local_files.exists(str(target)):
            question = f"{target} already exists. Overwrite it with the remote {entry.name}?"
            confirm_then(self.app, question, "Overwrite", download)
        else:
            download()

    def action_upload(self) -> None:
        if self.client is None:
            self.notify("Connect to an FTP server first", severity="warning")
            return
        entry = self.local_pane.selected_entry
        if entry is None or entry.is_dir:
            self.notify("Put the local pane's cursor on a file to upload", severity="warning")
            return
        upload = partial(self._start_transfer, "upload", entry.name, self.local_path / entry.name)
        if entry.name in self.remote_pane.names:
            remote_name = f"{self.remote_path.rstrip('/')}/{entry.name}"
            question = f"{remote_name} already exists on the server. Overwrite it?"
            confirm_then(self.app, question, "Overwrite", upload)
        else:
            upload()

    def _start_transfer(self, direction: Direction, name: str, local_path: Path) -> None:
        if self.transferring:
            self.notify("A transfer is already running (x cancels it)", severity="warning")
            return
        if self.client is None:
            return
        try:
            max_rate = self.connection_bar.rate_limit()
        except ValueError as error:
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
