"""The echo protocol: every byte received is sent straight back (the first exhibit and every model's test subject).

``--mode bytes`` echoes whatever arrives as it arrives; ``--mode lines`` echoes
complete lines only, which makes the framing of a byte stream visible: the
course's 粘包 (several messages in one recv, or one message split over many).
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Callable

from servers.contracts import Application, BaseSansIOHandler, Output, Peer, Push, monotonic
from servers.stats import ServerStats

NAME = "echo"
TRANSPORT = "tcp"
#: A line longer than this without a newline is refused (and the connection closed).
MAX_LINE = 65536


class ByteEcho(BaseSansIOHandler):
    """Echo every chunk back unchanged; optionally hang up on a peer idle too long."""

    def __init__(
        self,
        stats: ServerStats,
        idle_timeout: float | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.stats = stats
        self.idle_timeout = idle_timeout
        self.on_close = on_close
        self.last_heard = monotonic()

    def close(self) -> None:
        if self.on_close is not None:
            self.on_close()

    def deadline(self) -> float | None:
        return None if self.idle_timeout is None else self.last_heard + self.idle_timeout

    def tick(self, now: float) -> list[Output]:
        if self.idle_timeout is not None and now >= self.last_heard + self.idle_timeout:
            self.should_close = True
            return [b"bye: idle timeout\n"]
        return []

    def feed(self, data: bytes) -> list[Output]:
        self.last_heard = monotonic()
        self.stats.count_request()
        return [data]


class LineEcho(ByteEcho):
    """Echo complete lines, holding back a partial one until its newline arrives."""

    #: The start of a line whose newline has not come yet (set per connection once it has).
    partial = b""

    def feed(self, data: bytes) -> list[Output]:
        self.last_heard = monotonic()
        buffer = self.partial + data
        complete, newline, self.partial = buffer.rpartition(b"\n")
        if len(self.partial) > MAX_LINE:
            self.should_close = True
            self.stats.count_error("line too long")
            return [b"ERR line too long\n"]
        if not newline:
            return []
        lines = complete.count(b"\n") + 1
        for _ in range(lines):
            self.stats.count_request()
        return [complete + newline]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mode",
        choices=("bytes", "lines"),
        default="bytes",
        help="echo each chunk as it arrives, or whole lines only (default: bytes)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=None,
        help="hang up on a client silent for this many seconds (default: never)",
    )


def build_application(options: argparse.Namespace, stats: ServerStats) -> Application:
    handler_class = LineEcho if options.mode == "lines" else ByteEcho
    # Pushes of every live connection in *this* process: under the multi-process
    # models each connection lives in a child, so an announcement reaches nobody.
    listeners: dict[object, Push] = {}
    lock = threading.Lock()

    def new_handler(peer: Peer) -> BaseSansIOHandler:
        key = object()

        def forget() -> None:
            with lock:
                listeners.pop(key, None)

        with lock:
            listeners[key] = peer.push
        return handler_class(stats, options.idle_timeout, forget)

    def control(message: dict) -> None:
        """``{"type": "announce", "text": ...}`` is written to every connected client."""
        if message.get("type") == "announce":
            line = f"announce: {message.get('text', '')}\n".encode()
            with lock:
                pushes = list(listeners.values())
            for push in pushes:
                push([line])

    return Application(name=NAME, stats=stats, new_handler=new_handler, control=control)
