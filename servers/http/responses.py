"""Building HTTP/1.1 response heads (course 4.1.3 HTTP响应): status line, headers, blank line."""

from __future__ import annotations

import time
from email.utils import formatdate, parsedate_to_datetime

SERVER_NAME = "workbench-http"

REASONS: dict[int, str] = {
    100: "Continue",
    200: "OK",
    204: "No Content",
    206: "Partial Content",
    301: "Moved Permanently",
    304: "Not Modified",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    414: "URI Too Long",
    416: "Range Not Satisfiable",
    417: "Expectation Failed",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    505: "HTTP Version Not Supported",
}

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

#: How a response ends the connection question: HTTP/1.1 persistent needs no header.
KEEP_ALIVE_DEFAULT, CLOSE, KEEP_ALIVE_HTTP10 = 0, 1, 2
CONNECTION_LINES = ("", "Connection: close\r\n", "Connection: keep-alive\r\n")

_date_second = -1
_date_value = ""


def http_date_now() -> str:
    """Today's ``Date`` value, formatted at most once a second (it is on every response)."""
    global _date_second, _date_value
    now = int(time.time())
    if now != _date_second:
        _date_value = formatdate(now, usegmt=True)
        _date_second = now
    return _date_value


def http_date(timestamp: float) -> str:
    """An IMF-fixdate, as in ``Last-Modified``."""
    return formatdate(timestamp, usegmt=True)


def parse_http_date(value: str) -> float | None:
    """Seconds since the epoch for an HTTP date, or None if it is not one."""
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def build_head(
    status: int,
    headers: list[tuple[str, str]] | tuple[tuple[str, str], ...],
    connection: int = KEEP_ALIVE_DEFAULT,
) -> bytes:
    """Status line, ``Server`` and ``Date``, the given fields, the connection line, blank line."""
    lines = [
        f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}\r\n"
        f"Server: {SERVER_NAME}\r\nDate: {http_date_now()}\r\n"
    ]
    lines.extend(f"{name}: {value}\r\n" for name, value in headers)
    lines.append(CONNECTION_LINES[connection])
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")


def simple_response(
    status: int,
    body: bytes,
    content_type: str = "text/plain; charset=utf-8",
    connection: int = KEEP_ALIVE_DEFAULT,
    extra_headers: list[tuple[str, str]] | None = None,
    head_only: bool = False,
) -> bytes:
    """A whole response with a body held in memory (errors, API answers, listings)."""
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    if extra_headers:
        headers.extend(extra_headers)
    head = build_head(status, headers, connection)
    return head if head_only else head + body


def error_response(
    status: int,
    detail: str,
    connection: int = KEEP_ALIVE_DEFAULT,
    extra_headers: list[tuple[str, str]] | None = None,
    head_only: bool = False,
) -> bytes:
    """A short plain-text refusal naming the status and why."""
    body = f"{status} {REASONS.get(status, 'Error')}\n{detail}\n".encode("utf-8", "replace")
    return simple_response(
        status,
        body,
        connection=connection,
        extra_headers=extra_headers,
        head_only=head_only,
    )
