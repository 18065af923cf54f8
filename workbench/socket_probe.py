"""What the kernel sees of one server's sockets: psutil for the pid tree's fds, ``ss`` for TCP's own figures (course 1.3 TCP)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass

import psutil

#: ``ss`` options: TCP and UDP, internal TCP info, numeric, timers, extended (inode), all, no header.
SS_ARGUMENTS = ("-tuinoeaH",)
#: Seconds ``ss`` may take before the sample is given up (it is one read of /proc, normally ms).
SS_TIMEOUT = 5.0
#: At most this many ports go into one ``ss`` filter; more and ss is asked for everything.
MAX_FILTER_PORTS = 64

#: ss's state names -> the names psutil and netstat use (and this view shows).
_SS_STATES = {
    "ESTAB": "ESTABLISHED",
    "SYN-SENT": "SYN_SENT",
    "SYN-RECV": "SYN_RECV",
    "FIN-WAIT-1": "FIN_WAIT1",
    "FIN-WAIT-2": "FIN_WAIT2",
    "TIME-WAIT": "TIME_WAIT",
    "UNCONN": "UNCONN",
    "CLOSE-WAIT": "CLOSE_WAIT",
    "LAST-ACK": "LAST_ACK",
    "LISTEN": "LISTEN",
    "CLOSING": "CLOSING",
    "CLOSE": "CLOSE",
}

#: Display order: the listener first, then the accept backlog, live connections, closing ones.
_STATE_ORDER = {
    "LISTEN": 0,
    "UNCONN": 0,
    "SYN_RECV": 1,
    "ESTABLISHED": 2,
    "CLOSE_WAIT": 3,
    "LAST_ACK": 4,
    "FIN_WAIT1": 5,
    "FIN_WAIT2": 6,
    "CLOSING": 7,
    "TIME_WAIT": 8,
}

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class KernelSocket:
    """One socket as ``ss`` reports it."""

    transport: str  # "tcp" or "udp"
    state: str  # psutil's spelling: ESTABLISHED, TIME_WAIT, LISTEN, UNCONN...
    recv_q: int
    send_q: int
    local: Address
    remote: Address | None  # None for a listener's "*"
    inode: int = 0  # 0: owned by no file descriptor (TIME_WAIT, not yet accepted)
    rtt_ms: float | None = None
    unacked: int | None = None
    retransmits: int | None = None
    timer: str = ""  # "timewait,58sec,0", "keepalive,...", "on,200ms,0"


def _parse_address(text: str) -> Address | None:
    """``127.0.0.1:80``, ``[::1]:80``, ``[::ffff:127.0.0.1]:80``, ``*:80``, ``0.0.0.0:*``."""
    host, _, port = text.rpartition(":")
    if port == "*":
        return None
    host = host.strip("[]")
    host = host.split("%", 1)[0]  # an interface scope: 127.0.0.53%lo
    if host == "*":
        host = "0.0.0.0"
    if host.startswith("::ffff:") and "." in host:
        host = host.removeprefix("::ffff:")
    return host, int(port)


def _key_values(text: str) -> dict[str, str]:
    """``rtt:0.2/0.1 unacked:2 timer:(timewait,59sec,0)`` -> {"rtt": "0.2/0.1", ...} (first wins)."""
    values: dict[str, str] = {}
    for token in text.split():
        key, colon, value = token.partition(":")
        if colon and key not in values:
            values[key] = value
    return values


def parse_ss(text: str) -> list[KernelSocket]:
    """Parse ``ss -tuinoeaH`` output: a socket per line, its TCP info on the indented line after."""
    sockets: list[KernelSocket] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line.strip() or line[0].isspace():
            continue
        info = ""
        if index < len(lines) and lines[index][:1].isspace():
            info = lines[index]
            index += 1
        fields = line.split()
        if len(fields) < 6 or fields[0] not in ("tcp", "udp"):
            continue
        transport, state, recv_q, send_q, local_text, remote_text, *rest = fields
        local = _parse_address(local_text)
        if local is None:
            continue
        extra = _key_values(" ".join(rest))
        figures = _key_values(info)
        timer = extra.get("timer", "").strip("()")
        inode = extra.get("ino", "")
        rtt = figures.get("rtt")
        unacked = figures.get("unacked")
        retrans = figures.get("retrans")
        sockets.append(
            KernelSocket(
                transport=transport,
                state=_SS_STATES.get(state, state),
                recv_q=int(recv_q),
                send_q=int(send_q),
                local=local,
                remote=_parse_address(remote_text),
                inode=int(inode) if inode.isdigit() else 0,
                rtt_ms=float(rtt.split("/")[0]) if rtt else None,
                unacked=int(unacked) if unacked else None,
                # retrans:NOW/TOTAL — the total is what a student wants to see grow.
                retransmits=int(retrans.split("/")[-1]) if retrans else None,
                timer=timer,
            )
        )
    return sockets


class ProbeError(RuntimeError):
    """``ss`` is missing or failed; the message says what to do."""


def ss_available() -> bool:
    return shutil.which("ss") is not None


def read_kernel_sockets(ports: Iterable[int] = ()) -> list[KernelSocket]:
    """Run ``ss`` for sockets with these local or remote ports (all sockets when none). Blocks."""
    executable = shutil.which("ss")
    if executable is None:
        raise ProbeError("ss not found: install iproute2 for TCP states, queues and rtt")
    wanted = sorted(set(ports))
    command = [executable, *SS_ARGUMENTS]
    if 0 < len(wanted) <= MAX_FILTER_PORTS:
        clauses = " or ".join(f"sport = :{port} or dport = :{port}" for port in wanted)
        command.append(f"( {clauses} )")
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=SS_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ProbeError(f"ss failed: {error}") from None
    if completed.returncode != 0:
        reason = completed.stderr.strip().splitlines()[-1:] or [f"exit {completed.returncode}"]
        raise ProbeError(f"ss failed: {reason[0]}")
    return parse_ss(completed.stdout)


@dataclass(frozen=True, slots=True)
class ServerSocket:
    """One row of the socket view: a socket of the server's pid tree, or one the kernel keeps for its port."""

    transport: str  # "TCP" or "UDP"
    state: str
    local: Address
    remote: Address | None
    pids: tuple[int, ...] = ()  # processes holding it (a pool's workers share the listener)
    fd: int | None = None
    recv_q: int | None = None
    send_q: int | None = None
    rtt_ms: float | None = None
    unacked: int | None = None
    retransmits: int | None = None
    timer: str = ""

    @property
    def owned(self) -> bool:
        return bool(self.pids)

    @property
    def role(self) -> str:
        """Why this socket exists, in the course's words."""
        if self.state == "LISTEN":
            return "listening socket (监听套接字)"
        if self.transport == "UDP":
            return "datagram socket (数据报套接字)"
        if not self.owned and self.state in ("ESTABLISHED", "SYN_RECV"):
            return "in the accept backlog: not accept()ed yet"
        if not self.owned and self.state == "TIME_WAIT":
            return "closed by the server first: kernel keeps it for 2×MSL"
        if not self.owned:
            return "closed by the server; the kernel finishes the close"
        return "connection socket (connfd)"


