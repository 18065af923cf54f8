"""The chat server in its own process, on real loopback sockets: UDP, TCP under the stream models, the CLI."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from servers.chat import udp
from servers.chat.room import ChatRoom
from servers.launcher import LaunchError, new_stats_queue, running_server
from servers.stats import ServerStats
from workbench.clients.chat import (
    Admin,
    ChatClient,
    ChatEvent,
    Joined,
    Left,
    LostCount,
    Message,
    NameTaken,
)

pytestmark = pytest.mark.timeout(30)

#: TCP models whose connections share one process, so one room.
SHARED_MEMORY_MODELS = ["threads", "select", "poll", "epoll", "asyncio"]


class RawUdp:
    """What ``nc -u`` does: send a datagram, read the datagrams that come back."""

    def __init__(self, port: int) -> None:
        self.address = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(3)

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.address)

    def recv(self, timeout: float = 3.0) -> str:
        self.sock.settimeout(timeout)
        return self.sock.recv(65536).decode()

    def ask(self, data: bytes) -> str:
        self.send(data)
        return self.recv()

    def nothing_arrives(self, within: float = 0.2) -> bool:
        self.sock.settimeout(within)
        try:
            self.sock.recv(65536)
        except TimeoutError:
            return True
        return False

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw_udp() -> Iterator[Callable[[int], RawUdp]]:
    made: list[RawUdp] = []

    def make(port: int) -> RawUdp:
        made.append(RawUdp(port))
        return made[-1]

    yield make
    for raw in made:
        raw.close()


@pytest.fixture
def clients() -> Iterator[Callable[..., ChatClient]]:
    made: list[ChatClient] = []

    def make(port: int, transport: str = "udp", **options) -> ChatClient:
        client = ChatClient("127.0.0.1", port, transport, **options)
        made.append(client)
        client.connect()
        return client

    yield make
    for client in made:
        client.close()


def wait_for(
    client: ChatClient, predicate: Callable[[ChatEvent], bool], timeout: float = 5.0
) -> list[ChatEvent]:
    seen: list[ChatEvent] = []
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        event = client.next_event(timeout=remaining)
        if event is None:
            break
        seen.append(event)
        if predicate(event):
            return seen
    raise AssertionError(f"no matching event within {timeout} s; saw {seen}")


# -- the five features of the exercise, UDP and TCP --------------------------------


@pytest.mark.parametrize(
    ("transport", "model"),
    [("udp", "threads")] + [("tcp", model) for model in SHARED_MEMORY_MODELS],
)
def test_the_five_features_with_three_clients(clients, transport: str, model: str) -> None:
    with running_server("chat", model, options={"transport": transport}) as server:
        alice, bob, carol = (clients(server.port, transport) for _ in range(3))
        # 1. a name is needed and must be unique
        alice.login("alice")
        with pytest.raises(NameTaken, match="already in the room"):
            bob.login("Alice")
        bob.login("bob")
        carol.login("carol")
        # 2. everyone else hears the join
        assert wait_for(alice, lambda e: isinstance(e, Joined) and e.name == "carol")
        assert wait_for(bob, lambda e: isinstance(e, Joined))[-1] == Joined("carol", 2)
        # 3. a message reaches every other member as "name: text"
        carol.say("大家好 from carol")
        for listener in (alice, bob):
            assert (
                wait_for(listener, lambda e: isinstance(e, Message))[-1].text == "大家好 from carol"
            )
        # 5. the admin announces to everyone (workbench control channel)
        server.send_control({"type": "announce", "text": "class starts"})
        for member in (alice, bob, carol):
            assert wait_for(member, lambda e: isinstance(e, Admin))[-1].text == "class starts"
        # 4. leaving is announced
        bob.leave()
        for listener in (alice, carol):
            assert wait_for(listener, lambda e: isinstance(e, Left))[-1].name == "bob"
        assert alice.members == ["alice", "carol"]
        assert alice.lost == carol.lost == 0


def test_tcp_disconnect_without_quit_is_announced(clients) -> None:
    with running_server("chat", "epoll", options={"transport": "tcp"}) as server:
        alice = clients(server.port, "tcp")
        alice.login("alice")
        with socket.create_connection(("127.0.0.1", server.port), timeout=3) as rude:
            rude.sendall(b"LOGIN rude\n")
            assert rude.recv(100).startswith(b"OK LOGIN rude")
            wait_for(alice, lambda e: isinstance(e, Joined))
        assert wait_for(alice, lambda e: isinstance(e, Left))[-1].reason == "disconnected"


def test_tcp_framing_over_a_real_socket(clients) -> None:
    """粘包: three commands in one segment, and one command dribbled out byte by byte."""
    with running_server("chat", "select", options={"transport": "tcp"}) as server:
        alice = clients(server.port, "tcp")
        alice.login("alice")
        with socket.create_connection(("127.0.0.1", server.port), timeout=3) as raw:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            raw.sendall(b"LOGIN bob\nSAY one\nSAY two\n")
            for byte in b"SAY three\n":
                raw.send(bytes([byte]))
            texts = [
                e.text
                for e in wait_for(alice, lambda e: getattr(e, "text", "") == "three")
                if isinstance(e, Message)
            ]
        assert texts == ["one", "two", "three"]


def test_iterative_model_serves_one_member_at_a_time(clients) -> None:
    """The lesson of 3.1: a loop server cannot run a room; the second member waits its turn."""
    with running_server("chat", "iterative", options={"transport": "tcp"}) as server:
        alice = clients(server.port, "tcp")
        alice.login("alice")
        bob = clients(server.port, "tcp", login_timeout=0.5)
        with pytest.raises(Exception, match="no answer"):
            bob.login("bob")
        alice.close()
        bob.login_timeout = 5
        bob.login("bob")  # served now that alice's connection is over
        assert bob.logged_in


@pytest.mark.parametrize("model", ["processes", "pool", "prefork"])
def test_multiprocess_models_are_refused_with_a_reason(model: str) -> None:
    with pytest.raises(
        LaunchError, match=f"chat cannot run under {model}: the chat room lives in one process"
    ) as raised:
        with running_server("chat", model, options={"transport": "tcp"}):
            pass
    assert "inter-process communication" in str(raised.value)


def test_drop_is_refused_over_tcp() -> None:
    with pytest.raises(LaunchError, match="--drop only applies to --transport udp"):
        with running_server("chat", "threads", options={"transport": "tcp", "drop": 0.1}):
            pass


# -- UDP: raw datagrams, security, liveness, losses, size ----------------------------


@pytest.fixture(scope="module")
def udp_server() -> Iterator:
    with running_server("chat", "threads", options={"rate_limit": 0}) as server:
        yield server


def test_raw_nc_style_datagrams(udp_server, raw_udp) -> None:
    nc = raw_udp(udp_server.port)
    assert nc.ask(b"login ncuser\n") == "OK LOGIN ncuser 30\n"  # what `nc -u` sends on Enter
    members = nc.recv()
    assert members.startswith("MEMBERS 1 ") and "ncuser" in members.split()
    assert nc.ask(b"PING\r\n") == "PONG\n"
    bad = {
        b"\xff\xfe\xfd": "ERR bad-utf8 ",
        b"": "ERR unknown-command ",
        b"\n": "ERR unknown-command ",
        b"HELO there": "ERR unknown-command ",
        b"SAY " + b"x" * 60000: "ERR too-long ",
        b"SAY \n": "ERR empty ",
        b"SAY tab\tok but bell \x07 not": "ERR bad-text ",
        b"LOGIN other": "ERR already-logged-in ",
    }
    for datagram, expected in bad.items():
        assert nc.ask(datagram).startswith(expected), datagram[:20]
    assert nc.ask(b"WHO").startswith("MEMBERS ")
    assert nc.ask(b"QUIT\n") == "OK QUIT\n"
    assert nc.ask(b"SAY gone").startswith("ERR not-logged-in ")


def test_strangers_and_spoofers_are_refused_and_unheard(udp_server, raw_udp, clients) -> None:
    alice = clients(udp_server.port)
    alice.login("victim")
    wait_for(alice, lambda e: e.kind == "members")
    stranger = raw_udp(udp_server.port)
    for forged in (
        b"SAY hi",
        b"MSG 1 victim I quit",
        b"ADMIN 1 server down",
        b"JOIN 9 ghost",
        b"WHO",
        b"PING",
    ):
        reply = stranger.ask(forged)
        assert reply.startswith(("ERR not-logged-in ", "ERR unknown-command ")), forged
    mallory = raw_udp(udp_server.port)
    assert mallory.ask(b"LOGIN mallory").startswith("OK LOGIN")
    assert mallory.recv().startswith("MEMBERS 1 ")
    mallory.send(b"SAY admin: the exam is cancelled")
    message = wait_for(alice, lambda e: isinstance(e, Message))[-1]
    assert (message.name, message.text) == ("mallory", "admin: the exam is cancelled")
    # The same person from another port is another address: not a member.
    other_port = raw_udp(udp_server.port)
    assert other_port.ask(b"SAY I am mallory").startswith("ERR not-logged-in")
    assert mallory.ask(b"LOGIN victim").startswith("ERR already-logged-in")
    assert [e for e in alice.drain() if isinstance(e, (Message, Admin))] == []
    assert other_port.ask(b"LOGIN ADMIN").startswith("ERR bad-name")
    assert mallory.ask(b"QUIT") == "OK QUIT\n"


def test_two_hundred_members_in_one_room(raw_udp) -> None:
    with running_server("chat", "threads") as server:
        check_two_hundred_members([raw_udp(server.port) for _ in range(200)])


def check_two_hundred_members(members: list[RawUdp]) -> None:
    selector = selectors.DefaultSelector()
    for member in members:
        selector.register(member.sock, selectors.EVENT_READ, member)

    def drain(quiet: float) -> None:
        """Read every socket until nothing arrives for ``quiet`` seconds."""
        while ready := selector.select(timeout=quiet):
            for key, _ in ready:
                key.data.sock.recv(65536)

    # One at a time, like people walking in: a burst of 200 LOGINs could overflow
    # the server's UDP receive buffer, and UDP would lose some (the lesson of 1.2.4).
    last_members_line = ""
    for index, member in enumerate(members):
        for _attempt in range(3):
            member.send(f"LOGIN m{index:03d}".encode())
            with contextlib.suppress(TimeoutError):
                assert member.recv(timeout=1.0).startswith(f"OK LOGIN m{index:03d} ")
                last_members_line = member.recv(timeout=1.0)
                break
        if index % 20 == 19:
            drain(0)  # the JOIN lines piling up in the earlier members' sockets
    first = members[0]
    assert last_members_line.split()[2:] == [f"m{i:03d}" for i in range(200)]
    drain(0.2)
    first.send(b"SAY hello two hundred")
    heard: dict[RawUdp, str] = {}
    deadline = time.monotonic() + 10
    while len(heard) < 199 and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=1):
            heard[key.data] = key.data.sock.recv(65536).decode()
    selector.close()
    assert first not in heard
    assert len(heard) == 199
    assert all(
        line.startswith("MSG ") and line.endswith(" m000 hello two hundred\n")
        for line in heard.values()
    )
    for member in members:
        member.send(b"QUIT")


def test_silent_member_times_out(raw_udp, clients) -> None:
    # 1 s, not less: alice's heartbeat thread must keep her in even on a loaded machine.
    with running_server("chat", "threads", options={"timeout": 1.0}) as server:
        alice = clients(server.port)
        alice.login("alice")
        silent = raw_udp(server.port)
        assert silent.ask(b"LOGIN silent").startswith("OK LOGIN silent 1")
        assert wait_for(alice, lambda e: isinstance(e, Left))[-1] == Left("silent", "timeout", 3)
        lines = [silent.recv(), silent.recv()]  # MEMBERS, then the farewell
        assert lines[-1].startswith("ERR timed-out you were silent for 1 s")
        assert silent.ask(b"SAY anyone?").startswith("ERR not-logged-in")
        assert alice.logged_in  # heartbeats kept alice in


def test_drop_knob_produces_counted_losses(clients) -> None:
    options = {"drop": 0.2, "drop_seed": 11, "rate_limit": 0}
    with running_server("chat", "threads", options=options) as server:
        listener = clients(server.port)
        listener.login("listener")
        talker = clients(server.port)
        talker.login("talker")
        for sent in range(150):
            talker.say(f"n{sent}")
        # Listen until sequence number 152 (MEMBERS 1, JOIN 2, then messages) has
        # arrived; one more message whenever the listener goes quiet (the last one
        # may be dropped too). Anything below 152 that never arrived was dropped.
        last_seq = 0
        while last_seq < 152 and sent < 300:
            event = listener.next_event(timeout=0.3)
            if event is None:
                sent += 1
                talker.say(f"n{sent}")
                continue
            last_seq = max(last_seq, getattr(event, "seq", 0))
        assert last_seq >= 152
        assert listener.received + listener.lost == last_seq
        assert 10 <= listener.lost <= 60  # about 20% of 150
        assert talker.lost <= 1  # talker is only sent MEMBERS


def test_losses_reach_the_lost_count_event(clients) -> None:
    with running_server(
        "chat", "threads", options={"drop": 0.5, "drop_seed": 2, "rate_limit": 0}
    ) as server:
        listener, talker = clients(server.port), clients(server.port)
        listener.login("listener")
        talker.login("talker")
        for index in range(40):
            talker.say(f"n{index}")
        losses = wait_for(listener, lambda e: isinstance(e, LostCount) and e.lost >= 5)
        assert losses[-1].lost >= 5


@pytest.mark.parametrize(
    ("transport", "model", "shown"), [("udp", "threads", "datagram"), ("tcp", "epoll", "epoll")]
)
def test_stats_report_members_and_messages(clients, transport: str, model: str, shown: str) -> None:
    """UDP: members are the active "connections"; TCP: the model counts connections, once."""
    stats = new_stats_queue()
    with running_server(
        "chat", model, options={"transport": transport}, stats_queue=stats
    ) as server:
        alice, bob = clients(server.port, transport), clients(server.port, transport)
        alice.login("alice")
        bob.login("bob")
        bob.say("counted")
        wait_for(alice, lambda e: isinstance(e, Message))
        deadline = time.monotonic() + 5
        snapshot: dict = {}
        while time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                snapshot = stats.get(timeout=1)
                if snapshot.get("requests") and snapshot.get("active") == 2:
                    break
        assert snapshot["model"] == shown
        assert (snapshot["active"], snapshot["accepted"], snapshot["requests"]) == (2, 2, 1)
        assert snapshot["bytes_in"] > 0 and snapshot["bytes_out"] > 0
    assert server.state == "stopped"
    assert "SIGKILL" not in server.exit_description


# -- the command line ---------------------------------------------------------------


@pytest.fixture
def cli_server() -> Iterator[Callable[..., tuple[subprocess.Popen, int, str]]]:
    started: list[subprocess.Popen] = []

    def start(*arguments: str) -> tuple[subprocess.Popen, int, str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "servers", "chat", "--port", "0", *arguments],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        started.append(process)
        line = process.stdout.readline()
        assert line.startswith("listening on 127.0.0.1:"), line + process.stderr.read()
        return process, int(line.split(":")[1].split()[0]), line.rstrip()

    yield start
    for process in started:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for stream in (process.stdin, process.stdout, process.stderr):
            with contextlib.suppress(OSError):
                stream.close()


def test_cli_ready_line_and_stdin_announcements(cli_server, raw_udp) -> None:
    process, port, ready = cli_server()
    assert ready == f"listening on 127.0.0.1:{port} (chat, datagram)"
    member = raw_udp(port)
    assert member.ask(b"LOGIN student").startswith("OK LOGIN student")
    assert member.recv().startswith("MEMBERS ")
    process.stdin.write("homework is due friday\n")
    process.stdin.flush()
    assert member.recv() == "ADMIN 2 homework is due friday\n"


def test_cli_tcp_transport_ready_line(cli_server) -> None:
    _, port, ready = cli_server("--transport", "tcp", "--model", "epoll")
    assert ready == f"listening on 127.0.0.1:{port} (chat, epoll)"
    with socket.create_connection(("127.0.0.1", port), timeout=3) as conn:
        conn.sendall(b"LOGIN t\n")
        assert conn.recv(100).startswith(b"OK LOGIN t ")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--drop", "1.5"], "a drop rate is a fraction in [0, 1)"),
        (["--timeout", "0"], "must be more than 0 seconds"),
        (["--transport", "tcp", "--drop", "0.1"], "--drop only applies to --transport udp"),
        (["--transport", "tcp", "--model", "prefork"], "cannot run under prefork"),
    ],
)
def test_cli_bad_options_exit_with_a_clear_message(arguments: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "servers", "chat", "--port", "0", *arguments],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"drop": "lots"}, "--drop: invalid value 'lots'"),
        ({"drop": 1.5}, "drop rate must be in [0, 1)"),
        ({"timeout": 0}, "timeout must be positive"),
        ({"rate_limit": -1}, "--rate-limit cannot be negative"),
        ({"max_members": 0}, "--max-members must be at least 1"),
        ({"transport": "sctp"}, "--transport: 'sctp' is not one of udp, tcp"),
    ],
)
def test_options_from_the_launcher_are_checked_too(overrides: dict, message: str) -> None:
    """The workbench passes options without argparse: build_application checks them itself."""
    from servers.runner import ConfigError, options_for, prepare

    with pytest.raises(ConfigError, match=re.escape(message)):
        prepare("chat", "threads", options_for("chat", overrides))


@pytest.mark.parametrize("bind_host", ["127.0.0.1", "0.0.0.0"])
def test_stop_wakes_the_udp_loop_at_once(bind_host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """stop() sends the loop an empty datagram: it returns without waiting out its poll."""
    monkeypatch.setattr(udp, "POLL_INTERVAL", 60.0)  # only the wake-up can end the wait in time
    stats = ServerStats()
    server = udp.DatagramChatServer(ChatRoom(stats=stats), stats)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((bind_host, 0))
        loop = threading.Thread(target=server.serve, args=(sock,), daemon=True)
        loop.start()
        assert server.serving.wait(5)
        server.stop()
        loop.join(timeout=5)
        assert not loop.is_alive()
        assert stats.errors == 0
        assert server.room.names() == []  # the wake-up datagram was nobody's LOGIN
