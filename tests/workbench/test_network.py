"""The classroom's addresses and the list of connected clients, without sockets."""

from __future__ import annotations

import ipaddress

import pytest

from workbench.connected_clients import MAX_TRACKED, ClientTracker, split_host
from workbench.network import (
    CLASS_PORTS,
    LOCAL_ONLY_TEXT,
    RemoteServers,
    classroom_lines,
    connect_command,
    host_port,
    is_loopback,
    lan_addresses,
    student_hosts,
)

pytestmark = pytest.mark.timeout(30)

PORTS = {"chat": 40123, "ftp": 2121, "http": 8080}


def test_local_servers_tell_the_teacher_how_to_let_a_class_in():
    assert classroom_lines("127.0.0.1", PORTS) == [LOCAL_ONLY_TEXT]
    assert "--listen 0.0.0.0" in LOCAL_ONLY_TEXT


def test_every_interface_address_gets_each_server_and_one_command():
    lines = classroom_lines("0.0.0.0", PORTS, ["192.168.1.20", "10.0.0.5"])
    assert lines == [
        "Students: chat 192.168.1.20:40123 · ftp 192.168.1.20:2121 · http http://192.168.1.20:8080/",
        "Students: chat 10.0.0.5:40123 · ftp 10.0.0.5:2121 · http http://10.0.0.5:8080/",
        # Only the port that is not the class default needs typing.
        "Or run: workbench --connect 192.168.1.20 --chat-port 40123",
    ]


def test_class_ports_need_only_the_address():
    assert connect_command("192.168.1.20", CLASS_PORTS) == "workbench --connect 192.168.1.20"


def test_many_interfaces_are_cut_short_and_counted():
    addresses = [f"10.0.0.{n}" for n in range(1, 6)]
    lines = classroom_lines("0.0.0.0", PORTS, addresses)
    assert len(lines) == 4
    assert lines[-1].endswith("(+2 more addresses)")


def test_a_specific_address_is_the_only_one_and_loopback_is_said():
    assert student_hosts("192.168.1.20") == ["192.168.1.20"]
    lines = classroom_lines("127.0.0.2", {"http": 8080}, [])
    assert lines[0] == "Students: http http://127.0.0.2:8080/ (loopback: this machine only)"


def test_no_network_and_no_servers_yet_are_said_plainly():
    assert "no network address besides loopback" in classroom_lines("0.0.0.0", PORTS, [])[0]
    assert classroom_lines("0.0.0.0", {}, ["192.168.1.20"]) == [
        "Listening for a class on 0.0.0.0 — no server is running yet"
    ]


def test_ipv6_hosts_are_bracketed():
    assert host_port("fd00::2", 80) == "[fd00::2]:80"


def test_lan_addresses_are_this_machines_and_never_loopback():
    for address in lan_addresses("0.0.0.0"):
        parsed = ipaddress.ip_address(address)
        assert parsed.version == 4 and not parsed.is_loopback
    assert all(not ipaddress.ip_address(a).is_link_local for a in lan_addresses("::"))
    assert is_loopback("127.0.0.9") and is_loopback("::1") and not is_loopback("192.168.1.2")


def test_remote_servers_answer_for_each_protocol():
    remote = RemoteServers("192.168.1.20", PORTS)
    assert remote.endpoint("ftp") == ("192.168.1.20", 2121)
    assert remote.endpoint("echo") is None
    assert remote.describe() == (
        "Teacher's servers: chat 192.168.1.20:40123 · ftp 192.168.1.20:2121 · "
        "http http://192.168.1.20:8080/ — none run here"
    )


# -- who is connected --------------------------------------------------------------------


def test_connects_and_disconnects_leave_the_open_ones_grouped_by_host():
    tracker = ClientTracker()
    for port in (5001, 5002, 5003):
        tracker.fold("connect", f"192.168.1.21:{port}")
    tracker.fold("connect", "127.0.0.1:6000")
    tracker.fold("request", "GET /")
    tracker.fold("disconnect", "192.168.1.21:5002")
    view = tracker.view()
    assert view.addresses == ("192.168.1.21:5001", "192.168.1.21:5003", "127.0.0.1:6000")
    assert view.summary() == "192.168.1.21 ×2 · 127.0.0.1"


def test_udp_members_are_there_from_join_to_leave():
    tracker = ClientTracker()
    # UDP: no connections, so no connect/disconnect; the room says who joined from where.
    tracker.fold("join", "alice from 192.168.1.21:5001")
    tracker.fold("join", "bob from [fd00::7]:5002")
    assert tracker.view().summary() == "alice@192.168.1.21 · bob@fd00::7"
    tracker.fold("leave", "alice (timeout)")
    assert tracker.view().summary() == "bob@fd00::7"
    assert tracker.view().addresses == ("[fd00::7]:5002",)


def test_a_tcp_member_who_quits_stays_connected_without_a_name():
    tracker = ClientTracker()
    tracker.fold("connect", "192.168.1.21:5001")
    tracker.fold("join", "alice from 192.168.1.21:5001")
    tracker.fold("leave", "alice (quit)")
    assert tracker.view().summary() == "192.168.1.21"  # QUIT leaves the room, not the socket
    tracker.fold("disconnect", "192.168.1.21:5001")
    assert tracker.view().addresses == ()


def test_a_server_that_dropped_events_makes_the_list_partial_until_reset():
    tracker = ClientTracker()
    tracker.fold("connect", "127.0.0.1:1")
    tracker.dropped(3)
    assert tracker.view().summary().endswith("(partial: the server dropped events under load)")
    tracker.reset()
    assert tracker.view().summary() == "none connected"


def test_the_list_is_bounded():
    tracker = ClientTracker()
    for port in range(MAX_TRACKED + 10):
        tracker.fold("connect", f"127.0.0.1:{port}")
    view = tracker.view()
    assert len(view.addresses) == MAX_TRACKED and view.partial


def test_split_host():
    assert split_host("192.168.1.21:50123") == "192.168.1.21"
    assert split_host("[fd00::2]:80") == "fd00::2"
