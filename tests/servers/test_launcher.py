"""The launcher starts servers in child processes, stops them cleanly and reports crashes."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import psutil
import pytest

from servers.launcher import LaunchError, ServerProcess, ServerSpec, running_server


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_start_with_port_zero_reports_the_bound_port_and_stop_reaps(helpers):
    server = ServerProcess(ServerSpec("echo", "threads"))
    port = server.start()
    try:
        assert port > 0 and server.port == port
        assert server.state == "running"
        assert psutil.Process(server.pid).is_running()
        assert helpers.round_trip(port, b"hi") == b"hi"
    finally:
        server.stop()
    assert server.state == "stopped"
    assert server.exit_description == "exit code 0"  # SIGTERM is a clean stop
    assert not psutil.pid_exists(server.pid) or psutil.Process(server.pid).status() != "zombie"


def test_kill_9_is_reported_as_a_crash_with_its_signal():
    with running_server("echo", "epoll") as server:
        os.kill(server.pid, signal.SIGKILL)
        assert wait_until(lambda: server.poll() == "crashed")
        assert server.exit_description == "killed by SIGKILL"


def test_a_crashed_server_can_be_started_again(helpers):
    server = ServerProcess(ServerSpec("echo", "select"))
    try:
        server.start()
        os.kill(server.pid, signal.SIGKILL)
        assert wait_until(lambda: server.poll() == "crashed")
        port = server.start()
        assert server.state == "running"
        assert helpers.round_trip(port, b"again") == b"again"
    finally:
        server.stop()


@pytest.mark.parametrize("model", ["processes", "pool", "prefork"])
def test_stopping_a_forking_server_leaves_no_descendant(model):
    with running_server("echo", model, workers=2) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
            conn.sendall(b"x")
            assert conn.recv(1) == b"x"
            descendants = psutil.Process(server.pid).children(recursive=True)
            assert descendants
    for process in descendants:
        assert wait_until(lambda p=process: not p.is_running() or p.status() == "zombie", 5)
        assert not psutil.pid_exists(process.pid)


def test_children_die_with_a_killed_server():
    # kill -9 of the server process: its per-connection children must not stay orphaned.
    with running_server("echo", "pool", workers=2) as server:
        workers = psutil.Process(server.pid).children()
        assert len(workers) == 2 or wait_until(
            lambda: len(psutil.Process(server.pid).children()) == 2
        )
        workers = psutil.Process(server.pid).children()
        os.kill(server.pid, signal.SIGKILL)
        assert wait_until(lambda: server.poll() == "crashed")
        for worker in workers:
            assert wait_until(lambda w=worker: not w.is_running(), 5)


def test_a_server_outlives_the_thread_that_started_it(helpers):
    # The app starts servers from worker threads that end right after: the server must stay.
    server = ServerProcess(ServerSpec("echo", "threads"))
    starter = threading.Thread(target=server.start)
    starter.start()
    starter.join()
    try:
        assert server.state == "running"
        assert not wait_until(lambda: server.poll() != "running", 1.0)
        assert helpers.round_trip(server.port, b"still here") == b"still here"
    finally:
        server.stop()


LAUNCHING_PARENT = """
import sys, time
from servers.launcher import ServerProcess, ServerSpec
server = ServerProcess(ServerSpec("echo", "pool", workers=2))
server.start()
print(server.pid, flush=True)
time.sleep(60)
"""


def test_a_server_stops_when_the_process_that_launched_it_is_killed():
    parent = subprocess.Popen(
        [sys.executable, "-c", LAUNCHING_PARENT], stdout=subprocess.PIPE, text=True
    )
    try:
        server = psutil.Process(int(parent.stdout.readline()))
        family = [server, *server.children()]
        parent.kill()
        parent.wait()
        for member in family:
            assert wait_until(lambda m=member: not m.is_running() or m.status() == "zombie", 10), (
                f"{member.pid} outlived the launching process"
            )
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()


def test_port_in_use_is_a_one_line_launch_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ServerProcess(ServerSpec("echo", "epoll", port=port))
        with pytest.raises(LaunchError, match=r"cannot listen on 127\.0\.0\.1:\d+.*in use"):
            server.start()
        server.stop()


def test_unknown_model_is_a_launch_error():
    server = ServerProcess(ServerSpec("echo", "fibers"))
    with pytest.raises(LaunchError, match="unknown model 'fibers'"):
        server.start()
    server.stop()


def test_stats_snapshot_names_the_server(stats_queue, helpers):
    spec = ServerSpec("echo", "poll", server_id="echo-2")
    server = ServerProcess(spec, stats_queue)
    server.start()
    try:
        snapshot = helpers.snapshot(stats_queue, lambda s: s["server_id"] == "echo-2")
        assert snapshot["port"] == server.port
        assert snapshot["pid"] == server.pid
        assert snapshot["ppid"] == os.getpid()
    finally:
        server.stop()


def test_control_message_to_a_stopped_server_is_refused():
    server = ServerProcess(ServerSpec("echo", "threads"))
    with pytest.raises(LaunchError, match="not running"):
        server.send_control({"type": "announce", "text": "hello"})


def test_text_options_are_converted_like_the_command_line(helpers):
    # A form in the workbench hands over text; the option's own type applies.
    with running_server(
        "echo", "epoll", options={"idle_timeout": "0.2", "mode": "lines"}
    ) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
            received = b""
            while chunk := conn.recv(1024):
                received += chunk
    assert received == b"bye: idle timeout\n"


@pytest.mark.parametrize(
    "options,message",
    [
        ({"idle_timeout": "soon"}, "--idle-timeout: invalid value 'soon'"),
        ({"mode": "words"}, "--mode: 'words' is not one of bytes, lines"),
        ({"colour": "blue"}, "echo has no option 'colour'"),
    ],
)
def test_bad_options_are_one_line_launch_errors(options, message):
    server = ServerProcess(ServerSpec("echo", "threads", options=options))
    with pytest.raises(LaunchError, match=re.escape(message)):
        server.start()
    server.stop()
