"""The live Servers panel: what each concurrency model does to processes, threads and connections, as it happens."""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import Any

import psutil
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Input, Label, Sparkline, TabbedContent, TabPane

from workbench.connection_sequence import ConnectionTracker
from workbench.help import MODEL_GUIDES
from workbench.messages import ServerNotice, ServersUpdated
from workbench.server_manager import ServerManager
from workbench.server_records import ServerRow
from workbench.socket_probe import (
    SocketReport,
    explain_bind_failure,
    explain_bind_success,
    probe_server,
)
from workbench.tabs.endpoint import server_directory
from workbench.widgets.announce_dialog import AnnounceScreen
from workbench.widgets.event_log import EventLog
from workbench.widgets.format import (
    format_bytes_compact,
    format_rate,
    format_uptime,
)
from workbench.widgets.process_tree import ProcessTreeView
from workbench.widgets.server_form import ServerFormScreen, ServerSettings
from workbench.widgets.socket_view import SequenceView, SocketTable

#: Samples kept for the sparklines: one per batch (0.5 s), so a minute.
HISTORY_LENGTH = 120
#: Seconds between two samples of the selected server's sockets (only while they are shown).
SOCKET_SAMPLE_INTERVAL = 1.0
#: Seconds a port the server held (an FTP data port) is still searched for its TIME_WAITs:
#: Linux keeps TIME_WAIT 60 s (2×MSL), plus a sample's slack.
RECENT_PORT_SECONDS = 65.0
#: The detail views under the table, in the order v cycles through them.
DETAIL_VIEWS = ("events-view", "sockets-view", "sequence-view")

#: (column key, header) in display order. No protocol column: a server's id always
#: starts with its protocol (http, http-2), and the status line spells it out.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("name", "Name"),
    ("model", "Model"),
    ("address", "Address"),
    ("pid", "PID"),
    ("state", "State"),
    ("uptime", "Up"),
    ("threads", "Thr"),
    ("children", "Kids"),
    ("connections", "Conn"),
    ("rps", "Req/s"),
    ("in", "In/s"),
    ("out", "Out/s"),
    ("refused", "Refused"),
    ("errors", "Err"),
    ("cpu", "CPU%"),
    ("rss", "RSS"),
)

