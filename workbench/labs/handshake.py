"""The listen-backlog lab (course 1.3.1 三次握手, 1.3.2 listen(n)): the kernel finishes handshakes nobody accept()ed, up to a queue."""

from __future__ import annotations

import contextlib
import errno
import selectors
import socket
import time

from workbench.labs.base import Lab, LabContext, Param
from workbench.labs.transport import LOOPBACK, kernel_tcp_sockets

#: How long after the hold the lab waits for the last client: a dropped SYN is sent again
#: when the client's retransmission timer runs out (1 s at first on Linux).
LATE_CLIENT_WAIT = 8.0
#: What each client sends once its connect() returns, as a real client sends its request.
GREETING = b"hello"


def tcp_ext_counter(name: str, proc_path: str = "/proc/net/netstat") -> int | None:
    """One of the kernel's TcpExt counters (e.g. ListenOverflows), None where there is none."""
    try:
        with open(proc_path) as table:
            lines = table.read().splitlines()
    except OSError:
        return None
    for header, values in zip(lines[::2], lines[1::2], strict=False):
        if header.startswith("TcpExt:"):
            counters = dict(zip(header.split()[1:], values.split()[1:], strict=False))
            return int(counters[name]) if name in counters else None
    return None


def _read_sysctl(path: str) -> str:
    try:
        with open(path) as value:
            return value.read().strip()
    except OSError:
        return "?"


