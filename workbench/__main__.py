"""Command line of the ``workbench`` console script: run the TUI, or ``workbench bench ...`` for the load generator."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from workbench.server_manager import DEFAULT_PROTOCOLS


def parse_model_choice(text: str) -> tuple[str, str]:
    """``http=epoll`` -> ``("http", "epoll")``; argparse turns ValueError into a usage error."""
    protocol, separator, model = text.partition("=")
    protocol, model = protocol.strip().lower(), model.strip().lower()
    if not separator or not protocol or not model:
        raise argparse.ArgumentTypeError(f"expected PROTOCOL=MODEL (e.g. http=epoll), got {text!r}")
    if protocol not in DEFAULT_PROTOCOLS:
        raise argparse.ArgumentTypeError(
            f"unknown protocol {protocol!r}: choose from {', '.join(DEFAULT_PROTOCOLS)}"
        )
    try:
        from servers.registry import MODELS
    except ImportError:
        return protocol, model
    if model not in MODELS:
        raise argparse.ArgumentTypeError(
            f"unknown model {model!r}: choose from {', '.join(MODELS)}"
        )
    return protocol, model


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench",
        description=(
            "Network Workbench: chat, FTP and HTTP servers under every concurrency model, "
            "with a live panel. Use 'workbench bench --help' for the load generator."
        ),
    )
    parser.add_argument(
        "--no-servers",
        action="store_true",
        help="do not start the chat, FTP and HTTP servers (start them from the Servers tab)",
    )
    parser.add_argument(
        "--data",
        metavar="DIR",
        type=Path,
        help="data folder served by FTP (library/) and HTTP (site/); default: your user data folder",
    )
    parser.add_argument(
        "--model",
        metavar="PROTOCOL=MODEL",
        action="append",
        type=parse_model_choice,
        default=[],
        help="concurrency model of a default server, e.g. --model http=epoll (repeatable)",
    )
    parser.add_argument(
        "--theme",
        default="dark",
        help="light, dark or contrast (high contrast, for projectors); default: dark",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``workbench`` console script."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and arguments[0] == "bench":
        # Imported only here: the load generator is UI-free and need not load the app.
        from workbench.clients.loadgen import cli_main

        return int(cli_main(arguments[1:]) or 0)
    options = build_parser().parse_args(arguments)

    from workbench.app import run_app
    from workbench.data import ensure_data_dir

    try:
        data_dir = ensure_data_dir(options.data)
    except OSError as error:
        print(f"workbench: cannot prepare the data folder: {error}", file=sys.stderr)
        return 2
    run_app(
        data_dir=data_dir,
        start_servers=not options.no_servers,
        models=dict(options.model),
        theme_name=options.theme,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
