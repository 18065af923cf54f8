"""The HTTP tab's history: this session's requests and how each ended; choosing one asks to re-send it."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from textual import on
from textual.message import Message
from textual.widgets import DataTable

from workbench.clients.http import HttpRequest, HttpResponse

HISTORY_COLUMNS = (
    ("#", "number"),
    ("time", "time"),
    ("method", "method"),
    ("URL", "url"),
    ("result", "result"),
    ("ms", "ms"),
)


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


class RequestHistory(DataTable[str]):
    """A row per request, numbered from 1; Enter on a row posts :class:`Chosen`."""

    class Chosen(Message):
        """The user picked an earlier request to load and send again."""

        def __init__(self, entry: HistoryEntry) -> None:
            super().__init__()
            self.entry = entry

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.entries: list[HistoryEntry] = []

    def on_mount(self) -> None:
        for label, key in HISTORY_COLUMNS:
            self.add_column(label, key=key)

    def remember(self, entry: HistoryEntry) -> HistoryEntry:
        """Add ``entry`` as the next row; returns it numbered in this history."""
        entry = replace(entry, number=len(self.entries) + 1)
        self.entries.append(entry)
        total = f"{entry.response.timings.total_ms:.1f}" if entry.response else "-"
        self.add_row(
            str(entry.number),
            time.strftime("%H:%M:%S", time.localtime(entry.sent_at)),
            entry.request.method,
            entry.request.url,
            entry.outcome,
            total,
            key=str(entry.number),
        )
        return entry

    def entry(self, number: int) -> HistoryEntry:
        """The request numbered ``number`` (from 1)."""
        return self.entries[number - 1]

    @on(DataTable.RowSelected)
    def _row_chosen(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.post_message(self.Chosen(self.entry(int(str(event.row_key.value)))))