@dataclass(frozen=True, slots=True)
class SocketReport:
    """The server's sockets at one instant, and the peer-side TIME_WAITs of its connections."""

    time: float
    pid: int
    port: int
    sockets: tuple[ServerSocket, ...]
    #: Client ends of connections to the server that sit in TIME_WAIT (the client closed first).
    peer_time_waits: tuple[Address, ...] = ()
    #: Why the kernel figures are missing (no ss), or "" when they are there.
    problem: str = ""

    def count(self, state: str) -> int:
        return sum(1 for sock in self.sockets if sock.state == state)

    @property
    def own_ports(self) -> set[int]:
        """Local TCP ports the server's processes hold now (its port, FTP data ports...)."""
        return {sock.local[1] for sock in self.sockets if sock.owned and sock.transport == "TCP"}

    @property
    def listener(self) -> ServerSocket | None:
        return next((sock for sock in self.sockets if sock.state == "LISTEN"), None)

    def summary(self) -> str:
        """One line: accept backlog, connection states and TIME_WAITs."""
        parts: list[str] = []
        listener = self.listener
        if listener is not None and listener.recv_q is not None:
            parts.append(f"accept backlog {listener.recv_q}/{listener.send_q}")
        states: dict[str, int] = {}
        for sock in self.sockets:
            if sock.state not in ("LISTEN", "UNCONN"):
                states[sock.state] = states.get(sock.state, 0) + 1
        parts.extend(f"{state} {count}" for state, count in sorted(states.items()))
        if self.peer_time_waits:
            parts.append(f"client-side TIME_WAIT {len(self.peer_time_waits)}")
        if not parts:
            parts.append("no connections")
        return " · ".join(parts)


def _socket_inodes(pid: int) -> dict[int, int]:
    """fd -> socket inode for one process, from /proc (psutil does not give the inode)."""
    inodes: dict[int, int] = {}
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue  # closed between listdir and readlink
        if target.startswith("socket:["):
            inodes[int(name)] = int(target[8:-1])
    return inodes


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    try:
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return [root]


def _address(value: object) -> Address | None:
    if not value:
        return None
    host, port = value[0], value[1]  # type: ignore[index]
    if isinstance(host, str) and host.startswith("::ffff:") and "." in host:
        host = host.removeprefix("::ffff:")
    return str(host), int(port)


