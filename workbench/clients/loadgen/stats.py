"""Load-test statistics: worker batches merged into snapshots, and their JSON, CSV and text forms."""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from workbench.clients.loadgen.config import LoadConfig

#: Percentiles every summary reports (p99.9 is the tail a lesson talks about).
PERCENTILES: tuple[float, ...] = (50.0, 90.0, 99.0, 99.9)
#: Width of one point of the requests/s series, in seconds.
RATE_STEP = 0.5
#: A connection is *starved* when it got fewer answers than this fraction of a fair
#: share (answered requests / connections): a tenth of its turn, or nothing at all.
STARVED_FRACTION = 0.1


def percentile_of_counts(counts: Counter, total: int, percent: float) -> int:
    """Nearest-rank percentile of a multiset given as value -> count (0 when empty).

    The smallest recorded value v such that at least ``percent`` % of the samples
    are <= v; that is what wrk/HdrHistogram report, without interpolation.
    """
    if total <= 0:
        return 0
    # round() first: 99.9 / 100 * 1000 is 999.0000000000001 in floating point.
    rank = max(1, math.ceil(round(percent * total / 100.0, 9)))
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        if seen >= rank:
            return value
    return max(counts)


def histogram_bins(counts: Counter, bins: int = 20) -> list[tuple[int, int, int]]:
    """Group latencies (µs) into ``bins`` log-spaced ranges: (low_us, high_us, count).

    Log spacing keeps both the 100 µs body of a loopback run and its 50 ms tail
    readable in one picture.
    """
    if not counts:
        return []
    low, high = min(counts), max(counts)
    if low == high:
        return [(low, high, sum(counts.values()))]
    log_low, log_high = math.log(max(low, 1)), math.log(max(high, 2))
    width = (log_high - log_low) / bins or 1.0
    edges = [round(math.exp(log_low + width * index)) for index in range(bins + 1)]
    edges[0], edges[-1] = low, high
    totals = [0] * bins
    for value, count in counts.items():
        index = int((math.log(max(value, 1)) - log_low) / width) if value > low else 0
        totals[min(max(index, 0), bins - 1)] += count
    return [(edges[index], edges[index + 1], totals[index]) for index in range(bins)]


