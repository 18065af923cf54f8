"""Start, watch and stop one server in a child process (spawn context), with no orphans and no zombies.

The workbench has threads, so it never forks itself: servers start through
``multiprocessing``'s ``spawn`` context. The child binds its socket, then sends
a ready message with the bound port (port 0 picks a free one) over a private
pipe, which later carries control messages the other way (the chat admin's
announcements). Stopping is SIGTERM, then SIGKILL after a timeout, then a join
that reaps the child. A child that dies on its own is reported as crashed with
its exit code or signal. Each child asks Linux to SIGTERM it if the workbench
dies, and stops its own children in turn, so nothing outlives the app.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import signal
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from servers.signals import HelperThread, stop_main_thread

_context = multiprocessing.get_context("spawn")
STOP_SIGNAL_INTERVAL = 1.0  # seconds between the SIGTERMs of ServerProcess.stop
_live: weakref.WeakSet[ServerProcess] = weakref.WeakSet()


class LaunchError(RuntimeError):
    """The server could not start; the message is one line meant for the user."""


@dataclass
class ServerSpec:
    """Everything needed to start a server: what, under which model, where."""

    protocol: str
    model: str = "threads"
    host: str = "127.0.0.1"
    port: int = 0
    workers: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    server_id: str = ""

    def __post_init__(self) -> None:
        if not self.server_id:
            self.server_id = self.protocol


def new_stats_queue() -> Any:
    """A queue the servers' stats snapshots arrive on (``spawn`` context)."""
    return _context.Queue()


