"""Pilot tests of the Chat tab with several participants on our real UDP chat server, plus its snapshot."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Input, Label, Select

from servers.launcher import ServerProcess, running_server
from tests.helpers.pilot import TabHarness, run, tab_alone, wait_until
from tests.helpers.servers import FakeServerDirectory, InProcessServer, in_process_server
from workbench.clients.chat import ChatClient, Members
from workbench.messages import EndpointChanged
from workbench.tabs.chat import NO_SERVER_TEXT, ChatTab
from workbench.widgets.chat_log import ChatLine
from workbench.widgets.chat_participant import ChatParticipantPane

pytestmark = pytest.mark.timeout(60)


def log_of(pane: ChatParticipantPane) -> list[ChatLine]:
    return list(pane.log_widget.history)


def has_line(pane: ChatParticipantPane, kind: str, text: str, name: str = "") -> bool:
    return any(
        line.kind == kind and line.text == text and line.name == name for line in log_of(pane)
    )


def status_of(pane: ChatParticipantPane) -> str:
    return str(pane.query_one(".chat-status", Label).render())


async def join(pilot: Pilot[Any], pane: ChatParticipantPane, name: str) -> None:
    pane.name_input.value = name
    pane.name_input.focus()
    await pilot.press("enter")
    await wait_until(pilot, lambda: pane.joined_name == name, f"{name} joins")


async def say(pilot: Pilot[Any], pane: ChatParticipantPane, text: str) -> None:
    pane.message_input.focus()
    pane.message_input.value = text
    await pilot.press("enter")


def test_two_members_join_talk_and_leave(chat_server: InProcessServer) -> None:
    async def scenario() -> None:
        tab = ChatTab(endpoint=("127.0.0.1", chat_server.port))
        async with tab_alone(tab, size=(140, 36)) as pilot:
            alice, bob = tab.panes
            await join(pilot, alice, "alice")
            await join(pilot, bob, "bob")
            await wait_until(
                pilot, lambda: has_line(alice, "joined", "bob joined"), "alice sees bob join"
            )
            await wait_until(
                pilot, lambda: sorted(alice.members) == ["alice", "bob"], "alice's member list"
            )
            await wait_until(
                pilot, lambda: sorted(bob.members) == ["alice", "bob"], "bob's member list"
            )
            assert "bob (you)" in str(bob.query_one(".chat-members").render())

            await say(pilot, bob, "hello alice, 你好")
            await wait_until(
                pilot,
                lambda: has_line(alice, "message", "hello alice, 你好", "bob"),
                "alice gets the message",
            )
            assert has_line(bob, "own", "hello alice, 你好", "bob")  # shown locally, not echoed
            assert bob.message_input.value == ""

            bob.message_input.focus()
            await pilot.press("ctrl+l")
            await wait_until(
                pilot, lambda: has_line(alice, "left", "bob left"), "alice sees bob leave"
            )
            await wait_until(
                pilot, lambda: alice.members == ["alice"], "bob gone from alice's list"
            )
            assert not bob.joined
            assert bob.message_input.disabled
            assert "lost 0 of" in status_of(alice)

    run(scenario)


def test_duplicate_name_is_refused_and_the_name_kept(chat_server: InProcessServer) -> None:
    async def scenario() -> None:
        tab = ChatTab(endpoint=("127.0.0.1", chat_server.port))
        async with tab_alone(tab, size=(140, 36)) as pilot:
            alice, impostor = tab.panes
            await join(pilot, alice, "alice")
            impostor.name_input.value = "ALICE"
            impostor.name_input.focus()
            await pilot.press("enter")
            await wait_until(
                pilot, lambda: "already in the room" in status_of(impostor), "refusal shown"
            )
            assert not impostor.joined
            assert impostor.name_input.value == "ALICE"  # the typed text is not lost
            assert any(
                line.kind == "error" and "already in the room" in line.text
                for line in log_of(impostor)
            )
            assert any(note.title == "Name taken" for note in pilot.app._notifications)
            # Editing the name and pressing Enter again works.
            impostor.name_input.value = "alice2"
            await pilot.press("enter")
            await wait_until(
                pilot, lambda: impostor.joined_name == "alice2", "second attempt joins"
            )

    run(scenario)


def test_admin_announcement_reaches_every_pane(chat_server: InProcessServer) -> None:
    async def scenario() -> None:
        tab = ChatTab(endpoint=("127.0.0.1", chat_server.port))
        async with tab_alone(tab, size=(140, 36)) as pilot:
            alice, bob = tab.panes
            await join(pilot, alice, "alice")
            await join(pilot, bob, "bob")
            chat_server.send_control({"type": "announce", "text": "exam on Friday"})
            for pane in (alice, bob):
                await wait_until(
                    pilot, lambda p=pane: has_line(p, "admin", "exam on Friday"), "announcement"
                )

    run(scenario)


def test_too_long_message_keeps_the_text(chat_server: InProcessServer) -> None:
    async def scenario() -> None:
        tab = ChatTab(endpoint=("127.0.0.1", chat_server.port))
        async with tab_alone(tab, size=(140, 36)) as pilot:
            alice = tab.panes[0]
            await join(pilot, alice, "alice")
            essay = "x" * 1500
            await say(pilot, alice, essay)
            await wait_until(
                pilot, lambda: "at most 1000 bytes" in status_of(alice), "refusal shown"
            )
            assert alice.message_input.value == essay
            assert not any(line.kind == "own" for line in log_of(alice))
            # A member list arriving later (as it does after a join) leaves the error readable.
            alice.apply_events([Members(("alice", "bob"), seq=99)])
            assert "at most 1000 bytes" in status_of(alice)

    run(scenario)


def test_server_refusal_gives_the_text_back() -> None:
    """A rate-limited message is refused by the server after it left the box: the text comes back."""

    async def scenario(proc: InProcessServer) -> None:
        tab = ChatTab(endpoint=("127.0.0.1", proc.port))
        async with tab_alone(tab, size=(140, 36)) as pilot:
            alice = tab.panes[0]
            await join(pilot, alice, "alice")
            await say(pilot, alice, "first")
            await wait_until(pilot, lambda: has_line(alice, "own", "first", "alice"), "first sent")
            await say(pilot, alice, "second, too soon")
            await wait_until(pilot, lambda: "slow down" in status_of(alice), "rate limit shown")
            await wait_until(
                pilot, lambda: alice.message_input.value == "second, too soon", "text restored"
            )

    # One message per 5 s, a bucket of one: the second message is always refused.
    with in_process_server("chat", options={"rate_limit": 0.2}) as proc:
        run(lambda: scenario(proc))


@pytest.mark.parametrize("cap", [None, 8], ids=["default-cap", "cap-8"])
def test_events_are_applied_in_batches(cap: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A burst of datagrams reaches the log in a few drains, not one UI update per datagram.

    With a small cap per drain, what is left over comes in later batches on its own:
    no further datagram is needed to wake the pane.
    """
    from workbench.widgets import chat_participant

    if cap is not None:
        monkeypatch.setattr(chat_participant, "MAX_EVENTS_PER_DRAIN", cap)

    async def scenario(proc: InProcessServer) -> None:
        tab = ChatTab(endpoint=("127.0.0.1", proc.port), participants=1)
        async with tab_alone(tab, size=(140, 36)) as pilot:
            pane = tab.panes[0]
            await join(pilot, pane, "listener")
            batches: list[int] = []
            original = pane.apply_events

            def counting(events: list[Any]) -> None:
                batches.append(len(events))
                original(events)

            pane.apply_events = counting  # type: ignore[method-assign]
            burst = 100
            with ChatClient("127.0.0.1", proc.port) as talker:
                talker.login("talker")
                for number in range(burst):
                    talker.say(f"line {number}")
                await wait_until(
                    pilot,
                    lambda: sum(line.kind == "message" for line in log_of(pane)) == burst,
                    "every message shown",
                )
            if cap is None:
                assert len(batches) <= 10, batches
                assert max(batches) > 1
            else:
                assert max(batches) == cap, batches

    with in_process_server("chat", options={"rate_limit": 0}) as proc:
        run(lambda: scenario(proc))


