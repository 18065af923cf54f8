"""Fixtures the workbench tests share: a fast ServerManager, our chat server, a heap kept small."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from textual._styles_cache import StylesCache

from tests.helpers.servers import InProcessServer, in_process_server
from workbench.data import ensure_data_dir
from workbench.server_manager import ServerManager


@pytest.fixture(autouse=True)
def forget_finished_apps() -> Iterator[None]:
    """Let the garbage collector have an app's widgets once its test is over.

    Textual memoises ``StylesCache.get_inner_outer`` with ``functools.lru_cache``, which
    keeps each widget's style cache (and every rendered strip in it) alive after its app
    has gone: a few hundred thousand objects a worker carries from test to test, that
    every full collection walks again (the app runs one at startup). Emptying it makes
    each test start from about the heap the first one had.
    """
    yield
    StylesCache.get_inner_outer.cache_clear()


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
