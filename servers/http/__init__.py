"""The HTTP/1.1 web server (course section 4, web服务): static files and a small /api/, under every model.

``python -m servers http --model epoll --root DIR`` serves DIR (by default the
bundled sample site). The protocol is sans-IO (:mod:`servers.http.parser`,
:mod:`servers.http.handler`), so every concurrency model can run it. This module
stays light: the protocol code is imported only when a server is built.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from servers.arguments import positive_seconds

if TYPE_CHECKING:
    from servers.contracts import Application
    from servers.stats import ServerStats

NAME = "http"
TRANSPORT = "tcp"

#: The sample site shipped with the package (explains the workbench).
DEFAULT_ROOT = str(Path(__file__).resolve().parent.parent / "data" / "site")
DEFAULT_MAX_BODY = 1024 * 1024
DEFAULT_KEEPALIVE_TIMEOUT = 15.0
DEFAULT_HEADER_TIMEOUT = 10.0

_SIZE_SUFFIXES = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(text: str) -> int:
    """A byte count such as ``1048576``, ``512k`` or ``1M``."""
    cleaned = text.strip().lower().removesuffix("b").removesuffix("i")
    number, suffix = cleaned, ""
    if cleaned and cleaned[-1] in _SIZE_SUFFIXES:
        number, suffix = cleaned[:-1], cleaned[-1]
    try:
        value = int(number) * _SIZE_SUFFIXES[suffix]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a size: {text!r} (try 1048576, 512k or 1M)"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError("a size cannot be negative")
    return value


def _directory(text: str) -> str:
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"not a directory: {text!r}")
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--root",
        type=_directory,
        default=DEFAULT_ROOT,
        help="directory to serve (default: the bundled sample site)",
    )
    parser.add_argument(
        "--max-body",
        type=parse_size,
        default=DEFAULT_MAX_BODY,
        help="largest request body accepted, e.g. 1M (default: 1 MiB; larger gets 413)",
    )
    parser.add_argument(
        "--keepalive-timeout",
        type=positive_seconds,
        default=DEFAULT_KEEPALIVE_TIMEOUT,
        help="seconds an idle keep-alive connection is kept open (default: 15)",
    )
    parser.add_argument(
        "--header-timeout",
        type=positive_seconds,
        default=DEFAULT_HEADER_TIMEOUT,
        help="seconds a client has to send a complete request head; later: 408 (default: 10)",
    )


def build_application(options: argparse.Namespace, stats: ServerStats) -> Application:
    """Build the HTTP application inside the server process."""
    from servers.contracts import Application
    from servers.http.handler import HttpConfig, HttpService

    max_body = getattr(options, "max_body", DEFAULT_MAX_BODY)
    config = HttpConfig(
        root=str(getattr(options, "root", None) or DEFAULT_ROOT),
        max_body=parse_size(max_body) if isinstance(max_body, str) else int(max_body),
        keepalive_timeout=float(getattr(options, "keepalive_timeout", DEFAULT_KEEPALIVE_TIMEOUT)),
        header_timeout=float(getattr(options, "header_timeout", DEFAULT_HEADER_TIMEOUT)),
    )
    service = HttpService(config, stats)
    return Application(
        name=NAME,
        stats=stats,
        new_handler=service.new_handler,
        after_fork=service.after_fork,
    )
