"""The HTTP tab's Compare models panel: ticked models, a preset load, and bars, table and verdict per model."""

from __future__ import annotations

import threading

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Button, DataTable, Input, Label, Select, SelectionList, Static

from workbench.clients.compare import (
    COMPARE_PRESETS,
    ModelResult,
    in_list_order,
    starvation_rule,
    verdict_note,
)
from workbench.clients.compare_run import (
    CompareOutcome,
    ComparePlan,
    HttpServerSwitch,
    describe_outcome,
    run_comparison,
)
from workbench.clients.loadgen import LoadConfigError
from workbench.widgets.http_load import box_number
from workbench.widgets.load_charts import BarChart
from workbench.widgets.server_form import available_models
from workbench.widgets.tick_list import TickList

#: Models ticked by default: one of each family, so a first run is short.
DEFAULT_COMPARE_MODELS = ("threads", "pool", "epoll", "asyncio", "prefork")
COMPARE_COLUMNS = (
    "model",
    "req/s",
    "p50 ms",
    "p99 ms",
    "max ms",
    "ok",
    "failed",
    "answers/conn min–max",
    "starved",
    "note",
)
PRESET_LABELS = {
    "static": "static file (/index.html)",
    "sleep": "/api/sleep?ms=50 (IO-bound)",
    "work": "/api/work?ms=20 (CPU-bound, the GIL)",
}


def table_row(result: ModelResult) -> tuple[str, ...]:
    """One model's row of the comparison table (a model that did not run: dashes and why)."""
    snapshot = result.snapshot
    if snapshot is None:
        return (result.model, *["-"] * 8, verdict_note(result))
    answered = snapshot.answered_per_connection
    return (
        result.model,
        f"{snapshot.requests_per_second:,.0f}",
        f"{snapshot.percentiles_ms['p50']:.2f}",
        f"{snapshot.percentiles_ms['p99']:.2f}",
        f"{snapshot.max_ms:.2f}",
        f"{snapshot.succeeded:,}",
        f"{snapshot.failed:,}",
        f"{min(answered):,}–{max(answered):,}" if answered else "-",
        f"{result.starved} of {result.connections}",
        verdict_note(result),
    )


