"""The chat room served over UDP (course 1.2 UDP套接字, 2.2.5 群聊聊天室): one recvfrom loop.

UDP needs no concurrency model: there are no connections to accept, every
member's datagrams arrive on the one bound socket, and ``recvfrom`` says who
sent each. The loop below is the course's server: receive a datagram, let the
room decide, ``sendto`` the answers. It waits only until the next member is due
to time out, so a silent member is dropped on time without a timer thread.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable

from servers.chat.room import ChatRoom, Datagram
from servers.contracts import monotonic
from servers.stats import ServerStats

#: Bigger than any valid message, so an oversized datagram is seen whole and refused.
RECV_SIZE = 65536
#: Upper bound of one wait, so ``stop()`` is noticed promptly.
POLL_INTERVAL = 0.25


class DatagramChatServer:
    """Serve ``room`` on a bound UDP socket until ``stop()`` (or an exception such as SIGTERM)."""

    def __init__(
        self, room: ChatRoom, stats: ServerStats, lock: threading.Lock | None = None
    ) -> None:
        self.room = room
        self.stats = stats
        #: Guards the room: the admin's announcements come from other threads.
        self.lock = lock or threading.Lock()
        self.sock: socket.socket | None = None
        self._stopping = threading.Event()
        self.serving = threading.Event()

    def serve(self, sock: socket.socket) -> None:
        """The receive loop; returns when stopped."""
        self.sock = sock
        room, lock, stats = self.room, self.lock, self.stats
        self.serving.set()
        try:
            while not self._stopping.is_set():
                with lock:
                    deadline = room.next_deadline()
                wait = POLL_INTERVAL
                if deadline is not None:
                    wait = min(wait, max(0.0, deadline - monotonic()))
                # Never 0: a zero timeout makes the socket non-blocking (BlockingIOError).
                sock.settimeout(max(wait, 0.001))
                try:
                    data, address = sock.recvfrom(RECV_SIZE)
                except TimeoutError:
                    data = None
                except OSError as error:
                    if self._stopping.is_set():
                        break
                    # A transient socket error must not end the room: count it, go on.
                    stats.count_error(f"recvfrom: {error}")
                    continue
                if self._stopping.is_set():
                    break  # the datagram that woke us may be stop()'s own: it is not a member's
                now = monotonic()
                if data is not None:
                    stats.add_bytes(received=len(data))
                # Sending under the lock keeps each member's sequence numbers in order
                # even when an announcement from another thread interleaves.
                with lock:
                    out = room.receive(data, address, now) if data is not None else []
                    if deadline is not None and deadline <= now:
                        out.extend(room.expire(now))
                    if out:
                        self.send(out)
        finally:
            self.serving.clear()

    def send(self, datagrams: Iterable[Datagram]) -> None:
        """``sendto`` each datagram; a vanished member must not stop the others' delivery."""
        sock = self.sock
        if sock is None:
            return
        sendto = sock.sendto
        sent = 0
        for address, payload in datagrams:
            try:
                sent += sendto(payload, address)
            except OSError as error:
                self.stats.count_error(f"sendto {address}: {error}")
        self.stats.add_bytes(sent=sent)

    def announce(self, text: str) -> None:
        """Admin announcement to everyone (from the control channel or stdin)."""
        with self.lock:
            self.send(self.room.announce(text))

    def stop(self) -> None:
        """Ask the loop to return, and wake its ``recvfrom`` with an empty datagram so it does at once."""
        self._stopping.set()
        sock = self.sock
        if sock is None:
            return
        try:
            host, port = sock.getsockname()[:2]
            if host in ("0.0.0.0", "::"):  # a wildcard is no destination: its loopback is
                host = "127.0.0.1" if sock.family == socket.AF_INET else "::1"
            sock.sendto(b"", (host, port))
        except OSError:
            pass  # closed already, or unreachable: the loop still sees the flag within POLL_INTERVAL
