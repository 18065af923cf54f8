"""Tests for the UI-free FTP client: listing parsers, and every operation against real servers."""

from __future__ import annotations

import hashlib
import os
import select
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler

from servers.launcher import running_server
from tests.helpers.servers import pyftpdlib_server
from workbench.clients.ftp import (
    FtpClient,
    FtpError,
    RemoteEntry,
    TransferCancelled,
    parse_list_line,
    parse_mlsd_facts,
)

pytestmark = [
    pytest.mark.timeout(30),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:write permissions assigned to anonymous user"),
]


# ---------------------------------------------------------------------------
# Parsers


NOW = datetime(2026, 11, 26, 12, 0)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "-rw-r--r--   1 owner    group        1234 Jan 16 14:15 notes.txt",
            RemoteEntry("notes.txt", False, 1234, datetime(2026, 1, 16, 14, 15)),
        ),
        (
            "drwxr-xr-x   2 owner    group        4096 Dec 31  2023 old stuff",
            RemoteEntry("old stuff", True, None, datetime(2023, 12, 31)),
        ),
        (
            # A time later than now means last year: ls drops the year for six months.
            "-rw-r--r--   1 owner    group           7 Dec 24 10:00 gift.bin",
            RemoteEntry("gift.bin", False, 7, datetime(2025, 12, 24, 10, 0)),
        ),
        (
            "lrwxrwxrwx   1 owner    group          11 Mar  3 09:05 latest -> release-1.2",
            RemoteEntry("latest", False, 11, datetime(2026, 3, 3, 9, 5), is_link=True),
        ),
        (
            # Some servers print no group column.
            "-rw-r--r-- 1 ftp 42 Feb  2 2022 nogroup.txt",
            RemoteEntry("nogroup.txt", False, 42, datetime(2022, 2, 2)),
        ),
        (
            "-rw-r--r--+  1 owner    group           5 Feb  2  2022  leading space.txt",
            RemoteEntry(" leading space.txt", False, 5, datetime(2022, 2, 2)),
        ),
        (
            "01-16-24  02:15PM       <DIR>          Reports",
            RemoteEntry("Reports", True, None, datetime(2024, 1, 16, 14, 15)),
        ),
        (
            "01-16-2024  09:03AM                 2048 budget.xlsx",
            RemoteEntry("budget.xlsx", False, 2048, datetime(2024, 1, 16, 9, 3)),
        ),
    ],
)
def test_parse_list_line_reads_unix_and_dos_styles(line: str, expected: RemoteEntry) -> None:
    assert parse_list_line(line, NOW) == expected


@pytest.mark.parametrize(
    "line",
    [
        "total 12",
        "drwxr-xr-x   2 owner group 4096 Jan 16 14:15 .",
        "drwxr-xr-x   2 owner group 4096 Jan 16 14:15 ..",
        "",
        "garbage line",
    ],
)
def test_parse_list_line_skips_noise(line: str) -> None:
    assert parse_list_line(line, NOW) is None


def test_parse_mlsd_facts() -> None:
    entry = parse_mlsd_facts(
        "a.txt", {"type": "file", "size": "10", "modify": "20240116141500.123"}
    )
    assert entry == RemoteEntry("a.txt", False, 10, datetime(2024, 1, 16, 14, 15, tzinfo=UTC))
    assert parse_mlsd_facts("sub", {"type": "dir", "sizd": "4096"}) == RemoteEntry("sub", True)
    assert parse_mlsd_facts(".", {"type": "cdir"}) is None
    assert parse_mlsd_facts("..", {"type": "pdir"}) is None
    link = parse_mlsd_facts("ln", {"type": "OS.unix=slink:/x"})
    assert link is not None and link.is_link


# ---------------------------------------------------------------------------
# A real pyftpdlib server in a thread of this process


