"""The FTP server over real sockets with ftplib: every command under every blocking model, ABOR, REST."""

from __future__ import annotations

import ftplib
import hashlib
import io
import os
import queue
import socket
import time

import pytest

pytestmark = pytest.mark.timeout(60)

#: Every concurrency model: blocking server under the first four, sans-IO handler under the rest.
MODELS = [
    "iterative",
    "threads",
    "processes",
    "pool",
    "select",
    "poll",
    "epoll",
    "asyncio",
    "prefork",
]


def read_all(conn: socket.socket) -> bytes:
    chunks = []
    while chunk := conn.recv(65536):
        chunks.append(chunk)
    conn.close()
    return b"".join(chunks)


def transfer_with_epsv(ftp: ftplib.FTP, command: str) -> bytes:
    """Run a download command over an EPSV data connection (ftplib uses EPSV only on IPv6)."""
    port = ftplib.parse229(ftp.sendcmd("EPSV"), ftp.sock.getpeername())[1]
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    assert ftp.sendcmd(command).startswith("150")
    data = read_all(conn)
    assert ftp.voidresp().startswith("226")
    return data


def transfer_with_eprt(ftp: ftplib.FTP, command: str) -> bytes:
    """Run a download command over an EPRT (active, RFC 2428) data connection."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(10)
        port = listener.getsockname()[1]
        assert ftp.sendcmd(f"EPRT |1|127.0.0.1|{port}|").startswith("200")
        assert ftp.sendcmd(command).startswith("150")
        conn, _ = listener.accept()
    data = read_all(conn)
    assert ftp.voidresp().startswith("226")
    return data


def retrieve(ftp: ftplib.FTP, name: str, rest: int | None = None) -> bytes:
    buffer = io.BytesIO()
    ftp.retrbinary(f"RETR {name}", buffer.write, rest=rest)
    return buffer.getvalue()


def collect_events(stats_queue, wanted, timeout: float = 10.0) -> list[tuple[str, str]]:
    """(kind, detail) of every event reported until ``wanted(events)`` holds."""
    events: list[tuple[str, str]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not wanted(events):
        try:
            message = stats_queue.get(timeout=0.5)
        except queue.Empty:
            continue
        events += [(kind, detail) for _, kind, detail, _ in message.get("events", [])]
    return events


@pytest.mark.parametrize("model", MODELS)
def test_every_command_with_ftplib(model, start_ftp, library, users_file, ftp_helpers, stats_queue):
    port = start_ftp(model, library, users=str(users_file), workers=2, stats_queue=stats_queue)
    payload = os.urandom(300_000)
    ftp = ftp_helpers.connect(port, user="")
    try:
        assert ftp.getwelcome().startswith("220 ")
        with pytest.raises(ftplib.error_perm, match="^530"):
            ftp.pwd()
        assert ftp.sendcmd("USER alice").startswith("331")
        assert ftp.sendcmd(f"PASS {ftp_helpers.ALICE_PASSWORD}").startswith("230")

        # Information and parameters.
        assert ftp.sendcmd("SYST") == "215 UNIX Type: L8"
        feat = ftp.sendcmd("FEAT")
        assert feat.startswith("211-") and " EPSV" in feat and " REST STREAM" in feat
        assert ftp.sendcmd("HELP").startswith("214")
        assert ftp.sendcmd("HELP STOR").startswith("214 Syntax: STOR")
        assert ftp.sendcmd("OPTS UTF8 ON").startswith("200")
        assert ftp.sendcmd("STAT").startswith("211-")
        assert ftp.sendcmd("NOOP").startswith("200")
        assert ftp.sendcmd("MODE S").startswith("200")
        assert ftp.sendcmd("STRU F").startswith("200")
        assert ftp.sendcmd("ALLO 1000").startswith("202")
        with pytest.raises(ftplib.error_perm, match="^504"):
            ftp.sendcmd("TYPE X")
        with pytest.raises(ftplib.error_perm, match="^500"):
            ftp.sendcmd("XYZZY")
        assert ftp.sendcmd("ABOR").startswith("225")

        # Folders.
        assert ftp.pwd() == "/"
        assert ftp.mkd("work") == "/work"
        assert ftp.cwd("work").startswith("250")
        assert ftp.pwd() == "/work"
        assert ftp.sendcmd("CDUP").startswith("250")
        assert ftp.pwd() == "/"
        ftp.cwd("/work")

        # ASCII upload and download (TYPE A): CRLF on the wire, LF on disk.
        ftp.storlines("STOR notes.txt", io.BytesIO(b"first\nsecond\n"))
        assert (library / "work" / "notes.txt").read_bytes() == b"first\nsecond\n"
        lines: list[str] = []
        ftp.retrlines("RETR notes.txt", lines.append)
        assert lines == ["first", "second"]

        # Binary upload, download (PASV, then active PORT), size and time.
        ftp.storbinary("STOR data.bin", io.BytesIO(payload))
        assert retrieve(ftp, "data.bin") == payload
        ftp.set_pasv(False)
        assert retrieve(ftp, "data.bin") == payload
        ftp.set_pasv(True)
        assert ftp.size("data.bin") == len(payload)
        assert ftp.sendcmd("MDTM data.bin").startswith("213 20")

        # RFC 2428: EPSV and EPRT.
        assert transfer_with_epsv(ftp, "RETR data.bin") == payload
        assert transfer_with_eprt(ftp, "NLST") == b"data.bin\r\nnotes.txt\r\n"

        # REST both ways, and APPE.
        assert retrieve(ftp, "data.bin", rest=100_000) == payload[100_000:]
        ftp.storbinary("STOR half.bin", io.BytesIO(payload[:1000]))
        ftp.storbinary("STOR half.bin", io.BytesIO(payload[1000:]), rest=1000)
        assert (library / "work" / "half.bin").read_bytes() == payload
        ftp.storbinary("APPE half.bin", io.BytesIO(b"tail"))
        assert (library / "work" / "half.bin").read_bytes() == payload + b"tail"

        # Listings.
        listing: list[str] = []
        ftp.retrlines("LIST", listing.append)
        assert any(line.startswith("-") and line.endswith(" data.bin") for line in listing)
        assert sorted(ftp.nlst()) == ["data.bin", "half.bin", "notes.txt"]
        facts = dict(ftp.mlsd("/"))
        assert facts["work"]["type"] == "dir" and facts["README.txt"]["type"] == "file"
        assert dict(ftp.mlsd())["data.bin"]["size"] == str(len(payload))
        assert "size=300000;" in ftp.sendcmd("MLST data.bin")
        assert "data.bin" in ftp.sendcmd("STAT /work")

        # Rename, delete, remove.
        assert ftp.rename("half.bin", "whole.bin").startswith("250")
        with pytest.raises(ftplib.error_perm, match="^503"):
            ftp.sendcmd("RNTO nowhere.bin")
        for name in ("whole.bin", "data.bin", "notes.txt"):
            assert ftp.delete(name).startswith("250")
        with pytest.raises(ftplib.error_perm, match="^550"):
            ftp.delete("data.bin")
        ftp.cwd("/")
        assert ftp.rmd("work").startswith("250")
        assert not (library / "work").exists()
        assert ftp.quit().startswith("221")
    finally:
        ftp.close()

    # The live panel sees each command as a request, failures as errors, never a password.
    def complete(events) -> bool:  # the session's disconnect comes after all its requests
        return any(kind == "disconnect" for kind, _ in events)

    events = collect_events(stats_queue, complete)
    assert ("request", "RETR data.bin") in events and ("request", "PASS ****") in events
    assert any(
        kind == "error" and detail.startswith("550 DELE data.bin") for kind, detail in events
    )
    assert not any(ftp_helpers.ALICE_PASSWORD in detail for _, detail in events)


@pytest.mark.parametrize("model", ["threads", "epoll"])
def test_abor_stops_a_download_and_the_session_goes_on(model, start_ftp, library, ftp_helpers):
    big = os.urandom(1 << 20) * 48  # more than the loopback socket buffers hold
    (library / "big.bin").write_bytes(big)
    port = start_ftp(model, library)
    ftp = ftp_helpers.connect(port)
    try:
        ftp.voidcmd("TYPE I")
        conn = ftp.transfercmd("RETR big.bin")
        assert len(conn.recv(65536)) > 0
        # The client stops reading and sends ABOR (ftplib: urgent data, Telnet-free).
        assert ftp.abort().startswith("426")
        assert ftp.voidresp().startswith("226")
        conn.close()
        assert ftp.voidcmd("NOOP").startswith("200")
        assert (
            retrieve(ftp, "texts/sonnet-18.txt") == (library / "texts/sonnet-18.txt").read_bytes()
        )
    finally:
        ftp_helpers.close(ftp)


@pytest.mark.parametrize("model", ["threads", "asyncio"])
def test_abor_during_upload_keeps_the_old_file(model, start_ftp, library, ftp_helpers):
    target = library / "uploads" / "README.txt"
    old = target.read_bytes()
    port = start_ftp(model, library)
    ftp = ftp_helpers.connect(port)
    try:
        ftp.voidcmd("TYPE I")
        conn = ftp.transfercmd("STOR uploads/README.txt")
        conn.sendall(b"partial upload " * 1000)
        assert ftp_helpers.wait_until(lambda: ftp_helpers.part_files(library / "uploads"))
        assert ftp.abort().startswith("426")
        assert ftp.voidresp().startswith("226")
        conn.close()
        assert target.read_bytes() == old
        assert ftp_helpers.part_files(library / "uploads") == []
        assert ftp.voidcmd("NOOP").startswith("200")
        # A complete upload then replaces the file, leaving no temporary file behind.
        content = os.urandom(2_000_000)
        ftp.storbinary("STOR uploads/README.txt", io.BytesIO(content))
        assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(content).digest()
        assert ftp_helpers.part_files(library / "uploads") == []
    finally:
        ftp_helpers.close(ftp)
