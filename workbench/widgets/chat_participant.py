"""One chat participant of the Chat tab: its own ChatClient, name, log, member list and loss counter.

Several panes side by side show a room from several members' seats at once.
The client tells the pane when events arrive; the pane drains them at once, at
most ten batches a second, and applies each batch as one log refresh, never one
widget update per datagram. Login, sending and leaving run in thread workers so
the UI never waits on the network.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Button, Input, Label, Static
from textual.worker import get_current_worker

from servers.chat import protocol as chat_protocol
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
    NameTaken,
)
from workbench.clients.chat import Message as ChatMessage
from workbench.widgets.chat_log import ChatLine, ChatLog, lost_marker_text

#: Shortest time between two drains of the client's events (s): a lone message shows at
#: once, a flood is applied in at most ten batches a second, so it cannot stall the UI.
MIN_DRAIN_INTERVAL = 0.1
#: Events applied per drain at most; the rest wait for the next batch so a flood cannot stall the UI.
MAX_EVENTS_PER_DRAIN = 2000

#: ERR codes that refuse something this member just said: its text goes back into the box.
_REFUSED_TEXT_CODES = {"too-long", "bad-utf8", "bad-text", "empty", "rate-limited"}
#: How long a member put out of the room (server restarted, link down) keeps trying to rejoin.
REJOIN_SECONDS = 8.0
#: Pause between rejoin attempts while nothing answers (a restarting server is back within a second or two).
REJOIN_RETRY_SECONDS = 0.5


NOT_JOINED_TEXT = "Not in the room: type a name and press Enter"


def plural(count: int, noun: str) -> str:
    """``1 member``, ``3 members``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def name_problem(name: str) -> str | None:
    """What is wrong with a name being typed (empty is not wrong yet), in the pane's words."""
    if len(name) > chat_protocol.MAX_NAME_LENGTH:
        return (
            f"Names are at most {chat_protocol.MAX_NAME_LENGTH} characters: this one has "
            f"{len(name)}, shorten it"
        )
    problem = chat_protocol.name_problem(name) if name else None
    return problem[:1].upper() + problem[1:] if problem else None


def plain_drop_reason(code: str, text: str) -> str:
    """Why the room let go of this member, in words for a person rather than protocol terms."""
    if code == "not-logged-in":
        return "the server no longer knows this member (it was restarted)"
    if code == "timed-out":
        return "the server dropped this member after a long silence"
    return f"the link to the server failed: {text}"


@dataclass(frozen=True, slots=True)
class ChatServerAddress:
    """Where the participants connect: filled in by the Chat tab's connection bar."""

    host: str
    port: int
    transport: str = "udp"


def _close_in_background(client: ChatClient) -> None:
    # close() says QUIT and joins the client's threads: never on the UI thread.
    threading.Thread(target=client.close, name="chat-close", daemon=True).start()


