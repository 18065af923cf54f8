"""Modal form to start a server or change one: model, transport, protocol knobs, address, port, workers, open-file limit."""

from __future__ import annotations

import ipaddress
import os
import resource
from dataclasses import dataclass, field
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from servers.fdlimit import MINIMUM_OPEN_FILES
from servers.registry import MODELS, PROTOCOLS
from servers.registry import model_choices as registry_model_choices

#: Where a server listens unless the form says otherwise.
DEFAULT_BIND = "127.0.0.1"
#: Chat transports and what each means, for the Transport chooser.
CHAT_TRANSPORTS = (
    ("udp — one datagram per message", "udp"),
    ("tcp — one line per message, under a model", "tcp"),
)


def available_models() -> tuple[str, ...]:
    """Every concurrency model, in the course's order (the one list: servers.registry)."""
    return tuple(MODELS)


def available_protocols() -> tuple[str, ...]:
    return tuple(PROTOCOLS)


def model_choices(protocol: str, transport: str) -> dict[str, str | None]:
    """Models offered for ``protocol`` over ``transport``: None if it runs there, else why not."""
    return registry_model_choices(protocol, transport)


def models_note(protocol: str, transport: str) -> str:
    """One sentence under the model chooser saying what is not offered, and why ("" if all run)."""
    choices = model_choices(protocol, transport)
    if transport == "udp":
        reason = next((why for why in choices.values() if why), "")
        return f"{reason}. Choose transport tcp to try the stream models."
    refused = [model for model, why in choices.items() if why]
    if not refused:
        return ""
    return (
        f"Not offered: {', '.join(refused)}. The room lives in one process's memory and "
        "those models serve connections from several processes (2.2.5 进程通信)."
    )


def _offered(choices: dict[str, str | None]) -> list[str]:
    return [model for model, why in choices.items() if why is None]


@dataclass(frozen=True)
class ServerSettings:
    """What the form returns."""

    protocol: str
    model: str
    port: int | None
    workers: int | None
    host: str = DEFAULT_BIND
    #: Protocol options to apply (None removes one, back to its default).
    options: dict[str, Any] = field(default_factory=dict)


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


def parse_drop_rate(text: str) -> float:
    """The UDP chat's ``--drop``: a fraction of datagrams lost, from 0 up to (not including) 1."""
    text = text.strip()
    if not text:
        return 0.0
    try:
        rate = float(text)
    except ValueError:
        raise ValueError(
            f"drop rate must be a number from 0 to 1 (0.1 = 10%), not {text!r}"
        ) from None
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"drop rate must be at least 0 and below 1 (0.1 = 10%), not {rate:g}")
    return rate


def parse_bind_address(text: str) -> str:
    """An IPv4 or IPv6 address to listen on; empty means 127.0.0.1 (this machine only)."""
    text = text.strip().removeprefix("[").removesuffix("]")
    if not text:
        return DEFAULT_BIND
    if text == "localhost":
        return DEFAULT_BIND
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError(
            f"bind address must be an IP address such as 127.0.0.1, ::1 or 0.0.0.0, not {text!r}"
        ) from None


def hard_open_file_limit() -> int:
    """The hard RLIMIT_NOFILE servers started from here inherit (no higher soft limit is allowed)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 2**31 - 1 if hard == resource.RLIM_INFINITY else hard


def parse_open_files(text: str) -> int | None:
    """The server's open-file limit; empty means as high as the hard limit allows."""
    text = text.strip()
    if not text:
        return None
    hard = hard_open_file_limit()
    if not text.isdigit() or not MINIMUM_OPEN_FILES <= int(text) <= hard:
        raise ValueError(
            f"open files must be a number from {MINIMUM_OPEN_FILES} to {hard} "
            "(the hard limit; empty = that limit)"
        )
    return int(text)


def parse_users_file(text: str) -> str | None:
    """An FTP accounts file that exists; empty means anonymous logins only."""
    text = text.strip()
    if not text:
        return None
    path = os.path.expanduser(text)
    if not os.path.isfile(path):
        raise ValueError(
            f"users file {text!r} does not exist "
            "(make one with: python -m servers.ftp.users add FILE NAME)"
        )
    return os.path.abspath(path)


