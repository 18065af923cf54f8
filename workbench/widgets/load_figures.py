"""Live figures of a load run: progress, req/s sparkline, latency histogram, percentiles, statuses, errors."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import DataTable, Label, ProgressBar, Sparkline, Static

from workbench.clients.loadgen import LoadSnapshot, describe_fairness
from workbench.widgets.load_charts import BarChart


def describe_rate(snapshot: LoadSnapshot) -> str:
    """One sentence: how many of how many, in how long, how fast, how they ended."""
    state = "done" if snapshot.finished else "running"
    if snapshot.stopped_early:
        state = "stopped"
    completed = f"{snapshot.completed:,}"
    if snapshot.planned_requests:
        amount = (
            f"{completed} of {snapshot.planned_requests:,} requests in {snapshot.elapsed:.2f} s"
        )
    elif snapshot.planned_duration:
        amount = (
            f"{completed} requests in {snapshot.elapsed:.1f} of {snapshot.planned_duration:g} s"
        )
    else:
        amount = f"{completed} requests in {snapshot.elapsed:.2f} s"
    if snapshot.processes:
        plural = "es" if snapshot.processes != 1 else ""
        workers = f"{snapshot.processes} worker process{plural}"
    else:
        workers = "in-process"
    return (
        f"{state}: {amount} · {format_rate(snapshot.requests_per_second)} req/s · "
        f"{snapshot.succeeded:,} ok, {snapshot.failed:,} failed · "
        f"{snapshot.bytes_received / 1e6:,.2f} MB received · {workers}"
    )


def format_rate(per_second: float) -> str:
    """Requests per second: whole numbers, except a slow rate that would round to 0."""
    return f"{per_second:.1f}" if 0 < per_second < 10 else f"{per_second:,.0f}"


def format_ms(value: float) -> str:
    """Milliseconds with the precision that matters at that size."""
    if value < 10:
        return f"{value:.2f}"
    if value < 100:
        return f"{value:.1f}"
    return f"{value:,.0f}"


class LoadFigures(Widget):
    """Everything a load run shows while it runs; call :meth:`show` with each snapshot."""

    DEFAULT_CSS = """
    LoadFigures {
        height: auto;
        layout: vertical;
    }
    LoadFigures #load-summary { height: auto; padding: 0 1; color: $text; }
    LoadFigures #load-progress { padding: 0 1; }
    LoadFigures .load-caption { padding: 0 1; color: $text-muted; }
    LoadFigures #load-rate { height: 3; margin: 0 1; }
    LoadFigures #load-tables { height: auto; }
    LoadFigures #load-percentiles { width: 24; height: auto; }
    LoadFigures #load-histogram { width: 1fr; }
    LoadFigures #load-outcomes { width: 30; height: auto; padding: 0 1; }
    LoadFigures #load-statuses, LoadFigures #load-errors { height: auto; }
    LoadFigures #load-errors { color: $success; }
    LoadFigures #load-errors.-errors { color: $error; }
    LoadFigures #load-fairness { height: auto; padding: 0 1; color: $text-muted; }
    """

    def compose(self) -> ComposeResult:
        yield ProgressBar(total=100, show_eta=False, id="load-progress")
        yield Static("No load run yet.", id="load-summary", markup=False)
        yield Static("", id="load-fairness", markup=False)
        yield Label("requests/s over time", classes="load-caption")
        yield Sparkline([], id="load-rate")
        with Horizontal(id="load-tables"):
            yield DataTable(id="load-percentiles", cursor_type="none", zebra_stripes=True)
            yield BarChart(
                "latency histogram (ms → requests)",
                id="load-histogram",
                empty_text="latencies appear here",
            )
            with Vertical(id="load-outcomes"):
                yield Static("status codes: -", id="load-statuses", markup=False)
                yield Static("errors: none", id="load-errors", markup=False)

    def on_mount(self) -> None:
        table = self.query_one("#load-percentiles", DataTable)
        table.add_column("percentile", key="name")
        table.add_column("ms", key="ms")

    def reset(self) -> None:
        self.query_one(ProgressBar).update(progress=0)
        self.query_one("#load-summary", Static).update("Starting…")
        self.query_one(Sparkline).data = []
        self.query_one(BarChart).set_bars([])
        self.query_one("#load-percentiles", DataTable).clear()
        self.query_one("#load-statuses", Static).update("status codes: -")
        self.query_one("#load-errors", Static).update("errors: none")
        self.query_one("#load-errors", Static).remove_class("-errors")
        self.query_one("#load-fairness", Static).update("")

    def show(self, snapshot: LoadSnapshot) -> None:
        self.query_one(ProgressBar).update(progress=round(snapshot.progress * 100, 1))
        self.query_one("#load-summary", Static).update(describe_rate(snapshot))
        self.query_one(Sparkline).data = list(snapshot.rate_series[-120:])
        self.query_one(BarChart).set_bars(
            [
                (f"{format_ms(low)}–{format_ms(high)}", count)
                for low, high, count in snapshot.histogram
            ]
        )
        table = self.query_one("#load-percentiles", DataTable)
        table.clear()
        for name, value in snapshot.percentiles_ms.items():
            table.add_row(name, f"{value:,.3f}", key=name)
        statuses = "  ".join(f"{code}: {count:,}" for code, count in snapshot.statuses.items())
        self.query_one("#load-statuses", Static).update(f"status codes: {statuses or '-'}")
        errors = "\n".join(f"{kind}: {count:,}" for kind, count in snapshot.errors.items())
        error_view = self.query_one("#load-errors", Static)
        error_view.update(f"errors:\n{errors}" if errors else "errors: none")
        error_view.set_class(bool(errors), "-errors")
        if snapshot.answered_per_connection:
            self.query_one("#load-fairness", Static).update(
                "fairness: " + describe_fairness(snapshot)
            )
