"""The group-chat wire protocol (course 2.2.5 群聊聊天室): one UTF-8 text line per message.

Shared by the server core and the client library, so both sides agree on every
field. Over UDP a datagram is one message (UDP keeps message boundaries); over
TCP a message is one line ending in ``\\n`` (TCP is a byte stream, 粘包, so the
protocol itself has to mark where a message ends). See docs/chat-protocol.md.

Client to server::

    LOGIN <name>        SAY <text>        WHO        PING        QUIT

Server to client (replies are not sequenced; room events carry ``seq``, counted
per member from 1 so a gap means a lost datagram)::

    OK LOGIN <name> <timeout-seconds>     OK QUIT     PONG     ERR <code> <reason>
    JOIN <seq> <name>                     LEAVE <seq> <name> <quit|timeout|disconnected>
    MSG <seq> <name> <text>               ADMIN <seq> <text>
    MEMBERS <seq> <name> <name>...
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

#: Longest chat text, in UTF-8 bytes (the exercise's limit).
MAX_TEXT_BYTES = 1000
#: Longest message accepted: a command word, a space, the text and a line end.
MAX_MESSAGE_BYTES = MAX_TEXT_BYTES + 16
#: Names: 1..MAX_NAME_LENGTH characters, each a letter, a digit, "_" or "-".
MAX_NAME_LENGTH = 20
#: Names nobody may take: the server speaks as these.
RESERVED_NAMES = frozenset({"admin", "server", "system", "管理员"})
#: How a member left the room (last field of LEAVE).
LEAVE_REASONS = ("quit", "timeout", "disconnected")

#: Client commands.
CLIENT_COMMANDS = ("LOGIN", "SAY", "WHO", "PING", "QUIT")

# ERR codes: the first word after ERR, for programs; the rest is for people.
ERR_NOT_LOGGED_IN = "not-logged-in"
ERR_NAME_TAKEN = "name-taken"
ERR_BAD_NAME = "bad-name"
ERR_ALREADY_LOGGED_IN = "already-logged-in"
ERR_TOO_LONG = "too-long"
ERR_BAD_UTF8 = "bad-utf8"
ERR_BAD_TEXT = "bad-text"
ERR_EMPTY = "empty"
ERR_RATE_LIMITED = "rate-limited"
ERR_UNKNOWN_COMMAND = "unknown-command"
ERR_ROOM_FULL = "room-full"
ERR_TIMED_OUT = "timed-out"


def strip_line_end(data: bytes) -> bytes:
    """Drop one trailing ``\\n`` or ``\\r\\n`` (what ``nc`` adds when you press Enter)."""
    if data.endswith(b"\r\n"):
        return data[:-2]
    if data.endswith(b"\n"):
        return data[:-1]
    return data


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be used, or None when it is fine."""
    if not name:
        return f"LOGIN needs a name: 1-{MAX_NAME_LENGTH} letters, digits, _ or -"
    if len(name) > MAX_NAME_LENGTH:
        return f"names are at most {MAX_NAME_LENGTH} characters (got {len(name)})"
    if not all(char.isalnum() or char in "_-" for char in name):
        return f"names are 1-{MAX_NAME_LENGTH} letters, digits, _ or - (no spaces)"
    if name.casefold() in RESERVED_NAMES:
        return f"the name {name!r} is reserved for the server"
    return None


def text_problem(text: str) -> str | None:
    """Why chat ``text`` cannot be sent, or None when it is fine."""
    if not text.strip():
        return "nothing to say: SAY needs some text"
    size = len(text.encode("utf-8"))
    if size > MAX_TEXT_BYTES:
        return f"messages are at most {MAX_TEXT_BYTES} bytes of UTF-8 (got {size})"
    # One message is one line: a newline inside would split it in two over TCP.
    if any(unicodedata.category(char) == "Cc" and char != "\t" for char in text):
        return "messages are one line of text: no newlines or control characters"
    return None


def name_key(name: str) -> str:
    """Names are unique without regard to case: "Alice" and "alice" are the same member."""
    return name.casefold()


# -- server lines, parsed (the client's side) ------------------------------------


@dataclass(frozen=True, slots=True)
class ServerLine:
    """One parsed server message: ``kind`` is the first word; ``seq`` is 0 when unsequenced."""

    kind: str
    seq: int = 0
    name: str = ""
    text: str = ""
    names: tuple[str, ...] = ()
    code: str = ""
    timeout: float = 0.0


class ProtocolError(ValueError):
    """A server line that does not follow the protocol."""


def parse_server_line(line: str) -> ServerLine:
    """Parse one server message (without its line end). Raises ProtocolError."""
    kind, _, rest = line.partition(" ")
    try:
        if kind == "OK":
            what, _, detail = rest.partition(" ")
            if what == "LOGIN":
                name, _, timeout = detail.partition(" ")
                return ServerLine("OK LOGIN", name=name, timeout=float(timeout or 0))
            return ServerLine("OK " + what, text=detail)
        if kind == "PONG":
            return ServerLine("PONG")
        if kind == "ERR":
            code, _, reason = rest.partition(" ")
            return ServerLine("ERR", code=code, text=reason)
        if kind in ("JOIN", "LEAVE", "MSG", "ADMIN", "MEMBERS"):
            seq_text, _, body = rest.partition(" ")
            seq = int(seq_text)
            if kind == "JOIN":
                return ServerLine(kind, seq, name=body)
            if kind == "LEAVE":
                name, _, reason = body.partition(" ")
                return ServerLine(kind, seq, name=name, text=reason)
            if kind == "MSG":
                name, _, text = body.partition(" ")
                return ServerLine(kind, seq, name=name, text=text)
            if kind == "ADMIN":
                return ServerLine(kind, seq, text=body)
            return ServerLine(kind, seq, names=tuple(body.split()))
    except ValueError as error:
        raise ProtocolError(f"malformed {kind} line: {line!r}") from error
    raise ProtocolError(f"unknown server message: {line!r}")
