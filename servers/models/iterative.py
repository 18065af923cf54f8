"""Model `iterative`: accept one client, serve it to the end, then the next (course 3.1 循环网络模型).

The simplest server there is, and the baseline the other models improve on:
while one client is being served, every other one waits in the listen backlog.
"""

from __future__ import annotations

import socket

from servers.adapter import blocking_handler_for, serve_connection
from servers.contracts import Application


def serve(listener: socket.socket, app: Application, workers: int | None = None) -> None:
    """Serve ``app`` on ``listener``, one connection at a time, until the server is stopped."""
    handle = blocking_handler_for(app)
    listener.setblocking(True)
    while True:
        conn, address = listener.accept()
        serve_connection(app, handle, conn, address)
