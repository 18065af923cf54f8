"""Transport labs (course 1.3.1 四次挥手, 1.2.4 UDP可能会出现数据丢失): who keeps TIME_WAIT, and UDP loss vs TCP flow control."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
import threading
import time
from dataclasses import dataclass

from workbench.labs.base import Lab, LabContext, Param

LOOPBACK = "127.0.0.1"
#: Longest any single wait may block, so a broken peer cannot hang a lab.
SAFETY_TIMEOUT = 5.0

#: /proc/net/tcp's state codes (include/net/tcp_states.h).
TCP_STATES = {
    0x01: "ESTABLISHED",
    0x02: "SYN_SENT",
    0x03: "SYN_RECV",
    0x04: "FIN_WAIT1",
    0x05: "FIN_WAIT2",
    0x06: "TIME_WAIT",
    0x07: "CLOSE",
    0x08: "CLOSE_WAIT",
    0x09: "LAST_ACK",
    0x0A: "LISTEN",
    0x0B: "CLOSING",
}


@dataclass(frozen=True, slots=True)
class KernelTcpSocket:
    """One line of /proc/net/tcp: what the kernel itself says a socket is doing."""

    local_port: int
    remote_port: int
    state: str
    #: Seconds until the socket's timer fires (the TIME_WAIT countdown), None without one.
    timer_seconds: float | None
    #: Bytes received and not yet read; on a LISTEN socket, connections not yet accept()ed.
    receive_queue: int = 0


def _port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1], 16)


def kernel_tcp_sockets(port: int, proc_path: str = "/proc/net/tcp") -> list[KernelTcpSocket]:
    """The IPv4 TCP sockets with ``port`` at either end, read from the kernel's own table."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = []
    with open(proc_path) as table:
        next(table)  # the header line
        for line in table:
            fields = line.split()
            local, remote = _port_of(fields[1]), _port_of(fields[2])
            if port not in (local, remote):
                continue
            timer_kind, when = fields[5].split(":")
            found.append(
                KernelTcpSocket(
                    local_port=local,
                    remote_port=remote,
                    state=TCP_STATES.get(int(fields[3], 16), fields[3]),
                    timer_seconds=int(when, 16) / ticks if int(timer_kind, 16) else None,
                    receive_queue=int(fields[4].split(":")[1], 16),
                )
            )
    return found


def kernel_udp_drops(
    port: int, host: str = LOOPBACK, proc_path: str = "/proc/net/udp"
) -> int | None:
    """Datagrams the kernel threw away for the UDP socket bound to ``host:port`` (its full buffer)."""
    # The table writes an IPv4 address as its 32 bits in host order: 127.0.0.1 -> 0100007F.
    wanted = f"{socket.inet_aton(host)[::-1].hex().upper()}:{port:04X}"
    with open(proc_path) as table:
        next(table)
        for line in table:
            fields = line.split()
            if fields[1] == wanted:
                return int(fields[-1])
    return None


def _states_by_side(port: int, server_port: int) -> tuple[str, str]:
    """(server end's state, client end's state) of the one connection between them, '—' if gone."""
    server_side = client_side = "—"
    for sock in kernel_tcp_sockets(port):
        if sock.local_port == server_port and sock.remote_port == port:
            server_side = sock.state
        elif sock.local_port == port and sock.remote_port == server_port:
            client_side = sock.state
    return server_side, client_side


def _wait_for_states(
    client_port: int, server_port: int, wanted: set[str], timeout: float = 1.0
) -> tuple[str, str]:
    """Poll the kernel's table until one side shows a state in ``wanted`` (FIN/ACK take a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        states = _states_by_side(client_port, server_port)
        if wanted & set(states) or time.monotonic() > deadline:
            return states
        time.sleep(0.002)


def try_bind(port: int, reuse_address: bool, reuse_port: bool = False) -> str:
    """Bind and listen on ``port``: "bound" or the errno's name (EADDRINUSE while it is held)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, int(reuse_address))
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((LOOPBACK, port))
        sock.listen(1)
        return "bound"
    except OSError as error:
        return errno.errorcode.get(error.errno or 0, str(error))
    finally:
        sock.close()


