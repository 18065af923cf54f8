"""The event-loop FTP handler: driven by hand (timers, framing, ABOR, limits), then on a real epoll loop that must not poll."""

from __future__ import annotations

import asyncio
import contextlib
import ftplib
import socket
import threading
import time

import pytest

from servers.contracts import Application, Peer, monotonic
from servers.ftp.evented import FTPEventHandler
from servers.ftp.limits import ConnectionLimiter
from servers.ftp.server import FTPContext
from servers.ftp.session import FTPSettings
from servers.ftp.users import Authorizer
from servers.models.asyncio import _serve_connection
from servers.models.epoll import EpollServer
from servers.stats import ServerStats

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def make_handler(tmp_path):
    handlers: list[FTPEventHandler] = []

    def make(*, anonymous=True, limiter=None, **settings) -> FTPEventHandler:
        context = FTPContext(
            root=str(tmp_path),
            authorizer=Authorizer({}, allow_anonymous=anonymous),
            settings=FTPSettings(**{"login_delay": 0.2, "idle_timeout": 5.0, **settings}),
            stats=ServerStats(),
            limiter=limiter or ConnectionLimiter(8),
        )
        peer = Peer(("127.0.0.1", 40000), lambda items: None, lambda: None, ("127.0.0.1", 2121))
        handler = FTPEventHandler(context, peer)
        handlers.append(handler)
        return handler

    yield make
    for handler in handlers:
        handler.close()


def replies(output) -> list[str]:
    text = b"".join(output).decode()
    return [line for line in text.split("\r\n") if line and line[:3].isdigit() and line[3] == " "]


def test_greeting_and_pipelined_commands_answer_in_order(make_handler):
    handler = make_handler()
    assert replies(handler.start())[0].startswith("220")
    output = handler.feed(b"USER anonymous\r\nPASS x\r\nPWD\r\nSYST\r\n")
    assert [reply[:3] for reply in replies(output)] == ["331", "230", "257", "215"]


def test_commands_split_across_feeds(make_handler):
    handler = make_handler()
    handler.start()
    assert handler.feed(b"NO") == []
    assert replies(handler.feed(b"OP\r")) == []
    assert replies(handler.feed(b"\n")) == ["200 NOOP ok."]


def test_failed_login_waits_on_a_timer_and_holds_later_commands(make_handler):
    handler = make_handler(anonymous=False)
    handler.start()
    before = monotonic()
    output = handler.feed(b"USER someone\r\nPASS wrong\r\nNOOP\r\n")
    assert [reply[:3] for reply in replies(output)] == ["331"]
    deadline = handler.deadline()
    assert before + 0.19 <= deadline <= monotonic() + 0.2
    assert handler.tick(deadline - 0.1) == []
    assert [reply[:3] for reply in replies(handler.tick(deadline))] == ["530", "200"]


def test_third_failure_closes_after_the_delay(make_handler):
    handler = make_handler(anonymous=False, login_delay=0.01)
    handler.start()
    for attempt in range(3):
        handler.feed(b"USER x\r\nPASS y\r\n")
        output = handler.tick(handler.deadline())
        assert replies(output)[0].startswith("530")
        assert handler.should_close == (attempt == 2)


def test_abor_whose_urgent_lf_never_arrives(make_handler):
    handler = make_handler()
    handler.start()
    handler.feed(b"USER anonymous\r\nPASS x\r\n")
    assert replies(handler.feed(b"\xff\xf4\xff\xf2ABOR\r")) == ["225 No transfer to abort."]
    # If the LF does come after all, it is not taken for an empty command.
    assert replies(handler.feed(b"\nNOOP\r\n")) == ["200 NOOP ok."]


def test_overlong_line_is_refused_once_and_skipped(make_handler):
    handler = make_handler(max_line_length=100)
    handler.start()
    assert replies(handler.feed(b"X" * 150)) == ["500 Command line too long."]
    assert replies(handler.feed(b"still the same line\r\nNOOP\r\n")) == ["200 NOOP ok."]
    assert replies(handler.feed(b"NOOP " + b"y" * 200 + b"\r\n")) == ["500 Command line too long."]


def test_idle_timeout_fires_from_the_timer(make_handler):
    handler = make_handler(idle_timeout=0.5)
    handler.start()
    deadline = handler.deadline()
    assert handler.tick(deadline - 0.2) == []
    output = handler.tick(deadline)
    assert replies(output)[0].startswith("421") and handler.should_close


def test_connection_limit_refuses_with_421_and_frees_on_close(make_handler):
    limiter = ConnectionLimiter(1)
    first = make_handler(limiter=limiter)
    assert replies(first.start())[0].startswith("220")
    second = make_handler(limiter=limiter)
    assert replies(second.start())[0].startswith("421") and second.should_close
    first.close()
    third = make_handler(limiter=limiter)
    assert replies(third.start())[0].startswith("220")


