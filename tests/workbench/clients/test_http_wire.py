"""The sans-IO response reader against h11 as the oracle, plus URL parsing and request bytes."""

from __future__ import annotations

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.clients.http_wire import (
    BodyData,
    ConnectionClosed,
    EndOfMessage,
    ParsedUrl,
    ProtocolError,
    ResponseHead,
    ResponseReader,
    UrlError,
    build_request,
    parse_url,
)

pytestmark = pytest.mark.timeout(120)

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
#: Header names the framing depends on; the strategy adds them on purpose, not by chance.
FRAMING_NAMES = {"content-length", "transfer-encoding", "connection"}
VISIBLE = "".join(chr(code) for code in range(0x21, 0x7F))


# --- normalising both readers' events to one shape ------------------------------


def _normalise(events: list[tuple]) -> list[tuple]:
    """Merge neighbouring body pieces: where the data is cut is not part of the meaning."""
    merged: list[tuple] = []
    for event in events:
        if event[0] == "data" and merged and merged[-1][0] == "data":
            merged[-1] = ("data", merged[-1][1] + event[1])
        elif event[0] != "data" or event[1]:
            merged.append(event)
    return merged


def _pairs(items: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """As h11 reports them: it lowercases Transfer-Encoding; we keep what the server sent."""
    return [
        (
            name.encode("latin-1"),
            (value.lower() if name.lower() == "transfer-encoding" else value).encode("latin-1"),
        )
        for name, value in items
    ]


def ours(method: str, pieces: list[bytes]) -> tuple[list[tuple], bool | None]:
    """Events of our reader, fed piece by piece then EOF; and its keep-alive verdict.

    The verdict is None when the response only ended with the close.
    """
    reader = ResponseReader(method)
    raw = []
    for piece in pieces:
        raw.extend(reader.feed(piece))
    keep_alive = reader.keep_alive if reader.complete else None
    raw.extend(reader.feed_eof())
    events = []
    for event in raw:
        if isinstance(event, ResponseHead):
            events.append(
                ("head", event.status, event.reason.encode("latin-1"), _pairs(event.headers))
            )
        elif isinstance(event, BodyData):
            events.append(("data", bytes(event.data)))
        elif isinstance(event, EndOfMessage):
            events.append(("end", _pairs(event.trailers)))
        else:
            assert isinstance(event, ConnectionClosed)
            events.append(("closed",))
    return _normalise(events), keep_alive


def oracle(method: str, pieces: list[bytes]) -> tuple[list[tuple], bool | None]:
    """The same bytes through h11 as a client that sent ``method``."""
    conn = h11.Connection(our_role=h11.CLIENT)
    conn.send(h11.Request(method=method, target="/", headers=[("Host", "example")]))
    conn.send(h11.EndOfMessage())
    events: list[tuple] = []
    keep_alive: bool | None = None

    def drain() -> None:
        nonlocal keep_alive
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.InformationalResponse | h11.Response):
                events.append(
                    (
                        "head",
                        event.status_code,
                        bytes(event.reason),
                        list(event.headers.raw_items()),
                    )
                )
            elif isinstance(event, h11.Data):
                events.append(("data", bytes(event.data)))
            elif isinstance(event, h11.EndOfMessage):
                events.append(("end", list(event.headers.raw_items())))
                keep_alive = conn.their_state is h11.DONE
            elif isinstance(event, h11.ConnectionClosed):
                events.append(("closed",))
                return

    for piece in pieces:
        conn.receive_data(piece)
        drain()
    verdict = keep_alive
    conn.receive_data(b"")
    drain()
    return _normalise(events), verdict


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:], strict=False) if b > a] or [data]


# --- generating responses ----------------------------------------------------------

header_names = st.text(TOKEN_CHARS, min_size=1, max_size=12).filter(
    lambda name: name.lower() not in FRAMING_NAMES
)
header_values = st.lists(st.text(VISIBLE, min_size=1, max_size=8), max_size=3).map(" ".join)
whitespace = st.sampled_from(["", " ", "  ", "\t", " \t"])
header_lines = st.lists(
    st.tuples(header_names, whitespace, header_values, whitespace).map(
        lambda part: f"{part[0]}:{part[1]}{part[2]}{part[3]}"
    ),
    max_size=6,
)


