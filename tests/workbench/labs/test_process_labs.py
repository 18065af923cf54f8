"""The process labs (fork, orphan, zombie, gil, queue-pipe, process-pool) measure real figures and leave no process behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from workbench.labs import all_labs

pytestmark = [
    pytest.mark.timeout(30),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork, prctl and /proc"),
]

#: Runs one lab headless in a fresh, single-threaded interpreter (forking is safe there), then
#: lists the children it still has: a lab must reap everything it made. multiprocessing's
#: resource tracker lives as long as the interpreter and is not the lab's.
_PROBE = """
import io, json, sys
import psutil
from workbench.labs.cli import main
out = io.StringIO()
status = main(["--run", sys.argv[1], "--json", *[a for s in sys.argv[2:] for a in ("--set", s)]], out=out)
left = [
    {"pid": child.pid, "status": child.status(), "cmd": " ".join(child.cmdline())}
    for child in psutil.Process().children(recursive=True)
    if "resource_tracker" not in " ".join(child.cmdline())
]
print(json.dumps({"status": status, "report": json.loads(out.getvalue() or "null"), "left": left}))
"""


def run_lab(name: str, *settings: str, timeout: float = 25) -> tuple[dict, int]:
    """The lab's figures, and the pid of the interpreter that ran it; fails on leftovers."""
    probe = subprocess.Popen(
        [sys.executable, "-c", _PROBE, name, *settings],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = probe.communicate(timeout=timeout)
    finally:
        if probe.poll() is None:
            probe.kill()
            probe.communicate()
    assert probe.returncode == 0, stderr
    result = json.loads(stdout.splitlines()[-1])
    assert result["status"] == 0, stderr
    assert result["left"] == [], f"{name} left children behind: {result['left']}"
    return result["report"]["figures"], probe.pid


def test_the_process_and_thread_labs_are_listed_with_their_course_sections():
    sections = {lab.name: lab.course_section for lab in all_labs()}
    assert {
        "fork": "2.2.2",
        "orphan": "2.2.3",
        "zombie": "2.2.3",
        "process-pool": "2.2.4",
        "queue-pipe": "2.2.5",
        "daemon-threads": "2.3.2, 2.2.2",
        "lock": "2.3.4",
        "event": "2.3.4",
        "deadlock": "2.3.5",
        "gil": "2.3.6",
    }.items() <= sections.items()


def test_fork_child_has_its_own_pid_the_parent_as_ppid_and_copies_memory_on_write():
    figures, lab_pid = run_lab("fork", "start=3", "child_sets=7", "buffer_mb=16")
    assert figures["parent_pid"] == lab_pid
    assert figures["child_ppid"] == lab_pid
    assert figures["child_pid"] not in (lab_pid, 0)
    assert figures["child_counter"] == 7
    assert figures["parent_counter"] == 3  # the child's write never reached the parent
    assert figures["same_address"] is True
    # Copy-on-write: writing every page of the shared 16 MB made the child copy about 16 MB.
    assert 16 * 0.8 <= figures["copied_on_write_mb"] <= 16 + 8
    assert figures["parent_buffer_untouched"] is True


def test_orphan_is_adopted_by_the_subreaper_lab_once_its_parent_is_killed():
    figures, lab_pid = run_lab("orphan", "subreaper=true")
    assert figures["new_ppid"] != figures["old_ppid"]
    assert figures["new_ppid"] == lab_pid
    assert figures["child_agrees"] is True
    assert figures["reaped"] is True


def test_orphan_without_a_subreaper_goes_to_someone_other_than_the_lab():
    figures, lab_pid = run_lab("orphan")
    assert figures["new_ppid"] not in (figures["old_ppid"], lab_pid)
    assert str(figures["new_ppid"]) in figures["adopter"]
    assert figures["child_agrees"] is True


def test_zombie_stays_unreaped_is_reaped_by_a_handler_and_never_appears_under_sig_ign():
    figures, _ = run_lab("zombie", "hold=0.3")
    assert figures["zombie_seen_none"] is True
    assert figures["reap_ms_none"] >= 300 * 0.9  # it stayed a zombie until the late waitpid
    assert figures["reap_ms_handler"] < 200
    assert figures["zombie_seen_ignore"] is False
    assert figures["reap_ms_ignore"] < 200


def test_zombie_lab_refuses_a_hold_out_of_range():
    probe = subprocess.run(
        [sys.executable, "-m", "workbench.labs", "--run", "zombie", "--set", "hold=60"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert probe.returncode == 2
    assert "hold must be at most 5" in probe.stderr


def test_gil_times_threads_and_processes_and_threads_never_use_more_than_one_core():
    figures, _ = run_lab("gil", "workers=2", "seconds=0.1")
    assert figures["cores"] == len(os.sched_getaffinity(0))
    for key in ("baseline_s", "threads_s", "processes_s"):
        assert 0.01 < figures[key] < 10, key
    assert figures["speedup_threads"] > 0 and figures["speedup_processes"] > 0
    # The GIL: two threads spinning together get at most one core's worth of CPU time.
    assert figures["threads_cpu_pct"] < 130
    assert figures["processes_cpu_pct"] > 0


def test_queue_fills_while_the_consumer_pauses_and_drains_after():
    figures, _ = run_lab("queue-pipe", "messages=2000", "rate=2000", "pause=0.4")
    assert figures["queue_gets_per_s"] > 0 and figures["pipe_recvs_per_s"] > 0
    assert figures["qsize_max_paused"] > figures["qsize_max_consuming"]
    assert figures["qsize_max_paused"] >= 2000 * 0.4 * 0.5  # about rate × pause messages piled up
    assert figures["qsize_end"] < figures["qsize_max_paused"]


def test_process_pool_runs_many_tasks_on_fewer_reused_worker_pids():
    figures, _ = run_lab("process-pool", "workers=2", "tasks=8", "task_ms=10", "fresh=2")
    assert figures["tasks"] == 8
    assert 1 <= figures["distinct_pids"] <= 2 < figures["tasks"]
    assert figures["all_pids_in_pool"] is True
    assert figures["most_tasks_per_worker"] >= 4
    assert figures["fresh_ms_per_task"] > 0