class ServerProcess:
    """One server running in a child process."""

    def __init__(self, spec: ServerSpec, stats_queue: Any = None) -> None:
        self.spec = spec
        self.stats_queue = stats_queue
        self.process: multiprocessing.process.BaseProcess | None = None
        self.port: int | None = None
        self.host: str = spec.host
        self.state = "new"
        self.exit_description = ""
        self.started_at: float | None = None
        self._control = None
        self._control_lock = threading.Lock()
        self._stopping = False

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def server_id(self) -> str:
        return self.spec.server_id

    def start(self, timeout: float = 15.0) -> int:
        """Start the child and wait until it listens; returns the bound port."""
        if self.state in ("starting", "running"):
            raise LaunchError(f"{self.server_id} is already {self.state}")
        parent_end, child_end = _context.Pipe(duplex=True)
        self.process = _context.Process(
            target=_child_main,
            args=(self.spec, self.stats_queue, child_end),
            name=f"server-{self.server_id}",
            daemon=False,
        )
        self.state = "starting"
        self.exit_description = ""
        self._stopping = False
        self.process.start()
        child_end.close()
        self._control = parent_end
        _live.add(self)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._kill_now()
                raise LaunchError(f"{self.server_id} did not start within {timeout:.0f} s")
            try:
                ready = parent_end.poll(min(remaining, 0.2))
            except (EOFError, OSError):
                ready = True
            if ready:
                try:
                    message = parent_end.recv()
                except (EOFError, OSError):
                    self.process.join(2)
                    self._mark_exited()
                    raise LaunchError(
                        f"{self.server_id} exited before it was ready ({self.exit_description})"
                    ) from None
                if message[0] == "ready":
                    _, self.host, self.port = message
                    self.state = "running"
                    self.started_at = time.time()
                    return self.port
                if message[0] == "error":
                    self.process.join(5)
                    self._mark_exited()
                    self.state = "failed"
                    raise LaunchError(message[1])
            elif not self.process.is_alive():
                if parent_end.poll(0):
                    continue  # its last words (an error) arrived as it exited: read them
                self._mark_exited()
                raise LaunchError(
                    f"{self.server_id} exited before it was ready ({self.exit_description})"
                )

    def poll(self) -> str:
        """Refresh and return the state without blocking; notices a crash."""
        alive = self.process is not None and self.process.is_alive()
        if self.process is not None and self.state in ("starting", "running") and not alive:
            self.process.join(0)
            self._mark_exited()
        return self.state

    def send_control(self, message: dict) -> None:
        """Send a control message (``{"type": "announce", "text": ...}``) to the server."""
        if self._control is None or self.state != "running":
            raise LaunchError(f"{self.server_id} is not running")
        with self._control_lock:
            try:
                self._control.send(message)
            except (OSError, ValueError) as error:
                raise LaunchError(f"{self.server_id}: control channel closed ({error})") from None

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL; the child is always reaped."""
        process = self.process
        if process is None or process.pid is None:  # never started
            return
        self._stopping = True
        if process.is_alive():
            # Repeat the SIGTERM now and then: one that lands just before the
            # server's main thread blocks in a system call is noted but not acted
            # on until the next (see servers.signals); the server ignores repeats.
            deadline = time.monotonic() + timeout
            while process.is_alive() and (remaining := deadline - time.monotonic()) > 0:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
                process.join(min(remaining, STOP_SIGNAL_INTERVAL))
            if process.is_alive():
                process.kill()
                process.join(5)
        else:
            process.join(0)
        self._mark_exited()
        self.state = "stopped"
        self._close_control()
        _live.discard(self)

    def _kill_now(self) -> None:
        if self.process is not None and self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self._mark_exited()
        self.state = "failed"
        self._close_control()

    def _close_control(self) -> None:
        if self._control is not None:
            with contextlib.suppress(OSError):
                self._control.close()
            self._control = None

    def _mark_exited(self) -> None:
        code = self.process.exitcode if self.process is not None else None
        if code is None:
            return
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            self.exit_description = f"killed by {name}"
        else:
            self.exit_description = f"exit code {code}"
        if not self._stopping and self.state in ("starting", "running"):
            self.state = "crashed"
        elif self.state in ("starting", "running"):
            self.state = "stopped"

    def __repr__(self) -> str:
        return (
            f"<ServerProcess {self.server_id} {self.spec.protocol}/{self.spec.model} "
            f"{self.state} pid={self.pid} port={self.port}>"
        )


@contextlib.contextmanager
def running_server(
    protocol: str,
    model: str = "threads",
    *,
    options: dict[str, Any] | None = None,
    workers: int | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    stats_queue: Any = None,
    server_id: str = "",
    timeout: float = 15.0,
) -> Iterator[ServerProcess]:
    """Start a server for the length of a ``with`` block; it is always stopped after."""
    spec = ServerSpec(protocol, model, host, port, workers, dict(options or {}), server_id)
    server = ServerProcess(spec, stats_queue)
    try:
        server.start(timeout)
        yield server
    finally:
        server.stop()


def stop_all() -> None:
    """Stop every server this process started (runs at interpreter exit too)."""
    for server in list(_live):
        with contextlib.suppress(Exception):
            server.stop(timeout=2)


atexit.register(stop_all)


# -- in the child ----------------------------------------------------------------


def _child_main(spec: ServerSpec, stats_queue: Any, control) -> None:
    """Entry point of the server process (spawned: a fresh interpreter)."""
    from servers.runner import ConfigError, options_for, prepare, start_control_thread

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the TUI is the app's, not ours
    # SIGTERM means "stop" only while serving (serve() installs that handler and
    # puts this back after): a repeat from ServerProcess.stop must not cut the exit short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        options = options_for(spec.protocol, spec.options)
        server = prepare(
            spec.protocol,
            spec.model,
            options,
            host=spec.host,
            port=spec.port,
            workers=spec.workers,
            server_id=spec.server_id,
            queue=stats_queue,
        )
    except (ConfigError, ImportError) as error:
        control.send(("error", str(error)))
        os._exit(2)
    host, port = server.address

    # The parent holds the other end of ``control``: EOF there means it has gone,
    # even after kill -9, and the server stops as on SIGTERM. (Not prctl's
    # PDEATHSIG: that fires when the *thread* that started us exits, and the
    # app starts servers from short-lived worker threads.)
    start_control_thread(server.app, control.recv, on_closed=stop_main_thread)

    def announce_ready() -> None:
        control.send(("ready", host, port))

    try:
        server.serve(on_ready=announce_ready)
    finally:
        if stats_queue is not None:
            _flush_queue(stats_queue)


def _flush_queue(queue: Any, timeout: float = 1.0) -> None:
    """Give the queue's feeder thread a moment to deliver the final snapshot, never hang on it."""
    queue.close()
    flusher = HelperThread(target=queue.join_thread, daemon=True)
    flusher.start()
    flusher.join(timeout)
    queue.cancel_join_thread()
