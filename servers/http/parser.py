"""Sans-IO HTTP/1.1 request parser (course 4.1.2 HTTP请求): bytes in, request events out.

The h11 pattern without the generality: :meth:`RequestParser.feed` stores bytes,
:meth:`RequestParser.next_event` hands back one event at a time — a complete
:class:`Request`, the :data:`EXPECT_CONTINUE` marker, or an :class:`HttpError`
carrying the status code to answer with — and ``None`` when it needs more bytes.
Nothing here touches a socket or a clock, so every rule is tested with plain bytes.

The per-request path is kept lean on purpose: the head is found with one
``find``, validated with one regular expression per part, and the header fields
land in a plain ``dict`` (lower-case names, ``str`` values). The rules follow
RFC 9112 and agree with h11 on valid input; the deliberate differences (505 for
unsupported versions, obsolete line folding refused, blank lines before a
request skipped, bare LF line ends accepted, Content-Length together with
Transfer-Encoding refused) are listed in the tests.
"""

from __future__ import annotations

import re

#: Longest request line accepted (longer: 414 URI Too Long).
MAX_REQUEST_LINE = 8 * 1024
#: Largest header section accepted, request line excluded (larger: 431).
MAX_HEADER_BYTES = 16 * 1024
#: Most header fields accepted (more: 431).
MAX_HEADER_FIELDS = 100
#: Default limit on a request body (larger: 413 Content Too Large).
DEFAULT_MAX_BODY = 1024 * 1024
#: Longest chunk-size line (hex digits plus extensions) accepted in a chunked body.
MAX_CHUNK_LINE = 1024

_TOKEN = r"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
# Field values: visible characters and obs-text, single spaces or tabs inside (RFC 9110 5.5).
_FIELD_CONTENT = r"[^\x00\s]+(?:[ \t]+[^\x00\s]+)*"
_REQUEST_LINE = re.compile(rf"({_TOKEN}) ([\x21-\x7e]+) HTTP/([0-9])\.([0-9])", re.ASCII)
_HEADER_FIELD_PATTERN = rf"({_TOKEN}):[ \t]*((?:{_FIELD_CONTENT})?)[ \t]*\r\n"
_HEADER_FIELD = re.compile(_HEADER_FIELD_PATTERN, re.ASCII)
_HEADER_LINE = rf"{_TOKEN}:[ \t]*(?:{_FIELD_CONTENT})?[ \t]*\r\n"
_HEADER_BLOCK = re.compile(rf"(?:{_HEADER_LINE})*", re.ASCII)
# The whole head in one match: request line, then the header block as group 5.
_HEAD = re.compile(
    rf"({_TOKEN}) ([\x21-\x7e]+) HTTP/([0-9])\.([0-9])\r\n((?:{_HEADER_LINE})*)", re.ASCII
)
_CHUNK_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]{1,20})(?:;.*)?[ \t]*")
_CONTENT_LENGTH = re.compile(r"[0-9]{1,18}", re.ASCII)
_LF_BLANK_LINE = re.compile(rb"\n\r?\n")
_TRAILER_END = re.compile(rb"\r?\n\r?\n")


