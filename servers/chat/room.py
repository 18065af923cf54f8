"""The chat room as a pure state machine (course 2.2.5 群聊聊天室): datagrams in, datagrams out.

No sockets, no threads, no clock of its own: the transports (UDP loop, TCP
handlers) pass each received message with the sender's address and the current
time, and send the ``(address, payload)`` datagrams that come back. That keeps the five
features of the exercise, the security rules and the limits testable in
microseconds, and lets one room serve UDP and TCP alike.

Security: the room stamps every message with the name *it* holds for the
sender's address, so nobody can speak as another member or as the admin; an
address that has not logged in only ever gets ``ERR not-logged-in``.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from servers.chat import protocol as p
from servers.stats import format_address

if TYPE_CHECKING:
    from servers.stats import ServerStats

DEFAULT_TIMEOUT = 30.0
DEFAULT_RATE_LIMIT = 5.0
DEFAULT_MAX_MEMBERS = 2000


#: One message to send: ``(address, payload)``, the payload a full ``\\n``-terminated line.
#: A plain tuple, not a NamedTuple: a fan-out makes one per member, and speed counts there.
Datagram = tuple[Any, bytes]


@dataclass(slots=True)
class Member:
    """Someone in the room, keyed by the address their datagrams come from."""

    name: str
    address: Any
    last_seen: float
    #: Last sequence number sent to this member (per member, so a gap is a loss).
    seq: int = 0
    #: Token bucket of the per-member rate limit.
    tokens: float = 0.0
    tokens_at: float = 0.0
    said: int = 0
    #: Datagrams to this member the drop knob swallowed (what its client should count).
    dropped: int = 0


class ChatRoom:
    """Membership, broadcasts, limits and liveness of one room.

    ``receive(data, address, now)`` handles one client message; ``announce`` is
    the admin speaking; ``expire(now)`` drops members silent for ``timeout``
    seconds (call it when ``next_deadline()`` has passed); ``disconnect`` is a
    TCP connection closing without QUIT. Each returns the datagrams to send.

    ``drop_rate`` is the classroom loss knob: that fraction of *sequenced*
    datagrams is silently not sent (the sequence number is still used up, so the
    receiver sees the gap). Replies (OK, ERR, PONG) are never dropped, so
    logging in stays predictable.
    """

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        rate_limit: float = DEFAULT_RATE_LIMIT,
        max_members: int = DEFAULT_MAX_MEMBERS,
        drop_rate: float = 0.0,
        seed: int | None = None,
        stats: ServerStats | None = None,
        count_connections: bool = True,
    ) -> None:
        if not 0.0 <= drop_rate < 1.0:
            raise ValueError(f"drop rate must be in [0, 1), got {drop_rate}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.timeout = timeout
        self.rate_limit = rate_limit
        #: A member may burst this many messages before the rate limit bites.
        self.burst = max(1.0, 2 * rate_limit)
        self.max_members = max_members
        self.drop_rate = drop_rate
        self._random = random.Random(seed)
        self.stats = stats
        #: UDP has no connections, so members are what the live panel counts as
        #: active; over TCP the model already counts the connections.
        self.count_connections = count_connections
        #: address -> Member, oldest activity first (so expiry looks at the front only).
        self.members: OrderedDict[Any, Member] = OrderedDict()
        #: casefolded name -> Member
        self.by_name: dict[str, Member] = {}
        #: Sequenced datagrams the drop knob swallowed.
        self.dropped = 0

    # -- public API --------------------------------------------------------------

    def receive(self, data: bytes, address: Any, now: float) -> list[Datagram]:
        """Handle one message (one datagram, or one TCP line) from ``address``."""
        member = self.members.get(address)
        if member is not None:
            member.last_seen = now
            self.members.move_to_end(address)
        if len(data) > p.MAX_MESSAGE_BYTES + 2:
            return self._error(
                address,
                p.ERR_TOO_LONG,
                f"messages are at most {p.MAX_TEXT_BYTES} bytes of text (got a {len(data)}-byte message)",
            )
        try:
            line = p.strip_line_end(data).decode("utf-8")
        except UnicodeDecodeError:
            return self._error(address, p.ERR_BAD_UTF8, "messages must be UTF-8 text")
        command, _, argument = line.partition(" ")
        command = command.upper()
        if command == "LOGIN":
            return self._login(argument.strip(), address, member, now)
        if command not in p.CLIENT_COMMANDS:
            shown = command[:20] or "(empty)"
            return self._error(
                address,
                p.ERR_UNKNOWN_COMMAND,
                f"unknown command {shown!r}: use LOGIN, SAY, WHO, PING or QUIT",
            )
        if member is None:
            return self._error(
                address, p.ERR_NOT_LOGGED_IN, "send LOGIN <name> first to enter the room"
            )
        if command == "SAY":
            return self._say(member, argument, now)
        if command == "PING":
            return [(address, b"PONG\n")]
        if command == "WHO":
            # Rate-limited like SAY: a 3-byte WHO can cost a 40 KB answer in a full room.
            if not self._take_token(member, now):
                return self._rate_limited(member)
            return self._members_for(member)
        # QUIT
        replies: list[Datagram] = [(address, b"OK QUIT\n")]
        return replies + self._remove(member, "quit")

    def announce(self, text: str) -> list[Datagram]:
        """The admin speaks to everyone (``ADMIN seq text``); bad text raises ValueError."""
        problem = p.text_problem(text)
        if problem:
            raise ValueError(problem)
        self._event("admin", text[:80])
        return self._broadcast(b"ADMIN ", text.encode("utf-8"), exclude=None)

    def expire(self, now: float) -> list[Datagram]:
        """Drop every member silent for ``timeout`` seconds; tell them and the others."""
        out: list[Datagram] = []
        while self.members:
            member = next(iter(self.members.values()))
            if member.last_seen + self.timeout > now:
                break
            out.extend(self._time_out(member))
        return out

    def expire_address(self, address: Any, now: float) -> list[Datagram]:
        """Drop the member at ``address`` if it is overdue (a TCP handler's own timer)."""
        member = self.members.get(address)
        if member is None or member.last_seen + self.timeout > now:
            return []
        return self._time_out(member)

    def disconnect(self, address: Any) -> list[Datagram]:
        """The member's connection closed without QUIT: the others hear it left."""
        member = self.members.get(address)
        if member is None:
            return []
        return self._remove(member, "disconnected")

    def next_deadline(self) -> float | None:
        """When the longest-silent member times out, or None for an empty room."""
        if not self.members:
            return None
        return next(iter(self.members.values())).last_seen + self.timeout

    def deadline_of(self, address: Any) -> float | None:
        """When the member at ``address`` times out, or None if it is not a member."""
        member = self.members.get(address)
        return None if member is None else member.last_seen + self.timeout

    def names(self) -> list[str]:
        """Members' names, in order of arrival."""
        return [member.name for member in self.by_name.values()]

    def __len__(self) -> int:
        return len(self.members)

    # -- the commands --------------------------------------------------------------

    def _login(self, name: str, address: Any, member: Member | None, now: float) -> list[Datagram]:
        if member is not None:
            if p.name_key(name) == p.name_key(member.name):
                # A retry (the OK was lost on the way): answer again, announce nothing.
                return [self._login_ok(member)]
            return self._error(
                address,
                p.ERR_ALREADY_LOGGED_IN,
                f"you are already in the room as {member.name!r}: QUIT first",
            )
        problem = p.name_problem(name)
        if problem:
            return self._error(address, p.ERR_BAD_NAME, problem)
        key = p.name_key(name)
        if key in self.by_name:
            return self._error(
                address,
                p.ERR_NAME_TAKEN,
                f"the name {self.by_name[key].name!r} is already in the room: choose another",
            )
        if len(self.members) >= self.max_members:
            if self.stats is not None:
                self.stats.count_refusal(f"room full, refused {name}")
            return [
                self._err_line(
                    address, p.ERR_ROOM_FULL, f"the room is full ({self.max_members} members)"
                )
            ]
        member = Member(name, address, now, tokens=self.burst, tokens_at=now)
        self.members[address] = member
        self.by_name[key] = member
        if self.stats is not None and self.count_connections:
            self.stats.member_joined()
        # With the address, so the live panel can say who is in the room from where.
        self._event("join", f"{name} from {format_address(address)}")
        out = [self._login_ok(member)]
        out.extend(self._members_for(member))
        out.extend(self._broadcast(b"JOIN ", name.encode("utf-8"), exclude=member))
        return out

    def _say(self, member: Member, text: str, now: float) -> list[Datagram]:
        problem = p.text_problem(text)
        if problem:
            code = p.ERR_EMPTY if not text.strip() else p.ERR_BAD_TEXT
            if len(text.encode("utf-8")) > p.MAX_TEXT_BYTES:
                code = p.ERR_TOO_LONG
            return self._error(member.address, code, problem)
        if not self._take_token(member, now):
            return self._rate_limited(member)
        member.said += 1
        if self.stats is not None:
            self.stats.count_request(f"{member.name}: {text[:60]}")
        body = member.name.encode("utf-8") + b" " + text.encode("utf-8")
        return self._broadcast(b"MSG ", body, exclude=member)

    def _take_token(self, member: Member, now: float) -> bool:
        """Token bucket: ``rate_limit`` tokens a second, at most ``burst`` saved up."""
        if self.rate_limit <= 0:
            return True
        member.tokens = min(self.burst, member.tokens + (now - member.tokens_at) * self.rate_limit)
        member.tokens_at = now
        if member.tokens < 1.0:
            return False
        member.tokens -= 1.0
        return True

    def _rate_limited(self, member: Member) -> list[Datagram]:
        return self._error(
            member.address,
            p.ERR_RATE_LIMITED,
            f"slow down: at most {self.rate_limit:g} messages per second",
        )

    def _members_for(self, member: Member) -> list[Datagram]:
        body = " ".join(self.names()).encode("utf-8")
        return self._sequenced(member, b"MEMBERS ", body)

    def _time_out(self, member: Member) -> list[Datagram]:
        farewell = self._err_line(
            member.address,
            p.ERR_TIMED_OUT,
            f"you were silent for {self.timeout:g} s and left the room: LOGIN again",
        )
        return [farewell, *self._remove(member, "timeout")]

    def _remove(self, member: Member, reason: str) -> list[Datagram]:
        del self.members[member.address]
        del self.by_name[p.name_key(member.name)]
        if self.stats is not None and self.count_connections:
            self.stats.member_left()
        self._event("leave", f"{member.name} ({reason})")
        body = member.name.encode("utf-8") + b" " + reason.encode("ascii")
        return self._broadcast(b"LEAVE ", body, exclude=None)

    # -- sending ---------------------------------------------------------------------

    def _broadcast(self, kind: bytes, body: bytes, exclude: Member | None) -> list[Datagram]:
        """``kind seq body`` to every member but ``exclude``, each with its own seq.

        The hot path of a fan-out: one tuple and one bytes formatting per member.
        """
        out: list[Datagram] = []
        append = out.append
        rest = b" " + body + b"\n"
        dropping = self.drop_rate > 0.0
        chance = self._random.random
        for member in self.members.values():
            if member is exclude:
                continue
            member.seq += 1
            if dropping and chance() < self.drop_rate:
                self.dropped += 1
                member.dropped += 1
                continue
            append((member.address, b"%s%d%s" % (kind, member.seq, rest)))
        return out

    def _sequenced(self, member: Member, kind: bytes, body: bytes) -> list[Datagram]:
        member.seq += 1
        if self.drop_rate > 0.0 and self._random.random() < self.drop_rate:
            self.dropped += 1
            member.dropped += 1
            return []
        return [(member.address, b"%s%d %s\n" % (kind, member.seq, body))]

    def _login_ok(self, member: Member) -> Datagram:
        line = f"OK LOGIN {member.name} {self.timeout:g}\n"
        return (member.address, line.encode("utf-8"))

    def _error(self, address: Any, code: str, reason: str) -> list[Datagram]:
        if self.stats is not None:
            self.stats.count_error(f"{code}: {reason}")
        return [self._err_line(address, code, reason)]

    @staticmethod
    def _err_line(address: Any, code: str, reason: str) -> Datagram:
        return (address, f"ERR {code} {reason}\n".encode())

    def _event(self, kind: str, detail: str) -> None:
        if self.stats is not None:
            self.stats.event(kind, detail)
