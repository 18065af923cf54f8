"""IO multiplexing labs (course 3.2.4 IO多路复用): a select/poll/epoll trace, and when epoll beats select."""

from __future__ import annotations

import contextlib
import fcntl
import multiprocessing
import os
import resource
import select
import selectors
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from workbench.labs.base import Lab, LabContext, Param
from workbench.labs.sockets import LOOPBACK, SAFETY_TIMEOUT, error_name, shown

#: select()'s fixed-size fd_set: it cannot name a descriptor at or above this.
FD_SETSIZE = 1024
MECHANISMS = ("select", "poll", "epoll")

_EPOLL_FLAGS = ("EPOLLIN", "EPOLLPRI", "EPOLLOUT", "EPOLLERR", "EPOLLHUP", "EPOLLRDHUP")
_POLL_FLAGS = ("POLLIN", "POLLPRI", "POLLOUT", "POLLERR", "POLLHUP", "POLLNVAL", "POLLRDHUP")


def flag_names(mask: int, names: tuple[str, ...] = _POLL_FLAGS) -> str:
    """``POLLIN|POLLRDHUP`` for an event mask (``names`` picks the poll or epoll spelling)."""
    found = [name for name in names if mask & getattr(select, name, 0)]
    return "|".join(found) or f"0x{mask:x}"


# -- the trace -------------------------------------------------------------------------


@dataclass
class Traced:
    """One wait call as the trace shows it: what went in, what came out."""

    handed_in: str
    ready_out: str
    fds_handed_in: int
    ready: list[tuple[int, int]]


class SelectTrace:
    """select(): the whole read list is handed in on every call; ready fds come back."""

    name = "select"

    def __init__(self, labels: dict[int, str]) -> None:
        self.labels = labels
        self.watched: list[int] = []
        self.ctl_calls = 0

    def add(self, fd: int, connection: bool = True) -> str:
        self.watched.append(fd)
        return f"rlist.append({self.labels[fd]})"

    def remove(self, fd: int) -> str:
        self.watched.remove(fd)
        return f"rlist.remove({self.labels[fd]})"

    def wait(self, timeout: float) -> Traced:
        rlist = list(self.watched)
        ready, _, _ = select.select(rlist, [], [], timeout)
        handed = ", ".join(self.labels[fd] for fd in rlist)
        return Traced(
            f"select(rlist=[{handed}], [], [], {timeout:g})",
            f"rs=[{', '.join(self.labels[fd] for fd in ready)}]",
            len(rlist),
            [(fd, select.POLLIN) for fd in ready],
        )

    def close(self) -> None:
        pass


class PollTrace:
    """poll(): fds are registered with an event mask; the whole array still goes in per call."""

    name = "poll"
    flags = _POLL_FLAGS

    def __init__(self, labels: dict[int, str]) -> None:
        self.labels = labels
        self.poller = select.poll()
        self.watched: dict[int, int] = {}
        self.ctl_calls = 0

    def add(self, fd: int, connection: bool = True) -> str:
        # RDHUP names a peer's FIN; a listening socket has no peer.
        mask = select.POLLIN | (select.POLLRDHUP if connection else 0)
        self.poller.register(fd, mask)
        self.watched[fd] = mask
        return f"register({self.labels[fd]}, {flag_names(mask)})"

    def remove(self, fd: int) -> str:
        self.poller.unregister(fd)
        del self.watched[fd]
        return f"unregister({self.labels[fd]})"

    def wait(self, timeout: float) -> Traced:
        handed = ", ".join(
            f"{self.labels[fd]}: {flag_names(mask, self.flags)}"
            for fd, mask in self.watched.items()
        )
        events = self.poller.poll(int(timeout * 1000))
        return Traced(
            f"poll({{{handed}}}, {int(timeout * 1000)} ms)",
            "[" + ", ".join(f"({self.labels[fd]}, {flag_names(m)})" for fd, m in events) + "]",
            len(self.watched),
            events,
        )

    def close(self) -> None:
        pass


