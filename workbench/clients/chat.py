"""UI-free client of the group chat (course 2.2.5 群聊聊天室) over UDP or TCP, with a stream of typed events.

Usage::

    from workbench.clients.chat import ChatClient, NameTaken, ChatError

    client = ChatClient("127.0.0.1", port, transport="udp")   # or "tcp"
    client.connect()                  # opens the socket, starts the receiver thread
    try:
        client.login("alice")         # blocks until OK; NameTaken / ChatError
    except NameTaken as error:
        print(error)                  # the name 'Alice' is already in the room: choose another
    client.say("hello")               # ChatError if not logged in or the text is invalid
    client.request_members()          # server answers with a Members event
    for event in client.drain():      # never blocks; returns what arrived so far
        ...
    event = client.next_event(timeout=1.0)   # blocking variant (tests, scripts)
    client.leave()                    # QUIT; the client stays connected and may log in again
    client.close()                    # leaves if needed, stops threads, closes the socket

``ChatClient`` is also a context manager (``with ChatClient(...) as client``).

Threads: ``connect`` starts one receiver thread; ``login`` starts one heartbeat
thread that sends ``PING`` every third of the server's timeout (the server says
its timeout in ``OK LOGIN``), so a member that is alive is never dropped. All
public methods may be called from any thread; events are handed over through a
``queue.Queue``, so a UI drains them in batches with ``drain()`` instead of waking
up once per datagram. Set ``on_events`` to be told, from the receiver thread, when
the first event after a ``drain()`` arrives: one call per batch, never one per datagram.

Events (frozen dataclasses, each with a ``kind`` string for matching):

==============  ======================================  ==========================
kind            class and fields                        when
==============  ======================================  ==========================
``joined``      ``Joined(name, seq)``                   someone entered the room
``left``        ``Left(name, reason, seq)``             quit / timeout / disconnected
``message``     ``Message(name, text, seq)``            a member said something
``admin``       ``Admin(text, seq)``                    the server's announcement
``members``     ``Members(names, seq)``                 after login, and on request
``lost``        ``LostCount(lost, received, new)``      a gap in the sequence numbers
``error``       ``ChatErrorEvent(code, text)``          an ERR from the server, or the
                                                        link failing (code ``link``)
==============  ======================================  ==========================

The server does not echo your own messages back: show them locally when
``say`` returns. Loss accounting: every room event carries a per-member
sequence number starting at 1 after login; a gap counts as lost datagrams
(``client.lost``), and a late datagram that fills a gap un-counts it. Over TCP
nothing is ever lost.
"""

from __future__ import annotations

import collections
import contextlib
import queue
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from servers.chat import protocol as p

__all__ = [
    "Admin",
    "ChatClient",
    "ChatError",
    "ChatErrorEvent",
    "ChatEvent",
    "Joined",
    "Left",
    "LostCount",
    "Members",
    "Message",
    "NameTaken",
]

#: How long ``login`` waits for the server's answer, seconds.
DEFAULT_LOGIN_TIMEOUT = 3.0
#: UDP may lose the LOGIN or its answer: send it again this often while waiting.
UDP_RETRY_INTERVAL = 0.5
#: Gaps remembered so a late datagram can be un-counted; older ones are forgotten.
MAX_REMEMBERED_GAPS = 4096


