"""Benchmark: the workbench HTTP server beside nginx, uvicorn and http.server, measured with wrk.

Run ``python bench/http.py`` (a few minutes at most). It writes a 1 KiB and a
1 MiB file to a temporary directory and serves them from:

* our server under ``epoll``, ``prefork``, ``threads`` and ``processes``;
* nginx with one worker (a config generated in the temporary directory, on a
  loopback port, with ``sendfile`` and ``open_file_cache`` as a tuned nginx has);
* uvicorn with httptools and uvloop, answering the same bytes from memory;
* Python's ``http.server`` (``ThreadingHTTPServer``, HTTP/1.1 so keep-alive works).

Every server is pinned to CPU 0 with ``taskset`` and wrk to CPU 1, wrk keeps 50
connections alive for a few seconds per run, and the best of ``--rounds``
interleaved rounds is kept (the rounds absorb noise from a shared machine). The
table gives requests/s, transfer rate, p99 latency and the ratio to nginx.
Then the C10K check: ``epoll`` and ``prefork`` must hold 10,000 concurrent
keep-alive connections (RLIMIT_NOFILE raised) with no socket errors.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
FILES = {"1 KiB": ("1k.bin", 1024), "1 MiB": ("1m.bin", 1024 * 1024)}
CONNECTIONS = 50
C10K_CONNECTIONS = 10_000
#: Targets from the issue: epoll against nginx, and against http.server.
TARGET_VS_NGINX = 0.8
TARGET_VS_HTTP_SERVER = 10.0


@dataclass
class Result:
    requests_per_second: float = 0.0
    megabytes_per_second: float = 0.0
    p99_ms: float = 0.0
    socket_errors: int = 0
    bad_responses: int = 0
    raw: str = field(default="", repr=False)


@dataclass
class ServerCommand:
    label: str
    argv: list[str]
    #: Our servers print "listening on HOST:PORT"; the others get a free port up front.
    port: int | None = None
    cwd: str | None = None


# -- tools ----------------------------------------------------------------------------


def ensure_wrk() -> str:
    """wrk's path, installing the Debian package when it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found: installing it from the Debian packages (apt-get install wrk)")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run([*sudo, "apt-get", "install", "-y", "wrk"], check=False)
    found = shutil.which("wrk")
    if not found:
        sys.exit("wrk is needed: apt-get install wrk")
    return found


def pinned(cpu: int, argv: list[str]) -> list[str]:
    """``argv`` under ``taskset -c cpu`` when there is a second core to keep apart."""
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(cpu), *argv]
    return argv


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def raise_file_limit(wanted: int) -> int:
    """Raise RLIMIT_NOFILE (inherited by the servers and wrk started after); returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# -- the servers ------------------------------------------------------------------------


def nginx_config(directory: Path, port: int) -> Path:
    config = directory / "nginx.conf"
    config.write_text(
        textwrap.dedent(
            f"""\
            worker_processes 1;
            daemon off;
            pid {directory}/nginx.pid;
            error_log {directory}/nginx-error.log warn;
            events {{ worker_connections 20000; }}
            http {{
                access_log off;
                sendfile on;
                tcp_nopush on;
                tcp_nodelay on;
                keepalive_requests 10000000;
                keepalive_timeout 60s;
                open_file_cache max=1000 inactive=20s;
                default_type application/octet-stream;
                client_body_temp_path {directory}/client_body;
                proxy_temp_path {directory}/proxy;
                fastcgi_temp_path {directory}/fastcgi;
                uwsgi_temp_path {directory}/uwsgi;
                scgi_temp_path {directory}/scgi;
                server {{
                    listen 127.0.0.1:{port} backlog=4096;
                    root {directory}/www;
                }}
            }}
            """
        )
    )
    return config


UVICORN_APP = '''\
"""The benchmark files as an ASGI app: the same bytes, from memory."""
from pathlib import Path

ROOT = Path(__file__).parent / "www"
BODIES = {("/" + path.name).encode(): path.read_bytes() for path in ROOT.iterdir()}


async def app(scope, receive, send):
    body = BODIES.get(scope["raw_path"])
    status = 200 if body is not None else 404
    body = body if body is not None else b"not found"
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/octet-stream"),
                    (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})
'''

HTTP_SERVER_SCRIPT = """\
import functools, http.server, sys
class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like every other server here
    def log_message(self, *args):
        pass