class EpollTrace:
    """epoll: the kernel keeps the interest list (epoll_ctl); epoll_wait hands in nothing."""

    name = "epoll"
    flags = _EPOLL_FLAGS

    def __init__(self, labels: dict[int, str]) -> None:
        self.labels = labels
        self.epoll = select.epoll()
        self.watched: set[int] = set()
        self.ctl_calls = 0

    def add(self, fd: int, connection: bool = True) -> str:
        mask = select.EPOLLIN | (select.EPOLLRDHUP if connection else 0)
        self.epoll.register(fd, mask)
        self.watched.add(fd)
        self.ctl_calls += 1
        return f"epoll_ctl(ADD, {self.labels[fd]}, {flag_names(mask, self.flags)})"

    def remove(self, fd: int) -> str:
        self.epoll.unregister(fd)
        self.watched.discard(fd)
        self.ctl_calls += 1
        return f"epoll_ctl(DEL, {self.labels[fd]})"

    def wait(self, timeout: float) -> Traced:
        events = self.epoll.poll(timeout)
        ready = ", ".join(f"({self.labels[fd]}, {flag_names(m, self.flags)})" for fd, m in events)
        return Traced(
            f"epoll_wait(watching {len(self.watched)}, {int(timeout * 1000)} ms)",
            f"[{ready}]",
            0,
            events,
        )

    def close(self) -> None:
        self.epoll.close()


@dataclass
class TraceRun:
    """What one mechanism's run through the script produced."""

    rows: list[tuple[str, str, str]] = field(default_factory=list)
    waits: int = 0
    fds_handed_in: int = 0
    ready: int = 0
    ctl_calls: int = 0
    fin_flags: str = ""
    rst_flags: str = ""


