"""Helper threads of a server block its stop and child signals, so they reach the main thread."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import servers
from servers.runner import ServerShutdown, _raise_shutdown
from servers.signals import MAIN_THREAD_SIGNALS, HelperThread, listen_for_stop


def test_a_helper_thread_blocks_the_main_thread_signals():
    seen: list[set[int]] = []
    thread = HelperThread(target=lambda: seen.append(signal.pthread_sigmask(signal.SIG_BLOCK, [])))
    thread.start()
    thread.join(5)
    assert seen and seen[0] >= MAIN_THREAD_SIGNALS
    # The starting thread's own mask is untouched.
    assert not MAIN_THREAD_SIGNALS & signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_threads_started_by_a_thread_helper_inherit_the_mask():
    # multiprocessing.Queue's feeder thread is started by the stats reporter: it must block them too.
    seen: list[set[int]] = []

    def start_inner() -> None:
        inner = threading.Thread(
            target=lambda: seen.append(signal.pthread_sigmask(signal.SIG_BLOCK, []))
        )
        inner.start()
        inner.join(5)

    outer = HelperThread(target=start_inner)
    outer.start()
    outer.join(5)
    assert seen and seen[0] >= MAIN_THREAD_SIGNALS


def test_servers_start_no_plain_threads():
    root = Path(servers.__file__).parent
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "threading.Thread(" in path.read_text(encoding="utf-8")
    ]
    assert offenders == []


def test_a_helper_thread_is_born_with_the_signals_blocked():
    # Blocked from its first instruction, not only once run() gets going.
    seen: list[set[int]] = []

    class Recording(HelperThread):
        def run(self) -> None:  # deliberately not HelperThread.run
            seen.append(signal.pthread_sigmask(signal.SIG_BLOCK, []))

    thread = Recording()
    thread.start()
    thread.join(5)
    assert seen and seen[0] >= MAIN_THREAD_SIGNALS
    assert not MAIN_THREAD_SIGNALS & signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_only_the_first_stop_signal_unwinds_the_server():
    listen_for_stop()
    try:
        with pytest.raises(ServerShutdown):
            _raise_shutdown(signal.SIGTERM, None)
        _raise_shutdown(signal.SIGTERM, None)  # a repeat: ignored, cleanup goes on
    finally:
        listen_for_stop()


def run_script(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=20
    )


MISSES_TWO_SIGNALS = """
import signal, time
from servers.signals import HelperThread, hear_stop, listen_for_stop, stop_main_thread
heard = []
def on_sigterm(signum, frame):
    heard.append(signum)
    if len(heard) == 3:  # as if the first two had landed just before a blocking call
        hear_stop()
        print("stopped after", len(heard), flush=True)
        raise SystemExit(0)
signal.signal(signal.SIGTERM, on_sigterm)
listen_for_stop()
HelperThread(target=lambda: stop_main_thread(interval=0.05), daemon=True).start()
while True:
    time.sleep(1)
"""


def test_stop_main_thread_repeats_sigterm_until_it_is_heard():
    result = run_script(MISSES_TWO_SIGNALS)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "stopped after 3"


SIGTERM_DURING_FORK = """
import os, signal, sys, types
from servers.models._forking import fork_child, stop_children
from servers.stats import ServerStats

class Stop(BaseException):
    pass

def on_sigterm(signum, frame):
    raise Stop

signal.signal(signal.SIGTERM, on_sigterm)
sent = []
def sigterm_myself_once():
    if not sent:
        sent.append(True)
        os.kill(os.getpid(), signal.SIGTERM)
os.register_at_fork(after_in_parent=sigterm_myself_once)
app = types.SimpleNamespace(stats=ServerStats("fork-test", "echo", "pool"), after_fork=None)
try:
    fork_child(app, signal.pause)
except Stop:
    print("heard; children recorded:", len(app.stats.children), flush=True)
    stop_children(app)
    sys.exit(0)
stop_children(app)
print("the SIGTERM was lost", flush=True)
sys.exit(1)
"""


def test_a_sigterm_that_lands_during_fork_is_heard_after_it():
    # Raised inside an at-fork hook, Python would print "Exception ignored" and drop it.
    result = run_script(SIGTERM_DURING_FORK)
    assert result.stdout.strip() == "heard; children recorded: 1", result.stdout + result.stderr
    assert "Exception ignored" not in result.stderr
