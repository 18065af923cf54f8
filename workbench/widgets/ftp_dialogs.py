"""Modal dialogs of the FTP tab: yes/no confirmation (overwrite, delete) and a one-line name prompt."""

from __future__ import annotations

from collections.abc import Callable

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label

_DIALOG_CSS = """
{name} {{
    align: center middle;
    background: $background 60%;
}}
{name} > Vertical {{
    width: 64;
    max-width: 90%;
    height: auto;
    padding: 1 2;
    border: thick $primary;
    background: $surface;
}}
{name} .ftp-dialog-message {{
    width: 1fr;
    margin-bottom: 1;
    color: $text;
}}
{name} Horizontal {{
    height: auto;
    align-horizontal: right;
}}
{name} Button {{
    margin-left: 2;
}}
"""


class FtpConfirmScreen(ModalScreen[bool]):
    """Ask a yes/no question; dismisses with True only on an explicit yes."""

    DEFAULT_CSS = _DIALOG_CSS.format(name="FtpConfirmScreen")
    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, message: str, confirm_label: str = "Yes") -> None:
        super().__init__()
        self.message = message
        self.confirm_label = confirm_label

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.message, classes="ftp-dialog-message", markup=False)
            with Horizontal():
                yield Button("No", id="no")
                yield Button(self.confirm_label, id="yes", variant="warning")

    def on_mount(self) -> None:
        # Focus starts on "No" so a stray Enter never overwrites or deletes anything.
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class FtpPromptScreen(ModalScreen[str | None]):
    """Ask for one line of text (a new folder or file name); None when cancelled or empty."""

    DEFAULT_CSS = _DIALOG_CSS.format(name="FtpPromptScreen")
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, message: str, initial: str = "") -> None:
        super().__init__()
        self.message = message
        self.initial = initial

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.message, classes="ftp-dialog-message", markup=False)
            yield Input(self.initial, id="answer")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button("OK", id="ok", variant="primary")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._finish(event.value)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "ok":
            self._finish(self.query_one(Input).value)
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def _finish(self, value: str) -> None:
        value = value.strip()
        self.dismiss(value or None)


def confirm_then(
    app: App[object], question: str, confirm_label: str, proceed: Callable[[], None]
) -> None:
    """Ask ``question``; run ``proceed`` only on an explicit yes."""

    def answered(yes: bool | None) -> None:
        if yes:
            proceed()

    app.push_screen(FtpConfirmScreen(question, confirm_label), answered)