class _StopLoop(Exception):
    pass


class CountingEpollServer(EpollServer):
    """The real epoll loop, counting its passes (one per return from epoll.poll)."""

    def __init__(self, listener, app) -> None:
        super().__init__(listener, app)
        self.passes = 0
        self.stopping = False

    def run_timers(self) -> None:
        self.passes += 1
        super().run_timers()
        if self.stopping:
            raise _StopLoop

    def stop(self) -> None:
        self.stopping = True
        self._waker_writer.send(b"\0")


def counted_ftp_app(root) -> tuple[Application, list[int]]:
    """An FTP Application whose handlers count their ticks; downloads paced to last a while."""
    (root / "slow.bin").write_bytes(bytes(range(256)) * 1024)  # 256 KiB
    ticks = [0]
    context = FTPContext(
        root=str(root),
        authorizer=Authorizer({}, allow_anonymous=True),
        # 512 KiB/s: the download takes half a second, plenty of time to poll in.
        settings=FTPSettings(login_delay=0.0, max_rate=512 * 1024),
        stats=ServerStats(),
        limiter=ConnectionLimiter(8),
    )

    class CountedHandler(FTPEventHandler):
        def tick(self, now):
            ticks[0] += 1
            return super().tick(now)

    app = Application("ftp", context.stats, new_handler=lambda peer: CountedHandler(context, peer))
    return app, ticks


@pytest.fixture
def epoll_ftp(tmp_path):
    """An FTP server on a real epoll loop in a thread, handlers' ticks counted; always stopped."""
    app, ticks = counted_ftp_app(tmp_path)
    listener = socket.create_server(("127.0.0.1", 0))
    server = CountingEpollServer(listener, app)

    def run_loop() -> None:
        with contextlib.suppress(_StopLoop):
            server.run()

    loop = threading.Thread(target=run_loop, daemon=True)
    loop.start()
    yield server, listener.getsockname()[1], ticks
    server.stop()
    loop.join(5)
    listener.close()
    assert not loop.is_alive()


@pytest.fixture
def asyncio_ftp(tmp_path):
    """The asyncio model's connection coroutine on a loop in a thread, ticks counted; always stopped."""
    app, ticks = counted_ftp_app(tmp_path)
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(
        asyncio.start_server(
            lambda reader, writer: _serve_connection(reader, writer, app), "127.0.0.1", 0
        )
    )
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield server.sockets[0].getsockname()[1], ticks
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)

    async def shut_down() -> None:
        server.close()
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    loop.run_until_complete(shut_down())
    loop.close()


def download_slowly(port: int) -> tuple[float, float]:
    """RETR the paced file; returns (instant the 150 came, instant the last byte came)."""
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", port, timeout=10)
    try:
        ftp.login()
        ftp.voidcmd("TYPE I")
        data_conn = ftp.transfercmd("RETR slow.bin")
        started = time.monotonic()
        received = 0
        while chunk := data_conn.recv(65536):
            received += len(chunk)
        data_conn.close()
        assert ftp.voidresp().startswith("226")
        assert received == 256 * 1024
        return started, time.monotonic()
    finally:
        ftp.close()


def test_loop_sleeps_while_a_transfer_runs_and_is_woken_once_at_its_end(epoll_ftp):
    server, port, ticks = epoll_ftp
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", port, timeout=10)
    try:
        ftp.login()
        ftp.voidcmd("TYPE I")
        started = time.monotonic()
        data_conn = ftp.transfercmd("RETR slow.bin")
        passes, ticks_before = server.passes, ticks[0]
        received = 0
        while chunk := data_conn.recv(65536):
            received += len(chunk)
        data_conn.close()
        assert ftp.voidresp().startswith("226")
        elapsed = time.monotonic() - started
        assert received == 256 * 1024 and elapsed >= 0.4
        # The old handler asked for a tick every 2-10 ms: 50+ passes in this time.
        # Now: the wake that brings the result, and the 226 going out.
        assert ticks[0] - ticks_before == 1
        assert server.passes - passes <= 3
    finally:
        ftp.close()


def test_asyncio_connection_is_woken_once_at_the_end_of_a_transfer(asyncio_ftp):
    port, ticks = asyncio_ftp
    ticks_at_start = ticks[0]
    started, ended = download_slowly(port)
    assert ended - started >= 0.4
    # The wake cancels the connection's read once; the old handler ticked every 2-10 ms.
    assert ticks[0] - ticks_at_start == 1
