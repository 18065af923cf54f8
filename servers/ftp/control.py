"""The FTP control connection without sockets: line framing, ABOR, admission, timers and replies, for both server shells.

:class:`~servers.ftp.session.FTPSession` decides what each command means;
:class:`ControlCore` is everything around it that used to be written twice,
once per server shell: it frames command lines out of the bytes received,
spots ABOR while a transfer runs, admits or refuses the connection (421),
holds a failed login's answer until its delay has passed, finds the address
PASV and EPSV announce, and turns the session's outcomes into reply bytes.

It never reads a socket, sleeps or starts a thread. A shell feeds it bytes
(:meth:`ControlCore.receive`), calls :meth:`ControlCore.advance` for the reply
bytes to send, waits until :meth:`ControlCore.deadline`, and runs the transfer
:meth:`ControlCore.take_transfer` hands it: inline (the blocking shell of the
per-connection models) or in a helper thread (the evented shell). The result
comes back through :meth:`ControlCore.transfer_finished`, the one method safe
to call from another thread: it queues the result and calls ``wake``, so the
shell's own thread takes it up. Replies therefore leave in order and no one polls.
"""

from __future__ import annotations

import collections
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from servers.contracts import monotonic
from servers.ftp.session import (
    TRANSFER_ABORTED,
    Action,
    CloseDataChannel,
    OpenPassive,
    Outcome,
    TransferResult,
    UseActive,
    format_reply,
)

if TYPE_CHECKING:
    from servers.ftp.server import FTPContext

#: Marks an overlong command line in the queue: it is answered with 500 in turn.
_LINE_TOO_LONG = None


class DataLink(Protocol):
    """The quick, non-blocking half of a data channel: setting it up (PASV, PORT), dropping it."""

    def open_passive(self, family: socket.AddressFamily, host: str) -> int: ...

    def use_active(self, host: str, port: int, local_host: str) -> None: ...

    def close(self) -> None: ...


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


