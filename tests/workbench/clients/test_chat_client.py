"""ChatClient against a real chat server on loopback: login, typed events, heartbeats, losses, failures."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from servers.chat.room import ChatRoom
from servers.chat.udp import DatagramChatServer
from servers.launcher import running_server
from servers.stats import ServerStats
from workbench.clients.chat import (
    Admin,
    ChatClient,
    ChatError,
    ChatErrorEvent,
    ChatEvent,
    Joined,
    Left,
    LostCount,
    Members,
    Message,
    NameTaken,
)

pytestmark = pytest.mark.timeout(20)


@contextlib.contextmanager
def udp_room(**room_options) -> Iterator[tuple[int, DatagramChatServer]]:
    """The UDP chat loop in a thread of this process, on a real socket (port 0)."""
    stats = ServerStats()
    server = DatagramChatServer(ChatRoom(stats=stats, **room_options), stats)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=server.serve, args=(sock,), daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1], server
    finally:
        server.stop()
        thread.join(timeout=2)
        sock.close()


@pytest.fixture
def clients() -> Iterator[Callable[..., ChatClient]]:
    """Factory of connected clients, all closed when the test ends."""
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
    client: ChatClient, predicate: Callable[[ChatEvent], bool], timeout: float = 3.0
) -> list[ChatEvent]:
    """Events up to and including the first matching one; fails on timeout."""
    seen: list[ChatEvent] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = client.next_event(timeout=max(0.0, deadline - time.monotonic()))
        if event is None:
            break
        seen.append(event)
        if predicate(event):
            return seen
    raise AssertionError(f"no matching event within {timeout} s; saw {seen}")


def poll_until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def test_login_gets_member_list_and_others_see_the_join(clients) -> None:
    with udp_room() as (port, _):
        alice = clients(port)
        alice.login("alice")
        assert alice.logged_in and alice.name == "alice"
        assert alice.server_timeout == 30.0
        assert wait_for(alice, lambda e: isinstance(e, Members))[-1] == Members(("alice",), 1)
        bob = clients(port)
        bob.login("bob")
        assert wait_for(bob, lambda e: isinstance(e, Members))[-1].names == ("alice", "bob")
        assert wait_for(alice, lambda e: isinstance(e, Joined))[-1] == Joined("bob", 2)
        assert alice.members == ["alice", "bob"]


def test_three_members_talk_hear_the_admin_and_see_leaving(clients) -> None:
    with udp_room() as (port, server):
        alice, bob, carol = clients(port), clients(port), clients(port)
        for client, name in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
            client.login(name)
        wait_for(alice, lambda e: e == Joined("carol", 3))
        bob.say("hello, 大家好")
        assert wait_for(alice, lambda e: e.kind == "message")[-1] == Message(
            "bob", "hello, 大家好", 4
        )
        assert wait_for(carol, lambda e: e.kind == "message")[-1].name == "bob"
        server.announce("lab closes at six")
        for client in (alice, bob, carol):
            assert wait_for(client, lambda e: isinstance(e, Admin))[-1].text == "lab closes at six"
        carol.leave()
        assert not carol.logged_in
        assert wait_for(alice, lambda e: isinstance(e, Left))[-1] == Left("carol", "quit", 6)
        assert wait_for(bob, lambda e: isinstance(e, Left))[-1].name == "carol"
        assert bob.members == ["alice", "bob"]
        # bob never got his own message back
        assert not [e for e in bob.drain() if isinstance(e, Message)]


def test_taken_name_raises_name_taken_with_a_clear_message(clients) -> None:
    with udp_room() as (port, _):
        clients(port).login("Alice")
        other = clients(port)
        with pytest.raises(NameTaken, match="the name 'Alice' is already in the room"):
            other.login("aLiCe")
        assert not other.logged_in
        other.login("alice2")  # the same client can try another name
        assert other.name == "alice2"


@pytest.mark.parametrize(
    ("name", "fragment"), [("admin", "reserved"), ("two words", "no spaces"), ("", "needs a name")]
)
def test_bad_names_raise_chat_error(clients, name: str, fragment: str) -> None:
    with udp_room() as (port, _):
        client = clients(port)
        with pytest.raises(ChatError, match=fragment) as raised:
            client.login(name)
        assert raised.value.code == "bad-name"
        assert not isinstance(raised.value, NameTaken)


def test_say_checks_state_and_text_before_sending(clients) -> None:
    with udp_room() as (port, _):
        client = clients(port)
        with pytest.raises(ChatError, match="log in first"):
            client.say("hi")
        client.login("alice")
        with pytest.raises(ChatError, match="at most 1000 bytes"):
            client.say("x" * 1001)
        with pytest.raises(ChatError, match="one line"):
            client.say("a\nb")
        with pytest.raises(ChatError, match="nothing to say"):
            client.say("   ")


def test_server_errors_arrive_as_error_events(clients) -> None:
    with udp_room(rate_limit=1) as (port, _):
        alice, bob = clients(port), clients(port)
        alice.login("alice")
        bob.login("bob")
        for index in range(4):  # burst of 2, then refused
            bob.say(f"spam {index}")
        error = wait_for(bob, lambda e: isinstance(e, ChatErrorEvent))[-1]
        assert error.code == "rate-limited"
        assert "at most 1 messages per second" in error.text


def test_heartbeats_keep_a_quiet_member_in_the_room(clients) -> None:
    # 1 s, not less: the heartbeat thread must keep up even on a loaded machine.
    with udp_room(timeout=1.0) as (port, server):
        alice = clients(port)
        alice.login("alice")
        assert alice.server_timeout == 1.0  # so it pings every third of a second
        silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with silent:
            silent.sendto(b"LOGIN silent", ("127.0.0.1", port))
            assert silent.recv(100).startswith(b"OK LOGIN silent")
            left = wait_for(alice, lambda e: isinstance(e, Left), timeout=3)[-1]
        assert left.name == "silent" and left.reason == "timeout"
        # silent logged in after alice and has timed out: alice was quiet longer,
        # and only her heartbeats kept her in.
        assert server.room.names() == ["alice"]
        assert alice.logged_in


def test_being_timed_out_surfaces_as_an_error_event(clients) -> None:
    with udp_room(timeout=0.3) as (port, _):
        sleepy = clients(port, ping_interval=60)  # a client whose heartbeat is too slow
        sleepy.login("sleepy")
        error = wait_for(sleepy, lambda e: isinstance(e, ChatErrorEvent))[-1]
        assert error.code == "timed-out"
        assert not sleepy.logged_in
        with pytest.raises(ChatError, match="log in first"):
            sleepy.say("hello?")
        sleepy.login("sleepy")  # and can come back
        assert sleepy.logged_in


def test_drop_knob_losses_are_counted_exactly(clients) -> None:
    with udp_room(drop_rate=0.3, seed=3, rate_limit=0) as (port, server):
        listener = clients(port)
        listener.login("listener")
        talker = clients(port)
        talker.login("talker")
        for index in range(100):
            talker.say(f"message {index}")
        poll_until(lambda: server.room.by_name["talker"].said == 100)
        server.room.drop_rate = 0.0  # a last datagram that surely arrives closes every gap
        server.announce("end")
        events = wait_for(listener, lambda e: isinstance(e, Admin))
        dropped = server.room.by_name["listener"].dropped
        assert dropped > 10
        assert listener.lost == dropped
        losses = [e for e in events if isinstance(e, LostCount)]
        assert losses and losses[-1].lost == dropped
        assert sum(e.new for e in losses) == dropped
        # MEMBERS 1, JOIN 2, MSG 3..102, ADMIN 103: each one either arrived or is counted lost.
        assert events[-1].seq == 103
        messages = [e for e in events if isinstance(e, Message)]
        assert 100 - dropped <= len(messages) < 100
        assert listener.received + listener.lost == events[-1].seq


def test_login_to_a_closed_port_fails_fast_with_a_reason(clients) -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    client = clients(port)
    started = time.monotonic()
    with pytest.raises(ChatError, match=f"nothing is listening on udp 127.0.0.1:{port}"):
        client.login("alice")
    assert time.monotonic() - started < 2


def test_login_without_an_answer_times_out_after_retries(clients) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as mute:
        mute.bind(("127.0.0.1", 0))
        client = clients(mute.getsockname()[1], login_timeout=1.2)
        with pytest.raises(ChatError, match="no answer .* after 1.2 s: is it running"):
            client.login("alice")
        mute.settimeout(0.5)
        attempts = 0
        with contextlib.suppress(TimeoutError):
            while True:
                assert mute.recv(100) == b"LOGIN alice\n"
                attempts += 1
        assert attempts >= 2  # UDP may lose a LOGIN: the client sent it again


def test_tcp_connect_refused_is_a_chat_error() -> None:
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    client = ChatClient("127.0.0.1", port, "tcp")
    with pytest.raises(ChatError, match=f"cannot connect to tcp 127.0.0.1:{port}"):
        client.connect()
    client.close()


def test_drain_returns_a_batch_and_never_blocks(clients) -> None:
    with udp_room(rate_limit=0) as (port, _):
        alice, bob = clients(port), clients(port)
        alice.login("alice")
        bob.login("bob")
        for index in range(30):
            bob.say(f"n{index}")
        poll_until(lambda: alice.events.qsize() >= 32)  # MEMBERS, JOIN, 30 MSG
        batch = alice.drain()
        assert [e.text for e in batch if isinstance(e, Message)] == [f"n{i}" for i in range(30)]
        assert alice.drain() == []
        assert alice.drain(max_events=5) == []


def test_on_events_is_called_once_per_batch_and_again_after_a_drain(clients) -> None:
    """A UI is woken by the first event after a drain, not once per datagram."""
    with udp_room(rate_limit=0) as (port, _):
        alice, bob = clients(port), clients(port)
        wakes: list[int] = []
        alice.on_events = lambda: wakes.append(alice.events.qsize())
        alice.login("alice")
        bob.login("bob")
        for index in range(10):
            bob.say(f"n{index}")
        poll_until(lambda: alice.events.qsize() >= 12)  # MEMBERS, JOIN, 10 MSG
        assert len(wakes) == 1  # twelve events, one wake-up
        assert len(alice.drain()) == 12
        assert alice.drain() == []
        bob.say("after the drain")
        poll_until(lambda: len(wakes) == 2)
        assert [e.text for e in alice.drain() if isinstance(e, Message)] == ["after the drain"]


def test_leave_then_login_again_and_close_twice(clients) -> None:
    with udp_room() as (port, server):
        alice = clients(port)
        alice.login("alice")
        alice.leave()
        alice.leave()  # quiet when already out
        assert server.room.names() == []
        alice.login("alice")
        assert server.room.names() == ["alice"]
        alice.close()
        poll_until(lambda: server.room.names() == [])  # close() leaves the room
        alice.close()
        assert not alice.connected


def test_invalid_transport_is_refused() -> None:
    with pytest.raises(ValueError, match="'udp' or 'tcp'"):
        ChatClient("127.0.0.1", 1, "sctp")


@pytest.mark.timeout(30)
def test_tcp_transport_through_the_real_server(clients) -> None:
    with running_server("chat", "threads", options={"transport": "tcp"}) as server:
        alice, bob = clients(server.port, "tcp"), clients(server.port, "tcp")
        alice.login("alice")
        with pytest.raises(NameTaken):
            bob.login("ALICE")
        bob.login("bob")
        wait_for(alice, lambda e: e == Joined("bob", 2))
        bob.say("over tcp")
        assert wait_for(alice, lambda e: e.kind == "message")[-1] == Message("bob", "over tcp", 3)
        server.send_control({"type": "announce", "text": "tcp works"})
        assert wait_for(bob, lambda e: e.kind == "admin")[-1].text == "tcp works"
        bob.close()
        assert wait_for(alice, lambda e: e.kind == "left")[-1] == Left("bob", "quit", 5)
        assert alice.lost == 0


@pytest.mark.timeout(30)
def test_tcp_server_going_away_is_an_error_event_and_say_fails_clearly(clients) -> None:
    with running_server("chat", "epoll", options={"transport": "tcp"}) as server:
        alice = clients(server.port, "tcp")
        alice.login("alice")
        port = server.port
        server.stop()
        error = wait_for(alice, lambda e: isinstance(e, ChatErrorEvent))[-1]
    assert error == ChatErrorEvent("link", f"the server at 127.0.0.1:{port} closed the connection")
    assert not alice.connected and not alice.logged_in
    with pytest.raises(ChatError, match="log in first"):
        alice.say("anyone?")
    with pytest.raises(ChatError, match="cannot connect to tcp"):
        alice.login("alice")  # tries to reconnect, and says why it cannot


def test_udp_server_going_away_is_noticed_by_the_heartbeat(clients) -> None:
    with udp_room() as (port, _):
        alice = clients(port, ping_interval=0.05)
        alice.login("alice")
    error = wait_for(alice, lambda e: isinstance(e, ChatErrorEvent))[-1]
    assert error == ChatErrorEvent("link", f"nothing is listening on udp 127.0.0.1:{port}")
    assert not alice.logged_in
