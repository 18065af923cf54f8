"""Benchmark: ``workbench serve`` from a browser's side — page, first screen of a session, stop.

Starts ``workbench serve`` on a loopback address, then N times in turn: fetches the
page, opens the websocket a browser opens, and times the arrival of the first
screen (bytes holding the app's title), i.e. a new workbench process started and
drawn. Then it opens ``--sessions`` at once and reports the processes they cost,
and stops the server with them attached (SIGTERM), timing the exit.

    python bench/web.py [--rounds 5] [--sessions 3] [-- APP OPTIONS, e.g. --no-servers]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import time

# Run as a script, this folder comes first on the path, and bench/http.py would then
# shadow the standard library's http module, which aiohttp imports.
sys.path[:] = [
    p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))
]

import aiohttp  # noqa: E402
import psutil  # noqa: E402

HOST = "127.0.0.1"


async def first_screen(session: aiohttp.ClientSession, base: str) -> tuple[float, float, object]:
    """(page seconds, first-screen seconds, open websocket)."""
    started = time.perf_counter()
    async with session.get(base + "/") as response:
        assert response.status == 200
        await response.text()
    page = time.perf_counter() - started
    started = time.perf_counter()
    websocket = await session.ws_connect(base + "/ws?width=120&height=32")
    screen = b""
    while b"Network Workbench" not in screen:
        message = await asyncio.wait_for(websocket.receive(), timeout=60)
        if message.type != aiohttp.WSMsgType.BINARY:
            if message.type == aiohttp.WSMsgType.TEXT:
                continue
            raise RuntimeError(f"session ended: {message.type}")
        screen += message.data
    return page, time.perf_counter() - started, websocket


async def measure(base: str, server: subprocess.Popen, rounds: int, sessions: int) -> None:
    async with aiohttp.ClientSession() as session:
        deadline = time.monotonic() + 30
        while True:
            try:
                async with session.get(base + "/"):
                    break
            except aiohttp.ClientConnectorError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        pages, screens = [], []
        for _ in range(rounds):
            page, screen, websocket = await first_screen(session, base)
            pages.append(page)
            screens.append(screen)
            await websocket.close()
        opened = [await first_screen(session, base) for _ in range(sessions)]
        before = psutil.Process(server.pid)
        tree = before.children(recursive=True)
        rss = sum(p.memory_info().rss for p in tree if p.is_running())
        started = time.perf_counter()
        server.send_signal(signal.SIGTERM)
        await asyncio.to_thread(server.wait, 30)
        stop = time.perf_counter() - started
        for _, _, websocket in opened:
            await websocket.close()
    print(f"{'figure':<44} {'value':>12}")
    print(f"{'page (GET /), median':<44} {statistics.median(pages) * 1000:>9.1f} ms")
    print(
        f"{'session first screen, median of ' + str(rounds):<44} {statistics.median(screens):>10.2f} s"
    )
    print(f"{'session first screen, max':<44} {max(screens):>10.2f} s")
    print(f"{'processes for ' + str(sessions) + ' open sessions':<44} {len(tree):>12}")
    print(f"{'their RSS':<44} {rss / 2**20:>9.0f} MiB")
    print(f"{'stop (SIGTERM) with sessions attached':<44} {stop:>10.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sessions", type=int, default=3)
    options, app_options = parser.parse_known_args()
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "workbench", "serve", "--host", HOST, "--port", str(port)]
    server = subprocess.Popen(
        [*command, "--", *[a for a in app_options if a != "--"]],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        asyncio.run(measure(f"http://{HOST}:{port}", server, options.rounds, options.sessions))
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


if __name__ == "__main__":
    main()
