"""The last connection's story — 三次握手, data, 四次挥手 (course 1.3.1) — from sampled kernel states and the server's events, observed kept apart from inferred."""

from __future__ import annotations

import collections
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from workbench.server_records import ServerEvent
from workbench.socket_probe import Address, SocketReport

#: Connections whose sampled states are remembered (the oldest are forgotten first).
PEERS_KEPT = 256
#: Request events shown for one connection; the rest are counted.
REQUESTS_SHOWN = 5

_PEER = re.compile(r"^\[?(?P<host>[0-9A-Fa-f:.]+)\]?:(?P<port>\d+)$")

SAMPLING_NOTE = (
    "Packets are never captured: the kernel's states are sampled about once a second while "
    "this view is open, and states shorter than that are inferred, not seen."
)

OBSERVED_KERNEL = "observed (ss)"
OBSERVED_STATS = "observed (server event)"
INFERRED = "inferred"


@dataclass(frozen=True, slots=True)
class StateSample:
    """A state the kernel reported for one side of a connection, first seen at ``time``."""

    time: float
    side: str  # "server" or "client"
    state: str
    owned: bool = True  # False: no descriptor holds it (backlog, TIME_WAIT)
    timer: str = ""


@dataclass(frozen=True, slots=True)
class SequenceStep:
    """One line of the sequence: a packet, a server event or a state the kernel showed."""

    time: float | None  # None: inferred, before or after the neighbouring observation
    arrow: str  # "client → server", "server → client" or "" for a state or an event
    what: str
    client_state: str
    server_state: str
    evidence: str  # OBSERVED_KERNEL, OBSERVED_STATS or INFERRED (with the reason)

    @property
    def observed(self) -> bool:
        return self.evidence.startswith("observed")


@dataclass(frozen=True, slots=True)
class ConnectionSequence:
    """The steps of one connection, and a sentence saying what could not be seen."""

    peer: Address
    steps: tuple[SequenceStep, ...]
    note: str = ""


def _time_wait_left(timer: str) -> str:
    """``timewait,52sec,0`` -> ``52sec``; ``""`` when ss gave no timer."""
    parts = timer.split(",")
    return parts[1] if len(parts) >= 2 and parts[0] == "timewait" else ""


def parse_peer(detail: str) -> Address | None:
    """``127.0.0.1:5000`` or ``[::1]:5000`` (a connect event's detail) -> an address."""
    match = _PEER.match(detail.strip())
    if match is None:
        return None
    return match.group("host"), int(match.group("port"))


class ConnectionTracker:
    """Remembers the states sampled for each peer of one server, so a sequence can be told later."""

    def __init__(self) -> None:
        self._samples: collections.OrderedDict[Address, list[StateSample]] = (
            collections.OrderedDict()
        )

    def add_report(self, report: SocketReport) -> None:
        """Fold one probe sample in: keep each side's state when it first appears or changes."""
        for sock in report.sockets:
            if sock.transport != "TCP" or sock.remote is None or sock.state == "LISTEN":
                continue
            self._note(
                sock.remote, StateSample(report.time, "server", sock.state, sock.owned, sock.timer)
            )
        for peer in report.peer_time_waits:
            self._note(peer, StateSample(report.time, "client", "TIME_WAIT", False))

    def _note(self, peer: Address, sample: StateSample) -> None:
        samples = self._samples.get(peer)
        if samples is None:
            samples = self._samples[peer] = []
            while len(self._samples) > PEERS_KEPT:
                self._samples.popitem(last=False)
        previous = next((s for s in reversed(samples) if s.side == sample.side), None)
        if previous is None or (previous.state, previous.owned) != (sample.state, sample.owned):
            samples.append(sample)
        self._samples.move_to_end(peer)

    def samples(self, peer: Address) -> list[StateSample]:
        return list(self._samples.get(peer, ()))

    def sequence(self, events: Sequence[ServerEvent]) -> ConnectionSequence | None:
        """The story of the last connection in ``events`` (None when no TCP connect was logged)."""
        connect_index = next(
            (
                index
                for index in range(len(events) - 1, -1, -1)
                if events[index].kind == "connect" and parse_peer(events[index].detail)
            ),
            None,
        )
        if connect_index is None:
            return None
        connect = events[connect_index]
        peer = parse_peer(connect.detail)
        assert peer is not None
        later = events[connect_index + 1 :]
        disconnect = next(
            (e for e in later if e.kind == "disconnect" and parse_peer(e.detail) == peer), None
        )
        window = [e for e in later if disconnect is None or e.time <= disconnect.time]
        requests = [e for e in window if e.kind == "request" and e.pid == connect.pid]
        # Request events carry no peer: they are this connection's for sure only when no
        # other connection of the same process was open meanwhile.
        open_peers: set[Address | None] = set()
        previous_end = float("-inf")
        for event in events[:connect_index]:
            event_peer = parse_peer(event.detail)
            if event.kind == "disconnect" and event_peer == peer:
                previous_end = event.time
            if event.pid != connect.pid:
                continue
            if event.kind == "connect":
                open_peers.add(event_peer)
            elif event.kind == "disconnect":
                open_peers.discard(event_peer)
        overlapping = bool(open_peers) or any(
            e.kind == "connect" and e.pid == connect.pid for e in window
        )
        # A client port used again: what was sampled for the earlier connection is not this one's.
        samples = [sample for sample in self.samples(peer) if sample.time > previous_end]
        return ConnectionSequence(
            peer,
            tuple(_steps(connect, disconnect, requests, overlapping, samples)),
            SAMPLING_NOTE,
        )


