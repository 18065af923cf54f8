"""Compare models: the same load against the server restarted under each model, and a verdict that weighs fairness.

A model is only crowned (best req/s, best p99) if it served every connection:
the iterative server (3.1 循环网络模型) answers one client in microseconds while
the other nineteen wait the whole run, and its p99 — computed over the answered
requests only — would otherwise look like the best. UI-free: no textual or rich.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from workbench.clients.loadgen import (
    STARVED_FRACTION,
    LoadConfig,
    LoadConfigError,
    LoadSnapshot,
    run_load,
)

#: Presets of the "Compare models" panel: key -> (path, what it teaches).
COMPARE_PRESETS: dict[str, tuple[str, str]] = {
    "static": ("/index.html", "static file: little work per request, the model's overhead shows"),
    "sleep": ("/api/sleep?ms=50", "IO-bound: waiting, so threads and event loops overlap requests"),
    "work": ("/api/work?ms=20", "CPU-bound: the GIL serialises threads; only processes scale"),
}

#: Why a model leaves connections waiting, in the course's terms (shown in the note column).
STARVATION_REASONS: dict[str, str] = {
    "iterative": "one client at a time (循环网络模型, 3.1)",
    "pool": "a fixed pool, one client per worker (进程池, 2.2.4)",
}


@dataclass(frozen=True)
class ModelResult:
    """One model's outcome in a comparison: a snapshot, or why it could not run."""

    model: str
    snapshot: LoadSnapshot | None
    error: str | None = None

    @property
    def requests_per_second(self) -> float:
        return self.snapshot.requests_per_second if self.snapshot else 0.0

    @property
    def p99_ms(self) -> float:
        return self.snapshot.percentiles_ms.get("p99", 0.0) if self.snapshot else 0.0

    @property
    def connections(self) -> int:
        return len(self.snapshot.answered_per_connection) if self.snapshot else 0

    @property
    def starved(self) -> int:
        return self.snapshot.starved_connections if self.snapshot else 0

    @property
    def fair(self) -> bool:
        """Ran, answered something, and starved no connection: it may be ranked."""
        snapshot = self.snapshot
        return snapshot is not None and snapshot.succeeded > 0 and snapshot.starved_connections == 0


def verdict_note(result: ModelResult) -> str:
    """The note column: why a model is not ranked, or what went wrong, in one line."""
    snapshot = result.snapshot
    if snapshot is None:
        return result.error or "did not run"
    parts: list[str] = []
    if snapshot.succeeded == 0:
        parts.append("no request answered")
    elif result.starved:
        reason = STARVATION_REASONS.get(result.model, "connections starved")
        waited = ""
        if snapshot.longest_unanswered_ms >= 1:
            waited = f" up to {snapshot.longest_unanswered_ms / 1000:.1f} s"
        parts.append(f"{reason}: {result.starved} of {result.connections} waited{waited}")
    if snapshot.errors:
        parts.append(", ".join(f"{kind}: {count:,}" for kind, count in snapshot.errors.items()))
    if snapshot.stopped_early:
        parts.append("stopped early")
    return "; ".join(parts)


def best_model(results: Iterable[ModelResult], by: str) -> str | None:
    """The fair model with the highest req/s (``by="rps"``) or the lowest p99 (``by="p99"``)."""
    ranked = [result for result in results if result.fair]
    if not ranked:
        return None
    if by == "rps":
        return max(ranked, key=lambda result: result.requests_per_second).model
    if by == "p99":
        return min(ranked, key=lambda result: result.p99_ms).model
    raise ValueError(f"unknown ranking {by!r}")


def starvation_rule() -> str:
    """The definition the UI shows next to the verdict."""
    return (
        f"a connection is starved when it got under {STARVED_FRACTION:.0%} of a fair share "
        "(answered requests / connections); a model that starves any is not ranked"
    )


def in_list_order(ticked: Iterable[str], listed: Sequence[str]) -> list[str]:
    """The ticked models in the order of the list, whatever order they were ticked in."""
    wanted = set(ticked)
    return [model for model in listed if model in wanted]


def compare_models(
    models: Sequence[str],
    prepare_server: Callable[[str], str],
    path: str = "/",
    *,
    concurrency: int = 20,
    requests: int | None = None,
    duration: float | None = 3.0,
    keepalive: bool = True,
    method: str = "GET",
    processes: int | None = None,
    on_model_start: Callable[[str], None] | None = None,
    on_progress: Callable[[str, LoadSnapshot], None] | None = None,
    on_model_done: Callable[[ModelResult], None] | None = None,
    stop_event: threading.Event | None = None,
) -> list[ModelResult]:
    """For each model: ``prepare_server(model)`` -> base URL, then run the same load on ``path``.

    A model whose server cannot start is reported with its error; the others still run.
    """
    results: list[ModelResult] = []
    for model in models:
        if stop_event is not None and stop_event.is_set():
            break
        if on_model_start is not None:
            on_model_start(model)
        try:
            base_url = prepare_server(model)
        except Exception as exc:  # the server's own failure is data for the lesson
            result = ModelResult(model, None, f"server did not start: {exc}")
        else:
            config = LoadConfig(
                url=base_url.rstrip("/") + (path if path.startswith("/") else "/" + path),
                method=method,
                concurrency=concurrency,
                requests=requests,
                duration=None if requests is not None else duration,
                keepalive=keepalive,
                processes=processes,
            )
            callback = None
            if on_progress is not None:

                def callback(snapshot: LoadSnapshot, model: str = model) -> None:
                    on_progress(model, snapshot)

            try:
                result = ModelResult(model, run_load(config, callback, stop_event))
            except (LoadConfigError, OSError) as exc:
                result = ModelResult(model, None, str(exc))
        results.append(result)
        if on_model_done is not None:
            on_model_done(result)
    return results
