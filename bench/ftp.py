"""Benchmark: our FTP server against pyftpdlib (FTPServer, ThreadedFTPServer) on the same files, side by side.

Measured for each server, one after another on the same folder in tmpfs
(``/dev/shm``: on disk, writeback noise swamps STOR):

* RETR and STOR of a 200 MB file, MB/s;
* the time for 300 clients to connect and log in (50 at a time, each then QUITs);
* the time for 100 concurrent clients to each download a 1 MiB file.

Each figure is the best of ``--repeat`` rounds, and each round measures every
server in turn, so load from other work on the machine hits them all alike.

The server is pinned to one core and this client to the other (``taskset``),
so a server's figure is what one core of it can do. Everything is bounded:
sizes and counts are fixed, every socket has a timeout.

    python bench/ftp.py [--models threads,pool,epoll] [--size-mb 200] [--repeat 3] [--no-pin]
"""

from __future__ import annotations

import argparse
import contextlib
import ftplib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

PYFTPDLIB_SERVER = """
import sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer, ThreadedFTPServer
import logging
logging.basicConfig(level=logging.ERROR)
authorizer = DummyAuthorizer()
authorizer.add_anonymous(sys.argv[1], perm="elradfmw")
handler = FTPHandler
handler.authorizer = authorizer
handler.auth_failed_timeout = 0
server_class = {"FTPServer": FTPServer, "ThreadedFTPServer": ThreadedFTPServer}[sys.argv[2]]
server = server_class(("127.0.0.1", 0), handler)
server.max_cons = 1024
print("listening on 127.0.0.1:%d" % server.address[1], flush=True)
server.serve_forever(handle_exit=True)
"""

TIMEOUT = 60


@contextlib.contextmanager
def run_server(command: list[str], core: int | None) -> Iterator[int]:
    """Start a server subprocess (pinned with taskset), yield its port, always stop it."""
    if core is not None and shutil.which("taskset"):
        command = ["taskset", "-c", str(core), *command]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        line = process.stdout.readline()
        match = re.search(r"listening on [^ ]*:(\d+)", line)
        if not match:
            raise RuntimeError(f"server did not start: {command!r} said {line!r}")
        yield int(match.group(1))
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


def login(port: int) -> ftplib.FTP:
    ftp = ftplib.FTP(timeout=TIMEOUT)
    ftp.connect("127.0.0.1", port)
    ftp.login("anonymous", "bench@")
    return ftp


def measure_retr(port: int, name: str, size: int) -> float:
    """Seconds to RETR ``name`` (client side: recv_into a reused buffer, nothing stored)."""
    ftp = login(port)
    try:
        ftp.voidcmd("TYPE I")
        buffer = bytearray(1 << 20)
        started = time.perf_counter()
        conn = ftp.transfercmd(f"RETR {name}")
        received = 0
        while count := conn.recv_into(buffer):
            received += count
        conn.close()
        ftp.voidresp()
        elapsed = time.perf_counter() - started
    finally:
        ftp.close()
    if received != size:
        raise RuntimeError(f"RETR got {received} bytes, expected {size}")
    return elapsed


def measure_stor(port: int, source: str, name: str, root: str) -> float:
    """Seconds to STOR ``source`` (client side: socket.sendfile), until the 226."""
    ftp = login(port)
    try:
        ftp.voidcmd("TYPE I")
        with open(source, "rb") as file:
            started = time.perf_counter()
            conn = ftp.transfercmd(f"STOR {name}")
            conn.sendfile(file)
            conn.close()
            ftp.voidresp()
            elapsed = time.perf_counter() - started
    finally:
        ftp.close()
    if os.path.getsize(os.path.join(root, name)) != os.path.getsize(source):
        raise RuntimeError("STOR stored a different size")
    os.unlink(os.path.join(root, name))
    return elapsed


def measure_logins(port: int, clients: int, concurrency: int) -> float:
    """Seconds for ``clients`` clients to connect and log in, ``concurrency`` at a time."""

    def one(_: int) -> None:
        ftp = login(port)
        ftp.quit()

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(clients)))
    return time.perf_counter() - started


