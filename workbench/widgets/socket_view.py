"""The selected server's sockets as the kernel sees them, and its last connection told step by step (course 1.3)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import DataTable, Label, Static

from workbench.connection_sequence import (
    INFERRED,
    OBSERVED_KERNEL,
    OBSERVED_STATS,
    ConnectionSequence,
)
from workbench.socket_probe import ServerSocket, SocketReport, format_address

#: Rows drawn at most: an epoll server can hold thousands; the summary counts them all.
MAX_SOCKET_ROWS = 200

SOCKET_COLUMNS: tuple[tuple[str, str], ...] = (
    ("state", "State"),
    ("note", "Why"),
    ("remote", "Remote"),
    ("recv_q", "Recv-Q"),
    ("send_q", "Send-Q"),
    ("pid", "PID"),
    ("fd", "fd"),
    ("local", "Local"),
    ("rtt", "RTT ms"),
    ("unacked", "Unack"),
    ("retrans", "Retr"),
)


def _stamp(moment: float) -> str:
    return datetime.fromtimestamp(moment).strftime("%H:%M:%S.%f")[:-3]


def _number(value: int | float | None) -> str:
    if value is None:
        return "-"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _short_state(state: str) -> str:
    # ss's spelling: the sequence needs the width for its arrows.
    return "ESTAB" if state == "ESTABLISHED" else state


def _note(sock: ServerSocket) -> str:
    """Why the socket is there, in a word (the help says more)."""
    if sock.state == "LISTEN":
        return "listening"
    if sock.transport == "UDP":
        return "datagram"
    if not sock.owned and sock.state in ("ESTABLISHED", "SYN_RECV"):
        return "backlog"  # completed by the kernel, not accept()ed yet
    if sock.state == "TIME_WAIT":
        return f"2×MSL {time_wait_left(sock.timer)}".rstrip()
    if not sock.owned:
        return "orphaned"  # closed by the server; the kernel finishes the close
    return "connfd"


def time_wait_left(timer: str) -> str:
    """``timewait,52sec,0`` -> ``52s`` (what is left of the 2×MSL wait), else ``""``."""
    parts = timer.split(",")
    if len(parts) >= 2 and parts[0] == "timewait":
        return parts[1].replace("sec", "s").replace("min", "m")
    return ""


def socket_cells(sock: ServerSocket) -> tuple[Any, ...]:
    """One table row for a socket (plain values, so tests can read them)."""
    pids = (
        "-"
        if not sock.pids
        else str(sock.pids[0]) + (f"+{len(sock.pids) - 1}" if len(sock.pids) > 1 else "")
    )
    return (
        sock.state,
        _note(sock),
        format_address(sock.remote),
        _number(sock.recv_q),
        _number(sock.send_q),
        pids,
        _number(sock.fd),
        f":{sock.local[1]}",
        _number(sock.rtt_ms),
        _number(sock.unacked),
        _number(sock.retransmits),
    )


class SocketTable(Vertical):
    """Every socket of the selected server: its pid tree's descriptors plus what the kernel keeps on its port."""

    DEFAULT_CSS = """
    SocketTable #socket-summary {
        width: 1fr;
        padding: 0 1;
        color: $text;
    }
    SocketTable DataTable {
        height: 1fr;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.report: SocketReport | None = None

    def compose(self) -> ComposeResult:
        yield Label(
            "Sockets are sampled about once a second while this view is open.", id="socket-summary"
        )
        table: DataTable[Any] = DataTable(id="socket-rows", cursor_type="row", zebra_stripes=True)
        for key, header in SOCKET_COLUMNS:
            table.add_column(header, key=key)
        yield table

    def show(self, report: SocketReport | None, message: str = "") -> None:
        """Redraw from one sample (or show why there is none)."""
        self.report = report
        table = self.query_one("#socket-rows", DataTable)
        summary = self.query_one("#socket-summary", Label)
        cursor = table.cursor_row
        table.clear()
        if report is None:
            summary.update(message)
            return
        text = f"{_stamp(report.time)}  {report.summary()}"
        if report.problem:
            text += f"  ({report.problem})"
        hidden = len(report.sockets) - MAX_SOCKET_ROWS
        if hidden > 0:
            text += f"  — first {MAX_SOCKET_ROWS} of {len(report.sockets)} shown"
        summary.update(text)
        for index, sock in enumerate(report.sockets[:MAX_SOCKET_ROWS]):
            table.add_row(*socket_cells(sock), key=str(index))
        # Rebuilt every second: keep the reader's place.
        if table.row_count:
            table.move_cursor(row=min(cursor, table.row_count - 1), animate=False)


class SequenceView(VerticalScroll):
    """The last connection: handshake, data, close, each step marked observed or inferred."""

    DEFAULT_CSS = """
    SequenceView {
        padding: 0 1;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.sequence: ConnectionSequence | None = None

    def compose(self) -> ComposeResult:
        yield Static("No connection yet.", id="sequence-body")

    def show(self, sequence: ConnectionSequence | None, message: str = "") -> None:
        self.sequence = sequence
        body = self.query_one("#sequence-body", Static)
        if sequence is None:
            body.update(message or "No connection yet.")
            return
        table = Table(
            title=f"Last connection: client {format_address(sequence.peer)} ⇄ server",
            title_justify="left",
            title_style="bold",
            expand=True,
            box=None,
            padding=(0, 1, 0, 0),
        )
        table.add_column("Time", no_wrap=True)
        table.add_column("Client", no_wrap=True)
        table.add_column("Packet / event", ratio=1, overflow="fold")
        table.add_column("Server", no_wrap=True)
        table.add_column("Source", no_wrap=True)
        reasons: list[str] = []
        for step in sequence.steps:
            style = "" if step.observed else "dim italic"
            if step.arrow == "client → server":
                what = f"──{step.what}──▶"
            elif step.arrow == "server → client":
                what = f"◀──{step.what}──"
            elif step.arrow:
                what = f"⇄ {step.what}"
            else:
                what = step.what
            if step.evidence.startswith(OBSERVED_KERNEL):
                source = "ss"
            elif step.evidence.startswith(OBSERVED_STATS):
                source = "event"
            else:
                source = "inferred"
            detail = step.evidence.removeprefix(OBSERVED_STATS).strip(" ()")
            if step.evidence.startswith(INFERRED) or (step.observed and detail and source != "ss"):
                reason = step.evidence if not step.observed else f"server event: {detail}"
                if reason not in reasons:
                    reasons.append(reason)
            table.add_row(
                _stamp(step.time) if step.time is not None else "…",
                Text(_short_state(step.client_state), style=style),
                Text(what, style=style),
                Text(_short_state(step.server_state), style=style),
                Text(source, style=style),
            )
        notes = Text("\n".join(["", *reasons, sequence.note]), style="dim")
        body.update(Group(table, notes))