class _NoMlsdHandler(FTPHandler):
    """A server that predates RFC 3659: MLSD is unknown, so clients must parse LIST."""

    proto_cmds = {
        name: spec for name, spec in FTPHandler.proto_cmds.items() if name not in ("MLSD", "MLST")
    }


def _serve_pyftpdlib(root: Path, handler_base: type[FTPHandler]) -> Iterator[int]:
    authorizer = DummyAuthorizer()
    authorizer.add_anonymous(str(root), perm="elradfmwMT")
    authorizer.add_user("alice", "secret", str(root), perm="elradfmwMT")
    # auth_failed_timeout: pyftpdlib delays a failed login 3 s by default; the test needs no wait.
    handler = type(
        "TestHandler", (handler_base,), {"authorizer": authorizer, "auth_failed_timeout": 0.05}
    )
    with pyftpdlib_server(handler) as port:
        yield port


@pytest.fixture
def ftp_root(tmp_path: Path) -> Path:
    root = tmp_path / "remote"
    root.mkdir()
    (root / "hello.txt").write_bytes(b"hello, world\n")
    (root / "docs").mkdir()
    (root / "docs" / "guide.md").write_text("# guide\n")
    return root


@pytest.fixture
def pyftpdlib_port(ftp_root: Path) -> Iterator[int]:
    yield from _serve_pyftpdlib(ftp_root, FTPHandler)


@pytest.fixture
def legacy_port(ftp_root: Path) -> Iterator[int]:
    yield from _serve_pyftpdlib(ftp_root, _NoMlsdHandler)


@pytest.fixture
def client(pyftpdlib_port: int) -> Iterator[FtpClient]:
    ftp = FtpClient("127.0.0.1", pyftpdlib_port, timeout=10)
    ftp.connect()
    yield ftp
    ftp.close()


def _names(entries: list[RemoteEntry]) -> list[str]:
    return [entry.name for entry in entries]


def test_anonymous_login_and_list_with_mlsd(client: FtpClient) -> None:
    entries = client.list_dir()
    assert _names(entries) == ["docs", "hello.txt"]  # directories first
    docs, hello = entries
    assert docs.is_dir and docs.size is None
    assert not hello.is_dir and hello.size == len(b"hello, world\n")
    assert hello.modified is not None
    assert client.cwd("docs") == "/docs"
    assert _names(client.list_dir()) == ["guide.md"]
    assert client.cwd("..") == "/"


def test_list_falls_back_to_list_parsing(legacy_port: int) -> None:
    with FtpClient("127.0.0.1", legacy_port) as ftp:
        entries = ftp.list_dir()
        assert _names(entries) == ["docs", "hello.txt"]
        assert entries[0].is_dir
        assert entries[1].size == len(b"hello, world\n")


def test_named_user_and_wrong_password(pyftpdlib_port: int) -> None:
    with FtpClient("127.0.0.1", pyftpdlib_port, "alice", "secret") as ftp:
        assert "hello.txt" in _names(ftp.list_dir())
    with pytest.raises(FtpError) as refused:
        FtpClient("127.0.0.1", pyftpdlib_port, "alice", "wrong").connect()
    assert refused.value.code == "530"


def test_connection_refused_is_a_clear_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    with pytest.raises(FtpError, match="connection refused"):
        FtpClient("127.0.0.1", free_port, timeout=5).connect()