class MultiplexTraceLab(Lab):
    name = "multiplex-trace"
    title = "select, poll and epoll: what goes in, what comes out"
    course_term = "IO多路复用 (select / poll / epoll)"
    course_section = "3.2.4"
    explanation = (
        "One server thread watches a listening socket and its connections while two clients "
        "connect, send and close, and the same script is run under select, poll and epoll. "
        "select(rlist, wlist, xlist, timeout) is handed the whole list on every call and "
        "returns the ready ones (rs); poll registers each fd with an event mask but the "
        "kernel still walks the whole array per call; epoll keeps the interest list in the "
        "kernel (epoll_ctl once per fd), so epoll_wait hands in nothing and gets back only "
        "what is ready. The events are decoded by name: a listening socket is readable when "
        "a connection waits for accept(); a FIN shows as POLLIN|POLLRDHUP (recv gives b''), "
        "a RST adds POLLERR|POLLHUP (recv raises ECONNRESET); a wait with nothing ready "
        "returns an empty list when its timeout runs out."
    )
    order = 3.24
    params = (
        Param("wait_ms", 1000, "longest each wait may block for an expected event", 100, 5000),
    )

    def run(self, ctx: LabContext) -> None:
        results: dict[str, TraceRun] = {}
        for mechanism in (SelectTrace, PollTrace, EpollTrace):
            if ctx.cancelled:
                ctx.line("cancelled")
                return
            ctx.line(f"--- {mechanism.name} ---")
            results[mechanism.name] = run = self._script(ctx, mechanism, int(ctx["wait_ms"]) / 1000)
            ctx.table(
                f"{mechanism.name}: handed in -> ready out",
                ("what the clients did", "call", "ready"),
                run.rows,
            )
        for name, run in results.items():
            ctx.figure(f"{name}_waits", f"{name}: wait calls", run.waits)
            ctx.figure(
                f"{name}_fds_handed_in", f"{name}: fds handed in, all calls", run.fds_handed_in
            )
            ctx.figure(f"{name}_ready", f"{name}: ready events returned", run.ready)
        ctx.figure(
            "epoll_ctl_calls",
            "epoll: epoll_ctl calls (interest list changes)",
            results["epoll"].ctl_calls,
        )
        for name in ("poll", "epoll"):
            ctx.figure(f"{name}_fin_flags", f"{name}: events for a FIN", results[name].fin_flags)
            ctx.figure(f"{name}_rst_flags", f"{name}: events for a RST", results[name].rst_flags)
        same = len({run.ready for run in results.values()}) == 1
        ctx.verdict(
            f"All three returned {'the same number of' if same else 'different'} ready events "
            f"({', '.join(f'{n} {r.ready}' for n, r in results.items())}); select was handed "
            f"{results['select'].fds_handed_in} fds over {results['select'].waits} calls and poll "
            f"{results['poll'].fds_handed_in}, while epoll's calls handed in none after "
            f"{results['epoll'].ctl_calls} epoll_ctl changes; a FIN read as "
            f"{results['poll'].fin_flags or '?'}, a RST as {results['poll'].rst_flags or '?'}."
        )

    def _script(
        self, ctx: LabContext, mechanism: Callable[[dict[int, str]], Any], wait: float
    ) -> TraceRun:
        run = TraceRun()
        with contextlib.ExitStack() as stack:
            listener = stack.enter_context(socket.create_server((LOOPBACK, 0)))
            listener.setblocking(False)
            labels = {listener.fileno(): f"fd {listener.fileno()} listener"}
            watcher = mechanism(labels)
            stack.callback(watcher.close)
            conns: dict[int, socket.socket] = {}
            clients: dict[str, socket.socket] = {}
            client_of: dict[int, str] = {}
            ctx.line(watcher.add(listener.fileno(), connection=False))

            def connect(name: str) -> None:
                client = stack.enter_context(socket.create_connection(listener.getsockname()))
                clients[name] = client

            def handle(step: str, expected: int, timeout: float = wait) -> None:
                handled = 0
                while True:
                    traced = watcher.wait(timeout)
                    run.waits += 1
                    run.fds_handed_in += traced.fds_handed_in
                    run.ready += len(traced.ready)
                    run.rows.append((step, traced.handed_in, traced.ready_out))
                    ctx.line(f"{traced.handed_in} -> {traced.ready_out}")
                    if not traced.ready:
                        ctx.line(f"... timed out after {timeout * 1000:.0f} ms: nothing ready")
                        return
                    for fd, mask in traced.ready:
                        handled += 1
                        if fd == listener.fileno():
                            conn, _ = listener.accept()
                            stack.enter_context(conn)
                            name = next(n for n in clients if n not in client_of.values())
                            conns[conn.fileno()] = conn
                            client_of[conn.fileno()] = name
                            labels[conn.fileno()] = f"fd {conn.fileno()} {name}"
                            ctx.line(
                                f"accept() -> {labels[conn.fileno()]}; {watcher.add(conn.fileno())}"
                            )
                            continue
                        self._read(ctx, watcher, run, conns, labels, fd, mask)
                    if handled >= expected:
                        return
                    step = f"{step} (cont.)"

            ctx.line("nobody has done anything yet")
            handle("nothing yet", 0, timeout=0.05)
            ctx.line("client A connects")
            connect("A")
            handle("A connects", 1)
            ctx.line("client B connects")
            connect("B")
            handle("B connects", 1)
            ctx.line("A sends 'hello', B sends 'hi'")
            clients["A"].sendall(b"hello")
            clients["B"].sendall(b"hi")
            handle("A and B send", 2)
            ctx.line("A closes (FIN)")
            clients["A"].close()
            handle("A closes", 1)
            b_conn = next(c for fd, c in conns.items() if client_of[fd] == "B")
            b_conn.sendall(b"bye")
            select.select([clients["B"]], [], [], SAFETY_TIMEOUT)  # 'bye' is in B's buffer
            clients["B"].close()
            ctx.line("server sends 'bye' to B; B closes without reading it (RST)")
            handle("B resets", 1)
            run.ctl_calls = watcher.ctl_calls
        return run

    @staticmethod
    def _read(
        ctx: LabContext,
        watcher: Any,
        run: TraceRun,
        conns: dict[int, socket.socket],
        labels: dict[int, str],
        fd: int,
        mask: int,
    ) -> None:
        conn = conns[fd]
        label = labels[fd]
        try:
            data = conn.recv(1024)
        except OSError as error:
            ctx.line(f"recv({label}) -> {error_name(error)}; {watcher.remove(fd)}; close")
            if watcher.name != "select":
                run.rst_flags = flag_names(mask, watcher.flags)
            del conns[fd]
            conn.close()
            return
        if data:
            ctx.line(f"recv({label}) -> {len(data)} bytes {shown(data)}")
            return
        ctx.line(f"recv({label}) -> b'' (the peer closed); {watcher.remove(fd)}; close")
        if watcher.name != "select":
            run.fin_flags = flag_names(mask, watcher.flags)
        del conns[fd]
        conn.close()


