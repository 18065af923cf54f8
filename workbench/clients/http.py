"""One-shot HTTP/1.1 client over a raw socket: the exact bytes on the wire, and where the time went.

The course's request anatomy — request line, headers, blank line, body — is kept
byte for byte (``raw_request``/``raw_response``), so the UI can show the CRLFs.
Timing splits connect (DNS + TCP handshake), first byte and total, as curl's
``-w`` does. UI-free: no textual or rich import.
"""

from __future__ import annotations

import shlex
import socket
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
USER_AGENT = "workbench-http/0.1"
#: Bodies larger than this are cut (the tester is for looking, not downloading).
MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_HEAD_BYTES = 64 * 1024


class HttpClientError(Exception):
    """A request that could not complete; ``kind`` is a short category for the UI."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass
class HttpRequest:
    """What the user asked to send."""

    method: str
    url: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    timeout: float = 10.0


@dataclass(frozen=True)
class HttpTimings:
    """Milliseconds from the start: connected, first response byte, response complete."""

    connect_ms: float
    first_byte_ms: float
    total_ms: float


@dataclass
class HttpResponse:
    """The parsed answer plus the raw exchange."""

    request: HttpRequest
    http_version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    raw_request: bytes
    raw_response: bytes
    timings: HttpTimings
    truncated: bool = False

    @property
    def status_line(self) -> str:
        return f"{self.http_version} {self.status} {self.reason}".rstrip()

    def header(self, name: str, default: str = "") -> str:
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return default

    @property
    def content_type(self) -> str:
        return self.header("content-type").split(";")[0].strip().lower()

    @property
    def charset(self) -> str:
        for part in self.header("content-type").split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                return value.strip('"')
        return "utf-8"

    def body_text(self) -> str:
        try:
            return self.body.decode(self.charset, errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class ParsedUrl:
    scheme: str
    host: str
    port: int
    target: str
    host_header: str


def parse_url(url: str) -> ParsedUrl:
    """Validate and split a URL; a missing scheme means http://. Raises HttpClientError('bad url')."""
    text = url.strip()
    if not text:
        raise HttpClientError("bad url", "bad URL: empty")
    if "://" not in text:
        text = "http://" + text
    if any(ch.isspace() for ch in text):
        raise HttpClientError("bad url", f"bad URL {url!r}: contains spaces")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise HttpClientError("bad url", f"bad URL {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise HttpClientError("bad url", f"bad URL {url!r}: scheme must be http or https")
    if not parts.hostname:
        raise HttpClientError("bad url", f"bad URL {url!r}: no host")
    default_port = 443 if parts.scheme == "https" else 80
    port = port or default_port
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    host = parts.hostname
    shown_host = f"[{host}]" if ":" in host else host
    host_header = shown_host if port == default_port else f"{shown_host}:{port}"
    return ParsedUrl(parts.scheme, host, port, target, host_header)


def parse_header_text(text: str) -> list[tuple[str, str]]:
    """Lines of 'Name: value' (blank lines and '#' comments skipped) -> pairs.

    Raises HttpClientError('bad header') naming the line, so the UI can say which.
    """
    headers: list[tuple[str, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, sep, value = stripped.partition(":")
        name = name.strip()
        if not sep or not name or any(ch.isspace() or ord(ch) < 33 for ch in name):
            raise HttpClientError(
                "bad header", f"header line {number} {stripped!r}: expected 'Name: value'"
            )
        headers.append((name, value.strip()))
    return headers


def build_request_bytes(request: HttpRequest, url: ParsedUrl | None = None) -> bytes:
    """Serialise the request exactly as it will be sent (CRLF line ends)."""
    url = url or parse_url(request.url)
    method = request.method.upper()
    names = {name.lower() for name, _ in request.headers}
    lines = [f"{method} {url.target} HTTP/1.1"]
    if "host" not in names:
        lines.append(f"Host: {url.host_header}")
    if "user-agent" not in names:
        lines.append(f"User-Agent: {USER_AGENT}")
    if "accept" not in names:
        lines.append("Accept: */*")
    lines.extend(f"{name}: {value}" for name, value in request.headers)
    if (request.body or method in ("POST", "PUT", "PATCH")) and "content-length" not in names:
        lines.append(f"Content-Length: {len(request.body)}")
    if "connection" not in names:
        # One request per connection keeps the timing honest: connect is always measured.
        lines.append("Connection: close")
    try:
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError:
        raise HttpClientError(
            "bad header", "headers must be Latin-1 text (encode other characters)"
        ) from None
    return head + request.body


def _network_error(exc: OSError, url: ParsedUrl, timeout: float) -> HttpClientError:
    where = f"{url.host}:{url.port}"
    if isinstance(exc, socket.gaierror):
        return HttpClientError("dns", f"cannot resolve host {url.host!r}")
    if isinstance(exc, TimeoutError | socket.timeout):
        return HttpClientError("timeout", f"timeout: no answer from {where} within {timeout:g} s")
    if isinstance(exc, ConnectionRefusedError):
        return HttpClientError("refused", f"connection refused by {where} (is the server running?)")
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return HttpClientError("reset", f"connection reset by {where}")
    if isinstance(exc, ssl.SSLError):
        return HttpClientError("tls", f"TLS error with {where}: {exc.reason or exc}")
    return HttpClientError("network", f"network error with {where}: {exc.strerror or exc}")


def send_request(request: HttpRequest) -> HttpResponse:
    """Send one request on a fresh connection and read the whole response.

    Blocking (run it in a worker thread). Raises HttpClientError, never a bare OSError.
    """
    method = request.method.upper().strip()
    if not method or not method.isalpha():
        raise HttpClientError("bad method", f"bad method {request.method!r}")
    request.method = method
    url = parse_url(request.url)
    raw_request = build_request_bytes(request, url)
    started = time.perf_counter()
    deadline = started + request.timeout

    def elapsed_ms() -> float:
        return (time.perf_counter() - started) * 1000.0

    sock: socket.socket | None = None
    try:
        sock = socket.create_connection((url.host, url.port), timeout=request.timeout)
        if url.scheme == "https":
            context = ssl.create_default_context()
            sock = context.wrap_socket(sock, server_hostname=url.host)
        connect_ms = elapsed_ms()
        sock.sendall(raw_request)
        reader = _ResponseReader(sock, deadline, method == "HEAD")
        reader.read_head()
        first_byte_ms = reader.first_byte_ms(started)
        reader.read_body()
        total_ms = elapsed_ms()
    except HttpClientError:
        raise
    except OSError as exc:
        raise _network_error(exc, url, request.timeout) from None
    finally:
        if sock is not None:
            sock.close()
    return HttpResponse(
        request=request,
        http_version=reader.version,
        status=reader.status,
        reason=reader.reason,
        headers=reader.headers,
        body=reader.body,
        raw_request=raw_request,
        raw_response=bytes(reader.raw),
        timings=HttpTimings(connect_ms, first_byte_ms, total_ms),
        truncated=reader.truncated,
    )


class _ResponseReader:
    """Reads one response from a blocking socket, keeping every raw byte."""

    def __init__(self, sock: socket.socket, deadline: float, is_head: bool) -> None:
        self.sock = sock
        self.deadline = deadline
        self.is_head = is_head
        self.raw = bytearray()
        self.first_byte_at: float | None = None
        self.head_end = -1
        self.version = ""
        self.status = 0
        self.reason = ""
        self.headers: list[tuple[str, str]] = []
        self.body = b""
        self.truncated = False
        self.eof = False

    def _receive(self) -> bool:
        remaining = self.deadline - time.perf_counter()
        if remaining <= 0:
            raise TimeoutError
        self.sock.settimeout(remaining)
        data = self.sock.recv(65536)
        if self.first_byte_at is None and data:
            self.first_byte_at = time.perf_counter()
        if not data:
            self.eof = True
            return False
        self.raw += data
        return True

    def first_byte_ms(self, started: float) -> float:
        return ((self.first_byte_at or time.perf_counter()) - started) * 1000.0

    def read_head(self) -> None:
        while True:
            end = self.raw.find(b"\r\n\r\n")
            if end >= 0:
                self.head_end = end + 4
                break
            if len(self.raw) > MAX_HEAD_BYTES:
                raise HttpClientError("protocol", "response headers larger than 64 KiB")
            if not self._receive():
                if not self.raw:
                    raise HttpClientError(
                        "closed", "the server closed the connection without answering"
                    )
                raise HttpClientError("protocol", "the server closed the connection mid-headers")
        lines = bytes(self.raw[: self.head_end - 4]).decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/") or not (code.isdigit() and len(code) == 3):
            raise HttpClientError("protocol", f"not an HTTP response: {lines[0][:80]!r}")
        self.version, self.status, self.reason = version, int(code), reason
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                self.headers.append((name.strip(), value.strip()))

    def _header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def read_body(self) -> None:
        if self.is_head or self.status in (204, 304) or 100 <= self.status < 200:
            return
        length_text = self._header("content-length")
        encoding = (self._header("transfer-encoding") or "").lower()
        if "chunked" in encoding:
            self.body = self._read_chunked()
            return
        if length_text is not None:
            try:
                length = int(length_text)
            except ValueError:
                raise HttpClientError("protocol", f"bad Content-Length {length_text!r}") from None
            wanted = min(length, MAX_BODY_BYTES)
            while len(self.raw) - self.head_end < wanted:
                if not self._receive():
                    raise HttpClientError(
                        "protocol",
                        f"connection closed after {len(self.raw) - self.head_end} of "
                        f"{length} body bytes",
                    )
            self.truncated = length > MAX_BODY_BYTES
            self.body = bytes(self.raw[self.head_end : self.head_end + wanted])
            return
        while len(self.raw) - self.head_end < MAX_BODY_BYTES and self._receive():
            pass
        self.truncated = not self.eof
        self.body = bytes(self.raw[self.head_end : self.head_end + MAX_BODY_BYTES])

    def _read_chunked(self) -> bytes:
        body = bytearray()
        position = self.head_end
        while True:
            line_end = self.raw.find(b"\r\n", position)
            while line_end < 0:
                if not self._receive():
                    raise HttpClientError("protocol", "connection closed inside a chunked body")
                line_end = self.raw.find(b"\r\n", position)
            size_text = bytes(self.raw[position:line_end]).split(b";")[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise HttpClientError("protocol", f"bad chunk size {size_text[:20]!r}") from None
            if size == 0:
                # Trailers end with an empty line; keep them in the raw view.
                while self.raw.find(b"\r\n\r\n", line_end - 2) < 0 and not self.eof:
                    self._receive()
                return bytes(body)
            while len(self.raw) < line_end + 2 + size + 2:
                if not self._receive():
                    raise HttpClientError("protocol", "connection closed inside a chunk")
            body += self.raw[line_end + 2 : line_end + 2 + size]
            position = line_end + 2 + size + 2
            if len(body) > MAX_BODY_BYTES:
                self.truncated = True
                return bytes(body[:MAX_BODY_BYTES])


def to_curl(request: HttpRequest) -> str:
    """The same request as a shell-quoted curl command line."""
    parts = ["curl", "-i"]
    method = request.method.upper()
    if method == "HEAD":
        parts.append("-I")
    elif method != "GET" or request.body:
        parts += ["-X", method]
    for name, value in request.headers:
        parts += ["-H", f"{name}: {value}"]
    if request.body:
        parts += ["--data-binary", request.body.decode("utf-8", errors="replace")]
    parts.append(request.url.strip())
    return " ".join(shlex.quote(part) for part in parts)


def visible_wire_text(raw: bytes) -> str:
    """Raw bytes as text with CR and LF drawn as ␍␊ (then a real line break).

    Other control bytes, and bytes that are not UTF-8, become \\xNN so nothing
    invisible hides in the view.
    """
    text = raw.decode("utf-8", errors="backslashreplace")
    out: list[str] = []
    for char in text:
        if char == "\r":
            out.append("␍")
        elif char == "\n":
            out.append("␊\n")
        elif char == "\t" or " " <= char <= "~" or char >= "\xa0":
            out.append(char)
        else:
            out.append(f"\\x{ord(char):02x}")
    return "".join(out)