HELP = """\
The **Servers** panel starts the servers in child processes and shows, live, what each
concurrency model does: processes appearing and vanishing under `processes`, the thread
count climbing under `threads`, one process holding thousands of connections under `epoll`.

* The **table** has one row per server (`*` marks the instance the other tabs use),
  refreshed twice a second from the servers' own reports and from what the OS sees of
  their process tree (CPU %, RSS). Move with ↑/↓ to select a server.
  * *Thr* is `a+b`: *a* threads doing the model's work (each process's main thread, plus
    one per connection under `threads`), *b* helper threads the workbench adds to every
    server (stats reporter, control channel, stats queue feeder; a stats flusher in each
    forked child). *Kids* counts child processes.
  * *Conn* is active/total connections; for a UDP chat (model *datagram*) it is room
    members, marked `m`, since UDP has no connections.
  * *Refused* counts clients turned away: past select's FD_SETSIZE (descriptors 1024 and
    above), out of file descriptors (EMFILE), or a full chat room. *Err* counts errors.
* Under the table, the selected server's **clients**: how many are connected and from
  which hosts (for the chat room, each member's name and host), from the server's own
  connect/disconnect (and join/leave) events.
* Below that, for the selected server: **sparklines** of requests/s and active connections
  (room members for UDP chat), the **process tree** (like `pstree`) with its zombie count
  (僵尸进程 — must stay 0), and, beside them, three views — **v** cycles through them:
  * **Events**: the log (connect, disconnect, join, leave, request, refused, error, crash).
    Type in the filter to narrow it (**/**), **p** pauses it. Its label says *live* only
    while the newest line is on screen; scrolled up it counts the *new lines* below (End,
    in the log, or **p** goes back).
  * **Sockets**: every socket of the server's processes (psutil: pid, fd, addresses) with
    what `ss` reads from the kernel — TCP state, Recv-Q/Send-Q, RTT, unacknowledged and
    retransmitted segments — sampled about once a second while the view is open. On the
    `LISTEN` row Recv-Q is the accept backlog (监听队列, `listen(n)`, 1.3.2) and Send-Q its
    limit: an `iterative` server's waiting clients queue there, as rows with no pid marked
    *backlog* (the kernel finished their handshake; nobody has accept()ed them yet; the
    `listen-backlog` lab shows what happens once that queue is full). After
    the server closes first, the connection stays in `TIME_WAIT` for 2×MSL (60 s on Linux)
    with no process at all: it is found by the port.
  * **Last connection**: its 三次握手, data and 四次挥手 (1.3.1) with timestamps. Only the
    server's own events and the sampled states are *observed*; the packets in between are
    *inferred* (greyed) — nothing is captured on the wire.
* **n** starts a server (a second HTTP server gets the id `http-2`); **m** changes the
  selected one and restarts it. The form offers only what applies: the model (for chat,
  after the *Transport*: UDP runs one datagram loop; TCP runs under iterative, threads,
  select, poll, epoll and asyncio, not the multi-process models, since the room lives in
  one process's memory), chat's *Drop rate* (UDP: 0.1 loses 10% of room datagrams), FTP's
  *Read-only* and *Users file*, the *Bind address* (127.0.0.1 = this machine only), port,
  workers (pool, prefork) and *Open files* (the server's descriptor limit; empty = as high
  as the system allows). A restart keeps them all. **r** restarts (or starts a stopped
  one), **x** stops, **Delete** removes a stopped row.
* **R** (in the Sockets and Last connection views) restarts the server on the same port
  **without SO_REUSEADDR**: while `TIME_WAIT` sockets hold the port, the bind fails with
  "address already in use" — the reason our TCP servers set SO_REUSEADDR. **r** restarts
  normally (with it). Under prefork the bind works anyway: its sockets set SO_REUSEPORT,
  and Linux lets a SO_REUSEPORT listener bind beside TIME_WAIT sockets that had it too.
* A server killed from outside (`kill -9 PID`) shows as *crashed* with its signal; press
  **r** to bring it back.
* **a** opens the announcement dialog: the text is sent to every chat room member as the
  admin (管理员消息) only when you press **Send** (or Enter on typed text); Esc cancels.
"""


NO_SERVER_TEXT = "No server yet — press n to start one."


def describe_server(row: ServerRow) -> str:
    """One line under the table: what the selected server is, or why it is down."""
    guide = MODEL_GUIDES.get(row.model)
    model = f"{row.model} ({guide.course_term})" if guide else row.model
    if row.state == "running":
        return f"{row.server_id}: {row.protocol} under {model} on {row.address}, pid {row.pid}"
    if row.state == "crashed":
        return f"{row.server_id} crashed: {row.exit_description} — press r to restart it"
    if row.state == "failed" and "address already in use" in row.exit_description:
        return (
            f"{row.server_id} failed to start: {row.exit_description} — TIME_WAIT? see Sockets "
            "(v); r restarts with SO_REUSEADDR"
        )
    if row.state == "failed":
        return f"{row.server_id} failed to start: {row.exit_description} — press m to change it"
    if row.state == "stopped":
        return f"{row.server_id} is stopped — r starts it again, Delete removes it"
    return f"{row.server_id} is {row.state}…"


def format_threads(row: ServerRow) -> str:
    """``1+3``: threads serving clients + helper threads (stats reporter, control channel...)."""
    if not row.serving_threads:
        return str(row.threads)
    return f"{row.serving_threads}+{row.helper_threads}"


def _short_exit(description: str) -> str:
    """Table-sized exit reason: ``killed by SIGKILL`` -> ``SIGKILL``, ``exit code 1`` -> ``exit 1``.

    The full text is in the crash notification and the help line under the table.
    """
    if description.startswith("killed by "):
        return description.removeprefix("killed by ")
    if description.startswith("exit code "):
        return "exit " + description.removeprefix("exit code ")
    return description if len(description) <= 18 else description[:17] + "…"