def _steps(
    connect: ServerEvent,
    disconnect: ServerEvent | None,
    requests: list[ServerEvent],
    overlapping: bool,
    samples: Iterable[StateSample],
) -> list[SequenceStep]:
    samples = list(samples)
    steps: list[SequenceStep] = []
    why_handshake = "inferred: accept() only returns connections whose handshake completed"
    backlog = next(
        (s for s in samples if s.side == "server" and not s.owned and s.state == "ESTABLISHED"),
        None,
    )
    steps += [
        SequenceStep(None, "client → server", "SYN", "SYN_SENT", "LISTEN", why_handshake),
        SequenceStep(None, "server → client", "SYN+ACK", "SYN_SENT", "SYN_RECV", why_handshake),
        SequenceStep(None, "client → server", "ACK", "ESTABLISHED", "ESTABLISHED", why_handshake),
    ]
    if backlog is not None and backlog.time <= connect.time:
        steps.append(
            SequenceStep(
                backlog.time,
                "",
                "waiting in the accept backlog (not accept()ed yet)",
                "ESTABLISHED",
                "ESTABLISHED",
                OBSERVED_KERNEL,
            )
        )
    steps.append(
        SequenceStep(
            connect.time,
            "",
            f"accept() → connfd (pid {connect.pid})",
            "ESTABLISHED",
            "ESTABLISHED",
            OBSERVED_STATS,
        )
    )
    caveat = " (not tagged with the peer; other connections share this pid)" if overlapping else ""
    for request in requests[:REQUESTS_SHOWN]:
        steps.append(
            SequenceStep(
                request.time,
                "client ⇄ server",
                f"data: {request.detail}",
                "ESTABLISHED",
                "ESTABLISHED",
                OBSERVED_STATS + caveat,
            )
        )
    if len(requests) > REQUESTS_SHOWN:
        steps.append(
            SequenceStep(
                requests[-1].time,
                "client ⇄ server",
                f"… {len(requests) - REQUESTS_SHOWN} more requests",
                "ESTABLISHED",
                "ESTABLISHED",
                OBSERVED_STATS + caveat,
            )
        )
    server_samples = [s for s in samples if s.side == "server" and s.owned]
    for sample in server_samples:
        if sample.state != "ESTABLISHED":
            steps.append(
                SequenceStep(
                    sample.time,
                    "",
                    f"server side {sample.state}",
                    "",
                    sample.state,
                    OBSERVED_KERNEL,
                )
            )
    server_time_wait = next(
        (s for s in samples if s.side == "server" and s.state == "TIME_WAIT"), None
    )
    client_time_wait = next(
        (s for s in samples if s.side == "client" and s.state == "TIME_WAIT"), None
    )
    close_wait = next((s for s in samples if s.side == "server" and s.state == "CLOSE_WAIT"), None)
    if disconnect is not None:
        steps.append(
            SequenceStep(disconnect.time, "", "server closed connfd", "", "", OBSERVED_STATS)
        )
    if server_time_wait is not None:
        why = "inferred: the server's side reached TIME_WAIT, so it sent the first FIN"
        steps += [
            SequenceStep(None, "server → client", "FIN", "ESTABLISHED", "FIN_WAIT1", why),
            SequenceStep(None, "client → server", "ACK", "CLOSE_WAIT", "FIN_WAIT2", why),
            SequenceStep(None, "client → server", "FIN", "LAST_ACK", "FIN_WAIT2", why),
            SequenceStep(None, "server → client", "ACK", "CLOSED", "TIME_WAIT", why),
            SequenceStep(
                server_time_wait.time,
                "",
                "server side TIME_WAIT for 2×MSL"
                + (f", {left} left" if (left := _time_wait_left(server_time_wait.timer)) else ""),
                "CLOSED",
                "TIME_WAIT",
                OBSERVED_KERNEL,
            ),
        ]
    elif client_time_wait is not None or close_wait is not None:
        why = (
            "inferred: the client's side reached TIME_WAIT, so it sent the first FIN"
            if client_time_wait is not None
            else "inferred: the server sat in CLOSE_WAIT, so the client sent the first FIN"
        )
        steps += [
            SequenceStep(None, "client → server", "FIN", "FIN_WAIT1", "CLOSE_WAIT", why),
            SequenceStep(None, "server → client", "ACK", "FIN_WAIT2", "CLOSE_WAIT", why),
            SequenceStep(None, "server → client", "FIN", "FIN_WAIT2", "LAST_ACK", why),
            SequenceStep(None, "client → server", "ACK", "TIME_WAIT", "CLOSED", why),
        ]
        if client_time_wait is not None:
            steps.append(
                SequenceStep(
                    client_time_wait.time,
                    "",
                    "client side TIME_WAIT for 2×MSL",
                    "TIME_WAIT",
                    "CLOSED",
                    OBSERVED_KERNEL,
                )
            )
    elif disconnect is not None:
        steps.append(
            SequenceStep(
                None,
                "",
                "closed — which side sent the first FIN was not seen",
                "",
                "",
                "inferred: no TIME_WAIT was sampled on either side (an RST, or between samples)",
            )
        )
    return steps
