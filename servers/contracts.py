"""The two handler contracts every concurrency model serves: sans-IO and blocking.

A *protocol* (echo, http, ftp, chat) is written once against one of these
contracts and then runs under every concurrency model of the course:

* sans-IO (the h11 pattern): one :class:`SansIOHandler` per connection. The model
  owns the socket and calls ``feed(data)``; the handler returns the bytes (and
  :class:`FileSlice` pieces, which the model sends with ``os.sendfile``) to write.
  Event-loop models (select, poll, epoll, asyncio, prefork) drive it directly;
  :func:`servers.adapter.blocking_from_sans_io` turns it into a blocking handler
  for the per-connection models (iterative, threads, processes, pool).
* blocking: ``handle(conn, addr)`` owns the socket for the whole connection, like
  the course's ``handle(c)`` functions and ``socketserver``. Only models that give a
  connection its own flow of control can run it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, Union

if TYPE_CHECKING:
    import argparse
    import socket

    from servers.stats import ServerStats


@dataclass(frozen=True, slots=True)
class FileSlice:
    """``count`` bytes of the file at ``path`` from ``offset``: sent with os.sendfile."""

    path: str
    offset: int
    count: int


#: What a sans-IO handler asks the model to write, in order.
Output = Union[bytes, FileSlice]

#: Thread-safe callback a handler may keep to write output *later*, outside
#: ``feed`` (chat broadcasts, a timer firing in another thread).
Push = Callable[[list[Output]], None]

#: Thread-safe callback a handler may keep to be called back: the model soon
#: calls the handler's ``tick(now)`` from the model's own thread, deadline or
#: not. A helper thread that finished work for the handler (an FTP transfer)
#: hands its result over this way, so the handler's state is only ever touched
#: by the model's thread and nobody has to poll for the result.
Wake = Callable[[], None]


class SansIOHandler(Protocol):
    """One connection's protocol state. Never touches a socket.

    The model calls, in order: ``start()`` once, then ``feed(data)`` for every
    chunk received, ``tick(now)`` whenever ``deadline()`` has passed or the
    handler called its peer's ``wake``, ``eof()``
    when the peer half-closed, and finally ``close()`` exactly once. After any
    call, when ``should_close`` is true the model flushes the pending output and
    closes the connection.
    """

    should_close: bool

    def start(self) -> list[Output]:
        """Greeting to send as soon as the connection is accepted (FTP's 220)."""
        ...

    def feed(self, data: bytes) -> list[Output]:
        """Bytes arrived; return what to send in answer (may be empty)."""
        ...

    def eof(self) -> list[Output]:
        """The peer closed its side; return last words (usually nothing)."""
        ...

    def deadline(self) -> float | None:
        """``time.monotonic()`` instant at which ``tick`` must be called, or None."""
        ...

    def tick(self, now: float) -> list[Output]:
        """The deadline passed: time out an idle peer, finish a timed wait..."""
        ...

    def close(self) -> None:
        """The connection is gone (either side). Release resources."""
        ...


class BaseSansIOHandler:
    """Convenience base: no greeting, no timers, nothing to say on EOF."""

    should_close: bool = False

    def start(self) -> list[Output]:
        return []

    def feed(self, data: bytes) -> list[Output]:  # pragma: no cover - abstract
        raise NotImplementedError

    def eof(self) -> list[Output]:
        self.should_close = True
        return []

    def deadline(self) -> float | None:
        return None

    def tick(self, now: float) -> list[Output]:
        return []

    def close(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class Peer:
    """Who is on the other end, and how to reach the connection later."""

    address: tuple
    push: Push
    #: Set by the event-loop models (select, poll, epoll, prefork, asyncio); None
    #: under the blocking adapter, whose thread waits on the socket alone.
    wake: Wake | None = None
    #: This end's address (``getsockname()``): where the client reached the server.
    local_address: tuple | None = None


#: Factory the models call once per accepted connection.
HandlerFactory = Callable[[Peer], SansIOHandler]
#: A blocking handler: owns ``conn`` until the connection is over.
BlockingHandler = Callable[["socket.socket", tuple], None]


@dataclass
class Application:
    """What a protocol hands to a concurrency model.

    Provide ``new_handler`` (sans-IO: runs under every model) or only
    ``handle_blocking`` (runs under iterative, threads, processes, pool).
    ``stats`` is the process's :class:`~servers.stats.ServerStats`; handlers
    count ``stats.requests`` and call ``stats.event(...)`` for the live panel.
    ``control`` receives messages sent from the workbench through the launcher's
    control channel (the chat admin announcement); it runs in a helper thread.
    """

    name: str
    stats: ServerStats
    new_handler: HandlerFactory | None = None
    handle_blocking: BlockingHandler | None = None
    control: Callable[[dict], None] | None = None
    #: Called in the serving process right after the model forks a worker or a
    #: per-connection child (reset caches, reopen files).
    after_fork: Callable[[], None] | None = None
    #: Datagram protocols (UDP chat) serve their bound socket themselves instead
    #: of running under a stream model: ``serve_datagrams(sock)`` returns on stop.
    serve_datagrams: Callable[[socket.socket], None] | None = None
    #: Makes ``serve_datagrams`` return soon, from any thread: a server serving from a
    #: thread of a bigger program (the tab tests) has no SIGTERM of its own.
    stop_datagrams: Callable[[], None] | None = None
    #: Models this application cannot run under, with the reason shown to users.
    unsupported_models: dict[str, str] = field(default_factory=dict)

    @property
    def is_sans_io(self) -> bool:
        return self.new_handler is not None


class ProtocolModule(Protocol):
    """What ``servers/<protocol>/__init__.py`` (or ``servers/echo.py``) exposes.

    ``add_arguments`` adds protocol options to the CLI and launcher (``--root``);
    ``build_application`` makes the :class:`Application` inside the server
    process, from the parsed options.
    """

    NAME: str
    TRANSPORT: str  # "tcp" or "udp"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def build_application(self, options: argparse.Namespace, stats: ServerStats) -> Application: ...


def monotonic() -> float:
    """The clock every deadline is measured on."""
    return time.monotonic()


#: Seconds a connection the server ended stays half-closed, its input read and
#: dropped, before the socket is closed (every model that drives a sans-IO
#: handler). Closing a socket with unread input makes the kernel answer with RST,
#: and an RST can destroy the answer the client has not read yet (RFC 9112 9.6,
#: nginx's lingering close): a request pipelined behind ``Connection: close``, a
#: slow client's bytes crossing its 408, a body too large to read.
LINGER_SECONDS = 2.0