class ChatError(Exception):
    """A chat operation failed; ``str(error)`` is a sentence for the user, ``code`` the ERR code."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class NameTaken(ChatError):
    """``login`` refused: someone in the room already has that name (case-insensitive)."""


# -- events ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Joined:
    kind: ClassVar[str] = "joined"
    name: str
    seq: int


@dataclass(frozen=True, slots=True)
class Left:
    kind: ClassVar[str] = "left"
    name: str
    reason: str
    seq: int


@dataclass(frozen=True, slots=True)
class Message:
    kind: ClassVar[str] = "message"
    name: str
    text: str
    seq: int


@dataclass(frozen=True, slots=True)
class Admin:
    kind: ClassVar[str] = "admin"
    text: str
    seq: int


@dataclass(frozen=True, slots=True)
class Members:
    kind: ClassVar[str] = "members"
    names: tuple[str, ...]
    seq: int


@dataclass(frozen=True, slots=True)
class LostCount:
    """``lost`` datagrams missing so far out of ``lost + received``; ``new`` is this change."""

    kind: ClassVar[str] = "lost"
    lost: int
    received: int
    new: int


@dataclass(frozen=True, slots=True)
class ChatErrorEvent:
    kind: ClassVar[str] = "error"
    code: str
    text: str


ChatEvent = Joined | Left | Message | Admin | Members | LostCount | ChatErrorEvent


class ChatClient:
    """One member's link to a chat server. Thread-safe; see the module docstring."""

    def __init__(
        self,
        host: str,
        port: int,
        transport: str = "udp",
        *,
        login_timeout: float = DEFAULT_LOGIN_TIMEOUT,
        ping_interval: float | None = None,
    ) -> None:
        if transport not in ("udp", "tcp"):
            raise ValueError(f"transport must be 'udp' or 'tcp', not {transport!r}")
        self.host = host
        self.port = port
        self.transport = transport
        self.login_timeout = login_timeout
        self.ping_interval = ping_interval
        #: The name the server accepted, or None when not in the room.
        self.name: str | None = None
        #: Members as last known (from Members, Joined and Left events).
        self.members: list[str] = []
        #: Seconds of silence after which the server drops a member (from OK LOGIN).
        self.server_timeout: float | None = None
        self.lost = 0
        self.received = 0
        self.events: queue.Queue[ChatEvent] = queue.Queue()
        #: Called (from the receiver thread) when an event arrives and none has been
        #: since the last ``drain()``; it must not block. None: nobody is told.
        self.on_events: Callable[[], None] | None = None
        #: Whether the next event should call ``on_events``: re-armed by every drain.
        self._wake_owed = True
        self._sock: socket.socket | None = None
        #: Why the TCP connection is gone (the server closed it), or None while it is up.
        self.link_error: str | None = None
        self._send_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._replies: queue.Queue[p.ServerLine] = queue.Queue()
        self._awaiting_reply = False
        self._expected_seq = 1
        self._gaps: collections.OrderedDict[int, None] = collections.OrderedDict()
        self._stop = threading.Event()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._receiver: threading.Thread | None = None
        self._heartbeat: threading.Thread | None = None

    # -- life cycle ----------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._sock is not None and self.link_error is None and not self._stop.is_set()

    @property
    def logged_in(self) -> bool:
        return self.name is not None

    def connect(self) -> None:
        """Open the socket (TCP: connect; UDP: fix the peer) and start receiving.

        Calling it again after the server closed a TCP connection reconnects.
        """
        if self._stop.is_set():
            raise ChatError("this client is closed: make a new one", "link")
        if self._sock is not None:
            if self.link_error is None:
                return
            if self._receiver is not None:
                self._receiver.join(timeout=2)  # it ended when the link broke
            self._sock.close()
            self._sock = None
        kind = socket.SOCK_DGRAM if self.transport == "udp" else socket.SOCK_STREAM
        try:
            family, _, _, _, address = socket.getaddrinfo(self.host, self.port, type=kind)[0]
            sock = socket.socket(family, kind)
        except OSError as error:
            raise ChatError(f"cannot resolve {self.host}:{self.port}: {error}", "link") from None
        try:
            sock.settimeout(self.login_timeout)
            # A connected UDP socket only receives the server's datagrams, and
            # learns from ICMP when nothing listens on the port.
            sock.connect(address)
            sock.settimeout(None)
        except OSError as error:
            sock.close()
            raise ChatError(
                f"cannot connect to {self.transport} {self.host}:{self.port}: {error.strerror or error}",
                "link",
            ) from None
        self._sock = sock
        self._buffer = b""
        self.link_error = None
        self._receiver = threading.Thread(
            target=self._receive_loop, name=f"chat-receiver-{self.port}", daemon=True
        )
        self._receiver.start()

    def login(self, name: str) -> None:
        """Enter the room as ``name``. Raises NameTaken, or ChatError with the server's reason."""
        if self._sock is None or self.link_error is not None:
            self.connect()
        if self.name is not None:
            if p.name_key(name) == p.name_key(self.name):
                return
            raise ChatError(
                f"already in the room as {self.name!r}: leave first", "already-logged-in"
            )
        problem = p.name_problem(name)
        if problem:
            raise ChatError(problem, p.ERR_BAD_NAME)
        with self._state_lock:
            self._expected_seq = 1
            self._gaps.clear()
        reply = self._request(f"LOGIN {name}", ("OK LOGIN",))
        if reply.kind == "ERR":
            if reply.code == p.ERR_NAME_TAKEN:
                raise NameTaken(reply.text, reply.code)
            raise ChatError(reply.text, reply.code)
        self.name = reply.name
        self.server_timeout = reply.timeout or None
        if self._heartbeat is None:
            self._heartbeat = threading.Thread(
                target=self._heartbeat_loop, name=f"chat-heartbeat-{self.port}", daemon=True
            )
            self._heartbeat.start()

    def say(self, text: str) -> None:
        """Send ``text`` to everyone else. ChatError if not logged in or the text is invalid."""
        if self.name is None:
            raise ChatError("not in the room: log in first", p.ERR_NOT_LOGGED_IN)
        problem = p.text_problem(text)
        if problem:
            raise ChatError(problem, p.ERR_BAD_TEXT)
        self._send(f"SAY {text}")

    def request_members(self) -> None:
        """Ask for the member list; it arrives as a Members event."""
        if self.name is None:
            raise ChatError("not in the room: log in first", p.ERR_NOT_LOGGED_IN)
        self._send("WHO")

    def check_membership(self) -> None:
        """Send a PING now: a server that no longer counts us (it restarted) answers ERR not-logged-in.

        Quiet when not in the room or the link is down (the heartbeat reports that).
        """
        if self.name is None:
            return
        with contextlib.suppress(ChatError):
            self._send("PING")

    def leave(self) -> None:
        """Leave the room (QUIT). Quiet if not in the room; the socket stays open."""
        if self.name is None or self._sock is None:
            return
        try:
            self._request("QUIT", ("OK QUIT",), timeout=min(self.login_timeout, 1.0))
        except ChatError:
            pass  # the server is gone or silent: we are out of the room either way
        finally:
            self.name = None
            self.members = []

    def close(self) -> None:
        """Leave if needed, stop the threads and close the socket. Idempotent."""
        if self._sock is not None and not self._stop.is_set():
            with contextlib.suppress(OSError):
                self.leave()
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"x")
        current = threading.current_thread()
        for thread in (self._receiver, self._heartbeat):
            if thread is not None and thread is not current:
                thread.join(timeout=2)
        if self._sock is not None:
            self._sock.close()
        self._wake_reader.close()
        self._wake_writer.close()

    def __enter__(self) -> ChatClient:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- events ------------------------------------------------------------------------

    def drain(self, max_events: int | None = None) -> list[ChatEvent]:
        """Every event received so far (at most ``max_events``), without blocking.

        Re-arms ``on_events`` first, so an event that lands while this drains
        (after its last look at the queue) still calls it.
        """
        self._wake_owed = True
        events: list[ChatEvent] = []
        while max_events is None or len(events) < max_events:
            try:
                events.append(self.events.get_nowait())
            except queue.Empty:
                break
        return events

    def next_event(self, timeout: float | None = None) -> ChatEvent | None:
        """The next event, waiting up to ``timeout`` seconds; None if none came."""
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            return None

    # -- sending -----------------------------------------------------------------------

    def _send(self, line: str) -> None:
        sock = self._sock
        if sock is None or self._stop.is_set():
            raise ChatError("not connected", "link")
        if self.link_error is not None:
            raise ChatError(self.link_error, "link")
        data = line.encode("utf-8") + b"\n"
        try:
            with self._send_lock:
                if self.transport == "udp":
                    sock.send(data)
                else:
                    sock.sendall(data)
        except OSError as error:
            raise ChatError(
                f"cannot send to {self.host}:{self.port}: {error.strerror or error}", "link"
            ) from None

    def _request(
        self, line: str, ok_kinds: tuple[str, ...], timeout: float | None = None
    ) -> p.ServerLine:
        """Send ``line`` and wait for its OK or ERR (resent over UDP, which may lose it)."""
        timeout = self.login_timeout if timeout is None else timeout
        with self._state_lock:
            self._awaiting_reply = True
            while not self._replies.empty():
                self._replies.get_nowait()
        try:
            deadline = time.monotonic() + timeout
            self._send(line)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ChatError(
                        f"no answer from the {self.transport} server at {self.host}:{self.port} "
                        f"after {timeout:g} s: is it running?",
                        "link",
                    )
                wait = min(remaining, UDP_RETRY_INTERVAL) if self.transport == "udp" else remaining
                try:
                    reply = self._replies.get(timeout=wait)
                except queue.Empty:
                    if self.transport == "udp":
                        self._send(line)
                    continue
                if reply.kind == "LINK":
                    raise ChatError(reply.text, "link")
                if reply.kind in ok_kinds or reply.kind == "ERR":
                    return reply
        finally:
            with self._state_lock:
                self._awaiting_reply = False

    def _heartbeat_loop(self) -> None:
        while True:
            interval = self.ping_interval or max(0.05, (self.server_timeout or 30.0) / 3)
            if self._stop.wait(interval):
                return
            if self.name is not None:
                try:
                    self._send("PING")
                except ChatError as error:
                    self._emit(ChatErrorEvent("link", str(error)))

    # -- receiving ------------------------------------------------------------------------

    def _receive_loop(self) -> None:
        sock = self._sock
        assert sock is not None
        waiting = [sock, self._wake_reader]
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select(waiting, [], [])
            except (OSError, ValueError):
                return
            if self._stop.is_set():
                return
            if sock not in ready:
                continue
            try:
                data = sock.recv(65536)
            except ConnectionRefusedError:
                # ICMP port unreachable for a datagram we sent: nobody listens there.
                self._link_failed(f"nothing is listening on udp {self.host}:{self.port}")
                continue
            except OSError as error:
                self._link_failed(
                    f"connection to {self.host}:{self.port} failed: {error}", down=True
                )
                return
            if self.transport == "udp":
                self._handle_line(p.strip_line_end(data))
                continue
            if not data:
                self._link_failed(
                    f"the server at {self.host}:{self.port} closed the connection", down=True
                )
                return
            # TCP is a byte stream (粘包): a recv may hold half a line or several lines.
            self._buffer += data
            *lines, self._buffer = self._buffer.split(b"\n")
            for line in lines:
                self._handle_line(line.rstrip(b"\r"))

    def _link_failed(self, reason: str, down: bool = False) -> None:
        """The server is unreachable (UDP: maybe for now) or, with ``down``, the connection is over."""
        self.name = None
        if down:
            self.link_error = reason
        with self._state_lock:
            awaiting = self._awaiting_reply
        if awaiting:
            self._replies.put(p.ServerLine("LINK", text=reason))
        else:
            self._emit(ChatErrorEvent("link", reason))

    def _handle_line(self, raw: bytes) -> None:
        try:
            line = p.parse_server_line(raw.decode("utf-8"))
        except (UnicodeDecodeError, p.ProtocolError) as error:
            self._emit(ChatErrorEvent("protocol", f"unreadable message from the server: {error}"))
            return
        kind = line.kind
        if kind == "PONG":
            return  # the heartbeat's answer: being answered is all it is for
        if kind.startswith("OK "):
            self._replies.put(line)
            return
        if kind == "ERR":
            with self._state_lock:
                awaiting = self._awaiting_reply
            if awaiting:
                self._replies.put(line)
                return
            if line.code in (p.ERR_TIMED_OUT, p.ERR_NOT_LOGGED_IN):
                self.name = None  # the server no longer counts us as a member
            self._emit(ChatErrorEvent(line.code, line.text))
            return
        if not self._count(line.seq):
            return  # a duplicate datagram
        if kind == "MSG":
            self._emit(Message(line.name, line.text, line.seq))
        elif kind == "JOIN":
            if line.name not in self.members:
                self.members.append(line.name)
            self._emit(Joined(line.name, line.seq))
        elif kind == "LEAVE":
            if line.name in self.members:
                self.members.remove(line.name)
            self._emit(Left(line.name, line.text, line.seq))
        elif kind == "ADMIN":
            self._emit(Admin(line.text, line.seq))
        elif kind == "MEMBERS":
            self.members = list(line.names)
            self._emit(Members(line.names, line.seq))

    def _count(self, seq: int) -> bool:
        """Account ``seq`` for losses; False for a datagram already seen."""
        new = 0
        with self._state_lock:
            if seq == self._expected_seq:
                self._expected_seq += 1
            elif seq > self._expected_seq:
                for missing in range(self._expected_seq, seq):
                    self._gaps[missing] = None
                while len(self._gaps) > MAX_REMEMBERED_GAPS:
                    self._gaps.popitem(last=False)
                new = seq - self._expected_seq
                self._expected_seq = seq + 1
            elif seq in self._gaps:
                del self._gaps[seq]  # arrived late, not lost after all
                new = -1
            else:
                return False
            self.lost += new
            self.received += 1
            lost, received = self.lost, self.received
        if new:
            self._emit(LostCount(lost, received, new))
        return True

    def _emit(self, event: ChatEvent) -> None:
        self.events.put(event)
        if self._wake_owed:
            self._wake_owed = False
            callback = self.on_events
            if callback is not None:
                callback()
