"""Benchmark: chat fan-out (2.2.5 群聊聊天室) to 1,000 members on loopback — deliveries/s and time to reach all.

One speaker says a message; the server sends it to every other member. The
members (one socket each) live in one epoll loop in a separate process; it
notes when the last member got each message. Two phases per row:

* one at a time: the speaker waits until everyone has a message before the
  next; gives p50/p99 of the time for one message to reach all members, and
  the deliveries per second that pace allows;
* burst: ``--burst`` messages back to back; deliveries per second while the
  server's sends overlap the members' receives.

Rows: UDP (the exercise) and the same protocol over TCP under a couple of
stream models. Server and members are pinned to different cores (``--no-pin``
to let them float). Bounded: ``--rounds`` fan-outs, a 2 s limit per fan-out.

    python bench/chat.py [--members 1000] [--rounds 200] [--burst 20] [--rows udp,tcp/epoll,tcp/threads]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import select
import socket
import statistics
import sys
import time

import psutil

from servers.launcher import running_server

#: Longest wait for one fan-out (or the login storm step) before giving up on it.
FANOUT_LIMIT = 2.0


def open_members(transport: str, port: int, count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        if transport == "udp":
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.connect(("127.0.0.1", port))
        else:
            sock = socket.create_connection(("127.0.0.1", port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        socks.append(sock)
    return socks


def members_process(transport: str, port: int, count: int, core: int | None, link) -> None:
    """Log ``count`` members in, then report when each message ``r<N>`` has reached all of them."""
    if core is not None:
        os.sched_setaffinity(0, {core})
    socks = open_members(transport, port, count)
    by_fd = {sock.fileno(): sock for sock in socks}
    buffers = dict.fromkeys(by_fd, b"")
    epoll = select.epoll()
    for fd in by_fd:
        epoll.register(fd, select.EPOLLIN)
    logged_in = 0
    #: fd -> when its LOGIN was (last) sent, until the OK arrives
    outstanding: dict[int, float] = {}
    counts: dict[bytes, int] = {}
    received_total = 0

    def pump(timeout: float) -> int:
        """Read whatever is ready; returns how many messages arrived."""
        nonlocal logged_in, received_total
        arrived = 0
        for fd, _ in epoll.poll(timeout):
            sock = by_fd[fd]
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            if transport == "udp":
                lines = [data]
            else:
                lines = (buffers[fd] + data).split(b"\n")
                buffers[fd] = lines.pop()
            for line in lines:
                arrived += 1
                if line.startswith(b"MSG "):
                    tag = line.rsplit(b" ", 1)[-1].rstrip()
                    seen = counts.get(tag, 0) + 1
                    counts[tag] = seen
                    received_total += 1
                    if seen == count:
                        link.send((tag.decode(), time.perf_counter()))
                elif line.startswith(b"OK LOGIN") and outstanding.pop(fd, None) is not None:
                    logged_in += 1
        return arrived

    # The login storm is O(n^2) JOIN lines, and a UDP server's receive buffer
    # holds only a few hundred datagrams: keep few LOGINs in flight, resend lost ones.
    names = {sock.fileno(): f"LOGIN m{index:04d}\n".encode() for index, sock in enumerate(socks)}
    waiting = list(by_fd)
    deadline = time.monotonic() + 60
    while logged_in < count and time.monotonic() < deadline:
        now = time.monotonic()
        in_flight = [fd for fd, sent in outstanding.items() if now - sent < 1.0]
        for fd in [fd for fd, sent in outstanding.items() if now - sent >= 1.0] + waiting:
            if len(in_flight) >= 32:
                break
            by_fd[fd].send(names[fd])
            outstanding[fd] = now
            in_flight.append(fd)
        waiting = [fd for fd in waiting if fd not in outstanding]
        pump(0.02)
    while pump(0.3):  # until the tail of the storm has been read
        pass
    link.send(("ready", logged_in))
    while True:
        if link.poll():
            command = link.recv()
            if command == "quiet":  # the speaker joined: drain its JOIN
                while pump(0.2):
                    pass
                link.send(("quiet", 0))
            elif command == "stop":
                break
        pump(0.01)
    link.send(("received", received_total))
    for sock in socks:
        sock.close()


def measure(label: str, members: int, rounds: int, burst: int, pin: bool) -> dict:
    transport, _, model = label.partition("/")
    model = model or "threads"
    cores = sorted(os.sched_getaffinity(0))
    server_core, member_core = (cores[0], cores[-1]) if pin and len(cores) > 1 else (None, None)
    options = {"transport": transport, "rate_limit": 0, "timeout": 600, "max_members": members + 10}
    context = multiprocessing.get_context("spawn")
    with running_server("chat", model, options=options) as server:
        if server_core is not None:
            psutil.Process(server.pid).cpu_affinity([server_core])
        ours, theirs = context.Pipe()
        child = context.Process(
            target=members_process, args=(transport, server.port, members, member_core, theirs)
        )
        child.start()
        try:
            if not ours.poll(60):
                raise RuntimeError("members did not log in within 60 s")
            tag, logged_in = ours.recv()
            if logged_in < members:
                raise RuntimeError(f"only {logged_in} of {members} members logged in")
            [speaker] = open_members(transport, server.port, 1)
            speaker.setblocking(True)
            speaker.send(b"LOGIN speaker\n")
            ours.send("quiet")
            ours.recv()
            latencies: list[float] = []
            incomplete = 0
            started = time.perf_counter()
            for round_number in range(rounds):
                sent_at = time.perf_counter()
                speaker.send(f"SAY fan-out r{round_number}\n".encode())
                if ours.poll(FANOUT_LIMIT):
                    _, reached_all = ours.recv()
                    latencies.append(reached_all - sent_at)
                else:
                    incomplete += 1
            paced = time.perf_counter() - started
            burst_started = time.perf_counter()
            for index in range(burst):
                speaker.send(f"SAY burst b{index}\n".encode())
            last = burst_started
            completed = 0
            while completed < burst and ours.poll(FANOUT_LIMIT):
                _, last = ours.recv()
                completed += 1
            burst_seconds = last - burst_started
            ours.send("stop")
            received = 0
            while ours.poll(5):
                message = ours.recv()
                if message[0] == "received":
                    received = message[1]
                    break
            speaker.close()
        finally:
            child.join(10)
            if child.is_alive():
                child.kill()
                child.join()
    expected = (rounds + burst) * members
    latencies.sort()
    return {
        "row": label if transport == "udp" else f"tcp/{model}",
        "members": members,
        "fanouts": len(latencies),
        "p50": statistics.median(latencies) * 1000 if latencies else float("nan"),
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
        if latencies
        else float("nan"),
        "paced_rate": len(latencies) * members / paced if paced else 0.0,
        "burst_rate": completed * members / burst_seconds if burst_seconds > 0 else 0.0,
        "lost": expected - received,
        "incomplete": incomplete,
    }


def sendto_floor(count: int = 1000, repeats: int = 10) -> float:
    """Microseconds of CPU one ``sendto`` of a small datagram costs here: the fan-out's floor."""
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sinks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(count)]
    try:
        for sink in sinks:
            sink.bind(("127.0.0.1", 0))
            sink.setblocking(False)
        addresses = [sink.getsockname() for sink in sinks]
        payload = b"MSG 1 speaker fan-out r0\n"
        best = float("inf")
        for _ in range(repeats):
            started = time.thread_time()
            for address in addresses:
                sender.sendto(payload, address)
            best = min(best, time.thread_time() - started)
            for sink in sinks:
                sink.recv(100)
        return best / count * 1e6
    finally:
        sender.close()
        for sink in sinks:
            sink.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--members", type=int, default=1000, help="receiving members (default 1000)"
    )
    parser.add_argument(
        "--rounds", type=int, default=200, help="one-at-a-time fan-outs (default 200)"
    )
    parser.add_argument(
        "--burst", type=int, default=20, help="messages in the burst phase (default 20)"
    )
    parser.add_argument(
        "--rows", default="udp,tcp/epoll", help="udp and/or tcp/MODEL, comma-separated"
    )
    parser.add_argument(
        "--no-pin", action="store_true", help="do not pin server and members to cores"
    )
    options = parser.parse_args(argv)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))

    header = (
        f"{'transport':<12}{'members':>8}{'fan-outs':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'deliv/s paced':>15}{'deliv/s burst':>15}{'lost':>7}"
    )
    print(f"chat fan-out on loopback: one speaker, {options.members} members, rate limit off")
    print(header)
    print("-" * len(header))
    for label in options.rows.split(","):
        try:
            result = measure(
                label, options.members, options.rounds, options.burst, not options.no_pin
            )
        except Exception as error:  # one failing row should not hide the others
            print(f"{label:<12}failed: {error}", flush=True)
            continue
        print(
            f"{result['row']:<12}{result['members']:>8}{result['fanouts']:>9}"
            f"{result['p50']:>9.2f}{result['p99']:>9.2f}"
            f"{result['paced_rate']:>15,.0f}{result['burst_rate']:>15,.0f}{result['lost']:>7}",
            flush=True,
        )
    print("targets: >= 200,000 deliveries/s; p99 < 20 ms for one message to reach 1,000 members")
    floor = sendto_floor()
    print(
        f"floor here: one sendto costs {floor:.1f} us of CPU, so one sending thread "
        f"tops out near {1e6 / floor:,.0f} datagrams/s whatever the server does"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