@st.composite
def responses(draw: st.DrawFn) -> tuple[str, bytes]:
    """(request method, response bytes): any framing h11 also understands."""
    method = draw(st.sampled_from(["GET", "GET", "HEAD"]))
    version = draw(st.sampled_from(["1.1", "1.1", "1.0"]))
    out = b""
    for code in draw(st.lists(st.sampled_from([100, 102, 103]), max_size=2)):
        if version == "1.1":
            out += f"HTTP/1.1 {code} Info\r\nX-Step: {code}\r\n\r\n".encode()
    status = draw(st.sampled_from([200, 201, 204, 301, 304, 404, 500]) | st.integers(200, 599))
    reason = draw(st.text(VISIBLE + " ", max_size=12))
    space = " " if reason or draw(st.booleans()) else ""
    lines = [f"HTTP/{version} {status}{space}{reason}", *draw(header_lines)]
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    body = draw(st.binary(max_size=300))
    connection = draw(st.sampled_from([None, "close", "keep-alive", "Keep-Alive, Close"]))
    if connection:
        lines.append(f"Connection: {connection}")
    no_body = method == "HEAD" or status in (204, 304)
    chunks: list[bytes] = []
    trailers: list[str] = []
    if framing == "length":
        lines.append(f"Content-Length: {len(body)}")
    elif framing == "chunked":
        lines.append(f"Transfer-Encoding: {draw(st.sampled_from(['chunked', 'Chunked']))}")
        sizes = draw(st.lists(st.integers(1, 64), max_size=10))
        position = 0
        for size in sizes:
            if position < len(body):
                chunks.append(body[position : position + size])
                position += size
        body = b"".join(chunks)
        trailers = draw(header_lines)
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if no_body:
        return method, out + head
    if framing == "chunked":
        encoded = b""
        for chunk in chunks:
            extension = draw(st.sampled_from(["", ";name=value", ";x"]))
            hex_size = draw(st.sampled_from(["{:x}", "{:X}", "{:04x}"])).format(len(chunk))
            encoded += f"{hex_size}{extension}\r\n".encode() + chunk + b"\r\n"
        trailer_block = "".join(f"{line}\r\n" for line in trailers).encode("latin-1")
        return method, out + head + encoded + b"0\r\n" + trailer_block + b"\r\n"
    return method, out + head + body


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(responses(), st.lists(st.integers(min_value=0), max_size=8))
def test_reader_agrees_with_h11(case: tuple[str, bytes], cuts: list[int]) -> None:
    method, data = case
    pieces = split_at(data, cuts)
    assert ours(method, pieces) == oracle(method, pieces)


@settings(max_examples=200, deadline=None)
@given(responses(), st.lists(st.integers(min_value=0), max_size=4))
def test_status_entry_agrees_with_the_events(case: tuple[str, bytes], cuts: list[int]) -> None:
    """The load generator's feed_status (with its fast path) reports what feed() does."""
    method, data = case
    events, keep_alive = ours(method, [data])
    final = [event[1] for event in events if event[0] == "head" and event[1] >= 200]
    reader = ResponseReader(method)
    completed = [status for status in map(reader.feed_status, split_at(data, cuts)) if status]
    if not completed:  # a body that runs until the server closes
        completed = [status for status in [reader.feed_eof_status()] if status]
    assert completed == final
    if keep_alive:
        assert reader.keep_alive and reader.idle


