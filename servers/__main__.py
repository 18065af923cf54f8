"""Command line: run one server in the foreground (`python -m servers PROTOCOL --model MODEL ...`)."""

from __future__ import annotations

import sys

from servers import registry
from servers.runner import ConfigError, prepare, protocol_parser, start_control_thread

USAGE = (
    "usage: python -m servers PROTOCOL [--model MODEL] [--host HOST] [--port PORT] "
    "[--workers N] [protocol options]\n"
    f"protocols: {', '.join(registry.PROTOCOLS)}\n"
    f"models: {', '.join(registry.MODELS)}"
)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    protocol, rest = argv[0], argv[1:]
    if protocol not in registry.PROTOCOLS:
        print(
            f"error: unknown protocol {protocol!r} (choose from {', '.join(registry.PROTOCOLS)})",
            file=sys.stderr,
        )
        return 2
    try:
        parser = protocol_parser(protocol)
    except ImportError as error:
        print(f"error: protocol {protocol!r} is not available: {error}", file=sys.stderr)
        return 2
    options = parser.parse_args(rest)  # argparse exits with status 2 on bad options
    try:
        server = prepare(
            protocol,
            options.model,
            options,
            host=options.host,
            port=options.port,
            workers=options.workers,
        )
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    host, port = server.address
    shown_host = f"[{host}]" if ":" in host else host
    model = options.model if server.transport == "tcp" else "datagram"

    def announce_ready() -> None:
        print(f"listening on {shown_host}:{port} ({protocol}, {model})", flush=True)
        # On the command line, lines typed on standard input are the admin's announcements.
        if server.app.control is not None and sys.stdin is not None and not sys.stdin.closed:
            start_control_thread(server.app, lambda: _announcement_from(sys.stdin))

    server.serve(on_ready=announce_ready)
    return 0


def _announcement_from(stream) -> dict | None:
    while True:
        line = stream.readline()
        if not line:
            return None
        text = line.strip()
        if text:
            return {"type": "announce", "text": text}


if __name__ == "__main__":
    sys.exit(main())
