"""FTP safety over real sockets: traversal, bounce, killed uploads, login and connection limits, timeouts."""

from __future__ import annotations

import ftplib
import io
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.timeout(60)

#: A client that starts an upload, says so, and waits to be killed mid-transfer.
KILLED_UPLOADER = """
import ftplib, sys, time
ftp = ftplib.FTP(timeout=30)
ftp.connect("127.0.0.1", int(sys.argv[1]))
ftp.login()
ftp.voidcmd("TYPE I")
conn = ftp.transfercmd("STOR " + sys.argv[2])
conn.sendall(b"N" * 1_000_000)
print("sending", flush=True)
time.sleep(60)
"""


def test_traversal_and_symlinks_out_are_refused(start_ftp, library, tmp_path, ftp_helpers):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    os.symlink(outside, library / "escape")
    port = start_ftp("threads", library)
    ftp = ftp_helpers.connect(port)
    try:
        for name in ("../../../../etc/passwd", "/../outside/secret.txt", "escape/secret.txt"):
            with pytest.raises(ftplib.error_perm, match="^550"):
                ftp.retrbinary(f"RETR {name}", lambda data: None)
        with pytest.raises(ftplib.error_perm, match="^550"):
            ftp.cwd("escape")
        with pytest.raises(ftplib.error_perm, match="^550"):
            ftp.storbinary("STOR escape/planted.txt", io.BytesIO(b"x"))
        with pytest.raises(ftplib.error_perm, match="^550"):
            ftp.retrlines("LIST escape", lambda line: None)
        ftp.cwd("../../..")
        assert ftp.pwd() == "/"
        assert os.listdir(outside) == ["secret.txt"]
        assert ftp.voidcmd("NOOP").startswith("200")  # still serving
    finally:
        ftp_helpers.close(ftp)


def test_bounce_is_refused_and_foreign_data_connections_dropped(start_ftp, library, ftp_helpers):
    port = start_ftp("threads", library)
    ftp = ftp_helpers.connect(port)
    try:
        for command in (
            "PORT 127,0,0,2,200,10",  # another host
            "PORT 127,0,0,1,0,21",  # a privileged port
            "EPRT |1|127.0.0.2|51200|",
            "EPRT |1|127.0.0.1|22|",
        ):
            with pytest.raises(ftplib.error_perm, match="^504"):
                ftp.sendcmd(command)
        # Someone else connecting to our passive port is turned away; we still get the file.
        ftp.voidcmd("TYPE I")
        host, data_port = ftplib.parse227(ftp.sendcmd("PASV"))
        intruder = socket.create_connection((host, data_port), 5, source_address=("127.0.0.2", 0))
        assert ftp.sendcmd("RETR texts/sonnet-18.txt").startswith("150")
        try:
            assert intruder.recv(100) == b""
        except ConnectionResetError:
            pass
        intruder.close()
        with socket.create_connection((host, data_port), 5) as conn:
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
        assert b"".join(chunks) == (library / "texts/sonnet-18.txt").read_bytes()
        assert ftp.voidresp().startswith("226")
    finally:
        ftp_helpers.close(ftp)


