"""The FTP tab: a two-pane local | remote file browser over FTP (course 3.2: the ftp 文件服务器 exercise).

Every network and disk call runs in a thread worker and comes back as a message
nested in :class:`FtpTab`. Browsing uses one control connection; each transfer
opens its own, so the browser stays usable while a long download runs, and its
progress arrives at most ten times a second whatever the chunk rate.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Button, Input, Label, ProgressBar

from workbench.clients.ftp import (
    FtpClient,
    FtpError,
    RemoteEntry,
    TransferCancelled,
    describe_access,
    sort_entries,
)
from workbench.messages import EndpointChanged
from workbench.tabs.endpoint import server_endpoint
from workbench.widgets.ftp_dialogs import FtpConfirmScreen, FtpPromptScreen
from workbench.widgets.ftp_file_pane import FtpFilePane, format_size

Direction = Literal["download", "upload"]
ConnectionParams = tuple[str, int, str, str]
Result = TypeVar("Result")

#: Progress messages per second during a transfer: enough to look live, few enough to stay cheap.
PROGRESS_RATE_HZ = 10

NO_SERVER_TEXT = "No server — enter host and port, then Connect"


def format_eta(seconds: float) -> str:
    """Time left as ``m:ss`` (or ``h:mm:ss``), what a progress line shows after "ETA"."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def parse_rate_limit(text: str) -> int | None:
    """The Limit field (KiB/s per transfer) in bytes per second; None when empty (no limit).

    Raises ValueError with a sentence for the user when it is not a positive whole number.
    """
    text = text.strip()
    if not text:
        return None
    if not text.isdigit() or int(text) == 0:
        raise ValueError(
            f"Limit must be a whole number of KiB/s above 0 (empty for no limit), not {text!r}"
        )
    return int(text) * 1024


def list_local_dir(path: Path) -> list[RemoteEntry]:
    """Entries of a local directory in the same shape as a remote listing."""
    entries = []
    with os.scandir(path) as scan:
        for item in scan:
            try:
                info = item.stat()
                is_dir = item.is_dir()
            except OSError:
                # A dangling symlink: show it, so the folder's contents are not silently hidden.
                entries.append(RemoteEntry(item.name, False, None, None, is_link=True))
                continue
            entries.append(
                RemoteEntry(
                    item.name,
                    is_dir,
                    None if is_dir else info.st_size,
                    datetime.fromtimestamp(info.st_mtime),
                    item.is_symlink(),
                )
            )
    return sort_entries(entries)


def _renewing_idle_connection(
    client: FtpClient, operation: Callable[[FtpClient], Result]
) -> Result:
    """Run ``operation``; if the server had dropped the idle control connection, log in again once."""
    try:
        return operation(client)
    except FtpError:
        if client.connected:
            raise
        # Servers close idle control connections (421): a browser should just carry on.
        client.reconnect()
        return operation(client)


def is_plain_file_name(name: str) -> bool:
    """True for a name that stays in the folder it is joined to (no separators, not . or ..)."""
    return (
        bool(name)
        and name not in (".", "..")
        and "/" not in name
        and "\\" not in name
        and "\0" not in name
    )


