"""Tests of the load generator: statistics maths, a real run against a local server, exports, CLI."""

from __future__ import annotations

import csv
import io
import json
import resource
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from servers.launcher import running_server
from workbench.clients.loadgen import (
    RECV_SIZE,
    LoadConfig,
    LoadConfigError,
    LoadStats,
    build_request,
    cli_main,
    describe_fairness,
    histogram_bins,
    percentile_of_counts,
    run_load,
    target_of,
)

pytestmark = pytest.mark.timeout(30)
SITE = Path(__file__).resolve().parents[3] / "servers" / "data" / "site"
#: A body several of the generator's recv() calls long.
BIG_BODY = 5 * RECV_SIZE + 123


class _KeepAliveHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall
    seen_methods: Counter = Counter()
    seen_bodies: list = []
    lock = threading.Lock()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with self.lock:
            self.seen_methods[self.command] += 1
            if body:
                self.seen_bodies.append(body)
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
            return
        if self.path == "/bad-length":
            self.close_connection = True
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: lots\r\n\r\nxx")
            return
        if self.path == "/until-close":
            self.close_connection = True
            self.wfile.write(b"HTTP/1.0 200 OK\r\n\r\nbody until close")
            return
        status = 404 if self.path == "/missing" else 200
        payload = b"x" * (BIG_BODY if self.path == "/big" else 1024)
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _answer


class _QuietServer(ThreadingHTTPServer):
    request_queue_size = 128  # the default backlog of 5 drops SYNs: 1 s retransmit stalls

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that stop mid-run reset connections; that is expected here


