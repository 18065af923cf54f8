"""``workbench serve``: the app in a web browser through textual-serve (a projector, or a student's laptop)."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from typing import Any

from workbench.network import host_port, is_loopback, is_wildcard, lan_addresses

DEFAULT_WEB_PORT = 8000

EPILOG = """\
Each browser tab that opens the page gets its own workbench, run on this machine
for as long as the tab stays open: a new process with its own servers (unless the
app options say --connect or --no-servers), fully interactive, not a mirror of one
shared screen. Anything after the serve options (or after --) is passed to each
session's workbench, e.g. 'workbench serve --host 0.0.0.0 -- --connect 127.0.0.1'
to point every browser session at the servers of a 'workbench --listen 0.0.0.0'.
"""


def build_serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench serve",
        description="Serve the workbench to web browsers (textual-serve): open the URL it prints.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on; 0.0.0.0 lets other machines' browsers in (default: 127.0.0.1)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_WEB_PORT,
        help=f"TCP port of the web page (default: {DEFAULT_WEB_PORT})",
    )
    return parser


def session_command(app_arguments: Sequence[str]) -> str:
    """The shell command textual-serve runs for each browser session: this Python, this workbench."""
    return shlex.join([sys.executable, "-m", "workbench", *app_arguments])


def page_urls(host: str, port: int) -> list[str]:
    """The URLs to open: every LAN address for a wildcard bind, else the bound address."""
    hosts = lan_addresses(host) if is_wildcard(host) else [host]
    if is_wildcard(host):
        hosts.insert(0, "127.0.0.1")
    return [f"http://{host_port(each, port)}/" for each in hosts]


def _web_server_class() -> Any:
    """textual-serve's Server, adjusted to answer on whatever address the browser used."""
    from textual_serve.server import Server

    class WorkbenchWebServer(Server):
        """Pages whose websocket address is the one the browser typed.

        textual-serve writes ``public_url`` (fixed at start) into the page, so a server
        bound to 0.0.0.0 would send browsers to ``ws://0.0.0.0:…``: the projector's
        ``localhost`` and a student's ``192.168.1.20`` each need their own.
        """

        def __init__(self, command: str, host: str, port: int) -> None:
            super().__init__(command, host=host, port=port, title="Network Workbench")
            self.urls = page_urls(host, port)
            self.open_sockets: set[Any] = set()

        async def _process_messages(self, websocket: Any, app_service: Any) -> None:
            self.open_sockets.add(websocket)
            try:
                await super()._process_messages(websocket, app_service)
            finally:
                self.open_sockets.discard(websocket)

        async def on_shutdown(self, app: Any) -> None:
            # aiohttp waits for open handlers before exiting: closing each session's socket
            # ends its message loop, and textual-serve then tells that workbench to quit.
            from aiohttp import WSCloseCode

            for websocket in list(self.open_sockets):
                await websocket.close(code=WSCloseCode.GOING_AWAY, message=b"server stopping")

        async def handle_index(self, request: Any) -> Any:
            # Nothing awaits between this and the template reading it: no other request interleaves.
            self.public_url = f"{request.scheme}://{request.host}"
            return await super().handle_index(request)

        async def on_startup(self, app: Any) -> None:
            self.console.print(
                "Network Workbench in a browser — open (add ?fontsize=24 for a projector):",
                highlight=False,
            )
            for url in self.urls:
                self.console.print(f"  {url}", highlight=False)
            self.console.print(
                "Each browser tab runs its own workbench on this machine. Ctrl+C stops.",
                highlight=False,
            )
            if not is_loopback(self.host):
                self.console.print(
                    "Anyone who can open this page gets a full workbench running as you on "
                    "this machine (its FTP tab browses your files): serve to a network you trust.",
                    style="bold",
                    highlight=False,
                )

    return WorkbenchWebServer


def serve_main(argv: Sequence[str]) -> int:
    """``workbench serve [--host H] [--port P] [APP OPTIONS]``: serve until Ctrl+C or SIGTERM."""
    parser = build_serve_parser()
    options, app_arguments = parser.parse_known_args(argv)
    if app_arguments[:1] == ["--"]:
        app_arguments = app_arguments[1:]
    if not 0 < options.port < 65536:
        parser.error(f"--port must be from 1 to 65535, not {options.port}")
    from workbench.__main__ import build_parser

    # Wrong app options fail here, once, not in every browser session.
    build_parser().parse_args(app_arguments)
    server = _web_server_class()(session_command(app_arguments), options.host, options.port)
    try:
        server.serve()
    except OSError as error:
        print(
            f"workbench serve: cannot listen on {options.host}:{options.port}: {error}",
            file=sys.stderr,
        )
        return 2
    return 0
