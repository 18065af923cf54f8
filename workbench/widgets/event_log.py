"""Live event log of one server (connect, disconnect, request, error, crash) with a filter and a pause.

Its label never lies: *live* only while the newest line is on screen. Scrolled
up, it counts the lines that arrived below (*N new lines*); paused, the events
that arrived unshown. End (in the log) or **p** goes back to live.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from datetime import datetime

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widgets import Input, Label, Log

from workbench.server_records import ServerEvent

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
    EventLog.-behind #event-status {
        color: $text-warning;
        text-style: bold;
    }
    EventLog Log {
        height: 1fr;
    }
    """

    paused: reactive[bool] = reactive(False)
    filter_text: reactive[str] = reactive("")
    #: True while the newest line is on screen (the log scrolls itself along).
    following: reactive[bool] = reactive(True)
    #: Lines (or, paused, events) that arrived since the newest on screen.
    unseen: reactive[int] = reactive(0)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._events: dict[str, collections.deque[ServerEvent]] = {}
        self._dropped: dict[str, int] = collections.Counter()
        self.server_id: str | None = None

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Input(placeholder="filter events (e.g. error, GET, 127.0.0.1)", id="event-filter")
            yield Label("live", id="event-status")
        yield Log(max_lines=EVENTS_KEPT, id="event-lines", auto_scroll=False)

    def on_mount(self) -> None:
        self.watch(self.query_one(Log), "scroll_y", self._log_scrolled, init=False)

    @property
    def status_text(self) -> str:
        """What the label says: live, paused, or how far behind the screen is."""
        if self.paused:
            return f"PAUSED · {self.unseen} new" if self.unseen else "PAUSED"
        if not self.following:
            if self.unseen:
                plural = "s" if self.unseen != 1 else ""
                return f"{self.unseen} new line{plural} ↓ End"
            return "scrolled ↓ End"
        return "live"

    @property
    def newest_line_visible(self) -> bool:
        log = self.query_one(Log)
        return log.scroll_offset.y + log.scrollable_content_region.height >= log.line_count

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
        if not shown:
            return
        if self.paused:
            self.unseen += len(self._matching(shown))
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
        """Rewrite the log from the kept events and follow its end again."""
        log = self.query_one(Log)
        log.clear()
        self.following = True
        self.unseen = 0
        if self.server_id is None:
            return
        self._write(self._matching(self._events.get(self.server_id, ())), limit=EVENTS_KEPT)

    def jump_to_live(self) -> None:
        """Back to the newest line, following again (End in the log, or p)."""
        self.following = True
        self.unseen = 0
        self._scroll_to_newest()

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
            lines = [format_event(event) for event in events]
            # Scrolled explicitly, not through Log.auto_scroll: that only follows when the
            # view was at the end before this write, and one lagging write stops it for good.
            log.write_lines(lines, scroll_end=False)
            if self.following:
                self._scroll_to_newest()
            else:
                self.unseen += len(lines)

    def _scroll_to_newest(self) -> None:
        # Deferred until after the next layout: an immediate scroll uses the maximum from
        # before it, and once a layout moves that maximum the newest line is off screen.
        self.query_one(Log).scroll_end(animate=False, x_axis=False)

    def on_resize(self) -> None:
        if self.following and not self.paused:
            self._scroll_to_newest()

    def _log_scrolled(self) -> None:
        """The user scrolled the log (wheel, keys, scrollbar): at the end it follows again."""
        log = self.query_one(Log)
        at_end = log.scroll_y >= log.max_scroll_y
        if at_end and not self.following:
            self.unseen = 0
        self.following = at_end

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
        self.set_class(paused, "-paused")
        if paused:
            self.unseen = 0
        else:
            self.redraw()
        self._show_status()

    def watch_following(self) -> None:
        self._show_status()

    def watch_unseen(self) -> None:
        self._show_status()

    def _show_status(self) -> None:
        if self.is_mounted:
            self.query_one("#event-status", Label).update(self.status_text)
            self.set_class(not self.paused and not self.following, "-behind")

    def toggle_pause(self) -> None:
        """p: pause; when paused or scrolled up, back to live instead."""
        if self.paused:
            self.paused = False
        elif not self.following:
            self.jump_to_live()
        else:
            self.paused = True
