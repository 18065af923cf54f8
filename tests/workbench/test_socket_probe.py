"""The socket probe: ss output parsed, then real servers' sockets seen (backlog, TIME_WAIT, EADDRINUSE)."""

from __future__ import annotations

import ftplib
import socket
import time
from pathlib import Path

import pytest

from servers.launcher import LaunchError, running_server
from servers.runner import LISTEN_BACKLOG
from workbench.server_manager import ServerManager
from workbench.socket_probe import (
    SocketReport,
    explain_bind_failure,
    explain_bind_success,
    parse_ss,
    probe_server,
    read_kernel_sockets,
    ss_available,
)

pytestmark = pytest.mark.timeout(60)

needs_ss = pytest.mark.skipif(not ss_available(), reason="ss (iproute2) is not installed")

#: Real `ss -tuinoeaH` output, captured from real sockets: a listener (backlog 5) with two
#: connections waiting to be accept()ed, one accepted, one closed by the server (TIME_WAIT),
#: an IPv6 listener and a UDP socket. Ports: TCP 36967, UDP 52002, IPv6 43341.
SS_SAMPLE = (Path(__file__).parent / "data" / "ss-sample.txt").read_text()


def somaxconn() -> int:
    return int(Path("/proc/sys/net/core/somaxconn").read_text())


def poll(condition, timeout: float = 10.0, interval: float = 0.05):
    """Call ``condition()`` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(interval)


# -- parsing captured output ---------------------------------------------------------


def test_parse_listener_backlog_from_captured_ss():
    sockets = parse_ss(SS_SAMPLE)
    listener = next(s for s in sockets if s.state == "LISTEN" and s.local[1] == 36967)
    # On a listener Recv-Q is the accept backlog's length and Send-Q its limit (listen(5)).
    assert (listener.recv_q, listener.send_q) == (2, 5)
    assert listener.remote is None
    assert listener.unacked == 2  # the kernel's own count of the same queue
    assert listener.inode == 38720


def test_parse_time_wait_and_not_yet_accepted_have_no_inode():
    sockets = parse_ss(SS_SAMPLE)
    server_side = [s for s in sockets if s.local[1] == 36967 and s.state != "LISTEN"]
    states = sorted((s.state, s.inode) for s in server_side)
    # Two waiting in the backlog and the TIME_WAIT belong to no file descriptor.
    assert states == [
        ("ESTABLISHED", 0),
        ("ESTABLISHED", 0),
        ("ESTABLISHED", 38726),
        ("TIME_WAIT", 0),
    ]
    time_wait = next(s for s in server_side if s.state == "TIME_WAIT")
    assert time_wait.timer.startswith("timewait,")
    assert time_wait.remote == ("127.0.0.1", 57120)
    accepted = next(s for s in server_side if s.inode == 38726)
    assert accepted.rtt_ms == pytest.approx(0.002)


def test_parse_ipv6_and_udp():
    sockets = parse_ss(SS_SAMPLE)
    v6 = next(s for s in sockets if s.local[1] == 43341)
    assert v6.local == ("::1", 43341) and v6.state == "LISTEN"
    udp = next(s for s in sockets if s.transport == "udp")
    assert udp.state == "UNCONN" and udp.local == ("127.0.0.1", 52002)


def test_parse_retransmits_total():
    # ss prints retrans:NOW/TOTAL only once a segment has been retransmitted.
    line = (
        "tcp ESTAB 0 1448 10.0.0.5:22 10.0.0.9:51000 ino:991 sk:1 <->\n"
        "\t cubic rto:408 rtt:203.5/101.7 mss:1448 cwnd:1 unacked:3 retrans:1/7 lost:1\n"
    )
    [sock] = parse_ss(line)
    assert (sock.unacked, sock.retransmits, sock.rtt_ms) == (3, 7, 203.5)


def test_explain_bind_failure_names_time_wait_and_reuseaddr():
    text = explain_bind_failure(
        "cannot listen on 127.0.0.1:80 (tcp): address already in use", 80, 3
    )
    assert "3 TIME_WAIT sockets still hold port 80" in text
    assert "SO_REUSEADDR" in text and "2×MSL" in text
    assert "a TIME_WAIT socket still holds port 80" in explain_bind_failure(
        "address already in use", 80, 1
    )
    assert explain_bind_failure("permission denied", 80, 0) == "permission denied"


def test_explain_bind_success_never_says_no_time_wait_when_one_was_seen():
    assert explain_bind_success(80, 0) == "no TIME_WAIT held port 80"
    text = explain_bind_success(80, 3)
    assert text.startswith("3 TIME_WAIT sockets held port 80, yet the bind worked")
    assert "SO_REUSEPORT" in text and "no TIME_WAIT" not in text


# -- real sockets -------------------------------------------------------------------------


@needs_ss
def test_read_kernel_sockets_sees_a_real_backlog():
    with socket.create_server(("127.0.0.1", 0), backlog=3) as listener:
        port = listener.getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(2)]
        try:
            listening = poll(
                lambda: [
                    s
                    for s in read_kernel_sockets([port])
                    if s.state == "LISTEN" and s.local[1] == port and s.recv_q == 2
                ]
            )
            assert listening[0].send_q == 3
        finally:
            for client in clients:
                client.close()


def http_get_close(port: int) -> tuple[str, int]:
    """One request with ``Connection: close``; returns the client's address once the server closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(b"GET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := client.recv(65536):  # EOF: the server sent its FIN first
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200")
        return client.getsockname()[:2]


