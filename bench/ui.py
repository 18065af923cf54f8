"""Benchmark: the app's key-press latency and its own CPU, in a real terminal, with six servers.

Runs the real workbench in a pseudo-terminal (as a person's terminal would),
with its three default servers plus three more (a second HTTP server, an echo
server under threads and one under epoll). Then, for the Servers tab:

1. idle: the app process's own CPU (its servers are other processes) over a
   few seconds with no traffic;
2. under load: a separate process sends keep-alive HTTP requests to both HTTP
   servers at a paced rate (500/s by default), so about 500 events/s flow
   through the stats queue into the panel's event log; the app's CPU again;
3. key latency, both idle and under load, for two kinds of key at random
   intervals: ``p`` (pause the event log: a small change in the panel) and
   F2..F5 (switch tab: the whole screen changes). Each press is timed until the
   terminal receives the text it brings up -- the key read, handled and drawn.

Figures are printed side by side; targets: a key answered within 100 ms (p99)
with 500 events/s arriving, and the idle app under 10% of a core.

    python bench/ui.py [--rate 500] [--seconds 8] [--presses 40]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import multiprocessing
import os
import random
import re
import select
import signal
import socket
import statistics
import struct
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

import psutil

ROWS, COLUMNS = 40, 130
#: Key sequence of each function key in an xterm, and text only that tab's footer shows.
TAB_KEYS = {
    "chat": (b"\x1bOQ", "Add participant"),
    "ftp": (b"\x1bOR", "Mkdir"),
    "http": (b"\x1bOS", "Copy as curl"),
    "servers": (b"\x1b[15~", "Restart"),
}
EXTRA_SERVERS = (("http", "threads"), ("echo", "threads"), ("echo", "epoll"))
#: The event log's label back at "live": the word drawn as a segment of its own.
LIVE_LABEL = re.compile(r"\x1b\[[0-9;]*mlive\x1b\[")


# -- the app, in the child process ------------------------------------------------------


def run_app_child(ports_file: Path, data_dir: Path) -> None:
    """Child: the real app with three extra servers; writes the HTTP ports when all six run."""
    from workbench.app import WorkbenchApp
    from workbench.data import ensure_data_dir
    from workbench.server_manager import ServerManager

    manager = ServerManager(ensure_data_dir(data_dir))
    app = WorkbenchApp(server_manager=manager, start_servers=True)

    def start_extras() -> None:
        deadline = time.monotonic() + 60
        while not all(manager.endpoint(name) for name in ("chat", "ftp", "http")):
            if time.monotonic() > deadline:
                return
            time.sleep(0.1)
        for protocol, model in EXTRA_SERVERS:
            manager.start(protocol, model)
        ports = [row.port for row in manager.rows() if row.protocol == "http"]
        ports_file.write_text(json.dumps({"http": ports, "servers": len(manager.rows())}))

    threading.Thread(target=start_extras, name="bench-extras", daemon=True).start()
    try:
        app.run()
    finally:
        manager.close()


# -- load, in its own process --------------------------------------------------------------


def paced_http_load(ports: list[int], rate: float, stop: multiprocessing.Event, done) -> None:
    """Keep-alive GETs spread over ``ports`` at ``rate`` requests/s in all until ``stop``."""
    conns = [socket.create_connection(("127.0.0.1", port)) for port in ports]
    request = b"GET /index.html HTTP/1.1\r\nHost: bench\r\n\r\n"
    sent = 0
    started = time.perf_counter()
    while not stop.is_set():
        due = started + sent / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        conn = conns[sent % len(conns)]
        conn.sendall(request)
        _read_one_response(conn)
        sent += 1
    elapsed = time.perf_counter() - started
    for conn in conns:
        conn.close()
    done.put(sent / elapsed)


def _read_one_response(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        body += conn.recv(65536)


# -- the terminal -----------------------------------------------------------------------------


class Terminal:
    """The app in a pseudo-terminal; a reader thread keeps every byte it writes, timestamped."""

    def __init__(self, argv: list[str]) -> None:
        pid, fd = os.forkpty()
        if pid == 0:  # the child: become the app
            os.environ["TERM"] = "xterm-256color"
            os.environ["COLORTERM"] = "truecolor"
            try:
                os.execv(sys.executable, [sys.executable, *argv])
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        self._chunks: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name="pty-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                ready, _, _ = select.select([self.fd], [], [], 0.5)
                if not ready:
                    continue
                data = os.read(self.fd, 65536)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self._chunks.append((time.perf_counter(), data.decode("utf-8", "replace")))

    def mark(self) -> int:
        with self._lock:
            return len(self._chunks)

    def press(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def wait_for(self, text: str | re.Pattern[str], since: int, timeout: float) -> float | None:
        """perf_counter time of the first output after chunk ``since`` that completes ``text``.

        ``text`` is plain text or a pattern searched in the raw output (escapes and all).
        """
        deadline = time.perf_counter() + timeout
        pattern = text if isinstance(text, re.Pattern) else re.compile(re.escape(text))
        while time.perf_counter() < deadline:
            with self._lock:
                chunks = self._chunks[since:]
            joined = ""
            for stamp, chunk in chunks:
                joined += chunk
                if pattern.search(joined):
                    return stamp
            time.sleep(0.002)
        return None

    def close(self) -> int | None:
        """Quit with Ctrl+Q; kill after 15 s. Returns the exit status."""
        with contextlib.suppress(OSError):
            os.write(self.fd, b"\x11")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.05)
        os.kill(self.pid, signal.SIGKILL)
        return os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])


# -- measuring -------------------------------------------------------------------------------


def time_key(terminal: Terminal, keys: bytes, marker: str | re.Pattern[str]) -> float | None:
    """ms from writing ``keys`` to the terminal receiving ``marker``; None if it never came."""
    since = terminal.mark()
    pressed = time.perf_counter()
    terminal.press(keys)
    drawn = terminal.wait_for(marker, since, timeout=3.0)
    return None if drawn is None else (drawn - pressed) * 1000


def tab_switch_latencies(terminal: Terminal, presses: int) -> tuple[list[float], int]:
    """Switch tabs (F2..F5, ending on Servers) at random gaps; each timed until its footer shows."""
    order = ["chat", "servers", "ftp", "servers", "http", "servers"]
    latencies: list[float] = []
    missed = 0
    for index in range(presses):
        keys, marker = TAB_KEYS[order[index % len(order)]]
        latency = time_key(terminal, keys, marker)
        if latency is None:
            missed += 1
        else:
            latencies.append(latency)
        time.sleep(random.uniform(0.05, 0.25))
    if order[(presses - 1) % len(order)] != "servers":
        time_key(terminal, *TAB_KEYS["servers"])
    return latencies, missed


def pause_key_latencies(terminal: Terminal, presses: int) -> tuple[list[float], int]:
    """On the Servers tab, toggle the event log's pause (p); each timed until the new state shows."""
    latencies: list[float] = []
    missed = 0
    for index in range(presses):
        marker = "PAUSED" if index % 2 == 0 else LIVE_LABEL
        latency = time_key(terminal, b"p", marker)
        if latency is None:
            missed += 1
        else:
            latencies.append(latency)
        time.sleep(random.uniform(0.05, 0.25))
    if presses % 2:
        time_key(terminal, b"p", LIVE_LABEL)
    return latencies, missed


