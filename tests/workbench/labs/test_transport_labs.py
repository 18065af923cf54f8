"""The transport labs measure what they claim: TIME_WAIT read from the kernel's table, real UDP loss vs TCP."""

from __future__ import annotations

import socket

import pytest

from workbench.labs import find_lab
from workbench.labs.concepts import LABS_BY_MODEL
from workbench.labs.transport import kernel_tcp_sockets, kernel_udp_drops

pytestmark = pytest.mark.timeout(30)


def run(name: str, **overrides):
    return find_lab(name).execute(overrides)


def test_the_server_closing_first_keeps_time_wait_and_blocks_a_restart_without_reuseaddr():
    report = run("time-wait")
    assert report.value("time_wait_side") == "server"
    assert 55 < report.value("time_wait_seconds") <= 60
    assert report.value("peer_read").startswith("b''")
    assert report.value("bind_without_reuseaddr") == "EADDRINUSE"
    assert report.value("bind_with_reuseaddr") == "bound"
    (table,) = report.tables
    # The four-way close as the kernel showed it: FIN_WAIT on the closer, CLOSE_WAIT on the peer.
    assert table.rows[0][1:] == ("ESTABLISHED", "ESTABLISHED")
    assert table.rows[1][1].startswith("FIN_WAIT") and table.rows[1][2] == "CLOSE_WAIT"
    assert table.rows[2][1:] == ("TIME_WAIT", "—")
    assert "why servers set SO_REUSEADDR" in report.verdict


def test_the_client_closing_first_leaves_the_server_port_free():
    report = run("time-wait", closer="client")
    assert report.value("time_wait_side") == "client"
    assert report.value("bind_without_reuseaddr") == "bound"
    assert "no TIME_WAIT held the server's port" in report.verdict


def test_an_abortive_close_sends_rst_and_leaves_no_time_wait():
    report = run("time-wait", abort=True)
    assert report.value("time_wait_side") == "none"
    assert "ECONNRESET" in report.value("peer_read")
    assert "time_wait_seconds" not in report.figures
    assert report.value("bind_without_reuseaddr") == "bound"


def test_reuseaddr_must_be_on_the_old_socket_too():
    report = run("time-wait", old_reuseaddr=False)
    assert report.value("time_wait_side") == "server"
    assert report.value("bind_without_reuseaddr") == "EADDRINUSE"
    assert report.value("bind_with_reuseaddr") == "EADDRINUSE"
    assert "only when both sockets did" in report.verdict


def test_reuseport_on_both_sockets_passes_time_wait_as_under_prefork():
    report = run("time-wait", reuse_port=True)
    assert report.value("time_wait_side") == "server"
    assert report.value("bind_without_reuseaddr") == "bound"
    assert "prefork" in report.verdict


def test_a_bad_closer_is_said_and_nothing_is_measured():
    report = run("time-wait", closer="both")
    assert report.figures == {}
    assert "closer must be server or client" in report.verdict


def test_a_udp_burst_into_a_small_buffer_loses_datagrams_the_kernel_counts():
    report = run("udp-loss", messages=500, size=1000, rcvbuf=8192, pause_ms=100)
    lost = report.value("udp_lost")
    assert report.value("udp_sent") == 500
    assert 0 < lost < 500
    assert report.value("udp_received") + lost == 500
    # The kernel's own counter agrees with the numbering.
    assert report.value("kernel_drops") == lost
    assert report.value("tcp_received") == 500
    assert report.value("tcp_sender_waited_ms") >= 50
    assert f"UDP lost {lost:,} of 500" in report.verdict


def test_a_burst_that_fits_the_buffer_loses_nothing():
    report = run("udp-loss", messages=10, size=100, rcvbuf=65536, pause_ms=0)
    assert report.value("udp_lost") == 0
    assert report.value("kernel_drops") == 0
    assert report.value("tcp_received") == 10


def test_the_kernel_tables_are_read_for_real_sockets():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        # Other tests' old connections may have used this port number too: look for ours.
        listening = [e for e in kernel_tcp_sockets(port) if e.state == "LISTEN"]
        assert any(entry.local_port == port for entry in listening)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        assert kernel_udp_drops(receiver.getsockname()[1]) == 0


def test_models_link_to_the_transport_labs():
    assert "udp-loss" in LABS_BY_MODEL["datagram"]
    assert "time-wait" in LABS_BY_MODEL["prefork"]
