"""The listen-backlog lab measures what it claims: handshakes queued without accept(), SYNs dropped at a full queue."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.labs import find_lab
from workbench.labs.concepts import LABS_BY_MODEL
from workbench.labs.handshake import ListenBacklogLab, tcp_ext_counter

pytestmark = pytest.mark.timeout(30)


def run(**overrides):
    return find_lab("listen-backlog").execute(overrides)


def test_a_full_queue_leaves_later_clients_in_syn_sent_until_their_syn_is_sent_again():
    report = run()  # listen(2), six clients, no accept() for 300 ms
    # Linux queues backlog + 1 finished handshakes that nobody accept()ed.
    assert report.value("queued_unaccepted") == 3
    assert report.value("accept_queue") == 3
    assert report.value("syn_sent") == 3
    # Machine-wide counter: other tests may add to it, never take from it.
    assert report.value("listen_overflows") >= 3
    # The dropped SYNs got in only when the client's retransmission timer (1 s) ran out.
    assert report.value("late_connect_ms") >= 500
    assert report.value("accepted") == 6
    assert report.value("greetings_waiting") == 6
    (table,) = report.tables
    states = [row[2] for row in table.rows]
    assert states[:3] == ["ESTABLISHED"] * 3
    assert all(state.startswith("SYN_SENT (SYN again in ") for state in states[3:])
    assert "Linux queues backlog + 1" in report.verdict
    assert "6 of 6 were accept()ed" in report.verdict


def test_a_queue_with_room_finishes_every_handshake_before_any_accept():
    report = run(backlog=8, hold_ms=100)
    assert report.value("queued_unaccepted") == 6
    assert report.value("syn_sent") == 0
    assert "late_connect_ms" not in report.figures
    assert report.value("accepted") == 6
    assert report.verdict.startswith("listen(8) had room for all 6")


def test_the_verdict_says_when_connected_clients_were_still_not_accepted():
    verdict = ListenBacklogLab._verdict(
        backlog=2, count=20, queued=3, refused_syn=17, overflows=34,
        early=[0.001] * 3, late=[2.0] * 17, accepted=12,
    )  # fmt: skip
    assert "Only 12 of the 20 connected clients were accept()ed" in verdict
    assert "34 ListenOverflows counted" in verdict


def test_tcp_ext_counters_are_read_from_the_netstat_table(tmp_path: Path):
    table = tmp_path / "netstat"
    table.write_text(
        "TcpExt: SyncookiesSent ListenOverflows ListenDrops\n"
        "TcpExt: 0 7 9\n"
        "IpExt: InNoRoutes\n"
        "IpExt: 0\n"
    )
    assert tcp_ext_counter("ListenOverflows", str(table)) == 7
    assert tcp_ext_counter("NoSuchCounter", str(table)) is None
    assert tcp_ext_counter("ListenOverflows", str(tmp_path / "missing")) is None


def test_the_iterative_and_pool_models_point_at_the_lab():
    assert "listen-backlog" in LABS_BY_MODEL["iterative"]
    assert "listen-backlog" in LABS_BY_MODEL["pool"]
