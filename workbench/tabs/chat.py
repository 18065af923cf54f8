"""The Chat tab: 2-4 members of the UDP group chat side by side (course exercise 2.2.5 群聊聊天室).

Each participant pane owns its own :class:`~workbench.clients.chat.ChatClient`
(its own socket, name and heartbeat), so a class sees one room from several
seats: a message typed on the left appears on the right, joins and leaves reach
everyone, and with the server's ``--drop`` knob each seat counts its own lost
datagrams.
"""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Button, Input, Label, Select

from workbench.messages import EndpointChanged, ServersUpdated
from workbench.tabs.endpoint import server_directory, server_endpoint
from workbench.widgets.chat_participant import ChatParticipantPane, ChatServerAddress

#: Panes side by side: removing stops at two (a room needs someone to talk to), adding at four.
MIN_PARTICIPANTS = 2
MAX_PARTICIPANTS = 4
#: Names offered to new panes, so a demo is one Enter per seat.
SUGGESTED_NAMES = ("alice", "bob", "carol", "dave")

NO_SERVER_TEXT = "No server — enter host and port"


class ChatTab(Widget):
    """A connection bar over participant panes; each pane is one member of the room."""

    HELP = """\
# Chat — the group chat room (群聊聊天室, course 2.2.5)

Each pane is **one member** with its own UDP socket: type a name, press
**Enter** to join, then type messages. Open up to four members side by side
(**Ctrl+N**) and watch one room from every seat.

What to look for:

- **Unique names**: a second member asking for a name already in the room
  (case does not matter) is refused — the error says so and the typed name stays
  in the box to edit.
- **Join and leave notices** (→ / ←) reach everyone else; a member that stops
  sending heartbeats (PING) is dropped as *timed out*.
- **Messages** go to the server once and the server sends one datagram to each
  other member (fan-out); your own lines are shown locally.
- **Admin announcements** (admin ▸) come from the server side: the Servers tab's
  announcement box, or the server's standard input.
- **Who is where**: with the room on this workbench's own chat server, the line
  under the address bar lists each member with the host it sends from — a class
  joining with `workbench --connect` shows up there by name and laptop address.
- **Lost datagrams**: UDP does not retransmit. Every room datagram carries a
  sequence number, so a gap is a loss. To make the room lose some on purpose, select
  the chat row in the Servers tab, press **m** and set *Drop rate* to 0.1 (or run
  `python -m servers chat --drop 0.1`): each pane counts what it missed.

| Key | Action |
|---|---|
| Enter | join (in the name box) / send (in the message box) |
| Ctrl+N | add a participant (up to four) |
| Ctrl+R | remove the focused participant |
| Ctrl+L | leave the room (in a pane) |
| Page Up / Page Down | scroll the pane's log |
| Tab | next name or message box, then the connection bar |

Log lines carry the time they arrived (HH:MM:SS); where datagrams went missing
the log says so in place: *— 2 messages lost here —*. If the server restarts
(its room starts empty) or the address above changes (press **Enter** in it),
every joined member rejoins by itself under the same name.
"""

    DEFAULT_CSS = """
    ChatTab {
        height: 1fr;
        layout: vertical;
    }
    ChatTab #chat-top {
        dock: top;
        height: auto;
    }
    ChatTab #chat-connection {
        height: auto;
        padding: 0 1;
    }
    ChatTab #chat-connection Label {
        padding: 1 1 0 1;
        color: $text-muted;
    }
    ChatTab #chat-host {
        width: 1fr;
    }
    ChatTab #chat-port {
        width: 12;
    }
    ChatTab #chat-transport {
        width: 14;
    }
    ChatTab #chat-connection Button {
        margin-left: 1;
    }
    ChatTab #chat-status {
        width: 1fr;
        padding: 0 2;
        color: $text-muted;
    }
    ChatTab #chat-status.-error {
        color: $text-error;
    }
    ChatTab #chat-room-hosts {
        width: 1fr;
        padding: 0 2;
        color: $text-muted;
    }
    ChatTab #chat-room-hosts.-empty {
        display: none;
    }
    ChatTab #chat-participants {
        height: 1fr;
    }
    """

    BINDINGS = [
        Binding("ctrl+n", "add_participant", "Add participant"),
        Binding("ctrl+r", "remove_participant", "Remove participant"),
    ]

    def __init__(
        self,
        endpoint: Any = None,
        *,
        participants: int = 2,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._endpoint_override = endpoint
        # One pane is allowed at start (tests, a single listener); removal keeps MIN_PARTICIPANTS.
        self._initial_participants = max(1, min(MAX_PARTICIPANTS, participants))
        self._next_pane_number = 0
        #: The address last filled in from the server manager (to follow a restart, not override typing).
        self._auto_endpoint: tuple[str, int] | None = None
        #: The app said its chat server went away (stopped, crashed, restarting): the room the
        #: members were in is gone, and the one coming back knows nobody.
        self._server_gone = False
        #: What the "who is where" line shows now.
        self._room_hosts_text = ""

    def compose(self) -> ComposeResult:
        # The panes come first in the DOM so focusing "the first focusable widget" (what the app
        # does when the tab is shown) lands in the first name box; the bar is docked on top.
        with Horizontal(id="chat-participants"):
            for _ in range(self._initial_participants):
                yield self._new_pane()
        with Vertical(id="chat-top"):
            with Horizontal(id="chat-connection"):
                yield Label("Host")
                yield Input(placeholder="127.0.0.1", id="chat-host")
                yield Label("Port")
                yield Input(placeholder="port", id="chat-port", type="integer")
                yield Select(
                    [("UDP", "udp"), ("TCP", "tcp")],
                    value="udp",
                    allow_blank=False,
                    id="chat-transport",
                )
                yield Button("+ Participant", id="chat-add")
            yield Label("", id="chat-status", markup=False)
            yield Label("", id="chat-room-hosts", markup=False)

    def _new_pane(self) -> ChatParticipantPane:
        number = self._next_pane_number
        self._next_pane_number += 1
        suggested = (
            SUGGESTED_NAMES[number] if number < len(SUGGESTED_NAMES) else f"member{number + 1}"
        )
        return ChatParticipantPane(self.server_address, suggested, id=f"chat-participant-{number}")

    @property
    def panes(self) -> list[ChatParticipantPane]:
        return list(self.query(ChatParticipantPane))

    def on_mount(self) -> None:
        self._update_status()
        self.follow_server_endpoint()

    def on_show(self) -> None:
        # The app may start its servers after the tabs mount: look again when shown.
        self.follow_server_endpoint()

    # -- where the server is ---------------------------------------------------

    def _server_endpoint(self) -> tuple[str, int] | None:
        return server_endpoint(self, "chat", self._endpoint_override)

    def on_endpoint_changed(self, message: EndpointChanged) -> None:
        """The app's chat server appeared, moved or went away: follow it (unless given an address).

        Going away (stopped, crashed, or restarting even on the same port) empties the
        room: the joined panes check at once instead of at their next heartbeat, and
        rejoin. They check again when it is back: the old process may have answered the first.
        """
        if message.protocol != "chat" or self._endpoint_override is not None:
            return
        if message.address is None or self._server_gone:
            self._check_joined_panes()
        self._server_gone = message.address is None
        self._follow(message.address)

    def on_servers_updated(self, message: ServersUpdated) -> None:
        # Members come and go between two moves of the server: the list follows its news.
        self._show_room_hosts()

    def follow_server_endpoint(self) -> None:
        """Fill the address from where the app's chat server listens now."""
        self._follow(self._server_endpoint())

    def _follow(self, address: tuple[str, int] | None) -> None:
        """Fill the address bar with ``address``; members follow the server if it moved.

        Only fields still holding what this method put there are changed: an
        address the user typed is never overwritten.
        """
        self._show_room_hosts()
        if address is not None and address != self._auto_endpoint:
            host_input = self.query_one("#chat-host", Input)
            port_input = self.query_one("#chat-port", Input)
            fields = (host_input.value.strip(), port_input.value.strip())
            filled_by_us = self._auto_endpoint is not None and fields == (
                self._auto_endpoint[0],
                str(self._auto_endpoint[1]),
            )
            if fields == ("", "") or filled_by_us:
                self._auto_endpoint = address
                # Input.Changed then refreshes the status line.
                host_input.value, port_input.value = address[0], str(address[1])
                # The server moved: members follow it rather than sit in a room that is gone.
                self.call_after_refresh(self.move_joined_panes)

    def _show_room_hosts(self) -> None:
        """Who is in the room and from which host, when the room is this workbench's own server.

        Only the server knows the members' addresses (the protocol's MEMBERS has names):
        a student pointed at the teacher's room (``--connect``) sees names in the panes only.
        """
        text = ""
        directory = server_directory(self)
        if self._endpoint_override is None and directory is not None and directory.remote is None:
            server_id = directory.default_server_id("chat")
            clients = directory.clients(server_id) if server_id else None
            if clients is not None and clients.names:
                text = f"In the room, as our chat server sees it: {clients.summary()}"
        label = self.query_one("#chat-room-hosts", Label)
        if text != self._room_hosts_text:
            # Asked twice a second: only a change is worth a repaint.
            self._room_hosts_text = text
            label.update(text)
        label.set_class(not text, "-empty")

    def server_address(self) -> ChatServerAddress | None:
        """The address typed in the connection bar, or None (with the reason shown) when incomplete."""
        host = self.query_one("#chat-host", Input).value.strip() or "127.0.0.1"
        port_text = self.query_one("#chat-port", Input).value.strip()
        if not port_text:
            self._set_status(NO_SERVER_TEXT, error=True)
            return None
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            self._set_status(
                f"Port must be a number from 1 to 65535, not {port_text!r}", error=True
            )
            return None
        transport = self.query_one("#chat-transport", Select).value
        return ChatServerAddress(host, int(port_text), str(transport))

    @on(Input.Changed, "#chat-connection Input")
    def _address_edited(self, event: Input.Changed) -> None:
        self._update_status()

    @on(Select.Changed, "#chat-transport")
    def _transport_changed(self, event: Select.Changed) -> None:
        self._update_status()
        self.move_joined_panes()

    @on(Input.Submitted, "#chat-connection Input")
    def _address_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.move_joined_panes():
            return
        # Enter in the address bar: go and pick a name in the first free seat.
        for pane in self.panes:
            if not pane.joined:
                pane.name_input.focus()
                return

    def _panes_elsewhere(self, server: ChatServerAddress | None) -> list[ChatParticipantPane]:
        """Joined panes whose room is not at ``server`` (the address in the bar)."""
        if server is None:
            return []
        here = (server.host, server.port, server.transport)
        return [
            pane
            for pane in self.panes
            if pane.joined
            and pane.client is not None
            and (pane.client.host, pane.client.port, pane.client.transport) != here
        ]

    def move_joined_panes(self) -> bool:
        """Move every joined member to the room in the address bar (leave the old, rejoin the new).

        Returns whether any pane moved. Typing alone does not move anyone (every
        keystroke is a different port); Enter, the transport switch, or the
        app's server moving does.
        """
        server = self._typed_address()
        if server is not None:
            # Members already rejoining (the room went away first) go to where it came back.
            for pane in self.panes:
                pane.redirect_rejoin(server)
        elsewhere = self._panes_elsewhere(server)
        for pane in elsewhere:
            assert server is not None
            pane.rejoin(
                f"moving to the room at {server.transport} {server.host}:{server.port}",
                server,
                error=False,
            )
        if elsewhere:
            self._update_status()
        return bool(elsewhere)

    def _check_joined_panes(self) -> None:
        for pane in self.panes:
            pane.check_membership()

    def on_chat_participant_pane_dropped(self, message: ChatParticipantPane.Dropped) -> None:
        # One member was forgotten or cut off: the others most likely were too (a restart).
        message.stop()
        for pane in self.panes:
            if pane is not message.control:
                pane.check_membership()

    def _typed_address(self) -> ChatServerAddress | None:
        """The bar's address without reporting problems (server_address() reports them)."""
        port_text = self.query_one("#chat-port", Input).value.strip()
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            return None
        host = self.query_one("#chat-host", Input).value.strip() or "127.0.0.1"
        transport = self.query_one("#chat-transport", Select).value
        return ChatServerAddress(host, int(port_text), str(transport))

    def _update_status(self) -> None:
        port_text = self.query_one("#chat-port", Input).value.strip()
        if not port_text:
            self._set_status(NO_SERVER_TEXT, error=False)
            return
        host = self.query_one("#chat-host", Input).value.strip() or "127.0.0.1"
        transport = self.query_one("#chat-transport", Select).value
        typed = self._typed_address()
        joined = [pane for pane in self.panes if pane.joined and pane.client is not None]
        left_behind = self._panes_elsewhere(typed) if typed is not None else joined
        if left_behind:
            client = left_behind[0].client
            assert client is not None
            names = ", ".join(pane.joined_name or "" for pane in left_behind)
            self._set_status(
                f"{names} {'are' if len(left_behind) > 1 else 'is'} still in the room at "
                f"{client.transport} {client.host}:{client.port} — press Enter here to move to "
                f"{transport} {host}:{port_text}",
                error=True,
            )
            return
        self._set_status(
            f"Room at {transport} {host}:{port_text} — type a name in a pane and press Enter to join"
        )

    def _set_status(self, text: str, *, error: bool = False) -> None:
        status = self.query_one("#chat-status", Label)
        status.update(text)
        status.set_class(error, "-error")

    # -- participants ---------------------------------------------------------

    @on(Button.Pressed, "#chat-add")
    def _add_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_add_participant()

    def action_add_participant(self) -> None:
        if len(self.panes) >= MAX_PARTICIPANTS:
            self.notify(f"At most {MAX_PARTICIPANTS} participants side by side", severity="warning")
            return
        pane = self._new_pane()
        self.query_one("#chat-participants", Horizontal).mount(pane)
        pane.call_after_refresh(lambda: pane.name_input.focus())

    def action_remove_participant(self) -> None:
        panes = self.panes
        if len(panes) <= MIN_PARTICIPANTS:
            self.notify(f"At least {MIN_PARTICIPANTS} participants stay", severity="warning")
            return
        focused = self.screen.focused
        target = panes[-1]
        for pane in panes:
            if focused is not None and pane in focused.ancestors:
                target = pane
                break
        # Unmounting the pane closes its client (QUIT) in the background.
        target.remove()
        neighbour = [pane for pane in panes if pane is not target][-1]
        (neighbour.message_input if neighbour.joined else neighbour.name_input).focus()