class ListenBacklogLab(Lab):
    name = "listen-backlog"
    title = "listen(n): the kernel finishes handshakes nobody accept()ed, up to a queue"
    course_term = "三次握手 / listen 监听队列"
    course_section = "1.3.1, 1.3.2"
    explanation = (
        "The three-way handshake (三次握手) is done by the kernel, not by accept(): a "
        "client's connect() returns as soon as SYN, SYN+ACK and ACK have passed, and the "
        "finished connection waits in the listening socket's queue until the server calls "
        "accept(), which only takes it off. listen(n) sizes that queue. Here a server listens "
        "and does not accept for a while; several clients connect at once. The lab reads each "
        "client's state from the kernel's table (/proc/net/tcp): the first ones are "
        "ESTABLISHED though nobody accepted them (Linux queues n + 1); once the queue is full "
        "the kernel drops further SYNs (it counts them: TcpExt ListenOverflows), so those "
        "clients sit in SYN_SENT, connect() still blocking, and send their SYN again when "
        "their retransmission timer runs out (1 s at first; the table shows the countdown). "
        "When accept() makes room, the next retransmitted SYN gets in. Each client sends a "
        "few bytes once connected, as a real client sends its request: they wait in the "
        "queued connection until the server reads them. This is where a busy iterative "
        "server's clients wait."
    )
    order = 1.32
    params = (
        Param("backlog", 2, "listen(n): the accept queue asked for", minimum=0, maximum=64),
        Param("clients", 6, "clients that connect() at once", minimum=1, maximum=64),
        Param("hold_ms", 300, "how long the server does not accept()", minimum=0, maximum=3000),
    )

    def run(self, ctx: LabContext) -> None:
        backlog, count = int(ctx["backlog"]), int(ctx["clients"])
        hold = int(ctx["hold_ms"]) / 1000
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind((LOOPBACK, 0))
        listener.listen(backlog)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        ctx.line(
            f"server: listen({backlog}) on {LOOPBACK}:{port}, then no accept() for {hold * 1000:,.0f} ms"
        )
        overflows_before = tcp_ext_counter("ListenOverflows")
        clients: list[socket.socket] = []
        accepted: list[socket.socket] = []
        accepted_after: list[float] = []
        try:
            with selectors.DefaultSelector() as selector:
                started = time.monotonic()
                for index in range(count):
                    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    client.setblocking(False)
                    clients.append(client)
                    client.connect_ex((LOOPBACK, port))  # EINPROGRESS: the handshake goes on
                    selector.register(client, selectors.EVENT_WRITE, index)
                ctx.line(f"{count} clients called connect() at once")
                ports = [client.getsockname()[1] for client in clients]
                connected_after: dict[int, float] = {}
                failed: dict[int, str] = {}

                def watch(until: float, accepting: bool) -> None:
                    """Note each client's connect() finishing; accept everything once allowed."""
                    while not ctx.cancelled:
                        now = time.monotonic()
                        if now >= until or (accepting and len(accepted) + len(failed) == count):
                            return
                        for key, _ in selector.select(min(until - now, 0.05)):
                            if key.fileobj is listener:
                                continue
                            index = key.data
                            selector.unregister(key.fileobj)
                            client = clients[index]
                            problem = client.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                            if problem:
                                failed[index] = errno.errorcode.get(problem, str(problem))
                            else:
                                connected_after[index] = time.monotonic() - started
                                # Data also finishes the server's half of a handshake whose
                                # last ACK met a full queue: the kernel retransmits it.
                                with contextlib.suppress(OSError):  # a reset: the table says
                                    client.send(GREETING)
                        while accepting:
                            try:
                                served, _ = listener.accept()
                            except BlockingIOError:
                                break
                            accepted.append(served)
                            accepted_after.append(time.monotonic() - started)

                watch(started + hold, accepting=False)
                if ctx.cancelled:
                    return
                snapshot = {
                    entry.local_port: entry
                    for entry in kernel_tcp_sockets(port)
                    if entry.remote_port == port or entry.state == "LISTEN"
                }
                listening = snapshot.get(port)
                queue_length = listening.receive_queue if listening is not None else None
                overflows_at_hold = tcp_ext_counter("ListenOverflows")
                states = [snapshot[p].state if p in snapshot else "—" for p in ports]
                retry_in = [snapshot[p].timer_seconds if p in snapshot else None for p in ports]
                queued = states.count("ESTABLISHED")
                refused_syn = states.count("SYN_SENT")
                ctx.line(
                    f"after {hold * 1000:,.0f} ms, accept() not yet called: {queued} clients "
                    f"ESTABLISHED, {refused_syn} in SYN_SENT (kernel's table)"
                )
                if queue_length is not None:
                    ctx.line(f"the listening socket's accept queue holds {queue_length}")
                selector.register(listener, selectors.EVENT_READ)
                ctx.line("server: now calling accept() until every client is in")
                watch(time.monotonic() + LATE_CLIENT_WAIT, accepting=True)
                greeted = self._greetings_waiting(accepted)
        finally:
            for sock in (*accepted, *clients, listener):
                sock.close()
        if ctx.cancelled:
            return

        rows = []
        for index, client_port in enumerate(ports):
            state = states[index]
            if state == "SYN_SENT" and retry_in[index] is not None:
                state = f"SYN_SENT (SYN again in {retry_in[index]:.1f} s)"
            done = (
                f"{connected_after[index] * 1000:,.0f} ms"
                if index in connected_after
                else failed.get(index, "not within the wait")
            )
            rows.append((index + 1, client_port, state, done))
        ctx.table(
            f"Each client after {hold * 1000:,.0f} ms with nobody accepting (/proc/net/tcp)",
            ("client", "port", "kernel state", "connect() returned after"),
            rows,
        )
        overflows = (
            overflows_at_hold - overflows_before
            if overflows_at_hold is not None and overflows_before is not None
            else None
        )
        early = [
            connected_after[i]
            for i in range(count)
            if states[i] == "ESTABLISHED" and i in connected_after
        ]
        late = [
            connected_after[i]
            for i in range(count)
            if states[i] == "SYN_SENT" and i in connected_after
        ]
        ctx.figure("queued_unaccepted", "handshakes finished before any accept()", queued)
        ctx.figure("syn_sent", "clients left in SYN_SENT", refused_syn)
        if queue_length is not None:
            ctx.figure("accept_queue", "accept queue length (listening socket)", queue_length)
        if overflows is not None:
            ctx.figure(
                "listen_overflows",
                "SYNs dropped at a full queue (TcpExt ListenOverflows)",
                overflows,
            )
        if late:
            ctx.figure(
                "late_connect_ms",
                "slowest waiting client got in after",
                round(max(late) * 1000),
                "ms",
            )
        ctx.figure("accepted", "connections accept()ed in the end", len(accepted))
        if accepted_after:
            ctx.line(
                f"the last accept() returned {max(accepted_after) * 1000:,.0f} ms after the connects"
            )
        ctx.figure(
            "greetings_waiting", "accepted connections whose data was already there", greeted
        )
        ctx.line(
            f"{greeted} of {len(accepted)} accepted connections already held their client's "
            f"{GREETING!r}, sent before accept() took them: the kernel had kept it"
        )
        linear = _read_sysctl("/proc/sys/net/ipv4/tcp_syn_linear_timeouts")
        ctx.line(
            f"SYN retries: net.ipv4.tcp_syn_retries = "
            f"{_read_sysctl('/proc/sys/net/ipv4/tcp_syn_retries')}"
            + (
                f", tcp_syn_linear_timeouts = {linear} (the first {linear} retries 1 s "
                "apart, then doubling)"
                if linear != "?"
                else " (1 s, then doubling)"
            )
        )
        ctx.line(
            "tcp_abort_on_overflow = "
            f"{_read_sysctl('/proc/sys/net/ipv4/tcp_abort_on_overflow')} (0: drop the SYN, "
            "the client retries; 1: answer with RST)"
        )
        ctx.verdict(
            self._verdict(
                backlog, count, queued, refused_syn, overflows, early, late, len(accepted)
            )
        )

    @staticmethod
    def _greetings_waiting(accepted: list[socket.socket]) -> int:
        """How many accepted connections already held their client's greeting, sent before accept()."""
        greeted = 0
        for served in accepted:
            served.settimeout(1.0)
            try:
                greeted += served.recv(len(GREETING), socket.MSG_WAITALL) == GREETING
            except OSError:
                pass
        return greeted

    @staticmethod
    def _verdict(
        backlog: int,
        count: int,
        queued: int,
        refused_syn: int,
        overflows: int | None,
        early: list[float],
        late: list[float],
        accepted: int,
    ) -> str:
        quick = f", each connect() returning within {max(early) * 1000:,.0f} ms" if early else ""
        connected = len(early) + len(late)
        if refused_syn == 0:
            head = (
                f"listen({backlog}) had room for all {count}: the kernel finished {queued} "
                f"handshakes before any accept(){quick} — accept() only takes connections "
                "off the queue"
            )
        else:
            plus_one = " (Linux queues backlog + 1)" if queued == backlog + 1 else ""
            handshakes = "handshake" if queued == 1 else "handshakes"
            counted = f" ({overflows} ListenOverflows counted)" if overflows is not None else ""
            ending = (
                f"their connect() returned at last {max(late):.1f} s after it was called, "
                "when a SYN sent again found room"
                if late
                else "their connect() had not returned by the end of the wait"
            )
            head = (
                f"listen({backlog}) let the kernel finish {queued} {handshakes} with nobody "
                f"calling accept(){plus_one}{quick}; the other {refused_syn} clients' SYNs "
                f"were dropped{counted} and {ending}"
            )
        if accepted >= connected:
            return f"{head}. {accepted} of {count} were accept()ed in the end."
        return (
            f"{head}. Only {accepted} of the {connected} connected clients were accept()ed by "
            f"the end of the wait: a client's connect() returns when it sends the last ACK, and "
            f"where that ACK met a full queue the server's kernel dropped it and takes the "
            f"connection only when a segment comes again (a retransmission)."
        )


LABS = (ListenBacklogLab(),)
