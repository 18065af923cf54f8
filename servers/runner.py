"""Runs one server in the current process: options, bind, signals, stats reporting, the chosen model."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from servers import registry
from servers.contracts import Application
from servers.fdlimit import set_open_file_limit
from servers.signals import HelperThread, hear_stop, listen_for_stop
from servers.stats import ServerStats

LISTEN_BACKLOG = 4096


class ServerShutdown(BaseException):
    """Raised in the main thread by SIGTERM/SIGINT: unwinds the model's loop through its cleanup."""


class ConfigError(Exception):
    """A one-line user error: unknown model, port in use, unsupported combination."""


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default="threads", help=f"concurrency model: {', '.join(registry.MODELS)}"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind; 0 picks a free one")
    parser.add_argument(
        "--workers", type=int, default=None, help="pool / prefork size (default: 4 / one per core)"
    )
    parser.add_argument(
        "--no-reuse-address",
        action="store_true",
        help="leave SO_REUSEADDR off: binding then fails while TIME_WAIT sockets hold the port",
    )
    parser.add_argument(
        "--max-open-files",
        type=int,
        default=None,
        metavar="N",
        help="soft open-file limit (RLIMIT_NOFILE) to run with; each connection needs one "
        "(default: raised to the hard limit, so select reaches its 1024 wall and poll/epoll pass it)",
    )


def protocol_parser(protocol: str, prog: str | None = None) -> argparse.ArgumentParser:
    """The full option parser for one protocol: common options plus the protocol's own."""
    module = registry.load_protocol(protocol)
    parser = argparse.ArgumentParser(
        prog=prog or f"python -m servers {protocol}",
        description=(module.__doc__ or "").strip().splitlines()[0],
    )
    add_common_arguments(parser)
    module.add_arguments(parser)
    return parser


def options_for(protocol: str, overrides: dict[str, Any] | None = None) -> argparse.Namespace:
    """Default options of ``protocol`` with ``overrides`` applied (the launcher's way in).

    Values typed as text (from a form) go through the option's own ``type``
    and ``choices``, exactly as on the command line; a bad one is a ConfigError.
    """
    parser = protocol_parser(protocol)
    options = parser.parse_args([])
    actions = {action.dest: action for action in parser._actions}
    for key, value in (overrides or {}).items():
        dest = key.replace("-", "_")
        action = actions.get(dest)
        if action is None:
            raise ConfigError(f"{protocol} has no option {key!r}")
        if isinstance(value, str) and action.type is not None and value != action.default:
            try:
                value = action.type(value)
            except (TypeError, ValueError, argparse.ArgumentTypeError) as error:
                raise ConfigError(
                    f"--{dest.replace('_', '-')}: invalid value {value!r} ({error})"
                ) from None
        if action.choices is not None and value not in action.choices and value is not None:
            choices = ", ".join(map(str, action.choices))
            raise ConfigError(f"--{dest.replace('_', '-')}: {value!r} is not one of {choices}")
        setattr(options, dest, value)
    return options


@dataclass
class PreparedServer:
    """A server whose socket is bound and whose application is built, not yet serving."""

    protocol: str
    model: str
    transport: str
    app: Application
    stats: ServerStats
    sock: socket.socket
    model_module: ModuleType | None
    workers: int | None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()[:2]
        return host, port

    def serve(self, on_ready: Callable[[], None] | None = None) -> None:
        """Serve until SIGTERM/SIGINT, reporting stats all along; always cleans up.

        ``on_ready`` runs once the stop signals are handled, so whoever hears
        "ready" may stop the server at once and still get a clean exit.
        """
        listen_for_stop()
        previous = {
            signum: signal.signal(signum, _raise_shutdown)
            for signum in (signal.SIGTERM, signal.SIGINT)
        }
        self.stats.start_reporting()
        self.stats.report_now()
        try:
            if on_ready is not None:
                on_ready()
            self.run_loop()
        except ServerShutdown:
            pass
        finally:
            # A second signal during cleanup must not cut the cleanup short.
            for signum in previous:
                signal.signal(signum, signal.SIG_IGN)
            try:
                self.sock.close()
            finally:
                self.stats.stop_reporting()
                for signum, handler in previous.items():
                    signal.signal(signum, handler)

    def run_loop(self) -> None:
        """The serving loop alone: the model's (TCP) or the protocol's own (UDP), until it ends.

        ``serve`` wraps it in the stop signals and the stats reporter; a server run from a
        thread of a bigger program (the workbench's tab tests) calls it directly.
        """
        if self.transport == "udp":
            assert self.app.serve_datagrams is not None
            self.app.serve_datagrams(self.sock)
        else:
            self.model_module.serve(self.sock, self.app, self.workers)


