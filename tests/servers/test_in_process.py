"""The tab tests' in-process servers: our real servers on threads, stopped however the block ends."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.helpers.servers import in_process_server
from workbench.clients.chat import ChatClient

pytestmark = pytest.mark.timeout(30)


def serving_threads() -> set[str]:
    return {thread.name for thread in threading.enumerate() if thread.name.startswith("in-process")}


def test_the_udp_chat_room_serves_announces_and_stops() -> None:
    with in_process_server("chat", options={"rate_limit": 0}) as server:
        assert serving_threads() == {"in-process-chat"}
        with ChatClient(*server.endpoint) as alice:
            alice.login("alice")
            server.send_control({"type": "announce", "text": "from the test"})
            texts = []
            while "from the test" not in texts:
                event = alice.next_event(5)
                assert event is not None, f"no announcement; saw {texts}"
                texts.append(getattr(event, "text", ""))
    assert serving_threads() == set()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(server.endpoint)  # the port was given back


def test_a_tcp_server_under_threads_answers_and_stops_with_a_client_connected(tmp_path) -> None:
    with in_process_server("ftp", options={"root": str(tmp_path)}) as server:
        client = socket.create_connection(server.endpoint, timeout=5)
        assert client.recv(1024).startswith(b"220")
    # The open connection was shut down by the model's own cleanup, not left hanging.
    assert client.recv(1024) == b""
    client.close()
    assert serving_threads() == set()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(server.endpoint, timeout=5).close()


def test_only_models_that_can_stop_in_process_are_offered() -> None:
    with pytest.raises(ValueError, match="servers.launcher"):
        with in_process_server("http", "epoll"):
            pass


def test_a_server_that_dies_during_the_test_fails_it() -> None:
    with pytest.raises(AssertionError, match="in-process chat server died"):
        with in_process_server("chat") as server:
            server.prepared.sock.close()  # the room's next wait on the socket fails: it dies
            deadline = time.monotonic() + 5
            while server.serving and time.monotonic() < deadline:
                time.sleep(0.01)
            assert not server.serving
