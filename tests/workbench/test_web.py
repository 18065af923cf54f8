"""``workbench serve``: the page over HTTP, a websocket session running the real app, a clean stop."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time

import aiohttp
import psutil
import pytest

from workbench.web import build_serve_parser, page_urls, session_command

pytestmark = pytest.mark.timeout(90)


def free_port(host: str) -> int:
    # textual-serve writes its port into the page, so it needs a real one, not 0.
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@pytest.fixture
def web_server():
    """``workbench serve`` on 127.0.0.2, each session a workbench without servers of its own."""
    host, port = "127.0.0.2", free_port("127.0.0.2")
    process = subprocess.Popen(
        [sys.executable, "-m", "workbench", "serve", "--host", host, "--port", str(port)]
        + ["--", "--no-servers"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process, f"http://{host}:{port}"
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                for child in psutil.Process(process.pid).children(recursive=True):
                    child.kill()
                process.kill()
                process.wait()
        process.stdout.close()


async def fetch_page(session: aiohttp.ClientSession, url: str, process) -> str:
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, process.stdout.read().decode(errors="replace")
        try:
            async with session.get(url) as response:
                assert response.status == 200
                return await response.text()
        except aiohttp.ClientConnectorError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


def test_the_browser_gets_the_page_and_a_live_workbench_then_all_stops(web_server):
    process, base = web_server

    async def scenario() -> tuple[bytes, list[str]]:
        async with aiohttp.ClientSession() as session:
            page = await fetch_page(session, base + "/", process)
            # The websocket address in the page is the one the browser used.
            assert "ws://" + base.removeprefix("http://") + "/ws" in page
            # A projector's bigger font is a query parameter of the page.
            async with session.get(base + "/?fontsize=28") as response:
                assert 'data-font-size="28"' in await response.text()
            async with session.ws_connect(base + "/ws?width=120&height=32") as websocket:
                screen = b""
                deadline = time.monotonic() + 40
                while b"Network Workbench" not in screen:
                    assert time.monotonic() < deadline, screen[-400:]
                    message = await asyncio.wait_for(websocket.receive(), timeout=40)
                    assert message.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT)
                    if message.type == aiohttp.WSMsgType.BINARY:
                        screen += message.data
                sessions = [
                    " ".join(child.cmdline())
                    for child in psutil.Process(process.pid).children(recursive=True)
                ]
                # Stopping the server with a browser still attached must not hang on it.
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=20)
        return screen, sessions

    screen, sessions = asyncio.run(scenario())
    assert b"Network Workbench" in screen
    assert any("-m workbench --no-servers" in command for command in sessions)
    assert process.returncode == 0
    printed = process.stdout.read().decode(errors="replace")
    assert f"  {base}/" in printed  # the URL to open
    assert "Anyone who can open this page" not in printed  # said only off loopback


def test_app_options_pass_through_and_bad_ones_fail_before_serving(capsys):
    options, rest = build_serve_parser().parse_known_args(["--port", "9", "--connect", "10.0.0.1"])
    assert options.port == 9 and rest == ["--connect", "10.0.0.1"]
    assert session_command(rest).endswith("-m workbench --connect 10.0.0.1")
    from workbench.web import serve_main

    with pytest.raises(SystemExit):
        serve_main(["--", "--listen", "not-an-address"])
    assert "expected an IP address" in capsys.readouterr().err
    assert page_urls("127.0.0.2", 8000) == ["http://127.0.0.2:8000/"]
    assert page_urls("0.0.0.0", 8000)[0] == "http://127.0.0.1:8000/"
