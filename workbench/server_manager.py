"""Owns the workbench's server processes and turns their stats queue and psutil readings into batched news (course 2.2.5 进程通信).

It knows nothing of the UI: it publishes plain records (:mod:`workbench.server_records`)
through the callback given to :meth:`ServerManager.open`, and the app turns them
into its messages. Two daemon threads do all the watching, so the UI thread never blocks:

* the *drain* thread empties the shared ``multiprocessing.Queue`` every server
  reports to, keeps the latest snapshot of each, computes rates, and publishes
  one :class:`ServersSnapshot` about twice a second with all the rows and the
  events gathered since the previous one;
* the *poller* thread reads, about once a second, what the OS sees of each
  server's own process tree (CPU %, RSS, threads, zombies) and notices a server
  that died by itself (``kill -9``), published as :class:`ServerCrash`.

Whenever the address of a protocol's default server appears, moves or goes away
(start, restart, stop, crash, remove) an :class:`EndpointMoved` is published at
once, from whichever thread made the change, so tabs follow their server without polling.

``start``, ``stop``, ``restart`` and ``stop_all`` block (they wait for the child
to be ready or gone): call them from thread workers, never from the UI thread.
"""

from __future__ import annotations

import collections
import itertools
import queue as queue_module
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil

from workbench.connected_clients import ClientsView, ClientTracker
from workbench.data import server_options
from workbench.network import RemoteServers
from workbench.server_records import (
    Address,
    EndpointMoved,
    ManagerNews,
    ProcessNode,
    ServerCrash,
    ServerEvent,
    ServerRow,
    ServersSnapshot,
)

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_MODEL",
    "DEFAULT_MODELS",
    "DEFAULT_PROTOCOLS",
    "ProcessNode",
    "ServerEvent",
    "ServerManager",
    "ServerRow",
    "connect_host",
]

#: Seconds between two published batches (the panel's refresh rate).
PUBLISH_INTERVAL = 0.5
#: Seconds between two psutil readings of the process trees.
POLL_INTERVAL = 1.0
#: Events kept between two batches; beyond that they are counted as dropped.
MAX_PENDING_EVENTS = 2000
#: Protocols the workbench starts by default, in tab order.
DEFAULT_PROTOCOLS = ("chat", "ftp", "http")
#: Model used when none is asked for: the course's IO multiplexing model.
DEFAULT_MODEL = "epoll"
#: Model each default server starts under. FTP runs under every model (servers.ftp gives the
#: per-connection models a blocking handler and the event loops an evented one); by default
#: it gets a thread per session.
DEFAULT_MODELS = {"chat": "epoll", "ftp": "threads", "http": "epoll"}
#: Where servers listen unless told otherwise: loopback, so nothing leaves the machine.
DEFAULT_HOST = "127.0.0.1"


def connect_host(bind_host: str) -> str:
    """The address a local client dials to reach a server bound to ``bind_host``.

    A wildcard bind (``0.0.0.0``, ``::``) listens on every interface, loopback
    included, but is not itself an address one can connect to.
    """
    if bind_host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if bind_host == "::":
        return "::1"
    return bind_host


@dataclass
class _ManagedServer:
    """Mutable bookkeeping for one server; only touched under the manager's lock."""

    server_id: str
    protocol: str
    model: str
    port: int
    workers: int | None
    options: dict[str, Any]
    host: str = "127.0.0.1"
    process: Any = None
    state: str = "starting"
    exit_description: str = ""
    started_at: float = field(default_factory=time.monotonic)
    stopped_uptime: float | None = None
    snapshot: dict[str, Any] = field(default_factory=dict)
    previous_snapshot: dict[str, Any] = field(default_factory=dict)
    rates: tuple[float, float, float] = (0.0, 0.0, 0.0)
    os_figures: dict[str, Any] = field(default_factory=dict)
    events_dropped: int = 0
    clients: ClientTracker = field(default_factory=ClientTracker)