def _raise_shutdown(signum: int, frame: Any) -> None:
    # Only the first stop signal unwinds; a repeat (see stop_main_thread) must
    # not cut short the cleanup the first one started.
    if hear_stop():
        raise ServerShutdown(signum)


def prepare(
    protocol: str,
    model: str,
    options: argparse.Namespace,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    workers: int | None = None,
    server_id: str | None = None,
    queue: Any = None,
) -> PreparedServer:
    """Build the application and bind its socket; raises ConfigError with a one-line reason."""
    try:
        module = registry.load_protocol(protocol)
    except registry.UnknownName as error:
        raise ConfigError(str(error)) from None
    transport = getattr(options, "transport", None) or module.TRANSPORT
    model_module = None
    if transport == "tcp":
        try:
            model_module = registry.load_model(model)
        except registry.UnknownName as error:
            raise ConfigError(str(error)) from None
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be at least 1, not {workers}")
    try:
        max_open_files = set_open_file_limit(_optional_int(options, "max_open_files"))
    except ValueError as error:
        raise ConfigError(str(error)) from None
    stats = ServerStats(server_id or protocol, protocol, model, queue)
    stats.max_open_files = max_open_files
    stats.transport = transport
    try:
        app = module.build_application(options, stats)
    except (OSError, ValueError) as error:
        raise ConfigError(f"{protocol}: {error}") from None
    if transport == "udp" and app.serve_datagrams is None:
        raise ConfigError(f"{protocol} has no datagram server")
    if transport == "tcp":
        if model in app.unsupported_models:
            raise ConfigError(
                f"{protocol} cannot run under {model}: {app.unsupported_models[model]}"
            )
        if not app.is_sans_io and model not in registry.BLOCKING_MODELS:
            raise ConfigError(
                f"{protocol} has only a blocking handler; run it under one of "
                f"{', '.join(sorted(registry.BLOCKING_MODELS))}"
            )
    sock = bind_socket(
        host,
        port,
        transport,
        reuse_port=(model == "prefork"),
        reuse_address=not getattr(options, "no_reuse_address", False),
    )
    stats.host, stats.port = sock.getsockname()[:2]
    stats.model = model if transport == "tcp" else "datagram"
    return PreparedServer(protocol, model, transport, app, stats, sock, model_module, workers)


def _optional_int(options: argparse.Namespace, name: str) -> int | None:
    value = getattr(options, name, None)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"--{name.replace('_', '-')} needs a whole number, not {value!r}"
        ) from None


def bind_socket(
    host: str,
    port: int,
    transport: str,
    reuse_port: bool = False,
    reuse_address: bool = True,
) -> socket.socket:
    """A listening TCP socket or a bound UDP socket; ConfigError when that is impossible.

    ``reuse_address=False`` leaves SO_REUSEADDR off (``create_server`` always sets
    it), so the bind fails with EADDRINUSE while TIME_WAIT sockets hold the port.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        if transport == "udp":
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.bind((host, port))
            except OSError:
                sock.close()
                raise
            return sock
        if reuse_address:
            return socket.create_server(
                (host, port), family=family, backlog=LISTEN_BACKLOG, reuse_port=reuse_port
            )
        return _listen_without_reuse_address(family, host, port, reuse_port)
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)
        raise ConfigError(
            f"cannot listen on {host}:{port} ({transport}): {reason.lower()}"
        ) from None


def _listen_without_reuse_address(
    family: int, host: str, port: int, reuse_port: bool
) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def start_control_thread(
    app: Application, receive, on_closed: Callable[[], None] | None = None
) -> threading.Thread | None:
    """Feed messages from ``receive()`` (blocking; EOFError/OSError ends it) to ``app.control``.

    ``on_closed`` runs when the channel ends with EOF or an error (the other side
    has gone); without it, and without ``app.control``, no thread is started.
    """
    if app.control is None and on_closed is None:
        return None

    def pump() -> None:
        while True:
            try:
                message = receive()
            except (EOFError, OSError):
                if on_closed is not None:
                    on_closed()
                return
            if message is None:
                return
            if app.control is None:
                continue
            try:
                app.control(message)
            except Exception as error:  # a bad announcement must not kill the server
                app.stats.count_error(f"control message failed: {error}")

    thread = HelperThread(target=pump, name="control", daemon=True)
    thread.start()
    return thread