# -- the idle sweep --------------------------------------------------------------------

#: Bytes of one ping; the client process echoes it back.
PING = b"p" * 32


def run_echo_clients(port: int, busy: int, control: Connection) -> None:
    """The clients' process: ``busy`` connections that echo what the server sends, plus idle
    connections opened on request, none of which ever says a word.

    Runs in its own (spawned) process so the server's descriptors stay below FD_SETSIZE.
    """
    try:
        _echo_until_told(port, busy, control)
    except (OSError, EOFError):
        return  # the lab has gone (its listener or our pipe closed): nobody left to serve


def _echo_until_told(port: int, busy: int, control: Connection) -> None:
    chooser = selectors.DefaultSelector()
    idle: list[socket.socket] = []
    talkers = [
        socket.create_connection((LOOPBACK, port), timeout=SAFETY_TIMEOUT) for _ in range(busy)
    ]
    try:
        for talker in talkers:
            chooser.register(talker, selectors.EVENT_READ)
        chooser.register(control, selectors.EVENT_READ)
        control.send(("connected", busy))
        while True:
            ready = chooser.select(timeout=30)
            if not ready:
                return  # the lab went quiet: do not outlive it
            for key, _ in ready:
                if key.fileobj is control:
                    try:
                        command, count = control.recv()
                    except (EOFError, OSError):
                        return
                    if command == "quit":
                        return
                    for _ in range(count):
                        idle.append(
                            socket.create_connection((LOOPBACK, port), timeout=SAFETY_TIMEOUT)
                        )
                    control.send(("connected", len(idle)))
                    continue
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                data = sock.recv(65536)
                if not data:
                    chooser.unregister(sock)
                    continue
                sock.sendall(data)
    finally:
        chooser.close()
        for sock in talkers + idle:
            sock.close()


@dataclass
class Sweep:
    """One mechanism over one set of connections: wait calls, their cost, round trips."""

    waits: int = 0
    seconds_waiting: float = 0.0
    round_trips: int = 0
    seconds: float = 0.0
    error: str = ""

    @property
    def microseconds_per_wait(self) -> float:
        return round(1e6 * self.seconds_waiting / max(self.waits, 1), 1)

    @property
    def round_trips_per_second(self) -> int:
        return round(self.round_trips / self.seconds) if self.seconds else 0


def _waiter(
    mechanism: str, fds: list[int]
) -> tuple[Callable[[float], list[int]], Callable[[], None]]:
    """A ``wait(timeout) -> ready fds`` for ``mechanism`` watching ``fds`` for reading."""
    if mechanism == "select":
        return (lambda timeout: select.select(fds, [], [], timeout)[0]), (lambda: None)
    if mechanism == "poll":
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        return (lambda timeout: [fd for fd, _ in poller.poll(int(timeout * 1000))]), (lambda: None)
    epoll = select.epoll(len(fds))
    for fd in fds:
        epoll.register(fd, select.EPOLLIN)
    return (lambda timeout: [fd for fd, _ in epoll.poll(timeout)]), epoll.close