def test_the_same_room_over_tcp() -> None:
    """The transport switch: the same protocol, one line per message over TCP (epoll server)."""

    async def scenario(proc: ServerProcess) -> None:
        tab = ChatTab(endpoint=("127.0.0.1", proc.port))
        async with tab_alone(tab, size=(140, 36)) as pilot:
            tab.query_one("#chat-transport", Select).value = "tcp"
            alice, bob = tab.panes
            await join(pilot, alice, "alice")
            await join(pilot, bob, "bob")
            assert alice.client is not None and alice.client.transport == "tcp"
            await say(pilot, alice, "over a stream")
            await wait_until(
                pilot, lambda: has_line(bob, "message", "over a stream", "alice"), "delivered"
            )
            assert " line" in status_of(bob) and "datagram" not in status_of(bob)

    with running_server("chat", "epoll", options={"transport": "tcp"}) as proc:
        run(lambda: scenario(proc))


def test_lost_datagrams_are_counted() -> None:
    """With the server's --drop knob on, the pane counts the gaps in the sequence numbers."""

    async def scenario(proc: InProcessServer) -> None:
        tab = ChatTab(endpoint=("127.0.0.1", proc.port), participants=1)
        async with tab_alone(tab, size=(140, 36)) as pilot:
            pane = tab.panes[0]
            await join(pilot, pane, "listener")
            with ChatClient("127.0.0.1", proc.port) as talker:
                talker.login("talker")
                for number in range(60):
                    talker.say(f"line {number}")
                await wait_until(
                    pilot, lambda: pane.client is not None and pane.client.lost > 0, "a loss"
                )
                await wait_until(
                    pilot, lambda: f"lost {pane.client.lost} of" in status_of(pane), "shown"
                )
            shown = sum(line.kind == "message" for line in log_of(pane))
            assert 0 < shown < 60

    options = {"drop": 0.3, "drop_seed": 7, "rate_limit": 0}
    with in_process_server("chat", options=options) as proc:
        run(lambda: scenario(proc))


