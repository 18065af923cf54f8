"""HTTP/1.1 on the client side of the wire, sans-IO: URLs, request bytes, and a response reader.

The reader follows h11's pattern (the protocol code never touches a socket): the
caller feeds it the bytes it received and gets back events — a response head, body
data, the end of the message — framed by the rules of RFC 9112 section 6:
no body for HEAD, 1xx, 204 and 304; Transfer-Encoding: chunked (with trailers);
Content-Length; otherwise the body runs until the server closes. The HTTP tab and
the load generator share it. UI-free: no textual or rich import.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
USER_AGENT = "workbench-http/0.1"
#: A response head (status line and headers) or a trailer block longer than this is refused.
MAX_HEAD_BYTES = 64 * 1024
#: A chunk-size line longer than this is refused (20 hex digits plus extensions is plenty).
MAX_CHUNK_LINE_BYTES = 4096
#: Methods whose request normally carries a body, so it always gets a Content-Length.
METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


class WireError(ValueError):
    """Bytes or text that cannot be HTTP/1.1; the message says what and where."""


class UrlError(WireError):
    """A URL the clients cannot request."""


class HeaderError(WireError):
    """A request header that cannot be put on the wire."""


class ProtocolError(WireError):
    """A response that breaks HTTP/1.1 framing; the connection cannot be trusted after it."""


# ---------------------------------------------------------------------------
# URLs and requests


@dataclass(frozen=True)
class ParsedUrl:
    """Where a request goes: the address to connect to and the request-target to ask for."""

    scheme: str
    host: str
    port: int
    target: str
    host_header: str


def parse_url(url: str, schemes: Iterable[str] = ("http", "https")) -> ParsedUrl:
    """Validate and split a URL; a missing scheme means http://. Raises UrlError."""
    text = url.strip()
    if not text:
        raise UrlError("bad URL: empty")
    if "://" not in text:
        text = "http://" + text
    if any(ch.isspace() for ch in text):
        raise UrlError(f"bad URL {url!r}: contains spaces")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise UrlError(f"bad URL {url!r}: {exc}") from None
    allowed = tuple(schemes)
    if parts.scheme not in allowed:
        names = " or ".join(allowed)
        raise UrlError(f"bad URL {url!r}: scheme must be {names}")
    if not parts.hostname:
        raise UrlError(f"bad URL {url!r}: no host")
    default_port = 443 if parts.scheme == "https" else 80
    port = port or default_port
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    host = parts.hostname
    shown_host = f"[{host}]" if ":" in host else host
    host_header = shown_host if port == default_port else f"{shown_host}:{port}"
    return ParsedUrl(parts.scheme, host, port, target, host_header)


def build_request(
    method: str,
    url: ParsedUrl,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    *,
    user_agent: str = USER_AGENT,
    accept: str | None = "*/*",
    close: bool = True,
) -> bytes:
    """The request exactly as it goes on the wire: request line, headers, blank line, body.

    Host, User-Agent, Accept (unless None), Content-Length and (with ``close``)
    Connection are added unless ``headers`` already has them. Raises HeaderError for text that
    is not Latin-1.
    """
    method = method.upper()
    headers = list(headers)
    names = {name.lower() for name, _ in headers}
    lines = [f"{method} {url.target} HTTP/1.1"]
    if "host" not in names:
        lines.append(f"Host: {url.host_header}")
    if "user-agent" not in names:
        lines.append(f"User-Agent: {user_agent}")
    if accept is not None and "accept" not in names:
        lines.append(f"Accept: {accept}")
    lines.extend(f"{name}: {value}" for name, value in headers)
    if (body or method in METHODS_WITH_BODY) and "content-length" not in names:
        lines.append(f"Content-Length: {len(body)}")
    if close and "connection" not in names:
        lines.append("Connection: close")
    try:
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError:
        raise HeaderError("headers must be Latin-1 text (encode other characters)") from None
    return head + body


# ---------------------------------------------------------------------------
# Response events


@dataclass(frozen=True)
class ResponseHead:
    """Status line and headers; a 1xx head is informational and another head follows."""

    http_version: str
    status: int
    reason: str
    #: Names keep the case the server sent; values are Latin-1 text, surrounding spaces trimmed.
    headers: list[tuple[str, str]]

    @property
    def informational(self) -> bool:
        return self.status < 200


@dataclass(frozen=True)
class BodyData:
    """A piece of the body as it arrived (chunk framing removed)."""

    data: bytes


@dataclass(frozen=True)
class EndOfMessage:
    """The response is complete; ``trailers`` are the headers after a chunked body."""

    trailers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class ConnectionClosed:
    """The server closed the connection between responses (not inside one)."""