@settings(max_examples=150, deadline=None)
@given(st.lists(responses(), min_size=2, max_size=6), st.lists(st.integers(min_value=0)))
def test_one_reader_over_many_keep_alive_responses(
    cases: list[tuple[str, bytes]], cuts: list[int]
) -> None:
    """Responses one after another on a connection: the fast path never answers for another."""
    reader = ResponseReader("GET")
    # Each response twice: a repeat takes the fastest path.
    twice = [case for pair in zip(cases, cases, strict=True) for case in pair]
    for method, data in twice:
        if method != "GET":
            continue  # one connection, one request method
        events, keep_alive = ours(method, [data])
        final = [event[1] for event in events if event[0] == "head" and event[1] >= 200]
        statuses = [status for status in map(reader.feed_status, split_at(data, cuts)) if status]
        if keep_alive is None:  # the body ran until the close: the last on this connection
            statuses += [status for status in [reader.feed_eof_status()] if status]
        assert statuses == final
        if not keep_alive:
            return


def _up_to_the_end(result: tuple[list[tuple], bool | None]) -> tuple[list[tuple], bool | None]:
    """Events until the response ends: what follows is the next response's business."""
    events, keep_alive = result
    ends = [index for index, event in enumerate(events) if event[0] == "end"]
    return (events[: ends[0] + 1] if ends else events), keep_alive


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(responses(), st.integers(min_value=0), st.binary(min_size=1, max_size=2), st.booleans())
def test_a_damaged_response_is_never_read_more_loosely_than_h11_reads_it(
    case: tuple[str, bytes], where: int, damage: bytes, insert: bool
) -> None:
    """A byte or two overwritten or inserted anywhere: both readers agree, or we refuse.

    Two refusals of h11 we do not share, both on purpose: a transfer coding other
    than chunked (RFC 9112 6.3: the body then runs until the close), and bytes
    after a response the server said it would close (never read, so harmless).
    """
    method, data = case
    at = where % len(data)
    data = data[:at] + damage + data[at + (0 if insert else len(damage)) :]
    try:
        ours_result = _up_to_the_end(ours(method, [data]))
    except ProtocolError:
        return  # refusing is always allowed
    try:
        oracle_result = _up_to_the_end(oracle(method, [data]))
    except h11.RemoteProtocolError as exc:
        heads = [event for event in ours_result[0] if event[0] == "head"]
        other_coding = any(
            name.lower() == b"transfer-encoding" and value.lower() != b"chunked"
            for head in heads
            for name, value in head[3]
        )
        assert other_coding or "expecting EOF" in str(exc), f"h11 refused: {exc}"
        return
    assert ours_result == oracle_result


def test_a_content_length_with_a_control_character_is_refused_as_h11_refuses_it() -> None:
    """str.strip() trims \\x1c-\\x1f as whitespace; a header value only loses spaces and tabs."""
    reader = ResponseReader()
    with pytest.raises(ProtocolError, match="bad Content-Length"):
        reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length:\x1c2\r\n\r\nhi")
    with pytest.raises(h11.RemoteProtocolError, match="bad Content-Length"):
        oracle("GET", [b"HTTP/1.1 200 OK\r\nContent-Length:\x1c2\r\n\r\nhi"])


def test_two_responses_on_one_connection() -> None:
    reader = ResponseReader()
    first = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
    second = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
    events = reader.feed(first + second)
    assert [type(event) for event in events] == [ResponseHead, BodyData, EndOfMessage]
    assert reader.keep_alive and reader.complete
    again = reader.next_response()
    assert isinstance(again[0], ResponseHead) and again[0].status == 404
    assert isinstance(again[1], EndOfMessage)


def test_fast_path_takes_a_whole_response_in_one_piece(monkeypatch: pytest.MonkeyPatch) -> None:
    reader = ResponseReader()
    response = b"HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 5\r\n\r\nhello"
    with monkeypatch.context() as patch:

        def general_path(data: bytes) -> list:
            raise AssertionError("a whole small response went the general way")

        patch.setattr(reader, "feed", general_path)
        for _ in range(3):
            assert reader.feed_status(response) == 200
            assert reader.keep_alive and reader.idle
    assert reader.feed_status(response[:20]) == 0
    assert reader.feed_status(response[20:]) == 200
    chunked = b"HTTP/1.1 404 Gone\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n"
    assert reader.feed_status(chunked) == 404
    assert reader.feed_status(response) == 200  # not the 404 of the last head parsed
    assert reader.feed_status(response.replace(b"OK", b"No")) == 200
    assert reader.feed_status(response.replace(b"200 OK", b"201 Hi")) == 201


