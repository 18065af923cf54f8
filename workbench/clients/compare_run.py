"""Compare models, the run: restart the HTTP server under each model in turn, load it, put it back.

The orchestration behind the HTTP tab's "Compare models" panel, without the UI:
the caller hands in a small handle on the server (which model serves now, restart
under another) and receives progress lines and each model's result through
callbacks, so a UI worker only turns them into messages. UI-free: no textual or rich.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from workbench.clients.compare import ModelResult, best_model, compare_models
from workbench.clients.loadgen import LoadConfig, LoadSnapshot


class HttpServerSwitch(Protocol):
    """What a comparison needs of the HTTP server it restarts, and no more."""

    def current_model(self) -> str | None:
        """The model the server runs now, None if that cannot be told."""
        ...

    def restart_under(self, model: str) -> str:
        """Restart (or start) the server under ``model``; its base URL, ``http://host:port``."""
        ...


@dataclass(frozen=True)
class ComparePlan:
    """The same load for every model: which models, in order, and what to request of each."""

    models: tuple[str, ...]
    path: str
    concurrency: int = 20
    seconds: float = 3.0
    #: Load worker processes: None = one per core; 0 = a thread in this process.
    processes: int | None = None

    def validated(self) -> ComparePlan:
        """The plan itself if the load generator would take it; raises LoadConfigError."""
        LoadConfig(
            "http://127.0.0.1/", concurrency=self.concurrency, duration=self.seconds
        ).validated()
        return self


@dataclass(frozen=True)
class CompareOutcome:
    """Every model's result, in the plan's order, and what went wrong around them."""

    results: tuple[ModelResult, ...]
    error: str | None = None


def run_comparison(
    plan: ComparePlan,
    server: HttpServerSwitch,
    *,
    on_progress: Callable[[str], None],
    on_model_done: Callable[[ModelResult], None],
    stop: threading.Event | None = None,
) -> CompareOutcome:
    """Run ``plan`` against ``server`` model by model, then put the server back on its model.

    A model whose server cannot start is reported with its error and the others
    still run; ``stop`` ends the model under load early and skips the rest.
    """
    models = list(plan.models)

    def place(model: str) -> str:
        return f"{model} ({models.index(model) + 1} of {len(models)})"

    def progress(model: str, snapshot: LoadSnapshot) -> None:
        on_progress(
            f"{place(model)}: {snapshot.elapsed:.1f} of {plan.seconds:g} s · "
            f"{snapshot.requests_per_second:,.0f} req/s · "
            f"p99 {snapshot.percentiles_ms.get('p99', 0):.1f} ms · "
            f"{snapshot.starved_connections} of {len(snapshot.answered_per_connection)}"
            " connections starved so far"
        )

    original_model = server.current_model()
    try:
        results = compare_models(
            models,
            server.restart_under,
            plan.path,
            concurrency=plan.concurrency,
            duration=plan.seconds,
            processes=plan.processes,
            on_model_start=lambda model: on_progress(
                f"{place(model)}: restarting the HTTP server…"
            ),
            on_progress=progress,
            on_model_done=on_model_done,
            stop_event=stop,
        )
    except Exception as error:  # reported to the user as a line, never a traceback
        return CompareOutcome((), f"{type(error).__name__}: {error}")
    restore_error = None
    if original_model is not None and server.current_model() != original_model:
        on_progress(f"putting the server back on {original_model}…")
        try:
            server.restart_under(original_model)
        except Exception as error:
            restore_error = f"could not put the server back on {original_model}: {error}"
    return CompareOutcome(tuple(results), restore_error)


def describe_outcome(outcome: CompareOutcome) -> str:
    """The panel's closing line: what ran, which fair model won, what was not ranked or run."""
    if outcome.error and not outcome.results:
        return f"Comparison failed: {outcome.error}"
    done = [result for result in outcome.results if result.snapshot is not None]
    failed = [result for result in outcome.results if result.snapshot is None]
    text = f"Compared {len(done)} model{'s' if len(done) != 1 else ''}"
    text += f": {', '.join(result.model for result in done)}." if done else "."
    fastest, quickest = best_model(done, "rps"), best_model(done, "p99")
    if fastest and quickest:
        text += f" Best req/s: {fastest}; best p99: {quickest}."
    elif done:
        text += " No model served every connection: none is ranked."
    unranked = [result.model for result in done if not result.fair]
    if unranked:
        text += f" Not ranked (starved connections): {', '.join(unranked)}."
    if failed:
        text += " Could not run: " + "; ".join(f"{r.model} ({r.error})" for r in failed)
    if outcome.error:
        text += " " + outcome.error
    return text
