"""One-shot HTTP/1.1 client over a raw socket: the exact bytes on the wire, and where the time went.

The course's request anatomy — request line, headers, blank line, body — is kept
byte for byte (``raw_request``/``raw_response``), so the UI can show the CRLFs.
Timing splits connect (DNS + TCP handshake), first byte and total, as curl's
``-w`` does. The framing is http_wire's sans-IO reader; this module owns the
socket, the clock and the body spool. UI-free: no textual or rich import.
"""

from __future__ import annotations

import os
import shlex
import socket
import ssl
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from workbench.clients.http_wire import (
    MAX_HEAD_BYTES,
    BodyData,
    ConnectionClosed,
    EndOfMessage,
    HeaderError,
    ParsedUrl,
    ProtocolError,
    ResponseHead,
    ResponseReader,
    UrlError,
    build_request,
)
from workbench.clients.http_wire import METHODS as METHODS  # re-exported: the tab lists them
from workbench.clients.http_wire import parse_url as parse_wire_url

#: Body bytes kept in memory for the view; a longer body is read to the end all the
#: same, counted, and spooled to a temporary file so it can be saved whole.
MAX_BODY_BYTES = 8 * 1024 * 1024
#: Response bytes kept as they came off the wire, for the Raw view.
MAX_RAW_BYTES = MAX_HEAD_BYTES + MAX_BODY_BYTES
#: Past this a body is no longer read (the tester is for looking, not for mirroring disks).
MAX_SPOOLED_BODY_BYTES = 2 * 1024 * 1024 * 1024


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
    #: True when reading stopped before the end of the body (MAX_SPOOLED_BODY_BYTES).
    truncated: bool = False
    #: Body bytes received in all; ``body`` keeps the first MAX_BODY_BYTES of them.
    body_length: int = -1
    #: Response bytes received in all (head, body and chunk framing).
    received_bytes: int = -1
    #: The whole body in an unnamed temporary file, when longer than ``body`` keeps.
    body_file: BinaryIO | None = None

    def __post_init__(self) -> None:
        if self.body_length < 0:
            self.body_length = len(self.body)
        if self.received_bytes < 0:
            self.received_bytes = len(self.raw_response)

    @property
    def body_is_partial(self) -> bool:
        """True when ``body`` holds only the first part of what arrived."""
        return self.body_length > len(self.body)

    def release(self) -> None:
        """Drop the temporary copy of a long body (call when the response is replaced)."""
        if self.body_file is not None:
            self.body_file.close()
            self.body_file = None

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


def parse_url(url: str) -> ParsedUrl:
    """Validate and split a URL; a missing scheme means http://. Raises HttpClientError('bad url')."""
    try:
        return parse_wire_url(url)
    except UrlError as exc:
        raise HttpClientError("bad url", str(exc)) from None


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
    try:
        # One request per connection keeps the timing honest: connect is always measured.
        return build_request(
            request.method, url or parse_url(request.url), request.headers, request.body
        )
    except HeaderError as exc:
        raise HttpClientError("bad header", str(exc)) from None


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
    exchange: _ResponseReceiver | None = None
    try:
        sock = socket.create_connection((url.host, url.port), timeout=request.timeout)
        if url.scheme == "https":
            context = ssl.create_default_context()
            sock = context.wrap_socket(sock, server_hostname=url.host)
        connect_ms = elapsed_ms()
        sock.sendall(raw_request)
        exchange = _ResponseReceiver(sock, deadline, method)
        exchange.receive()
        total_ms = elapsed_ms()
    except HttpClientError:
        if exchange is not None:
            exchange.spool.discard()
        raise
    except OSError as exc:
        if exchange is not None:
            exchange.spool.discard()
        raise _network_error(exc, url, request.timeout) from None
    finally:
        if sock is not None:
            sock.close()
    exchange.spool.close()
    head = exchange.head
    assert head is not None  # receive() returns only once the head has arrived
    return HttpResponse(
        request=request,
        http_version=head.http_version,
        status=head.status,
        reason=head.reason,
        headers=head.headers,
        body=bytes(exchange.spool.kept),
        raw_request=raw_request,
        raw_response=bytes(exchange.raw),
        timings=HttpTimings(connect_ms, exchange.first_byte_ms(started), total_ms),
        truncated=exchange.truncated,
        body_length=exchange.spool.length,
        received_bytes=exchange.received,
        body_file=exchange.spool.file,
    )