class TimeWaitLab(Lab):
    name = "time-wait"
    title = "Four-way close: who keeps TIME_WAIT, and why a restart needs SO_REUSEADDR"
    course_term = "四次挥手"
    course_section = "1.3.1"
    explanation = (
        "Closing a TCP connection takes four segments (四次挥手): the side that closes first "
        "(主动方) sends FIN and waits in FIN_WAIT2 while the other side sits in CLOSE_WAIT "
        "until it closes too. Then the first closer stays in TIME_WAIT for 2×MSL (60 s on "
        "Linux), so stray segments of the old connection die out before the port pair is "
        "used again. The lab reads every state from the kernel's own table (/proc/net/tcp). "
        "When the server closed first, its port is held: a new listener without SO_REUSEADDR "
        "fails with EADDRINUSE — why servers set SO_REUSEADDR, on the old socket as well: "
        "Linux lets a bind pass a TIME_WAIT socket only when both set it. When the client "
        "closed first, "
        "the TIME_WAIT sits on the client's ephemeral port and the server port is free. "
        "Closing with SO_LINGER 0 sends RST instead of FIN: no TIME_WAIT, and the peer gets "
        "ECONNRESET. With SO_REUSEPORT on both old and new sockets (prefork) Linux lets the "
        "bind through too."
    )
    order = 1.31
    params = (
        Param("closer", "server", "who closes first: server or client"),
        Param("abort", False, "the first closer sets SO_LINGER 0: RST instead of FIN"),
        Param("old_reuseaddr", True, "the old server set SO_REUSEADDR too (as ours all do)"),
        Param("reuse_port", False, "listen with SO_REUSEPORT, old and new listener (prefork)"),
    )

    def run(self, ctx: LabContext) -> None:
        closer = str(ctx["closer"]).strip().lower()
        if closer not in ("server", "client"):
            ctx.line(f"closer must be server or client, not {closer!r}")
            ctx.verdict("Nothing measured: closer must be server or client.")
            return
        abort, reuse_port = bool(ctx["abort"]), bool(ctx["reuse_port"])
        old_reuseaddr = bool(ctx["old_reuseaddr"])

        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Accepted sockets inherit it, so the TIME_WAIT left behind carries it as well.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, int(old_reuseaddr))
        if reuse_port:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        listener.bind((LOOPBACK, 0))
        listener.listen(1)
        server_port = listener.getsockname()[1]
        client = socket.create_connection((LOOPBACK, server_port), timeout=SAFETY_TIMEOUT)
        served, _ = listener.accept()
        client_port = client.getsockname()[1]
        rows: list[tuple[str, str, str]] = []

        def observe(step: str, wanted: set[str] | None = None) -> tuple[str, str]:
            states = (
                _wait_for_states(client_port, server_port, wanted)
                if wanted
                else _states_by_side(client_port, server_port)
            )
            rows.append((step, *states))
            ctx.line(f"{step}: server end {states[0]}, client end {states[1]}")
            return states

        first, second = (served, client) if closer == "server" else (client, served)
        try:
            listener.close()  # the listener goes now: only the connection holds the port
            observe("connected (listener closed)")
            if abort:
                first.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            first.close()
            observe(f"{closer} close()d first", {"FIN_WAIT2", "CLOSE_WAIT", "—"})
            peer_saw = self._peer_reads(second)
            ctx.line(f"the other side's recv() then gave {peer_saw}")
            second.close()
            final = observe("both closed", {"TIME_WAIT"} if not abort else None)
        finally:
            for sock in (listener, served, client):
                sock.close()

        held_by = (
            "server" if final[0] == "TIME_WAIT" else "client" if final[1] == "TIME_WAIT" else "none"
        )
        remaining = self._time_wait_seconds(client_port, server_port)
        ctx.table(
            "What the kernel said (/proc/net/tcp)", ("step", "server end", "client end"), rows
        )

        without = try_bind(server_port, reuse_address=False, reuse_port=reuse_port)
        with_reuse = try_bind(server_port, reuse_address=True, reuse_port=reuse_port)
        ctx.line(f"new listener on port {server_port} without SO_REUSEADDR: {without}")
        ctx.line(f"new listener on port {server_port} with SO_REUSEADDR: {with_reuse}")

        ctx.figure("time_wait_side", "TIME_WAIT kept by", held_by)
        if remaining is not None:
            ctx.figure("time_wait_seconds", "TIME_WAIT timer left", round(remaining, 1), "s")
        ctx.figure("peer_read", "the other side's recv() gave", peer_saw)
        ctx.figure("bind_without_reuseaddr", "restart without SO_REUSEADDR", without)
        ctx.figure("bind_with_reuseaddr", "restart with SO_REUSEADDR", with_reuse)
        ctx.verdict(self._verdict(closer, reuse_port, old_reuseaddr, held_by, without, with_reuse))

    @staticmethod
    def _peer_reads(sock: socket.socket) -> str:
        try:
            data = sock.recv(1)
        except OSError as error:
            return f"{type(error).__name__} [{errno.errorcode.get(error.errno or 0, '?')}]"
        return "b'' (the FIN: end of stream)" if data == b"" else repr(data)

    @staticmethod
    def _time_wait_seconds(client_port: int, server_port: int) -> float | None:
        for sock in kernel_tcp_sockets(server_port):
            if sock.state == "TIME_WAIT" and client_port in (sock.local_port, sock.remote_port):
                return sock.timer_seconds
        return None

    @staticmethod
    def _verdict(
        closer: str,
        reuse_port: bool,
        old_reuseaddr: bool,
        held_by: str,
        without: str,
        with_reuse: str,
    ) -> str:
        if held_by == "none":
            head = f"The {closer} closed first with an RST (SO_LINGER 0): no TIME_WAIT anywhere"
        else:
            head = f"The {closer} closed first, and the {held_by} end kept TIME_WAIT"
        if without == "bound":
            if held_by == "server" and reuse_port:
                why = "SO_REUSEPORT on the old and new sockets let it through, as under prefork"
            else:
                why = "no TIME_WAIT held the server's port"
            return f"{head}; a new listener bound even without SO_REUSEADDR: {why}."
        if with_reuse == "bound":
            return (
                f"{head}; a new listener failed without SO_REUSEADDR ({without}) and bound with "
                "it: why servers set SO_REUSEADDR."
            )
        why = (
            "the old server had not set it, and Linux lets a bind past TIME_WAIT only when both "
            "sockets did"
            if not old_reuseaddr
            else "the port is held by more than TIME_WAIT"
        )
        return (
            f"{head}; a new listener failed without SO_REUSEADDR and with it ({with_reuse}): {why}."
        )


