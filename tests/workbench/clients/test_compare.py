"""Tests of Compare models without the UI: real servers under each model, and a verdict that weighs starvation."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from servers.launcher import running_server
from workbench.clients.compare import (
    ModelResult,
    best_model,
    compare_models,
    in_list_order,
    verdict_note,
)
from workbench.clients.loadgen import LoadConfig, LoadStats

pytestmark = pytest.mark.timeout(60)
SITE = Path(__file__).resolve().parents[3] / "servers" / "data" / "site"


@pytest.fixture
def servers() -> Iterator[contextlib.ExitStack]:
    with contextlib.ExitStack() as stack:
        yield stack


def test_the_iterative_server_is_never_crowned(servers: contextlib.ExitStack) -> None:
    def prepare(model: str) -> str:
        server = servers.enter_context(running_server("http", model, options={"root": str(SITE)}))
        return f"http://127.0.0.1:{server.port}"

    results = compare_models(
        ["iterative", "epoll"], prepare, "/index.html", concurrency=5, duration=0.8, processes=0
    )
    iterative, epoll = results
    assert iterative.snapshot is not None and epoll.snapshot is not None
    # One keep-alive client holds the iterative server; the other four wait the whole run.
    assert iterative.starved == 4 and not iterative.fair
    assert epoll.starved == 0 and epoll.fair
    note = verdict_note(iterative)
    assert re.fullmatch(
        r"one client at a time \(循环网络模型, 3\.1\): 4 of 5 waited up to \d\.\d s", note
    ), note
    assert verdict_note(epoll) == ""
    # Even if its answered requests had the lower p99, iterative is not the best.
    assert best_model(results, "p99") == "epoll"
    assert best_model(results, "rps") == "epoll"


def _result(model: str, answered: list[int], latency_us: int, errors: dict | None = None):
    stats = LoadStats(LoadConfig("http://h/", duration=1.0), processes=1)
    stats.start(now=0.0)
    total = sum(answered)
    stats.record_batch(
        [latency_us] * total, {200: total}, errors or {}, 0, now=0.5,
        answered_per_connection=answered,
    )  # fmt: skip
    stats.finish(now=1.0)
    return ModelResult(model, stats.snapshot())


def test_ranking_skips_starving_and_failed_models() -> None:
    results = [
        _result("pool", [500, 0, 0, 490], latency_us=50),  # fastest p99, two starved
        _result("threads", [100, 110, 90, 95], latency_us=400),
        _result("epoll", [300, 310, 290, 305], latency_us=200),
        ModelResult("select", None, "server did not start: boom"),
    ]
    assert best_model(results, "p99") == "epoll"
    assert best_model(results, "rps") == "epoll"
    pool_note = verdict_note(results[0])
    assert pool_note == "a fixed pool, one client per worker (进程池, 2.2.4): 2 of 4 waited"
    assert verdict_note(results[3]) == "server did not start: boom"
    assert best_model(results[:1], "p99") is None  # nothing fair: no winner at all


def test_a_model_that_starves_for_another_reason_still_says_so() -> None:
    result = _result("threads", [1000, 1, 1000, 1000], latency_us=100, errors={"reset": 3})
    assert verdict_note(result) == ("connections starved: 1 of 4 waited; reset: 3")


def test_models_run_in_the_lists_order_not_the_ticking_order() -> None:
    listed = ("iterative", "threads", "pool", "epoll", "asyncio")
    assert in_list_order(["epoll", "iterative", "pool"], listed) == ["iterative", "pool", "epoll"]


def test_a_model_that_cannot_start_is_reported_and_the_rest_still_run(
    servers: contextlib.ExitStack,
) -> None:
    prepared = []

    def prepare(model: str) -> str:
        prepared.append(model)
        if model == "broken":
            raise RuntimeError("port in use")
        server = servers.enter_context(running_server("http", model, options={"root": str(SITE)}))
        return f"http://127.0.0.1:{server.port}"

    results = compare_models(["broken", "epoll"], prepare, "/", requests=20, concurrency=2)
    assert prepared == ["broken", "epoll"]
    assert results[0].snapshot is None and "port in use" in (results[0].error or "")
    assert results[1].snapshot is not None and results[1].snapshot.statuses == {200: 20}
