"""`python -m servers`: one ready line, clean stop on SIGTERM, one-line errors with status 2."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys

import pytest

READY = re.compile(r"^listening on 127\.0\.0\.1:(\d+) \((\w+), (\w+)\)$")


@pytest.fixture
def run_cli():
    started: list[subprocess.Popen] = []

    def run(*args: str) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-m", "servers", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        return process

    yield run
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


@pytest.mark.parametrize("model", ["threads", "epoll", "prefork"])
def test_ready_line_then_serves_then_stops_on_sigterm(run_cli, helpers, model):
    process = run_cli("echo", "--model", model, "--port", "0", "--workers", "2")
    line = process.stdout.readline().strip()
    match = READY.match(line)
    assert match, line
    port = int(match.group(1))
    assert match.group(2, 3) == ("echo", model)
    assert helpers.round_trip(port, b"over the wire") == b"over the wire"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0


def test_ctrl_c_stops_cleanly(run_cli):
    process = run_cli("echo", "--model", "asyncio")
    assert READY.match(process.stdout.readline().strip())
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 0


@pytest.mark.parametrize(
    "args,message",
    [
        (["gopher"], "unknown protocol 'gopher'"),
        (["echo", "--model", "fibers"], "unknown model 'fibers'"),
        (["echo", "--workers", "0", "--model", "pool"], "--workers must be at least 1"),
    ],
)
def test_bad_names_are_one_line_errors_with_status_2(run_cli, args, message):
    process = run_cli(*args)
    out, err = process.communicate(timeout=20)
    assert process.returncode == 2
    assert out == ""
    assert err.strip().count("\n") == 0 and message in err


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["http", "--keepalive-timeout", "0"],
            "--keepalive-timeout: must be more than 0 seconds, got 0",
        ),
        (["http", "--header-timeout", "soon"], "--header-timeout: not a number of seconds: 'soon'"),
        (["chat", "--rate-limit", "many"], "--rate-limit: not a number: 'many'"),
    ],
)
def test_bad_option_values_are_argparse_errors_with_status_2(run_cli, args, message):
    process = run_cli(*args)
    out, err = process.communicate(timeout=20)
    assert process.returncode == 2
    assert out == "" and "Traceback" not in err
    assert err.strip().splitlines()[-1].endswith(message)


def test_port_in_use_is_a_one_line_error_with_status_2(run_cli):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = run_cli("echo", "--model", "epoll", "--port", str(port))
        out, err = process.communicate(timeout=20)
    assert process.returncode == 2
    assert err.strip() == f"error: cannot listen on 127.0.0.1:{port} (tcp): address already in use"


def test_stdin_lines_are_announced_to_clients(run_cli):
    process = run_cli("echo", "--model", "threads")
    port = int(READY.match(process.stdout.readline().strip()).group(1))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"x")
        assert conn.recv(1) == b"x"
        process.stdin.write("class is over\n")
        process.stdin.flush()
        assert conn.recv(1024) == b"announce: class is over\n"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
