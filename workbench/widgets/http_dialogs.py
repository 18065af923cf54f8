"""Modal dialogs of the HTTP tab: the curl command to copy by hand, and replacing unsent edits."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, TextArea

_DIALOG_CSS = """
{name} {{
    align: center middle;
    background: $background 60%;
}}
{name} > Vertical {{
    width: 100;
    max-width: 95%;
    height: auto;
    padding: 1 2;
    border: thick $primary;
    background: $surface;
}}
{name} .http-dialog-message {{
    width: 1fr;
    margin-bottom: 1;
    color: $text;
}}
{name} TextArea {{
    height: auto;
    max-height: 12;
    margin-bottom: 1;
}}
{name} Horizontal {{
    height: auto;
    align-horizontal: right;
}}
{name} Button {{
    margin-left: 2;
}}
"""

#: What the curl dialog says about the clipboard: OSC 52 works only where the terminal lets it.
CLIPBOARD_NOTE = (
    "Sent to the terminal's clipboard (OSC 52). Terminals that ignore it — tmux "
    "without `set -g set-clipboard on`, macOS Terminal — leave your clipboard as it "
    "was: select the command below with the mouse (Shift+drag in most terminals) "
    "and copy it by hand."
)


class CurlCommandScreen(ModalScreen[None]):
    """The request as a curl command in a read-only box, selectable whatever the terminal does."""

    DEFAULT_CSS = _DIALOG_CSS.format(name="CurlCommandScreen")
    BINDINGS = [Binding("escape", "close", "Close")]

    def __init__(self, command: str) -> None:
        super().__init__()
        self.command = command

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(CLIPBOARD_NOTE, classes="http-dialog-message", markup=False)
            yield TextArea(
                self.command, read_only=True, soft_wrap=True, show_line_numbers=False, id="curl"
            )
            with Horizontal():
                yield Button("Close (Esc)", id="close", variant="primary")

    def on_mount(self) -> None:
        area = self.query_one("#curl", TextArea)
        area.focus()
        area.select_all()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)


class ReplaceDraftScreen(ModalScreen[bool]):
    """Ask before a history entry replaces a request the user edited and has not sent."""

    DEFAULT_CSS = _DIALOG_CSS.format(name="ReplaceDraftScreen")
    BINDINGS = [
        Binding("y", "answer(True)", "Replace"),
        Binding("n,escape", "answer(False)", "Keep editing"),
    ]

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.message, classes="http-dialog-message", markup=False)
            with Horizontal():
                yield Button("Keep editing (n)", id="keep")
                yield Button("Replace and send (y)", id="replace", variant="warning")

    def on_mount(self) -> None:
        # Focus starts on "Keep editing" so a stray Enter loses nothing.
        self.query_one("#keep", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "replace")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)
