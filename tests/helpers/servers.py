"""Our servers run on threads of the test process, and stand-ins for the app's directory of servers.

A tab test that is about the tab, not the server process, needs a real server on a
real socket but not a fresh interpreter: :func:`in_process_server` builds the
application exactly as ``python -m servers`` does (``servers.runner.prepare``) and
serves it from a thread on 127.0.0.1, port 0, until the ``with`` block ends
(uvicorn's ``run_server`` pattern). Tests of the process itself (kill -9, restart,
the process tree) keep :func:`servers.launcher.running_server`.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from servers.runner import PreparedServer, options_for, prepare
from servers.signals import HelperThread
from workbench.messages import EndpointChanged

if TYPE_CHECKING:
    from pyftpdlib.handlers import FTPHandler
    from textual.widget import Widget

#: Models that serve a TCP protocol in-process: the listener's shutdown wakes their accept().
IN_PROCESS_MODELS = frozenset({"threads"})


class InProcessServer:
    """One of our servers serving from a thread of this process (see :func:`in_process_server`)."""

    def __init__(self, prepared: PreparedServer) -> None:
        self.prepared = prepared
        self.protocol = prepared.protocol
        self.host, self.port = prepared.address
        self.failure: BaseException | None = None
        self._thread = HelperThread(
            target=self._serve, name=f"in-process-{self.protocol}", daemon=True
        )
        self._stopped = False

    @property
    def endpoint(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def serving(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def _serve(self) -> None:
        try:
            self.prepared.run_loop()
        except BaseException as error:
            # After stop(), the listener's shutdown ends accept() with EINVAL: that is the stop.
            if not self._stopped:
                self.failure = error

    def send_control(self, message: dict) -> None:
        """What the launcher's control channel carries (``{"type": "announce", ...}``)."""
        if self._stopped or self.prepared.app.control is None:
            raise RuntimeError(f"{self.protocol} takes no control messages now")
        self.prepared.app.control(message)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and close the socket; returns once the serving thread has ended."""
        if self._stopped:
            return
        self._stopped = True
        prepared = self.prepared
        if prepared.transport == "udp":
            assert prepared.app.stop_datagrams is not None
            prepared.app.stop_datagrams()
        else:
            with contextlib.suppress(OSError):
                prepared.sock.shutdown(socket.SHUT_RDWR)
        if self._thread.is_alive():
            self._thread.join(timeout)
        prepared.sock.close()
        if self._thread.is_alive():
            raise AssertionError(f"in-process {self.protocol} server did not stop in {timeout} s")
        if self.failure is not None:
            raise AssertionError(f"in-process {self.protocol} server died: {self.failure!r}")


@contextlib.contextmanager
def in_process_server(
    protocol: str, model: str = "threads", *, options: dict[str, Any] | None = None
) -> Iterator[InProcessServer]:
    """Serve ``protocol`` on 127.0.0.1 (a free port) from a thread for the ``with`` block."""
    if model not in IN_PROCESS_MODELS:
        raise ValueError(f"{model} cannot be stopped in-process; use servers.launcher")
    # prepare() raises the soft open-file limit for a server process; the test process keeps its own.
    open_files = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        prepared = prepare(protocol, model, options_for(protocol, options), port=0)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, open_files)
    server = InProcessServer(prepared)
    try:
        server.start()
        yield server
    finally:
        server.stop()


class FakeServerDirectory:
    """A directory of servers whose servers are only addresses the test sets (no rows, no clients).

    It runs nothing: ``row`` has no process to describe and no server is the default.
    A test moves a server with :meth:`move`, which tells the tab as the workbench app does.
    """

    remote = None

    def __init__(
        self, endpoints: dict[str, tuple[str, int]] | None = None, data_dir: Path | None = None
    ) -> None:
        self.endpoints: dict[str, tuple[str, int] | None] = dict(endpoints or {})
        self.data_dir = data_dir

    def endpoint(self, protocol: str) -> tuple[str, int] | None:
        return self.endpoints.get(protocol)

    def default_server_id(self, protocol: str) -> str | None:
        return None

    def row(self, server_id: str) -> None:
        return None

    def rows(self) -> tuple[()]:
        return ()

    def clients(self, server_id: str) -> None:
        return None

    def move(self, tab: Widget, protocol: str, address: tuple[str, int] | None) -> None:
        """The server moved: what the workbench app then tells its tabs."""
        self.endpoints[protocol] = address
        tab.post_message(EndpointChanged(protocol, address))


@contextlib.contextmanager
def pyftpdlib_server(handler: type[FTPHandler]) -> Iterator[int]:
    """pyftpdlib serving ``handler`` on 127.0.0.1 (a free port) from a thread; yields the port."""
    # Imported here: pyftpdlib brings asyncore's deprecation warning to whoever imports it.
    from pyftpdlib.servers import FTPServer

    server = FTPServer(("127.0.0.1", 0), handler)
    serving = threading.Event()
    serving.set()

    def loop() -> None:
        while serving.is_set():
            server.serve_forever(timeout=0.05, blocking=False, handle_exit=False)

    thread = threading.Thread(target=loop, name="pyftpdlib", daemon=True)
    thread.start()
    try:
        yield server.address[1]
    finally:
        serving.clear()
        thread.join(5)
        server.close_all()
