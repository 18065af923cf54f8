"""Out of file descriptors (EMFILE): servers refuse extra clients cleanly, count them, and never spin."""

from __future__ import annotations

import errno
import resource
import socket
import time

import psutil
import pytest

from servers.contracts import Application, monotonic
from servers.echo import ByteEcho
from servers.fdlimit import MINIMUM_OPEN_FILES, set_open_file_limit
from servers.launcher import LaunchError, running_server
from servers.models._eventloop import ACCEPT_PAUSE_SECONDS
from servers.models.epoll import EpollServer
from servers.stats import ServerStats

pytestmark = pytest.mark.timeout(60)

#: Low enough that a few dozen connections exhaust it, so EMFILE is cheap to reach.
LOW_LIMIT = 48
CLIENTS = 90


def answer_or_hang_up(conn: socket.socket, payload: bytes) -> str:
    """'served' when the payload comes back, 'refused' when the server hung up, 'hung' on timeout."""
    try:
        conn.sendall(payload)
        received = b""
        while len(received) < len(payload):
            chunk = conn.recv(1024)
            if not chunk:
                return "refused"
            received += chunk
    except TimeoutError:
        return "hung"
    except OSError:  # reset by a server that closed with our bytes unread
        return "refused"
    return "served"


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


@pytest.mark.parametrize("model", ["select", "poll", "epoll", "threads"])
def test_out_of_descriptors_refuses_counts_and_does_not_spin(model, stats_queue, helpers):
    options = {"max_open_files": LOW_LIMIT}
    with running_server("echo", model, options=options, stats_queue=stats_queue) as server:
        conns = [
            socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(CLIENTS)
        ]
        try:
            # Every client is either served or turned away: none is left queued.
            snapshot = helpers.snapshot(
                stats_queue, lambda s: s["accepted"] + s["refused"] == CLIENTS, timeout=20
            )
            assert 0 < snapshot["accepted"] < LOW_LIMIT
            assert snapshot["refused"] == CLIENTS - snapshot["accepted"]
            assert snapshot["max_open_files"] == LOW_LIMIT
            reasons = [event[2] for event in snapshot["events"] if event[1] == "refused"]
            assert reasons and "out of file descriptors" in reasons[0]
            assert "--max-open-files" in reasons[0]
            # While it stays full, the server waits instead of spinning on accept().
            before = cpu_seconds(server.pid)
            time.sleep(1.0)  # measuring idle CPU needs wall time to pass
            assert cpu_seconds(server.pid) - before < 0.3
            outcomes = [answer_or_hang_up(conn, b"x") for conn in conns]
            assert "hung" not in outcomes
            assert outcomes.count("served") == snapshot["accepted"]
        finally:
            for conn in conns:
                conn.close()
        # With the crowd gone there are descriptors again: a new client is served.
        helpers.snapshot(stats_queue, lambda s: s["active"] == 0, timeout=20)
        assert helpers.round_trip(server.port, b"after") == b"after"


def test_the_soft_limit_is_raised_to_the_hard_one_by_default(stats_queue, helpers):
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with running_server("echo", "epoll", stats_queue=stats_queue):
        snapshot = helpers.snapshot(stats_queue, lambda s: s["max_open_files"] > 0)
    expected = hard if hard != resource.RLIM_INFINITY else 2**31 - 1
    assert snapshot["max_open_files"] == expected


def test_a_limit_above_the_hard_one_is_a_clear_start_error():
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard open-file limit here")
    with pytest.raises(LaunchError, match="above the hard limit"):
        with running_server("echo", "epoll", options={"max_open_files": hard + 1}):
            pass


def test_a_limit_too_low_to_run_is_refused():
    with pytest.raises(ValueError, match=f"at least {MINIMUM_OPEN_FILES}"):
        set_open_file_limit(MINIMUM_OPEN_FILES - 1)


def test_asyncio_pauses_accepting_and_says_why(stats_queue, helpers):
    # asyncio's own answer to EMFILE: stop accepting for a second (no spin, no refusal);
    # the panel gets one clear error per pause and the waiting clients are served later.
    options = {"max_open_files": LOW_LIMIT}
    with running_server("echo", "asyncio", options=options, stats_queue=stats_queue) as server:
        conns = [
            socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(CLIENTS)
        ]
        try:
            snapshot = helpers.snapshot(stats_queue, lambda s: s["errors"] >= 1, timeout=20)
            assert snapshot["accepted"] < LOW_LIMIT
            errors = [event[2] for event in snapshot["events"] if event[1] == "error"]
            assert "out of file descriptors" in errors[0]
            before = cpu_seconds(server.pid)
            time.sleep(1.0)  # measuring idle CPU needs wall time to pass
            assert cpu_seconds(server.pid) - before < 0.3
            first_batch = snapshot["accepted"]
            for conn in conns[:first_batch]:
                conn.close()
            assert answer_or_hang_up(conns[first_batch], b"late") == "served"
        finally:
            for conn in conns:
                conn.close()


class ListenerOutOfDescriptors:
    """A listening socket whose accept() fails with EMFILE, as when the process is full."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def accept(self):
        raise OSError(errno.EMFILE, "Too many open files")

    def __getattr__(self, name):
        return getattr(self.sock, name)


def test_with_no_spare_left_the_loop_stops_watching_the_listener_briefly():
    # The spare could not be reopened (another thread took the slot): the loop
    # must neither spin on the readable listener nor stop accepting for good.
    with socket.create_server(("127.0.0.1", 0)) as sock:
        stats = ServerStats()
        app = Application(name="echo", stats=stats, new_handler=lambda peer: ByteEcho(stats))
        server = EpollServer(sock, app)
        client = socket.create_connection(sock.getsockname(), timeout=5)
        try:
            listen_fd = sock.fileno()
            server.listener = ListenerOutOfDescriptors(sock)
            server.spare.close()
            reserve, server.spare.reserve = server.spare.reserve, lambda: None
            server.accept_clients()
            assert 0 < server.next_timeout() <= ACCEPT_PAUSE_SECONDS
            # A client is queued, yet the loop is not woken for it while paused.
            assert listen_fd not in {fd for fd, _ in server.epoll.poll(0)}
            assert server.stats.refused == 0  # nobody was turned away: they wait
            # The pause is over (as if its 0.1 s had passed): watching again, spare back.
            server.listener = sock
            server.spare.reserve = reserve
            server._accept_paused_until = monotonic()
            server.run_timers()
            assert server.spare.available
            assert listen_fd in {fd for fd, _ in server.epoll.poll(1)}
            server.accept_clients()
            assert server.stats.accepted == 1
        finally:
            client.close()
            server.close_all()
            server.epoll.close()
