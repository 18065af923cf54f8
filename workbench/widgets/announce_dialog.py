"""Modal dialog for the chat admin announcement (管理员消息): nothing reaches the class until Send."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static


class AnnounceScreen(ModalScreen[str | None]):
    """Type the announcement, then Send (or Enter); Esc or Cancel sends nothing."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    DEFAULT_CSS = """
    AnnounceScreen {
        align: center middle;
    }
    AnnounceScreen > Vertical {
        width: 72;
        height: auto;
        border: thick $primary;
        background: $surface;
        padding: 1 2;
    }
    AnnounceScreen #announce-title {
        text-style: bold;
        margin-bottom: 1;
    }
    AnnounceScreen #announce-error {
        color: $error;
        height: auto;
    }
    AnnounceScreen Horizontal {
        height: auto;
        align-horizontal: right;
        margin-top: 1;
    }
    AnnounceScreen Button {
        margin-left: 1;
    }
    """

    def __init__(self, target: str, draft: str = "") -> None:
        super().__init__()
        self.target = target
        self.draft = draft

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(
                f"Announce to every member of {self.target} as the admin", id="announce-title"
            )
            yield Input(self.draft, placeholder="announcement text", id="announce-text")
            yield Static("", id="announce-error")
            with Horizontal():
                yield Button("Cancel", id="announce-cancel")
                yield Button("Send", variant="primary", id="announce-send")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "announce-send":
            self.send()
        else:
            self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.send()

    def send(self) -> None:
        text = self.query_one("#announce-text", Input).value.strip()
        if not text:
            self.query_one("#announce-error", Static).update(
                "Type the announcement first (Esc cancels)."
            )
            return
        self.dismiss(text)

    def action_cancel(self) -> None:
        self.dismiss(None)