class HttpError(Exception):
    """A request the server must refuse: ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {detail}")
        self.status = status
        self.detail = detail
        #: Extra response headers the refusal needs (``Allow`` on a 405).
        self.headers = headers or {}


class Request:
    """One complete request: the event the parser emits."""

    __slots__ = ("method", "target", "version", "headers", "body", "keep_alive")

    def __init__(
        self,
        method: str,
        target: str,
        version: str,
        headers: dict[str, str],
        body: bytes,
        keep_alive: bool,
    ) -> None:
        self.method = method
        self.target = target
        #: "HTTP/1.1" or "HTTP/1.0".
        self.version = version
        #: Lower-case field names; repeated fields joined with ", ".
        self.headers = headers
        self.body = body
        #: Whether the connection may carry another request after this one.
        self.keep_alive = keep_alive

    def __repr__(self) -> str:
        return f"Request({self.method} {self.target} {self.version}, {len(self.body)} body bytes)"


class _ExpectContinue:
    """Marker event: the head asked ``Expect: 100-continue`` and its body is not here yet."""

    def __repr__(self) -> str:
        return "EXPECT_CONTINUE"


EXPECT_CONTINUE = _ExpectContinue()

Event = Request | _ExpectContinue | HttpError

# Body framing of the request whose head has been parsed.
_NO_BODY, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_CRLF, _TRAILER = range(6)


class RequestParser:
    """Turns the bytes of one connection into :class:`Request` events, in order."""

    def __init__(
        self,
        max_body: int = DEFAULT_MAX_BODY,
        max_request_line: int = MAX_REQUEST_LINE,
        max_header_bytes: int = MAX_HEADER_BYTES,
        max_header_fields: int = MAX_HEADER_FIELDS,
    ) -> None:
        self.max_body = max_body
        self.max_request_line = max_request_line
        self.max_header_bytes = max_header_bytes
        self.max_header_fields = max_header_fields
        # Heads shorter than both limits cannot break either: skip measuring them.
        self._sizes_checked_above = min(max_request_line, max_header_bytes)
        self._buffer = b""
        self._pos = 0
        #: Request whose head is parsed and whose body is still arriving.
        self._pending: Request | None = None
        self._state = _NO_BODY
        self._remaining = 0
        self._body_parts: list[bytes] = []
        self._body_size = 0
        #: Bytes of a refused (413) body still on their way.
        self.unread_body = 0
        #: Once set, the connection is beyond repair: every later call returns it again.
        self.error: HttpError | None = None
        # A kept-alive client often sends the very same head again (a poll, a page
        # reloaded, a load generator): the same bytes parse to the same request, so
        # the last bodiless one is kept and handed out again on an exact match.
        # Safe to share: nothing modifies a request without a body once parsed.
        self._repeated_head = b""
        self._repeated_request: Request | None = None

    # -- input ------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Store received bytes; call :meth:`next_event` to get what they complete."""
        if self._pos >= len(self._buffer):
            self._buffer = data
        else:
            self._buffer = self._buffer[self._pos :] + data
        self._pos = 0

    @property
    def buffered(self) -> int:
        """Bytes received but not yet consumed by an event."""
        return len(self._buffer) - self._pos

    @property
    def in_body(self) -> bool:
        """A request head was parsed and its body is still arriving."""
        return self._pending is not None

    @property
    def idle(self) -> bool:
        """Between requests: nothing buffered, no body pending."""
        return self._pending is None and self._pos >= len(self._buffer)

    # -- events -----------------------------------------------------------------

    def next_event(self) -> Event | None:
        """The next complete event, or None when more bytes are needed."""
        if self.error is not None:
            return self.error
        try:
            if self._pending is not None:
                return self._continue_body()
            buffer = self._buffer
            pos = self._pos
            end = buffer.find(b"\r\n\r\n", pos)
            if end < 0:
                return self._next_head_slowly()
            head = buffer[pos : end + 2]
            if head == self._repeated_head:
                self._pos = end + 4
                return self._repeated_request
            try:
                # The head with its last line's CRLF: one regular expression checks it all.
                request = self._parse_head(head.decode("latin-1"))
            except HttpError:
                # The CRLF-only fast path fails on blank lines before the request
                # line and on bare-LF line ends; both are accepted, more slowly.
                if buffer.startswith((b"\r\n", b"\n"), pos) or b"\n" in buffer[pos:end].replace(
                    b"\r\n", b""
                ):
                    return self._next_head_slowly()
                raise
            headers = request.headers
            if "content-length" not in headers and "transfer-encoding" not in headers:
                self._pos = end + 4
                self._repeated_head = head
                self._repeated_request = request
                return request
            return self._start_body(request, end + 4)
        except HttpError as error:
            self.error = error
            self._buffer = b""
            self._pos = 0
            self._pending = None
            return error

    def _next_head_slowly(self) -> Event | None:
        """Leading blank lines, bare-LF line ends, or an incomplete head."""
        buffer = self._buffer
        pos = self._pos
        # RFC 9112 2.2: ignore empty lines received before a request line.
        while buffer.startswith(b"\r\n", pos) or buffer.startswith(b"\n", pos):
            pos += 1 if buffer[pos] == 10 else 2
        self._pos = pos
        if pos >= len(buffer):
            self._buffer, self._pos = b"", 0
            return None
        if buffer.startswith(b"\r", pos) and len(buffer) - pos == 1:
            return None  # half of a blank line
        crlf_end = buffer.find(b"\r\n\r\n", pos)
        blank = _LF_BLANK_LINE.search(buffer, pos)
        if blank is not None and (crlf_end < 0 or blank.start() < crlf_end + 1):
            raw_head = buffer[pos : blank.start()]
            lines = [line[:-1] if line.endswith(b"\r") else line for line in raw_head.split(b"\n")]
            if any(b"\r" in line for line in lines):
                raise HttpError(400, "stray carriage return in the request head")
            head = "".join(line.decode("latin-1") + "\r\n" for line in lines)
            return self._start_body(self._parse_head(head), blank.end())
        if crlf_end >= 0:
            head = buffer[pos : crlf_end + 2].decode("latin-1")
            return self._start_body(self._parse_head(head), crlf_end + 4)
        self._check_incomplete_head(buffer, pos)
        return None

    def _check_incomplete_head(self, buffer: bytes, pos: int) -> None:
        """Refuse a head that is already too long before its end has arrived."""
        line_end = buffer.find(b"\n", pos)
        if buffer[pos] < 0x21:
            # Not the start of a request line (a TLS handshake, say): say so now.
            raise HttpError(400, "malformed request line")
        if line_end < 0:
            if len(buffer) - pos > self.max_request_line:
                raise HttpError(414, f"request line longer than {self.max_request_line} bytes")
            # Fail early on a line that cannot become a request line (h11 does too).
            first_space = buffer.find(b" ", pos, pos + 64)
            if first_space < 0 and len(buffer) - pos > 64:
                raise HttpError(400, "malformed request line")
            return
        if line_end - pos > self.max_request_line + 1:
            raise HttpError(414, f"request line longer than {self.max_request_line} bytes")
        if len(buffer) - line_end - 1 > self.max_header_bytes:
            raise HttpError(431, f"header section larger than {self.max_header_bytes} bytes")

    def _parse_head(self, head: str) -> Request:
        """Request line and header fields; ``head`` ends with its last line's CRLF."""
        match = _HEAD.fullmatch(head)
        if match is None:
            raise self._diagnose(head)
        method, target, major, minor, block = match.groups()
        if len(head) > self._sizes_checked_above:
            block_start = match.start(5)
            if block_start - 2 > self.max_request_line:
                raise HttpError(414, f"request line longer than {self.max_request_line} bytes")
            if len(head) - block_start > self.max_header_bytes + 2:
                raise HttpError(431, f"header section larger than {self.max_header_bytes} bytes")
        if major != "1":
            raise HttpError(505, f"HTTP/{major}.{minor} is not supported; use HTTP/1.1")
        # RFC 9110 2.5: a 1.x request with a higher minor is answered as 1.1.
        version = "HTTP/1.0" if minor == "0" else "HTTP/1.1"
        headers: dict[str, str] = {}
        if block:
            # The regular expression has validated every line, so plain splitting is safe.
            lines = block[:-2].split("\r\n")
            if len(lines) > self.max_header_fields:
                raise HttpError(431, f"more than {self.max_header_fields} header fields")
            for line in lines:
                name, _, value = line.partition(":")
                name = name.lower()
                value = value.strip(" \t")
                if name in headers:
                    value = _merge_repeated(name, headers[name], value)
                headers[name] = value
        connection = headers.get("connection")
        if version == "HTTP/1.1":
            if "host" not in headers:
                raise HttpError(400, "HTTP/1.1 request without a Host header")
            keep_alive = connection is None or "close" not in _tokens(connection)
        else:
            keep_alive = connection is not None and "keep-alive" in _tokens(connection)
        return Request(method, target, version, headers, b"", keep_alive)

    def _diagnose(self, head: str) -> HttpError:
        """The most precise refusal for a head that failed validation (the slow path)."""
        line_end = head.find("\r\n")
        request_line = head[:line_end]
        if len(request_line) > self.max_request_line:
            return HttpError(414, f"request line longer than {self.max_request_line} bytes")
        if _REQUEST_LINE.fullmatch(request_line) is None:
            return HttpError(400, f"malformed request line: {request_line[:80]!r}")
        block = head[line_end + 2 :]
        if len(block) > self.max_header_bytes + 2:
            return HttpError(431, f"header section larger than {self.max_header_bytes} bytes")
        return HttpError(400, _describe_bad_header(block))

    # -- bodies -------------------------------------------------------------------

    def _start_body(self, request: Request, pos: int) -> Event | None:
        headers = request.headers
        if "transfer-encoding" in headers:
            coding = headers["transfer-encoding"] = headers["transfer-encoding"].lower()
            if coding != "chunked":
                raise HttpError(501, f"Transfer-Encoding {coding!r} is not implemented")
            if "content-length" in headers:
                # RFC 9112 6.3: a request-smuggling shape; refuse it rather than guess.
                raise HttpError(400, "both Content-Length and Transfer-Encoding")
            self._state = _CHUNK_SIZE
        elif "content-length" in headers:
            length = _parse_content_length(headers["content-length"])
            headers["content-length"] = str(length)
            if length > self.max_body:
                # Still to arrive after this read: the handler reads and drops it
                # before closing, so the client sees the 413 rather than a reset.
                self.unread_body = length - (len(self._buffer) - pos)
                raise HttpError(
                    413, f"body of {length} bytes exceeds the {self.max_body}-byte limit"
                )
            if length == 0:
                self._pos = pos
                return request
            self._state = _LENGTH
            self._remaining = length
        else:
            self._pos = pos
            return request
        self._pos = pos
        self._pending = request
        self._body_parts = []
        self._body_size = 0
        event = self._continue_body()
        if event is None and request.version == "HTTP/1.1":
            expect = headers.get("expect")
            if expect is not None:
                if expect.lower() != "100-continue":
                    raise HttpError(417, f"cannot meet Expect: {expect[:40]}")
                return EXPECT_CONTINUE
        return event

    def _continue_body(self) -> Request | None:
        buffer = self._buffer
        pos = self._pos
        if self._state == _LENGTH:
            available = len(buffer) - pos
            if available < self._remaining:
                if available:
                    self._body_parts.append(buffer[pos:] if pos else buffer)
                    self._remaining -= available
                self._buffer, self._pos = b"", 0
                return None
            end = pos + self._remaining
            self._body_parts.append(buffer[pos:end])
            self._pos = end
            return self._finish_body()
        while True:
            state = self._state
            if state == _CHUNK_DATA:
                take = min(len(buffer) - pos, self._remaining)
                if take:
                    self._body_parts.append(buffer[pos : pos + take])
                    pos += take
                    self._remaining -= take
                if self._remaining:
                    self._buffer, self._pos = b"", 0
                    return None
                self._state = _CHUNK_CRLF
            elif state == _CHUNK_CRLF:
                if len(buffer) - pos < 2:
                    if buffer[pos:] not in (b"", b"\r"):
                        raise HttpError(400, "chunk data not followed by CRLF")
                    break
                if not buffer.startswith(b"\r\n", pos):
                    raise HttpError(400, "chunk data not followed by CRLF")
                pos += 2
                self._state = _CHUNK_SIZE
            elif state == _CHUNK_SIZE:
                line_end = buffer.find(b"\r\n", pos)
                if line_end < 0:
                    if len(buffer) - pos > MAX_CHUNK_LINE:
                        raise HttpError(400, "chunk size line too long")
                    break
                match = _CHUNK_SIZE_LINE.fullmatch(buffer, pos, line_end)
                if match is None:
                    raise HttpError(
                        400, f"malformed chunk size line: {buffer[pos:line_end][:40]!r}"
                    )
                size = int(match.group(1), 16)
                pos = line_end + 2
                if self._body_size + size > self.max_body:
                    raise HttpError(413, f"chunked body exceeds the {self.max_body}-byte limit")
                self._body_size += size
                if size == 0:
                    self._state = _TRAILER
                else:
                    self._state = _CHUNK_DATA
                    self._remaining = size
            else:  # _TRAILER: optional trailer fields, then a blank line
                if buffer.startswith(b"\r\n", pos):
                    self._pos = pos + 2
                    return self._finish_body()
                if buffer.startswith(b"\n", pos):
                    self._pos = pos + 1
                    return self._finish_body()
                end = _TRAILER_END.search(buffer, pos)
                if end is None:
                    if len(buffer) - pos > self.max_header_bytes:
                        raise HttpError(431, "trailer section too large")
                    break
                lines = buffer[pos : end.start()].replace(b"\r\n", b"\n").split(b"\n")
                block = "".join(line.decode("latin-1") + "\r\n" for line in lines)
                if _HEADER_BLOCK.fullmatch(block) is None:
                    raise HttpError(400, "malformed trailer field")
                self._pos = end.end()
                return self._finish_body()
        self._buffer = buffer[pos:]
        self._pos = 0
        return None

    def _finish_body(self) -> Request:
        request = self._pending
        assert request is not None
        parts = self._body_parts
        request.body = parts[0] if len(parts) == 1 else b"".join(parts)
        self._pending = None
        self._body_parts = []
        self._state = _NO_BODY
        return request