Event = ResponseHead | BodyData | EndOfMessage | ConnectionClosed

# The grammar h11 uses (RFC 9110/9112 ABNF), so the two agree on what is well formed.
_TOKEN = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
_FIELD_VCHAR = rb"[^\x00\s]"
_STATUS_LINE = re.compile(rb"HTTP/(1\.[0-9]) ([0-9]{3})(?: ((?:[ \t]|" + _FIELD_VCHAR + rb")*))?")
_HEADER_FIELD = re.compile(
    rb"(" + _TOKEN + rb"):[ \t]*"
    rb"((?:" + _FIELD_VCHAR + rb"+(?:[ \t]+" + _FIELD_VCHAR + rb"+)*)?)[ \t]*"
)
_CHUNK_HEADER = re.compile(rb"([0-9A-Fa-f]{1,20})(?:;.*)?[ \t]*")
_CONTENT_LENGTH_DIGITS = 20

# Reader states.
_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILERS, _UNTIL_CLOSE, _DONE = range(8)
_NO_BODY_STATUSES = frozenset({204, 304})


def _parse_fields(lines: list[bytes], what: str) -> list[tuple[str, str]]:
    """Header lines -> (name, value) pairs; obsolete line folding is joined as h11 does."""
    joined: list[bytes] = []
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if not joined:
                raise ProtocolError(f"{what} starts with a continuation line: {line[:60]!r}")
            joined[-1] += b" " + line.lstrip(b" \t")
        else:
            joined.append(line)
    fields: list[tuple[str, str]] = []
    for line in joined:
        match = _HEADER_FIELD.fullmatch(line)
        if match is None:
            raise ProtocolError(f"bad {what} line {line[:60]!r}: expected 'Name: value'")
        fields.append((match[1].decode("latin-1"), match[2].decode("latin-1")))
    return fields


def _comma_list(value: str) -> list[str]:
    """A comma-separated header value as lowercase items (Connection, Transfer-Encoding)."""
    return [part.strip(" \t").lower() for part in value.split(",") if part.strip(" \t")]