def test_a_long_body_is_passed_on_without_copies() -> None:
    reader = ResponseReader()
    reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n")
    piece = bytes(100_000)
    first = reader.feed(piece)
    assert first[0].data is piece  # straight through, not via the buffer
    assert isinstance(reader.feed(piece)[-1], EndOfMessage)


MALFORMED = [
    (b"HTTP/1.1 200 OK\r\nContent-Length: lots\r\n\r\nxx", "Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nxx", "conflicting"),
    (b"SSH-2.0-OpenSSH\r\n\r\n", "status line"),
    (b"HTTP/1.1 2000 OK\r\n\r\n", "status line"),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "Name: value"),
    (b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", "Name: value"),
    (b"HTTP/1.1 200 OK\r\n folded first\r\n\r\n", "continuation"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk-size"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhiXX", "CRLF"),
    (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "101"),
]


@pytest.mark.parametrize(("data", "words"), MALFORMED)
def test_malformed_responses_raise_a_clear_error(data: bytes, words: str) -> None:
    with pytest.raises(ProtocolError, match=words):
        ResponseReader().feed(data)
    with pytest.raises(ProtocolError):  # the load generator's entry too
        ResponseReader().feed_status(data)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "5 body bytes still due"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", "chunked"),
        (b"HTTP/1.1 200 OK\r\nServ", "mid-headers"),
    ],
)
def test_a_close_inside_a_response_is_an_error(data: bytes, words: str) -> None:
    reader = ResponseReader()
    reader.feed(data)
    with pytest.raises(ProtocolError, match=words):
        reader.feed_eof()


def test_an_endless_head_is_refused() -> None:
    reader = ResponseReader()
    reader.feed(b"HTTP/1.1 200 OK\r\n")
    with pytest.raises(ProtocolError, match="longer than 64 KiB"):
        for _ in range(100):
            reader.feed(b"X-Filler: " + b"a" * 1000 + b"\r\n")


def test_a_close_before_any_byte_is_not_an_error() -> None:
    assert ResponseReader().feed_eof() == [ConnectionClosed()]


# --- URLs and request bytes ----------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("127.0.0.1:8080/a?b=1", ParsedUrl("http", "127.0.0.1", 8080, "/a?b=1", "127.0.0.1:8080")),
        ("https://example.org", ParsedUrl("https", "example.org", 443, "/", "example.org")),
        ("http://[::1]:81/x", ParsedUrl("http", "::1", 81, "/x", "[::1]:81")),
        ("http://[::1]/", ParsedUrl("http", "::1", 80, "/", "[::1]")),
    ],
)
def test_urls_split(url: str, expected: ParsedUrl) -> None:
    assert parse_url(url) == expected


@pytest.mark.parametrize(
    "url", ["", "http://", "ftp://h/", "http://h:99999/", "http://h/a b", "http://[::1/"]
)
def test_bad_urls_raise_url_error(url: str) -> None:
    with pytest.raises(UrlError, match="bad URL"):
        parse_url(url)


def test_schemes_can_be_narrowed() -> None:
    with pytest.raises(UrlError, match="scheme must be http"):
        parse_url("https://h/", schemes=("http",))


def test_request_bytes_are_what_h11_reads() -> None:
    url = parse_url("http://127.0.0.1:8080/a?b=1")
    raw = build_request("post", url, [("X-Test", "yes")], b"hi", close=False)
    server = h11.Connection(our_role=h11.SERVER)
    server.receive_data(raw)
    request = server.next_event()
    assert request.method == b"POST" and request.target == b"/a?b=1"
    assert (b"host", b"127.0.0.1:8080") in list(request.headers)
    assert (b"x-test", b"yes") in list(request.headers)
    assert (b"content-length", b"2") in list(request.headers)
    assert server.next_event() == h11.Data(data=b"hi")
    assert b"Connection: close" in build_request("GET", url)
