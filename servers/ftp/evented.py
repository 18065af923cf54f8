"""The FTP server as a sans-IO handler, for the event-loop models (select, poll, epoll, asyncio, prefork).

The control connections are multiplexed by the model's loop like any other
sans-IO protocol: command lines in, replies out, timers for the idle timeout
and the failed-login delay (a loop must never sleep). A data transfer, though,
is a second socket the loop does not know about, so each one runs in a short
helper thread with the same :class:`~servers.ftp.transfer.DataChannel` the
blocking server uses (``os.sendfile`` out, ``recv_into`` in). The loop stays
the only thread that touches the session or emits replies: while a transfer
runs, the handler asks for a tick every few milliseconds and, once the thread
has finished, sends its final reply from the loop, so replies can never
overtake one another. ABOR reaches the thread through a wake-up pipe.
"""

from __future__ import annotations

import collections
import socket
import threading

from servers.contracts import BaseSansIOHandler, Output, Peer, monotonic
from servers.ftp.server import FTPContext, decode_command_line
from servers.ftp.session import (
    TRANSFER_ABORTED,
    TRANSFER_LOCAL_ERROR,
    CloseDataChannel,
    OpenPassive,
    Outcome,
    TransferResult,
    UseActive,
    format_reply,
)
from servers.ftp.transfer import DataChannel, WakeupWatch
from servers.signals import ServingThread

#: While a transfer thread runs, how often the loop checks whether it has finished (s):
#: often at first, since most transfers are short, then less (a long one costs little).
TRANSFER_POLL_FIRST = 0.002
TRANSFER_POLL = 0.01
TRANSFER_POLL_FIRST_FOR = 0.05
#: How long closing a connection waits for its transfer thread to clean up (s).
TRANSFER_JOIN = 2.0
_LINE_TOO_LONG = None  # marker in the pending queue