@pytest.fixture
def local_server() -> Iterator[str]:
    _KeepAliveHandler.seen_methods = Counter()
    _KeepAliveHandler.seen_bodies = []
    server = _QuietServer(("127.0.0.1", 0), _KeepAliveHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def closed_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


# --- statistics ---------------------------------------------------------------


def test_percentiles_of_a_known_sample() -> None:
    sample = Counter(range(1, 1001))  # 1..1000, once each
    assert percentile_of_counts(sample, 1000, 50) == 500
    assert percentile_of_counts(sample, 1000, 90) == 900
    assert percentile_of_counts(sample, 1000, 99) == 990
    assert percentile_of_counts(sample, 1000, 99.9) == 999
    assert percentile_of_counts(sample, 1000, 100) == 1000


def test_percentiles_with_repeated_values_and_small_samples() -> None:
    sample = Counter({10: 9, 500: 1})  # nine fast, one slow request
    assert percentile_of_counts(sample, 10, 50) == 10
    assert percentile_of_counts(sample, 10, 90) == 10
    assert percentile_of_counts(sample, 10, 91) == 500
    assert percentile_of_counts(sample, 10, 99) == 500
    assert percentile_of_counts(Counter({7: 1}), 1, 99.9) == 7
    assert percentile_of_counts(Counter(), 0, 50) == 0


def test_snapshot_figures_from_recorded_batches() -> None:
    stats = LoadStats(LoadConfig("http://h/", requests=10), processes=1)
    stats.start(now=100.0)
    stats.record_batch([1000] * 8, {200: 7, 404: 1}, {}, 800, now=100.2)
    stats.record_batch([3000, 9000], {200: 2}, {"timeout": 2}, 200, now=100.7)
    stats.finish(now=102.0)
    snapshot = stats.snapshot()
    assert snapshot.completed == 12 and snapshot.succeeded == 10 and snapshot.failed == 2
    assert snapshot.requests_per_second == pytest.approx(6.0)
    assert snapshot.percentiles_ms == {
        "p50": 1.0,
        "p90": 3.0,
        "p99": 9.0,
        "p99.9": 9.0,
        "max": 9.0,
    }
    assert snapshot.mean_ms == pytest.approx((8 * 1000 + 3000 + 9000) / 10 / 1000)
    assert snapshot.min_ms == 1.0
    assert snapshot.statuses == {200: 9, 404: 1}
    assert snapshot.errors == {"timeout": 2}
    assert snapshot.rate_series == (8 / 0.5, 4 / 0.5)
    assert sum(count for _, _, count in snapshot.histogram) == 10
    assert snapshot.finished and snapshot.progress == 1.0


def test_rate_series_has_no_fake_dip_at_the_end() -> None:
    stats = LoadStats(LoadConfig("http://h/", duration=1.0), processes=1)
    stats.start(now=0.0)
    stats.record_batch([100] * 10, {200: 10}, {}, 0, now=0.1)
    stats.record_batch([100] * 10, {200: 10}, {}, 0, now=0.6)
    assert stats.snapshot(now=0.7).rate_series == (20.0,)  # slot 1 still filling
    stats.record_batch([100] * 3, {200: 3}, {}, 0, now=1.02)
    stats.finish(now=1.05)
    assert stats.snapshot().rate_series == (20.0, 20.0)  # the 50 ms sliver is dropped

    short = LoadStats(LoadConfig("http://h/", requests=5), processes=1)
    short.start(now=0.0)
    short.record_batch([100] * 5, {200: 5}, {}, 0, now=0.05)
    short.finish(now=0.1)
    assert short.snapshot().rate_series == pytest.approx((50.0,))


def test_histogram_bins_cover_every_sample_in_order() -> None:
    counts = Counter({100: 5, 150: 3, 1000: 2, 50_000: 1})
    bins = histogram_bins(counts, bins=10)
    assert len(bins) == 10
    assert sum(count for _, _, count in bins) == 11
    assert bins[0][0] == 100 and bins[-1][1] == 50_000
    assert bins[0][2] == 8 and bins[-1][2] == 1  # 100..186 µs holds 100 and 150
    lows = [low for low, _, _ in bins]
    assert lows == sorted(lows)
    assert histogram_bins(Counter({42: 3})) == [(42, 42, 3)]


def test_exports_parse() -> None:
    stats = LoadStats(LoadConfig("http://h/", requests=3), processes=1)
    stats.start(now=0.0)
    stats.record_batch([1000, 2000], {200: 2}, {"refused": 1}, 20, now=0.1)
    stats.finish(now=1.0)
    snapshot = stats.snapshot()
    data = json.loads(snapshot.to_json())
    assert data["completed"] == 3
    assert data["statuses"] == {"200": 2}
    assert data["errors"] == {"refused": 1}
    assert data["percentiles_ms"]["p50"] == 1.0
    rows = list(csv.DictReader(io.StringIO(snapshot.to_csv())))
    by_key = {(row["section"], row["key"]): row["value"] for row in rows}
    assert by_key[("summary", "completed")] == "3"
    assert by_key[("percentile", "p99")] == "2.0"
    assert by_key[("status", "200")] == "2"
    assert by_key[("error", "refused")] == "1"


# --- configuration -------------------------------------------------------------


def test_request_bytes() -> None:
    config = LoadConfig("http://127.0.0.1:8080/a?b=1", method="post", body=b"hi", keepalive=False)
    raw = build_request(config.validated(), target_of(config.url))
    assert raw.startswith(b"POST /a?b=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n")
    assert b"Content-Length: 2\r\n" in raw and b"Connection: close\r\n" in raw
    assert raw.endswith(b"\r\n\r\nhi")


@pytest.mark.parametrize(
    "config",
    [
        LoadConfig("https://127.0.0.1/"),
        LoadConfig("http:///nohost"),
        LoadConfig("http://h/", concurrency=0),
        LoadConfig("http://h/", requests=10, duration=1.0),
        LoadConfig("http://h/", duration=-1.0),
        LoadConfig("http://h/", method="G ET"),
        LoadConfig("http://h/a b"),
        LoadConfig("http://h/", headers={"X-Price": "5 €"}),  # not Latin-1: cannot be sent
    ],
)
def test_bad_configs_are_refused_with_a_reason(config: LoadConfig) -> None:
    with pytest.raises(LoadConfigError) as caught:
        config.validated()
    assert str(caught.value)


# --- real runs -------------------------------------------------------------------


def test_fixed_count_run_in_a_thread(local_server: str) -> None:
    snapshots = []
    result = run_load(
        LoadConfig(local_server + "/", requests=200, concurrency=4, processes=0),
        on_progress=snapshots.append,
        progress_interval=0.01,
    )
    assert result.completed == 200 and result.succeeded == 200 and result.failed == 0
    assert result.statuses == {200: 200}
    assert result.bytes_received >= 200 * 1024
    assert 0 < result.percentiles_ms["p50"] <= result.percentiles_ms["p99"] <= result.max_ms
    assert result.requests_per_second > 0
    assert _KeepAliveHandler.seen_methods["GET"] == 200
    for earlier, later in zip(snapshots, snapshots[1:], strict=False):
        assert earlier.completed <= later.completed


def test_fixed_count_in_worker_processes_without_keepalive(local_server: str) -> None:
    result = run_load(
        LoadConfig(
            local_server + "/missing",
            requests=60,
            concurrency=4,
            keepalive=False,
            processes=2,
        )
    )
    assert result.processes == 2
    assert result.completed == 60
    assert result.statuses == {404: 60} and result.errors == {}


def test_responses_longer_than_one_read_are_counted_whole(local_server: str) -> None:
    result = run_load(LoadConfig(local_server + "/big", requests=12, concurrency=3, processes=0))
    assert result.statuses == {200: 12} and result.errors == {}
    assert result.bytes_received >= 12 * BIG_BODY


def test_post_body_reaches_the_server(local_server: str) -> None:
    result = run_load(
        LoadConfig(local_server + "/", method="POST", body=b"k=v", requests=5, processes=0)
    )
    assert result.statuses == {200: 5}
    assert _KeepAliveHandler.seen_bodies == [b"k=v"] * 5


def test_head_requests_do_not_wait_for_a_body(local_server: str) -> None:
    result = run_load(LoadConfig(local_server + "/", method="HEAD", requests=20, processes=0))
    assert result.statuses == {200: 20} and result.failed == 0


@pytest.mark.parametrize("path", ["/chunked", "/until-close"])
def test_responses_without_content_length(local_server: str, path: str) -> None:
    result = run_load(LoadConfig(local_server + path, requests=30, concurrency=3, processes=0))
    assert result.statuses == {200: 30} and result.errors == {}


def test_a_malformed_response_is_an_error_kind_not_a_crash(local_server: str) -> None:
    result = run_load(LoadConfig(local_server + "/bad-length", requests=5, processes=0))
    assert result.succeeded == 0
    assert result.errors == {"bad response": 5}


def test_clients_package_never_imports_textual_or_rich() -> None:
    code = (
        "import sys, workbench.clients.loadgen, workbench.clients.http;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_duration_run_stops_on_time(local_server: str) -> None:
    result = run_load(LoadConfig(local_server + "/", duration=0.5, concurrency=2, processes=0))
    assert result.completed > 0
    assert 0.4 <= result.elapsed < 3.0


def test_refused_connections_are_counted_by_kind(closed_port: int) -> None:
    result = run_load(
        LoadConfig(f"http://127.0.0.1:{closed_port}/", requests=30, concurrency=3, processes=0)
    )
    assert result.succeeded == 0
    assert result.errors == {"refused": 30}


def test_stop_event_ends_a_long_run(local_server: str) -> None:
    stop = threading.Event()

    def stop_after_first_progress(snapshot: object) -> None:
        stop.set()

    result = run_load(
        LoadConfig(local_server + "/", duration=20.0, concurrency=2, processes=0),
        on_progress=stop_after_first_progress,
        stop_event=stop,
        progress_interval=0.05,
    )
    assert result.stopped_early
    assert result.elapsed < 5.0


def test_every_connection_counts_its_answers(local_server: str) -> None:
    result = run_load(LoadConfig(local_server + "/", requests=200, concurrency=4, processes=0))
    assert len(result.answered_per_connection) == 4
    assert sum(result.answered_per_connection) == 200
    assert result.unanswered == 0  # a count run ends when the last answer arrives


def test_counts_per_connection_add_up_across_worker_processes(local_server: str) -> None:
    result = run_load(
        LoadConfig(local_server + "/", requests=120, concurrency=6, keepalive=False, processes=2)
    )
    assert len(result.answered_per_connection) == 6
    assert sum(result.answered_per_connection) == result.succeeded == 120


def test_a_one_client_at_a_time_server_starves_the_others() -> None:
    """The iterative model keeps serving its first keep-alive client; the rest get nothing."""
    with running_server("http", "iterative", options={"root": str(SITE)}) as server:
        result = run_load(
            LoadConfig(
                f"http://127.0.0.1:{server.port}/index.html",
                concurrency=4,
                duration=0.8,
                processes=0,
            )
        )
    counts = sorted(result.answered_per_connection)
    assert counts[:3] == [0, 0, 0] and counts[3] == result.succeeded > 0
    assert result.starved_connections == 3
    assert result.unanswered >= 3  # their requests were still waiting at the end...
    assert result.longest_unanswered_ms >= 500  # ...for about the whole run
    assert result.longest_unanswered_ms > result.max_ms  # and the latencies cannot show it
    assert "3 of 4 connections starved" in describe_fairness(result)
    assert "unanswered" in result.summary_text()
    assert json.loads(result.to_json())["starved_connections"] == 3


def test_starved_means_under_a_tenth_of_a_fair_share() -> None:
    stats = LoadStats(LoadConfig("http://h/", requests=10), processes=1)
    stats.start(now=0.0)
    stats.record_batch([100] * 300, {200: 300}, {}, 0, now=0.1, answered_per_connection=[100, 5])
    stats.record_batch(
        [], {}, {}, 0, now=0.2, worker=1, answered_per_connection=[9, 11], unanswered_us=[1500]
    )
    snapshot = stats.snapshot(now=0.3)
    # 125 answers over 4 connections: a fair share of 31.25, a tenth of it 3.125.
    assert snapshot.answered_per_connection == (100, 5, 9, 11)
    assert snapshot.fair_share == pytest.approx(31.25)
    assert snapshot.starved_connections == 0
    stats.record_batch([], {}, {}, 0, now=0.2, worker=1, answered_per_connection=[0, 2])
    later = stats.snapshot(now=0.3)
    assert later.answered_per_connection == (100, 5, 0, 2)  # totals replaced, not added
    assert later.starved_connections == 2
    assert later.unanswered == 1 and later.longest_unanswered_ms == 1.5


# --- CLI ---------------------------------------------------------------------------


def test_cli_json_output(local_server: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main([local_server + "/", "-n", "30", "-c", "3", "-p", "0", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["completed"] == 30 and data["statuses"] == {"200": 30}


def test_cli_text_summary(local_server: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main([local_server + "/", "-n", "10", "-p", "0", "--no-keepalive", "-m", "DELETE"])
    out = capsys.readouterr().out
    assert code == 0
    assert "DELETE" in out and "keep-alive=off" in out and "p99.9" in out and "200: 10" in out


def test_cli_bad_input_is_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["ftp://127.0.0.1/"]) == 2
    assert "only http://" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["http://h/", "-n", "5", "-d", "1"])


def test_a_long_body_costs_time_in_proportion_to_its_length(tmp_path: Path) -> None:
    """Growing the buffer by concatenation copied it per recv: ~0.7 s per 20 MiB body."""
    (tmp_path / "big.bin").write_bytes(bytes(range(256)) * (20 * 4096))
    with running_server("http", "epoll", options={"root": str(tmp_path)}) as server:
        result = run_load(
            LoadConfig(
                f"http://127.0.0.1:{server.port}/big.bin", requests=10, concurrency=1, processes=0
            )
        )
    assert result.statuses == {200: 10}
    assert result.bytes_received > 10 * 20 * 1024 * 1024
    assert result.elapsed < 3.0  # about 0.2 s in place; 7 s when quadratic


def _with_open_file_limit(soft: int, hard: int | None = None):
    """preexec_fn: start the child with a low open-file limit, as on a laptop (ulimit -n 1024)."""

    def lower() -> None:
        _, current_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard or current_hard))

    return lower


def _cli_in_child(url: str, *args: str, preexec) -> tuple[subprocess.CompletedProcess, dict]:
    done = subprocess.run(
        [sys.executable, "-m", "workbench.clients.loadgen", url, "--json", "-p", "1", *args],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=preexec,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done, json.loads(done.stdout)


def test_more_connections_than_the_soft_open_file_limit_still_run(local_server: str) -> None:
    """The worker raises its soft limit for its connections, as a server does for its clients."""
    done, result = _cli_in_child(
        local_server + "/", "-c", "200", "-n", "400", preexec=_with_open_file_limit(128)
    )
    assert done.returncode == 0
    assert result["succeeded"] == 400
    assert result["errors"] == {}


def test_a_hard_open_file_limit_is_an_error_kind_not_a_crash(local_server: str) -> None:
    _, result = _cli_in_child(
        local_server + "/", "-c", "200", "-n", "400", preexec=_with_open_file_limit(96, 96)
    )
    assert result["errors"].get("too many open files (ulimit -n)", 0) > 0
    assert result["succeeded"] > 0  # the connections that fit still did their work