def test_server_going_away_is_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    """The chat server stops: the next heartbeat fails and the pane says it is out of the room."""
    from workbench.widgets import chat_participant

    # Four tries instead of sixteen: the pane still retries, fails every time and says so.
    monkeypatch.setattr(chat_participant, "REJOIN_SECONDS", 2.0)

    async def scenario(proc: InProcessServer) -> None:
        tab = ChatTab(endpoint=("127.0.0.1", proc.port), participants=1)
        async with tab_alone(tab, size=(140, 36)) as pilot:
            pane = tab.panes[0]
            await join(pilot, pane, "alice")
            pane.message_input.value = "unsent draft"
            proc.stop()
            await wait_until(pilot, lambda: not pane.joined, "pane notices the server is gone")
            # It tries to rejoin for a few seconds (a restart is back by then), then says so.
            await wait_until(
                pilot, lambda: "Out of the room" in status_of(pane), "gave up", timeout=15
            )
            assert "rejoining failed" in status_of(pane)
            assert pane.message_input.value == "unsent draft"  # the draft is kept
            assert pane.name_input.value == "alice"
            assert pane.client is None  # the next Join starts on a fresh socket

    # A short room timeout makes the client ping every half second.
    with in_process_server("chat", options={"timeout": 1.5}) as proc:
        run(lambda: scenario(proc))


