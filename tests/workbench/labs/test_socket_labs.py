"""The socket labs measure what they claim: on real loopback sockets, real servers and a real client process."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import threading
import time

import pytest

from workbench.labs import find_lab

pytestmark = pytest.mark.timeout(30)


def run(name: str, **overrides):
    return find_lab(name).execute(overrides)


def test_framing_merges_three_late_read_sends_and_udp_keeps_three_datagrams() -> None:
    report = run("framing", delay_ms=0)
    assert report.value("tcp_sends") == 3
    assert report.value("tcp_recv_chunks") < 3
    assert report.value("tcp_bytes") == len(b"hellohow are youbye")
    assert report.value("udp_datagrams") == 3
    # Unframed, a merged chunk is no message the sender sent.
    assert report.value("messages_recovered") < 3
    assert "send #1: 5 bytes 'hello'" in "\n".join(report.lines)
    (table,) = report.tables
    assert "#1 + #2" in table.rows[0][3]
    assert sum(int(row[1]) for row in table.rows) == report.value("tcp_bytes")
    assert "粘包" in report.verdict


def test_framing_on_newlines_recovers_all_three_messages() -> None:
    report = run("framing", delay_ms=0, split_lines=True)
    assert report.value("tcp_recv_chunks") < 3
    assert report.value("messages_recovered") == 3
    assert "frame on '\\n' -> message 2: 'how are you'" in report.lines


def test_framing_with_a_delay_shows_each_send_before_the_next() -> None:
    report = run("framing", delay_ms=100)
    lines = report.lines
    first_recv = next(i for i, line in enumerate(lines) if line.startswith("recv -> 5 bytes"))
    second_send = next(i for i, line in enumerate(lines) if line.startswith("send #2"))
    assert first_recv < second_send  # the receiver kept up, so 'hello' arrived alone
    assert report.value("tcp_bytes") == 19


def test_closing_shows_the_empty_recv_then_a_broken_send_and_a_reset() -> None:
    report = run("closing")
    assert report.value("eof_recv_bytes") == 0
    assert any("bytes=0 b''" in line for line in report.lines)
    assert report.value("sends_accepted") >= 1
    assert report.value("first_send_error") in ("EPIPE", "ECONNRESET")
    assert any("BrokenPipeError [EPIPE]" in line for line in report.lines)
    assert report.value("reset_recv_error") == "ECONNRESET"
    assert "ConnectionResetError [ECONNRESET]" in "\n".join(report.lines)


def test_blocking_counts_busy_errors_and_times_the_waits() -> None:
    report = run("blocking", spin_ms=100, timeout_ms=120, sender_delay_ms=150)
    assert report.value("nonblocking_errors") > 100
    assert report.value("nonblocking_cpu_percent") > 10
    assert 110 <= report.value("timeout_measured_ms") < 2000
    assert report.value("blocking_wait_ms") >= 140
    # Blocked in the kernel: a tiny fraction of the wait is CPU.
    assert report.value("blocking_cpu_ms") < report.value("blocking_wait_ms") / 4
    assert any("BlockingIOError [EAGAIN]" in line for line in report.lines)
    assert any("TimeoutError" in line for line in report.lines)


def test_multiplex_trace_decodes_fin_and_rst_and_epoll_hands_in_nothing() -> None:
    report = run("multiplex-trace", wait_ms=2000)
    for name in ("select", "poll", "epoll"):
        assert report.value(f"{name}_ready") == 6, name
    assert report.value("select_fds_handed_in") > report.value("select_waits")
    assert report.value("epoll_fds_handed_in") == 0
    assert report.value("epoll_ctl_calls") == 5  # listener, A, B added; A, B removed
    for name, prefix in (("poll", "POLL"), ("epoll", "EPOLL")):
        fin, rst = report.value(f"{name}_fin_flags"), report.value(f"{name}_rst_flags")
        assert f"{prefix}IN" in fin and f"{prefix}RDHUP" in fin and "ERR" not in fin
        assert f"{prefix}ERR" in rst and f"{prefix}HUP" in rst
    assert any(line.endswith("rs=[]") for line in report.lines)  # the timed-out select


@pytest.fixture
def restored_fd_limit():
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    yield
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == before


def test_idle_sweep_reports_every_mechanism_and_select_s_wall(restored_fd_limit) -> None:
    report = run("idle-sweep", idle=60, busy=3, window_ms=60)
    for name in ("select", "poll", "epoll"):
        for suffix in ("0idle", "nidle"):
            assert report.value(f"{name}_rtps_{suffix}") > 0
            assert report.value(f"{name}_us_per_wait_{suffix}") > 0
    assert report.value("idle_connections") == 60
    assert report.value("select_wall_fd") >= 1024
    assert "filedescriptor out of range in select()" in report.value("select_wall_error")
    (table,) = report.tables
    assert [row[1] for row in table.rows] == ["0", "0", "0", "60", "60", "60"]


def test_idle_sweep_past_fd_setsize_select_fails_cleanly_and_epoll_goes_on(
    restored_fd_limit,
) -> None:
    report = run("idle-sweep", idle=1100, busy=2, window_ms=50)
    assert "out of range" in report.value("select_error_nidle")
    assert report.value("epoll_rtps_nidle") > 0 and report.value("poll_rtps_nidle") > 0
    assert "select failed" in report.verdict


def test_counter_threads_share_the_global_and_processes_do_not() -> None:
    report = run("counter", requests=3)
    (table,) = report.tables
    assert [row[1] for row in table.rows] == ["1", "2", "3"]
    assert [row[3] for row in table.rows] == ["1", "1", "1"]
    assert report.value("threads_last_counter") == 3
    assert report.value("threads_distinct_pids") == 1
    assert report.value("threads_answered_by_server_pid") == 3
    assert report.value("processes_max_counter") == 1
    assert report.value("processes_distinct_pids") == 3
    assert report.value("processes_answered_by_server_pid") == 0


def test_the_cli_runs_a_spawning_lab_as_json_in_a_fresh_interpreter() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "workbench.labs", "--run", "idle-sweep", "--json"]
        + ["--set", "idle=20", "--set", "busy=2", "--set", "window_ms=50"],
        capture_output=True,
        text=True,
        timeout=25,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["lab"] == "idle-sweep" and report["params"]["idle"] == 20
    assert report["figures"]["epoll_rtps_nidle"] > 0
    assert report["verdict"].startswith("With 0 idle select made")


def test_the_socket_labs_import_no_ui_library() -> None:
    probe = (
        "import sys, workbench.labs.sockets, workbench.labs.multiplex, workbench.labs.counter\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=20, check=True
    )
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "name", ["framing", "closing", "blocking", "multiplex-trace", "idle-sweep", "counter"]
)
def test_a_cancelled_lab_stops_early_without_a_verdict(name, restored_fd_limit) -> None:
    cancel = threading.Event()
    cancel.set()
    started = time.monotonic()
    report = find_lab(name).execute(cancel=cancel)
    assert time.monotonic() - started < 4
    assert report.lines[-1] == "cancelled" and report.verdict == ""