class ChatParticipantPane(Vertical):
    """A member's seat: name and Join/Leave on top, the log beside the members, the message box below."""

    DEFAULT_CSS = """
    ChatParticipantPane {
        width: 1fr;
        height: 1fr;
        border: round $primary 40%;
        border-title-color: $text;
        border-title-style: bold;
    }
    ChatParticipantPane:focus-within {
        border: round $primary;
    }
    ChatParticipantPane.-joined {
        border-title-color: $text-success;
    }
    ChatParticipantPane .chat-header {
        height: auto;
    }
    ChatParticipantPane .chat-name {
        width: 1fr;
    }
    ChatParticipantPane .chat-join {
        min-width: 9;
        width: auto;
    }
    ChatParticipantPane .chat-body {
        height: 1fr;
    }
    ChatParticipantPane .chat-members {
        width: 16;
        height: 1fr;
        padding: 0 1;
        border-left: vkey $primary 30%;
        color: $text;
    }
    ChatParticipantPane .chat-status {
        width: 1fr;
        height: auto;
        padding: 0 1;
        color: $text-muted;
    }
    ChatParticipantPane .chat-status.-error {
        color: $text-error;
        text-style: bold;
    }
    ChatParticipantPane .chat-status.-joined {
        color: $text-success;
    }
    """

    BINDINGS = [
        Binding("ctrl+l", "leave", "Leave room"),
        Binding("pageup", "scroll_log(-1)", "Scroll log up", show=False),
        Binding("pagedown", "scroll_log(1)", "Scroll log down", show=False),
    ]

    # -- worker results (handled by the pane itself) ----------------------

    class LoginSucceeded(Message, bubble=False):
        def __init__(self, client: ChatClient, name: str, rejoined: bool = False) -> None:
            super().__init__()
            self.client = client
            self.name = name
            self.rejoined = rejoined

    class RejoinFailed(Message, bubble=False):
        def __init__(self, why: str, error: str) -> None:
            super().__init__()
            self.why = why
            self.error = error

    class EventsWaiting(Message, bubble=False):
        """The client has events the pane has not drained yet (posted from its receiver thread)."""

    class Dropped(Message):
        """This member was put out of the room: the tab asks the others whether they still are in."""

    class LoginFailed(Message, bubble=False):
        def __init__(
            self, client: ChatClient | None, name: str, error: str, name_taken: bool
        ) -> None:
            super().__init__()
            self.client = client
            self.name = name
            self.error = error
            self.name_taken = name_taken

    class Sent(Message, bubble=False):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class SendFailed(Message, bubble=False):
        def __init__(self, text: str, error: str) -> None:
            super().__init__()
            self.text = text
            self.error = error

    class LeftRoom(Message, bubble=False):
        pass

    # -- construction ------------------------------------------------------

    def __init__(
        self,
        server: Callable[[], ChatServerAddress | None],
        suggested_name: str = "",
        *,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self._server = server
        self.suggested_name = suggested_name
        self._client: ChatClient | None = None
        #: When the pane last drained its client, and the timer of the next drain if one is due.
        self._last_drain = 0.0
        self._drain_timer: Timer | None = None
        self.joined_name: str | None = None
        self.members: list[str] = []
        self.lost = 0
        self.received = 0
        self._busy = False
        #: True while the pane rejoins on its own after being put out of the room.
        self.rejoining = False
        #: Where a rejoin tries next; the tab moves it when the room moves mid-rejoin.
        self._rejoin_target: ChatServerAddress | None = None
        self._last_sent = ""
        #: Text handed to a send worker whose Sent has not come back yet.
        self._sending: str | None = None
        self._refused_while_sending = False
        #: An error is on the status line: figures do not overwrite it until the next success.
        self._showing_error = False

    def compose(self) -> ComposeResult:
        with Horizontal(classes="chat-header"):
            yield Input(
                self.suggested_name,
                placeholder="your name",
                classes="chat-name",
            )
            join_button = Button("Join", classes="chat-join", variant="success")
            # Enter in the name box joins and Ctrl+L leaves: Tab need not stop on the button.
            join_button.can_focus = False
            yield join_button
        with Horizontal(classes="chat-body"):
            yield ChatLog(classes="chat-log")
            yield Static("", classes="chat-members", markup=False)
        yield Label(NOT_JOINED_TEXT, classes="chat-status", markup=False)
        yield Input(
            placeholder="Join first, then type a message", classes="chat-message", disabled=True
        )

    def on_mount(self) -> None:
        self.border_title = "(not joined)"

    def on_unmount(self) -> None:
        if self.client is not None:
            _close_in_background(self.client)
            self.client = None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # "Leave room" appears in the footer only while this member is in the room.
        if action == "leave":
            return self.joined
        return True

    def action_scroll_log(self, pages: int) -> None:
        log = self.log_widget
        if pages < 0:
            log.scroll_page_up()
        else:
            log.scroll_page_down()

    @property
    def log_widget(self) -> ChatLog:
        return self.query_one(ChatLog)

    @property
    def name_input(self) -> Input:
        return self.query_one(".chat-name", Input)

    @property
    def message_input(self) -> Input:
        return self.query_one(".chat-message", Input)

    @property
    def joined(self) -> bool:
        return self.joined_name is not None

    # -- joining and leaving ---------------------------------------------

    @on(Input.Submitted, ".chat-name")
    def _name_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.join()

    @on(Input.Changed, ".chat-name")
    def _name_edited(self, event: Input.Changed) -> None:
        # Say what is wrong with a name while it is typed (a box that silently stops at 20
        # characters looks broken); every character typed stays in the box to edit.
        if self.joined or self._busy:
            return
        problem = name_problem(event.value.strip())
        if problem:
            self._set_status(problem, error=True)
        elif self._showing_error:
            self._set_status(NOT_JOINED_TEXT)

    @on(Button.Pressed, ".chat-join")
    def _join_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if self.joined:
            self.action_leave()
        else:
            self.join()

    def join(self) -> None:
        """Log in with the typed name (the text stays in the box whatever happens)."""
        if self.joined or self._busy:
            return
        name = self.name_input.value.strip()
        if not name:
            self._set_status("Type a name first", error=True)
            self.name_input.focus()
            return
        problem = name_problem(name)
        if problem:
            self._set_status(problem, error=True)
            self.name_input.focus()
            return
        server = self._server()
        if server is None:
            self._set_status("No server — enter host and port above", error=True)
            return
        if self.client is not None and (
            (self.client.host, self.client.port, self.client.transport)
            != (server.host, server.port, server.transport)
        ):
            # The address changed since the last attempt: start over with a fresh socket.
            _close_in_background(self.client)
            self.client = None
        self._busy = True
        self.query_one(".chat-join", Button).disabled = True
        self._set_status(f"Joining as {name} ({server.transport} {server.host}:{server.port})…")
        self._login_worker(self.client, server, name)

    @work(thread=True, group="chat-login", exit_on_error=False)
    def _login_worker(
        self, client: ChatClient | None, server: ChatServerAddress, name: str
    ) -> None:
        if client is None:
            client = ChatClient(server.host, server.port, server.transport)
        try:
            client.connect()
            client.login(name)
        except NameTaken as error:
            self.post_message(self.LoginFailed(client, name, str(error), name_taken=True))
        except ChatError as error:
            # A dead link is no use for a retry; a refused name keeps its socket.
            keep = client if error.code != "link" else None
            if keep is None:
                client.close()
            self.post_message(self.LoginFailed(keep, name, str(error), name_taken=False))
        except Exception as error:  # a worker must never take the app down
            client.close()
            self.post_message(
                self.LoginFailed(None, name, f"cannot join: {error}", name_taken=False)
            )
        else:
            self.post_message(self.LoginSucceeded(client, client.name or name))

    def on_chat_participant_pane_login_succeeded(
        self, message: ChatParticipantPane.LoginSucceeded
    ) -> None:
        self._busy = False
        self.rejoining = False
        self.client = message.client
        self.joined_name = message.name
        self.lost = self.received = 0
        self.add_class("-joined")
        self.border_title = f"● {message.name}"
        self.refresh_bindings()
        button = self.query_one(".chat-join", Button)
        button.label, button.variant, button.disabled = "Leave", "error", False
        self.name_input.disabled = True
        box = self.message_input
        box.disabled = False
        box.placeholder = "Type a message, Enter sends"
        if not message.rejoined:
            box.focus()  # a rejoin happens on its own: it must not pull the focus from elsewhere
        self._showing_error = False
        notice = f"You joined the room as {message.name}"
        if message.rejoined:
            notice = (
                f"You are back in the room as {message.name} ({self._server_label(message.client)})"
            )
        self.log_widget.add_lines([ChatLine("info", notice)])
        self._refresh_status()

    # -- rejoining on its own ------------------------------------------------

    @staticmethod
    def _server_label(client: ChatClient) -> str:
        return f"{client.transport} {client.host}:{client.port}"

    def rejoin(
        self, why: str, server: ChatServerAddress | None = None, *, error: bool = True
    ) -> None:
        """Go back into the room under the same name, on ``server`` or where the tab says it is now.

        Used when the server forgot this member (a restart) or the link broke, and
        when the tab's address changes under a joined member (it moves to the new room).
        """
        if self._busy:
            return  # a join or leave is under way: its outcome sets the pane's state
        name = self.joined_name or self.name_input.value.strip()
        server = server or self._server()
        if self.client is not None:
            # Leaving the old room (QUIT) and closing its socket must not wait on the UI thread.
            _close_in_background(self.client)
            self.client = None
        if not name or server is None:
            self._mark_out_of_room(f"Out of the room: {why}", error=True)
            return
        self.joined_name = None
        self.members = []
        self.query_one(".chat-members", Static).update("")
        self.remove_class("-joined")
        self.border_title = f"↻ {name}"
        self.refresh_bindings()
        self._busy = self.rejoining = True
        self._rejoin_target = server
        self.query_one(".chat-join", Button).disabled = True
        self.message_input.disabled = True
        kind = "error" if error else "info"
        self.log_widget.add_lines([ChatLine(kind, f"{why[:1].upper()}{why[1:]}")])
        self._set_status(
            f"Rejoining as {name} ({server.transport} {server.host}:{server.port})…", error=error
        )
        self._rejoin_worker(name, why)

    def redirect_rejoin(self, server: ChatServerAddress) -> bool:
        """A rejoin under way tries ``server`` from its next attempt on (the room moved meanwhile)."""
        if not self.rejoining:
            return False
        self._rejoin_target = server
        return True

    @work(thread=True, group="chat-login", exit_on_error=False)
    def _rejoin_worker(self, name: str, why: str) -> None:
        worker = get_current_worker()
        deadline = time.monotonic() + REJOIN_SECONDS
        while True:
            # Read afresh each attempt: the UI thread may have redirected us to the room's new address.
            server = self._rejoin_target
            assert server is not None  # set by rejoin() before this worker starts
            client = ChatClient(server.host, server.port, server.transport)
            try:
                client.connect()
                client.login(name)
            except ChatError as error:
                client.close()
                retry = error.code == "link" and not isinstance(error, NameTaken)
                if not retry or time.monotonic() >= deadline or worker.is_cancelled:
                    self.post_message(self.RejoinFailed(why, str(error)))
                    return
                # A stopped server answers at once (ICMP, RST): wait for it to come back.
                time.sleep(REJOIN_RETRY_SECONDS)
                continue
            except Exception as error:  # a worker must never take the app down
                client.close()
                self.post_message(self.RejoinFailed(why, f"cannot join: {error}"))
                return
            if worker.is_cancelled:
                client.close()  # the pane went away meanwhile: nobody would close it
                return
            self.post_message(self.LoginSucceeded(client, client.name or name, rejoined=True))
            return

    def on_chat_participant_pane_rejoin_failed(
        self, message: ChatParticipantPane.RejoinFailed
    ) -> None:
        self._busy = self.rejoining = False
        self._mark_out_of_room(
            f"Out of the room: {message.why}; rejoining failed ({message.error})", error=True
        )

    def on_chat_participant_pane_login_failed(
        self, message: ChatParticipantPane.LoginFailed
    ) -> None:
        self._busy = False
        self.client = message.client
        self.query_one(".chat-join", Button).disabled = False
        reason = message.error
        if message.name_taken:
            reason = f"{reason} (your text is still in the box: edit it and press Enter)"
        self._set_status(reason, error=True)
        self.log_widget.add_lines([ChatLine("error", message.error)])
        self.notify(
            message.error,
            title="Name taken" if message.name_taken else "Cannot join",
            severity="error",
        )
        name_box = self.name_input
        name_box.focus()

    def action_leave(self) -> None:
        if not self.joined or self.client is None or self._busy:
            return
        self._busy = True
        self._leave_worker(self.client)

    @work(thread=True, group="chat-leave", exit_on_error=False)
    def _leave_worker(self, client: ChatClient) -> None:
        try:
            client.leave()
        except Exception:
            pass  # leave() is best effort: we are out of the room either way
        self.post_message(self.LeftRoom())

    def on_chat_participant_pane_left_room(self, message: ChatParticipantPane.LeftRoom) -> None:
        self._busy = False
        # Events still queued belong to the session that ended: show them before the notice.
        self.drain_events()
        self._mark_out_of_room("You left the room")
        self.name_input.focus()

    def _mark_out_of_room(self, notice: str, *, error: bool = False) -> None:
        self.joined_name = None
        self.members = []
        self.remove_class("-joined")
        self.border_title = "(not joined)"
        self.refresh_bindings()
        button = self.query_one(".chat-join", Button)
        button.label, button.variant, button.disabled = "Join", "success", False
        self.name_input.disabled = False
        box = self.message_input
        box.disabled = True
        box.placeholder = "Join first, then type a message"
        self.log_widget.add_lines([ChatLine("error" if error else "info", notice)])
        self.query_one(".chat-members", Static).update("")
        self._set_status(f"{notice}: press Enter in the name box to join again", error=error)

    # -- sending -------------------------------------------------------------

    @on(Input.Submitted, ".chat-message")
    def _message_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value
        if not text.strip() or self.client is None or not self.joined:
            return
        self._sending = text
        self._refused_while_sending = False
        self._send_worker(self.client, text)

    @work(thread=True, group="chat-send", exit_on_error=False)
    def _send_worker(self, client: ChatClient, text: str) -> None:
        try:
            client.say(text)
        except ChatError as error:
            self.post_message(self.SendFailed(text, str(error)))
        except Exception as error:
            self.post_message(self.SendFailed(text, f"cannot send: {error}"))
        else:
            self.post_message(self.Sent(text))

    def on_chat_participant_pane_sent(self, message: ChatParticipantPane.Sent) -> None:
        box = self.message_input
        refused = self._refused_while_sending
        self._sending, self._refused_while_sending = None, False
        self._last_sent = message.text
        # Only clear what was sent (the user may have typed on), and keep it if the server refused it.
        if refused:
            return  # the error line is already in the log; the text stays in the box
        if box.value == message.text:
            box.value = ""
        self.log_widget.add_lines([ChatLine("own", message.text, self.joined_name or "you")])
        self._showing_error = False
        self._refresh_status()

    def on_chat_participant_pane_send_failed(self, message: ChatParticipantPane.SendFailed) -> None:
        self._sending = None
        self._set_status(message.error, error=True)
        self.log_widget.add_lines([ChatLine("error", message.error)])
        self.notify(message.error, title="Not sent", severity="error")

    # -- events from the server, in batches ---------------------------------

    @property
    def client(self) -> ChatClient | None:
        """The client this pane speaks through; setting it wires up its event wake-ups."""
        return self._client

    @client.setter
    def client(self, client: ChatClient | None) -> None:
        if self._client is not None and self._client is not client:
            self._client.on_events = None
        self._client = client
        if client is not None:
            client.on_events = self._events_waiting
            # Events may have come while nobody listened (during login): fetch them once
            # the handler that set the client has finished setting up the pane.
            self.post_message(self.EventsWaiting())

    def _events_waiting(self) -> None:
        """Called on the client's receiver thread: hand over to the UI thread, never block."""
        self.post_message(self.EventsWaiting())

    def on_chat_participant_pane_events_waiting(self) -> None:
        self._schedule_drain()

    def _schedule_drain(self) -> None:
        """Drain now, or when MIN_DRAIN_INTERVAL has passed since the last drain."""
        if self._drain_timer is not None:
            return  # a drain is already on its way and will take these events too
        wait = self._last_drain + MIN_DRAIN_INTERVAL - time.monotonic()
        if wait <= 0:
            self.drain_events()
        else:
            self._drain_timer = self.set_timer(wait, self._drain_when_due)

    def _drain_when_due(self) -> None:
        self._drain_timer = None
        self.drain_events()

    def drain_events(self) -> None:
        """Apply everything the client received since the last drain as one batch."""
        self._last_drain = time.monotonic()
        client = self.client
        if client is None:
            return
        events = client.drain(MAX_EVENTS_PER_DRAIN)
        if events:
            self.apply_events(events)
        if len(events) >= MAX_EVENTS_PER_DRAIN:
            self._schedule_drain()  # a flood: the rest comes in the next batch

    def apply_events(self, events: list[ChatEvent]) -> None:
        """Turn a batch of events into log lines, one member-list update and one status update."""
        lines: list[ChatLine] = []
        members_changed = False
        dropped_reason: str | None = None
        for event in events:
            if isinstance(event, ChatMessage):
                lines.append(ChatLine("message", event.text, event.name))
            elif isinstance(event, Joined):
                lines.append(ChatLine("joined", f"{event.name} joined"))
                if event.name not in self.members:
                    self.members.append(event.name)
                    members_changed = True
            elif isinstance(event, Left):
                reason = f" ({event.reason})" if event.reason and event.reason != "quit" else ""
                lines.append(ChatLine("left", f"{event.name} left{reason}"))
                if event.name in self.members:
                    self.members.remove(event.name)
                    members_changed = True
            elif isinstance(event, Admin):
                lines.append(ChatLine("admin", event.text))
            elif isinstance(event, Members):
                self.members = list(event.names)
                members_changed = True
            elif isinstance(event, LostCount):
                self.lost = event.lost
                self.received = event.received
                if event.new > 0:
                    # The gap shows up just before the datagram that revealed it: mark the spot.
                    lines.append(ChatLine("lost", lost_marker_text(event.new)))
            elif isinstance(event, ChatErrorEvent):
                client = self.client
                dropped = client is not None and not client.logged_in and self.joined
                if event.code in ("link", "timed-out", "not-logged-in") and dropped:
                    # Said once, plainly, by rejoin(): not in protocol terms, not once per PING.
                    if dropped_reason is None:
                        dropped_reason = plain_drop_reason(event.code, event.text)
                    continue
                lines.append(ChatLine("error", event.text))
                self._set_status(event.text, error=True)
                if event.code in _REFUSED_TEXT_CODES:
                    self._give_back_refused_text()
        if lines:
            self.log_widget.add_lines(lines)
        if members_changed:
            self._show_members()
        if dropped_reason is not None and self.client is not None and not self.client.logged_in:
            # The link or the membership is gone: rejoin on a fresh socket under the same name,
            # and have the other panes check theirs (a restart forgets everyone at once).
            self.rejoin(dropped_reason)
            self.post_message(self.Dropped())
            return
        self._refresh_status()

    def check_membership(self) -> None:
        """Ask the server now whether this member is still in the room (after another was dropped)."""
        if self.joined and self.client is not None:
            self._check_membership_worker(self.client)

    @work(thread=True, group="chat-check", exit_on_error=False)
    def _check_membership_worker(self, client: ChatClient) -> None:
        client.check_membership()

    def _give_back_refused_text(self) -> None:
        """The server refused what we said: put the text back in the box rather than lose it."""
        if self._sending is not None:
            self._refused_while_sending = True  # the refusal beat our own Sent message
        elif self._last_sent and not self.message_input.value:
            self.message_input.value = self._last_sent

    def _show_members(self) -> None:
        me = (self.joined_name or "").lower()
        names = sorted(self.members, key=str.lower)
        lines = [f"{name} (you)" if name.lower() == me else name for name in names]
        self.query_one(".chat-members", Static).update(
            f"Members ({len(names)})\n" + "\n".join(lines)
        )

    def _refresh_status(self) -> None:
        # An error stays up until the user's next successful action: a later event
        # batch (the member list after a join, say) must not wipe it before it is read.
        if self._showing_error or not self.joined:
            return
        client = self.client
        lost = client.lost if client is not None else self.lost
        received = client.received if client is not None else self.received
        transport = client.transport if client is not None else "udp"
        self._set_status(
            f"In the room as {self.joined_name} · {plural(len(self.members), 'member')} · "
            f"lost {lost} of {lost + received} {'datagram' if transport == 'udp' else 'line'}"
            f"{'' if lost + received == 1 else 's'}",
            joined=True,
        )

    def _set_status(self, text: str, *, error: bool = False, joined: bool = False) -> None:
        self._showing_error = error
        status = self.query_one(".chat-status", Label)
        status.update(text)
        status.set_class(error, "-error")
        status.set_class(joined, "-joined")
