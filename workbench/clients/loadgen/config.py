"""What a load test sends, how hard and for how long: validated before any socket opens."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from workbench.clients import http_wire
from workbench.clients.http_wire import HeaderError, ParsedUrl, UrlError

#: Safety bounds: load loops on loopback stay bounded in time and size.
MAX_CONCURRENCY = 2000
MAX_DURATION = 600.0
MAX_REQUESTS = 10_000_000
USER_AGENT = "workbench-loadgen"


class LoadConfigError(ValueError):
    """The load description is unusable (bad URL, bad numbers); the message says why."""


@dataclass
class LoadConfig:
    """What to send, how hard and for how long."""

    url: str
    method: str = "GET"
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    concurrency: int = 10
    requests: int | None = None
    duration: float | None = None
    keepalive: bool = True
    timeout: float = 10.0
    #: Worker processes; 0 runs the loop in a thread of this process, None picks one per core.
    processes: int | None = None

    def validated(self) -> LoadConfig:
        """Return self after checking every field; raise LoadConfigError with a readable reason."""
        self.method = self.method.upper().strip()
        if not self.method or not self.method.isalpha():
            raise LoadConfigError(f"bad method {self.method!r}")
        build_request(self, target_of(self.url))  # raises on a bad URL or header
        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise LoadConfigError(f"concurrency must be 1..{MAX_CONCURRENCY}")
        if self.requests is not None and self.duration is not None:
            raise LoadConfigError("give a request count or a duration, not both")
        if self.requests is None and self.duration is None:
            self.requests = 1000
        if self.requests is not None and not 1 <= self.requests <= MAX_REQUESTS:
            raise LoadConfigError(f"request count must be 1..{MAX_REQUESTS}")
        if self.duration is not None and not 0 < self.duration <= MAX_DURATION:
            raise LoadConfigError(f"duration must be between 0 and {MAX_DURATION:.0f} s")
        if self.timeout <= 0:
            raise LoadConfigError("timeout must be positive")
        if self.processes is not None and self.processes < 0:
            raise LoadConfigError("processes must be 0 or more")
        return self


def target_of(url: str) -> ParsedUrl:
    """Split an http:// URL; only plain HTTP (the generator never does TLS)."""
    scheme, sep, _ = url.strip().partition("://")
    if sep and scheme.lower() != "http":
        raise LoadConfigError(f"bad URL {url!r}: only http:// is supported by the load generator")
    try:
        return http_wire.parse_url(url, schemes=("http",))
    except UrlError as exc:
        raise LoadConfigError(str(exc)) from None


def build_request(config: LoadConfig, target: ParsedUrl) -> bytes:
    """The exact bytes every request puts on the wire (same for all, as wrk does)."""
    try:
        return http_wire.build_request(
            config.method,
            target,
            config.headers.items(),
            config.body,
            user_agent=USER_AGENT,
            accept=None,  # as wrk: every header is parsing work for the server under test
            close=not config.keepalive,
        )
    except HeaderError as exc:
        raise LoadConfigError(str(exc)) from None


def parse_header_lines(lines: Sequence[str]) -> dict[str, str]:
    """'Name: value' strings -> dict; raise LoadConfigError on a line without a colon."""
    headers: dict[str, str] = {}
    for line in lines:
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip() or any(ch.isspace() for ch in name.strip()):
            raise LoadConfigError(f"bad header {line!r}: expected 'Name: value'")
        headers[name.strip()] = value.strip()
    return headers
