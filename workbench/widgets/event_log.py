"""Live event log of one server (connect, disconnect, request, error) with a filter and a pause."""

from __future__ import annotations

import collections
from collections.abc import Iterable
from datetime import datetime

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widgets import Input, Label, Log

from workbench.server_manager import ServerEvent

#: Events remembered per server, so a paused or re-filtered log can be redrawn.
EVENTS_KEPT = 1000
#: Lines written per batch: beyond this nobody can read them live; pause to inspect.
LINES_PER_BATCH = 120


def format_event(event: ServerEvent) -> str:
    """One log line: local time with milliseconds, pid, kind, detail."""
    stamp = datetime.fromtimestamp(event.time).strftime("%H:%M:%S.%f")[:-3]
    return f"{stamp} {event.pid:>7} {event.kind:<10} {event.detail}"


class EventLog(Vertical):
    """Keeps recent events per server and shows the selected server's, filtered."""

    DEFAULT_CSS = """
    EventLog {
        height: 1fr;
    }
    EventLog > Horizontal {
        height: auto;
    }
    EventLog #event-filter {
        width: 1fr;
    }
    EventLog #event-status {
        width: auto;
        padding: 1 1 0 1;
        color: $text-muted;
    }
    EventLog Log {
        height: 1fr;
    }
    """

    paused: reactive[bool] = reactive(False)
    filter_text: reactive[str] = reactive("")

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._events: dict[str, collections.deque[ServerEvent]] = {}
        self._dropped: dict[str, int] = collections.Counter()
        self.server_id: str | None = None

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Input(placeholder="filter events (e.g. error, GET, 127.0.0.1)", id="event-filter")
            yield Label("live", id="event-status")
        yield Log(max_lines=EVENTS_KEPT, id="event-lines")

    # -- feeding -----------------------------------------------------------------------

    def add_events(self, events: Iterable[ServerEvent], dropped: int = 0) -> None:
        """Remember a batch of events; show the selected server's unless paused."""
        shown: list[ServerEvent] = []
        for event in events:
            kept = self._events.get(event.server_id)
            if kept is None:
                kept = self._events[event.server_id] = collections.deque(maxlen=EVENTS_KEPT)
            kept.append(event)
            if event.server_id == self.server_id:
                shown.append(event)
        if self.paused or not shown:
            return
        self._write(self._matching(shown), limit=LINES_PER_BATCH)

    def show_server(self, server_id: str | None) -> None:
        """Switch the log to another server (redraws from what was kept)."""
        if server_id == self.server_id:
            return
        self.server_id = server_id
        self.redraw()

    def forget(self, server_id: str) -> None:
        self._events.pop(server_id, None)

    def kept_events(self, server_id: str) -> list[ServerEvent]:
        return list(self._events.get(server_id, ()))

    def redraw(self) -> None:
        log = self.query_one(Log)
        log.clear()
        if self.server_id is None:
            return
        self._write(self._matching(self._events.get(self.server_id, ())), limit=EVENTS_KEPT)

    # -- filter and pause ----------------------------------------------------------------

    def _matching(self, events: Iterable[ServerEvent]) -> list[ServerEvent]:
        needle = self.filter_text.strip().lower()
        if not needle:
            return list(events)
        return [e for e in events if needle in f"{e.kind} {e.detail} {e.pid}".lower()]

    def _write(self, events: list[ServerEvent], limit: int) -> None:
        log = self.query_one(Log)
        skipped = len(events) - limit
        if skipped > 0:
            log.write_line(f"… {skipped} events not shown (too fast to read: pause to inspect)")
            events = events[skipped:]
        if events:
            log.write_lines([format_event(event) for event in events])

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "event-filter":
            event.stop()
            self.filter_text = event.value

    def watch_filter_text(self) -> None:
        if self.is_mounted:
            self.redraw()

    def watch_paused(self, paused: bool) -> None:
        if not self.is_mounted:
            return
        self.query_one("#event-status", Label).update("PAUSED" if paused else "live")
        self.set_class(paused, "-paused")
        if not paused:
            self.redraw()

    def toggle_pause(self) -> None:
        self.paused = not self.paused
