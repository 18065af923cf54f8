"""Small genuine labs for the Labs tab's tests, runnable as a script the way ``python -m workbench.labs`` runs.

Run as ``python labs_for_tab_tests.py --run NAME --jsonl [--set K=V]``: the real CLI, over these labs.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time

from workbench.labs import cli
from workbench.labs.base import Lab, LabContext, Param


class LoopbackChunksLab(Lab):
    """Sends messages over a real loopback TCP connection and counts the recv() chunks."""

    name = "loopback-chunks"
    title = "Messages and recv() chunks on loopback TCP"
    course_term = "粘包"
    course_section = "1.3.4"
    explanation = "Sends small messages back to back on one TCP connection, then reads them."
    order = 1.0
    params = (
        Param("messages", 4, "messages to send", minimum=1, maximum=50),
        Param("announce", True, "print a line per message sent"),
    )

    def run(self, ctx: LabContext) -> None:
        listener = socket.create_server(("127.0.0.1", 0))
        with listener, socket.create_connection(listener.getsockname(), timeout=5) as sender:
            receiver, _ = listener.accept()
            with receiver:
                count = int(ctx["messages"])
                for number in range(count):
                    sender.sendall(f"message {number};".encode())
                    if ctx["announce"]:
                        ctx.line(f"sent message {number}")
                sender.shutdown(socket.SHUT_WR)
                chunks = []
                while chunk := receiver.recv(65536):
                    chunks.append(chunk)
        received = b"".join(chunks)
        ctx.table("recv() chunks", ("#", "bytes"), [(i, len(c)) for i, c in enumerate(chunks)])
        ctx.figure("messages", "messages sent", count)
        ctx.figure("bytes", "bytes received", len(received), "B")
        ctx.verdict(f"{count} messages arrived as {len(chunks)} recv() chunk(s)")


class SlowForkingLab(Lab):
    """Forks a child that sleeps, then waits; only a cancel (or its time limit) ends it."""

    name = "slow-fork"
    title = "A lab that forks and waits"
    course_term = "fork"
    course_section = "2.2.2"
    explanation = "Forks a sleeping child and waits, so a cancel has a process group to kill."
    order = 2.0
    params = (Param("seconds", 30.0, "how long to wait", minimum=0.1, maximum=60),)

    def run(self, ctx: LabContext) -> None:
        child = os.fork()
        if child == 0:
            time.sleep(float(ctx["seconds"]) + 5)
            os._exit(0)
        ctx.line(f"forked child {child}")
        deadline = time.monotonic() + float(ctx["seconds"])
        try:
            while time.monotonic() < deadline and not ctx.cancelled:
                time.sleep(0.05)
        finally:
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
        ctx.verdict("waited to the end")


class BrokenLab(Lab):
    """Fails half way, as a buggy lab would."""

    name = "broken"
    title = "A lab that fails"
    course_term = "错误"
    course_section = ""
    explanation = "Prints one line, then raises."
    order = 3.0

    def run(self, ctx: LabContext) -> None:
        ctx.line("about to fail")
        raise RuntimeError("the socket went away")


TEST_LABS: tuple[Lab, ...] = (LoopbackChunksLab(), SlowForkingLab(), BrokenLab())


def find_test_lab(name: str) -> Lab:
    for lab in TEST_LABS:
        if lab.name == name:
            return lab
    raise KeyError(f"no lab called {name!r}")


if __name__ == "__main__":
    cli.all_labs = lambda: list(TEST_LABS)
    cli.find_lab = find_test_lab
    sys.exit(cli.main())
