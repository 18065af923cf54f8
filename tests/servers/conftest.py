"""Fixtures for server tests: echo clients and stats that arrive through the launcher's queue."""

from __future__ import annotations

import queue
import socket
import time

import pytest

from servers.launcher import new_stats_queue


def echo_round_trip(port: int, payload: bytes, timeout: float = 10.0) -> bytes:
    """Send ``payload``, half-close, read until the server closes; returns what came back."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(payload)
        conn.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def wait_for_snapshot(stats_queue, predicate, timeout: float = 10.0) -> dict:
    """The first snapshot from the queue satisfying ``predicate``; fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            message = stats_queue.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        if message.get("type") == "snapshot":
            last = message
            if predicate(message):
                return message
    raise AssertionError(f"no matching snapshot within {timeout} s; last one: {last}")


@pytest.fixture
def stats_queue():
    stats = new_stats_queue()
    yield stats
    stats.close()
    stats.cancel_join_thread()


@pytest.fixture
def helpers():
    """The helper functions above, for test modules (importlib mode cannot import conftest)."""

    class Helpers:
        round_trip = staticmethod(echo_round_trip)
        snapshot = staticmethod(wait_for_snapshot)

    return Helpers
