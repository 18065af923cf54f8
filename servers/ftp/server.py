"""The blocking FTP server: one flow of control per client (course 3.2 ftp 文件服务器 exercise, per-connection models).

One call of :meth:`FTPContext.handle_connection` owns one control connection
for its whole life, like the course's ``handle(c)`` functions, so it runs
under every per-connection model (iterative, threads, processes, pool). It is
a thin shell: every decision (framing, replies, ABOR, limits, the failed-login
delay, timeouts) comes from the socket-free :class:`~servers.ftp.control.ControlCore`
it shares with the event-loop shell (:mod:`servers.ftp.evented`). This module
only waits on the socket, sends the core's replies, and runs each transfer
inline with a :class:`~servers.ftp.transfer.DataChannel`, the control socket
being the transfer's watch for ABOR.
"""

from __future__ import annotations

import select
import signal
import socket
from dataclasses import dataclass

from servers.contracts import monotonic
from servers.ftp.control import ControlCore
from servers.ftp.filesystem import JailedFilesystem
from servers.ftp.limits import ConnectionLimiter
from servers.ftp.session import (
    TRANSFER_ABORTED,
    TRANSFER_BROKEN,
    FTPSession,
    FTPSettings,
    normalize_host,
)
from servers.ftp.transfer import DataChannel, TransferInterrupted, unlink_uploads_in_progress
from servers.ftp.users import Authorizer

CONTROL_RECV = 4096


@dataclass
class FTPContext:
    """Everything the server process shares between its FTP sessions."""

    root: str
    authorizer: Authorizer
    settings: FTPSettings
    stats: object
    limiter: ConnectionLimiter
    passive_ports: tuple[int, int] | None = None

    def new_session(self, address: tuple) -> FTPSession:
        return FTPSession(
            JailedFilesystem(self.root), self.authorizer, address, self.settings, self.stats
        )

    def handle_connection(self, conn: socket.socket, address: tuple) -> None:
        """Serve one control connection to its end (the Application's blocking handler)."""
        ControlConnection(self, conn, address).serve()

    def after_fork(self) -> None:
        """In a forked worker or per-connection child, before it serves anyone."""
        self.limiter.after_fork()
        # The model leaves SIGTERM at its default (instant death) in children; unwind
        # instead, so an upload cut short by a server stop deletes its temporary file.
        signal.signal(signal.SIGTERM, _unwind_on_sigterm)


def _unwind_on_sigterm(signum: int, frame: object) -> None:
    unlink_uploads_in_progress()  # transfer threads may not get to their cleanup
    raise SystemExit(0)


class ControlConnection:
    """The blocking shell of one control connection; also the watch of its transfers."""

    def __init__(self, context: FTPContext, conn: socket.socket, address: tuple) -> None:
        self.stats = context.stats
        self.conn = conn
        self.peer_gone = False
        conn.setblocking(True)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # POLLIN only: an urgent byte left out of band (ABOR's, see ControlCore.receive)
        # raises POLLPRI until read, which would make every wait here return at once.
        self.control_poller = select.poll()
        self.control_poller.register(conn, select.POLLIN)
        self.data = DataChannel(
            context.settings,
            context.stats,
            normalize_host(address[0]),
            context.passive_ports,
            self,
        )
        self.core = ControlCore(context, address, conn.getsockname()[0], self.data)

    # -- the control loop ----------------------------------------------------------

    def serve(self) -> None:
        core = self.core
        try:
            self.send(core.start())
            while not core.should_close:
                action = core.take_transfer()
                if action is not None:
                    core.transfer_finished(self.data.transfer(action))
                elif not self.wait_for_input(core.deadline()):
                    return
                self.send(core.advance())
        except OSError:
            pass  # the client reset or vanished: nothing left to answer
        finally:
            self.data.close()
            core.close()

    def wait_for_input(self, deadline: float | None) -> bool:
        """Feed the core what arrives before ``deadline``; False once the client has gone."""
        timeout = -1 if deadline is None else max(0, int((deadline - monotonic()) * 1000) + 1)
        if not self.control_poller.poll(timeout):
            return True  # the deadline passed: advance() knows what is due
        data = self.conn.recv(CONTROL_RECV)
        if not data:
            return False
        self.stats.add_bytes(received=len(data))
        self.core.receive(data)
        return True

    def send(self, data: bytes) -> None:
        if data:
            self.conn.sendall(data)
            self.stats.add_bytes(sent=len(data))

    # -- the TransferWatch the data channel polls during transfers ------------------------

    def fileno(self) -> int:
        return self.conn.fileno()

    def check(self) -> None:
        """Read what the client sent meanwhile; raise TransferInterrupted on ABOR or a hang-up.

        Other commands wait in the core's queue until the transfer is over, as RFC 959 allows.
        """
        if not self.control_poller.poll(0):
            return
        try:
            data = self.conn.recv(CONTROL_RECV)
        except OSError:
            data = b""
        if not data:
            self.peer_gone = True
            raise TransferInterrupted(TRANSFER_BROKEN, "control connection closed")
        self.stats.add_bytes(received=len(data))
        self.core.receive(data)
        if self.core.abort_requested:
            raise TransferInterrupted(TRANSFER_ABORTED, "ABOR")

    def hung_up(self, grace: float) -> bool:
        """True if the client closes or resets its control connection within ``grace`` seconds."""
        if self.peer_gone:
            return True
        if not self.control_poller.poll(int(grace * 1000)):
            return False
        try:
            if self.conn.recv(1, socket.MSG_PEEK) == b"":
                return True
        except OSError:
            return True
        self.check()  # an ABOR right after the data connection closed still aborts
        return False
