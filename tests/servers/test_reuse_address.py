"""SO_REUSEADDR: a listener binds over its port's TIME_WAIT sockets with it, and fails without it."""

from __future__ import annotations

import socket

import pytest

from servers.runner import ConfigError, bind_socket, protocol_parser

pytestmark = pytest.mark.timeout(30)


def port_held_by_time_wait(reuse_port: bool = False) -> int:
    """A port whose listener is gone but whose server-closed connection sits in TIME_WAIT."""
    listener = bind_socket("127.0.0.1", 0, "tcp", reuse_port=reuse_port)
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    accepted, _ = listener.accept()
    accepted.close()  # the server sends the first FIN, so its end goes to TIME_WAIT
    assert client.recv(1) == b""
    client.close()
    listener.close()
    return port


def test_without_reuse_address_the_bind_fails_while_time_wait_holds_the_port():
    port = port_held_by_time_wait()
    with pytest.raises(ConfigError, match="address already in use"):
        bind_socket("127.0.0.1", port, "tcp", reuse_address=False)
    # The default sets SO_REUSEADDR: the same port binds at once.
    with bind_socket("127.0.0.1", port, "tcp") as again:
        assert again.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
        assert again.getsockname()[1] == port


def test_without_reuse_address_the_option_is_off_and_the_socket_listens():
    with bind_socket("127.0.0.1", 0, "tcp", reuse_address=False) as listener:
        assert listener.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 0
        with socket.create_connection(listener.getsockname(), timeout=5):
            accepted, _ = listener.accept()
            accepted.close()


def test_the_command_line_option():
    assert protocol_parser("http").parse_args(["--no-reuse-address"]).no_reuse_address
    assert not protocol_parser("echo").parse_args([]).no_reuse_address


def test_so_reuseport_binds_beside_time_wait_sockets_that_had_it_too():
    """Why prefork restarts without SO_REUSEADDR anyway: its TIME_WAIT sockets carry SO_REUSEPORT."""
    port = port_held_by_time_wait(reuse_port=True)
    with pytest.raises(ConfigError, match="address already in use"):
        bind_socket("127.0.0.1", port, "tcp", reuse_address=False)
    with bind_socket("127.0.0.1", port, "tcp", reuse_port=True, reuse_address=False) as again:
        assert again.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 0
        assert again.getsockname()[1] == port


def test_so_reuseport_alone_does_not_pass_time_wait_sockets_without_it():
    port = port_held_by_time_wait(reuse_port=False)
    with pytest.raises(ConfigError, match="address already in use"):
        bind_socket("127.0.0.1", port, "tcp", reuse_port=True, reuse_address=False)
