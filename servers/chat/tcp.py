"""The chat room over TCP, one message per line (course 1.3.4 tcp粘包): a sans-IO handler per connection.

TCP delivers a byte stream, not messages: one ``recv`` may hold half a line or
three lines at once (粘包). Each handler therefore keeps a buffer and hands the
room only whole ``\\n``-terminated lines — the "add a message boundary" cure
from the course. All handlers share one :class:`ChatHub` (the room plus every
member's ``push``), so this runs under every model whose connections live in
one process (iterative, threads, select, poll, epoll, asyncio). Models that
serve connections from several processes cannot share the room's memory; see
``MULTIPROCESS_REASON``.
"""

from __future__ import annotations

import threading
from typing import Any

from servers.chat import protocol as p
from servers.chat.room import ChatRoom, Datagram
from servers.contracts import BaseSansIOHandler, Output, Peer, Push, monotonic
from servers.stats import ServerStats

#: A line longer than this (without its newline) is refused and skipped.
MAX_LINE_BYTES = p.MAX_MESSAGE_BYTES + 2

MULTIPROCESS_REASON = (
    "the chat room lives in one process's memory, and under {model} the connections are "
    "served by different processes: members in two processes could not hear each other "
    "without inter-process communication (a queue or a broker, 2.2.5 进程通信). "
    "Use threads or an event-loop model (select, poll, epoll, asyncio), or the UDP transport."
)


class ChatHub:
    """The room shared by every TCP connection of the process, and how to reach each one."""

    def __init__(self, room: ChatRoom, stats: ServerStats) -> None:
        self.room = room
        self.stats = stats
        #: Handlers run in many threads under the threads model: one lock for the room.
        self.lock = threading.Lock()
        self.pushes: dict[Any, Push] = {}

    def new_handler(self, peer: Peer) -> ChatLineHandler:
        return ChatLineHandler(self, peer)

    def receive(self, line: bytes, address: Any, now: float) -> list[Output]:
        """One whole line from ``address``: returns its own replies, pushes the rest."""
        with self.lock:
            return self._deliver(self.room.receive(line, address, now), address)

    def announce(self, text: str) -> None:
        with self.lock:
            self._deliver(self.room.announce(text), None)

    def _deliver(self, datagrams: list[Datagram], own_address: Any) -> list[Output]:
        """Push to the other connections, still under the lock, so each one's lines stay in seq order."""
        own: list[Output] = []
        for address, payload in datagrams:
            if address == own_address:
                own.append(payload)
                continue
            push = self.pushes.get(address)
            if push is not None:
                push([payload])
        return own


class ChatLineHandler(BaseSansIOHandler):
    """One TCP member: splits the stream into lines and lets the hub's room answer them."""

    def __init__(self, hub: ChatHub, peer: Peer) -> None:
        self.hub = hub
        self.address = peer.address
        self.buffer = bytearray()
        #: True while skipping the rest of an over-long line.
        self.discarding = False
        self.last_activity = monotonic()
        with hub.lock:
            hub.pushes[self.address] = peer.push

    def feed(self, data: bytes) -> list[Output]:
        now = monotonic()
        self.last_activity = now
        self.buffer += data
        out: list[Output] = []
        while True:
            end = self.buffer.find(b"\n")
            if end < 0:
                break
            line = bytes(self.buffer[: end + 1])
            del self.buffer[: end + 1]
            if self.discarding:
                self.discarding = False  # the tail of a line already refused
                continue
            out.extend(self.hub.receive(line, self.address, now))
        if len(self.buffer) > MAX_LINE_BYTES:
            # No newline in sight: refuse once, then skip bytes until the next one.
            if not self.discarding:
                self.hub.stats.count_error(f"{p.ERR_TOO_LONG}: line without newline")
                reason = f"lines are at most {p.MAX_TEXT_BYTES} bytes of text; skipping to the next newline"
                out.append(f"ERR {p.ERR_TOO_LONG} {reason}\n".encode())
            self.discarding = True
            self.buffer.clear()
        return out

    def deadline(self) -> float | None:
        with self.hub.lock:
            member_deadline = self.hub.room.deadline_of(self.address)
        if member_deadline is not None:
            return member_deadline
        # Not (or no longer) logged in: an idle connection is closed after the same timeout.
        return self.last_activity + self.hub.room.timeout

    def tick(self, now: float) -> list[Output]:
        hub = self.hub
        with hub.lock:
            if self.address in hub.room.members:
                own = hub._deliver(hub.room.expire_address(self.address, now), self.address)
                if own:
                    self.should_close = True
                return own
        if now >= self.last_activity + hub.room.timeout:
            self.should_close = True
            reason = f"connection idle for {hub.room.timeout:g} s without LOGIN: closing"
            return [f"ERR {p.ERR_TIMED_OUT} {reason}\n".encode()]
        return []

    def close(self) -> None:
        hub = self.hub
        with hub.lock:
            hub.pushes.pop(self.address, None)
            hub._deliver(hub.room.disconnect(self.address), self.address)
