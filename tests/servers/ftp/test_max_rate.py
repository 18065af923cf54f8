"""``--max-rate``: each transfer held to a KiB/s limit, so a class can watch one; ABOR still works."""

from __future__ import annotations

import io
import time

import pytest

pytestmark = pytest.mark.timeout(60)

RATE_KIB = 100
SIZE = 150 * 1024  # 1.5 s at the limit: long enough to measure, short enough for a suite


@pytest.mark.parametrize("model", ["threads", "epoll"])
def test_downloads_and_uploads_take_at_least_size_over_rate(model, start_ftp, library, ftp_helpers):
    (library / "uploads" / "big.bin").write_bytes(b"\x07" * SIZE)
    port = start_ftp(model, library, max_rate=RATE_KIB)
    ftp = ftp_helpers.connect(port)
    try:
        received = io.BytesIO()
        started = time.monotonic()
        ftp.retrbinary("RETR uploads/big.bin", received.write)
        download_seconds = time.monotonic() - started
        assert received.getvalue() == b"\x07" * SIZE

        started = time.monotonic()
        ftp.storbinary("STOR uploads/up.bin", io.BytesIO(b"\x08" * SIZE))
        upload_seconds = time.monotonic() - started
        assert (library / "uploads" / "up.bin").read_bytes() == b"\x08" * SIZE
    finally:
        ftp_helpers.close(ftp)
    floor = SIZE / (RATE_KIB * 1024)
    print(
        f"{model}: {SIZE} B at {RATE_KIB} KiB/s: download {download_seconds:.2f} s, "
        f"upload {upload_seconds:.2f} s (floor {floor:.2f} s)"
    )
    assert floor <= download_seconds < floor + 3
    assert floor <= upload_seconds < floor + 3


def test_a_paced_transfer_still_aborts_at_once(start_ftp, library, ftp_helpers):
    (library / "uploads" / "big.bin").write_bytes(b"\x07" * SIZE * 10)  # 15 s at the limit
    port = start_ftp("threads", library, max_rate=RATE_KIB)
    ftp = ftp_helpers.connect(port)
    try:
        ftp.voidcmd("TYPE I")
        conn = ftp.transfercmd("RETR uploads/big.bin")
        assert conn.recv(1024)
        started = time.monotonic()
        reply = ftp.abort()
        conn.close()
        if reply.startswith("426"):
            ftp.voidresp()  # then the 226 that ends the aborted transfer
        assert time.monotonic() - started < 2
        assert ftp.voidcmd("NOOP").startswith("200")  # the session goes on
    finally:
        ftp_helpers.close(ftp)


def test_unlimited_by_default(start_ftp, library, ftp_helpers):
    (library / "uploads" / "big.bin").write_bytes(b"\x07" * SIZE)
    port = start_ftp("threads", library)
    ftp = ftp_helpers.connect(port)
    try:
        started = time.monotonic()
        ftp.retrbinary("RETR uploads/big.bin", lambda data: None)
        assert time.monotonic() - started < SIZE / (RATE_KIB * 1024)
    finally:
        ftp_helpers.close(ftp)
