"""The FTP server as a sans-IO handler, for the event-loop models (select, poll, epoll, asyncio, prefork).

A thin shell around :class:`~servers.ftp.control.ControlCore`, the control
core the blocking server uses too: the model's loop multiplexes the control
connections like any other sans-IO protocol, command lines in, replies out,
the core's deadline as the handler's timer (the idle timeout, the failed-login
delay: a loop must never sleep). A data transfer, though, is a second socket
the loop does not know about, so each one runs in a short helper thread with
the same :class:`~servers.ftp.transfer.DataChannel` the blocking server uses
(``os.sendfile`` out, ``recv_into`` in). That thread never touches the session:
it queues its result in the core, which calls the peer's ``wake`` (the
contract's thread-safe call back), and the loop, woken, takes the result and
sends the final reply itself. Nothing polls meanwhile: while a transfer runs,
the handler has no deadline and the loop sleeps. ABOR reaches the thread
through the :class:`~servers.ftp.transfer.WakeupWatch` pipe.
"""

from __future__ import annotations

import threading

from servers.contracts import BaseSansIOHandler, Output, Peer
from servers.ftp.control import ControlCore
from servers.ftp.server import FTPContext
from servers.ftp.session import TRANSFER_LOCAL_ERROR, Action, TransferResult, normalize_host
from servers.ftp.transfer import DataChannel, WakeupWatch
from servers.signals import ServingThread

#: How long closing a connection waits for its transfer thread to clean up (s).
TRANSFER_JOIN = 2.0


class FTPEventHandler(BaseSansIOHandler):
    """One control connection under an event loop."""

    def __init__(self, context: FTPContext, peer: Peer) -> None:
        if peer.wake is None or peer.local_address is None:
            raise ValueError("the FTP event handler needs a model that gives a wake and an address")
        self.watch = WakeupWatch()
        self.data = DataChannel(
            context.settings,
            context.stats,
            normalize_host(peer.address[0]),
            context.passive_ports,
            self.watch,
        )
        self.core = ControlCore(
            context,
            peer.address,
            peer.local_address[0],
            self.data,
            wake=peer.wake,
            interrupt=self.watch.abort,
        )
        self.transfer_thread: threading.Thread | None = None

    # -- the sans-IO contract ------------------------------------------------------

    def start(self) -> list[Output]:
        return self._output(self.core.start())

    def feed(self, data: bytes) -> list[Output]:
        self.core.receive(data)
        return self._advance()

    def eof(self) -> list[Output]:
        self.should_close = True
        self.watch.hang_up()
        return []

    def deadline(self) -> float | None:
        return self.core.deadline()

    def tick(self, now: float) -> list[Output]:
        return self._advance(now)

    def close(self) -> None:
        self.watch.hang_up()
        thread = self.transfer_thread
        if thread is not None:
            thread.join(TRANSFER_JOIN)
        self.data.close()
        if thread is None or not thread.is_alive():
            self.watch.close()
        self.core.close()

    # -- running the core -------------------------------------------------------------

    def _advance(self, now: float | None = None) -> list[Output]:
        replies = self.core.advance(now)
        action = self.core.take_transfer()
        if action is not None:
            self._start_transfer(action)
        return self._output(replies)

    def _output(self, replies: bytes) -> list[Output]:
        if self.core.should_close:
            self.should_close = True
        return [replies] if replies else []

    # -- transfers in a thread of their own ---------------------------------------------------

    def _start_transfer(self, action: Action) -> None:
        if self.transfer_thread is not None:
            self.transfer_thread.join()  # it reported already: only its last instructions remain
        self.watch.reset()
        self.transfer_thread = ServingThread(
            target=self._run_transfer, args=(action,), name="ftp-transfer", daemon=True
        )
        self.transfer_thread.start()

    def _run_transfer(self, action: Action) -> None:
        try:
            result = self.data.transfer(action)
        except Exception as error:  # a bug must still end in a reply, not a hung session
            result = TransferResult(TRANSFER_LOCAL_ERROR, 0, str(error))
        self.core.transfer_finished(result)
