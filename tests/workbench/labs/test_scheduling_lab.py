"""The concurrent-parallel lab measures what it claims: tasks sharing a core wait on its run queue, blocked tasks do not."""

from __future__ import annotations

import time

import pytest

from workbench.labs import find_lab
from workbench.labs.concepts import LABS_BY_MODEL
from workbench.labs.scheduling import (
    BLOCKING_PIECES,
    ConcurrentParallelLab,
    SharingRun,
    TaskTimes,
    _context_switches,
)

pytestmark = pytest.mark.timeout(60)

WORK_MS = 100


@pytest.fixture(scope="module")
def report():
    return find_lab("concurrent-parallel").execute({"tasks": 3, "work_ms": WORK_MS})


def test_cpu_bound_tasks_on_one_core_wait_ready_on_its_run_queue(report):
    # Three tasks pinned to one core: while one runs, the others are runnable but waiting.
    assert report.value("one_core_ready_ms") >= 0.3 * WORK_MS
    assert report.value("one_core_taken") >= 1  # the scheduler took the CPU away from each
    assert "concurrent, not parallel" in report.verdict


def test_blocking_tasks_share_one_core_without_waiting_their_turn(report):
    # Each sleep is the task giving up the CPU: the kernel counts it as a voluntary switch.
    assert report.value("blocking_gave_up") >= BLOCKING_PIECES
    # One after another they would take 3 x 100 ms; blocked, they overlap on one core.
    assert report.value("blocking_ms") < 2 * WORK_MS


def test_the_table_splits_every_run_into_running_ready_and_waiting(report):
    (table,) = report.tables
    assert table.headers[3:6] == ("running ms", "ready ms", "waiting ms")
    labels = [row[0] for row in table.rows]
    assert labels[0] == "1 CPU-bound task alone"
    assert labels[1] == "3 CPU-bound tasks on core " + labels[1].rsplit(" ", 1)[1]
    assert labels[-1].startswith("3 blocking tasks on core")
    cores = report.value("cores")
    if cores > 1:
        assert labels[2] == f"3 CPU-bound tasks over {min(3, cores)} cores"
    else:
        assert len(labels) == 3


def test_on_a_single_core_the_verdict_says_nothing_can_run_in_parallel():
    def run(label: str, wall: float, running: float, ready: float) -> SharingRun:
        return SharingRun(label, wall, (TaskTimes(wall, running, ready, 0, 5),) * 2)

    verdict = ConcurrentParallelLab._verdict(
        2,
        1,
        run("alone", 0.3, 0.3, 0.0),
        run("shared", 0.6, 0.3, 0.3),
        None,
        run("blocking", 0.3, 0.0, 0.0),
        0.3,
    )
    assert "one usable core, so nothing here can run in parallel" in verdict


def test_a_sleep_counts_as_giving_the_cpu_up():
    voluntary_before, _ = _context_switches()
    time.sleep(0.01)
    voluntary_after, _ = _context_switches()
    assert voluntary_after > voluntary_before


def test_the_processes_and_threads_models_point_at_the_lab():
    assert "concurrent-parallel" in LABS_BY_MODEL["processes"]
    assert "concurrent-parallel" in LABS_BY_MODEL["threads"]
