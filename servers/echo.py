"""The echo protocol: every byte received is sent straight back (the first exhibit and every model's test subject).

``--mode bytes`` echoes whatever arrives as it arrives; ``--mode lines`` echoes
complete lines only, which makes the framing of a byte stream visible: the
course's 粘包 (several messages in one recv, or one message split over many).
"""

from __future__ import annotations

import argparse

from servers.contracts import Application, BaseSansIOHandler, Output, Peer
from servers.stats import ServerStats

NAME = "echo"
TRANSPORT = "tcp"
#: A line longer than this without a newline is refused (and the connection closed).
MAX_LINE = 65536


class ByteEcho(BaseSansIOHandler):
    """Echo every chunk back unchanged."""

    def __init__(self, stats: ServerStats) -> None:
        self.stats = stats

    def feed(self, data: bytes) -> list[Output]:
        self.stats.count_request()
        return [data]


class LineEcho(BaseSansIOHandler):
    """Echo complete lines, holding back a partial one until its newline arrives."""

    def __init__(self, stats: ServerStats) -> None:
        self.stats = stats
        self.partial = b""

    def feed(self, data: bytes) -> list[Output]:
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


def build_application(options: argparse.Namespace, stats: ServerStats) -> Application:
    handler_class = LineEcho if options.mode == "lines" else ByteEcho

    def new_handler(peer: Peer) -> BaseSansIOHandler:
        return handler_class(stats)

    return Application(name=NAME, stats=stats, new_handler=new_handler)