def _tokens(value: str) -> list[str]:
    return [token.strip().lower() for token in value.split(",")]


def _parse_content_length(value: str) -> int:
    # h11 and RFC 9110 8.6 accept a list of identical values ("5, 5").
    values = {item.strip() for item in value.split(",")}
    if len(values) != 1:
        raise HttpError(400, "conflicting Content-Length values")
    (single,) = values
    if _CONTENT_LENGTH.fullmatch(single) is None:
        raise HttpError(400, f"malformed Content-Length: {single[:40]!r}")
    return int(single)


def _merge_repeated(name: str, first: str, second: str) -> str:
    if name == "host":
        raise HttpError(400, "more than one Host header")
    if name == "transfer-encoding":
        raise HttpError(501, "more than one Transfer-Encoding header")
    if name == "content-length":
        if _parse_content_length(first) != _parse_content_length(second):
            raise HttpError(400, "conflicting Content-Length headers")
        return first
    return f"{first}, {second}"


def _describe_bad_header(block: str) -> str:
    """Name the first bad line (only on the error path, so it may be slow)."""
    for line in block.split("\r\n"):
        if line and _HEADER_FIELD.fullmatch(line + "\r\n") is None:
            if line[:1] in (" ", "\t"):
                return "obsolete line folding is not accepted"
            return f"malformed header line: {line[:80]!r}"
    return "malformed header section"
