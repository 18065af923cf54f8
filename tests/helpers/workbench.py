"""The whole workbench app as tests start it: on the Servers tab, or with a manager that runs nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from workbench.app import WorkbenchApp
from workbench.server_manager import ServerManager


class QuietServerManager(ServerManager):
    """A manager with no threads and no servers: the test posts the batches itself."""

    def open(self, post: Callable[[Any], object]) -> None:
        self._post = post


def servers_app(manager: ServerManager) -> WorkbenchApp:
    """The app on its Servers tab, over ``manager``, starting no server of its own."""
    return WorkbenchApp(server_manager=manager, start_servers=False, initial_tab="servers")
