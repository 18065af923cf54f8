"""Connection limits shared across forked processes: totals, per-address, dead holders swept."""

from __future__ import annotations

import os

import pytest

from servers.ftp.limits import ConnectionLimiter

pytestmark = pytest.mark.timeout(10)


def test_total_and_per_address_limits():
    limiter = ConnectionLimiter(max_total=3, max_per_address=2)
    first, _ = limiter.acquire("127.0.0.1")
    second, _ = limiter.acquire("127.0.0.1")
    refused, reason = limiter.acquire("127.0.0.1")
    assert refused is None and "from your address" in reason
    other, _ = limiter.acquire("127.0.0.2")
    refused, reason = limiter.acquire("::1")
    assert refused is None and "limit 3" in reason
    limiter.release(first)
    assert limiter.acquire("::1")[0] is not None
    assert limiter.count() == 3
    assert {first, second, other} == {0, 1, 2}


def test_forked_children_share_the_table_and_dead_holders_are_swept():
    limiter = ConnectionLimiter(max_total=2)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: hold a slot and die without releasing it
        try:
            slot, _ = limiter.acquire("127.0.0.1")
            os.write(write_fd, b"1" if slot is not None else b"0")
        finally:
            os._exit(0)
    os.close(write_fd)
    assert os.read(read_fd, 1) == b"1"
    os.close(read_fd)
    os.waitpid(pid, 0)
    assert limiter.count() == 1  # the child's slot is visible here
    assert limiter.acquire("127.0.0.1")[0] is not None
    # Full, but one holder is dead: its slot is reclaimed.
    assert limiter.acquire("127.0.0.1")[0] is not None
    assert limiter.acquire("127.0.0.1")[0] is None


def test_bad_limits_are_refused():
    with pytest.raises(ValueError):
        ConnectionLimiter(0)
    with pytest.raises(ValueError):
        ConnectionLimiter(5, -1)
