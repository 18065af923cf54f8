"""The blocking FTP server: one flow of control per client (course 3.2 ftp 文件服务器 exercise, per-connection models).

One call of :meth:`FTPContext.handle_connection` owns one control connection
for its whole life, like the course's ``handle(c)`` functions, so it runs
under every per-connection model (iterative, threads, processes, pool). All
protocol decisions come from the socket-free :class:`~servers.ftp.session.FTPSession`;
this module reads command lines, sends the replies, and lets a
:class:`~servers.ftp.transfer.DataChannel` carry out transfers while it
watches the control socket for ABOR.
"""

from __future__ import annotations

import contextlib
import select
import signal
import socket
import time
from dataclasses import dataclass

from servers.ftp.filesystem import JailedFilesystem
from servers.ftp.limits import ConnectionLimiter
from servers.ftp.session import (
    TRANSFER_ABORTED,
    TRANSFER_BROKEN,
    CloseDataChannel,
    FTPSession,
    FTPSettings,
    OpenPassive,
    Outcome,
    UseActive,
    format_reply,
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

    def admit(self, address: tuple) -> tuple[int | None, str]:
        """A connection slot, or the 421 reply refusing one (also counted as a refusal)."""
        slot, reason = self.limiter.acquire(address[0])
        if slot is None:
            self.stats.count_refusal(f"421 {address[0]}: {reason}")
            return None, format_reply(421, f"Sorry, {reason}; try again later.")
        return slot, ""

    def handle_connection(self, conn: socket.socket, address: tuple) -> None:
        """Serve one control connection to its end (the Application's blocking handler)."""
        slot, refusal = self.admit(address)
        if slot is None:
            with contextlib.suppress(OSError):
                conn.sendall(refusal.encode())
            return
        try:
            ControlConnection(self, conn, address).serve()
        finally:
            self.limiter.release(slot)

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
    """One client's control connection, driven by an FTPSession; the watch of its transfers."""

    def __init__(self, context: FTPContext, conn: socket.socket, address: tuple) -> None:
        self.context = context
        self.stats = context.stats
        self.settings = context.settings
        self.conn = conn
        self.buffer = bytearray()
        self.queued_lines: list[str] = []
        self.peer_gone = False
        self.session = context.new_session(address)
        self.data = DataChannel(
            context.settings, context.stats, self.session.client_host, context.passive_ports, self
        )
        conn.setblocking(True)
        # ftplib and others send ABOR's last byte as TCP urgent data: keep it in the stream.
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.control_poller = select.poll()
        self.control_poller.register(conn, select.POLLIN | select.POLLPRI)

    # -- the control loop ----------------------------------------------------------

    def serve(self) -> None:
        try:
            if not self.perform(self.session.greeting()):
                return
            while True:
                line = self.queued_lines.pop(0) if self.queued_lines else self.read_line()
                if line is None:
                    return
                if not self.perform(self.session.handle_line(line)):
                    return
        except OSError:
            pass  # the client reset or vanished: nothing left to answer
        finally:
            self.data.close()

    def read_line(self) -> str | None:
        """The next command line, or None when the client is gone or timed out (421 sent)."""
        while True:
            line = self._take_line()
            if line is not None and len(line) > self.settings.max_line_length:
                self.perform(self.session.line_too_long())
                continue
            if line is not None:
                return line
            if len(self.buffer) > self.settings.max_line_length:
                self.buffer.clear()
                # Drop the rest of the overlong line, then answer once.
                self.perform(self.session.line_too_long())
                self._discard_until_newline()
                continue
            if not self.control_poller.poll(int(self.settings.idle_timeout * 1000)):
                self.perform(self.session.idle_timeout())
                return None
            data = self.conn.recv(CONTROL_RECV)
            if not data:
                return None
            self.stats.add_bytes(received=len(data))
            self.buffer += data

    def _take_line(self) -> str | None:
        end = self.buffer.find(b"\n")
        if end < 0:
            return None
        raw = bytes(self.buffer[:end])
        del self.buffer[: end + 1]
        return decode_command_line(raw)

    def _discard_until_newline(self) -> None:
        while True:
            if not self.control_poller.poll(int(self.settings.idle_timeout * 1000)):
                return
            data = self.conn.recv(CONTROL_RECV)
            if not data:
                return
            self.stats.add_bytes(received=len(data))
            end = data.find(b"\n")
            if end >= 0:
                self.buffer += data[end + 1 :]
                return

    def send_replies(self, replies: list[str]) -> None:
        if replies:
            data = "".join(replies).encode("utf-8", "surrogateescape")
            self.conn.sendall(data)
            self.stats.add_bytes(sent=len(data))

    def perform(self, outcome: Outcome) -> bool:
        """Carry out what the session decided; False once the connection must close."""
        while True:
            if outcome.delay:
                time.sleep(outcome.delay)
            self.send_replies(outcome.replies)
            if outcome.close:
                return False
            action = outcome.action
            if action is None:
                return True
            outcome = self.run_action(action)

    def run_action(self, action: object) -> Outcome:
        if isinstance(action, OpenPassive):
            host = self.conn.getsockname()[0]
            try:
                port = self.data.open_passive(self.conn.family, host)
            except OSError as error:
                return self.session.passive_failed(error.strerror or "no free port")
            return self.session.passive_opened(host, port, action.extended)
        if isinstance(action, UseActive):
            self.data.use_active(action.host, action.port, self.conn.getsockname()[0])
            return Outcome()
        if isinstance(action, CloseDataChannel):
            self.data.close()
            return Outcome()
        return self.session.transfer_done(self.data.transfer(action))

    # -- the TransferWatch the data channel polls during transfers ------------------------

    def fileno(self) -> int:
        return self.conn.fileno()

    def check(self) -> None:
        """Read what the client sent meanwhile; raise TransferInterrupted on ABOR or a hang-up.

        Other commands wait in ``queued_lines`` until the transfer is over, as RFC 959 allows.
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
        self.buffer += data
        while (line := self._take_line()) is not None:
            if self.session.interrupts_transfer(line):
                self.stats.count_request("ABOR")
                raise TransferInterrupted(TRANSFER_ABORTED, "ABOR")
            self.queued_lines.append(line)

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


def decode_command_line(raw: bytes) -> str:
    """A command line without CRLF and Telnet controls (IAC IP / IAC DM sent before ABOR)."""
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    if b"\xff" in raw:
        raw = raw.replace(b"\xff\xff", b"\x00IAC\x00")
        for command in (b"\xff\xf4", b"\xff\xf2", b"\xff"):
            raw = raw.replace(command, b"")
        raw = raw.replace(b"\x00IAC\x00", b"\xff")
    return raw.decode("utf-8", "surrogateescape")