class ControlCore:
    """One control connection's framing, timers and reply flow around its FTPSession.

    ``local_host`` is this end's address as the client reached it
    (``getsockname()`` of the control connection): PASV listeners go there and
    active connections leave from it. ``wake`` (thread-safe) asks the shell to
    call :meth:`advance` from its own thread; ``interrupt`` tells a running
    transfer that ABOR arrived.
    """

    def __init__(
        self,
        context: FTPContext,
        client_address: tuple,
        local_host: str,
        data: DataLink,
        wake: Callable[[], None] | None = None,
        interrupt: Callable[[], None] | None = None,
    ) -> None:
        self.context = context
        self.settings = context.settings
        self.stats = context.stats
        self.client_address = client_address
        self.session = context.new_session(client_address)
        self.local_host = local_host.split("%")[0]
        self.family = socket.AF_INET6 if ":" in self.local_host else socket.AF_INET
        self.data = data
        self.wake = wake or _nothing
        self.interrupt = interrupt or _nothing
        self.should_close = False
        self.slot: int | None = None
        # Framing.
        self.buffer = bytearray()
        self.pending: collections.deque[str | None] = collections.deque()
        self.discarding = False
        self.skip_newline = False
        self.last_heard = monotonic()
        # A failed login's answer (and what follows it) waits until held_until.
        self.held: Outcome | None = None
        self.held_until: float | None = None
        # The transfer: handed to the shell, running, then its result queued.
        self.transfer_running = False
        self.abort_requested = False
        self._next_transfer: Action | None = None
        self._finished: TransferResult | None = None
        self._finished_lock = threading.Lock()

    # -- the connection's life ------------------------------------------------------

    def start(self) -> bytes:
        """The greeting, or the 421 refusal when a connection limit is reached."""
        slot, reason = self.context.limiter.acquire(self.client_address[0])
        if slot is None:
            self.stats.count_refusal(f"421 {self.client_address[0]}: {reason}")
            self.should_close = True
            return format_reply(421, f"Sorry, {reason}; try again later.").encode()
        self.slot = slot
        return self._encode(self._perform(self.session.greeting()))

    def close(self) -> None:
        """The connection is over: give its slot back (idempotent)."""
        if self.slot is not None:
            self.context.limiter.release(self.slot)
            self.slot = None

    # -- what the shell calls from its own thread --------------------------------------

    def receive(self, data: bytes) -> None:
        """Bytes from the control connection: frame them into queued command lines.

        ABOR while a transfer runs is not queued: it interrupts the transfer at
        once. Clients send ABOR after Telnet IP and Synch (IAC IP, IAC DM) and
        often send its last byte as TCP urgent data, which a socket without
        SO_OOBINLINE never delivers; so a buffered "ABOR\\r" counts as a whole
        line, and the LF that may follow it is dropped. One rule, whatever the
        socket options of the model serving the connection.
        """
        self.last_heard = monotonic()
        if self.skip_newline:
            self.skip_newline = False
            if data.startswith(b"\n"):
                data = data[1:]
        buffer = self.buffer
        buffer += data
        limit = self.settings.max_line_length
        while (end := buffer.find(b"\n")) >= 0:
            raw = bytes(buffer[:end])
            del buffer[: end + 1]
            if self.discarding:  # the tail of an overlong line, already answered
                self.discarding = False
                continue
            if len(raw) > limit:
                self.pending.append(_LINE_TOO_LONG)
                continue
            self._take_line(decode_command_line(raw))
        if buffer.endswith(b"\r") and decode_command_line(bytes(buffer)).upper() == "ABOR":
            buffer.clear()
            self.skip_newline = True
            self._take_line("ABOR")
        if len(buffer) > limit:
            buffer.clear()
            if not self.discarding:
                self.discarding = True
                self.pending.append(_LINE_TOO_LONG)

    def _take_line(self, line: str) -> None:
        if self.transfer_running and self.session.interrupts_transfer(line):
            if not self.abort_requested:
                self.abort_requested = True
                self.stats.count_request("ABOR")
                self.interrupt()
            return
        self.pending.append(line)

    def advance(self, now: float | None = None) -> bytes:
        """Replies now due: a finished transfer's, a held login's, queued commands', a timeout's."""
        if now is None:
            now = monotonic()
        replies: list[str] = []
        if self.transfer_running:
            with self._finished_lock:
                result, self._finished = self._finished, None
            if result is None:
                return b""  # still running: transfer_finished will wake us
            self.transfer_running = False
            self.last_heard = now
            outcome = self.session.transfer_done(result)
            if self.abort_requested and result.status != TRANSFER_ABORTED:
                # ABOR raced with the end of the transfer: it still gets its answer.
                outcome.replies.append(format_reply(226, "ABOR: the transfer had completed."))
            self.abort_requested = False
            replies += self._perform(outcome, now)
        if self.held_until is not None and now >= self.held_until:
            held, self.held, self.held_until = self.held, None, None
            if held is not None:
                replies += self._perform(held, now)
        while self.pending and not self._waiting():
            line = self.pending.popleft()
            if line is _LINE_TOO_LONG:
                outcome = self.session.line_too_long()
            else:
                outcome = self.session.handle_line(line)
            replies += self._perform(outcome, now)
        if not self._waiting() and now >= self.last_heard + self.settings.idle_timeout:
            replies += self._perform(self.session.idle_timeout(), now)
        return self._encode(replies)

    def _waiting(self) -> bool:
        return self.transfer_running or self.held_until is not None or self.should_close

    def deadline(self) -> float | None:
        """When :meth:`advance` has something to do without new input; None: only input or a wake."""
        if self.should_close or self.transfer_running:
            return None
        if self.held_until is not None:
            return self.held_until
        if self.pending:
            return monotonic()
        return self.last_heard + self.settings.idle_timeout

    def take_transfer(self) -> Action | None:
        """The transfer the shell must run now (once), reporting to :meth:`transfer_finished`."""
        action, self._next_transfer = self._next_transfer, None
        return action

    # -- what the transfer's thread calls ----------------------------------------------

    def transfer_finished(self, result: TransferResult) -> None:
        """Thread-safe: queue the transfer's result and wake the shell, which replies from its thread."""
        with self._finished_lock:
            self._finished = result
        self.wake()

    # -- outcomes into replies ------------------------------------------------------------

    def _perform(self, outcome: Outcome, now: float | None = None) -> list[str]:
        """The replies of ``outcome`` and of what its action leads to, until something must wait."""
        replies: list[str] = []
        while True:
            if outcome.delay:
                # A failed login answers after a pause, on a timer: nothing here sleeps.
                self.held = Outcome(outcome.replies, outcome.action, outcome.close)
                self.held_until = (now if now is not None else monotonic()) + outcome.delay
                return replies
            replies += outcome.replies
            if outcome.close:
                self.should_close = True
                return replies
            action = outcome.action
            if action is None:
                return replies
            if isinstance(action, OpenPassive):
                try:
                    port = self.data.open_passive(self.family, self.local_host)
                except OSError as error:
                    outcome = self.session.passive_failed(error.strerror or "no free port")
                    continue
                outcome = self.session.passive_opened(self.local_host, port, action.extended)
                continue
            if isinstance(action, UseActive):
                self.data.use_active(action.host, action.port, self.local_host)
                return replies
            if isinstance(action, CloseDataChannel):
                self.data.close()
                return replies
            self.transfer_running = True
            self.abort_requested = False
            self._next_transfer = action
            return replies

    @staticmethod
    def _encode(replies: list[str]) -> bytes:
        return "".join(replies).encode("utf-8", "surrogateescape") if replies else b""


def _nothing() -> None:
    return None
