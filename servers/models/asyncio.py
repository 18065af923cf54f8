"""Model `asyncio`: coroutines on one event loop (beyond the course: 协程).

The same single-threaded readiness loop as epoll, hidden behind ``await``: each
connection reads like the blocking ``handle(c)`` of the course, yet a thousand
of them share one thread. Timers are ``wait_for`` timeouts; file slices go out
through ``loop.sendfile`` (``os.sendfile`` underneath).
"""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
from typing import Any

from servers.contracts import LINGER_SECONDS, Application, FileSlice, Output, Peer, monotonic
from servers.fdlimit import OUT_OF_DESCRIPTORS
from servers.signals import hear_stop

RECV_SIZE = 65536


async def _send(writer: asyncio.StreamWriter, items: list[Output], app: Application) -> None:
    loop = asyncio.get_running_loop()
    for item in items:
        if isinstance(item, FileSlice):
            await writer.drain()
            with open(item.path, "rb") as file:
                sent = await loop.sendfile(writer.transport, file, item.offset, item.count)
            app.stats.add_bytes(sent=sent)
        else:
            writer.write(item)
            app.stats.add_bytes(sent=len(item))
    await writer.drain()


def _write_pushed(writer: asyncio.StreamWriter, items: list[Output], app: Application) -> None:
    # Pushed output (a broadcast) is small: file slices are read, not sent with sendfile.
    for item in items:
        if isinstance(item, FileSlice):
            with open(item.path, "rb") as file:
                file.seek(item.offset)
                item = file.read(item.count)
        if not writer.is_closing():
            writer.write(item)
            app.stats.add_bytes(sent=len(item))


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Half-close and drop the peer's input until EOF or LINGER_SECONDS (see servers.contracts)."""
    await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()
    try:
        async with asyncio.timeout(LINGER_SECONDS):
            while await reader.read(RECV_SIZE):
                pass
    except TimeoutError:
        pass


async def _serve_connection(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, app: Application
) -> None:
    loop = asyncio.get_running_loop()
    loop_thread = threading.get_ident()
    address = writer.get_extra_info("peername")
    app.stats.connection_opened(address)

    def push(items: list[Output]) -> None:
        if threading.get_ident() == loop_thread:
            _write_pushed(writer, items, app)
        else:
            loop.call_soon_threadsafe(_write_pushed, writer, items, app)

    task = asyncio.current_task()
    # woken: the handler asked for a tick; reading: parked in read, so the wake
    # cancels that wait (StreamReader keeps what it has buffered) instead of
    # the connection paying for a second awaitable on every read.
    state = {"woken": False, "reading": False}

    def on_wake() -> None:
        state["woken"] = True
        if state["reading"]:
            task.cancel()

    def wake() -> None:
        loop.call_soon_threadsafe(on_wake)

    sockname = writer.get_extra_info("sockname")
    handler = app.new_handler(Peer(address, push, wake, sockname))
    peer_closed = False
    try:
        await _send(writer, handler.start(), app)
        while not handler.should_close:
            if state["woken"]:
                state["woken"] = False
                await _send(writer, handler.tick(monotonic()), app)
                continue
            deadline = handler.deadline()
            timeout = None if deadline is None else max(0.0, deadline - monotonic())
            state["reading"] = True
            try:
                data = await asyncio.wait_for(reader.read(RECV_SIZE), timeout)
            except TimeoutError:
                await _send(writer, handler.tick(monotonic()), app)
                continue
            except asyncio.CancelledError:
                # Only our own wake is swallowed: a stop's cancellation goes on up.
                if not state["woken"] or task.uncancel() > 0:
                    raise
                continue
            finally:
                state["reading"] = False
            if state["woken"] and task.cancelling():
                # wait_for returned data that was ready despite the wake's cancel:
                # take the cancel back, the tick comes next round.
                task.uncancel()
            if not data:
                peer_closed = True
                await _send(writer, handler.eof(), app)
                break
            app.stats.add_bytes(received=len(data))
            await _send(writer, handler.feed(data), app)
        if not peer_closed:
            await _linger(reader, writer)
    except (ConnectionError, OSError):
        pass  # the peer went away: nothing left to do
    except Exception as error:  # a handler bug must not take the loop down
        app.stats.count_error(f"{type(error).__name__}: {error}")
    finally:
        handler.close()
        writer.close()
        app.stats.connection_closed(address)


_last_shortage_report = [float("-inf")]


def _report_loop_trouble(
    loop: asyncio.AbstractEventLoop, context: dict[str, Any], app: Application
) -> None:
    """Out of descriptors, asyncio stops accepting for a second by itself (no spin): say so on the panel."""
    error = context.get("exception")
    if isinstance(error, OSError) and error.errno in OUT_OF_DESCRIPTORS:
        # asyncio calls this for each of up to 100 failed accepts in a row: one error per pause.
        now = monotonic()
        if now - _last_shortage_report[0] < 0.5:
            return
        _last_shortage_report[0] = now
        app.stats.count_error(
            "not accepting for 1 s: out of file descriptors (EMFILE); new clients wait in "
            "the backlog — raise the limit with --max-open-files or close connections"
        )
        return
    loop.default_exception_handler(context)


async def _serve_until_stopped(listener: socket.socket, app: Application) -> None:
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()

    def stop() -> None:
        hear_stop()
        stopped.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop)
    loop.set_exception_handler(lambda loop, context: _report_loop_trouble(loop, context, app))
    server = await asyncio.start_server(
        lambda reader, writer: _serve_connection(reader, writer, app),
        sock=listener,
        limit=RECV_SIZE,
    )
    async with server:
        await stopped.wait()


def serve(listener: socket.socket, app: Application, workers: int | None = None) -> None:
    """Serve ``app`` on ``listener`` with asyncio until SIGTERM or SIGINT."""
    listener.setblocking(False)
    asyncio.run(_serve_until_stopped(listener, app))
