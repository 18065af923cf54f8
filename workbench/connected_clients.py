"""Who is connected to a server and from where, folded from its connect/disconnect (and chat join/leave) events."""

from __future__ import annotations

import collections
from dataclasses import dataclass

#: Addresses remembered per server; beyond that the list is marked partial (a load test
#: opens thousands, and the panel shows a summary line, not a phone book).
MAX_TRACKED = 5000


def split_host(address: str) -> str:
    """``192.168.1.21:50123`` -> ``192.168.1.21``; ``[fd00::2]:80`` -> ``fd00::2``."""
    if address.startswith("["):
        return address[1:].partition("]")[0]
    return address.rpartition(":")[0] or address


@dataclass(frozen=True, slots=True)
class ClientsView:
    """What one server's clients look like now: addresses (oldest first) and chat names by address."""

    addresses: tuple[str, ...]
    names: dict[str, str]
    partial: bool

    def summary(self) -> str:
        """One line: ``alice@127.0.0.1 · bob@192.168.1.21`` for a chat room, else hosts with counts."""
        if not self.addresses:
            text = "none connected"
        elif self.names:
            text = " · ".join(
                f"{self.names[address]}@{split_host(address)}"
                if address in self.names
                else split_host(address)
                for address in self.addresses
            )
        else:
            per_host = collections.Counter(split_host(address) for address in self.addresses)
            text = " · ".join(
                f"{host} ×{count}" if count > 1 else host for host, count in per_host.items()
            )
        if self.partial:
            text += " (partial: the server dropped events under load)"
        return text


class ClientTracker:
    """The open connections of one server process, kept from its event records.

    The events are the server's own (servers/stats.py: ``connect``/``disconnect`` carry
    the peer's ``host:port``; the chat room's ``join`` says ``NAME from host:port`` and
    ``leave`` says ``NAME (reason)``), so the list says what the server saw, not a guess.
    A UDP room has no connections: its members are there from join to leave. A server that dropped events under
    load may have lost a disconnect: the view then says it is partial.
    """

    def __init__(self) -> None:
        self._addresses: dict[str, None] = {}
        self._names: dict[str, str] = {}
        #: Members known from their join alone (UDP): their leave ends them, no disconnect comes.
        self._members_only: set[str] = set()
        self.partial = False

    def reset(self) -> None:
        """A new server process: nobody is connected to it yet."""
        self._addresses.clear()
        self._names.clear()
        self._members_only.clear()
        self.partial = False

    def fold(self, kind: str, detail: str) -> None:
        if kind == "connect":
            if len(self._addresses) >= MAX_TRACKED:
                self.partial = True
                return
            self._addresses[detail] = None
            self._members_only.discard(detail)
        elif kind == "disconnect":
            self._addresses.pop(detail, None)
            self._names.pop(detail, None)
            self._members_only.discard(detail)
        elif kind == "join":
            name, separator, address = detail.partition(" from ")
            if separator:
                self._names[address] = name
                # A TCP member's connection came first; a UDP member has only this join.
                if address not in self._addresses:
                    if len(self._addresses) >= MAX_TRACKED:
                        self.partial = True
                        return
                    self._addresses[address] = None
                    self._members_only.add(address)
        elif kind == "leave":
            name = detail.partition(" (")[0]
            for address, member in list(self._names.items()):
                if member == name:
                    del self._names[address]
                    if address in self._members_only:
                        self._members_only.discard(address)
                        self._addresses.pop(address, None)

    def dropped(self, count: int) -> None:
        if count:
            self.partial = True

    def view(self) -> ClientsView:
        return ClientsView(tuple(self._addresses), dict(self._names), self.partial)