_DATAGRAM = "datagram"


def _transport_of(protocol: str, options: dict[str, Any]) -> str:
    """The transport a server is configured with, before its first report says so."""
    try:
        from servers.registry import transport_of
    except ImportError:
        return "tcp"
    return transport_of(protocol, options)


def _ignore_news(news: ManagerNews) -> None:
    """Where news goes before :meth:`ServerManager.open` and after :meth:`ServerManager.close`."""


def _launcher() -> Any:
    """The runtime's launcher, imported on first use so the app starts without it."""
    from servers import launcher

    return launcher


def _new_stats_queue() -> Any:
    """Make the shared stats queue, starting multiprocessing's resource tracker safely.

    The tracker is spawned with our stderr's file descriptor; inside a running
    Textual app ``sys.stderr`` is a capture object whose ``fileno()`` is -1, and
    the spawn then fails with "bad value(s) in fds_to_keep". Hand it the real one.
    """
    import sys
    from multiprocessing import resource_tracker

    captured = sys.stderr
    try:
        if _fileno(captured) < 0 and sys.__stderr__ is not None:
            sys.stderr = sys.__stderr__
        resource_tracker.ensure_running()
    finally:
        sys.stderr = captured
    return _launcher().new_stats_queue()


def _fileno(stream: Any) -> int:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return -1