def sweep(
    mechanism: str, busy: list[socket.socket], idle: list[socket.socket], window: float
) -> Sweep:
    """Ping every busy connection, echo by echo, for ``window`` seconds, watching idle ones too."""
    result = Sweep()
    by_fd = {sock.fileno(): sock for sock in busy}
    fds = [sock.fileno() for sock in busy + idle]
    wait, close = _waiter(mechanism, fds)
    pending = dict.fromkeys(by_fd, 0)
    try:
        started = time.perf_counter()
        deadline = started + window
        for sock in busy:
            sock.sendall(PING)
        outstanding = len(busy)
        while outstanding:
            before = time.perf_counter()
            try:
                ready = wait(1.0)
            except ValueError as error:  # select: "filedescriptor out of range in select()"
                result.error = str(error)
                # Let the pings already sent come back, so the next sweep starts clean.
                _drain(busy)
                return result
            after = time.perf_counter()
            result.waits += 1
            result.seconds_waiting += after - before
            if not ready:
                result.error = "no echo within 1 s"
                return result
            for fd in ready:
                pending[fd] += len(by_fd[fd].recv(65536))
                while pending[fd] >= len(PING):
                    pending[fd] -= len(PING)
                    result.round_trips += 1
                    outstanding -= 1
                    if after < deadline:
                        by_fd[fd].sendall(PING)
                        outstanding += 1
        result.seconds = time.perf_counter() - started
        return result
    finally:
        close()


def _drain(busy: list[socket.socket]) -> None:
    """Read back the one ping each busy connection has in flight (the wait failed before)."""
    for sock in busy:
        sock.settimeout(SAFETY_TIMEOUT)
        missing = len(PING)
        while missing > 0:
            data = sock.recv(missing)
            if not data:
                break
            missing -= len(data)
        sock.setblocking(True)


def select_wall(anchor: socket.socket) -> tuple[int, str]:
    """Put a socket at fd >= FD_SETSIZE and hand it to select(); returns (fd, what select said)."""
    try:
        high = fcntl.fcntl(anchor.fileno(), fcntl.F_DUPFD, FD_SETSIZE)
    except OSError as error:  # RLIMIT_NOFILE's hard limit is at or below FD_SETSIZE
        return -1, f"No fd >= {FD_SETSIZE} could be opened to try: {error_name(error)}"
    try:
        try:
            select.select([high], [], [], 0)
            said = "select() accepted it"
        except ValueError as error:
            said = f"ValueError: {error}"
        poller = select.poll()
        poller.register(high, select.POLLIN)
        poller.poll(0)
        with select.epoll() as epoll:
            epoll.register(high, select.EPOLLIN)
            epoll.poll(0)
        return high, said
    finally:
        os.close(high)