def probe_server(pid: int | None, port: int, other_ports: Iterable[int] = ()) -> SocketReport:
    """Sample the sockets of ``pid``'s process tree and the kernel's sockets on ``port``. Blocks.

    ``other_ports`` are more of the server's own ports (an FTP server's passive data
    ports, seen in earlier samples): the TIME_WAITs its closed data connections leave
    there are its too. With no pid (the server is down) only what the kernel still
    keeps on the ports is reported: the TIME_WAITs a new listener would collide with.
    Raises psutil.NoSuchProcess when the server has gone.
    """
    now = time.time()
    owned: dict[tuple, dict] = {}  # key: inode (or the addresses when it is unknown)
    for process in _tree(pid) if pid is not None else ():
        try:
            connections = process.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        except psutil.AccessDenied:
            continue
        inodes = _socket_inodes(process.pid)
        for conn in connections:
            inode = inodes.get(conn.fd, 0)
            local = _address(conn.laddr)
            remote = _address(conn.raddr)
            key: tuple = ("inode", inode) if inode else ("addresses", conn.type, local, remote)
            entry = owned.get(key)
            if entry is None:
                owned[key] = {
                    "transport": "UDP" if conn.type == 2 else "TCP",
                    "state": conn.status if conn.status != "NONE" else "UNCONN",
                    "local": local,
                    "remote": remote,
                    "pids": [process.pid],
                    "fd": conn.fd,
                    "inode": inode,
                }
            elif process.pid not in entry["pids"]:
                entry["pids"].append(process.pid)
    server_ports = {port, *other_ports}
    ports = server_ports | {entry["local"][1] for entry in owned.values() if entry["local"]}
    problem = ""
    try:
        kernel = read_kernel_sockets(ports)
    except ProbeError as error:
        kernel, problem = [], str(error)
    by_inode = {sock.inode: sock for sock in kernel if sock.inode}
    by_addresses = {(sock.transport, sock.local, sock.remote): sock for sock in kernel}
    rows: list[ServerSocket] = []
    for entry in owned.values():
        kernel_view = by_inode.get(entry["inode"]) or by_addresses.get(
            (entry["transport"].lower(), entry["local"], entry["remote"])
        )
        rows.append(_row(entry, kernel_view))
    peer_time_waits: list[Address] = []
    for sock in kernel:
        if sock.inode or sock.transport != "tcp":
            continue
        if sock.local[1] in server_ports:
            # No descriptor holds it: TIME_WAIT after the server closed, or a connection
            # the kernel completed that the server has not accept()ed yet.
            rows.append(
                _row(
                    {
                        "transport": "TCP",
                        "state": sock.state,
                        "local": sock.local,
                        "remote": sock.remote,
                        "pids": [],
                        "fd": None,
                    },
                    sock,
                )
            )
        elif sock.remote is not None and sock.remote[1] == port and sock.state == "TIME_WAIT":
            peer_time_waits.append(sock.local)
    rows.sort(
        key=lambda row: (_STATE_ORDER.get(row.state, 9), not row.owned, row.remote or ("", 0))
    )
    return SocketReport(now, pid or 0, port, tuple(rows), tuple(peer_time_waits), problem)


def _row(entry: dict, kernel: KernelSocket | None) -> ServerSocket:
    state = entry["state"]
    if kernel is not None and entry["transport"] == "TCP":
        state = kernel.state  # ss and psutil read at different instants: one source per row
    return ServerSocket(
        transport=entry["transport"],
        state=state,
        local=entry["local"],
        remote=entry["remote"],
        pids=tuple(entry["pids"]),
        fd=entry["fd"],
        recv_q=kernel.recv_q if kernel else None,
        send_q=kernel.send_q if kernel else None,
        rtt_ms=kernel.rtt_ms if kernel else None,
        unacked=kernel.unacked if kernel else None,
        retransmits=kernel.retransmits if kernel else None,
        timer=kernel.timer if kernel else "",
    )


def format_address(address: Address | None) -> str:
    if address is None:
        return "*"
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def explain_bind_success(port: int, time_waits: int) -> str:
    """Why a restart without SO_REUSEADDR bound after all, true to what the socket view showed."""
    if not time_waits:
        return f"no TIME_WAIT held port {port}"
    held = f"{time_waits} TIME_WAIT sockets" if time_waits > 1 else "a TIME_WAIT socket"
    return (
        f"{held} held port {port}, yet the bind worked: this server sets SO_REUSEPORT (prefork's "
        "processes share the port), and Linux lets a SO_REUSEPORT listener bind beside TIME_WAIT "
        "sockets that had SO_REUSEPORT too (same user)"
    )


def explain_bind_failure(error: str, port: int, time_waits: int) -> str:
    """Why a restart without SO_REUSEADDR could not bind, in a sentence for the user."""
    if "address already in use" not in error.lower():
        return error
    held = (
        f"{time_waits} TIME_WAIT sockets still hold port {port}"
        if time_waits > 1
        else f"a TIME_WAIT socket still holds port {port}"
        if time_waits
        else f"port {port} is still held (TIME_WAIT or another listener)"
    )
    return (
        f"address already in use: {held}. After a close the side that closed first keeps "
        "TIME_WAIT for 2×MSL (60 s on Linux) so late segments of the old connection die "
        "out; SO_REUSEADDR lets a new listener bind anyway. Press r to restart with it."
    )