class ServerManager:
    """Starts, stops and watches the servers; publishes their figures and moves as news.

    It satisfies :class:`workbench.server_directory.ServerControl`, what the tabs use.
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        publish_interval: float = PUBLISH_INTERVAL,
        poll_interval: float = POLL_INTERVAL,
        start_timeout: float = 10.0,
        bind_host: str = DEFAULT_HOST,
        remote: RemoteServers | None = None,
    ) -> None:
        self.data_dir = data_dir
        #: Where a server listens unless started with its own host: 127.0.0.1 (this machine
        #: only) unless a class is to join (``--listen``).
        self.bind_host = bind_host
        #: A teacher's servers every tab uses instead of ours (``workbench --connect``).
        self.remote = remote
        self.publish_interval = publish_interval
        self.poll_interval = poll_interval
        self.start_timeout = start_timeout
        self._servers: dict[str, _ManagedServer] = {}
        self._defaults: dict[str, str] = {}
        self._lock = threading.RLock()
        self._pending_events: collections.deque[ServerEvent] = collections.deque()
        self._events_dropped = 0
        self._publish_news: Callable[[ManagerNews], object] = _ignore_news
        #: The endpoint last published for each protocol, so each change is published once.
        self._published_endpoints: dict[str, Address | None] = {}
        self._stop_watching = threading.Event()
        self._threads: list[threading.Thread] = []
        self._stats_queue: Any = None
        self._psutil_cache: dict[int, psutil.Process] = {}

    # -- lifecycle of the watcher ---------------------------------------------------

    @property
    def stats_queue(self) -> Any:
        """The queue every server reports to (made on first use)."""
        with self._lock:
            if self._stats_queue is None:
                self._stats_queue = _new_stats_queue()
            return self._stats_queue

    def open(self, publish: Callable[[ManagerNews], object]) -> None:
        """Start the drain and poller threads; ``publish`` receives the news.

        It is called from the manager's threads and from whichever thread starts or
        stops a server (under the manager's lock, so endpoint news arrives in order):
        it must be quick and thread-safe, and must not call back into the manager.
        """
        self._publish_news = publish
        if self._threads:
            return
        self.stats_queue  # noqa: B018 - made now, in the caller's thread, not mid-launch
        self._stop_watching.clear()
        for target, name in ((self._drain_loop, "stats-drain"), (self._poll_loop, "psutil-poll")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            self._threads.append(thread)
            thread.start()

    def close(self) -> None:
        """Stop every server, then the watcher threads. Idempotent; blocks a few seconds at most.

        Nothing is published from here on: whoever opened the manager is going away.
        """
        self._publish_news = _ignore_news
        self.stop_all()
        self._stop_watching.set()
        for thread in self._threads:
            thread.join(timeout=2)
        self._threads.clear()
        if self._stats_queue is not None:
            try:
                self._stats_queue.close()
                self._stats_queue.join_thread()
            except (OSError, ValueError, AttributeError):
                pass
            self._stats_queue = None

    # -- the API other tabs use -------------------------------------------------------

    def endpoint(self, protocol: str) -> Address | None:
        """``(host, port)`` of the protocol's default instance, or None when it is not running.

        With ``remote`` set, the teacher's server for ``protocol``: a student's tabs all
        point there, whatever this workbench runs itself.
        """
        if self.remote is not None:
            return self.remote.endpoint(protocol)
        return self._local_endpoint(protocol)

    def _local_endpoint(self, protocol: str) -> Address | None:
        with self._lock:
            server_id = self._defaults.get(protocol)
            server = self._servers.get(server_id) if server_id else None
            if server is None or server.state != "running" or server.process is None:
                return None
            return (connect_host(server.host), server.port)

    def clients(self, server_id: str) -> ClientsView | None:
        """Who is connected to the server now, from where (its connect/disconnect events)."""
        with self._lock:
            server = self._servers.get(server_id)
            return server.clients.view() if server is not None else None

    def server_ids(self) -> list[str]:
        with self._lock:
            return list(self._servers)

    def default_server_id(self, protocol: str) -> str | None:
        with self._lock:
            return self._defaults.get(protocol)

    def row(self, server_id: str) -> ServerRow | None:
        with self._lock:
            server = self._servers.get(server_id)
            return self._build_row(server) if server else None

    def rows(self) -> tuple[ServerRow, ...]:
        with self._lock:
            return tuple(self._build_row(server) for server in self._servers.values())

    def start(
        self,
        protocol: str,
        model: str = DEFAULT_MODEL,
        port: int = 0,
        workers: int | None = None,
        options: dict[str, Any] | None = None,
        host: str | None = None,
    ) -> str:
        """Start a server (a second instance gets ``http-2``...); returns its id. Blocks.

        ``options`` are the protocol's command-line options by name (``transport``,
        ``drop``, ``read_only``, ``max_open_files``...); ``host`` is the bind address.
        Raises the launcher's ``LaunchError`` (a one-line reason) when it cannot start.
        """
        merged_options = {**server_options(protocol, self.data_dir), **(options or {})}
        merged_options = {key: value for key, value in merged_options.items() if value is not None}
        with self._lock:
            server_id = self._new_server_id(protocol)
            server = _ManagedServer(
                server_id, protocol, model, port, workers, merged_options, host or self.bind_host
            )
            self._servers[server_id] = server
            self._defaults.setdefault(protocol, server_id)
        try:
            self._launch(server)
        except BaseException:
            with self._lock:
                self._servers.pop(server_id, None)
                if self._defaults.get(protocol) == server_id:
                    del self._defaults[protocol]
                    self._promote_default(protocol)
                self._publish_endpoint_moves()
            raise
        return server_id

    def restart(
        self,
        server_id: str,
        model: str | None = None,
        port: int | None = None,
        workers: int | None = None,
        options: dict[str, Any] | None = None,
        host: str | None = None,
    ) -> int:
        """Stop the server and start it again, optionally with another model, port, worker count, options or address.

        Without a new port it comes back on the port it had, so clients keep
        their address; options and host not given stay as they were (a restart
        keeps a chat's transport and drop rate). New ``options`` are laid over the
        current ones; a value of None removes an option. Returns the bound port. Blocks.
        """
        with self._lock:
            server = self._require(server_id)
            old_process = server.process
            previous_port = server.port
            if old_process is not None:
                server.state = "stopping"  # so the poller does not call this a crash
        if old_process is not None:
            old_process.stop(timeout=5)
        with self._lock:
            # Gone now, whatever comes next: the new process starts with no clients.
            self._publish_endpoint_moves()
            if model is not None:
                server.model = model
            if workers is not None:
                server.workers = workers or None
            if options:
                merged = {**server.options, **options}
                server.options = {key: value for key, value in merged.items() if value is not None}
            if host:
                server.host = host
            server.port = previous_port if port is None else port
        try:
            self._launch(server)
        except Exception:
            if port is not None or not previous_port:
                raise
            # The old port may still be held (TIME_WAIT, someone else): take any free one.
            with self._lock:
                server.port = 0
            self._launch(server)
        return server.port

    def restart_without_reuse_address(self, server_id: str) -> int:
        """Restart on the same port with SO_REUSEADDR off, for the TIME_WAIT lesson. Blocks.

        Unlike :meth:`restart` it never falls back to another port: while TIME_WAIT
        sockets hold the port the bind fails, and the launcher's ``LaunchError``
        ("address already in use") is raised. Later restarts set SO_REUSEADDR again.
        """
        with self._lock:
            server = self._require(server_id)
            server.options["no_reuse_address"] = True
        try:
            return self.restart(server_id, port=server.port)
        finally:
            with self._lock:
                server.options.pop("no_reuse_address", None)

    def stop(self, server_id: str) -> None:
        """Stop one server (SIGTERM, then SIGKILL); its row stays so it can be restarted. Blocks."""
        with self._lock:
            server = self._require(server_id)
            process = server.process
            if process is not None:
                server.state = "stopping"  # so the poller does not call this a crash
        if process is not None:
            process.stop(timeout=5)
        with self._lock:
            self._mark_stopped(server, "stopped", "")

    def remove(self, server_id: str) -> None:
        """Forget a server that is not running (its row disappears)."""
        with self._lock:
            server = self._require(server_id)
            if server.state in ("running", "starting", "stopping"):
                raise ValueError(f"{server_id} is {server.state}: stop it first")
            del self._servers[server_id]
            if self._defaults.get(server.protocol) == server_id:
                del self._defaults[server.protocol]
                self._promote_default(server.protocol)
            self._publish_endpoint_moves()

    def stop_all(self) -> None:
        """Stop every server at once (in parallel) and wait until all are gone."""
        with self._lock:
            targets = [s for s in self._servers.values() if s.process is not None]
        stoppers = [
            threading.Thread(target=self._stop_quietly, args=(server,), daemon=True)
            for server in targets
        ]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join(timeout=10)

    def announce(self, server_id: str, text: str) -> None:
        """Send the chat admin announcement to a chat server's room."""
        text = text.strip()
        if not text:
            raise ValueError("the announcement is empty")
        with self._lock:
            server = self._require(server_id)
            if server.protocol != "chat":
                raise ValueError(f"{server_id} is not a chat server")
            if server.state != "running" or server.process is None:
                raise ValueError(f"{server_id} is not running")
            process = server.process
        process.send_control({"type": "announce", "text": text})

    # -- internals: launching ---------------------------------------------------------

    def _new_server_id(self, protocol: str) -> str:
        if protocol not in self._servers:
            return protocol
        for number in itertools.count(2):
            candidate = f"{protocol}-{number}"
            if candidate not in self._servers:
                return candidate
        raise AssertionError("unreachable")

    def _promote_default(self, protocol: str) -> None:
        for server in self._servers.values():
            if server.protocol == protocol:
                self._defaults[protocol] = server.server_id
                return

    def _require(self, server_id: str) -> _ManagedServer:
        server = self._servers.get(server_id)
        if server is None:
            raise KeyError(f"no server called {server_id!r}")
        return server

    def _launch(self, server: _ManagedServer) -> None:
        launcher = _launcher()
        spec = launcher.ServerSpec(
            protocol=server.protocol,
            model=server.model,
            host=server.host,
            port=server.port,
            workers=server.workers,
            options=dict(server.options),
            server_id=server.server_id,
        )
        process = launcher.ServerProcess(spec, stats_queue=self.stats_queue)
        with self._lock:
            server.state = "starting"
            server.exit_description = ""
            server.process = None
            server.snapshot = {}
            server.previous_snapshot = {}
            server.rates = (0.0, 0.0, 0.0)
            server.os_figures = {}
            server.clients.reset()
        try:
            port = process.start(timeout=self.start_timeout)
        except BaseException as error:
            with self._lock:
                self._mark_stopped(server, "failed", str(error))
            try:
                process.stop(timeout=2)
            except Exception:
                pass
            raise
        with self._lock:
            server.process = process
            server.port = port
            server.state = "running"
            server.started_at = time.monotonic()
            server.stopped_uptime = None
            self._publish_endpoint_moves()

    def _stop_quietly(self, server: _ManagedServer) -> None:
        try:
            self.stop(server.server_id)
        except Exception:  # shutting down: one stubborn server must not keep others alive
            pass

    def _mark_stopped(self, server: _ManagedServer, state: str, description: str) -> None:
        if server.stopped_uptime is None and server.state in ("running", "stopping"):
            server.stopped_uptime = time.monotonic() - server.started_at
        server.state = state
        server.exit_description = description
        server.process = None
        server.rates = (0.0, 0.0, 0.0)
        server.os_figures = {}
        server.clients.reset()  # a stopped server's connections died with it
        self._publish_endpoint_moves()

    # -- internals: watching ------------------------------------------------------------

    def _drain_loop(self) -> None:
        next_publish = time.monotonic() + self.publish_interval
        while not self._stop_watching.is_set():
            timeout = max(0.0, next_publish - time.monotonic())
            stats_queue = self._stats_queue
            if stats_queue is None:
                self._stop_watching.wait(timeout)
            else:
                self._drain_some(stats_queue, timeout)
            if time.monotonic() >= next_publish:
                self._publish()
                next_publish = max(next_publish + self.publish_interval, time.monotonic())

    def _drain_some(self, stats_queue: Any, timeout: float) -> None:
        try:
            message = stats_queue.get(timeout=timeout)
        except (queue_module.Empty, OSError, ValueError, EOFError):
            return
        self.absorb(message)
        # Then everything already waiting, without blocking, bounded so publishing stays on time.
        for _ in range(1000):
            try:
                message = stats_queue.get_nowait()
            except (queue_module.Empty, OSError, ValueError, EOFError):
                return
            self.absorb(message)

    def absorb(self, message: dict[str, Any]) -> None:
        """Fold one stats-queue message into the figures (public so tests and benches can feed it)."""
        if not isinstance(message, dict) or message.get("type") != "snapshot":
            return
        with self._lock:
            server = self._servers.get(message.get("server_id", ""))
            if server is None:
                return
            pid = message.get("pid")
            if server.process is not None and pid is not None and pid != server.process.pid:
                return  # a late report from the process this server replaced
            previous = server.snapshot
            if previous and message.get("time", 0) > previous.get("time", 0):
                elapsed = message["time"] - previous["time"]
                server.rates = (
                    max(0.0, (message.get("requests", 0) - previous.get("requests", 0)) / elapsed),
                    max(0.0, (message.get("bytes_in", 0) - previous.get("bytes_in", 0)) / elapsed),
                    max(
                        0.0, (message.get("bytes_out", 0) - previous.get("bytes_out", 0)) / elapsed
                    ),
                )
            server.previous_snapshot = previous
            server.snapshot = message
            server.events_dropped += message.get("events_dropped", 0)
            # Every event, before the UI's backlog bound below: the list of clients must not
            # lose a disconnect because the event log had no room for it.
            server.clients.dropped(message.get("events_dropped", 0))
            for _, kind, detail, _ in message.get("events") or ():
                server.clients.fold(kind, detail)
            if message.get("active") == 0:
                # The server's own count says nobody: a list made partial by dropped events
                # (a load test) is whole again, and empty.
                server.clients.reset()
            room = MAX_PENDING_EVENTS - len(self._pending_events)
            events = message.get("events") or ()
            if len(events) > room:
                self._events_dropped += len(events) - room
                events = events[len(events) - room :] if room > 0 else ()
            self._events_dropped += message.get("events_dropped", 0)
            for event_time, kind, detail, event_pid in events:
                self._pending_events.append(
                    ServerEvent(server.server_id, event_time, kind, detail, event_pid)
                )

    def _publish(self) -> None:
        with self._lock:
            rows = tuple(self._build_row(server) for server in self._servers.values())
            events = tuple(self._pending_events)
            self._pending_events.clear()
            dropped, self._events_dropped = self._events_dropped, 0
        self._publish_news(ServersSnapshot(rows, events, dropped))

    def _publish_endpoint_moves(self) -> None:
        """Publish an :class:`EndpointMoved` for each protocol whose default server's address changed.

        Called after every change of state, under the lock: the news leaves in the
        order the changes happened, whichever threads made them.
        """
        with self._lock:
            for protocol in {*self._defaults, *self._published_endpoints}:
                address = self._local_endpoint(protocol)
                if self._published_endpoints.get(protocol) != address:
                    self._published_endpoints[protocol] = address
                    self._publish_news(EndpointMoved(protocol, address))

    def _build_row(self, server: _ManagedServer) -> ServerRow:
        snapshot = server.snapshot
        figures = server.os_figures
        process = server.process
        if server.stopped_uptime is not None:
            uptime = server.stopped_uptime
        elif server.state in ("running", "stopping"):
            uptime = time.monotonic() - server.started_at
        else:
            uptime = 0.0
        running = server.state == "running"
        transport = snapshot.get("transport") or _transport_of(server.protocol, server.options)
        children = len(snapshot.get("children", ())) if running else 0
        # Each forked child serves with its main thread; the parent counts its own.
        serving = snapshot.get("serving_threads", 0) + children if running else 0
        return ServerRow(
            server_id=server.server_id,
            protocol=server.protocol,
            # UDP chat runs one datagram loop whatever model was asked for: show that.
            model=snapshot.get("model") or (_DATAGRAM if transport == "udp" else server.model),
            host=server.host,
            port=server.port,
            transport=transport,
            pid=process.pid if process is not None else None,
            state=server.state,
            exit_description=server.exit_description,
            workers=server.workers,
            uptime=uptime,
            threads=figures.get("threads", snapshot.get("threads", 0)) if running else 0,
            serving_threads=serving,
            children=children,
            active=snapshot.get("active", 0) if running else 0,
            accepted=snapshot.get("accepted", 0),
            requests=snapshot.get("requests", 0),
            requests_per_second=server.rates[0],
            bytes_in_per_second=server.rates[1],
            bytes_out_per_second=server.rates[2],
            errors=snapshot.get("errors", 0),
            refused=snapshot.get("refused", 0),
            cpu_percent=figures.get("cpu_percent", 0.0),
            rss_bytes=figures.get("rss_bytes", 0),
            zombies=figures.get("zombies", 0),
            process_tree=figures.get("tree", ()),
            events_dropped=server.events_dropped,
            is_default=self._defaults.get(server.protocol) == server.server_id,
            max_open_files=snapshot.get("max_open_files", 0),
            options=dict(server.options),
        )

    def _poll_loop(self) -> None:
        while not self._stop_watching.wait(self.poll_interval):
            self.poll_once()

    def poll_once(self) -> None:
        """Read each server's process tree and notice crashes (runs in the poller thread)."""
        with self._lock:
            watched = [
                (server, server.process)
                for server in self._servers.values()
                if server.process is not None and server.state == "running"
            ]
        live_pids: set[int] = set()
        for server, process in watched:
            try:
                process.poll()
            except Exception:
                pass
            if process.state == "crashed" or process.state == "stopped":
                description = getattr(process, "exit_description", "") or "exited"
                with self._lock:
                    if server.process is process and server.state == "running":
                        self._mark_stopped(server, "crashed", description)
                        # The log is where a class reads what happened, so the crash goes there too.
                        self._pending_events.append(
                            ServerEvent(
                                server.server_id,
                                time.time(),
                                "crash",
                                f"{server.server_id} (pid {process.pid}) {description}",
                                process.pid or 0,
                            )
                        )
                        crashed = True
                    else:
                        crashed = False
                if crashed:
                    self._publish_news(ServerCrash(server.server_id, description))
                continue
            figures = self._read_process_tree(process.pid, live_pids)
            with self._lock:
                if server.process is process:
                    server.os_figures = figures
        for pid in list(self._psutil_cache):
            if pid not in live_pids:
                del self._psutil_cache[pid]

    def _cached_process(self, pid: int) -> psutil.Process:
        # cpu_percent() measures since the previous call on the *same* object.
        cached = self._psutil_cache.get(pid)
        if cached is None:
            cached = psutil.Process(pid)
            cached.cpu_percent(None)
            self._psutil_cache[pid] = cached
        return cached

    def _read_process_tree(self, root_pid: int, live_pids: set[int]) -> dict[str, Any]:
        try:
            root = self._cached_process(root_pid)
            descendants = root.children(recursive=True)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return {}
        depth_of = {root_pid: 0}
        nodes: list[ProcessNode] = []
        cpu = 0.0
        rss = 0
        threads = 0
        zombies = 0
        parent_of: dict[int, int] = {}
        readings: dict[int, tuple[str, str, int]] = {}
        for member in [root, *descendants]:
            try:
                process = self._cached_process(member.pid)
                with process.oneshot():
                    status = process.status()
                    name = process.name()
                    parent_of[process.pid] = process.ppid()
                    if status == psutil.STATUS_ZOMBIE:
                        zombies += 1
                        member_threads = 0
                    else:
                        member_threads = process.num_threads()
                        cpu += process.cpu_percent(None)
                        rss += process.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                if member.pid != root_pid:
                    continue
                return {}
            threads += member_threads
            live_pids.add(member.pid)
            readings[member.pid] = (name, status, member_threads)
        for pid, (name, status, member_threads) in readings.items():
            depth = 0
            cursor = pid
            while cursor != root_pid and cursor in parent_of and depth < 16:
                cursor = parent_of[cursor]
                depth += 1
            depth_of[pid] = depth
            nodes.append(ProcessNode(pid, name, status, member_threads, depth))
        return {
            "cpu_percent": cpu,
            "rss_bytes": rss,
            "threads": threads,
            "zombies": zombies,
            "tree": tuple(_pstree_order(nodes, parent_of, root_pid)),
        }


def _pstree_order(
    nodes: list[ProcessNode], parent_of: dict[int, int], root_pid: int
) -> list[ProcessNode]:
    """Order nodes depth-first (each parent followed by its children, by pid) like pstree."""
    by_pid = {node.pid: node for node in nodes}
    children: dict[int, list[int]] = collections.defaultdict(list)
    for pid in by_pid:
        if pid != root_pid:
            children[parent_of.get(pid, root_pid)].append(pid)
    ordered: list[ProcessNode] = []

    def visit(pid: int, depth: int) -> None:
        node = by_pid.get(pid)
        if node is None:
            return
        ordered.append(replace(node, depth=depth))
        for child in sorted(children.get(pid, ())):
            visit(child, depth + 1)

    visit(root_pid, 0)
    return ordered