class IdleSweepLab(Lab):
    name = "idle-sweep"
    title = "When does epoll beat select? Many idle connections, a few busy ones"
    course_term = "epoll特点: 效率比select poll要高, 监控IO数量比select要多"
    course_section = "3.2.4"
    explanation = (
        "The course says epoll is faster than select and poll and watches more IO. Both are "
        "true only under a condition this lab measures: select and poll hand the kernel every "
        "watched fd on every call and the kernel checks each one, so their cost grows with "
        "the connections watched, busy or not; epoll keeps the interest list in the kernel "
        "and returns only the ready fds, so its cost follows the busy ones. With a few busy "
        "connections and nothing else, select can be as fast as epoll or faster (less "
        "bookkeeping); add a thousand idle connections and select and poll slow down while "
        "epoll does not. select also has a wall: its fd_set is FD_SETSIZE (1024) bits, so a "
        "descriptor numbered 1024 or more cannot be watched at all. The clients run in their "
        "own process so the server's descriptors stay under that wall."
    )
    order = 3.241
    params = (
        Param("idle", 1000, "idle connections watched alongside the busy ones", 0, 4000),
        Param("busy", 10, "connections that ping-pong as fast as they can", 1, 100),
        Param("window_ms", 300, "how long each mechanism is timed, per row", 50, 2000),
    )

    def run(self, ctx: LabContext) -> None:
        idle_count, busy_count = int(ctx["idle"]), int(ctx["busy"])
        window = int(ctx["window_ms"]) / 1000
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = max(idle_count + busy_count + 128, FD_SETSIZE + 64)
        raised = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
        if raised > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            ctx.line(f"RLIMIT_NOFILE soft limit {soft} -> {raised} (hard limit {hard})")
        room = max(raised, soft) - busy_count - 128
        if idle_count > room:
            ctx.line(
                f"RLIMIT_NOFILE leaves room for {max(room, 0)} idle connections, not {idle_count}"
            )
            idle_count = max(room, 0)
        context = multiprocessing.get_context("spawn")
        process = None
        control = None
        busy: list[socket.socket] = []
        idle: list[socket.socket] = []
        try:
            with socket.create_server(
                (LOOPBACK, 0), backlog=min(idle_count + busy_count, 4096)
            ) as listener:
                listener.settimeout(SAFETY_TIMEOUT)
                control, child_end = context.Pipe()
                process = context.Process(
                    target=run_echo_clients,
                    args=(listener.getsockname()[1], busy_count, child_end),
                    name="idle-sweep-clients",
                    daemon=True,
                )
                process.start()
                child_end.close()
                busy = self._accept(ctx, listener, busy_count, control, "busy")
                # The first timed window would otherwise also pay for a cold client
                # process and cold caches: warm both up, uncounted.
                warm_up = sweep("epoll", busy, [], min(window, 0.1))
                ctx.line(f"warm-up: {warm_up.round_trips:,} round trips, not counted")
                rows: list[tuple[Any, ...]] = []
                results: dict[tuple[str, int], Sweep] = {}
                for phase in (0, idle_count) if idle_count else (0,):
                    if phase:
                        control.send(("idle", phase))
                        idle = self._accept(ctx, listener, phase, control, "idle")
                    highest = max(s.fileno() for s in busy + idle)
                    ctx.line(
                        f"server watches {len(busy)} busy + {len(idle)} idle connections "
                        f"(highest fd {highest})"
                    )
                    for mechanism in MECHANISMS:
                        if ctx.cancelled:
                            ctx.line("cancelled")
                            return
                        result = sweep(mechanism, busy, idle, window)
                        results[(mechanism, phase)] = result
                        if result.error:
                            ctx.line(f"{mechanism}: {result.error}")
                            rows.append(
                                (
                                    mechanism,
                                    len(idle),
                                    len(busy) + len(idle),
                                    "-",
                                    "-",
                                    result.error,
                                )
                            )
                            continue
                        ctx.line(
                            f"{mechanism} with {len(idle)} idle: {result.waits:,} waits, "
                            f"{result.microseconds_per_wait} µs each, "
                            f"{result.round_trips_per_second:,} round trips/s"
                        )
                        rows.append(
                            (
                                mechanism,
                                len(idle),
                                len(busy) + len(idle),
                                f"{result.waits:,}",
                                result.microseconds_per_wait,
                                f"{result.round_trips_per_second:,}",
                            )
                        )
                ctx.table(
                    "the same echo traffic under three mechanisms",
                    ("mechanism", "idle", "fds watched", "waits", "µs per wait", "round trips/s"),
                    rows,
                )
                high_fd, wall = select_wall(listener)
                ctx.line(
                    f"select([fd {high_fd}]) -> {wall}; poll() and epoll took fd {high_fd} fine"
                )
                self._report(ctx, results, idle_count, busy_count, high_fd, wall)
        finally:
            if control is not None:
                with contextlib.suppress(OSError, ValueError):
                    control.send(("quit", 0))
            if process is not None:
                process.join(SAFETY_TIMEOUT)
                if process.is_alive():
                    process.kill()
                    process.join(SAFETY_TIMEOUT)
            if control is not None:
                control.close()
            for sock in busy + idle:
                sock.close()
            if raised > soft:
                resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    @staticmethod
    def _accept(
        ctx: LabContext, listener: socket.socket, count: int, control: Connection, kind: str
    ) -> list[socket.socket]:
        accepted: list[socket.socket] = []
        try:
            while len(accepted) < count:
                conn, _ = listener.accept()
                conn.setblocking(True)
                accepted.append(conn)
            if not control.poll(SAFETY_TIMEOUT):
                raise TimeoutError("the client process did not confirm its connections")
            control.recv()
        except BaseException:
            for conn in accepted:
                conn.close()
            raise
        ctx.line(f"accepted {len(accepted)} {kind} connections from the client process")
        return accepted

    @staticmethod
    def _report(
        ctx: LabContext,
        results: dict[tuple[str, int], Sweep],
        idle_count: int,
        busy_count: int,
        high_fd: int,
        wall: str,
    ) -> None:
        ctx.figure("busy_connections", "busy connections", busy_count)
        ctx.figure("idle_connections", "idle connections", idle_count)
        for (mechanism, phase), result in results.items():
            suffix = "nidle" if phase else "0idle"
            if result.error:
                ctx.figure(
                    f"{mechanism}_error_{suffix}", f"{mechanism}, {phase} idle: error", result.error
                )
                continue
            ctx.figure(
                f"{mechanism}_rtps_{suffix}",
                f"{mechanism}, {phase} idle: round trips",
                result.round_trips_per_second,
                "/s",
            )
            ctx.figure(
                f"{mechanism}_us_per_wait_{suffix}",
                f"{mechanism}, {phase} idle: time per wait",
                result.microseconds_per_wait,
                "µs",
            )
        ctx.figure("select_wall_fd", "fd handed to select() past FD_SETSIZE", high_fd)
        ctx.figure("select_wall_error", "what select() said", wall)

        def rate(mechanism: str, phase: int) -> int:
            result = results.get((mechanism, phase))
            return result.round_trips_per_second if result and not result.error else 0

        def compare(phase: int) -> str:
            selected, epolled = rate("select", phase), rate("epoll", phase)
            if not selected or not epolled:
                failed = [
                    f"{name} failed ({results[(name, phase)].error})"
                    for name in ("select", "epoll")
                    if (name, phase) in results and results[(name, phase)].error
                ]
                return (
                    f"with {phase} idle "
                    + " and ".join(failed or ["a mechanism failed"])
                    + (f" while epoll made {epolled:,} round trips/s" if epolled else "")
                )
            ratio = epolled / selected
            winner = "epoll" if ratio > 1.1 else ("select" if ratio < 1 / 1.1 else "neither")
            return (
                f"with {phase} idle select made {selected:,} round trips/s and epoll {epolled:,}"
                f" ({winner + ' faster' if winner != 'neither' else 'within 10%'}: epoll/select = {ratio:.2f})"
            )

        parts = [compare(0)]
        if idle_count:
            parts.append(compare(idle_count))
        said = "; ".join(parts)
        wall_said = (
            f"select() on fd {high_fd} said: {wall.removeprefix('ValueError: ')}"
            if high_fd >= 0
            else wall
        )
        ctx.verdict(f"{said[:1].upper()}{said[1:]}. {wall_said}.")


LABS = (MultiplexTraceLab(), IdleSweepLab())
