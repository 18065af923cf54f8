"""The HTTP tab's load generator: how hard to load (form), the live figures, and the JSON/CSV export."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Button, Checkbox, Input, Label, Static

from workbench.clients.http import HttpRequest
from workbench.clients.loadgen import LoadConfig, LoadConfigError, LoadSnapshot, run_load
from workbench.widgets.load_figures import LoadFigures

Number = TypeVar("Number", int, float)


def box_number(box: Input, name: str, convert: Callable[[str], Number]) -> Number | None:
    """The box's number (``convert`` is int or float), None when empty: the box's default.

    A box that does not hold one raises LoadConfigError naming it.
    """
    text = box.value.strip()
    if not text:
        return None
    try:
        return convert(text)
    except ValueError:
        kind = "a whole number" if convert is int else "a number"
        raise LoadConfigError(f"{name} must be {kind}") from None


class LoadPanel(VerticalScroll):
    """Runs the builder's request many times, like ``wrk``; posts RunRequested for that request."""

    DEFAULT_CSS = """
    LoadPanel .form-row { height: auto; padding: 0 1; }
    LoadPanel .form-row Label { padding: 1 1 0 1; }
    LoadPanel .form-row Input { width: 10; }
    LoadPanel .form-row Button { min-width: 10; margin-left: 1; }
    LoadPanel #load-target { height: auto; padding: 0 1; color: $text-muted; }
    """

    #: A load runs now (Run waits, Stop works).
    running: reactive[bool] = reactive(False, init=False)
    #: Compare models runs now: one load at a time on this machine, so Run waits.
    compare_running: reactive[bool] = reactive(False, init=False)
    #: The last finished run, the one Export writes.
    last_load: reactive[LoadSnapshot | None] = reactive(None, init=False)

    class RunRequested(Message):
        """Run pressed: the tab answers with :meth:`start` and the builder's request."""

    class ExportRequested(Message):
        """Export pressed: the tab answers with :meth:`export` and the data folder."""

    class Updated(Message):
        def __init__(self, snapshot: LoadSnapshot, final: bool) -> None:
            super().__init__()
            self.snapshot = snapshot
            self.final = final

    class Failed(Message):
        def __init__(self, reason: str) -> None:
            super().__init__()
            self.reason = reason

    class Exported(Message):
        def __init__(self, paths: tuple[Path, Path] | None, error: str | None = None) -> None:
            super().__init__()
            self.paths = paths
            self.error = error

    def __init__(self, *, processes: int | None = None, id: str | None = None) -> None:
        super().__init__(id=id)
        #: Load worker processes: None = one per core; 0 = a thread (no spawn).
        self.processes = processes
        #: Set to stop the run under way; None when no run is.
        self.stop_event: threading.Event | None = None
        self.last_export: tuple[Path, Path] | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(classes="form-row"):
            # valid_empty: an empty box means "the default", not a mistake to paint red.
            yield Label("connections")
            yield Input(
                "10", id="load-concurrency", type="integer", placeholder="10", valid_empty=True
            )
            yield Label("requests")
            yield Input(
                "2000", id="load-requests", type="integer", placeholder="1000", valid_empty=True
            )
            yield Label("or seconds")
            yield Input("", id="load-duration", type="number", placeholder="-", valid_empty=True)
            yield Checkbox("keep-alive", True, id="load-keepalive")
            yield Button("Run", id="load-start", variant="primary")
            yield Button("Stop", id="load-stop", variant="error", disabled=True)
            yield Button("Export", id="load-export", disabled=True)
        yield Static(
            "Target: the request in the Request tab. An empty box takes its default:"
            " 10 connections; 1,000 requests unless seconds are given.",
            id="load-target",
            markup=False,
        )
        yield LoadFigures(id="load-figures")

    def _sync_buttons(self) -> None:
        self.query_one("#load-start", Button).disabled = self.running or self.compare_running
        self.query_one("#load-stop", Button).disabled = not self.running
        self.query_one("#load-export", Button).disabled = self.running or self.last_load is None

    watch_running = watch_compare_running = watch_last_load = _sync_buttons

    def config_for(self, request: HttpRequest) -> LoadConfig:
        """The load of ``request`` this form describes; raises LoadConfigError."""
        if request.url.startswith("https://"):
            raise LoadConfigError("the load generator speaks plain http:// only")
        return LoadConfig(
            url=request.url,
            method=request.method,
            body=request.body,
            headers=dict(request.headers),
            concurrency=box_number(self.query_one("#load-concurrency", Input), "connections", int)
            or 10,
            requests=box_number(self.query_one("#load-requests", Input), "requests", int),
            duration=box_number(self.query_one("#load-duration", Input), "seconds", float),
            keepalive=self.query_one("#load-keepalive", Checkbox).value,
            processes=self.processes,
        ).validated()

    def start(self, request: HttpRequest) -> None:
        """Load ``request`` as the form says, off the UI thread; a bad form is a notification."""
        if self.running:
            return
        try:
            config = self.config_for(request)
        except LoadConfigError as error:
            self.notify(str(error), title="Load", severity="error")
            return
        amount = f"{config.requests:,} requests" if config.requests else f"{config.duration:g} s"
        self.query_one("#load-target", Static).update(
            f"Target: {config.method} {config.url} · {amount} · {config.concurrency} connections"
            f" · keep-alive {'on' if config.keepalive else 'off'}"
        )
        self.query_one(LoadFigures).reset()
        self.stop_event = threading.Event()
        self.running = True
        self._run_load_in_thread(config, self.stop_event)

    def stop(self) -> None:
        if self.stop_event is not None:
            self.stop_event.set()

    @on(Button.Pressed, "#load-start")
    def _run_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(self.RunRequested())

    @on(Button.Pressed, "#load-stop")
    def _stop_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.stop()

    @on(Button.Pressed, "#load-export")
    def _export_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(self.ExportRequested())

    @work(thread=True, group="http-load", exit_on_error=False)
    def _run_load_in_thread(self, config: LoadConfig, stop: threading.Event) -> None:
        try:
            final = run_load(
                config,
                on_progress=lambda snapshot: self.post_message(self.Updated(snapshot, False)),
                stop_event=stop,
            )
        except (LoadConfigError, OSError) as error:
            self.post_message(self.Failed(str(error)))
        except Exception as error:  # never a traceback in the UI
            self.post_message(self.Failed(f"unexpected {type(error).__name__}: {error}"))
        else:
            self.post_message(self.Updated(final, True))

    def on_load_panel_updated(self, message: Updated) -> None:
        if not message.final and self.stop_event is None:
            return  # a late progress message after the run ended
        self.query_one(LoadFigures).show(message.snapshot)
        if not message.final:
            return
        snapshot = message.snapshot
        self.stop_event = None
        self.last_load = snapshot
        self.running = False
        self.notify(
            f"{snapshot.completed:,} requests, {snapshot.requests_per_second:,.0f} req/s, "
            f"p99 {snapshot.percentiles_ms.get('p99', 0):.2f} ms, {snapshot.failed:,} failed",
            title="Load finished",
            severity="warning" if snapshot.failed else "information",
        )

    def on_load_panel_failed(self, message: Failed) -> None:
        self.stop_event = None
        self.running = False
        self.notify(message.reason, title="Load", severity="error")

    def export(self, folder: Path) -> None:
        """Write the last run as JSON and CSV into ``folder``, off the UI thread."""
        if self.last_load is None:
            self.notify("Run a load first, then export it.", title="Export", severity="warning")
            return
        self._export_in_thread(self.last_load, folder)

    @work(thread=True, group="http-export", exit_on_error=False)
    def _export_in_thread(self, snapshot: LoadSnapshot, folder: Path) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            base, count = folder / f"workbench-load-{stamp}", 1
            while base.with_suffix(".json").exists() or base.with_suffix(".csv").exists():
                base, count = folder / f"workbench-load-{stamp}-{count}", count + 1
            json_path = base.with_suffix(".json")
            csv_path = base.with_suffix(".csv")
            json_path.write_text(snapshot.to_json(), encoding="utf-8")
            csv_path.write_text(snapshot.to_csv(), encoding="utf-8")
        except OSError as error:
            self.post_message(self.Exported(None, f"cannot write the export: {error}"))
        else:
            self.post_message(self.Exported((json_path, csv_path)))

    def on_load_panel_exported(self, message: Exported) -> None:
        if message.paths is None:
            self.notify(message.error or "not exported", title="Export", severity="error")
            return
        self.last_export = message.paths
        json_path, csv_path = message.paths
        self.notify(f"{json_path}\n{csv_path}", title="Exported")
