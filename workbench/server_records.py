"""Plain records the ServerManager hands out: rows, events, process trees, and the news it publishes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Where a server listens, as a client dials it: ``(host, port)``.
Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class ServerEvent:
    """One connect/disconnect/request/error record from a server."""

    server_id: str
    time: float
    kind: str
    detail: str
    pid: int


@dataclass(frozen=True, slots=True)
class ProcessNode:
    """One process of a server's tree as the OS sees it (for the pstree view)."""

    pid: int
    name: str
    status: str
    threads: int
    depth: int


@dataclass(frozen=True, slots=True)
class ServerRow:
    """Everything the Servers panel shows about one server at one instant."""

    server_id: str
    protocol: str
    model: str
    host: str = "127.0.0.1"
    port: int = 0
    #: "tcp", or "udp" for a datagram server, whose *active* counts room members, not connections.
    transport: str = "tcp"
    pid: int | None = None
    state: str = "starting"
    exit_description: str = ""
    workers: int | None = None
    uptime: float = 0.0
    #: Every thread of the server's process tree, as the OS counts them.
    threads: int = 0
    #: Of those, the ones serving clients: each process's main thread and the
    #: connection threads; the rest are helpers (stats reporter, control channel...).
    serving_threads: int = 0
    children: int = 0
    active: int = 0
    accepted: int = 0
    requests: int = 0
    requests_per_second: float = 0.0
    bytes_in_per_second: float = 0.0
    bytes_out_per_second: float = 0.0
    errors: int = 0
    refused: int = 0
    cpu_percent: float = 0.0
    rss_bytes: int = 0
    zombies: int = 0
    process_tree: tuple[ProcessNode, ...] = ()
    events_dropped: int = 0
    is_default: bool = False
    #: The soft open-file limit the server runs with (0 until its first report).
    max_open_files: int = 0
    #: The protocol options it was started with (transport, drop, read_only...).
    options: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" if self.port else "-"

    @property
    def is_datagram(self) -> bool:
        return self.transport == "udp"

    @property
    def helper_threads(self) -> int:
        return max(0, self.threads - self.serving_threads)


# -- the news the manager publishes (from its own threads, or a start/stop caller's) --------


@dataclass(frozen=True, slots=True)
class ServersSnapshot:
    """Every server's row and the events gathered since the previous snapshot (about twice a second).

    One record carries them all, so a server logging 500 events/s costs its
    reader two records a second.
    """

    rows: tuple[ServerRow, ...]
    events: tuple[ServerEvent, ...]
    events_dropped: int = 0


@dataclass(frozen=True, slots=True)
class ServerCrash:
    """A server process died on its own (e.g. ``kill -9`` from another terminal)."""

    server_id: str
    description: str


@dataclass(frozen=True, slots=True)
class EndpointMoved:
    """The default server of ``protocol`` now listens at ``address``; None: none is running.

    Published when it appears, moves (a restart on another port, another model)
    or goes away (stopped, crashed, removed); a restart on the same port is a
    going away followed by an appearing, since the new process knows nobody.
    """

    protocol: str
    address: Address | None


#: Everything ``ServerManager.open``'s callback may receive.
ManagerNews = ServersSnapshot | ServerCrash | EndpointMoved
