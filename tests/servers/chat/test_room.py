"""The pure chat room core: the five features, security, limits and liveness, without sockets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from servers.chat import protocol as p
from servers.chat.room import ChatRoom, Datagram
from servers.stats import ServerStats

ALICE, BOB, CAROL, STRANGER = (
    ("10.0.0.1", 1001),
    ("10.0.0.2", 1002),
    ("10.0.0.3", 1003),
    ("10.9.9.9", 9),
)


def lines_for(datagrams: list[Datagram], address) -> list[str]:
    return [payload.decode() for to, payload in datagrams if to == address]


def only_line(datagrams: list[Datagram], address) -> str:
    lines = lines_for(datagrams, address)
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture
def room() -> ChatRoom:
    return ChatRoom(timeout=30, rate_limit=5, stats=ServerStats())


def enter(room: ChatRoom, *people: tuple[str, tuple], now: float = 0.0) -> None:
    for name, address in people:
        out = room.receive(f"LOGIN {name}".encode(), address, now)
        assert lines_for(out, address)[0].startswith(f"OK LOGIN {name} "), out


def test_login_answers_ok_with_timeout_and_members(room: ChatRoom) -> None:
    enter(room, ("alice", ALICE))
    out = room.receive(b"LOGIN bob\n", BOB, 1.0)
    assert lines_for(out, BOB) == ["OK LOGIN bob 30\n", "MEMBERS 1 alice bob\n"]


def test_join_is_announced_to_everyone_else(room: ChatRoom) -> None:
    enter(room, ("alice", ALICE), ("bob", BOB))
    out = room.receive(b"LOGIN carol", CAROL, 2.0)
    assert only_line(out, ALICE) == "JOIN 3 carol\n"  # alice had MEMBERS 1, JOIN bob 2
    assert only_line(out, BOB) == "JOIN 2 carol\n"
    assert not any(line.startswith("JOIN") for line in lines_for(out, CAROL))


def test_message_reaches_every_other_member_stamped_with_name(room: ChatRoom) -> None:
    enter(room, ("alice", ALICE), ("bob", BOB), ("carol", CAROL))
    out = room.receive("SAY 你好, all".encode(), BOB, 3.0)
    assert only_line(out, ALICE) == "MSG 4 bob 你好, all\n"
    assert only_line(out, CAROL) == "MSG 2 bob 你好, all\n"
    assert lines_for(out, BOB) == []  # no echo to the speaker


def test_quit_is_announced_and_frees_the_name(room: ChatRoom) -> None:
    enter(room, ("alice", ALICE), ("bob", BOB))
    out = room.receive(b"QUIT\n", BOB, 4.0)
    assert lines_for(out, BOB) == ["OK QUIT\n"]
    assert only_line(out, ALICE) == "LEAVE 3 bob quit\n"
    assert room.names() == ["alice"]
    enter(room, ("Bob", CAROL))


def test_admin_announcement_reaches_everyone(room: ChatRoom) -> None:
    enter(room, ("alice", ALICE), ("bob", BOB))
    out = room.announce("class ends at 5")
    assert only_line(out, ALICE) == "ADMIN 3 class ends at 5\n"
    assert only_line(out, BOB) == "ADMIN 2 class ends at 5\n"
    with pytest.raises(ValueError, match="one line"):
        room.announce("two\nlines")


@pytest.mark.parametrize("taken", ["alice", "ALICE", "Alice"])
def test_names_are_unique_without_regard_to_case(room: ChatRoom, taken: str) -> None:
    enter(room, ("alice", ALICE))
    out = room.receive(f"LOGIN {taken}".encode(), BOB, 1.0)
    line = only_line(out, BOB)
    assert line.startswith("ERR name-taken ")
    assert "'alice'" in line
    assert lines_for(out, ALICE) == []  # nobody heard a join


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "LOGIN needs a name"),
        ("a" * 21, "at most 20"),
        ("bad name", "no spaces"),
        ("semi;colon", "letters, digits"),
        ("admin", "reserved"),
        ("ADMIN", "reserved"),
        ("管理员", "reserved"),
    ],
)
def test_bad_names_are_refused_with_a_reason(room: ChatRoom, name: str, fragment: str) -> None:
    line = only_line(room.receive(f"LOGIN {name}".encode(), ALICE, 0.0), ALICE)
    assert line.startswith("ERR bad-name ")
    assert fragment in line
    assert len(room) == 0


def test_unicode_names_are_welcome(room: ChatRoom) -> None:
    enter(room, ("小明", ALICE), ("émile_2", BOB))
    assert room.names() == ["小明", "émile_2"]


def test_login_retry_from_same_address_is_idempotent(room: ChatRoom) -> None:
    enter(room, ("alice", ALICE), ("bob", BOB))
    out = room.receive(b"LOGIN bob", BOB, 1.0)
    assert out == [(BOB, b"OK LOGIN bob 30\n")]  # no second JOIN for alice
    out = room.receive(b"LOGIN robert", BOB, 1.0)
    assert only_line(out, BOB).startswith("ERR already-logged-in ")


@pytest.mark.parametrize(
    "datagram",
    [b"SAY hello", b"PING", b"WHO", b"QUIT", b"SAY admin: I am the admin"],
)
def test_strangers_get_err_and_nobody_hears_them(room: ChatRoom, datagram: bytes) -> None:
    enter(room, ("alice", ALICE))
    out = room.receive(datagram, STRANGER, 1.0)
    assert out == [(STRANGER, b"ERR not-logged-in send LOGIN <name> first to enter the room\n")]


@pytest.mark.parametrize(
    "forged",
    [
        b"MSG 1 alice I owe bob money",
        b"ADMIN 9 free pizza",
        b"JOIN 3 mallory",
        b"OK LOGIN alice 30",
    ],
)
def test_server_lines_sent_by_a_client_are_refused(room: ChatRoom, forged: bytes) -> None:
    enter(room, ("alice", ALICE), ("bob", BOB))
    out = room.receive(forged, BOB, 1.0)
    assert only_line(out, BOB).startswith("ERR unknown-command ")
    assert lines_for(out, ALICE) == []


def test_speaking_as_someone_else_is_stamped_with_the_real_name(room: ChatRoom) -> None:
    enter(room, ("alice", ALICE), ("bob", BOB))
    out = room.receive(b"SAY admin: everyone must leave", BOB, 1.0)
    assert only_line(out, ALICE) == "MSG 3 bob admin: everyone must leave\n"


def test_text_limits(room: ChatRoom) -> None:
    enter(room, ("alice", ALICE), ("bob", BOB))
    cases = {
        b"SAY " + b"x" * 1000: "MSG",
        b"SAY " + b"x" * 1001: "ERR too-long ",
        b"SAY " + "字".encode() * 334: "ERR too-long ",  # 1002 bytes, 334 characters
        b"SAY " + b"x" * 5000: "ERR too-long ",
        b"SAY \xff\xfe oops": "ERR bad-utf8 ",
        b"SAY   ": "ERR empty ",
        b"SAY": "ERR empty ",
        b"SAY one\ntwo": "ERR bad-text ",
        b"SAY bell\x07": "ERR bad-text ",
        b"HELLO": "ERR unknown-command ",
        b"": "ERR unknown-command ",
    }
    for now, (datagram, expected) in enumerate(cases.items()):
        out = room.receive(datagram, BOB, float(now))
        to_alice = lines_for(out, ALICE)
        if expected == "MSG":
            assert to_alice and to_alice[0].startswith("MSG "), datagram[:20]
        else:
            assert only_line(out, BOB).startswith(expected), datagram[:20]
            assert to_alice == [], datagram[:20]


def test_tab_and_trailing_crlf_are_fine(room: ChatRoom) -> None:
    enter(room, ("alice", ALICE), ("bob", BOB))
    out = room.receive(b"say a\tb\r\n", BOB, 1.0)  # commands are case-insensitive; nc adds \n
    assert only_line(out, ALICE) == "MSG 3 bob a\tb\n"


def test_rate_limit_allows_a_burst_then_refuses_then_recovers() -> None:
    room = ChatRoom(rate_limit=5)
    enter(room, ("alice", ALICE), ("bob", BOB))

    def say(now: float) -> str:
        out = room.receive(b"SAY hi", BOB, now)
        return "sent" if lines_for(out, ALICE) else only_line(out, BOB)

    results = [say(10.0) for _ in range(12)]
    assert results[:10] == ["sent"] * 10  # a burst of 2 x 5
    assert results[10].startswith("ERR rate-limited slow down: at most 5 messages per second")
    # 0.25 s later one token (of 1.25) has come back, and only one.
    assert say(10.25) == "sent"
    assert say(10.25).startswith("ERR rate-limited")


def test_rate_limit_zero_means_unlimited() -> None:
    room = ChatRoom(rate_limit=0)
    enter(room, ("alice", ALICE), ("bob", BOB))
    for _ in range(500):
        assert lines_for(room.receive(b"SAY hi", BOB, 1.0), BOB) == []


def test_silent_member_times_out_and_others_hear_it() -> None:
    room = ChatRoom(timeout=10)
    enter(room, ("alice", ALICE), ("bob", BOB), now=0.0)
    room.receive(b"PING", ALICE, 6.0)
    assert room.next_deadline() == 10.0  # bob, silent since 0
    assert room.expire(9.9) == []
    out = room.expire(10.0)
    assert only_line(out, BOB).startswith("ERR timed-out you were silent for 10 s")
    assert only_line(out, ALICE) == "LEAVE 3 bob timeout\n"
    assert room.names() == ["alice"]
    assert room.next_deadline() == 16.0
    assert room.receive(b"SAY still here?", BOB, 11.0)[0][1].startswith(b"ERR not-logged-in")


def test_any_message_counts_as_alive() -> None:
    room = ChatRoom(timeout=10)
    enter(room, ("alice", ALICE), ("bob", BOB), now=0.0)
    room.receive(b"SAY hi", BOB, 9.0)
    room.receive(b"WHO", ALICE, 9.5)
    assert room.expire(18.0) == []
    assert room.names() == ["alice", "bob"]


def test_ping_gets_pong_without_a_sequence_number(room: ChatRoom) -> None:
    enter(room, ("alice", ALICE))
    assert room.receive(b"PING\n", ALICE, 1.0) == [(ALICE, b"PONG\n")]


def test_who_lists_members_in_order_of_arrival(room: ChatRoom) -> None:
    enter(room, ("alice", ALICE), ("bob", BOB))
    assert lines_for(room.receive(b"WHO", ALICE, 1.0), ALICE) == ["MEMBERS 3 alice bob\n"]


def test_disconnect_is_announced(room: ChatRoom) -> None:
    enter(room, ("alice", ALICE), ("bob", BOB))
    assert only_line(room.disconnect(BOB), ALICE) == "LEAVE 3 bob disconnected\n"
    assert room.disconnect(BOB) == []


def test_room_full_is_refused_and_counted() -> None:
    stats = ServerStats()
    room = ChatRoom(max_members=2, stats=stats)
    enter(room, ("alice", ALICE), ("bob", BOB))
    assert (
        only_line(room.receive(b"LOGIN carol", CAROL, 0.0), CAROL)
        == "ERR room-full the room is full (2 members)\n"
    )
    assert stats.refused == 1


def test_drop_knob_skips_sequence_numbers_and_counts_the_drops() -> None:
    room = ChatRoom(rate_limit=0, drop_rate=0.25, seed=7)
    enter(room, ("alice", ALICE), ("bob", BOB))
    received = []
    for index in range(400):
        received += [
            int(line.split()[1])
            for line in lines_for(room.receive(f"SAY {index}".encode(), BOB, 1.0), ALICE)
        ]
    # alice's seqs: MEMBERS 1, JOIN 2, then MSG 3..402; the missing ones are the drops.
    missing = set(range(3, 403)) - set(received)
    assert received == sorted(received)
    assert len(missing) + len([s for s in received if s >= 3]) == 400
    assert 60 <= len(missing) <= 140  # about a quarter
    assert room.dropped >= len(missing)


def test_replies_are_never_dropped() -> None:
    room = ChatRoom(drop_rate=0.9, seed=1)
    for index in range(50):
        out = room.receive(f"LOGIN m{index}".encode(), ("10.0.0.1", index), 0.0)
        assert out[0][1].startswith(b"OK LOGIN")
    assert room.receive(b"PING", ("10.0.0.1", 3), 0.0) == [(("10.0.0.1", 3), b"PONG\n")]


def test_invalid_knobs_are_refused() -> None:
    with pytest.raises(ValueError, match="drop rate"):
        ChatRoom(drop_rate=1.0)
    with pytest.raises(ValueError, match="timeout"):
        ChatRoom(timeout=0)


def test_two_hundred_members_each_hear_one_message() -> None:
    room = ChatRoom(rate_limit=0)
    addresses = [("10.1.0.1", 2000 + index) for index in range(200)]
    for index, address in enumerate(addresses):
        room.receive(f"LOGIN m{index}".encode(), address, 0.0)
    out = room.receive(b"SAY hello 200", addresses[0], 1.0)
    assert sorted(to for to, _ in out) == sorted(addresses[1:])
    assert all(payload.endswith(b" m0 hello 200\n") for _, payload in out)


def test_stats_count_members_messages_and_errors() -> None:
    stats = ServerStats()
    room = ChatRoom(stats=stats)
    enter(room, ("alice", ALICE), ("bob", BOB))
    room.receive(b"SAY hi", ALICE, 1.0)
    room.receive(b"SAY hi", STRANGER, 1.0)
    room.receive(b"QUIT", BOB, 1.0)
    assert (stats.accepted, stats.active, stats.requests, stats.errors) == (2, 1, 1, 1)
    kinds = [event[1] for event in stats._events]
    assert kinds.count("join") == 2 and "leave" in kinds


def test_join_events_say_from_which_address() -> None:
    # The live panel lists who is in the room from where (workbench/connected_clients.py).
    stats = ServerStats()
    room = ChatRoom(stats=stats)
    enter(room, ("alice", ("192.168.1.21", 5001)))
    joins = [event[2] for event in stats._events if event[1] == "join"]
    assert joins == ["alice from 192.168.1.21:5001"]


def test_parse_server_lines_round_trip() -> None:
    assert p.parse_server_line("MSG 4 bob hi there") == p.ServerLine(
        "MSG", 4, name="bob", text="hi there"
    )
    assert p.parse_server_line("LEAVE 2 bob timeout") == p.ServerLine(
        "LEAVE", 2, name="bob", text="timeout"
    )
    assert p.parse_server_line("MEMBERS 1 a b") == p.ServerLine("MEMBERS", 1, names=("a", "b"))
    assert p.parse_server_line("OK LOGIN bob 0.5").timeout == 0.5
    assert p.parse_server_line("ERR name-taken taken!") == p.ServerLine(
        "ERR", code="name-taken", text="taken!"
    )
    with pytest.raises(p.ProtocolError):
        p.parse_server_line("MSG x bob hi")
    with pytest.raises(p.ProtocolError):
        p.parse_server_line("HELLO")


def test_who_is_rate_limited_like_say() -> None:
    room = ChatRoom(rate_limit=1)
    enter(room, ("alice", ALICE))
    answers = [only_line(room.receive(b"WHO", ALICE, 5.0), ALICE) for _ in range(3)]
    assert [answer.split()[0] for answer in answers] == ["MEMBERS", "MEMBERS", "ERR"]
    assert answers[2].startswith("ERR rate-limited ")


def test_tcp_rooms_leave_connection_counting_to_the_model() -> None:
    stats = ServerStats()
    room = ChatRoom(stats=stats, count_connections=False)
    enter(room, ("alice", ALICE))
    room.receive(b"QUIT", ALICE, 1.0)
    assert (stats.accepted, stats.active) == (0, 0)


# -- properties: any sequence of messages keeps the room consistent ------------------

ADDRESSES = [("10.2.0.1", port) for port in range(4)]
COMMANDS = st.one_of(
    st.sampled_from(["alice", "Alice", "bob", "carol", "admin", "bad name", ""]).map(
        lambda name: f"LOGIN {name}".encode()
    ),
    st.text(max_size=8).map(lambda text: f"SAY {text}".encode()),
    st.sampled_from([b"QUIT", b"WHO", b"PING", b"MSG 1 alice forged", b"\xff"]),
)
STEPS = st.lists(
    st.tuples(st.sampled_from(ADDRESSES), COMMANDS, st.floats(min_value=0, max_value=4)),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(steps=STEPS)
def test_any_sequence_keeps_names_unique_stamps_true_and_seqs_gapless(steps) -> None:
    room = ChatRoom(timeout=5, rate_limit=2)
    now = 0.0
    last_seq: dict = {}
    for address, command, elapsed in steps:
        now += elapsed
        names_before = {member.address: member.name for member in room.members.values()}
        out = room.receive(command, address, now) + room.expire(now)
        keys = [p.name_key(member.name) for member in room.members.values()]
        assert len(set(keys)) == len(keys) == len(room.by_name)
        for to, payload in out:
            line = payload.decode()
            kind, _, rest = line.partition(" ")
            if kind == "OK" and rest.startswith("LOGIN") and to not in names_before:
                last_seq[to] = 0  # a new membership counts from 1 again (not a repeated LOGIN)
            if kind in ("JOIN", "LEAVE", "MSG", "ADMIN", "MEMBERS"):
                seq = int(rest.split(" ", 1)[0])
                assert seq == last_seq.get(to, 0) + 1, (to, line)  # no drop knob: no gaps
                last_seq[to] = seq
                assert to in names_before or to in room.members  # only members hear the room
            if kind == "MSG":
                speaker = line.split(" ")[2]
                assert names_before.get(address) == speaker  # stamped from the table
                assert to != address