@pytest.fixture
def site(tmp_path):
    (tmp_path / "index.html").write_text("<h1>home</h1>\n")
    return tmp_path


@needs_ss
def test_iterative_server_waiting_clients_show_in_the_listen_backlog():
    with running_server("echo", "iterative") as server:
        busy = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        busy.sendall(b"hi\n")
        assert busy.recv(16) == b"hi\n"  # the one client the iterative server is serving
        waiting = [
            socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(2)
        ]
        try:

            def backlog_of_two() -> SocketReport | None:
                report = probe_server(server.pid, server.port)
                listener = report.listener
                return report if listener and listener.recv_q == 2 else None

            report = poll(backlog_of_two)
            assert report.listener.send_q == min(LISTEN_BACKLOG, somaxconn())
            assert report.listener.pids == (server.pid,)
            queued = [s for s in report.sockets if not s.owned and s.state == "ESTABLISHED"]
            assert sorted(s.remote for s in queued) == sorted(c.getsockname()[:2] for c in waiting)
            assert all("accept backlog" in s.role for s in queued)
            served = [s for s in report.sockets if s.owned and s.state == "ESTABLISHED"]
            assert [s.remote for s in served] == [busy.getsockname()[:2]]
            assert served[0].fd is not None and served[0].rtt_ms is not None
            assert "accept backlog 2/" in report.summary()
        finally:
            busy.close()
            for client in waiting:
                client.close()


@needs_ss
def test_time_wait_row_after_the_server_closes_first(site):
    with running_server("http", "epoll", options={"root": str(site)}) as server:
        client_address = http_get_close(server.port)

        def time_wait_row():
            report = probe_server(server.pid, server.port)
            return [
                s for s in report.sockets if s.state == "TIME_WAIT" and s.remote == client_address
            ]

        [row] = poll(time_wait_row)
        assert not row.owned and row.local[1] == server.port
        assert row.timer.startswith("timewait,")
        assert "2×MSL" in row.role


@needs_ss
def test_client_side_time_wait_when_the_client_closes_first():
    with running_server("echo", "threads") as server:
        client = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        client_address = client.getsockname()[:2]
        client.sendall(b"bye\n")
        assert client.recv(16) == b"bye\n"
        client.close()  # the client closes first: the TIME_WAIT is on its side
        report = poll(
            lambda: (
                (r := probe_server(server.pid, server.port)).peer_time_waits
                and client_address in r.peer_time_waits
                and r
            )
        )
        assert not [
            s for s in report.sockets if s.state == "TIME_WAIT" and s.remote == client_address
        ]


@pytest.fixture
def manager(site):
    server_manager = ServerManager(publish_interval=0.2, poll_interval=0.2)
    yield server_manager
    server_manager.close()


@needs_ss
def test_restart_without_reuse_address_hits_eaddrinuse_while_time_wait_holds_the_port(
    manager, site
):
    server_id = manager.start("http", "epoll", options={"root": str(site)})
    port = manager.row(server_id).port
    client_address = http_get_close(port)
    pid = manager.row(server_id).pid
    poll(
        lambda: any(
            s.state == "TIME_WAIT" and s.remote == client_address
            for s in probe_server(pid, port).sockets
        )
    )
    with pytest.raises(LaunchError, match="address already in use"):
        manager.restart_without_reuse_address(server_id)
    row = manager.row(server_id)
    assert row.state == "failed" and "address already in use" in row.exit_description
    # With SO_REUSEADDR (a plain restart) the same port binds at once, TIME_WAIT or not.
    assert manager.restart(server_id, port=port) == port
    assert manager.row(server_id).state == "running"


@needs_ss
def test_ftp_data_connection_time_wait_is_found_on_its_passive_port(tmp_path):
    (tmp_path / "hello.txt").write_text("hello\n")
    with running_server("ftp", "threads", options={"root": str(tmp_path)}) as server:
        ftp = ftplib.FTP()
        ftp.connect("127.0.0.1", server.port, timeout=5)
        try:
            ftp.login()
            data, _ = ftp.ntransfercmd("RETR hello.txt")
            data_port = data.getpeername()[1]
            while data.recv(4096):  # to EOF: the server closes the data connection first
                pass
            data.close()
            ftp.voidresp()

            def data_time_wait():
                report = probe_server(server.pid, server.port, [data_port])
                return [
                    s for s in report.sockets if s.state == "TIME_WAIT" and s.local[1] == data_port
                ]

            [row] = poll(data_time_wait)
            assert not row.owned
            # Without the remembered port the data connection's TIME_WAIT is not the server's.
            plain = probe_server(server.pid, server.port)
            assert not [s for s in plain.sockets if s.local[1] == data_port]
        finally:
            ftp.close()


def test_without_ss_the_psutil_rows_stay_and_the_report_says_what_to_install(monkeypatch):
    monkeypatch.setattr("workbench.socket_probe.shutil.which", lambda name: None)
    with running_server("echo", "threads") as server:
        report = probe_server(server.pid, server.port)
    assert "install iproute2" in report.problem
    [listener] = [s for s in report.sockets if s.state == "LISTEN"]
    assert listener.pids == (server.pid,) and listener.recv_q is None
