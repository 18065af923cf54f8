"""Helper threads of a server block its stop and child signals, so they reach the main thread."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import servers
from servers.signals import MAIN_THREAD_SIGNALS, HelperThread


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