def test_round_trip_upload_download_mkdir_rename_delete(
    client: FtpClient, ftp_root: Path, tmp_path: Path
) -> None:
    payload = bytes(range(256)) * 4096 + b"tail"  # 1 MiB + 4: several chunks, not a chunk multiple
    source = tmp_path / "payload.bin"
    source.write_bytes(payload)
    progress: list[tuple[int, int | None]] = []

    assert client.upload(
        source, "payload.bin", progress=lambda done, total: progress.append((done, total))
    ) == len(payload)
    assert (ftp_root / "payload.bin").read_bytes() == payload
    assert progress[-1] == (len(payload), len(payload))
    assert [done for done, _ in progress] == sorted(done for done, _ in progress)

    client.mkdir("incoming")
    client.rename("payload.bin", "incoming/renamed.bin")
    assert not (ftp_root / "payload.bin").exists()
    assert client.exists("incoming")

    target = tmp_path / "downloaded.bin"
    seen: list[tuple[int, int | None]] = []
    assert client.download(
        "incoming/renamed.bin", target, progress=lambda d, t: seen.append((d, t))
    ) == len(payload)
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(payload).digest()
    assert seen[-1] == (len(payload), len(payload))

    client.delete_file("incoming/renamed.bin")
    client.remove_dir("incoming")
    assert _names(client.list_dir()) == ["docs", "hello.txt"]


def test_recursive_remove_dir(client: FtpClient, ftp_root: Path) -> None:
    (ftp_root / "tree" / "inner").mkdir(parents=True)
    (ftp_root / "tree" / "inner" / "leaf.txt").write_text("leaf")
    (ftp_root / "tree" / "top.txt").write_text("top")
    with pytest.raises(FtpError) as not_empty:
        client.remove_dir("tree")
    assert not_empty.value.code == "550"
    client.remove_dir("tree", recursive=True)
    assert not (ftp_root / "tree").exists()


def test_error_replies_carry_their_code(client: FtpClient, tmp_path: Path) -> None:
    with pytest.raises(FtpError) as missing:
        client.download("no-such-file.txt", tmp_path / "x")
    assert missing.value.code == "550"
    assert "no-such-file.txt" in str(missing.value)
    assert not (tmp_path / "x").exists()
    assert not list(tmp_path.glob(".*.part"))
    with pytest.raises(FtpError) as bad_dir:
        client.cwd("nowhere")
    assert bad_dir.value.code == "550"
    # The connection is still in step after errors.
    assert _names(client.list_dir()) == ["docs", "hello.txt"]


def test_cancelled_download_keeps_existing_local_file(
    client: FtpClient, ftp_root: Path, tmp_path: Path
) -> None:
    (ftp_root / "big.bin").write_bytes(b"\x01" * (8 * 1024 * 1024))
    target = tmp_path / "big.bin"
    target.write_bytes(b"precious")
    cancel = threading.Event()

    def cancel_after_first_chunk(done: int, total: int | None) -> None:
        cancel.set()

    with pytest.raises(TransferCancelled):
        client.download("big.bin", target, progress=cancel_after_first_chunk, cancel=cancel)
    assert target.read_bytes() == b"precious"
    assert not list(tmp_path.glob(".*.part"))
    assert "big.bin" in _names(client.list_dir())  # control channel resynchronised


def test_cancelled_upload_leaves_no_partial_file(
    client: FtpClient, ftp_root: Path, tmp_path: Path
) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(b"\x02" * (8 * 1024 * 1024))
    cancel = threading.Event()
    with pytest.raises(TransferCancelled):
        client.upload(source, "big.bin", progress=lambda done, total: cancel.set(), cancel=cancel)
    assert _names(client.list_dir()) == ["docs", "hello.txt"]
    assert not (ftp_root / "big.bin").exists()


class _FirstDataConnectionIgnored(FTPHandler.passive_dtp):
    """Leaves the first data connection un-accepted, as a busy pyftpdlib may when ABOR comes."""

    held: list[socket.socket] = []

    def handle_accepted(self, sock: socket.socket, addr: tuple) -> None:
        if not self.held:
            self.held.append(sock)
            return
        super().handle_accepted(sock, addr)


class _SlowAcceptHandler(FTPHandler):
    passive_dtp = _FirstDataConnectionIgnored


@pytest.fixture
def slow_accept_port(ftp_root: Path) -> Iterator[int]:
    _FirstDataConnectionIgnored.held = []
    yield from _serve_pyftpdlib(ftp_root, _SlowAcceptHandler)
    for sock in _FirstDataConnectionIgnored.held:
        sock.close()