def app_cpu_percent(pid: int, seconds: float) -> float:
    """The app process's own CPU (not its servers') over ``seconds``, % of one core."""
    process = psutil.Process(pid)
    before = process.cpu_times()
    time.sleep(seconds)
    after = process.cpu_times()
    used = (after.user - before.user) + (after.system - before.system)
    return 100 * used / seconds


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=500, help="HTTP requests/s of the load")
    parser.add_argument("--seconds", type=float, default=8, help="length of each CPU reading")
    parser.add_argument("--presses", type=int, default=40, help="key presses per phase")
    parser.add_argument(
        "--app-child", nargs=2, metavar=("PORTS_FILE", "DATA_DIR"), help=argparse.SUPPRESS
    )
    options = parser.parse_args(argv)
    if options.app_child:
        run_app_child(Path(options.app_child[0]), Path(options.app_child[1]))
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-ui-") as scratch:
        ports_file = Path(scratch) / "ports.json"
        terminal = Terminal([__file__, "--app-child", str(ports_file), str(Path(scratch) / "data")])
        try:
            deadline = time.monotonic() + 90
            while not ports_file.exists():
                if time.monotonic() > deadline:
                    raise SystemExit("the app did not start its six servers within 90 s")
                time.sleep(0.1)
            started = json.loads(ports_file.read_text())
            print(
                f"app pid {terminal.pid}, {started['servers']} servers, HTTP on {started['http']}"
            )
            # Onto the Servers tab, then let start-up settle.
            since = terminal.mark()
            terminal.press(TAB_KEYS["servers"][0])
            if terminal.wait_for(TAB_KEYS["servers"][1], since, timeout=10) is None:
                raise SystemExit("the Servers tab never showed")
            time.sleep(3)

            idle_cpu = app_cpu_percent(terminal.pid, options.seconds)
            idle_pause = pause_key_latencies(terminal, options.presses)
            idle_tabs = tab_switch_latencies(terminal, options.presses)
            print(f"idle: app CPU {idle_cpu:.1f}%")
            time.sleep(1)
            if not psutil.pid_exists(terminal.pid) or os.waitpid(terminal.pid, os.WNOHANG)[0]:
                raise SystemExit("the app exited during the idle phase")

            context = multiprocessing.get_context("spawn")
            stop, done = context.Event(), context.Queue()
            load = context.Process(
                target=paced_http_load, args=(started["http"], options.rate, stop, done)
            )
            load.start()
            time.sleep(2)  # the event log filling up
            load_cpu = app_cpu_percent(terminal.pid, options.seconds)
            load_pause = pause_key_latencies(terminal, options.presses)
            load_tabs = tab_switch_latencies(terminal, options.presses)
            stop.set()
            achieved_rate = done.get(timeout=30)
            load.join(timeout=10)
        finally:
            status = terminal.close()

    load_name = f"{achieved_rate:,.0f} req/s"
    rows = [
        ("idle", idle_cpu, "p: pause log", *idle_pause),
        ("idle", idle_cpu, "F2-F5: switch tab", *idle_tabs),
        (load_name, load_cpu, "p: pause log", *load_pause),
        (load_name, load_cpu, "F2-F5: switch tab", *load_tabs),
    ]
    print()
    print(
        f"{'phase':<12}{'app CPU %':>10}  {'key':<19}{'n':>4}{'p50 ms':>8}{'p90 ms':>8}"
        f"{'p99 ms':>8}{'max ms':>8}{'missed':>7}"
    )
    for phase, cpu, key, latencies, missed in rows:
        print(
            f"{phase:<12}{cpu:>10.1f}  {key:<19}{len(latencies):>4}"
            f"{statistics.median(latencies) if latencies else float('nan'):>8.0f}"
            f"{percentile(latencies, 0.9):>8.0f}{percentile(latencies, 0.99):>8.0f}"
            f"{max(latencies) if latencies else float('nan'):>8.0f}{missed:>7}"
        )
    print()
    print("app CPU: the app process only (its six servers are other processes); a key is timed")
    print("from its bytes written to the pty until the terminal receives the text it brings up.")
    print("Each request is one 'request' event in the panel's log (keep-alive: no connect events).")
    print(
        f"targets: key < 100 ms with ~500 events/s; idle app < 10% of a core. App exit status: {status}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