class FTPEventHandler(BaseSansIOHandler):
    """One control connection under an event loop."""

    def __init__(self, context: FTPContext, peer: Peer) -> None:
        self.context = context
        self.settings = context.settings
        self.stats = context.stats
        self.address = peer.address
        self.session = context.new_session(peer.address)
        self.local_host = _local_host(getattr(context.stats, "host", ""), peer.address)
        self.family = socket.AF_INET6 if ":" in self.local_host else socket.AF_INET
        self.watch = WakeupWatch()
        self.data = DataChannel(
            context.settings,
            context.stats,
            self.session.client_host,
            context.passive_ports,
            self.watch,
        )
        self.buffer = bytearray()
        self.pending: collections.deque[str | None] = collections.deque()
        self.discarding = False
        self.skip_newline = False
        self.slot: int | None = None
        self.last_heard = monotonic()
        self.held: Outcome | None = None
        self.held_until: float | None = None
        self.lock = threading.Lock()
        self.transfer_thread: threading.Thread | None = None
        self.transfer_outcome: Outcome | None = None
        self.transfer_started = 0.0

    # -- the sans-IO contract ------------------------------------------------------

    def start(self) -> list[Output]:
        slot, refusal = self.context.admit(self.address)
        if slot is None:
            self.should_close = True
            return [refusal.encode()]
        self.slot = slot
        return self._perform(self.session.greeting())

    def feed(self, data: bytes) -> list[Output]:
        self.last_heard = monotonic()
        self._split_lines(data)
        return self._advance()

    def eof(self) -> list[Output]:
        self.should_close = True
        self.watch.hang_up()
        return []

    def deadline(self) -> float | None:
        if self.transfer_thread is not None:
            now = monotonic()
            if now - self.transfer_started < TRANSFER_POLL_FIRST_FOR:
                return now + TRANSFER_POLL_FIRST
            return now + TRANSFER_POLL
        if self.held_until is not None:
            return self.held_until
        return self.last_heard + self.settings.idle_timeout

    def tick(self, now: float) -> list[Output]:
        if self.transfer_thread is not None:
            return self._advance()
        if self.held_until is not None:
            if now < self.held_until:
                return []
            held, self.held, self.held_until = self.held, None, None
            output = self._perform(held) if held is not None else []
            return output + self._advance()
        if now >= self.last_heard + self.settings.idle_timeout:
            return self._perform(self.session.idle_timeout())
        return []

    def close(self) -> None:
        self.watch.hang_up()
        thread = self.transfer_thread
        if thread is not None:
            thread.join(TRANSFER_JOIN)
        self.data.close()
        if thread is None or not thread.is_alive():
            self.watch.close()
        if self.slot is not None:
            self.context.limiter.release(self.slot)
            self.slot = None

    # -- command lines ------------------------------------------------------------------

    def _split_lines(self, data: bytes) -> None:
        if self.skip_newline:
            self.skip_newline = False
            if data.startswith(b"\n"):
                data = data[1:]
        self.buffer += data
        while (end := self.buffer.find(b"\n")) >= 0:
            raw = bytes(self.buffer[:end])
            del self.buffer[: end + 1]
            if self.discarding:  # the tail of an overlong line
                self.discarding = False
                continue
            if len(raw) > self.settings.max_line_length:
                self.pending.append(_LINE_TOO_LONG)
                continue
            line = decode_command_line(raw)
            if self.session.interrupts_transfer(line) and self._abort_running_transfer():
                continue
            self.pending.append(line)
        if (
            self.buffer.endswith(b"\r")
            and decode_command_line(bytes(self.buffer)).upper() == "ABOR"
        ):
            # ftplib sends ABOR's final LF as TCP urgent data; the model's socket does
            # not keep urgent data inline, so that LF never arrives: CR ends the line.
            self.buffer.clear()
            self.skip_newline = True
            if not self._abort_running_transfer():
                self.pending.append("ABOR")
        if len(self.buffer) > self.settings.max_line_length:
            self.buffer.clear()
            if not self.discarding:
                self.discarding = True
                self.pending.append(_LINE_TOO_LONG)

    def _abort_running_transfer(self) -> bool:
        """Signal ABOR to a running transfer; False if none runs (ABOR is then a command)."""
        with self.lock:
            running = self.transfer_thread is not None and self.transfer_outcome is None
            if running:
                self.stats.count_request("ABOR")
                self.watch.abort()
        return running

    def _advance(self) -> list[Output]:
        """Finish a completed transfer, then run queued commands until one has to wait."""
        output: list[Output] = []
        self._reap_transfer(output)
        while (
            self.pending
            and self.transfer_thread is None
            and self.held_until is None
            and not self.should_close
        ):
            line = self.pending.popleft()
            if line is _LINE_TOO_LONG:
                outcome = self.session.line_too_long()
            else:
                outcome = self.session.handle_line(line)
            output += self._perform(outcome)
        return output

    def _perform(self, outcome: Outcome) -> list[Output]:
        output: list[Output] = []
        while True:
            if outcome.delay:
                # A failed login waits on a timer, not in sleep(): the loop serves others.
                self.held = Outcome(outcome.replies, outcome.action, outcome.close)
                self.held_until = monotonic() + outcome.delay
                return output
            if outcome.replies:
                output.append("".join(outcome.replies).encode("utf-8", "surrogateescape"))
            if outcome.close:
                self.should_close = True
                return output
            action = outcome.action
            if action is None:
                return output
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
                return output
            if isinstance(action, CloseDataChannel):
                self.data.close()
                return output
            self._start_transfer(action)
            return output

    # -- transfers in a thread of their own ---------------------------------------------------

    def _start_transfer(self, action: object) -> None:
        self.watch.reset()
        self.transfer_outcome = None
        self.transfer_started = monotonic()
        self.transfer_thread = ServingThread(
            target=self._run_transfer, args=(action,), name="ftp-transfer", daemon=True
        )
        self.transfer_thread.start()

    def _run_transfer(self, action: object) -> None:
        try:
            result = self.data.transfer(action)
        except Exception as error:  # a bug must still end in a reply, not a hung session
            result = TransferResult(TRANSFER_LOCAL_ERROR, 0, str(error))
        # The loop leaves the session alone until transfer_outcome is set.
        outcome = self.session.transfer_done(result)
        with self.lock:
            if self.watch.aborted and result.status != TRANSFER_ABORTED:
                # ABOR raced with the end of the transfer: it still gets its answer.
                outcome.replies.append(format_reply(226, "ABOR: the transfer had completed."))
            self.transfer_outcome = outcome

    def _reap_transfer(self, output: list[Output]) -> None:
        if self.transfer_thread is None:
            return
        with self.lock:
            outcome = self.transfer_outcome
        if outcome is None:
            return
        self.transfer_thread.join()
        self.transfer_thread = None
        self.transfer_outcome = None
        self.last_heard = monotonic()
        output += self._perform(outcome)


def _local_host(listening_host: str, client_address: tuple) -> str:
    """The server address the client reached: where PASV listeners go and PORT connects from.

    A server bound to one address answers on it; one bound to the wildcard asks
    the routing table which local address faces the client (connecting a UDP
    socket sends nothing).
    """
    if listening_host and listening_host not in ("0.0.0.0", "::"):
        return listening_host
    client_host = client_address[0]
    family = socket.AF_INET6 if ":" in client_host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((client_host, 9))
            return probe.getsockname()[0]
    except OSError:
        return "::1" if family == socket.AF_INET6 else "127.0.0.1"
