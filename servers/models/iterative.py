"""Model `iterative`: accept one client, serve it to the end, then the next (course 3.1 循环网络模型).

The simplest server there is, and the baseline the other models improve on:
while one client is being served, every other one waits in the listen backlog.
"""

from __future__ import annotations

import socket

from servers.adapter import blocking_handler_for, serve_connection
from servers.contracts import Application
from servers.fdlimit import SpareDescriptor, accept_or_refuse


def serve(listener: socket.socket, app: Application, workers: int | None = None) -> None:
    """Serve ``app`` on ``listener``, one connection at a time, until the server is stopped."""
    handle = blocking_handler_for(app)
    listener.setblocking(True)
    spare = SpareDescriptor(app.stats)
    while True:
        accepted = accept_or_refuse(listener, spare)
        if accepted is None:
            continue  # refused: out of descriptors
        conn, address = accepted
        serve_connection(app, handle, conn, address)