class UdpLossLab(Lab):
    name = "udp-loss"
    title = "UDP may lose data: a burst into a full receive buffer, then the same over TCP"
    course_term = "数据丢失 (UDP)"
    course_section = "1.2.4, 1.3.5"
    explanation = (
        "A UDP receiver that is not reading has a fixed receive buffer: once it is full the "
        "kernel drops every further datagram, counts it (/proc/net/udp's drops column), and "
        "the sender never knows — sendto() succeeded. Numbering the datagrams shows which "
        "went missing. The same messages over TCP all arrive: when the receiver's buffer is "
        "full the window closes and the sender's send() waits instead (flow control, part of "
        "TCP's 可靠传输: 无丢失, 无失序). The chat room numbers its datagrams to show this loss."
    )
    order = 1.24
    params = (
        Param("messages", 2000, "messages to send in one burst", minimum=10, maximum=50_000),
        Param("size", 1000, "bytes in each message", minimum=16, maximum=8000),
        Param("rcvbuf", 32768, "receive buffer asked for (SO_RCVBUF; Linux doubles it)", 4096),
        Param("pause_ms", 300, "how long the TCP receiver does not read", minimum=0, maximum=3000),
    )

    def run(self, ctx: LabContext) -> None:
        count, size, rcvbuf = int(ctx["messages"]), int(ctx["size"]), int(ctx["rcvbuf"])
        got, drops, granted, gaps = self._udp(count, size, rcvbuf)
        ctx.line(f"UDP: receive buffer asked {rcvbuf:,} B, kernel gave {granted:,} B")
        ctx.line(f"UDP: {count:,} sendto() calls all returned; the receiver read only afterwards")
        ctx.line(f"UDP: {len(got):,} datagrams arrived; kernel drop counter: {drops}")
        if gaps:
            shown = ", ".join(f"#{a}–#{b}" if a != b else f"#{a}" for a, b in gaps[:4])
            ctx.line(f"UDP: missing by number: {shown}{' …' if len(gaps) > 4 else ''}")
        if ctx.cancelled:
            return
        pause = int(ctx["pause_ms"]) / 1000
        tcp_got, blocked_ms, in_order = self._tcp(count, size, rcvbuf, pause)
        ctx.line(
            f"TCP: the receiver read nothing for {pause * 1000:,.0f} ms; the sender's send() "
            f"calls waited {blocked_ms:,.0f} ms in all; {tcp_got:,} of {count:,} messages "
            f"arrived, in order: {in_order}"
        )
        lost = count - len(got)
        ctx.table(
            "The same burst over both",
            ("", "sent", "arrived", "lost", "sender waited"),
            [
                ("UDP", count, len(got), lost, "never (sendto returns at once)"),
                ("TCP", count, tcp_got, count - tcp_got, f"{blocked_ms:,.0f} ms"),
            ],
        )
        ctx.figure("udp_sent", "UDP datagrams sent", count)
        ctx.figure("udp_received", "UDP datagrams received", len(got))
        ctx.figure("udp_lost", "UDP datagrams lost", lost)
        if drops is not None:
            ctx.figure("kernel_drops", "kernel drop counter (/proc/net/udp)", drops)
        ctx.figure("tcp_received", "TCP messages received", tcp_got)
        ctx.figure("tcp_sender_waited_ms", "TCP sender waited", round(blocked_ms), "ms")
        ctx.verdict(
            f"UDP lost {lost:,} of {count:,} datagrams ({lost / count:.0%}) with no error at the "
            f"sender; TCP delivered {tcp_got:,} of {count:,} in order by making the sender wait "
            f"{blocked_ms:,.0f} ms instead."
        )

    @staticmethod
    def _udp(
        count: int, size: int, rcvbuf: int
    ) -> tuple[list[int], int | None, int, list[tuple[int, int]]]:
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender,
        ):
            receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            receiver.bind((LOOPBACK, 0))
            port = receiver.getsockname()[1]
            granted = receiver.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            padding = b"." * (size - 8)
            for number in range(count):
                sender.sendto(struct.pack("!Q", number) + padding, (LOOPBACK, port))
            drops = kernel_udp_drops(port)
            receiver.settimeout(0.05)
            got = []
            with contextlib.suppress(TimeoutError, BlockingIOError):
                while True:
                    got.append(struct.unpack("!Q", receiver.recv(size)[:8])[0])
        return got, drops, granted, _missing_runs(got, count)

    @staticmethod
    def _tcp(count: int, size: int, rcvbuf: int, pause: float) -> tuple[int, float, bool]:
        """Send the burst over TCP to a receiver that starts reading after ``pause`` seconds."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # accepted inherit it
            listener.bind((LOOPBACK, 0))
            listener.listen(1)
            sender = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, rcvbuf)
            sender.settimeout(SAFETY_TIMEOUT + pause)
            sender.connect(listener.getsockname())
            receiver, _ = listener.accept()
        padding = b"." * (size - 8)
        numbers: list[int] = []

        def read_all() -> None:
            time.sleep(pause)  # the receiver is busy elsewhere: nothing is read meanwhile
            buffered = b""
            receiver.settimeout(SAFETY_TIMEOUT)
            while len(numbers) < count:
                chunk = receiver.recv(65536)
                if not chunk:
                    return
                buffered += chunk
                whole = len(buffered) // size
                for index in range(whole):
                    numbers.append(
                        struct.unpack("!Q", buffered[index * size : index * size + 8])[0]
                    )
                buffered = buffered[whole * size :]

        reader = threading.Thread(target=read_all, name="udp-loss-tcp-reader", daemon=True)
        with sender, receiver:
            reader.start()
            waited = 0.0
            for number in range(count):
                began = time.perf_counter()
                sender.sendall(struct.pack("!Q", number) + padding)
                waited += time.perf_counter() - began
            reader.join(SAFETY_TIMEOUT + pause)
        return len(numbers), waited * 1000, numbers == sorted(numbers)


def _missing_runs(got: list[int], count: int) -> list[tuple[int, int]]:
    """The numbers in 0..count-1 not in ``got``, as (first, last) runs."""
    present = set(got)
    runs: list[tuple[int, int]] = []
    for number in range(count):
        if number in present:
            continue
        if runs and runs[-1][1] == number - 1:
            runs[-1] = (runs[-1][0], number)
        else:
            runs.append((number, number))
    return runs


LABS = (TimeWaitLab(), UdpLossLab())