handler = functools.partial(Handler, directory=sys.argv[2])
server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), handler)
server.daemon_threads = True
print("ready", flush=True)
server.serve_forever()
"""


def server_commands(directory: Path) -> list[ServerCommand]:
    www = str(directory / "www")
    ours = [
        ServerCommand(
            f"workbench {model}",
            [PYTHON, "-m", "servers", "http", "--model", model, "--port", "0", "--root", www]
            + (["--workers", "2"] if model == "prefork" else []),
            cwd=str(REPO),
        )
        for model in ("epoll", "prefork", "threads", "processes")
    ]
    nginx_port = free_port()
    uvicorn_port = free_port()
    http_server_port = free_port()
    (directory / "bench_app.py").write_text(UVICORN_APP)
    (directory / "http_server.py").write_text(HTTP_SERVER_SCRIPT)
    for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (directory / name).mkdir(exist_ok=True)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    return [
        ServerCommand(
            "nginx (1 worker)",
            [
                nginx,
                "-e",
                str(directory / "nginx-error.log"),
                "-p",
                str(directory),
                "-c",
                str(nginx_config(directory, nginx_port)),
            ],
            port=nginx_port,
        ),
        *ours,
        ServerCommand(
            "uvicorn+httptools+uvloop",
            [
                PYTHON,
                "-m",
                "uvicorn",
                "bench_app:app",
                "--app-dir",
                str(directory),
                "--host",
                "127.0.0.1",
                "--port",
                str(uvicorn_port),
                "--http",
                "httptools",
                "--loop",
                "uvloop",
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            port=uvicorn_port,
        ),
        ServerCommand(
            "http.server (threading)",
            [PYTHON, str(directory / "http_server.py"), str(http_server_port), www],
            port=http_server_port,
        ),
    ]


@contextlib.contextmanager
def running(command: ServerCommand) -> Iterator[subprocess.Popen]:
    """Start a server pinned to CPU 0, wait until it accepts, always stop its process group."""
    process = subprocess.Popen(
        pinned(0, command.argv),
        cwd=command.cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: workers and children stop with it
    )
    try:
        if command.port is None:
            line = process.stdout.readline() if process.stdout else ""
            match = re.search(r"listening on [^ ]*:(\d+)", line)
            if not match:
                raise RuntimeError(f"{command.label} did not start: {line.strip()!r}")
            command.port = int(match.group(1))
        wait_until_accepting(command.port, process, command.label)
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        if process.stdout:
            process.stdout.close()


def wait_until_accepting(
    port: int, process: subprocess.Popen, label: str, timeout: float = 15
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise RuntimeError(f"{label} exited ({process.returncode}): {output.strip()[-300:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{label} is not accepting on port {port}")


# -- wrk ------------------------------------------------------------------------------------

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_SIZES = {"B": 1 / 1024 / 1024, "KB": 1 / 1024, "MB": 1.0, "GB": 1024.0}


def run_wrk(
    wrk: str, port: int, path: str, seconds: float, connections: int, threads: int = 1
) -> Result:
    argv = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "5s",
        "--latency",
        f"http://127.0.0.1:{port}{path}",
    ]
    done = subprocess.run(
        pinned(1, argv), capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    return parse_wrk(done.stdout + done.stderr)


def parse_wrk(output: str) -> Result:
    result = Result(raw=output)
    if match := re.search(r"Requests/sec:\s+([\d.]+)", output):
        result.requests_per_second = float(match.group(1))
    if match := re.search(r"Transfer/sec:\s+([\d.]+)(B|KB|MB|GB)", output):
        result.megabytes_per_second = float(match.group(1)) * _SIZES[match.group(2)]
    if match := re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.MULTILINE):
        result.p99_ms = float(match.group(1)) * _UNITS[match.group(2)]
    if match := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    ):
        result.socket_errors = sum(int(count) for count in match.groups())
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        result.bad_responses = int(match.group(1))
    return result


# -- the runs ----------------------------------------------------------------------------------


def measure_all(
    directory: Path, wrk: str, seconds: float, rounds: int, only: list[str] | None = None
) -> dict[tuple[str, str], Result]:
    best: dict[tuple[str, str], Result] = {}
    commands = server_commands(directory)
    if only:
        commands = [c for c in commands if any(word in c.label for word in only)]
    for round_number in range(1, rounds + 1):
        for command in commands:
            if "workbench" in command.label:
                command.port = None  # a fresh port each start
            try:
                with running(command):
                    for file_label, (name, _) in FILES.items():
                        result = run_wrk(wrk, command.port, f"/{name}", seconds, CONNECTIONS)
                        key = (command.label, file_label)
                        print(
                            f"  round {round_number}: {command.label:<26} {file_label:>5}: "
                            f"{result.requests_per_second:>9,.0f} req/s",
                            flush=True,
                        )
                        if (
                            key not in best
                            or result.requests_per_second > best[key].requests_per_second
                        ):
                            best[key] = result
            except RuntimeError as error:
                print(f"  {command.label}: skipped ({error})", flush=True)
    return best


def print_table(results: dict[tuple[str, str], Result]) -> list[str]:
    """The side-by-side table; returns the lines of target verdicts."""
    labels = list(dict.fromkeys(label for label, _ in results))
    header = f"{'server':<26} {'file':>6} {'req/s':>10} {'MB/s':>9} {'p99 ms':>8} {'x nginx':>8} {'errors':>7}"
    print()
    print(header)
    print("-" * len(header))
    for file_label in FILES:
        nginx = results.get(("nginx (1 worker)", file_label))
        for label in labels:
            result = results.get((label, file_label))
            if result is None:
                continue
            ratio = (
                f"{result.requests_per_second / nginx.requests_per_second:.2f}x"
                if nginx and nginx.requests_per_second
                else "-"
            )
            errors = result.socket_errors + result.bad_responses
            print(
                f"{label:<26} {file_label:>6} {result.requests_per_second:>10,.0f} "
                f"{result.megabytes_per_second:>9,.1f} {result.p99_ms:>8.2f} {ratio:>8} {errors:>7}"
            )
        print()
    verdicts = []
    for file_label in FILES:
        ours = results.get(("workbench epoll", file_label))
        nginx = results.get(("nginx (1 worker)", file_label))
        stdlib = results.get(("http.server (threading)", file_label))
        if ours and nginx and nginx.requests_per_second:
            ratio = ours.requests_per_second / nginx.requests_per_second
            verdict = "met" if ratio >= TARGET_VS_NGINX else "MISSED"
            verdicts.append(
                f"epoll vs nginx, {file_label}: {ratio:.2f}x (target {TARGET_VS_NGINX}x) {verdict}"
            )
        if ours and stdlib and stdlib.requests_per_second:
            ratio = ours.requests_per_second / stdlib.requests_per_second
            verdict = "met" if ratio >= TARGET_VS_HTTP_SERVER else "MISSED"
            verdicts.append(
                f"epoll vs http.server, {file_label}: {ratio:.1f}x "
                f"(target {TARGET_VS_HTTP_SERVER:g}x) {verdict}"
            )
    return verdicts


def connections_held(port: int) -> int:
    """Connections the server on ``port`` has accepted and holds open, as the kernel sees it.

    ESTABLISHED server-side sockets (``ss`` over netlink) minus those still
    waiting in the listening sockets' accept queues (their Recv-Q).
    """
    if not shutil.which("ss"):
        return -1
    established = subprocess.run(
        ["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    ).stdout
    listening = subprocess.run(
        ["ss", "-Hltn", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    ).stdout
    pairs = {tuple(line.split()[-2:]) for line in established.splitlines() if line.strip()}
    waiting = sum(int(line.split()[1]) for line in listening.splitlines() if line.strip())
    return len(pairs) - waiting


def c10k_check(directory: Path, wrk: str, seconds: float) -> list[str]:
    """wrk with 10,000 connections against epoll and prefork: all held, no socket errors."""
    limit = raise_file_limit(C10K_CONNECTIONS * 2 + 1000)
    lines = [
        f"C10K (RLIMIT_NOFILE soft limit {limit}, {C10K_CONNECTIONS:,} keep-alive connections):"
    ]
    if limit < C10K_CONNECTIONS + 100:
        lines.append(f"  skipped: cannot raise RLIMIT_NOFILE above {limit}")
        return lines
    www = str(directory / "www")
    for model in ("epoll", "prefork"):
        command = ServerCommand(
            f"workbench {model}",
            [PYTHON, "-m", "servers", "http", "--model", model, "--port", "0", "--root", www]
            + (["--workers", "2"] if model == "prefork" else []),
            cwd=str(REPO),
        )
        with running(command):
            wrk_process = subprocess.Popen(
                pinned(
                    1,
                    [
                        wrk,
                        "-t2",
                        f"-c{C10K_CONNECTIONS}",
                        f"-d{seconds:g}s",
                        "--timeout",
                        "10s",
                        "--latency",
                        f"http://127.0.0.1:{command.port}/1k.bin",
                    ],
                ),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            # Count the connections the server holds while wrk is at full strength.
            peak = 0
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and wrk_process.poll() is None:
                peak = max(peak, connections_held(command.port))
                time.sleep(0.2)
            output, _ = wrk_process.communicate(timeout=seconds + 60)
        result = parse_wrk(output)
        held = "held" if peak >= C10K_CONNECTIONS and result.socket_errors == 0 else "NOT held"
        lines.append(
            f"  {model:<8} peak {peak:,} connections accepted and open at once, "
            f"{result.requests_per_second:,.0f} req/s, p99 {result.p99_ms:.1f} ms, "
            f"socket errors {result.socket_errors}, non-2xx {result.bad_responses}: {held}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3, help="length of each wrk run")
    parser.add_argument(
        "--rounds", type=int, default=2, help="interleaved rounds; the best is kept"
    )
    parser.add_argument(
        "--skip-c10k", action="store_true", help="leave out the 10,000-connection check"
    )
    parser.add_argument(
        "--only", nargs="+", metavar="WORD", help="run only the servers whose label contains a WORD"
    )
    options = parser.parse_args()
    wrk = ensure_wrk()
    raise_file_limit(C10K_CONNECTIONS * 2 + 1000)
    with tempfile.TemporaryDirectory(prefix="bench-http-") as temporary:
        directory = Path(temporary)
        # nginx's worker drops root to "nobody": let it read the files.
        directory.chmod(0o755)
        (directory / "www").mkdir(mode=0o755)
        for name, size in FILES.values():
            (directory / "www" / name).write_bytes(os.urandom(size))
            (directory / "www" / name).chmod(0o644)
        cpus = (
            "server on CPU 0, wrk on CPU 1" if (os.cpu_count() or 1) >= 2 else "one CPU: no pinning"
        )
        print(
            f"wrk -t1 -c{CONNECTIONS} -d{options.seconds:g}s, keep-alive; {cpus}; "
            f"best of {options.rounds} rounds"
        )
        results = measure_all(directory, wrk, options.seconds, options.rounds, options.only)
        verdicts = print_table(results)
        for line in verdicts:
            print(line)
        if not options.skip_c10k:
            print()
            for line in c10k_check(directory, wrk, max(options.seconds * 2, 6)):
                print(line)


if __name__ == "__main__":
    main()