class ServerFormScreen(ModalScreen[ServerSettings | None]):
    """Start a new server (protocol chooser shown) or change one (protocol fixed).

    Rows that do not apply to the chosen protocol (and, for chat, transport) are
    hidden: *Transport* and *Drop rate* are chat's, *Read-only* and *Users file* FTP's.
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    DEFAULT_CSS = """
    ServerFormScreen {
        align: center middle;
    }
    ServerFormScreen > Vertical {
        width: 76;
        max-width: 100%;
        height: auto;
        /* Taller than 24 rows with every field: scroll rather than lose the buttons. */
        max-height: 100%;
        overflow-y: auto;
        border: thick $primary;
        background: $surface;
        padding: 0 2;
    }
    ServerFormScreen #form-title {
        text-style: bold;
        margin-bottom: 1;
    }
    ServerFormScreen Grid {
        grid-size: 2;
        grid-columns: 14 1fr;
        grid-rows: 3;
        height: auto;
    }
    ServerFormScreen Grid Label {
        padding-top: 1;
    }
    ServerFormScreen Grid Checkbox {
        border: none;
        padding-top: 1;
        background: $surface;
    }
    ServerFormScreen #form-model-note {
        color: $text-muted;
        height: auto;
    }
    ServerFormScreen #form-error {
        color: $error;
        height: auto;
    }
    ServerFormScreen Horizontal {
        height: auto;
        align-horizontal: right;
    }
    ServerFormScreen Button {
        margin-left: 1;
    }
    /* Under 30 rows (the app's -short class) one-line fields fit the form on a 24-row
       screen; a bar at each field's left edge marks it and lights up on focus. */
    ServerFormScreen.-short #form-title {
        margin-bottom: 0;
    }
    ServerFormScreen.-short Grid {
        grid-rows: 1;
        grid-gutter: 1 0;
        margin-bottom: 1;
    }
    ServerFormScreen.-short Grid Label,
    ServerFormScreen.-short Grid Checkbox {
        padding-top: 0;
    }
    ServerFormScreen.-short Grid Input,
    ServerFormScreen.-short Grid Select > SelectCurrent {
        border: none;
        border-left: tall $border-blurred;
        height: 1;
        padding: 0 1;
        background: $panel;
    }
    ServerFormScreen.-short Grid Input:focus,
    ServerFormScreen.-short Grid Select:focus > SelectCurrent {
        border-left: tall $border;
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
        host: str = DEFAULT_BIND,
        options: dict[str, Any] | None = None,
        submit_label: str = "Start",
    ) -> None:
        super().__init__()
        self.form_title = title
        self.fixed_protocol = protocol
        self.initial_model = model
        self.initial_port = port
        self.initial_workers = workers
        self.initial_host = host
        self.initial_options = dict(options or {})
        self.submit_label = submit_label

    # -- building -------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        options = self.initial_options
        protocol = self.fixed_protocol or self._first_protocol()
        transport = str(options.get("transport") or "udp")
        drop = options.get("drop")
        open_files = options.get("max_open_files")
        with Vertical():
            yield Label(self.form_title, id="form-title")
            with Grid():
                if self.fixed_protocol is None:
                    yield Label("Protocol")
                    yield Select(
                        [(name, name) for name in available_protocols()],
                        value=protocol,
                        allow_blank=False,
                        id="form-protocol",
                    )
                yield Label("Transport", classes="-chat")
                yield Select(
                    CHAT_TRANSPORTS,
                    value=transport if transport in ("udp", "tcp") else "udp",
                    allow_blank=False,
                    id="form-transport",
                    classes="-chat",
                )
                yield Label("Model")
                offered = _offered(
                    model_choices(protocol, transport if protocol == "chat" else "tcp")
                )
                yield Select(
                    [(name, name) for name in offered],
                    value=self.initial_model if self.initial_model in offered else offered[0],
                    allow_blank=False,
                    id="form-model",
                )
            yield Static("", id="form-model-note")
            with Grid():
                yield Label("Drop rate", classes="-udp")
                yield Input(
                    "" if not drop else f"{float(drop):g}",
                    placeholder="0 to 1: fraction of datagrams lost (0.1 = 10%)",
                    id="form-drop",
                    classes="-udp",
                )
                yield Label("FTP", classes="-ftp")
                yield Checkbox(
                    "Read-only (refuse uploads, deletes, renames)",
                    bool(options.get("read_only")),
                    id="form-read-only",
                    classes="-ftp",
                )
                yield Label("Users file", classes="-ftp")
                yield Input(
                    str(options.get("users") or ""),
                    placeholder="empty = anonymous only; python -m servers.ftp.users add FILE NAME",
                    id="form-users",
                    classes="-ftp",
                )
                yield Label("Bind address")
                yield Input(
                    self.initial_host,
                    placeholder="127.0.0.1 = this machine only; 0.0.0.0 = every interface",
                    id="form-host",
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
                yield Label("Open files")
                yield Input(
                    "" if not open_files else str(open_files),
                    placeholder=f"empty = the hard limit ({hard_open_file_limit()})",
                    id="form-open-files",
                )
            yield Static("", id="form-error")
            with Horizontal():
                yield Button("Cancel", id="form-cancel")
                yield Button(self.submit_label, variant="primary", id="form-submit")

    def on_mount(self) -> None:
        self._show_fields_for(self._protocol(), initial=True)

    def _first_protocol(self) -> str:
        protocols = available_protocols()
        return "http" if "http" in protocols else protocols[0]

    # -- what the form shows follows protocol and transport -----------------------------

    def _protocol(self) -> str:
        if self.fixed_protocol is not None:
            return self.fixed_protocol
        return str(self.query_one("#form-protocol", Select).value)

    def _transport(self, protocol: str) -> str:
        if protocol != "chat":
            return "tcp"
        return str(self.query_one("#form-transport", Select).value)

    @on(Select.Changed, "#form-protocol, #form-transport")
    def _protocol_or_transport_changed(self) -> None:
        self._show_fields_for(self._protocol())

    def _show_fields_for(self, protocol: str, initial: bool = False) -> None:
        transport = self._transport(protocol)
        for widget in self.query(".-chat"):
            widget.display = protocol == "chat"
        for widget in self.query(".-udp"):
            widget.display = protocol == "chat" and transport == "udp"
        for widget in self.query(".-ftp"):
            widget.display = protocol == "ftp"
        offered = _offered(model_choices(protocol, transport))
        model_select = self.query_one("#form-model", Select)
        current = self.initial_model if initial else model_select.value
        model_select.set_options([(name, name) for name in offered])
        if current in offered:
            model_select.value = current
        elif "epoll" in offered:
            model_select.value = "epoll"
        elif offered:
            model_select.value = offered[0]
        model_select.disabled = len(offered) == 1
        note = self.query_one("#form-model-note", Static)
        text = models_note(protocol, transport)
        note.update(text)
        note.display = bool(text)

    # -- submitting -----------------------------------------------------------------

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
        protocol = self._protocol()
        transport = self._transport(protocol)
        try:
            port = parse_port(
                self.query_one("#form-port", Input).value,
                allow_keep=self.fixed_protocol is not None,
            )
            workers = parse_workers(self.query_one("#form-workers", Input).value)
            host = parse_bind_address(self.query_one("#form-host", Input).value)
            open_files = parse_open_files(self.query_one("#form-open-files", Input).value)
            options: dict[str, Any] = {"max_open_files": open_files}
            if protocol == "chat":
                options["transport"] = transport
                # --drop is the UDP room's knob: a TCP chat refuses it, so clear it there.
                drop = parse_drop_rate(self.query_one("#form-drop", Input).value)
                options["drop"] = drop if transport == "udp" and drop else None
            if protocol == "ftp":
                options["read_only"] = self.query_one("#form-read-only", Checkbox).value or None
                options["users"] = parse_users_file(self.query_one("#form-users", Input).value)
        except ValueError as error:
            self.query_one("#form-error", Static).update(str(error))
            return
        model_select = self.query_one("#form-model", Select)
        if model_select.is_blank():
            self.query_one("#form-error", Static).update("choose a model")
            return
        self.dismiss(
            ServerSettings(protocol, str(model_select.value), port, workers, host, options)
        )

    def action_cancel(self) -> None:
        self.dismiss(None)
