"""App-wide messages: batched server figures and lifecycle news from the ServerManager threads."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from workbench.server_manager import ServerEvent, ServerRow


class ServersUpdated(Message):
    """Fresh figures for every managed server, posted about twice a second.

    One message carries all the rows and every event received since the last
    one, so a server logging 500 events/s costs the UI two messages a second.
    """

    def __init__(
        self,
        rows: tuple[ServerRow, ...],
        events: tuple[ServerEvent, ...],
        events_dropped: int = 0,
    ) -> None:
        super().__init__()
        self.rows = rows
        self.events = events
        self.events_dropped = events_dropped


class ServerCrashed(Message):
    """A server process died on its own (e.g. ``kill -9`` from another terminal)."""

    def __init__(self, server_id: str, description: str) -> None:
        super().__init__()
        self.server_id = server_id
        self.description = description


class ServerNotice(Message):
    """A start/stop/restart finished in a worker thread: tell the user how it went."""

    def __init__(self, text: str, severity: str = "information") -> None:
        super().__init__()
        self.text = text
        self.severity = severity
