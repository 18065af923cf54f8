"""The TCP line handler without sockets: framing (粘包), pushes to other members, timers, disconnects."""

from __future__ import annotations

import pytest

from servers.chat.room import ChatRoom
from servers.chat.tcp import ChatHub
from servers.contracts import Peer
from servers.stats import ServerStats


class Connection:
    """A fake connection: what the handler returned plus what other handlers pushed to it."""

    def __init__(self, hub: ChatHub, port: int) -> None:
        self.received: list[bytes] = []
        self.handler = hub.new_handler(Peer(("127.0.0.1", port), self.received.extend))

    def send(self, data: bytes) -> None:
        self.received.extend(self.handler.feed(data))

    def lines(self) -> list[str]:
        text = b"".join(self.received).decode()
        self.received.clear()
        return text.splitlines()


@pytest.fixture
def hub() -> ChatHub:
    return ChatHub(ChatRoom(timeout=10, rate_limit=0, stats=ServerStats()), ServerStats())


def test_several_messages_in_one_segment_are_split_into_lines(hub: ChatHub) -> None:
    alice, bob = Connection(hub, 1), Connection(hub, 2)
    alice.send(b"LOGIN alice\n")
    alice.lines()
    bob.send(b"LOGIN bob\nSAY one\nSAY two\r\nSAY three\n")  # 粘包: one recv, four messages
    assert bob.lines() == ["OK LOGIN bob 10", "MEMBERS 1 alice bob"]
    assert alice.lines() == ["JOIN 2 bob", "MSG 3 bob one", "MSG 4 bob two", "MSG 5 bob three"]


def test_a_message_split_across_segments_waits_for_its_newline(hub: ChatHub) -> None:
    alice, bob = Connection(hub, 1), Connection(hub, 2)
    alice.send(b"LOGIN alice\n")
    bob.send(b"LOGIN bob\n")
    alice.lines()
    for byte in "SAY 你好\n".encode():  # a UTF-8 character cut in the middle too
        bob.send(bytes([byte]))
        if byte != ord("\n"):
            assert alice.lines() == []
    assert alice.lines() == ["MSG 3 bob 你好"]


def test_an_endless_line_is_refused_once_and_skipped_to_the_next_newline(hub: ChatHub) -> None:
    alice, bob = Connection(hub, 1), Connection(hub, 2)
    alice.send(b"LOGIN alice\n")
    bob.send(b"LOGIN bob\n")
    alice.lines(), bob.lines()
    bob.send(b"SAY " + b"x" * 3000)
    bob.send(b"y" * 3000)
    bob.send(b"z\nSAY back to normal\n")
    [error] = bob.lines()
    assert error.startswith("ERR too-long lines are at most 1000 bytes")
    assert alice.lines() == ["MSG 3 bob back to normal"]


def test_closing_without_quit_tells_the_others(hub: ChatHub) -> None:
    alice, bob = Connection(hub, 1), Connection(hub, 2)
    alice.send(b"LOGIN alice\n")
    bob.send(b"LOGIN bob\n")
    alice.lines()
    bob.handler.close()
    assert alice.lines() == ["LEAVE 3 bob disconnected"]
    assert ("127.0.0.1", 2) not in hub.pushes


def test_a_silent_member_is_timed_out_by_its_own_timer(hub: ChatHub) -> None:
    alice, bob = Connection(hub, 1), Connection(hub, 2)
    alice.send(b"LOGIN alice\n")
    bob.send(b"LOGIN bob\n")
    alice.lines(), bob.lines()
    deadline = bob.handler.deadline()
    assert deadline is not None
    assert bob.handler.tick(deadline - 1) == []
    bob.received.extend(bob.handler.tick(deadline))
    assert bob.handler.should_close
    assert bob.lines()[0].startswith("ERR timed-out you were silent for 10 s")
    assert alice.lines() == ["LEAVE 3 bob timeout"]


def test_an_idle_connection_that_never_logs_in_is_closed(hub: ChatHub) -> None:
    idle = Connection(hub, 3)
    deadline = idle.handler.deadline()
    assert deadline is not None
    assert idle.handler.tick(deadline - 0.5) == []
    idle.received.extend(idle.handler.tick(deadline))
    assert idle.handler.should_close
    assert idle.lines() == ["ERR timed-out connection idle for 10 s without LOGIN: closing"]


def test_announcements_are_pushed_to_every_connection(hub: ChatHub) -> None:
    alice, bob = Connection(hub, 1), Connection(hub, 2)
    alice.send(b"LOGIN alice\n")
    bob.send(b"LOGIN bob\n")
    alice.lines(), bob.lines()
    hub.announce("hello from the server")
    assert alice.lines() == ["ADMIN 3 hello from the server"]
    assert bob.lines() == ["ADMIN 2 hello from the server"]