def measure_downloads(port: int, clients: int, name: str, size: int) -> float:
    """Seconds for ``clients`` concurrent clients to each download ``name``."""
    start = threading.Barrier(clients)

    def one(_: int) -> None:
        start.wait(TIMEOUT)
        ftp = login(port)
        received = [0]
        ftp.retrbinary(
            f"RETR {name}", lambda data: received.__setitem__(0, received[0] + len(data))
        )
        ftp.quit()
        if received[0] != size:
            raise RuntimeError(f"download got {received[0]} bytes")

    with ThreadPoolExecutor(clients) as pool:
        started = time.perf_counter()
        list(pool.map(one, range(clients)))
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="threads,pool,epoll", help="our models to measure")
    parser.add_argument("--size-mb", type=int, default=200, help="RETR/STOR file size, MB")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per figure (best kept)")
    parser.add_argument("--logins", type=int, default=300)
    parser.add_argument("--downloads", type=int, default=100)
    parser.add_argument("--no-pin", action="store_true", help="let server and client float")
    options = parser.parse_args()

    cores = sorted(os.sched_getaffinity(0))
    pin = not options.no_pin and len(cores) >= 2
    server_core = cores[0] if pin else None
    if pin:
        os.sched_setaffinity(0, {cores[-1]})

    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    root = tempfile.mkdtemp(prefix="ftp-bench-", dir=shm)
    source_dir = tempfile.mkdtemp(prefix="ftp-bench-source-", dir=shm)
    size = options.size_mb * 1_000_000
    try:
        chunk = os.urandom(1 << 20)
        with open(os.path.join(root, "big.bin"), "wb") as file:
            for offset in range(0, size, len(chunk)):
                file.write(chunk[: min(len(chunk), size - offset)])
        shutil.copy(os.path.join(root, "big.bin"), os.path.join(source_dir, "big.bin"))
        with open(os.path.join(root, "small.bin"), "wb") as file:
            file.write(os.urandom(1 << 20))
        # Anonymous users may write only in uploads/ on our server.
        os.mkdir(os.path.join(root, "uploads"))

        servers: list[tuple[str, list[str]]] = [
            ("pyftpdlib FTPServer", [sys.executable, "-c", PYFTPDLIB_SERVER, root, "FTPServer"]),
            (
                "pyftpdlib ThreadedFTPServer",
                [sys.executable, "-c", PYFTPDLIB_SERVER, root, "ThreadedFTPServer"],
            ),
        ]
        for model in options.models.split(","):
            servers.append(
                (
                    f"ours --model {model}",
                    [
                        sys.executable, "-m", "servers", "ftp", "--model", model,
                        "--root", root, "--max-connections", "1024", "--max-per-address", "0",
                        "--login-delay", "0",
                    ],
                )
            )  # fmt: skip

        # All servers run at once (idle ones cost nothing) and every measurement
        # round visits each in turn: on a shared machine the load drifts, and
        # interleaving spreads that drift over all servers instead of one.
        with contextlib.ExitStack() as stack:
            ports = {}
            for label, command in servers:
                ports[label] = stack.enter_context(run_server(command, server_core))
            figures: dict[str, dict[str, list[float]]] = {label: {} for label in ports}

            def record(metric: str, measure: Callable[[int], float]) -> None:
                for label, port in ports.items():
                    figures[label].setdefault(metric, []).append(measure(port))

            for round_number in range(options.repeat):
                print(f"round {round_number + 1}/{options.repeat} ...", file=sys.stderr, flush=True)
                record("retr", lambda port: measure_retr(port, "big.bin", size))
                record(
                    "stor",
                    lambda port: measure_stor(
                        port, os.path.join(source_dir, "big.bin"), "uploads/upload.bin", root
                    ),
                )
                record("logins", lambda port: measure_logins(port, options.logins, 50))
                record(
                    "downloads",
                    lambda port: measure_downloads(port, options.downloads, "small.bin", 1 << 20),
                )
        rows = [
            (
                label,
                size / min(figure["retr"]) / 1e6,
                size / min(figure["stor"]) / 1e6,
                min(figure["logins"]),
                min(figure["downloads"]),
            )
            for label, figure in figures.items()
        ]
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(source_dir, ignore_errors=True)

    baseline = rows[0]
    pinning = f"server on core {server_core}, client on core {cores[-1]}" if pin else "not pinned"
    print(
        f"\nFTP benchmark: {options.size_mb} MB file in {shm or 'a temp folder'}, {pinning}, "
        f"best of {options.repeat} interleaved rounds; {os.cpu_count()} cores, shared machine"
    )
    header = (
        f"{'server':<30} {'RETR MB/s':>10} {'STOR MB/s':>10} "
        f"{f'{options.logins} logins s':>14} {f'{options.downloads}x1MiB s':>12}   vs pyftpdlib FTPServer"
    )
    print(header)
    print("-" * len(header))
    for label, retr, stor, logins, downloads in rows:
        ratios = (
            f"RETR {retr / baseline[1]:.2f}x  STOR {stor / baseline[2]:.2f}x  "
            f"logins {logins / baseline[3]:.2f}x time  downloads {downloads / baseline[4]:.2f}x time"
        )
        print(
            f"{label:<30} {retr:>10.0f} {stor:>10.0f} {logins:>14.2f} {downloads:>12.2f}   {ratios}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