def _join_remote(directory: str, name: str) -> str:
    return f"{directory.rstrip('/')}/{name}" if directory else name


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
    FtpTab #ftp-transfer {
        dock: bottom;
        height: 1;
        padding: 0 2;
    }
    FtpTab #ftp-transfer-label {
        width: 1fr;
        color: $text;
    }
    FtpTab #ftp-transfer ProgressBar {
        width: auto;
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

    # -- messages from the workers --------------------------------------

    class Connected(Message, bubble=False):
        """The browsing connection is up and the first listing is in."""

        def __init__(self, client: FtpClient, path: str, entries: list[RemoteEntry]) -> None:
            super().__init__()
            self.client = client
            self.path = path
            self.entries = entries

    class ConnectFailed(Message, bubble=False):
        def __init__(self, error: str, code: str | None) -> None:
            super().__init__()
            self.error = error
            self.code = code

    class RemoteListed(Message, bubble=False):
        """A fresh remote listing, after navigation or a change; ``select`` names the row to show."""

        def __init__(self, path: str, entries: list[RemoteEntry], select: str | None) -> None:
            super().__init__()
            self.path = path
            self.entries = entries
            self.select = select

    class LocalListed(Message, bubble=False):
        def __init__(self, path: Path, entries: list[RemoteEntry], select: str | None) -> None:
            super().__init__()
            self.path = path
            self.entries = entries
            self.select = select

    class OperationFailed(Message, bubble=False):
        """A remote or local operation failed; ``disconnected`` when the control connection is gone."""

        def __init__(
            self,
            error: str,
            code: str | None = None,
            disconnected: bool = False,
            side: Literal["local", "remote"] = "remote",
        ) -> None:
            super().__init__()
            self.side = side
            self.error = error
            self.code = code
            self.disconnected = disconnected

    class TransferProgress(Message, bubble=False):
        def __init__(self, done: int, total: int | None, elapsed: float) -> None:
            super().__init__()
            self.done = done
            self.total = total
            self.elapsed = elapsed

    class TransferFinished(Message, bubble=False):
        """A transfer ended: ``outcome`` is "done", "cancelled" or "failed"."""

        def __init__(
            self,
            direction: Direction,
            name: str,
            outcome: Literal["done", "cancelled", "failed"],
            detail: str,
            code: str | None = None,
        ) -> None:
            super().__init__()
            self.direction = direction
            self.name = name
            self.outcome = outcome
            self.detail = detail
            self.code = code

    # -- construction ---------------------------------------------------

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
        self.local_path = Path(local_dir).resolve() if local_dir is not None else Path.cwd()
        self.remote_path = ""
        self.client: FtpClient | None = None
        self._connecting = False
        self._transfer_cancel: threading.Event | None = None
        self._transfer_direction: Direction = "download"
        self._transfer_name = ""
        #: The address last filled in from the server manager (to follow a restart, not override typing).
        self._auto_endpoint: tuple[str, int] | None = None
        #: A path typed in a pane's path box whose folder has not opened yet, by side.
        self._typed_paths: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        # The panes come first in the DOM so focusing "the first focusable widget" (what the app
        # does when the tab is shown) lands in the file list; the bars are docked into place.
        with Horizontal(id="ftp-panes"):
            yield FtpFilePane("Local", id="ftp-local")
            yield FtpFilePane("Remote", id="ftp-remote")
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
        with Horizontal(id="ftp-transfer"):
            yield Label("No transfer running", id="ftp-transfer-label", markup=False)
            yield ProgressBar(total=100, show_eta=False, id="ftp-progress")

    @property
    def local_pane(self) -> FtpFilePane:
        return self.query_one("#ftp-local", FtpFilePane)

    @property
    def remote_pane(self) -> FtpFilePane:
        return self.query_one("#ftp-remote", FtpFilePane)

    @property
    def transferring(self) -> bool:
        return self._transfer_cancel is not None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # "Cancel transfer" appears in the footer only while a transfer runs.
        if action == "cancel_transfer":
            return self.transferring
        return True

    def on_mount(self) -> None:
        self._local_worker(self.local_path)
        self.remote_pane.show_placeholder(NO_SERVER_TEXT)
        self._set_status(NO_SERVER_TEXT)
        self.follow_server_endpoint()

    def on_show(self) -> None:
        # The app may start its servers after the tabs mount: look again when shown.
        self.follow_server_endpoint()

    def on_unmount(self) -> None:
        if self._transfer_cancel is not None:
            self._transfer_cancel.set()
        if self.client is not None:
            # Workers are being cancelled with the widget: say QUIT from a plain daemon thread.
            threading.Thread(target=self.client.close, name="ftp-quit", daemon=True).start()
            self.client = None

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
        self.client = message.client
        client = message.client
        self.query_one("#ftp-connect", Button).label = "Disconnect"
        self._set_status(
            f"Connected to {client.host}:{client.port} as {client.user}", connected=True
        )
        self._show_remote(message.path, message.entries, None)
        self.remote_pane.set_access(describe_access(client.user, client.login_reply))
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
        self.remote_pane.show_placeholder("Not connected", error=True)
        self.remote_pane.set_access("")
        self._notify_error(message.error, message.code)

    def _disconnect(self, reason: str, *, error: bool = False) -> None:
        if self.client is not None:
            self._close_in_background(self.client)
        self.client = None
        self.remote_path = ""
        self.query_one("#ftp-connect", Button).label = "Connect"
        self._set_status(f"{reason} — press Connect to reconnect", error=error)
        self.remote_pane.show_placeholder("Not connected", error=error)
        self.remote_pane.set_access("")

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

    # -- listings -------------------------------------------------------

    def _show_remote(self, path: str, entries: list[RemoteEntry], select: str | None) -> None:
        self.remote_path = path
        pane = self.remote_pane
        pane.show_entries(path, entries, can_go_up=path not in ("/", ""))
        if select:
            pane.select_name(select)

    def on_ftp_tab_remote_listed(self, message: FtpTab.RemoteListed) -> None:
        if message.path != self.remote_path:
            self._typed_paths.pop("remote", None)  # it opened: the box shows where we are now
        if self.client is not None:
            self._show_remote(message.path, message.entries, message.select)

    def on_ftp_tab_local_listed(self, message: FtpTab.LocalListed) -> None:
        if message.path != self.local_path:
            self._typed_paths.pop("local", None)
        self.local_path = message.path
        pane = self.local_pane
        pane.show_entries(
            str(message.path), message.entries, can_go_up=message.path.parent != message.path
        )
        if message.select:
            pane.select_name(message.select)

    def on_ftp_tab_operation_failed(self, message: FtpTab.OperationFailed) -> None:
        typed = self._typed_paths.pop(message.side, None)
        if typed is not None:
            pane = self.local_pane if message.side == "local" else self.remote_pane
            pane.path_input.value = typed
        self._notify_error(message.error, message.code)
        # The pane keeps the last error in view after the notification fades.
        pane = self.local_pane if message.side == "local" else self.remote_pane
        pane.set_status(message.error, error=True)
        if message.disconnected and self.client is not None and not self.client.connected:
            self._disconnect("Connection lost", error=True)

    def on_ftp_file_pane_opened(self, message: FtpFilePane.Opened) -> None:
        message.stop()
        if message.pane is self.local_pane:
            target = (
                self.local_path.parent
                if message.entry is None
                else self.local_path / message.entry.name
            )
            select = self.local_path.name if message.entry is None else None
            self._local_worker(target, select)
        elif self.client is not None:
            target_name = ".." if message.entry is None else message.entry.name
            previous = (
                self.remote_path.rstrip("/").rsplit("/", 1)[-1] if message.entry is None else None
            )
            self._remote_operation(lambda client: client.cwd(target_name), select=previous)

    def on_ftp_file_pane_path_entered(self, message: FtpFilePane.PathEntered) -> None:
        message.stop()
        side = "local" if message.pane is self.local_pane else "remote"
        # Kept until the folder opens: a refused path goes back into the box to edit.
        self._typed_paths[side] = message.path
        if message.pane is self.local_pane:
            typed = Path(message.path).expanduser()
            self._local_worker(typed if typed.is_absolute() else self.local_path / typed)
        elif self.client is not None:
            path = message.path
            self._remote_operation(lambda client: client.cwd(path))
        else:
            message.pane.set_status("Not connected: connect first, then type a path", error=True)

    @work(thread=True, group="ftp-local", exit_on_error=False)
    def _local_worker(
        self, path: Path, select: str | None = None, operation: Callable[[], object] | None = None
    ) -> None:
        failure: FtpTab.OperationFailed | None = None
        try:
            if operation is not None:
                operation()
        except OSError as error:
            reason = f"Local: {error.strerror or error}: {error.filename or ''}"
            failure = self.OperationFailed(reason, side="local")
        try:
            entries = list_local_dir(path)
        except OSError as error:
            reason = f"Local: cannot open {path}: {error.strerror or error}"
            failure = failure or self.OperationFailed(reason, side="local")
        else:
            self.post_message(self.LocalListed(path, entries, select))
        # After the listing, so the pane's status line keeps showing the error.
        if failure is not None:
            self.post_message(failure)

    def _remote_operation(
        self, operation: Callable[[FtpClient], object], select: str | None = None
    ) -> None:
        if self.client is None:
            self.notify("Not connected to an FTP server", severity="warning")
            return
        self._remote_worker(self.client, operation, select)

    @work(thread=True, group="ftp-remote", exit_on_error=False)
    def _remote_worker(
        self, client: FtpClient, operation: Callable[[FtpClient], object], select: str | None
    ) -> None:
        failure: FtpTab.OperationFailed | None = None
        try:
            _renewing_idle_connection(client, operation)
        except FtpError as error:
            failure = self.OperationFailed(
                str(error), error.code, disconnected=not client.connected
            )
        except Exception as error:
            failure = self.OperationFailed(f"FTP: {error}")
        if client.connected:
            # Relist even after a failure: the error may come from a listing that is out of date.
            try:
                path, entries = _renewing_idle_connection(
                    client, lambda ftp: (ftp.pwd(), ftp.list_dir())
                )
            except FtpError as error:
                failure = failure or self.OperationFailed(
                    str(error), error.code, disconnected=not client.connected
                )
            else:
                self.post_message(self.RemoteListed(path, entries, select))
        # After the listing, so the pane's status line keeps showing the error.
        if failure is not None:
            self.post_message(failure)

    def action_refresh(self) -> None:
        self._local_worker(self.local_path)
        if self.client is not None:
            self._remote_operation(lambda client: None)

    # -- which pane the user is in --------------------------------------

    def _active_pane(self) -> FtpFilePane | None:
        focused = self.screen.focused
        for pane in (self.local_pane, self.remote_pane):
            if focused is not None and (focused is pane or pane in focused.ancestors):
                return pane
        return None

    def _require_pane(self) -> FtpFilePane | None:
        pane = self._active_pane()
        if pane is None:
            self.notify("Move to the local or remote pane first (Tab)", severity="warning")
        elif pane is self.remote_pane and self.client is None:
            self.notify("Not connected to an FTP server", severity="warning")
            return None
        return pane

    # -- transfers --------------------------------------------------------

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
            self._notify_error(f"Refusing to download {entry.name!r}: not a plain file name", None)
            return
        target = self.local_path / entry.name
        self._confirm_then(
            target.exists(),
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
        source = self.local_path / entry.name
        self._confirm_then(
            entry.name in self.remote_pane.names,
            f"{_join_remote(self.remote_path, entry.name)} already exists on the server. Overwrite it?",
            lambda: self._start_transfer("upload", entry.name, source),
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
        client = self.client
        cancel = threading.Event()
        self._transfer_cancel = cancel
        self.refresh_bindings()
        self._transfer_direction = direction
        self._transfer_name = name
        verb = "Downloading" if direction == "download" else "Uploading"
        self.query_one("#ftp-transfer-label", Label).update(f"{verb} {name}…")
        self.query_one("#ftp-progress", ProgressBar).update(total=None, progress=0)
        params = (client.host, client.port, client.user, client.password)
        self._transfer_worker(
            params, self.remote_path, direction, name, local_path, cancel, max_rate
        )

    @work(thread=True, group="ftp-transfer", exit_on_error=False)
    def _transfer_worker(
        self,
        params: ConnectionParams,
        remote_dir: str,
        direction: Direction,
        name: str,
        local_path: Path,
        cancel: threading.Event,
        max_rate: int | None = None,
    ) -> None:
        started = time.monotonic()
        last_post = 0.0

        def progress(done: int, total: int | None) -> None:
            nonlocal last_post
            now = time.monotonic()
            if now - last_post >= 1 / PROGRESS_RATE_HZ or (total is not None and done >= total):
                last_post = now
                self.post_message(self.TransferProgress(done, total, now - started))

        client = FtpClient(*params)
        try:
            client.connect()
            if remote_dir:
                client.cwd(remote_dir)
            if direction == "download":
                count = client.download(name, local_path, progress, cancel, max_rate)
            else:
                count = client.upload(local_path, name, progress, cancel, max_rate)
            elapsed = max(time.monotonic() - started, 1e-6)
            detail = (
                f"{format_size(count)} in {elapsed:.1f} s ({format_size(int(count / elapsed))}/s)"
            )
            self.post_message(self.TransferFinished(direction, name, "done", detail))
        except TransferCancelled:
            self.post_message(self.TransferFinished(direction, name, "cancelled", "cancelled"))
        except FtpError as error:
            self.post_message(
                self.TransferFinished(direction, name, "failed", str(error), error.code)
            )
        except Exception as error:
            self.post_message(
                self.TransferFinished(direction, name, "failed", f"{direction} {name}: {error}")
            )
        finally:
            client.close()

    def on_ftp_tab_transfer_progress(self, message: FtpTab.TransferProgress) -> None:
        if not self.transferring:
            return
        bar = self.query_one("#ftp-progress", ProgressBar)
        total = message.total if message.total else None
        if total is not None:
            bar.update(total=total, progress=message.done)
        verb = "Downloading" if self._transfer_direction == "download" else "Uploading"
        of_total = f" of {format_size(total)}" if total is not None else ""
        speed = message.done / message.elapsed if message.elapsed > 0 else 0.0
        rate = f"{format_size(int(speed))}/s" if speed else ""
        # Time left at the speed so far (the limit's speed when one is set).
        eta = (
            f"  ETA {format_eta((total - message.done) / speed)}"
            if total is not None and speed and message.done < total
            else ""
        )
        self.query_one("#ftp-transfer-label", Label).update(
            f"{verb} {self._transfer_name}: {format_size(message.done)}{of_total}  {rate}{eta}"
        )

    def on_ftp_tab_transfer_finished(self, message: FtpTab.TransferFinished) -> None:
        self._transfer_cancel = None
        self.refresh_bindings()
        label = self.query_one("#ftp-transfer-label", Label)
        bar = self.query_one("#ftp-progress", ProgressBar)
        verb = "Downloaded" if message.direction == "download" else "Uploaded"
        if message.outcome == "done":
            bar.update(total=bar.total or 1, progress=bar.total or 1)
            label.update(f"{verb} {message.name}: {message.detail}")
            self.notify(f"{verb} {message.name}", title="FTP")
        elif message.outcome == "cancelled":
            label.update(f"{message.direction.capitalize()} of {message.name} cancelled")
            bar.update(total=100, progress=0)
            self.notify(
                f"{message.direction.capitalize()} of {message.name} cancelled", severity="warning"
            )
        else:
            label.update(
                f"{message.direction.capitalize()} of {message.name} failed: {message.detail}"
            )
            bar.update(total=100, progress=0)
            self._notify_error(message.detail, message.code)
        if message.direction == "download":
            self._local_worker(self.local_path, message.name if message.outcome == "done" else None)
        elif self.client is not None:
            select = message.name if message.outcome == "done" else None
            self._remote_operation(lambda client: None, select=select)

    def action_cancel_transfer(self) -> None:
        if self._transfer_cancel is None:
            self.notify("No transfer is running", severity="information")
            return
        self._transfer_cancel.set()
        self.query_one("#ftp-transfer-label", Label).update(f"Cancelling {self._transfer_name}…")

    # -- mkdir, rename, delete ----------------------------------------------

    def action_mkdir(self) -> None:
        pane = self._require_pane()
        if pane is None:
            return
        where = "local folder" if pane is self.local_pane else "server folder"

        def create(name: str | None) -> None:
            if not name:
                return
            if pane is self.local_pane:
                self._local_worker(self.local_path, name, lambda: (self.local_path / name).mkdir())
            else:
                self._remote_operation(lambda client: client.mkdir(name), select=name)

        self.app.push_screen(FtpPromptScreen(f"New {where} name:"), create)

    def action_rename(self) -> None:
        pane = self._require_pane()
        if pane is None:
            return
        entry = pane.selected_entry
        if entry is None:
            self.notify("Put the cursor on the entry to rename", severity="warning")
            return

        def rename(new_name: str | None) -> None:
            if not new_name or new_name == entry.name:
                return
            if pane is self.local_pane:
                source, target = self.local_path / entry.name, self.local_path / new_name
                if target.exists():
                    self.notify(f"Local: {new_name} already exists", severity="error")
                    return
                self._local_worker(self.local_path, new_name, lambda: source.rename(target))
            else:
                if new_name in self.remote_pane.names:
                    self.notify(f"{new_name} already exists on the server", severity="error")
                    return
                self._remote_operation(
                    lambda client: client.rename(entry.name, new_name), select=new_name
                )

        self.app.push_screen(FtpPromptScreen(f"Rename {entry.name} to:", entry.name), rename)

    def action_delete(self) -> None:
        pane = self._require_pane()
        if pane is None:
            return
        entry = pane.selected_entry
        if entry is None:
            self.notify("Put the cursor on the entry to delete", severity="warning")
            return
        side = "local" if pane is self.local_pane else "remote"
        what = (
            f"the {side} folder {entry.name} and everything in it"
            if entry.is_dir
            else f"the {side} file {entry.name}"
        )

        def delete(yes: bool | None) -> None:
            if not yes:
                return
            if pane is self.local_pane:
                target = self.local_path / entry.name
                remove: Callable[[], object] = (
                    (lambda: shutil.rmtree(target))
                    if entry.is_dir and not entry.is_link
                    else (lambda: target.unlink())
                )
                self._local_worker(self.local_path, None, remove)
            elif entry.is_dir and not entry.is_link:
                self._remote_operation(lambda client: client.remove_dir(entry.name, recursive=True))
            else:
                self._remote_operation(lambda client: client.delete_file(entry.name))

        self.app.push_screen(FtpConfirmScreen(f"Delete {what}?", "Delete"), delete)

    # -- feedback -------------------------------------------------------------

    def _set_status(self, text: str, *, connected: bool = False, error: bool = False) -> None:
        status = self.query_one("#ftp-status", Label)
        status.update(text)
        status.set_class(connected, "-connected")
        status.set_class(error, "-error")

    def _notify_error(self, text: str, code: str | None) -> None:
        title = f"FTP {code}" if code else "FTP error"
        self.notify(text, title=title, severity="error", markup=False)
