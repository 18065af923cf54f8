"""App-wide messages: the ServerManager's news as the app posts it, and lifecycle notices from workers."""

from __future__ import annotations

from textual.message import Message

from workbench.server_records import (
    Address,
    EndpointMoved,
    ManagerNews,
    ServerCrash,
    ServerEvent,
    ServerRow,
    ServersSnapshot,
)


class ServersUpdated(Message, bubble=False):
    """Fresh figures for every managed server, posted about twice a second.

    One message carries all the rows and every event received since the last
    one, so a server logging 500 events/s costs the UI two messages a second.
    The app shows it, then passes a copy to every tab (the Chat tab lists who is
    in its room from it); it does not bubble, so a tab's copy stays there.
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


class EndpointChanged(Message, bubble=False):
    """The default server of ``protocol`` now listens at ``address``; None: none is running.

    Posted when it appears, moves (a restart on another port, another model) or goes
    away. The app receives it first and posts a copy to every tab; the Chat, FTP and
    HTTP tabs follow their server from it, unless given an address of their own.
    """

    def __init__(self, protocol: str, address: Address | None) -> None:
        super().__init__()
        self.protocol = protocol
        self.address = address


class ServerNotice(Message):
    """A start/stop/restart finished in a worker thread: tell the user how it went."""

    def __init__(self, text: str, severity: str = "information") -> None:
        super().__init__()
        self.text = text
        self.severity = severity


def message_for(news: ManagerNews) -> Message:
    """The app's message for one piece of the ServerManager's news."""
    if isinstance(news, ServersSnapshot):
        return ServersUpdated(news.rows, news.events, news.events_dropped)
    if isinstance(news, ServerCrash):
        return ServerCrashed(news.server_id, news.description)
    if isinstance(news, EndpointMoved):
        return EndpointChanged(news.protocol, news.address)
    raise TypeError(f"not news from the ServerManager: {news!r}")
