"""A lab run in a child process of its own: its command, its JSONL events read in batches, and a cancel that kills its process group."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from workbench.labs.base import ParamValue

#: How long events gather before they go out as one batch: a lab printing a thousand
#: lines a second costs the UI ten messages a second, not a thousand.
BATCH_SECONDS = 0.1
#: The end of the child's stderr kept to explain a crash.
STDERR_TAIL_BYTES = 4096


def format_value(value: ParamValue) -> str:
    """A parameter value as ``--set`` takes it (booleans as true/false, which Param.parse reads)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def lab_command(name: str, params: Mapping[str, ParamValue]) -> list[str]:
    """``python -m workbench.labs --run NAME --jsonl --set K=V ...`` with this interpreter."""
    command = [sys.executable, "-m", "workbench.labs", "--run", name, "--jsonl"]
    for key, value in params.items():
        command += ["--set", f"{key}={format_value(value)}"]
    return command


def describe_exit(returncode: int) -> str:
    """``-9`` -> ``killed by SIGKILL``, ``1`` -> ``exit code 1``."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def parse_event(line: str) -> dict[str, Any]:
    """One JSONL line as an event; anything else the child printed is kept as a plain line."""
    try:
        event = json.loads(line)
    except ValueError:
        return {"type": "line", "text": line}
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        return {"type": "line", "text": line}
    return event


class LabProcess:
    """One run of a lab in a child process, started in a new session so a cancel reaches
    every process the lab forked (a fork lab's children, an orphan it leaves behind).

    The app has threads, so forking it is unsafe; the child is a fresh interpreter and
    single-threaded. Read :meth:`batches` from one thread; :meth:`cancel` from any.
    """

    def __init__(self, command: Sequence[str]) -> None:
        self.command = list(command)
        self.started = time.monotonic()
        self.cancelled = False
        #: Set once :meth:`batches` owns the pipes (and so closes them when it is done).
        self._reading = False
        self._stderr_tail = b""
        self._process = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"},
        )

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.poll()

    def batches(self, batch_seconds: float = BATCH_SECONDS) -> Iterator[list[dict[str, Any]]]:
        """Yield the child's events in batches until its stdout closes, then one last batch
        with an ``error`` event if it ended badly without saying why (a crash, a kill)."""
        assert self._process.stdout is not None and self._process.stderr is not None
        self._reading = True
        selector = selectors.DefaultSelector()
        selector.register(self._process.stdout, selectors.EVENT_READ, "out")
        selector.register(self._process.stderr, selectors.EVENT_READ, "err")
        pending = b""
        batch: list[dict[str, Any]] = []
        said_why = False
        batch_started = time.monotonic()
        try:
            while selector.get_map():
                for key, _ in selector.select(timeout=batch_seconds):
                    data = os.read(key.fd, 65536)
                    if not data:
                        selector.unregister(key.fileobj)
                        continue
                    if key.data == "err":
                        self._stderr_tail = (self._stderr_tail + data)[-STDERR_TAIL_BYTES:]
                        continue
                    pending += data
                    *lines, pending = pending.split(b"\n")
                    for raw in lines:
                        text = raw.decode("utf-8", "replace").rstrip("\r")
                        if text:
                            event = parse_event(text)
                            said_why = said_why or event["type"] in ("error", "done")
                            batch.append(event)
                if batch and time.monotonic() - batch_started >= batch_seconds:
                    yield batch
                    batch = []
                    batch_started = time.monotonic()
        finally:
            selector.close()
            self._process.stdout.close()
            self._process.stderr.close()
        if pending.strip():
            batch.append(parse_event(pending.decode("utf-8", "replace")))
        returncode = self._process.wait()
        if returncode != 0 and not said_why and not self.cancelled:
            stderr = self._stderr_tail.decode("utf-8", "replace").strip()
            reason = f"the lab's process ended: {describe_exit(returncode)}"
            batch.append({"type": "error", "text": f"{reason}\n{stderr}" if stderr else reason})
        if batch:
            yield batch

    def cancel(self) -> None:
        """Kill the child and every process of its session (SIGKILL: a lab has nothing to save)."""
        self.cancelled = True
        try:
            os.killpg(self._process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass  # the whole group has already gone

    def close(self) -> None:
        """Cancel if still running and reap the child, so no zombie is left.

        The pipes stay open while a reader is in :meth:`batches` (it closes them at EOF):
        an fd closed under epoll just vanishes from it, and the reader would wait forever.
        """
        if self._process.poll() is None:
            self.cancel()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be ignored
            pass
        if not self._reading:
            for stream in (self._process.stdout, self._process.stderr):
                if stream is not None:
                    stream.close()