def test_add_and_remove_participants(chat_server: InProcessServer) -> None:
    async def scenario() -> None:
        tab = ChatTab(endpoint=("127.0.0.1", chat_server.port))
        async with tab_alone(tab, size=(160, 36)) as pilot:
            assert len(tab.panes) == 2
            await pilot.press("ctrl+n")
            await pilot.press("ctrl+n")
            await pilot.pause()
            assert [pane.name_input.value for pane in tab.panes] == [
                "alice",
                "bob",
                "carol",
                "dave",
            ]
            await pilot.press("ctrl+n")
            await pilot.pause()
            assert len(tab.panes) == 4  # four at most
            carol = tab.panes[2]
            await join(pilot, carol, "carol")
            await join(pilot, tab.panes[0], "alice")
            await wait_until(
                pilot, lambda: has_line(carol, "joined", "alice joined"), "carol sees alice"
            )
            # Removing a joined participant makes it leave the room.
            tab.panes[0].message_input.focus()
            await pilot.press("ctrl+r")
            await wait_until(
                pilot, lambda: has_line(carol, "left", "alice left"), "carol sees alice leave"
            )
            assert len(tab.panes) == 3

    run(scenario)


def test_no_server_state() -> None:
    async def scenario() -> None:
        tab = ChatTab()
        async with tab_alone(tab, server_manager=FakeServerDirectory({}), size=(140, 36)) as pilot:
            await pilot.pause()
            assert NO_SERVER_TEXT in str(tab.query_one("#chat-status", Label).render())
            pane = tab.panes[0]
            pane.name_input.focus()
            await pilot.press("enter")
            await pilot.pause()
            assert not pane.joined
            assert "No server" in status_of(pane)

    run(scenario)


def test_endpoint_comes_from_the_server_manager(chat_server: InProcessServer) -> None:
    """The app starts its servers after the tabs mount, and may move them: the address follows."""

    async def scenario() -> None:
        tab = ChatTab()
        manager = FakeServerDirectory({})
        async with tab_alone(tab, server_manager=manager, size=(140, 36)) as pilot:
            await pilot.pause()
            port_box = tab.query_one("#chat-port", Input)
            assert port_box.value == ""
            manager.move(tab, "chat", ("127.0.0.1", 9))
            await wait_until(pilot, lambda: port_box.value == "9", "address filled in")
            manager.move(tab, "chat", ("127.0.0.1", chat_server.port))
            await wait_until(
                pilot, lambda: port_box.value == str(chat_server.port), "address follows"
            )
            await join(pilot, tab.panes[0], "alice")
            port_box.value = "7"  # typed by the user: the manager no longer overrides it
            manager.move(tab, "chat", ("127.0.0.1", 8))
            await pilot.pause()
            assert port_box.value == "7"

    run(scenario)


def test_nothing_listening_is_a_clear_error() -> None:
    async def scenario() -> None:
        import socket

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            free_port = probe.getsockname()[1]
        tab = ChatTab(endpoint=("127.0.0.1", free_port), participants=1)
        async with tab_alone(tab, size=(140, 36)) as pilot:
            pane = tab.panes[0]
            pane.name_input.focus()
            await pilot.press("enter")
            await wait_until(
                pilot,
                lambda: any(n.title == "Cannot join" for n in pilot.app._notifications),
                "error",
            )
            assert not pane.joined
            assert pane.name_input.value == "alice"

    run(scenario)


