"""Compare models run without the UI: our real HTTP server restarted under each model, loaded, put back."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from servers.launcher import ServerProcess, ServerSpec
from workbench.clients.compare import ModelResult
from workbench.clients.compare_run import (
    CompareOutcome,
    ComparePlan,
    describe_outcome,
    run_comparison,
)
from workbench.clients.loadgen import LoadConfigError, LoadSnapshot

pytestmark = pytest.mark.timeout(60)
SITE = Path(__file__).resolve().parents[3] / "servers" / "data" / "site"


class LauncherSwitch:
    """The HttpServerSwitch the tab gets, over one real server child process."""

    def __init__(self) -> None:
        self.process: ServerProcess | None = None
        self.restarts: list[str] = []
        self.refuse_restore = False

    def current_model(self) -> str | None:
        return self.process.spec.model if self.process is not None else None

    def restart_under(self, model: str) -> str:
        if self.refuse_restore and self.restarts and model == self.restarts[0]:
            raise RuntimeError("the manager refused")
        self.restarts.append(model)
        if self.process is not None:
            self.process.stop()
        self.process = ServerProcess(ServerSpec("http", model, options={"root": str(SITE)}))
        port = self.process.start(timeout=15)
        return f"http://127.0.0.1:{port}"

    def close(self) -> None:
        if self.process is not None:
            self.process.stop()


@pytest.fixture
def server() -> Iterator[LauncherSwitch]:
    switch = LauncherSwitch()
    switch.restart_under("poll")
    try:
        yield switch
    finally:
        switch.close()


class Recorder:
    """The callbacks a UI worker would turn into messages, kept in order."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.done: list[ModelResult] = []

    def progress(self, line: str) -> None:
        self.lines.append(line)

    def model_done(self, result: ModelResult) -> None:
        self.done.append(result)


def test_models_run_in_the_plans_order_and_the_server_goes_back(server: LauncherSwitch) -> None:
    plan = ComparePlan(("threads", "epoll"), "/index.html", concurrency=3, seconds=0.4, processes=0)
    seen = Recorder()
    outcome = run_comparison(
        plan.validated(), server, on_progress=seen.progress, on_model_done=seen.model_done
    )
    assert outcome.error is None
    assert [result.model for result in outcome.results] == ["threads", "epoll"]
    assert list(outcome.results) == seen.done  # each reported as it finished, in order
    for result in outcome.results:
        assert result.snapshot is not None, result.error
        assert result.snapshot.statuses.get(200, 0) > 0 and result.snapshot.errors == {}
        assert result.snapshot.url.endswith("/index.html")
    assert server.restarts == ["poll", "threads", "epoll", "poll"]
    assert server.current_model() == "poll"
    assert seen.lines[0] == "threads (1 of 2): restarting the HTTP server…"
    assert "epoll (2 of 2): restarting the HTTP server…" in seen.lines
    assert any(
        line.startswith("epoll (2 of 2): ") and " req/s · p99 " in line for line in seen.lines
    )
    assert seen.lines[-1] == "putting the server back on poll…"
    assert describe_outcome(outcome).startswith("Compared 2 models: threads, epoll.")


def test_a_cancel_stops_the_model_under_load_and_skips_the_rest(server: LauncherSwitch) -> None:
    stop = threading.Event()
    seen = Recorder()

    def progress(line: str) -> None:
        seen.progress(line)
        if " req/s · " in line:  # the first figures of the first model: the user presses Stop
            stop.set()

    plan = ComparePlan(("threads", "epoll", "asyncio"), "/api/sleep?ms=20", 2, 30.0, processes=0)
    outcome = run_comparison(
        plan, server, on_progress=progress, on_model_done=seen.model_done, stop=stop
    )
    assert [result.model for result in outcome.results] == ["threads"]
    snapshot = outcome.results[0].snapshot
    assert isinstance(snapshot, LoadSnapshot) and snapshot.stopped_early
    assert snapshot.elapsed < 10  # not the 30 s planned
    assert server.restarts == ["poll", "threads", "poll"]  # epoll, asyncio never started


def test_a_model_that_cannot_start_is_reported_and_the_others_run(server: LauncherSwitch) -> None:
    seen = Recorder()
    plan = ComparePlan(("nope", "epoll"), "/index.html", concurrency=2, seconds=0.3, processes=0)
    outcome = run_comparison(plan, server, on_progress=seen.progress, on_model_done=seen.model_done)
    broken, epoll = outcome.results
    assert broken.model == "nope" and broken.snapshot is None
    assert broken.error is not None and broken.error.startswith("server did not start: ")
    assert "unknown model 'nope'" in broken.error
    assert epoll.snapshot is not None and epoll.snapshot.succeeded > 0
    assert seen.done == list(outcome.results)
    assert server.current_model() == "poll"
    summary = describe_outcome(outcome)
    assert summary.startswith("Compared 1 model: epoll.")
    assert "Could not run: nope (server did not start: unknown model 'nope'" in summary


def test_a_server_that_cannot_be_put_back_is_said(server: LauncherSwitch) -> None:
    server.refuse_restore = True
    plan = ComparePlan(("epoll",), "/index.html", concurrency=2, seconds=0.3, processes=0)
    outcome = run_comparison(plan, server, on_progress=lambda _: None, on_model_done=lambda _: None)
    assert [result.model for result in outcome.results] == ["epoll"]
    assert outcome.error == "could not put the server back on poll: the manager refused"
    assert describe_outcome(outcome).endswith(" " + outcome.error)


def test_a_plan_the_load_generator_would_refuse_is_refused_before_any_restart() -> None:
    with pytest.raises(LoadConfigError):
        ComparePlan(("epoll",), "/", concurrency=0, seconds=1.0).validated()
    with pytest.raises(LoadConfigError):
        ComparePlan(("epoll",), "/", concurrency=2, seconds=-1.0).validated()


def test_a_run_that_broke_before_any_result_says_why_in_one_line() -> None:
    outcome = CompareOutcome((), "RuntimeError: boom")
    assert describe_outcome(outcome) == "Comparison failed: RuntimeError: boom"
