"""The ServerManager's news, with no UI: real servers started, moved, stopped and killed, read through its callback."""

from __future__ import annotations

import importlib.util
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.helpers.servers import FakeServerDirectory
from workbench import server_records as records
from workbench.messages import EndpointChanged, ServerCrashed, ServersUpdated, message_for
from workbench.server_directory import ServerControl, ServerDirectory
from workbench.server_manager import ServerManager
from workbench.server_records import EndpointMoved, ManagerNews, ServerCrash, ServersSnapshot

pytestmark = pytest.mark.timeout(60)

HERE = Path(__file__).resolve().parent


class NewsCollector:
    """Whatever the manager publishes, kept in order; thread-safe as the callback must be."""

    def __init__(self) -> None:
        self.news: list[ManagerNews] = []
        self._changed = threading.Condition()

    def __call__(self, news: ManagerNews) -> None:
        with self._changed:
            self.news.append(news)
            self._changed.notify_all()

    def moves(self, protocol: str) -> list[tuple[str, int] | None]:
        with self._changed:
            return [
                n.address
                for n in self.news
                if isinstance(n, EndpointMoved) and n.protocol == protocol
            ]

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {what}; news: {self.news}")
                self._changed.wait(left)


@pytest.fixture
def watched() -> Iterator[tuple[ServerManager, NewsCollector]]:
    manager = ServerManager(publish_interval=0.2, poll_interval=0.2)
    collector = NewsCollector()
    manager.open(collector)
    yield manager, collector
    manager.close()


def test_start_move_and_stop_are_published_as_they_happen(watched) -> None:
    manager, collector = watched
    manager.start("chat", "threads")
    first = manager.endpoint("chat")
    assert first is not None
    # Published by start() itself, before it returned: no batch to wait for.
    assert collector.moves("chat") == [first]

    manager.restart("chat", port=0)  # any free port: elsewhere
    second = manager.endpoint("chat")
    assert second is not None and second != first
    assert collector.moves("chat") == [first, None, second]

    manager.restart("chat")  # same port: a new process, an empty room
    assert manager.endpoint("chat") == second
    assert collector.moves("chat") == [first, None, second, None, second]

    manager.stop("chat")
    assert collector.moves("chat")[-1] is None
    assert all(not isinstance(n, EndpointMoved) or n.protocol == "chat" for n in collector.news)


def test_a_killed_server_is_a_crash_and_its_endpoint_goes_away(watched) -> None:
    manager, collector = watched
    manager.start("http", "threads")
    pid = manager.row("http").pid
    os.kill(pid, signal.SIGKILL)
    collector.wait_for(
        lambda: any(isinstance(n, ServerCrash) and n.server_id == "http" for n in collector.news),
        "the crash",
    )
    assert collector.moves("http")[-1] is None
    assert manager.endpoint("http") is None


def test_removing_the_default_promotes_the_next_and_says_where_it_is(watched) -> None:
    manager, collector = watched
    manager.start("http", "threads")
    manager.start("http", "threads")  # http-2, not the default: no move
    second = ("127.0.0.1", manager.row("http-2").port)
    assert len(collector.moves("http")) == 1
    manager.stop("http")
    manager.remove("http")
    assert manager.default_server_id("http") == "http-2"
    assert collector.moves("http")[-2:] == [None, second]


def test_snapshots_come_about_twice_a_second_with_rows_and_events(watched) -> None:
    manager, collector = watched
    manager.start("echo", "threads")
    collector.wait_for(
        lambda: any(
            isinstance(n, ServersSnapshot) and any(r.server_id == "echo" for r in n.rows)
            for n in collector.news
        ),
        "a snapshot with the echo row",
    )


def test_a_closed_manager_publishes_nothing() -> None:
    manager = ServerManager(publish_interval=0.2, poll_interval=0.2)
    collector = NewsCollector()
    manager.open(collector)
    try:
        manager.start("echo", "threads")
    finally:
        manager.close()
    published = len(collector.news)
    assert manager.row("echo").state == "stopped"
    assert len(collector.news) == published  # the stop in close() told nobody


def test_each_piece_of_news_becomes_the_apps_message() -> None:
    row = records.ServerRow("http", "http", "epoll", port=8080)
    event = records.ServerEvent("http", 1.0, "connect", "127.0.0.1:5000", 42)
    updated = message_for(ServersSnapshot((row,), (event,), 3))
    assert isinstance(updated, ServersUpdated)
    assert (updated.rows, updated.events, updated.events_dropped) == ((row,), (event,), 3)
    crashed = message_for(ServerCrash("http", "killed by SIGKILL"))
    assert isinstance(crashed, ServerCrashed)
    assert (crashed.server_id, crashed.description) == ("http", "killed by SIGKILL")
    moved = message_for(EndpointMoved("ftp", ("127.0.0.1", 2121)))
    assert isinstance(moved, EndpointChanged)
    assert (moved.protocol, moved.address) == ("ftp", ("127.0.0.1", 2121))
    with pytest.raises(TypeError):
        message_for("not news")  # type: ignore[arg-type]


# -- the directory tabs see ----------------------------------------------------------------


def _test_module(filename: str) -> ModuleType:
    """A tab test module, for its stand-in directories (tests are not a package here)."""
    spec = importlib.util.spec_from_file_location(f"_fakes_{filename[:-3]}", HERE / filename)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_server_manager_is_a_server_directory_and_control() -> None:
    manager = ServerManager()
    assert isinstance(manager, ServerDirectory)
    assert isinstance(manager, ServerControl)
    directory: ServerControl = manager  # and to a type checker
    assert directory.endpoint("http") is None


def test_the_tab_tests_stand_ins_are_server_directories() -> None:
    chat, http = (_test_module(name) for name in ("test_chat_tab.py", "test_http_tab.py"))
    stand_ins: list[Any] = [
        FakeServerDirectory({}),  # the chat and FTP tab tests' (tests/helpers)
        chat.LaunchedServerManager(None, None),
        http.EndpointOnly(80),
        http.RestartingManager(),
    ]
    for stand_in in stand_ins:
        assert isinstance(stand_in, ServerDirectory), type(stand_in).__name__
    assert isinstance(http.RestartingManager(), ServerControl)


def test_something_with_only_an_endpoint_is_not_a_directory() -> None:
    """Guard: the Protocol check can fail."""

    class EndpointOnly:
        def endpoint(self, protocol: str) -> None:
            return None

    assert not isinstance(EndpointOnly(), ServerDirectory)
    assert not isinstance(object(), ServerControl)
