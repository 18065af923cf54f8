"""What tabs may ask of the app's servers: where each protocol's server listens, and how to restart it."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from workbench.connected_clients import ClientsView
from workbench.network import RemoteServers
from workbench.server_records import Address, ServerRow


@runtime_checkable
class ServerDirectory(Protocol):
    """Look-ups only: the servers a tab talks to, their rows and their clients.

    The ServerManager is one; a test's stand-in with the same methods is another.
    """

    @property
    def remote(self) -> RemoteServers | None:
        """A teacher's servers every tab uses instead of ours (``--connect``), or None."""
        ...

    @property
    def data_dir(self) -> Path | None:
        """The ``--data`` folder (None: the default one)."""
        ...

    def endpoint(self, protocol: str) -> Address | None:
        """``(host, port)`` a client dials for the protocol's default server; None when not running."""
        ...

    def default_server_id(self, protocol: str) -> str | None: ...

    def row(self, server_id: str) -> ServerRow | None: ...

    def rows(self) -> tuple[ServerRow, ...]: ...

    def clients(self, server_id: str) -> ClientsView | None:
        """Who is connected to the server now, from where."""
        ...


@runtime_checkable
class ServerControl(ServerDirectory, Protocol):
    """A directory whose servers a tab may start and restart (compare-models does). Both block."""

    def start(self, protocol: str, model: str) -> str:
        """Start a server of ``protocol`` under ``model``; returns its id."""
        ...

    def restart(self, server_id: str, model: str | None = None) -> int:
        """Stop the server and start it again (under ``model`` if given); returns the bound port."""
        ...