class BodySpool:
    """A body as it arrives: the first ``keep`` bytes in memory, all of it on disk once longer.

    The file has no name (``TemporaryFile``): the OS reclaims it when it is closed,
    even if the app is killed before it can tidy up.
    """

    def __init__(self, keep: int = MAX_BODY_BYTES) -> None:
        self.keep = keep
        self.kept = bytearray()
        self.length = 0
        self.file: BinaryIO | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.file is None and self.length + len(data) > self.keep:
            # Outlives this call on purpose: the response owns it until release().
            self.file = tempfile.TemporaryFile(prefix="workbench-body-")  # noqa: SIM115
            self.file.write(self.kept)
        if self.file is not None:
            self.file.write(data)
        room = self.keep - len(self.kept)
        if room > 0:
            self.kept += data[:room]
        self.length += len(data)

    def close(self) -> None:
        """The body is complete: flush it to the file, which stays open for saving."""
        if self.file is not None:
            self.file.flush()

    def discard(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


class _ResponseReceiver:
    """Feeds one response from a blocking socket to the sans-IO reader, keeping what the view needs.

    The first raw bytes are kept as they came, every byte is counted, and the body
    goes to a BodySpool.
    """

    def __init__(self, sock: socket.socket, deadline: float, method: str) -> None:
        self.sock = sock
        self.deadline = deadline
        self.reader = ResponseReader(method)
        #: The first MAX_RAW_BYTES of the response exactly as received.
        self.raw = bytearray()
        self.received = 0
        self.first_byte_at: float | None = None
        #: The final (non-1xx) head; informational heads stay visible in ``raw`` only.
        self.head: ResponseHead | None = None
        self.spool = BodySpool()
        self.truncated = False

    def first_byte_ms(self, started: float) -> float:
        return ((self.first_byte_at or time.perf_counter()) - started) * 1000.0

    def receive(self) -> None:
        """Read until the response ends (or the spool is full); raises HttpClientError."""
        while True:
            data = self._recv()
            try:
                events = self.reader.feed(data) if data else self.reader.feed_eof()
            except ProtocolError as exc:
                raise HttpClientError("protocol", str(exc)) from None
            for event in events:
                if type(event) is BodyData:
                    if not self._keep(event.data):
                        return
                elif type(event) is ResponseHead:
                    if not event.informational:
                        self.head = event
                elif type(event) is EndOfMessage:
                    return
                elif type(event) is ConnectionClosed:
                    raise HttpClientError(
                        "closed", "the server closed the connection without answering"
                    )

    def _recv(self) -> bytes:
        remaining = self.deadline - time.perf_counter()
        if remaining <= 0:
            raise TimeoutError
        self.sock.settimeout(remaining)
        data = self.sock.recv(65536)
        if self.first_byte_at is None and data:
            self.first_byte_at = time.perf_counter()
        self.received += len(data)
        room = MAX_RAW_BYTES - len(self.raw)
        if room > 0:
            self.raw += data[:room]
        return data

    def _keep(self, data: bytes) -> bool:
        """Spool body bytes up to MAX_SPOOLED_BODY_BYTES; False once it is full."""
        room = MAX_SPOOLED_BODY_BYTES - self.spool.length
        self.spool.write(data[:room] if len(data) > room else data)
        if self.spool.length >= MAX_SPOOLED_BODY_BYTES:
            self.truncated = True
            return False
        return True


def save_body(response: HttpResponse, folder: Path, name: str | None = None) -> Path:
    """Write the whole body into ``folder`` under a name from the URL; never overwrites a file.

    Blocking (a long body is a file copy). Returns the path written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    wanted = name or _file_name_for(response)
    stem, dot, suffix = wanted.rpartition(".")
    if not dot or not stem:
        stem, suffix = wanted, ""
    path = folder / wanted
    number = 1
    while path.exists():
        path = folder / (f"{stem}-{number}.{suffix}" if suffix else f"{stem}-{number}")
        number += 1
    spool = response.body_file
    with path.open("wb") as out:
        if spool is None:
            out.write(response.body)
            return path
        try:
            # pread: no shared file position, so two saves of one body do not mix.
            descriptor, offset = spool.fileno(), 0
            while chunk := os.pread(descriptor, 1 << 20, offset):
                out.write(chunk)
                offset += len(chunk)
        except ValueError:  # closed: the response was replaced while saving
            raise OSError("the response was replaced before its body was saved") from None
    return path


def _file_name_for(response: HttpResponse) -> str:
    last = unquote(urlsplit(response.request.url.strip()).path.rsplit("/", 1)[-1])
    cleaned = "".join(ch for ch in last if ch.isalnum() or ch in "._-").lstrip(".")
    return cleaned or "response-body"


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