class ResponseReader:
    """Turns the bytes of HTTP/1.1 responses into events, without doing any I/O.

    ``feed(data)`` returns the events the new bytes complete; ``feed_eof()`` says
    the server closed. After EndOfMessage, ``keep_alive`` tells whether the
    connection can carry another request; ``next_response()`` readies the reader
    for its answer. Malformed input raises ProtocolError.

    ``feed_status(data)`` is the load generator's entry: no events, body bytes
    skipped, and a whole keep-alive response with a Content-Length in one piece
    (nearly every response of a load test) recognised with a few ``find`` calls,
    or one ``startswith`` when its head repeats the last one.
    """

    def __init__(self, method: str = "GET") -> None:
        self.method = method.upper()
        self._buffer = bytearray()
        self._state = _HEAD
        #: Body bytes still due in the current Content-Length body or chunk.
        self._remaining = 0
        #: Where the blank-line search resumes, so a slow head is not rescanned from the start.
        self._search_from = 0
        #: False while no byte of the next response has arrived (the reader is idle).
        self._started = False
        #: The head and size of the last response feed_status took whole (its fast path).
        self._repeat_head = b"\0"
        self._repeat_size = -1
        #: True when the current head fixes the body's length (Content-Length, or no body).
        self._length_framed = False
        #: The last final (non-1xx) status seen; 0 before one.
        self.status = 0
        self.http_version = ""
        self.keep_alive = False

    @property
    def complete(self) -> bool:
        """True from EndOfMessage until ``next_response()``."""
        return self._state == _DONE

    @property
    def idle(self) -> bool:
        """True when no byte of the next response has arrived yet."""
        return not self._started

    def next_response(self, method: str | None = None) -> list[Event]:
        """Expect the answer to the next request; returns events of bytes already buffered."""
        if self._state != _DONE:
            raise ProtocolError("next_response() before the current response ended")
        if method is not None and method.upper() != self.method:
            self.method = method.upper()
            self._repeat_size = -1
        self._state = _HEAD
        self._search_from = 0
        # status and keep_alive still describe the last response until the next head.
        self._started = bool(self._buffer)
        return self._process() if self._buffer else []

    # -- the load generator's entry -----------------------------------------

    def feed_status(self, data: bytes) -> int:
        """Feed ``data``; return the status of the response it completes, or 0 if none yet.

        The reader is then ready for the next response at once (when
        ``keep_alive``). Two fast paths for a keep-alive response with a
        Content-Length arriving whole in one piece: the same head as the last such
        response (a load test asks for one URL over and over, so only the Date
        changes, once a second) costs one ``startswith``; a new head is checked
        for its framing only — status, Content-Length, no Transfer-Encoding, no
        close — not for the grammar of every line. Anything else goes the general way.
        """
        if not self._started:
            if len(data) == self._repeat_size and data.startswith(self._repeat_head):
                return self.status
            head_end = data.find(b"\r\n\r\n")
            if head_end > 0 and data.startswith(b"HTTP/1.1 ") and self.method != "HEAD":
                at = data.find(b"\r\nContent-Length: ", 8, head_end)
                if at > 0:
                    line_end = data.find(b"\r\n", at + 18, head_end + 2)
                    length_text = data[at + 18 : line_end]
                    code = data[9:12]
                    if (
                        length_text.isdigit()
                        and len(data) - head_end - 4 == int(length_text)
                        and code.isdigit()
                        and data[12:13] in (b" ", b"\r")
                    ):
                        status = int(code)
                        lowered = data[:head_end].lower()
                        if (
                            status >= 200
                            and status not in _NO_BODY_STATUSES
                            and lowered.count(b"content-length") == 1
                            and b"transfer-encoding" not in lowered
                            and b"close" not in lowered
                        ):
                            self.status = status
                            self.http_version = "HTTP/1.1"
                            self.keep_alive = True
                            # With its blank line: a match then ends the head at the same place.
                            self._repeat_head = data[: head_end + 4]
                            self._repeat_size = len(data)
                            return status
        was_idle = not self._started
        completed = heads = 0
        for event in self.feed(data):
            if type(event) is EndOfMessage:
                completed = self.status
            elif type(event) is ResponseHead:
                heads += 1
        if completed and self.keep_alive:
            if was_idle and heads == 1 and not self._buffer and self._length_framed:
                # Exactly one response, whose length its head fixes (Content-Length,
                # or no body): the same bytes again frame the same way.
                self._repeat_head = data[: data.find(b"\r\n\r\n") + 4]
                self._repeat_size = len(data)
            self.next_response()
        return completed

    def feed_eof_status(self) -> int:
        """The server closed: the status of a response that ends with the close, else 0."""
        completed = 0
        for event in self.feed_eof():
            if type(event) is EndOfMessage:
                completed = self.status
        return completed

    # -- the general path --------------------------------------------------

    def feed(self, data: bytes) -> list[Event]:
        """Take newly received bytes; return the events they complete (maybe none)."""
        if not data:
            return []
        state = self._state
        if not self._buffer and (
            state == _UNTIL_CLOSE or (state == _LENGTH and len(data) <= self._remaining)
        ):
            # The body of a long response: hand the bytes on without buffering them.
            self._started = True
            if state == _UNTIL_CLOSE:
                return [BodyData(bytes(data))]
            self._remaining -= len(data)
            if self._remaining:
                return [BodyData(bytes(data))]
            self._state = _DONE
            return [BodyData(bytes(data)), EndOfMessage()]
        self._buffer += data
        self._started = True
        return self._process()

    def feed_eof(self) -> list[Event]:
        """The server closed the connection; raises ProtocolError if that cut a response short."""
        state = self._state
        if state == _UNTIL_CLOSE:
            self._state = _DONE
            self.keep_alive = False
            return [EndOfMessage(), ConnectionClosed()]
        if state == _DONE:
            return [ConnectionClosed()]
        if state == _HEAD and not self._started:
            return [ConnectionClosed()]
        if state == _HEAD:
            raise ProtocolError("the server closed the connection mid-headers")
        if state == _LENGTH:
            raise ProtocolError(
                f"the server closed the connection with {self._remaining} body bytes still due"
            )
        raise ProtocolError("the server closed the connection inside a chunked body")

    def _process(self) -> list[Event]:
        events: list[Event] = []
        buffer = self._buffer
        position = 0
        try:
            while True:
                state = self._state
                if state == _HEAD:
                    end = buffer.find(b"\r\n\r\n", position + self._search_from)
                    if end < 0:
                        if len(buffer) - position > MAX_HEAD_BYTES:
                            raise ProtocolError(
                                f"response head longer than {MAX_HEAD_BYTES // 1024} KiB"
                            )
                        self._search_from = max(0, len(buffer) - position - 3)
                        break
                    head = bytes(buffer[position:end])
                    position = end + 4
                    self._search_from = 0
                    events.append(self._start_response(head))
                    if self._state == _DONE:
                        events.append(EndOfMessage())
                elif state == _LENGTH:
                    take = min(self._remaining, len(buffer) - position)
                    if take == 0:
                        break
                    events.append(BodyData(bytes(buffer[position : position + take])))
                    position += take
                    self._remaining -= take
                    if not self._remaining:
                        self._state = _DONE
                        events.append(EndOfMessage())
                elif state == _UNTIL_CLOSE:
                    if position < len(buffer):
                        events.append(BodyData(bytes(buffer[position:])))
                        position = len(buffer)
                    break
                elif state == _CHUNK_SIZE:
                    line_end = buffer.find(b"\r\n", position)
                    if line_end < 0:
                        if len(buffer) - position > MAX_CHUNK_LINE_BYTES:
                            raise ProtocolError("chunk-size line too long")
                        break
                    line = bytes(buffer[position:line_end])
                    match = _CHUNK_HEADER.fullmatch(line)
                    if match is None:
                        raise ProtocolError(f"bad chunk-size line {line[:40]!r}")
                    position = line_end + 2
                    self._remaining = int(match[1], 16)
                    self._state = _CHUNK_DATA if self._remaining else _TRAILERS
                elif state == _CHUNK_DATA:
                    take = min(self._remaining, len(buffer) - position)
                    if take == 0:
                        break
                    events.append(BodyData(bytes(buffer[position : position + take])))
                    position += take
                    self._remaining -= take
                    if not self._remaining:
                        self._state = _CHUNK_END
                elif state == _CHUNK_END:
                    if len(buffer) - position < 2:
                        break
                    if buffer[position : position + 2] != b"\r\n":
                        raise ProtocolError("chunk data is not followed by CRLF")
                    position += 2
                    self._state = _CHUNK_SIZE
                elif state == _TRAILERS:
                    if buffer[position : position + 2] == b"\r\n":
                        position += 2
                        trailers: list[tuple[str, str]] = []
                    else:
                        end = buffer.find(b"\r\n\r\n", position)
                        if end < 0:
                            if len(buffer) - position > MAX_HEAD_BYTES:
                                raise ProtocolError("trailers too long")
                            break
                        lines = bytes(buffer[position:end]).split(b"\r\n")
                        position = end + 4
                        trailers = _parse_fields(lines, "trailer")
                    self._state = _DONE
                    events.append(EndOfMessage(trailers))
                else:  # _DONE: what follows belongs to the next response
                    break
        finally:
            del buffer[:position]
        return events

    def _start_response(self, head: bytes) -> ResponseHead:
        """Parse a head and set the body framing that follows it."""
        self._repeat_size = -1  # status and keep_alive change: the fast path's copy is stale
        lines = head.split(b"\r\n")
        match = _STATUS_LINE.fullmatch(lines[0])
        if match is None:
            raise ProtocolError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
        version = "HTTP/" + match[1].decode("ascii")
        status = int(match[2])
        reason = (match[3] or b"").decode("latin-1")
        headers = _parse_fields(lines[1:], "header")
        event = ResponseHead(version, status, reason, headers)
        if status < 200:
            if status == 101:
                raise ProtocolError("101 Switching Protocols: this client does not switch")
            return event  # informational: the real head follows
        self.status, self.http_version = status, version
        # One pass over the headers for what frames the body and what closes the connection.
        connection: list[str] = []
        codings: list[str] = []
        lengths: set[str] = set()
        for name, value in headers:
            lowered = name.lower()
            if lowered == "content-length":
                # Only OWS (space, tab) is trimmed: str.strip() would also eat \x1c-\x1f.
                lengths.update(part.strip(" \t") for part in value.split(","))
            elif lowered == "transfer-encoding":
                codings.extend(_comma_list(value))
            elif lowered == "connection":
                connection.extend(_comma_list(value))
        self.keep_alive = version == "HTTP/1.1" and "close" not in connection
        length = _content_length(lengths)  # checked even where it frames nothing, as h11 does
        self._length_framed = True
        if self.method == "HEAD" or status in _NO_BODY_STATUSES:
            self._state = _DONE
        elif codings:
            self._length_framed = False
            # RFC 9112 6.3: Transfer-Encoding beats Content-Length; chunked must be last,
            # and a body coded some other way runs until the server closes.
            if codings[-1] == "chunked":
                self._state = _CHUNK_SIZE
            else:
                self._state, self.keep_alive = _UNTIL_CLOSE, False
        else:
            if length is None:
                self._state, self.keep_alive = _UNTIL_CLOSE, False
                self._length_framed = False
            elif length == 0:
                self._state = _DONE
            else:
                self._state, self._remaining = _LENGTH, length
        return event


def _content_length(values: set[str]) -> int | None:
    """The one Content-Length (repeats must agree, as in h11), or None when there is none."""
    if not values:
        return None
    if len(values) > 1:
        raise ProtocolError(f"conflicting Content-Length values {sorted(values)}")
    text = next(iter(values))
    if not text.isdigit() or not text.isascii() or len(text) > _CONTENT_LENGTH_DIGITS:
        raise ProtocolError(f"bad Content-Length {text[:30]!r}")
    return int(text)