@dataclass(frozen=True)
class LoadSnapshot:
    """An immutable picture of a run so far: safe to hand to another thread."""

    url: str
    method: str
    concurrency: int
    keepalive: bool
    processes: int
    planned_requests: int | None
    planned_duration: float | None
    elapsed: float
    completed: int
    succeeded: int
    failed: int
    bytes_received: int
    requests_per_second: float
    rate_series: tuple[float, ...]
    percentiles_ms: dict[str, float]
    mean_ms: float
    min_ms: float
    max_ms: float
    histogram: tuple[tuple[float, float, int], ...]
    statuses: dict[int, int]
    errors: dict[str, int]
    finished: bool
    stopped_early: bool = False
    #: Responses each connection got, one entry per client connection (fairness).
    answered_per_connection: tuple[int, ...] = ()
    #: Requests still waiting for an answer when the run ended (not in the latencies).
    unanswered: int = 0
    #: How long the oldest of them had waited, ms.
    longest_unanswered_ms: float = 0.0

    @property
    def fair_share(self) -> float:
        """Answers each connection would have got if the server had shared its time evenly."""
        counts = self.answered_per_connection
        return sum(counts) / len(counts) if counts else 0.0

    @property
    def starved_connections(self) -> int:
        """Connections served less than STARVED_FRACTION of a fair share (0 answers counts)."""
        floor = STARVED_FRACTION * self.fair_share
        return sum(1 for count in self.answered_per_connection if count == 0 or count < floor)

    @property
    def progress(self) -> float:
        """Fraction done, 0..1, by count or by time."""
        if self.finished:
            return 1.0
        if self.planned_requests:
            return min(1.0, self.completed / self.planned_requests)
        if self.planned_duration:
            return min(1.0, self.elapsed / self.planned_duration)
        return 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["statuses"] = {str(code): count for code, count in self.statuses.items()}
        data["histogram"] = [
            {"low_ms": low, "high_ms": high, "count": count} for low, high, count in self.histogram
        ]
        data["rate_series"] = list(self.rate_series)
        data["answered_per_connection"] = list(self.answered_per_connection)
        data["starved_connections"] = self.starved_connections
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_csv(self) -> str:
        """Long format ``section,key,value`` so one csv.DictReader reads every figure."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["section", "key", "value"])
        for key in (
            "url",
            "method",
            "concurrency",
            "keepalive",
            "processes",
            "elapsed",
            "completed",
            "succeeded",
            "failed",
            "bytes_received",
            "requests_per_second",
            "mean_ms",
            "min_ms",
            "max_ms",
            "unanswered",
            "longest_unanswered_ms",
            "starved_connections",
        ):
            writer.writerow(["summary", key, getattr(self, key)])
        for name, value in self.percentiles_ms.items():
            writer.writerow(["percentile", name, value])
        for code, count in sorted(self.statuses.items()):
            writer.writerow(["status", code, count])
        for kind, count in sorted(self.errors.items()):
            writer.writerow(["error", kind, count])
        for low, high, count in self.histogram:
            writer.writerow(["histogram", f"{low}-{high}", count])
        for index, count in enumerate(self.answered_per_connection):
            writer.writerow(["connection", index, count])
        return out.getvalue()

    def summary_text(self) -> str:
        """The plain-text summary the CLI prints (oha-like)."""
        lines = [
            f"{self.method} {self.url}  concurrency={self.concurrency}  "
            f"keep-alive={'on' if self.keepalive else 'off'}  processes={self.processes}",
            f"  requests     {self.completed} in {self.elapsed:.2f} s"
            f"  ({self.succeeded} ok, {self.failed} failed)"
            + ("  [stopped early]" if self.stopped_early else ""),
            f"  throughput   {self.requests_per_second:,.0f} req/s"
            f"  {self.bytes_received / max(self.elapsed, 1e-9) / 1e6:.2f} MB/s",
            f"  latency ms   min {self.min_ms:.3f}  mean {self.mean_ms:.3f}  max {self.max_ms:.3f}",
            "  percentiles  "
            + "  ".join(f"{name} {value:.3f}" for name, value in self.percentiles_ms.items()),
        ]
        if self.answered_per_connection:
            lines.append("  fairness     " + describe_fairness(self))
        if self.unanswered and self.longest_unanswered_ms > self.max_ms:
            # Only worth a line when a wait outlasted every answer: then the
            # percentiles, made of answered requests only, hide it.
            lines.append(
                f"  unanswered   {self.unanswered} request(s) still waiting at the end,"
                f" the oldest for {self.longest_unanswered_ms:,.0f} ms (not in the latencies)"
            )
        if self.statuses:
            lines.append(
                "  status       "
                + "  ".join(f"{code}: {count}" for code, count in sorted(self.statuses.items()))
            )
        if self.errors:
            lines.append(
                "  errors       "
                + "  ".join(f"{kind}: {count}" for kind, count in sorted(self.errors.items()))
            )
        if self.histogram:
            lines.append("  histogram (ms)")
            peak = max(count for _, _, count in self.histogram) or 1
            for low, high, count in self.histogram:
                bar = "#" * max(0, round(40 * count / peak))
                lines.append(f"    {low:9.3f} - {high:9.3f}  {count:8d}  {bar}")
        return "\n".join(lines)


class LoadStats:
    """Merges worker batches; exact latencies kept as a µs -> count multiset."""

    def __init__(self, config: LoadConfig, processes: int) -> None:
        self.config = config
        self.processes = processes
        self.latency_counts: Counter[int] = Counter()
        self.statuses: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.succeeded = 0
        self.failed = 0
        self.bytes_received = 0
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.stopped_early = False
        self._rate_counts: list[int] = []
        #: Per worker: answers per connection so far (each batch carries the running totals).
        self._answered: dict[int, tuple[int, ...]] = {}
        self.unanswered_us: list[int] = []

    @property
    def completed(self) -> int:
        return self.succeeded + self.failed

    def start(self, now: float | None = None) -> None:
        self.started_at = time.monotonic() if now is None else now

    def finish(self, now: float | None = None) -> None:
        self.finished_at = time.monotonic() if now is None else now

    def record_batch(
        self,
        latencies_us: Sequence[int],
        statuses: dict[int, int],
        errors: dict[str, int],
        bytes_received: int,
        now: float | None = None,
        *,
        worker: int = 0,
        answered_per_connection: Sequence[int] | None = None,
        unanswered_us: Sequence[int] = (),
    ) -> None:
        """Add one worker batch; latencies of successful responses only.

        ``answered_per_connection`` is the worker's running total per connection
        (it replaces the last one); ``unanswered_us`` the waits of requests still
        in flight when that worker stopped.
        """
        if answered_per_connection is not None:
            self._answered[worker] = tuple(answered_per_connection)
        self.unanswered_us.extend(unanswered_us)
        self.latency_counts.update(latencies_us)
        self.statuses.update(statuses)
        self.errors.update(errors)
        self.succeeded += len(latencies_us)
        failed = sum(errors.values())
        self.failed += failed
        self.bytes_received += bytes_received
        if self.started_at is not None:
            moment = time.monotonic() if now is None else now
            slot = int(max(0.0, moment - self.started_at) / RATE_STEP)
            while len(self._rate_counts) <= slot:
                self._rate_counts.append(0)
            self._rate_counts[slot] += len(latencies_us) + failed

    def elapsed(self, now: float | None = None) -> float:
        if self.started_at is None:
            return 0.0
        end = self.finished_at
        if end is None:
            end = time.monotonic() if now is None else now
        return max(0.0, end - self.started_at)

    def _rate_series(self, elapsed: float) -> tuple[float, ...]:
        """Requests/s per RATE_STEP slot, without the fake dip of a slot still filling."""
        counts = self._rate_counts
        if not counts:
            return ()
        if self.finished_at is None:
            counts = counts[:-1]  # the current slot is still filling
            return tuple(count / RATE_STEP for count in counts)
        last_length = elapsed - (len(counts) - 1) * RATE_STEP
        if len(counts) > 1 and last_length < RATE_STEP / 2:
            # A sliver at the end (mostly the last batches arriving): not a rate.
            return tuple(count / RATE_STEP for count in counts[:-1])
        last_rate = counts[-1] / min(max(last_length, 1e-3), RATE_STEP)
        return tuple(count / RATE_STEP for count in counts[:-1]) + (last_rate,)

    def snapshot(self, now: float | None = None) -> LoadSnapshot:
        elapsed = self.elapsed(now)
        total = self.succeeded
        counts = self.latency_counts
        to_ms = 1000.0
        percentiles = {
            _percentile_name(p): percentile_of_counts(counts, total, p) / to_ms for p in PERCENTILES
        }
        percentiles["max"] = (max(counts) if counts else 0) / to_ms
        mean = sum(value * count for value, count in counts.items()) / total if total else 0.0
        rates = self._rate_series(elapsed)
        return LoadSnapshot(
            url=self.config.url,
            method=self.config.method,
            concurrency=self.config.concurrency,
            keepalive=self.config.keepalive,
            processes=self.processes,
            planned_requests=self.config.requests,
            planned_duration=self.config.duration,
            elapsed=elapsed,
            completed=self.completed,
            succeeded=self.succeeded,
            failed=self.failed,
            bytes_received=self.bytes_received,
            requests_per_second=self.completed / elapsed if elapsed > 0 else 0.0,
            rate_series=rates,
            percentiles_ms=percentiles,
            mean_ms=mean / to_ms,
            min_ms=(min(counts) if counts else 0) / to_ms,
            max_ms=percentiles["max"],
            histogram=tuple(
                (low / to_ms, high / to_ms, count) for low, high, count in histogram_bins(counts)
            ),
            statuses=dict(sorted(self.statuses.items())),
            errors=dict(sorted(self.errors.items())),
            finished=self.finished_at is not None,
            stopped_early=self.stopped_early,
            answered_per_connection=tuple(
                count for worker in sorted(self._answered) for count in self._answered[worker]
            ),
            unanswered=len(self.unanswered_us),
            longest_unanswered_ms=max(self.unanswered_us, default=0) / to_ms,
        )


def describe_fairness(snapshot: LoadSnapshot) -> str:
    """How evenly the connections were served: min/max answers and the starved count."""
    counts = snapshot.answered_per_connection
    if not counts:
        return "-"
    if not any(counts):
        return f"no answer yet on any of the {len(counts)} connections"
    text = (
        f"answers per connection min {min(counts):,} max {max(counts):,}"
        f" (fair share {snapshot.fair_share:,.0f})"
    )
    starved = snapshot.starved_connections
    if starved:
        text += (
            f"; {starved} of {len(counts)} connections starved"
            f" (under {STARVED_FRACTION:.0%} of a fair share)"
        )
    return text


def _percentile_name(percent: float) -> str:
    return f"p{percent:g}"