def test_an_abort_the_server_did_not_end_goes_on_in_a_fresh_session(
    slow_accept_port: int, ftp_root: Path, tmp_path: Path
) -> None:
    # pyftpdlib answers that ABOR with 225 alone and keeps the STOR queued for the
    # next data connection: the following listing would wait forever in that session.
    source = tmp_path / "big.bin"
    source.write_bytes(b"\x03" * (1024 * 1024))
    client = FtpClient("127.0.0.1", slow_accept_port, timeout=3)
    client.connect()
    try:
        cancel = threading.Event()
        with pytest.raises(TransferCancelled):
            client.upload(
                source, "big.bin", progress=lambda done, total: cancel.set(), cancel=cancel
            )
        assert _names(client.list_dir()) == ["docs", "hello.txt"]
        assert not (ftp_root / "big.bin").exists()
    finally:
        client.close()


def test_operations_need_a_connection() -> None:
    with pytest.raises(FtpError, match="not connected"):
        FtpClient("127.0.0.1", 21).list_dir()


def test_no_ui_imports() -> None:
    import ast

    import workbench.clients.ftp as module

    tree = ast.parse(Path(module.__file__).read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (
            node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")]
        )
    }
    assert not imported & {"textual", "rich"}


# ---------------------------------------------------------------------------
# Our own FTP server


@pytest.fixture
def our_server_root(tmp_path: Path) -> Path:
    root = tmp_path / "served"
    (root / "uploads").mkdir(parents=True)
    # Anonymous writes in uploads/ only on our server: the write tests work there.
    (root / "uploads" / "keep.bin").write_bytes(b"original content")
    return root


@pytest.fixture
def our_port(our_server_root: Path) -> Iterator[int]:
    with running_server("ftp", "threads", options={"root": str(our_server_root)}) as proc:
        yield proc.port


def test_round_trip_on_our_server(our_port: int, our_server_root: Path, tmp_path: Path) -> None:
    payload = bytes(range(256)) * 1024
    source = tmp_path / "up.bin"
    source.write_bytes(payload)
    with FtpClient("127.0.0.1", our_port) as ftp:
        with pytest.raises(FtpError) as refused:
            ftp.mkdir("anonymous-may-not")  # our server: anonymous writes in uploads/ only
        assert refused.value.code == "550"
        ftp.cwd("uploads")
        assert ftp.upload(source, "up.bin") == len(payload)
        entries = {entry.name: entry for entry in ftp.list_dir()}
        assert entries["up.bin"].size == len(payload)
        assert ftp.download("up.bin", tmp_path / "down.bin") == len(payload)
        assert (tmp_path / "down.bin").read_bytes() == payload
        ftp.mkdir("mine")
        ftp.rename("up.bin", "mine/up.bin")
        ftp.remove_dir("mine", recursive=True)
        assert _names(ftp.list_dir()) == ["keep.bin"]


def test_cancelled_upload_over_an_existing_file_keeps_it(
    our_port: int, our_server_root: Path, tmp_path: Path
) -> None:
    """The client resets the data connection on cancel, so our server discards the partial upload."""
    source = tmp_path / "big.bin"
    source.write_bytes(b"\x03" * (8 * 1024 * 1024))
    cancel = threading.Event()
    with FtpClient("127.0.0.1", our_port) as ftp:
        ftp.cwd("uploads")
        with pytest.raises(TransferCancelled):
            ftp.upload(source, "keep.bin", progress=lambda done, total: cancel.set(), cancel=cancel)
        assert (our_server_root / "uploads" / "keep.bin").read_bytes() == b"original content"
        assert "keep.bin" in _names(ftp.list_dir())  # still in step


def test_clone_opens_a_second_connection_in_the_same_folder(client: FtpClient) -> None:
    client.cwd("docs")
    twin = client.clone()
    try:
        assert twin.pwd() == "/docs"
        assert _names(twin.list_dir()) == ["guide.md"]
        client.cwd("..")
        assert twin.pwd() == "/docs"  # independent of the original
    finally:
        twin.close()


