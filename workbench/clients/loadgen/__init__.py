"""HTTP load generator (wrk/oha style): keep-alive socket loops fanned out over processes.

Each worker process drives many non-blocking connections from one ``epoll`` loop
(the course's IO multiplexing, 3.2.4, used from the client side) and reports
batches of latencies a few times a second; the parent merges them into
:class:`LoadStats`, whose :class:`LoadSnapshot` the UI or the CLI renders.
No textual or rich import: this package is shared by the TUI, the CLI and bench/.

- ``config``  what to send, how hard, for how long (validated up front)
- ``engine``  the worker's epoll loop; responses framed by ``http_wire``
- ``fanout``  worker processes (or a thread), batches merged, progress callbacks
- ``stats``   percentiles, histogram, fairness; JSON, CSV and text summaries
- ``cli``     ``workbench bench URL ...``
"""

from workbench.clients.loadgen.cli import build_parser, cli_main
from workbench.clients.loadgen.config import (
    MAX_CONCURRENCY,
    MAX_DURATION,
    MAX_REQUESTS,
    LoadConfig,
    LoadConfigError,
    build_request,
    parse_header_lines,
    target_of,
)
from workbench.clients.loadgen.engine import RECV_SIZE, WORKER_REPORT_INTERVAL
from workbench.clients.loadgen.fanout import (
    DEFAULT_PROGRESS_INTERVAL,
    ProgressCallback,
    default_processes,
    run_load,
)
from workbench.clients.loadgen.stats import (
    PERCENTILES,
    RATE_STEP,
    STARVED_FRACTION,
    LoadSnapshot,
    LoadStats,
    describe_fairness,
    histogram_bins,
    percentile_of_counts,
)

__all__ = [
    "DEFAULT_PROGRESS_INTERVAL",
    "MAX_CONCURRENCY",
    "MAX_DURATION",
    "MAX_REQUESTS",
    "PERCENTILES",
    "RATE_STEP",
    "RECV_SIZE",
    "STARVED_FRACTION",
    "WORKER_REPORT_INTERVAL",
    "LoadConfig",
    "LoadConfigError",
    "LoadSnapshot",
    "LoadStats",
    "ProgressCallback",
    "build_parser",
    "build_request",
    "cli_main",
    "default_processes",
    "describe_fairness",
    "histogram_bins",
    "parse_header_lines",
    "percentile_of_counts",
    "run_load",
    "target_of",
]
