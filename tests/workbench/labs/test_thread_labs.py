"""The thread labs (daemon-threads, lock, event, deadlock) measure real figures and leave no thread behind."""

from __future__ import annotations

import io
import json
import sys
import threading

import pytest

from workbench.labs import cli, find_lab
from workbench.labs.threads import TracedLock, WaitForBoard

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def no_leaked_threads():
    before = set(threading.enumerate())
    yield
    left = [thread for thread in threading.enumerate() if thread not in before]
    assert left == [], f"the lab left threads running: {left}"


def test_lock_lab_loses_updates_without_a_lock_and_none_with_one(no_leaked_threads):
    interval = sys.getswitchinterval()
    report = find_lab("lock").execute({"threads": 4, "increments": 100000})
    assert report.value("expected") == 400000
    assert report.value("lost_without_lock") > 0
    assert report.value("actual_without_lock") == 400000 - report.value("lost_without_lock")
    assert report.value("lost_with_lock") == 0
    assert report.value("actual_with_lock") == 400000
    assert sys.getswitchinterval() == interval  # restored


def test_an_unlucky_round_without_a_lock_is_said_and_the_race_run_again(monkeypatch):
    """A race is luck: a round where the threads did not interleave is not the lab's answer."""
    from workbench.labs.threads import LockLab

    real_race = LockLab._race
    rounds = []

    def first_round_lucky(threads, work):
        rounds.append(threads)
        if len(rounds) == 1:
            return 2 * 100, 0.01  # every update kept: the threads ran one after another
        return real_race(threads, work)

    monkeypatch.setattr(LockLab, "_race", staticmethod(first_round_lucky))
    report = find_lab("lock").execute({"threads": 2, "increments": 100})
    assert "no update lost this time: the threads happened not to interleave" in report.lines
    assert any(line.endswith("(round 2)") for line in report.lines)
    assert len(rounds) >= 3  # two unlocked rounds, then the locked one


def test_event_lab_wakes_every_waiting_worker_and_a_short_timeout_returns_false(
    no_leaked_threads,
):
    report = find_lab("event").execute({"workers": 3, "delay": 0.1})
    assert report.value("woken") == 3
    assert report.value("timeout_wait_returned") is False
    assert 0 <= report.value("wake_ms_max") < 500
    if sys.platform.startswith("linux"):
        assert report.value("blocked_while_waiting") == 3  # asleep in wait(), not spinning
    assert report.value("threads_left") == 0


def test_deadlock_lab_finds_the_wait_for_pair_then_both_cures_finish(no_leaked_threads):
    report = find_lab("deadlock").execute()
    assert report.value("deadlock_detected") is True
    assert report.value("wait_for") == "T1 holds A waits B; T2 holds B waits A"
    assert report.value("backoffs") >= 1
    assert report.value("timeout_completed") is True
    assert report.value("ordering_completed") is True
    assert report.value("ordering_cycle_seen") is False
    assert report.value("threads_left") == 0


def test_the_wait_for_board_sees_no_cycle_when_locks_are_free_or_simply_held():
    board = WaitForBoard()
    a, b = TracedLock("A", board), TracedLock("B", board)
    assert board.cycle() is None
    a.acquire()
    b.acquire()
    assert board.holders == {"A": "MainThread", "B": "MainThread"}
    assert board.cycle() is None
    b.release()
    a.release()
    assert board.holders == {}


@pytest.mark.parametrize("worker", ["thread", "process"])
def test_daemon_worker_dies_at_exit_while_a_non_daemon_one_keeps_the_process_alive(worker):
    report = find_lab("daemon-threads").execute({"work": 0.5, "worker": worker})
    assert report.value("nondaemon_worker_finished") is True
    assert report.value("nondaemon_exit_after_main_s") >= 0.45
    assert report.value("daemon_worker_finished") is False
    assert report.value("daemon_exit_after_main_s") < 0.4


def test_deadlock_streams_its_lines_in_order_before_figures_and_verdict_as_jsonl(
    no_leaked_threads,
):
    out = io.StringIO()
    assert cli.main(["--run", "deadlock", "--jsonl"], out=out) == 0
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    lines = [event["text"] for event in events if event["type"] == "line"]
    assert lines[0].startswith("T1 takes A then wants B")
    assert lines[1].startswith("detector: wait-for cycle T1 (holds A, waits B)")
    assert [event["type"] for event in events][-2:] == ["verdict", "done"]
    assert "T1 holds A waits B; T2 holds B waits A" in events[-2]["text"]


def test_the_daemon_lab_refuses_a_worker_that_is_neither_thread_nor_process():
    report = find_lab("daemon-threads").execute({"worker": "fiber"})
    assert report.verdict == "Nothing measured: worker must be thread or process."
    assert not report.figures


def test_a_cancelled_daemon_lab_starts_no_child_and_reports_no_verdict():
    cancel = threading.Event()
    cancel.set()
    report = find_lab("daemon-threads").execute(cancel=cancel)
    assert report.figures == {} and report.verdict == ""
