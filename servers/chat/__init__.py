"""Group chat server (course exercise 2.2.5 群聊聊天室): a UDP room, or the same protocol over TCP lines.

``python -m servers chat [--transport udp|tcp] [--drop RATE] [--timeout S] [--rate-limit N]``.
The room logic is the pure :mod:`servers.chat.room`; :mod:`servers.chat.udp`
serves it on one datagram socket, :mod:`servers.chat.tcp` as a sans-IO line
handler under the stream models. The admin speaks through ``control``: the
workbench's launcher channel, or standard-input lines when run from the CLI.
Protocol: docs/chat-protocol.md.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from servers.arguments import number, positive_seconds

if TYPE_CHECKING:
    from servers.contracts import Application
    from servers.stats import ServerStats

NAME = "chat"
#: Default transport; ``--transport tcp`` switches to the stream models.
TRANSPORT = "udp"
TRANSPORTS = ("udp", "tcp")
#: What the live panel calls the one loop that serves the UDP room (not a stream model).
DATAGRAM_MODEL = "datagram"
#: Why the stream models do not apply to the UDP room.
UDP_REASON = "UDP has no connections: one datagram loop (recvfrom, sendto) serves the whole room"


def unsupported_models(transport: str) -> dict[str, str]:
    """The stream models chat cannot run under over ``transport``, each with the reason."""
    from servers.registry import MODELS, MULTIPROCESS_MODELS

    if transport == "udp":
        return dict.fromkeys(MODELS, UDP_REASON)
    from servers.chat.tcp import MULTIPROCESS_REASON

    return {model: MULTIPROCESS_REASON.format(model=model) for model in sorted(MULTIPROCESS_MODELS)}


def _drop_rate(text: str) -> float:
    value = number(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"a drop rate is a fraction in [0, 1), got {value:g}")
    return value


def _rate(text: str) -> float:
    value = number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"messages per second cannot be negative, got {value:g}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The chat server's own options (all with defaults)."""
    from servers.chat.room import DEFAULT_MAX_MEMBERS, DEFAULT_RATE_LIMIT, DEFAULT_TIMEOUT

    group = parser.add_argument_group("chat")
    group.add_argument(
        "--transport",
        choices=TRANSPORTS,
        default=TRANSPORT,
        help="udp: one datagram per message (default); tcp: one line per message, under --model",
    )
    group.add_argument(
        "--drop",
        type=_drop_rate,
        default=0.0,
        metavar="RATE",
        help="UDP only: drop this fraction of room datagrams (0.1 = 10%%) so clients count losses",
    )
    group.add_argument(
        "--drop-seed",
        type=int,
        default=None,
        metavar="N",
        help="seed of the drop knob's random choices (reproducible losses)",
    )
    group.add_argument(
        "--timeout",
        type=positive_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"drop a member silent this long (clients PING; default {DEFAULT_TIMEOUT:g})",
    )
    group.add_argument(
        "--rate-limit",
        type=_rate,
        default=DEFAULT_RATE_LIMIT,
        metavar="N",
        help=f"messages per second per member, bursts of 2N; 0 = unlimited (default {DEFAULT_RATE_LIMIT:g})",
    )
    group.add_argument(
        "--max-members",
        type=int,
        default=DEFAULT_MAX_MEMBERS,
        metavar="N",
        help=f"room size; LOGIN beyond it gets ERR room-full (default {DEFAULT_MAX_MEMBERS})",
    )


def build_application(options: argparse.Namespace, stats: ServerStats) -> Application:
    """The chat Application for ``options.transport``: serve_datagrams (UDP) or new_handler (TCP)."""
    from servers.chat.room import (
        DEFAULT_MAX_MEMBERS,
        DEFAULT_RATE_LIMIT,
        DEFAULT_TIMEOUT,
        ChatRoom,
    )
    from servers.contracts import Application

    transport = getattr(options, "transport", None) or TRANSPORT
    if transport not in TRANSPORTS:
        raise ValueError(f"unknown chat transport {transport!r} (choose udp or tcp)")
    # The launcher sets options without argparse (from the workbench's form): check again.
    drop = _number(options, "drop", 0.0)
    if drop and transport == "tcp":
        raise ValueError(
            "--drop only applies to --transport udp: TCP retransmits lost segments, "
            "so a TCP chat never loses a message"
        )
    rate_limit = _number(options, "rate_limit", DEFAULT_RATE_LIMIT)
    if rate_limit < 0:
        raise ValueError(f"--rate-limit cannot be negative, got {rate_limit:g}")
    max_members = int(_number(options, "max_members", DEFAULT_MAX_MEMBERS))
    if max_members < 1:
        raise ValueError(f"--max-members must be at least 1, got {max_members}")
    seed = getattr(options, "drop_seed", None)
    room = ChatRoom(
        timeout=_number(options, "timeout", DEFAULT_TIMEOUT),
        rate_limit=rate_limit,
        max_members=max_members,
        drop_rate=drop,
        seed=None if seed is None else int(_number(options, "drop_seed", 0)),
        stats=stats,
        count_connections=transport == "udp",
    )
    if transport == "udp":
        from servers.chat.udp import DatagramChatServer

        server = DatagramChatServer(room, stats)
        announce = server.announce
        app = Application(name=NAME, stats=stats, serve_datagrams=server.serve)
    else:
        from servers.chat.tcp import ChatHub

        hub = ChatHub(room, stats)
        announce = hub.announce
        app = Application(
            name=NAME,
            stats=stats,
            new_handler=hub.new_handler,
            unsupported_models=unsupported_models("tcp"),
        )
    # The CLI turns each standard-input line into the same announce message
    # (servers/__main__.py), so the terminal and the workbench share this path.
    app.control = _control_handler(announce, stats)
    return app


def _number(options: argparse.Namespace, name: str, default: float) -> float:
    value = getattr(options, name, None)
    if value is None or value == "":
        return float(default)
    try:
        return float(value)
    except (TypeError, ValueError):
        flag = "--" + name.replace("_", "-")
        raise ValueError(f"{flag} needs a number, not {value!r}") from None


def _control_handler(announce, stats: ServerStats):
    def control(message: dict) -> None:
        """Messages from the workbench: ``{"type": "announce", "text": ...}``."""
        kind = message.get("type") if isinstance(message, dict) else None
        if kind != "announce":
            stats.count_error(f"chat control: unknown message {message!r:.80}")
            return
        text = message.get("text")
        if not isinstance(text, str):
            stats.count_error("chat control: announce needs a text string")
            return
        try:
            announce(text)
        except ValueError as error:
            stats.count_error(f"announcement refused: {error}")

    return control
