"""Suite-wide fixtures: every test must leave no child process behind."""

from __future__ import annotations

import time

import psutil
import pytest

#: Helper processes multiprocessing keeps for the whole session, not leaks.
_LONG_LIVED = ("resource_tracker", "forkserver")


def _children() -> dict[int, str]:
    found = {}
    for child in psutil.Process().children(recursive=True):
        try:
            cmdline = " ".join(child.cmdline())
            if child.status() == psutil.STATUS_ZOMBIE:
                cmdline = f"<zombie> {cmdline}"
        except psutil.Error:
            continue
        if any(name in cmdline for name in _LONG_LIVED):
            continue
        found[child.pid] = cmdline
    return found


@pytest.fixture(autouse=True)
def no_leaked_children():
    """Fail a test that leaves a child process (or a zombie) behind."""
    before = set(_children())
    yield
    deadline = time.monotonic() + 5
    leaked = {}
    while time.monotonic() < deadline:
        leaked = {pid: cmd for pid, cmd in _children().items() if pid not in before}
        if not leaked:
            return
        time.sleep(0.05)
    for pid in leaked:  # clean up so one leak does not cascade into every later test
        try:
            psutil.Process(pid).kill()
        except psutil.Error:
            pass
    pytest.fail(f"test left child processes behind: {leaked}")