class ComparePanel(VerticalScroll):
    """Restarts the HTTP server under each ticked model and loads each the same way.

    Compare posts :class:`RunRequested`; the tab answers with :meth:`start` and a
    handle on the server it may restart.
    """

    DEFAULT_CSS = """
    ComparePanel .form-row { height: auto; padding: 0 1; }
    ComparePanel .form-row Label { padding: 1 1 0 1; }
    ComparePanel .form-row Input { width: 10; }
    ComparePanel .form-row Button { min-width: 10; margin-left: 1; }
    ComparePanel #compare-status, ComparePanel #compare-preset-note {
        height: auto; padding: 0 1; color: $text-muted;
    }
    ComparePanel #compare-top { height: auto; }
    ComparePanel #compare-models { width: 30; height: 11; }
    ComparePanel #compare-form { height: auto; width: 1fr; }
    ComparePanel #compare-preset { width: 44; }
    ComparePanel #compare-charts { height: auto; }
    ComparePanel #compare-rps, ComparePanel #compare-p99 { width: 1fr; }
    ComparePanel #compare-table { height: auto; }
    ComparePanel #compare-legend { height: auto; padding: 0 1; color: $text-muted; }
    """

    #: A comparison runs now (Compare waits, Stop works).
    running: reactive[bool] = reactive(False, init=False)
    #: A load runs now: one load at a time on this machine, so Compare waits.
    load_running: reactive[bool] = reactive(False, init=False)
    #: The ticked models, in the list's order.
    ticked: reactive[tuple[str, ...]] = reactive((), init=False)
    #: This comparison's results so far, in the order the models ran.
    results: reactive[tuple[ModelResult, ...]] = reactive((), init=False)

    class RunRequested(Message):
        """Compare pressed."""

    class Progress(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class ModelDone(Message):
        def __init__(self, result: ModelResult) -> None:
            super().__init__()
            self.result = result

    class Finished(Message):
        def __init__(self, outcome: CompareOutcome) -> None:
            super().__init__()
            self.outcome = outcome

    def __init__(self, *, processes: int | None = None, id: str | None = None) -> None:
        super().__init__(id=id)
        #: Load worker processes: None = one per core; 0 = a thread (no spawn).
        self.processes = processes
        #: Set to stop the comparison under way; None when none is.
        self.stop_event: threading.Event | None = None
        self.models = available_models()
        self.default_models = tuple(m for m in self.models if m in DEFAULT_COMPARE_MODELS)
        self.set_reactive(ComparePanel.ticked, self.default_models)

    def compose(self) -> ComposeResult:
        with Horizontal(id="compare-top"):
            yield TickList(
                *[(model, model, model in self.default_models) for model in self.models],
                id="compare-models",
            )
            with Vertical(id="compare-form"):
                yield Select(
                    [(label, key) for key, label in PRESET_LABELS.items()],
                    value="sleep",
                    allow_blank=False,
                    id="compare-preset",
                )
                yield Static(
                    " — ".join(COMPARE_PRESETS["sleep"]), id="compare-preset-note", markup=False
                )
                with Horizontal(classes="form-row"):
                    yield Label("connections")
                    yield Input(
                        "20",
                        id="compare-concurrency",
                        type="integer",
                        placeholder="20",
                        valid_empty=True,
                    )
                    yield Label("seconds each")
                    yield Input(
                        "3", id="compare-seconds", type="number", placeholder="3", valid_empty=True
                    )
                    yield Button("Compare", id="compare-run", variant="primary")
                    yield Button("Stop", id="compare-stop", variant="error", disabled=True)
                yield Static(self._ticked_text(), id="compare-status", markup=False)
        with Horizontal(id="compare-charts"):
            yield BarChart("requests/s (higher is better)", id="compare-rps", best="max")
            yield BarChart(
                "p99 latency ms (lower is better)",
                id="compare-p99",
                best="min",
                value_format=lambda value: f"{value:,.1f}",
            )
        yield Static(
            "Green: the best among models that served every connection. ✗: not ranked — "
            + starvation_rule()
            + ".",
            id="compare-legend",
            markup=False,
        )
        yield DataTable(id="compare-table", cursor_type="none", zebra_stripes=True)

    def on_mount(self) -> None:
        table = self.query_one("#compare-table", DataTable)
        for label in COMPARE_COLUMNS:
            table.add_column(label, key=label)

    def _ticked_text(self) -> str:
        total = len(self.models)
        if not self.ticked:
            return f"No model ticked (of {total}): tick some with Space, then press Compare."
        why = (
            " (one of each family, ticked by default)" if self.ticked == self.default_models else ""
        )
        return (
            f"Will compare {len(self.ticked)} of {total} models{why}, in this order:"
            f" {', '.join(self.ticked)}. Space ticks or unticks."
        )

    def _show_status(self, text: str) -> None:
        self.query_one("#compare-status", Static).update(text)

    @on(SelectionList.SelectedChanged, "#compare-models")
    def _ticks_changed(self, event: SelectionList.SelectedChanged) -> None:
        # SelectionList keeps the ticking order; the run goes in the list's.
        self.ticked = tuple(in_list_order(event.selection_list.selected, self.models))

    def watch_ticked(self) -> None:
        if not self.running:
            self._show_status(self._ticked_text())

    def _sync_buttons(self) -> None:
        self.query_one("#compare-run", Button).disabled = self.running or self.load_running
        self.query_one("#compare-stop", Button).disabled = not self.running

    watch_running = watch_load_running = _sync_buttons

    def watch_results(self, results: tuple[ModelResult, ...]) -> None:
        ran = [result for result in results if result.snapshot is not None]
        unranked = {result.model for result in ran if not result.fair}
        self.query_one("#compare-rps", BarChart).set_bars(
            [(result.model, result.requests_per_second) for result in ran], unranked
        )
        self.query_one("#compare-p99", BarChart).set_bars(
            [(result.model, result.p99_ms) for result in ran], unranked
        )
        table = self.query_one("#compare-table", DataTable)
        table.clear()
        for result in results:
            table.add_row(*table_row(result))

    @on(Select.Changed, "#compare-preset")
    def _preset_changed(self, event: Select.Changed) -> None:
        preset = COMPARE_PRESETS.get(str(event.value))
        if preset is not None:
            self.query_one("#compare-preset-note", Static).update(f"{preset[0]} — {preset[1]}")

    @on(Button.Pressed, "#compare-run")
    def _run_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(self.RunRequested())

    @on(Button.Pressed, "#compare-stop")
    def _stop_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if self.stop_event is not None:
            self.stop_event.set()

    def plan(self) -> ComparePlan:
        """The comparison the panel describes; raises LoadConfigError on a bad box."""
        preset = str(self.query_one("#compare-preset", Select).value)
        return ComparePlan(
            self.ticked,
            COMPARE_PRESETS[preset][0],
            concurrency=box_number(
                self.query_one("#compare-concurrency", Input), "connections", int
            )
            or 20,
            seconds=box_number(self.query_one("#compare-seconds", Input), "seconds", float) or 3.0,
            processes=self.processes,
        ).validated()

    def start(self, server: HttpServerSwitch) -> None:
        """Compare the ticked models on ``server``, off the UI thread; a bad form is a notification."""
        if not self.ticked:
            self.notify("Tick at least one model.", title="Compare models", severity="warning")
            return
        try:
            plan = self.plan()
        except LoadConfigError as error:
            self.notify(str(error), title="Compare models", severity="error")
            return
        self.results = ()
        self.stop_event = threading.Event()
        self.running = True
        self._compare_in_thread(plan, server, self.stop_event)

    @work(thread=True, group="http-compare", exit_on_error=False)
    def _compare_in_thread(
        self, plan: ComparePlan, server: HttpServerSwitch, stop: threading.Event
    ) -> None:
        try:
            outcome = run_comparison(
                plan,
                server,
                on_progress=lambda text: self.post_message(self.Progress(text)),
                on_model_done=lambda result: self.post_message(self.ModelDone(result)),
                stop=stop,
            )
        except Exception as error:  # never a traceback in the UI
            outcome = CompareOutcome((), f"{type(error).__name__}: {error}")
        self.post_message(self.Finished(outcome))

    def on_compare_panel_progress(self, message: Progress) -> None:
        self._show_status(message.text)

    def on_compare_panel_model_done(self, message: ModelDone) -> None:
        self.results = (*self.results, message.result)

    def on_compare_panel_finished(self, message: Finished) -> None:
        outcome = message.outcome
        self.stop_event = None
        self._show_status(describe_outcome(outcome))
        if outcome.error:
            self.notify(outcome.error, title="Compare models", severity="error")
        self.running = False