class ServersTab(Vertical):
    """Table of servers, and the selected server's sparklines, process tree and event log."""

    HELP = HELP

    BINDINGS = [
        Binding("n", "new_server", "New"),
        Binding("r", "restart_server", "Restart"),
        Binding("x", "stop_server", "Stop"),
        Binding("m", "change_server", "Change"),
        Binding("delete", "remove_server", "Remove", show=False),
        Binding("p", "pause_log", "Pause"),
        Binding("slash", "filter_log", "Filter"),
        Binding("a", "announce", "Announce"),
        Binding("v", "next_view", "View"),
        Binding("R", "restart_without_reuse", "Restart no-reuse"),
    ]

    class SocketsSampled(Message):
        """A socket sample of one server, from the probe worker thread."""

        def __init__(self, server_id: str, report: SocketReport | None, problem: str = "") -> None:
            super().__init__()
            self.server_id = server_id
            self.report = report
            self.problem = problem

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: dict[str, ServerRow] = {}
        self._cells: dict[str, tuple[Any, ...]] = {}
        self._history: dict[str, collections.deque[tuple[float, float]]] = {}
        self.selected_server_id: str | None = None
        self._trackers: dict[str, ConnectionTracker] = {}
        self._last_report: dict[str, SocketReport] = {}
        self._recent_ports: dict[str, dict[int, float]] = {}
        self._announcement_draft = ""

    def compose(self) -> ComposeResult:
        table: DataTable[Any] = DataTable(id="server-table", cursor_type="row", zebra_stripes=True)
        for key, header in COLUMNS:
            table.add_column(header, key=key)
        yield table
        yield Label(NO_SERVER_TEXT, id="server-status")
        yield Label("", id="server-clients", markup=False)
        with Horizontal(id="server-detail"):
            with Vertical(id="server-graphs"):
                yield Label("Requests/s", id="rps-label", classes="graph-label")
                yield Sparkline([], id="rps-sparkline")
                yield Label("Active connections", id="active-label", classes="graph-label")
                yield Sparkline([], id="active-sparkline")
                yield Label("Processes", id="tree-label", classes="graph-label")
                with VerticalScroll(id="tree-scroll"):
                    yield ProcessTreeView(id="process-tree")
            with TabbedContent(id="server-views", initial="events-view"):
                with TabPane("Events", id="events-view"):
                    yield EventLog(id="event-log")
                with TabPane("Sockets", id="sockets-view"):
                    yield SocketTable(id="socket-view")
                with TabPane("Last connection", id="sequence-view"):
                    yield SequenceView(id="sequence-view-body")

    def on_mount(self) -> None:
        self.watch(self.app, "theme", self._restyle, init=False)
        self.set_interval(SOCKET_SAMPLE_INTERVAL, self.sample_sockets)

    # -- feeding ------------------------------------------------------------------------

    @property
    def manager(self) -> ServerManager:
        """The app's ServerManager itself: this tab starts, stops and removes what it runs."""
        directory = server_directory(self)
        if not isinstance(directory, ServerManager):
            raise RuntimeError("the Servers tab needs the workbench's ServerManager")
        return directory

    def show_update(self, message: ServersUpdated) -> None:
        """Apply one batch from the ServerManager (called by the app, about 2 Hz)."""
        table = self.query_one("#server-table", DataTable)
        present = {row.server_id for row in message.rows}
        for server_id in list(self.rows):
            if server_id not in present:
                del self.rows[server_id]
                self._cells.pop(server_id, None)
                self._history.pop(server_id, None)
                self._trackers.pop(server_id, None)
                self._last_report.pop(server_id, None)
                self._recent_ports.pop(server_id, None)
                self.query_one(EventLog).forget(server_id)
                table.remove_row(server_id)
        for row in message.rows:
            self.rows[row.server_id] = row
            history = self._history.get(row.server_id)
            if history is None:
                history = self._history[row.server_id] = collections.deque(maxlen=HISTORY_LENGTH)
            history.append((row.requests_per_second, float(row.active)))
            self._show_row(table, row)
        if self.selected_server_id not in self.rows:
            self._select(self._row_under_cursor())
        self.query_one(EventLog).add_events(message.events, message.events_dropped)
        self._show_detail()

    def _show_row(self, table: DataTable[Any], row: ServerRow) -> None:
        cells = self._cells_for(row)
        previous = self._cells.get(row.server_id)
        if previous is None:
            table.add_row(*cells, key=row.server_id)
        else:
            for (key, _), old, new in zip(COLUMNS, previous, cells, strict=True):
                if old != new:
                    table.update_cell(row.server_id, key, new, update_width=True)
        self._cells[row.server_id] = cells

    def _cells_for(self, row: ServerRow) -> tuple[Any, ...]:
        running = row.state == "running"
        name = f"{row.server_id}*" if row.is_default else row.server_id
        state = f"{row.state} {_short_exit(row.exit_description)}".rstrip()
        return (
            name,
            row.model + (f"×{row.workers}" if row.workers else ""),
            row.address,
            str(row.pid) if row.pid else "-",
            Text(state, style=self._state_style(row.state)),
            format_uptime(row.uptime) if row.uptime else "-",
            format_threads(row) if running else "-",
            str(row.children) if running else "-",
            f"{row.active}/{row.accepted}" + (" m" if row.is_datagram else ""),
            format_rate(row.requests_per_second),
            format_bytes_compact(row.bytes_in_per_second),
            format_bytes_compact(row.bytes_out_per_second),
            Text(str(row.refused), style=self._state_style("starting") if row.refused else ""),
            Text(str(row.errors), style=self._state_style("crashed") if row.errors else ""),
            f"{row.cpu_percent:.0f}" if running else "-",
            format_bytes_compact(row.rss_bytes) if running and row.rss_bytes else "-",
        )

    def _state_style(self, state: str) -> str:
        theme = self.app.current_theme
        colour = {
            "running": theme.success,
            "crashed": theme.error,
            "failed": theme.error,
            "starting": theme.warning,
        }.get(state)
        return f"bold {colour}" if colour else ""

    def _restyle(self) -> None:
        """Theme changed: redraw the coloured cells with the new theme's colours."""
        table = self.query_one("#server-table", DataTable)
        for server_id, row in self.rows.items():
            cells = self._cells_for(row)
            for (key, _), cell in zip(COLUMNS, cells, strict=True):
                table.update_cell(server_id, key, cell)
            self._cells[server_id] = cells
        self._show_detail()

    def _show_detail(self) -> None:
        row = self.rows.get(self.selected_server_id or "")
        status = self.query_one("#server-status", Label)
        status.update(describe_server(row) if row is not None else NO_SERVER_TEXT)
        status.set_class(row is not None and row.state in ("crashed", "failed"), "-error")
        self.query_one("#server-clients", Label).update(self._describe_clients(row))
        history = self._history.get(self.selected_server_id or "", ())
        rates = [rate for rate, _ in history]
        active = [count for _, count in history]
        self.query_one("#rps-sparkline", Sparkline).data = rates or [0.0]
        self.query_one("#active-sparkline", Sparkline).data = active or [0.0]
        if row is None:
            self.query_one("#rps-label", Label).update("Requests/s")
            self.query_one("#active-label", Label).update("Active connections")
            self.query_one("#tree-label", Label).update("Processes")
            self.query_one(ProcessTreeView).show(())
            return
        peak_rate = max(rates, default=0.0)
        peak_active = max(active, default=0.0)
        self.query_one("#rps-label", Label).update(
            f"Requests/s  now {format_rate(row.requests_per_second)}  peak {format_rate(peak_rate)}"
        )
        self.query_one("#active-label", Label).update(
            f"{'Room members' if row.is_datagram else 'Active connections'}  "
            f"now {row.active}  peak {peak_active:.0f}"
        )
        processes = sum(1 for node in row.process_tree if node.status != "zombie")
        self.query_one("#tree-label", Label).update(
            f"Processes {processes} · threads {format_threads(row)} · zombies {row.zombies}"
        )
        self.query_one(ProcessTreeView).show(
            row.process_tree, self._state_style("crashed"), root_label=row.server_id
        )

    def _describe_clients(self, row: ServerRow | None) -> str:
        """Who is connected to the selected server, from where (its connect/disconnect events)."""
        if row is None or row.state != "running":
            return ""
        clients = self.manager.clients(row.server_id)
        if row.transport == "udp":
            line = f"Members: {row.active} in the room"  # UDP has no connections
        else:
            line = f"Clients: {row.active} connected"
        if clients is not None and (clients.addresses or clients.partial):
            line += " — " + clients.summary()
        return line

    # -- selection ----------------------------------------------------------------------

    def _row_under_cursor(self) -> str | None:
        table = self.query_one("#server-table", DataTable)
        if not table.row_count:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return row_key.value

    def _select(self, server_id: str | None) -> None:
        changed = server_id != self.selected_server_id
        self.selected_server_id = server_id
        self.query_one(EventLog).show_server(server_id)
        self._show_detail()
        if changed:
            self._show_sockets()
            self.sample_sockets()

    @on(DataTable.RowHighlighted, "#server-table")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._select(event.row_key.value)

    def select_server(self, server_id: str) -> None:
        """Move the table cursor to a server (used by the command palette and tests)."""
        table = self.query_one("#server-table", DataTable)
        table.move_cursor(row=table.get_row_index(server_id))
        self._select(server_id)

    @property
    def selected_row(self) -> ServerRow | None:
        return self.rows.get(self.selected_server_id or "")

    # -- actions ------------------------------------------------------------------------

    def _in_background(self, description: str, job: Callable[[], str | None]) -> None:
        """Run a blocking ServerManager call in a thread worker; report the outcome as a notice."""

        def run() -> None:
            try:
                outcome = job()
            except Exception as error:  # LaunchError, KeyError, ValueError: all shown plainly
                reason = str(error).strip("'\"") or type(error).__name__
                self.post_message(ServerNotice(f"{description} failed: {reason}", "error"))
            else:
                if outcome:
                    self.post_message(ServerNotice(outcome))

        self.run_worker(run, thread=True, group="server-actions", name=description)

    def _require_selection(self) -> ServerRow | None:
        row = self.selected_row
        if row is None:
            self.app.notify("Select a server first (or press n to start one).", severity="warning")
        return row

    def action_new_server(self) -> None:
        self.app.push_screen(
            # A new server binds where the class can reach it when the workbench --listen's.
            ServerFormScreen(
                "Start a server",
                submit_label="Start",
                host=getattr(self.manager, "bind_host", "127.0.0.1"),
            ),
            self._start_from_form,
        )

    def _start_from_form(self, settings: ServerSettings | None) -> None:
        if settings is None:
            return
        self.start_server(
            settings.protocol,
            settings.model,
            settings.port or 0,
            settings.workers,
            host=settings.host,
            options=settings.options,
        )

    def start_server(
        self,
        protocol: str,
        model: str,
        port: int = 0,
        workers: int | None = None,
        *,
        host: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        def job() -> str:
            server_id = self.manager.start(
                protocol, model, port=port, workers=workers, host=host, options=options
            )
            row = self.manager.row(server_id)
            if row is None:
                return f"Started {server_id} ({protocol}, {model})"
            # The row says what really runs: a UDP chat is a datagram loop whatever was asked.
            return f"Started {server_id} ({protocol} over {row.transport}, {row.model}) on {row.address}"

        self._in_background(f"Starting {protocol} ({model})", job)

    def action_restart_server(self) -> None:
        row = self._require_selection()
        if row is not None:
            self.restart_server(row.server_id)

    def restart_server(
        self,
        server_id: str,
        model: str | None = None,
        port: int | None = None,
        workers: int | None = None,
        *,
        host: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        def job() -> str:
            bound = self.manager.restart(
                server_id, model=model, port=port, workers=workers, host=host, options=options
            )
            row = self.manager.row(server_id)
            if row is None:
                return f"Restarted {server_id} on port {bound}"
            return f"Restarted {server_id} ({row.transport}, {row.model}) on {row.address}"

        self._in_background(f"Restarting {server_id}", job)

    def action_stop_server(self) -> None:
        row = self._require_selection()
        if row is None:
            return
        if row.state != "running":
            self.app.notify(f"{row.server_id} is not running.", severity="warning")
            return
        server_id = row.server_id

        def job() -> str:
            self.manager.stop(server_id)
            return f"Stopped {server_id}"

        self._in_background(f"Stopping {server_id}", job)

    def action_change_server(self) -> None:
        row = self._require_selection()
        if row is None:
            return
        self.app.push_screen(
            ServerFormScreen(
                f"Change {row.server_id} and restart",
                protocol=row.protocol,
                model=row.model,
                port=None,
                workers=row.workers,
                host=row.host,
                options={**row.options, "transport": row.transport},
                submit_label="Apply & restart",
            ),
            lambda settings: self._change_from_form(row.server_id, settings),
        )

    def _change_from_form(self, server_id: str, settings: ServerSettings | None) -> None:
        if settings is None:
            return
        # An emptied workers box means "back to the model default", which restart spells 0.
        workers = settings.workers if settings.workers is not None else 0
        self.restart_server(
            server_id,
            model=settings.model,
            port=settings.port,
            workers=workers,
            host=settings.host,
            options=settings.options,
        )

    def action_remove_server(self) -> None:
        row = self._require_selection()
        if row is None:
            return
        try:
            self.manager.remove(row.server_id)
        except (KeyError, ValueError) as error:
            self.app.notify(str(error).strip("'\""), severity="warning")

    def action_pause_log(self) -> None:
        log = self.query_one(EventLog)
        log.toggle_pause()
        # No toast: the log's own label says PAUSED or live where the user is looking. Toasts
        # of a few quick presses stacked up the right edge over that label and hid it.

    def action_filter_log(self) -> None:
        self.query_one("#event-filter", Input).focus()

    def _announcement_target(self) -> str | None:
        selected = self.selected_row
        if selected is not None and selected.protocol == "chat":
            return selected.server_id
        return self.manager.default_server_id("chat")

    def action_announce(self) -> None:
        server_id = self._announcement_target()
        if server_id is None:
            self.app.notify("No chat server: start one with n.", severity="error")
            return
        self.app.push_screen(
            AnnounceScreen(server_id, self._announcement_draft),
            lambda text: self._send_announcement(server_id, text),
        )

    def _send_announcement(self, server_id: str, text: str | None) -> None:
        if text is None:
            return
        # Kept until sent, so a failed announcement is offered again by the next a.
        self._announcement_draft = text

        def job() -> str:
            self.manager.announce(server_id, text)
            self.app.call_from_thread(self._forget_draft, text)
            return f"Announced to {server_id}: {text}"

        self._in_background(f"Announcing to {server_id}", job)

    def _forget_draft(self, text: str) -> None:
        if self._announcement_draft == text:
            self._announcement_draft = ""

    # -- detail views: events, sockets, last connection -----------------------------------

    @property
    def detail_view(self) -> str:
        return self.query_one("#server-views", TabbedContent).active or DETAIL_VIEWS[0]

    def show_detail_view(self, view: str) -> None:
        self.query_one("#server-views", TabbedContent).active = view

    def action_next_view(self) -> None:
        following = DETAIL_VIEWS[(DETAIL_VIEWS.index(self.detail_view) + 1) % len(DETAIL_VIEWS)]
        self.show_detail_view(following)

    @on(TabbedContent.TabActivated, "#server-views")
    def _view_changed(self, event: TabbedContent.TabActivated) -> None:
        event.stop()
        self.refresh_bindings()
        self._show_sockets()
        self.sample_sockets()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Each view's own keys, so the footer has room for the ones that apply.
        if action in ("pause_log", "filter_log"):
            return self.detail_view == "events-view"
        if action == "restart_without_reuse":
            return self.detail_view != "events-view"
        return True

    def sample_sockets(self) -> None:
        """Every second: probe the selected server's sockets in a thread, if they are on screen."""
        if not self.is_mounted or self.detail_view == "events-view" or not self.is_on_screen:
            return
        row = self.selected_row
        if row is None or not row.port:
            return
        # A stopped or failed server has no pid, but the kernel may still keep its port's
        # TIME_WAIT sockets: those are what a restart without SO_REUSEADDR runs into.
        pid = row.pid if row.state == "running" else None
        recent = self._recent_ports.get(row.server_id, {})
        now = time.time()
        for old_port in [p for p, seen in recent.items() if now - seen > RECENT_PORT_SECONDS]:
            del recent[old_port]
        self._probe_sockets(row.server_id, pid, row.port, tuple(recent))

    @work(thread=True, exclusive=True, group="socket-probe", exit_on_error=False)
    def _probe_sockets(
        self, server_id: str, pid: int | None, port: int, other_ports: tuple[int, ...]
    ) -> None:
        try:
            report = probe_server(pid, port, other_ports)
        except psutil.NoSuchProcess:
            return  # stopped between the row and the probe: the next sample tells
        except Exception as error:  # AccessDenied, an odd ss: said in the view, never lost
            self.post_message(self.SocketsSampled(server_id, None, f"cannot read sockets: {error}"))
            return
        self.post_message(self.SocketsSampled(server_id, report))

    @on(SocketsSampled)
    def _sockets_sampled(self, message: SocketsSampled) -> None:
        if message.report is None:
            self._last_report.pop(message.server_id, None)  # stale rows would hide the problem
        else:
            self._last_report[message.server_id] = message.report
            recent = self._recent_ports.setdefault(message.server_id, {})
            for own_port in message.report.own_ports - {message.report.port}:
                recent[own_port] = message.report.time
            tracker = self._trackers.setdefault(message.server_id, ConnectionTracker())
            tracker.add_report(message.report)
        if message.server_id == self.selected_server_id:
            self._show_sockets(message.problem)

    def _show_sockets(self, problem: str = "") -> None:
        row = self.selected_row
        report = self._last_report.get(row.server_id) if row else None
        if row is None:
            message = NO_SERVER_TEXT
        elif problem:
            message = problem
        else:
            message = "Sampling the sockets…"
        self.query_one(SocketTable).show(report, message)
        sequence_view = self.query_one(SequenceView)
        if row is None:
            sequence_view.show(None, NO_SERVER_TEXT)
        elif row.model == "datagram":
            sequence_view.show(
                None,
                "UDP has no connection (1.2.4): no handshake, no FIN — every datagram stands alone.",
            )
        else:
            tracker = self._trackers.get(row.server_id) or ConnectionTracker()
            sequence = tracker.sequence(self.query_one(EventLog).kept_events(row.server_id))
            sequence_view.show(sequence, "No connection yet: connect a client to this server.")

    def action_restart_without_reuse(self) -> None:
        row = self._require_selection()
        if row is None:
            return
        server_id, port = row.server_id, row.port
        report = self._last_report.get(server_id)
        time_waits = report.count("TIME_WAIT") if report is not None else 0

        def job() -> str:
            try:
                bound = self.manager.restart_without_reuse_address(server_id)
            except Exception as error:
                raise RuntimeError(explain_bind_failure(str(error), port, time_waits)) from None
            return (
                f"Restarted {server_id} without SO_REUSEADDR on port {bound}: "
                f"{explain_bind_success(bound, time_waits)}"
            )

        self._in_background(f"Restarting {server_id} without SO_REUSEADDR", job)