def _wait_until_server_hangs_up(ftp: FtpClient, timeout: float = 10) -> None:
    """Poll the control socket until the server's goodbye (421 and EOF) is waiting to be read."""
    sock = ftp._ftp.sock  # type: ignore[union-attr]
    readable, _, _ = select.select([sock], [], [], timeout)
    assert readable, "the server never closed the idle connection"


def test_idle_timeout_then_reconnect_in_the_same_folder(our_server_root: Path) -> None:
    (our_server_root / "sub").mkdir()
    options = {"root": str(our_server_root), "idle_timeout": 0.3}
    with (
        running_server("ftp", "threads", options=options) as proc,
        FtpClient("127.0.0.1", proc.port) as ftp,
    ):
        ftp.cwd("sub")
        _wait_until_server_hangs_up(ftp)
        with pytest.raises(FtpError) as dropped:
            ftp.list_dir()
        assert not ftp.connected, dropped.value
        ftp.reconnect()
        assert ftp.pwd() == "/sub"


def test_a_rate_limit_holds_each_transfer_to_its_speed(
    our_port: int, our_server_root: Path, tmp_path: Path
) -> None:
    """100 KiB/s on 150 KiB: each way takes at least 1.5 s, on our own (unlimited) server."""
    size, rate = 150 * 1024, 100 * 1024
    source = tmp_path / "paced.bin"
    source.write_bytes(b"\x05" * size)
    with FtpClient("127.0.0.1", our_port) as ftp:
        ftp.cwd("uploads")
        started = time.monotonic()
        assert ftp.upload(source, "paced.bin", max_rate=rate) == size
        upload_seconds = time.monotonic() - started
        started = time.monotonic()
        assert ftp.download("paced.bin", tmp_path / "back.bin", max_rate=rate) == size
        download_seconds = time.monotonic() - started
    assert (tmp_path / "back.bin").read_bytes() == source.read_bytes()
    assert size / rate <= upload_seconds < size / rate + 3
    assert size / rate <= download_seconds < size / rate + 3


def test_cancel_ends_a_paced_transfer_at_once(our_port: int, tmp_path: Path) -> None:
    source = tmp_path / "slow.bin"
    source.write_bytes(b"\x05" * (1024 * 1024))  # 100 s at 10 KiB/s
    cancel = threading.Event()

    def cancel_after_the_first_chunk(done: int, total: int | None) -> None:
        cancel.set()

    with FtpClient("127.0.0.1", our_port) as ftp:
        ftp.cwd("uploads")
        started = time.monotonic()
        with pytest.raises(TransferCancelled):
            ftp.upload(source, "slow.bin", cancel_after_the_first_chunk, cancel, max_rate=10 * 1024)
        assert time.monotonic() - started < 3
        assert "slow.bin" not in _names(ftp.list_dir())


@pytest.mark.parametrize("server", ["ours", "pyftpdlib"])
def test_a_download_keeps_the_servers_modification_time(
    server: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """MDTM says when the file changed on the server; the local copy gets that time, not "now"."""
    when = datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC).timestamp()
    if server == "ours":
        root = request.getfixturevalue("our_server_root")
        port = request.getfixturevalue("our_port")
    else:
        root = request.getfixturevalue("ftp_root")
        port = request.getfixturevalue("pyftpdlib_port")
    (root / "old.txt").write_bytes(b"written long ago\n")
    os.utime(root / "old.txt", (when, when))
    with FtpClient("127.0.0.1", port) as ftp:
        assert ftp.modified("old.txt") == datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)
        ftp.download("old.txt", tmp_path / "old.txt")
        assert ftp.modified("no-such-file.txt") is None
        assert ftp.list_dir()  # the control connection is still in step after the 550
    assert (tmp_path / "old.txt").stat().st_mtime == when
