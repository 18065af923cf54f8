"""Modal form to start a server or change a server's model, port and worker count."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

#: Used when ``servers.registry`` cannot be imported (keeps the form usable).
FALLBACK_MODELS = (
    "iterative",
    "threads",
    "processes",
    "pool",
    "select",
    "poll",
    "epoll",
    "asyncio",
    "prefork",
)
FALLBACK_PROTOCOLS = ("chat", "ftp", "http", "echo")


def available_models() -> tuple[str, ...]:
    try:
        from servers.registry import MODELS
    except ImportError:
        return FALLBACK_MODELS
    return tuple(MODELS)


def available_protocols() -> tuple[str, ...]:
    try:
        from servers.registry import PROTOCOLS
    except ImportError:
        return FALLBACK_PROTOCOLS
    return tuple(PROTOCOLS)


@dataclass(frozen=True)
class ServerSettings:
    """What the form returns."""

    protocol: str
    model: str
    port: int | None
    workers: int | None


def parse_port(text: str, allow_keep: bool) -> int | None:
    """``""`` keeps the current port (or 0 = any free port); otherwise 0..65535."""
    text = text.strip()
    if not text:
        return None if allow_keep else 0
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise ValueError("port must be a number from 0 (any free port) to 65535")
    return int(text)


def parse_workers(text: str) -> int | None:
    """``""`` means the model's default; otherwise 1..256."""
    text = text.strip()
    if not text:
        return None
    if not text.isdigit() or not 1 <= int(text) <= 256:
        raise ValueError("workers must be a number from 1 to 256 (empty = model default)")
    return int(text)


class ServerFormScreen(ModalScreen[ServerSettings | None]):
    """Start a new server (protocol chooser shown) or change one (protocol fixed)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    DEFAULT_CSS = """
    ServerFormScreen {
        align: center middle;
    }
    ServerFormScreen > Vertical {
        width: 64;
        height: auto;
        border: thick $primary;
        background: $surface;
        padding: 1 2;
    }
    ServerFormScreen #form-title {
        text-style: bold;
        margin-bottom: 1;
    }
    ServerFormScreen Grid {
        grid-size: 2;
        grid-columns: 12 1fr;
        grid-rows: 3;
        height: auto;
    }
    ServerFormScreen Grid Label {
        padding-top: 1;
    }
    ServerFormScreen #form-error {
        color: $error;
        height: auto;
    }
    ServerFormScreen Horizontal {
        height: auto;
        align-horizontal: right;
        margin-top: 1;
    }
    ServerFormScreen Button {
        margin-left: 1;
    }
    """

    def __init__(
        self,
        title: str,
        *,
        protocol: str | None = None,
        model: str = "epoll",
        port: int | None = None,
        workers: int | None = None,
        submit_label: str = "Start",
    ) -> None:
        super().__init__()
        self.form_title = title
        self.fixed_protocol = protocol
        self.initial_model = model
        self.initial_port = port
        self.initial_workers = workers
        self.submit_label = submit_label

    def compose(self) -> ComposeResult:
        models = available_models()
        with Vertical():
            yield Label(self.form_title, id="form-title")
            with Grid():
                if self.fixed_protocol is None:
                    protocols = available_protocols()
                    yield Label("Protocol")
                    yield Select(
                        [(name, name) for name in protocols],
                        value=protocols[0] if "http" not in protocols else "http",
                        allow_blank=False,
                        id="form-protocol",
                    )
                yield Label("Model")
                yield Select(
                    [(name, name) for name in models],
                    value=self.initial_model if self.initial_model in models else models[0],
                    allow_blank=False,
                    id="form-model",
                )
                yield Label("Port")
                yield Input(
                    "" if self.initial_port is None else str(self.initial_port),
                    placeholder="empty = keep" if self.fixed_protocol else "0 = any free port",
                    id="form-port",
                )
                yield Label("Workers")
                yield Input(
                    "" if self.initial_workers is None else str(self.initial_workers),
                    placeholder="empty = model default (pool, prefork)",
                    id="form-workers",
                )
            yield Static("", id="form-error")
            with Horizontal():
                yield Button("Cancel", id="form-cancel")
                yield Button(self.submit_label, variant="primary", id="form-submit")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "form-submit":
            self.submit()
        else:
            self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.submit()

    def submit(self) -> None:
        try:
            port = parse_port(
                self.query_one("#form-port", Input).value,
                allow_keep=self.fixed_protocol is not None,
            )
            workers = parse_workers(self.query_one("#form-workers", Input).value)
        except ValueError as error:
            self.query_one("#form-error", Static).update(str(error))
            return
        if self.fixed_protocol is None:
            protocol = str(self.query_one("#form-protocol", Select).value)
        else:
            protocol = self.fixed_protocol
        model = str(self.query_one("#form-model", Select).value)
        self.dismiss(ServerSettings(protocol, model, port, workers))

    def action_cancel(self) -> None:
        self.dismiss(None)
