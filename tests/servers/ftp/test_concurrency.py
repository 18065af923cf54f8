"""Fifty ftplib clients at once, each uploading and downloading 1 MiB, under the multi-client models."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

pytestmark = pytest.mark.timeout(90)

CLIENTS = 50
SIZE = 1 << 20
MIB = 1 << 20


def upload_and_download(port: int, index: int, start: threading.Barrier, ftp_helpers) -> bool:
    payload = os.urandom(SIZE)
    start.wait(timeout=30)
    ftp = ftp_helpers.connect(port)
    try:
        ftp.storbinary(f"STOR uploads/client-{index}.bin", io.BytesIO(payload))
        received = io.BytesIO()
        ftp.retrbinary(f"RETR uploads/client-{index}.bin", received.write)
        assert ftp.size(f"uploads/client-{index}.bin") == SIZE
    finally:
        ftp_helpers.close(ftp)
    return hashlib.sha256(received.getvalue()).digest() == hashlib.sha256(payload).digest()


@pytest.mark.parametrize("model", ["threads", "processes", "pool", "epoll"])
def test_fifty_clients_up_and_down_with_stats(
    model, start_ftp, library, stats_queue, helpers, ftp_helpers
):
    port = start_ftp(model, library, stats_queue=stats_queue)
    start = threading.Barrier(CLIENTS)
    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [
            pool.submit(upload_and_download, port, index, start, ftp_helpers)
            for index in range(CLIENTS)
        ]
        verified = [future.result(timeout=80) for future in futures]
    assert all(verified)
    for index in range(CLIENTS):
        assert (library / f"uploads/client-{index}.bin").stat().st_size == SIZE

    # The live panel's view: every connection, its commands and its bytes arrive,
    # from forked children too, and every connection is seen to close.
    snapshot = helpers.snapshot(
        stats_queue,
        lambda message: (
            message["accepted"] >= CLIENTS
            and message["active"] == 0
            and message["requests"] >= CLIENTS * 8  # USER PASS TYPE PASV STOR PASV RETR SIZE QUIT
            and message["bytes_in"] >= CLIENTS * MIB
            and message["bytes_out"] >= CLIENTS * MIB
        ),
        timeout=15,
    )
    assert snapshot["model"] == model and snapshot["errors"] == 0