@pytest.mark.parametrize("model", ["threads", "epoll"])
def test_killed_client_mid_upload_leaves_the_old_file_intact(
    model, start_ftp, library, ftp_helpers
):
    target = library / "uploads" / "README.txt"
    old = target.read_bytes()
    port = start_ftp(model, library)
    uploader = subprocess.Popen(
        [sys.executable, "-c", KILLED_UPLOADER, str(port), "uploads/README.txt"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert uploader.stdout.readline().strip() == "sending"

        def partial_upload_arrived() -> bool:
            for name in ftp_helpers.part_files(library / "uploads"):
                try:
                    if os.path.getsize(library / "uploads" / name) >= 1_000_000:
                        return True
                except FileNotFoundError:
                    pass
            return False

        assert ftp_helpers.wait_until(partial_upload_arrived)
    finally:
        uploader.kill()
        uploader.wait()
        uploader.stdout.close()
    assert ftp_helpers.wait_until(lambda: not ftp_helpers.part_files(library / "uploads"))
    assert target.read_bytes() == old
    ftp = ftp_helpers.connect(port)
    try:
        buffer = io.BytesIO()
        ftp.retrbinary("RETR uploads/README.txt", buffer.write)
        assert buffer.getvalue() == old
    finally:
        ftp_helpers.close(ftp)


@pytest.mark.parametrize("model", ["threads", "processes", "epoll", "prefork"])
def test_server_stopped_mid_upload_leaves_no_partial_file(model, start_ftp, library, ftp_helpers):
    target = library / "uploads" / "README.txt"
    old = target.read_bytes()
    port = start_ftp(model, library)
    ftp = ftp_helpers.connect(port)
    try:
        ftp.voidcmd("TYPE I")
        conn = ftp.transfercmd("STOR uploads/README.txt")
        conn.sendall(b"N" * 500_000)

        def upload_in_progress() -> bool:
            sizes = [
                os.path.getsize(library / "uploads" / name)
                for name in ftp_helpers.part_files(library / "uploads")
            ]
            return any(size >= 500_000 for size in sizes)

        assert ftp_helpers.wait_until(upload_in_progress)
        start_ftp.last_server.stop()
        conn.close()
    finally:
        ftp.close()
    assert ftp_helpers.part_files(library / "uploads") == []
    assert target.read_bytes() == old


def test_failed_logins_are_delayed_and_the_third_closes(
    start_ftp, library, users_file, ftp_helpers
):
    port = start_ftp("threads", library, users=str(users_file), login_delay=0.3, no_anonymous=True)
    ftp = ftp_helpers.connect(port, user="")
    try:
        for _ in range(2):
            assert ftp.sendcmd("USER alice").startswith("331")
            started = time.monotonic()
            with pytest.raises(ftplib.error_perm, match="^530"):
                ftp.sendcmd("PASS wrong")
            assert time.monotonic() - started >= 0.25
        assert ftp.sendcmd("USER nobody-here").startswith("331")  # no user probing
        with pytest.raises(ftplib.error_perm, match="^530"):
            ftp.sendcmd("PASS wrong")
        with pytest.raises((EOFError, ConnectionError)):
            ftp.sendcmd("NOOP")
    finally:
        ftp.close()
    # Anonymous is refused when switched off; a right password still works.
    ftp = ftp_helpers.connect(port, user="")
    try:
        with pytest.raises(ftplib.error_perm, match="^530"):
            ftp.login("anonymous", "x")
        assert ftp.login("alice", ftp_helpers.ALICE_PASSWORD).startswith("230")
    finally:
        ftp_helpers.close(ftp)


def test_read_only_server_and_read_only_account(start_ftp, library, users_file, ftp_helpers):
    port = start_ftp("threads", library, users=str(users_file), read_only=True)
    for user, password in (("anonymous", "x"), ("alice", ftp_helpers.ALICE_PASSWORD)):
        ftp = ftp_helpers.connect(port, user, password)
        try:
            with pytest.raises(ftplib.error_perm, match="^550"):
                ftp.storbinary("STOR uploads/new.txt", io.BytesIO(b"x"))
            with pytest.raises(ftplib.error_perm, match="^550"):
                ftp.delete("README.txt")
            assert "README.txt" in ftp.nlst()
        finally:
            ftp_helpers.close(ftp)
    assert not (library / "uploads" / "new.txt").exists()


@pytest.mark.parametrize("model", ["threads", "epoll"])
def test_connection_limits_answer_421(model, start_ftp, library, ftp_helpers):
    port = start_ftp(model, library, max_connections=3, max_per_address=2)

    def open_from(address: str) -> ftplib.FTP:
        ftp = ftplib.FTP(timeout=10)
        ftp.connect("127.0.0.1", port, source_address=(address, 0))
        return ftp

    first, second = open_from("127.0.0.1"), open_from("127.0.0.1")
    with pytest.raises(ftplib.error_temp, match="^421.*from your address"):
        open_from("127.0.0.1")
    third = open_from("127.0.0.2")
    with pytest.raises(ftplib.error_temp, match="^421.*too many connections"):
        open_from("127.0.0.3")
    ftp_helpers.close(first)

    def slot_freed() -> bool:
        try:
            ftp_helpers.close(open_from("127.0.0.3"))
            return True
        except ftplib.error_temp:
            return False

    assert ftp_helpers.wait_until(slot_freed, interval=0.05)
    for ftp in (second, third):
        ftp_helpers.close(ftp)


@pytest.mark.parametrize("model", ["threads", "epoll"])
def test_overlong_lines_and_timeouts(model, start_ftp, library, ftp_helpers):
    port = start_ftp(model, library, idle_timeout=0.8, data_timeout=0.3)
    ftp = ftp_helpers.connect(port)
    try:
        ftp.sock.sendall(b"NOOP " + b"x" * 10_000 + b"\r\n")
        with pytest.raises(ftplib.error_perm, match="^500.*too long"):
            ftp.voidresp()
        assert ftp.voidcmd("NOOP").startswith("200")  # the session survives
        ftp.sendcmd("PASV")
        assert ftp.sendcmd("RETR README.txt").startswith("150")
        with pytest.raises(ftplib.error_temp, match="^425"):
            ftp.voidresp()  # nobody connected to the passive port in time
        started = time.monotonic()
        with pytest.raises(ftplib.error_temp, match="^421"):
            ftp.voidresp()  # said nothing: the server hangs up
        assert time.monotonic() - started >= 0.5
    finally:
        ftp.close()


def test_a_server_killed_mid_upload_leaves_a_part_file_its_next_start_removes(
    start_ftp, library, ftp_helpers
):
    # SIGKILL gives the server no chance to clean up; the next start on the same
    # root sweeps what is left, but never a temporary file that is being written.
    uploads = library / "uploads"
    start_ftp("threads", library)
    killed = start_ftp.last_server
    ftp = ftp_helpers.connect(killed.port)
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd("STOR uploads/README.txt")
    conn.sendall(b"N" * 200_000)
    assert ftp_helpers.wait_until(lambda: ftp_helpers.part_files(uploads))
    os.kill(killed.pid, signal.SIGKILL)
    killed.process.join(10)
    conn.close()
    ftp.close()
    [left_behind] = ftp_helpers.part_files(uploads)

    port = start_ftp("threads", library)
    live = ftp_helpers.connect(port)
    try:
        live.voidcmd("TYPE I")
        upload = live.transfercmd("STOR uploads/new.txt")
        upload.sendall(b"L" * 100_000)
        assert ftp_helpers.wait_until(
            lambda: any(".new.txt." in n for n in ftp_helpers.part_files(uploads))
        )
        assert ftp_helpers.wait_until(lambda: left_behind not in ftp_helpers.part_files(uploads))
        # A third start sweeps again (its sweep is seen when the planted leftover
        # goes) while the live upload's file is locked by its writer: it stays.
        planted = uploads / ".planted.txt.abcd1234.part"
        planted.write_bytes(b"left by some crash")
        start_ftp("threads", library)
        assert ftp_helpers.wait_until(lambda: not planted.exists())
        assert any(".new.txt." in name for name in ftp_helpers.part_files(uploads))
        upload.close()
        live.voidresp()
    finally:
        ftp_helpers.close(live)
    assert (uploads / "new.txt").read_bytes() == b"L" * 100_000
    assert ftp_helpers.part_files(uploads) == []


def test_the_sweep_removes_only_names_an_upload_gives_its_temporary_file(tmp_path):
    from servers.ftp.transfer import sweep_abandoned_uploads

    (tmp_path / "deep" / "er").mkdir(parents=True)
    leftovers = [
        tmp_path / ".a.txt.abcd_123.part",
        tmp_path / "deep" / "er" / ".b.bin.0z9y8x7w.part",
    ]
    keepers = [
        tmp_path / ".notes.part",
        tmp_path / "report.part",
        tmp_path / ".a.txt.ABCD1234.part",
        tmp_path / "a.txt",
    ]
    for path in leftovers + keepers:
        path.write_bytes(b"x")
    assert sorted(sweep_abandoned_uploads(str(tmp_path))) == sorted(map(str, leftovers))
    assert [path for path in keepers if not path.exists()] == []
