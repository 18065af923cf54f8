"""Command line of the ``workbench`` console script: the TUI, ``workbench bench`` (load generator), ``workbench serve`` (in a browser)."""

from __future__ import annotations

import argparse
import ipaddress
import sys
from collections.abc import Sequence
from pathlib import Path

from workbench.network import CLASS_PORTS, LOCAL_HOST, RemoteServers
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


def parse_listen_host(text: str) -> str:
    """An IP address of this machine to bind (``0.0.0.0``: every interface)."""
    host = text.strip()
    if host == "localhost":
        return LOCAL_HOST
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an IP address such as 0.0.0.0 (every interface) or 192.168.1.20, got {text!r}"
        ) from None


def parse_connect_host(text: str) -> str:
    """The teacher's machine: an IP address or a host name."""
    host = text.strip()
    if not host or any(character.isspace() for character in host) or host in ("0.0.0.0", "::"):
        raise argparse.ArgumentTypeError(
            f"expected the teacher's address, e.g. 192.168.1.20, got {text!r}"
        )
    return host


def parse_port(text: str) -> int:
    """0-65535; 0 means any free port (when listening)."""
    if not text.strip().isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"a port is a number from 0 to 65535, not {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench",
        description=(
            "Network Workbench: chat, FTP and HTTP servers under every concurrency model, "
            "with a live panel. Use 'workbench bench --help' for the load generator, "
            "'workbench serve --help' to run it in a web browser."
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
    classroom = parser.add_mutually_exclusive_group()
    classroom.add_argument(
        "--listen",
        metavar="HOST",
        type=parse_listen_host,
        help=(
            "bind the default servers to HOST instead of 127.0.0.1: 0.0.0.0 lets a class on the "
            f"LAN join (chat on port {CLASS_PORTS['chat']}, FTP {CLASS_PORTS['ftp']}, HTTP "
            f"{CLASS_PORTS['http']} unless taken); the header shows the addresses and the "
            "command students type"
        ),
    )
    classroom.add_argument(
        "--connect",
        metavar="HOST",
        type=parse_connect_host,
        help="a student's workbench: start no servers, point every tab at the teacher's at HOST",
    )
    for protocol, default in CLASS_PORTS.items():
        parser.add_argument(
            f"--{protocol}-port",
            metavar="PORT",
            type=parse_port,
            help=(
                f"port of the {protocol} server: where it listens (default: any free port, or "
                f"{default} with --listen), or where --connect finds it (default {default})"
            ),
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
    if arguments and arguments[0] == "serve":
        from workbench.web import serve_main

        return serve_main(arguments[1:])
    parser = build_parser()
    options = parser.parse_args(arguments)
    asked_ports = {
        protocol: port
        for protocol in CLASS_PORTS
        if (port := getattr(options, f"{protocol}_port")) is not None
    }
    remote = None
    ports = dict(asked_ports)
    if options.connect is not None:
        if 0 in asked_ports.values():
            parser.error("with --connect, give the teacher's real ports (0 means any free one)")
        remote = RemoteServers(options.connect, {**CLASS_PORTS, **asked_ports})
    elif options.listen is not None and options.listen != LOCAL_HOST:
        # Fixed ports when a class joins, so students need only the teacher's address.
        ports = {**CLASS_PORTS, **asked_ports}

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
        bind_host=options.listen or LOCAL_HOST,
        ports=ports,
        remote=remote,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