def test_snapshot_two_members_talking(
    snap_compare: Any, chat_server: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workbench.widgets import chat_log

    monkeypatch.setattr(chat_log, "clock_text", lambda: "10:42:07")  # the picture must not age
    app = TabHarness(ChatTab(endpoint=("127.0.0.1", chat_server.port)))

    async def conversation(pilot: Pilot[Any]) -> None:
        alice, bob = app.tab.panes
        await join(pilot, alice, "alice")
        await join(pilot, bob, "bob")
        await wait_until(pilot, lambda: has_line(alice, "joined", "bob joined"), "join seen")
        await say(pilot, alice, "hi bob, ready for the demo?")
        await wait_until(
            pilot, lambda: has_line(bob, "message", "hi bob, ready for the demo?", "alice"), "msg"
        )
        chat_server.send_control({"type": "announce", "text": "the server restarts at noon"})
        for pane in (alice, bob):
            await wait_until(
                pilot, lambda p=pane: has_line(p, "admin", "the server restarts at noon"), "admin"
            )
            await wait_until(pilot, lambda p=pane: len(p.members) == 2, "members")
        await say(pilot, bob, "yes!")
        await wait_until(pilot, lambda: has_line(alice, "message", "yes!", "bob"), "reply")
        # The port is random per run: show a fixed one (the members are already in the room).
        app.tab.query_one("#chat-port", Input).value = "9000"
        await pilot.pause()
        # Editing the port makes the bar say the members are still in the old (random) room: the
        # picture shows the bar as it reads when they are in the room it names.
        app.tab._set_status(
            "Room at udp 127.0.0.1:9000 — type a name in a pane and press Enter to join"
        )
        bob.message_input.focus()
        for box in app.query(Input):
            box.cursor_blink = False  # a blinking cursor would make the picture depend on timing
        await pilot.pause()

    assert snap_compare(app, terminal_size=(130, 32), run_before=conversation)


def test_log_restyles_when_the_theme_changes() -> None:
    """Line colours come from the theme, so switching theme (e.g. to high contrast) recolours old lines."""
    from workbench.widgets.chat_log import ChatLog

    class LogApp(App[None]):
        def compose(self) -> ComposeResult:
            yield ChatLog()

    def first_line_colour(log: ChatLog) -> Any:
        return next(segment.style.color for segment in log.lines[0] if "bob" in segment.text)

    async def scenario() -> None:
        app = LogApp()
        async with app.run_test(size=(60, 10)) as pilot:
            app.theme = "textual-dark"
            log = app.query_one(ChatLog)
            log.add_lines([ChatLine("joined", "bob joined")])
            await pilot.pause()
            before = first_line_colour(log)
            assert before == log.get_component_rich_style("chat-log--joined").color
            app.theme = "textual-light"
            await wait_until(pilot, lambda: first_line_colour(log) != before, "restyled line")
            assert first_line_colour(log) == log.get_component_rich_style("chat-log--joined").color

    run(scenario)


class LaunchedServerManager(FakeServerDirectory):
    """The app's server manager as the Chat tab sees it, over one real server process.

    Stopping and restarting it tells the tab as the workbench app does (EndpointChanged).
    """

    def __init__(self, proc: ServerProcess, tab: Widget) -> None:
        super().__init__()
        self.proc = proc
        self.tab = tab

    def endpoint(self, name: str) -> Any:
        running = self.proc.state == "running"
        return ("127.0.0.1", self.proc.port) if name == "chat" and running else None

    def default_server_id(self, protocol: str) -> str | None:
        return "chat" if protocol == "chat" else None

    def stop(self) -> None:
        self.proc.stop()
        self.tab.post_message(EndpointChanged("chat", None))

    def restart_on_the_same_port(self) -> None:
        """What the Servers tab's Restart does: a new process on the old port, with an empty room."""
        port = self.proc.port
        self.stop()
        self.proc.spec.port = port
        self.proc.start()
        self.tab.post_message(EndpointChanged("chat", self.endpoint("chat")))

    def start_on_a_new_port(self) -> None:
        """The second half of a restart that lands elsewhere: the app says the new address."""
        self.proc.spec.port = 0
        self.proc.start()
        self.tab.post_message(EndpointChanged("chat", self.endpoint("chat")))


async def alice_and_bob_in_the_room(
    pilot: Pilot[Any], tab: ChatTab
) -> tuple[ChatParticipantPane, ChatParticipantPane]:
    """Both panes joined to the room the tab was pointed at, and each seeing the other."""
    await wait_until(pilot, lambda: tab.query_one("#chat-port", Input).value != "", "port")
    alice, bob = tab.panes
    await join(pilot, alice, "alice")
    await join(pilot, bob, "bob")
    await wait_until(pilot, lambda: "2 members" in status_of(alice), "both in")
    return alice, bob


def test_members_rejoining_follow_the_room_to_its_new_port() -> None:
    """Gone first (they start rejoining at the old address), then back elsewhere: they go there."""

    async def scenario(proc: ServerProcess) -> None:
        tab = ChatTab()
        manager = LaunchedServerManager(proc, tab)
        async with tab_alone(tab, server_manager=manager, size=(140, 36)) as pilot:
            alice, bob = await alice_and_bob_in_the_room(pilot, tab)
            old_port = proc.port
            await asyncio.to_thread(manager.stop)
            # A restart takes a moment: the members notice the room is gone and start rejoining.
            await wait_until(pilot, lambda: alice.rejoining and bob.rejoining, "both rejoining")
            await asyncio.to_thread(manager.start_on_a_new_port)
            assert proc.port != old_port
            for pane, name in ((alice, "alice"), (bob, "bob")):
                # Well inside the 8 s a rejoin keeps trying: the old address must not use it up.
                await wait_until(
                    pilot,
                    lambda p=pane, n=name: (
                        p.joined_name == n and p.client is not None and p.client.port == proc.port
                    ),
                    f"{name} in the room at its new port",
                    timeout=5,
                )
            await wait_until(pilot, lambda: "2 members" in status_of(alice), "count updated")
            assert tab.query_one("#chat-port", Input).value == str(proc.port)

    with running_server("chat", "threads", options={"timeout": 30}) as proc:
        run(lambda: scenario(proc))


def test_a_server_restart_rejoins_everyone_at_once_in_plain_words() -> None:
    """A restart forgets every member: the panes notice when the app says so, not at a heartbeat, and rejoin."""

    async def scenario(proc: ServerProcess) -> None:
        tab = ChatTab()
        manager = LaunchedServerManager(proc, tab)
        async with tab_alone(tab, server_manager=manager, size=(140, 36)) as pilot:
            alice, bob = await alice_and_bob_in_the_room(pilot, tab)
            old_clients = (alice.client, bob.client)
            await asyncio.to_thread(manager.restart_on_the_same_port)
            started = asyncio.get_running_loop().time()
            for pane, name in ((alice, "alice"), (bob, "bob")):
                await wait_until(
                    pilot,
                    lambda p=pane, n=name: p.joined_name == n and p.client not in old_clients,
                    f"{name} back in the room",
                    timeout=6,
                )
            # The heartbeat comes every 10 s here (30 s room timeout): the tab noticed the restart.
            back_after = asyncio.get_running_loop().time() - started
            print(f"both members back in the room {back_after:.2f} s after the restart")
            assert back_after < 6
            await wait_until(pilot, lambda: "2 members" in status_of(alice), "count updated")
            for pane in (alice, bob):
                texts = [line.text for line in log_of(pane)]
                assert not any("LOGIN" in text for text in texts), texts
                # One plain notice (a check racing the restart may find the port closed instead).
                notices = [line.text for line in log_of(pane) if line.kind == "error"]
                assert len(notices) == 1, texts
                assert "no longer knows" in notices[0] or "link to the server" in notices[0]
                assert any(text.startswith("You are back in the room as") for text in texts)

    with running_server("chat", "threads", options={"timeout": 30}) as proc:
        run(lambda: scenario(proc))


def test_a_stopped_server_is_noticed_within_a_poll() -> None:
    """Stopping the app's chat server: the joined members stop claiming a room at once."""

    async def scenario(proc: ServerProcess) -> None:
        tab = ChatTab()
        manager = LaunchedServerManager(proc, tab)
        async with tab_alone(tab, server_manager=manager, size=(140, 36)) as pilot:
            await wait_until(pilot, lambda: tab.query_one("#chat-port", Input).value != "", "port")
            alice = tab.panes[0]
            await join(pilot, alice, "alice")
            await asyncio.to_thread(manager.stop)
            # The heartbeat would take up to 10 s; the app tells the tab the server went away.
            await wait_until(pilot, lambda: not alice.joined, "alice out", timeout=4)
            assert "members" not in status_of(alice)

    with running_server("chat", "threads", options={"timeout": 30}) as proc:
        run(lambda: scenario(proc))


def test_a_dropped_pane_says_so_at_once_and_offers_to_join_again() -> None:
    """The server is gone for good: the pane stops claiming members and says what to do."""

    async def scenario(proc: InProcessServer) -> None:
        tab = ChatTab(endpoint=("127.0.0.1", proc.port), participants=1)
        async with tab_alone(tab, size=(140, 36)) as pilot:
            pane = tab.panes[0]
            await join(pilot, pane, "alice")
            proc.stop()
            pane.check_membership()  # what the tab does for the others when one is dropped
            await wait_until(pilot, lambda: pane.rejoining, "rejoining")
            assert "members" not in status_of(pane)
            assert "Rejoining as alice" in status_of(pane)

    with in_process_server("chat", options={"timeout": 30}) as proc:
        run(lambda: scenario(proc))


def test_changing_the_address_moves_joined_members() -> None:
    """Port typed in the bar: the pane says it is still in the old room; Enter moves it."""

    async def scenario(old: InProcessServer, new: InProcessServer) -> None:
        tab = ChatTab(participants=2)
        manager = FakeServerDirectory({"chat": ("127.0.0.1", old.port)})
        async with tab_alone(tab, server_manager=manager, size=(140, 36)) as pilot:
            port_box = tab.query_one("#chat-port", Input)
            await wait_until(pilot, lambda: port_box.value == str(old.port), "port")
            alice = tab.panes[0]
            await join(pilot, alice, "alice")
            with ChatClient("127.0.0.1", old.port) as observer:
                observer.login("observer")
                port_box.focus()
                port_box.value = str(new.port)
                await pilot.pause()
                bar = str(tab.query_one("#chat-status", Label).render())
                assert f"alice is still in the room at udp 127.0.0.1:{old.port}" in bar
                assert alice.client is not None and alice.client.port == old.port
                await pilot.press("enter")
                await wait_until(
                    pilot,
                    lambda: (
                        alice.joined and alice.client is not None and alice.client.port == new.port
                    ),
                    "alice moved",
                )
                left = None
                while left is None:
                    event = await asyncio.to_thread(observer.next_event, 5)
                    assert event is not None, "the old room never saw alice leave"
                    if getattr(event, "kind", "") == "left":
                        left = event
                assert left.name == "alice"
            assert "still in the room" not in str(tab.query_one("#chat-status", Label).render())

    with in_process_server("chat") as old, in_process_server("chat") as new:
        run(lambda: scenario(old, new))


def test_lost_datagrams_are_marked_where_they_went_missing() -> None:
    """Each marker sits between the two messages around the gap and counts what is missing."""
    import re

    async def scenario(proc: InProcessServer) -> None:
        tab = ChatTab(endpoint=("127.0.0.1", proc.port), participants=1)
        async with tab_alone(tab, size=(140, 36)) as pilot:
            pane = tab.panes[0]
            await join(pilot, pane, "listener")
            with ChatClient("127.0.0.1", proc.port) as talker:
                talker.login("talker")
                await wait_until(pilot, lambda: "talker" in pane.members, "talker seen")
                for number in range(60):
                    talker.say(f"line {number}")
                talker.say("line 60")
                # The drop is random (seeded): wait for the last line that made it through.
                await wait_until(
                    pilot,
                    lambda: (
                        pane.client is not None and pane.client.received + pane.client.lost >= 62
                    ),
                    "every datagram accounted",
                )
                await pilot.pause(0.3)
            lines = log_of(pane)
            markers = [index for index, line in enumerate(lines) if line.kind == "lost"]
            assert markers, [line.text for line in lines]
            number_of = {
                index: int(line.text.split()[1])
                for index, line in enumerate(lines)
                if line.kind == "message"
            }
            counted = 0
            for index in markers:
                count = int(re.fullmatch(r"— (\d+) messages? lost here —", lines[index].text)[1])
                counted += count
                after = number_of.get(index + 1)
                before = number_of.get(index - 1, -1)
                if after is not None:
                    assert after - before - 1 == count, (before, count, after)
            assert pane.client is not None and counted == pane.client.lost

    options = {"drop": 0.3, "drop_seed": 7, "rate_limit": 0}
    with in_process_server("chat", options=options) as proc:
        run(lambda: scenario(proc))


def test_lines_are_timestamped_and_one_member_is_singular(chat_server: InProcessServer) -> None:
    import re

    async def scenario() -> None:
        tab = ChatTab(endpoint=("127.0.0.1", chat_server.port), participants=1)
        async with tab_alone(tab, size=(140, 36)) as pilot:
            pane = tab.panes[0]
            await join(pilot, pane, "alice")
            await wait_until(pilot, lambda: "· 1 member ·" in status_of(pane), "singular")
            await say(pilot, pane, "anyone here?")
            await wait_until(pilot, lambda: has_line(pane, "own", "anyone here?", "alice"), "sent")
            shown = [strip.text for strip in pane.log_widget.lines]
            assert any(re.match(r"\d\d:\d\d:\d\d alice: anyone here\?", text) for text in shown)

    run(scenario)


def test_a_too_long_name_is_explained_as_it_is_typed(chat_server: InProcessServer) -> None:
    async def scenario() -> None:
        tab = ChatTab(endpoint=("127.0.0.1", chat_server.port), participants=1)
        async with tab_alone(tab, size=(140, 36)) as pilot:
            pane = tab.panes[0]
            pane.name_input.value = ""
            pane.name_input.focus()
            await pilot.press(*"abcdefghijklmnopqrst")
            assert "at most" not in status_of(pane)
            await pilot.press(*"uvw")
            assert pane.name_input.value == "abcdefghijklmnopqrstuvw"  # nothing cut off
            assert "at most 20 characters: this one has 23" in status_of(pane)
            await pilot.press("enter")
            await pilot.pause(0.2)
            assert not pane.joined and "at most 20" in status_of(pane)
            await pilot.press("backspace", "backspace", "backspace")
            assert "at most" not in status_of(pane)
            await pilot.press("enter")
            await wait_until(pilot, lambda: pane.joined, "joins with 20 characters")

    run(scenario)


def test_a_refusal_arriving_before_sent_keeps_the_text() -> None:
    """The server's ERR can be drained before the send worker's Sent: the text must not be lost."""
    import time

    async def scenario(proc: InProcessServer) -> None:
        tab = ChatTab(endpoint=("127.0.0.1", proc.port), participants=1)
        async with tab_alone(tab, size=(140, 36)) as pilot:
            pane = tab.panes[0]
            await join(pilot, pane, "alice")
            await say(pilot, pane, "first")
            await wait_until(pilot, lambda: has_line(pane, "own", "first", "alice"), "first sent")
            client = pane.client
            assert client is not None
            real_say = client.say

            def say_then_wait_for_the_refusal(text: str) -> None:
                real_say(text)
                # Hold the worker's Sent back until the pane has shown the server's refusal.
                deadline = time.monotonic() + 5
                while "slow down" not in status_of(pane) and time.monotonic() < deadline:
                    time.sleep(0.01)

            client.say = say_then_wait_for_the_refusal  # type: ignore[method-assign]
            await say(pilot, pane, "second, too soon")
            await wait_until(pilot, lambda: "slow down" in status_of(pane), "refusal shown")
            await wait_until(pilot, lambda: pane._sending is None, "Sent handled")
            assert pane.message_input.value == "second, too soon"
            assert not has_line(pane, "own", "second, too soon", "alice")

    with in_process_server("chat", options={"rate_limit": 0.2}) as proc:
        run(lambda: scenario(proc))
