"""Fixtures the workbench tests share: a fast ServerManager on a private data folder, our chat server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.servers import InProcessServer, in_process_server
from workbench.data import ensure_data_dir
from workbench.server_manager import ServerManager


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[ServerManager]:
    """A manager that refreshes five times a second and serves a private data folder.

    Every server it started is stopped afterwards.
    """
    server_manager = ServerManager(
        ensure_data_dir(tmp_path / "data"), publish_interval=0.2, poll_interval=0.2
    )
    yield server_manager
    server_manager.close()


@pytest.fixture
def chat_server() -> Iterator[InProcessServer]:
    """Our UDP chat room, served from this process on a free port."""
    with in_process_server("chat") as server:
        yield server
