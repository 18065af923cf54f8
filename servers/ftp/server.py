"""The FTP server's socket side: a blocking control loop and its data connections (course 3.1 file server).

One call of :func:`FTPContext.handle_connection` owns one control connection
for its whole life, like the course's ``handle(c)`` functions, so it runs
under every per-connection model (iterative, threads, processes, pool). All
protocol decisions come from the socket-free :class:`~servers.ftp.session.FTPSession`;
this module only performs what it asks: open a passive listener or remember an
active target, move file bytes (``os.sendfile`` out, a ``recv_into`` loop into a
temporary file in), and watch the control connection for ABOR meanwhile.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import select
import signal
import socket
import stat
import tempfile
import time
from dataclasses import dataclass

from servers.ftp.filesystem import JailedFilesystem
from servers.ftp.limits import ConnectionLimiter
from servers.ftp.session import (
    TRANSFER_ABORTED,
    TRANSFER_BROKEN,
    TRANSFER_COMPLETE,
    TRANSFER_LOCAL_ERROR,
    TRANSFER_NO_CONNECTION,
    TRANSFER_STORAGE_FULL,
    CloseDataChannel,
    FTPSession,
    FTPSettings,
    OpenPassive,
    Outcome,
    ReceiveFile,
    SendFile,
    SendListing,
    TransferResult,
    UseActive,
    format_reply,
    normalize_host,
)
from servers.ftp.users import Authorizer

#: RETR: most bytes offered to one os.sendfile / send call (the socket takes what fits).
SEND_CHUNK = 4 * 1024 * 1024
#: STOR: receive buffer; big enough that a 1 GB/s upload costs few system calls.
RECEIVE_BUFFER = 1024 * 1024
#: Check the control connection for ABOR after this many bytes of a transfer that never waits.
CONTROL_CHECK_BYTES = 4 * 1024 * 1024
CONTROL_RECV = 4096


class TransferInterrupted(Exception):
    """ABOR arrived, or the client went away, while a transfer ran."""

    def __init__(self, status: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass
class FTPContext:
    """Everything the server process shares between its FTP sessions."""

    root: str
    authorizer: Authorizer
    settings: FTPSettings
    stats: object
    limiter: ConnectionLimiter
    passive_ports: tuple[int, int] | None = None

    def handle_connection(self, conn: socket.socket, address: tuple) -> None:
        """Serve one control connection to its end (the Application's blocking handler)."""
        slot, reason = self.limiter.acquire(address[0])
        if slot is None:
            self.stats.count_refusal(f"421 {address[0]}: {reason}")
            with contextlib.suppress(OSError):
                conn.sendall(format_reply(421, f"Sorry, {reason}; try again later.").encode())
            return
        try:
            ControlConnection(self, conn, address).serve()
        finally:
            self.limiter.release(slot)

    def after_fork(self) -> None:
        """In a forked worker or per-connection child, before it serves anyone."""
        self.limiter.after_fork()
        # The model leaves SIGTERM at its default (instant death) in children; unwind
        # instead, so an upload cut short by a server stop deletes its temporary file.
        signal.signal(signal.SIGTERM, _unwind_on_sigterm)


class ControlConnection:
    """One client's control connection and its data connections, driven by an FTPSession."""

    def __init__(self, context: FTPContext, conn: socket.socket, address: tuple) -> None:
        self.context = context
        self.stats = context.stats
        self.settings = context.settings
        self.conn = conn
        self.address = address
        self.buffer = bytearray()
        self.queued_lines: list[str] = []
        self.peer_gone = False
        self.passive_listener: socket.socket | None = None
        self.active_target: tuple[str, int] | None = None
        self.session = FTPSession(
            JailedFilesystem(context.root),
            context.authorizer,
            address,
            context.settings,
            context.stats,
        )
        conn.setblocking(True)
        # ftplib and others send ABOR's last byte as TCP urgent data: keep it in the stream.
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.control_poller = select.poll()
        self.control_poller.register(conn, select.POLLIN | select.POLLPRI)

    # -- the control loop ----------------------------------------------------------

    def serve(self) -> None:
        try:
            if not self.perform(self.session.greeting()):
                return
            while True:
                line = self.queued_lines.pop(0) if self.queued_lines else self.read_line()
                if line is None:
                    return
                if not self.perform(self.session.handle_line(line)):
                    return
        except OSError:
            pass  # the client reset or vanished: nothing left to answer
        finally:
            self.close_data_channel()

    def read_line(self) -> str | None:
        """The next command line, or None when the client is gone or timed out (421 sent)."""
        while True:
            line = self._take_line()
            if line is not None:
                return line
            if len(self.buffer) > self.settings.max_line_length:
                self.buffer.clear()
                # Drop the rest of the overlong line, then answer once.
                self.perform(self.session.line_too_long())
                self._discard_until_newline()
                continue
            if not self.control_poller.poll(int(self.settings.idle_timeout * 1000)):
                self.perform(self.session.idle_timeout())
                return None
            data = self.conn.recv(CONTROL_RECV)
            if not data:
                return None
            self.stats.add_bytes(received=len(data))
            self.buffer += data

    def _take_line(self) -> str | None:
        end = self.buffer.find(b"\n")
        if end < 0:
            return None
        raw = bytes(self.buffer[:end])
        del self.buffer[: end + 1]
        return decode_command_line(raw)

    def _discard_until_newline(self) -> None:
        while True:
            if not self.control_poller.poll(int(self.settings.idle_timeout * 1000)):
                return
            data = self.conn.recv(CONTROL_RECV)
            if not data:
                return
            self.stats.add_bytes(received=len(data))
            end = data.find(b"\n")
            if end >= 0:
                self.buffer += data[end + 1 :]
                return

    def send_replies(self, replies: list[str]) -> None:
        if replies:
            data = "".join(replies).encode("utf-8", "surrogateescape")
            self.conn.sendall(data)
            self.stats.add_bytes(sent=len(data))

    def perform(self, outcome: Outcome) -> bool:
        """Carry out what the session decided; False once the connection must close."""
        while True:
            if outcome.delay:
                time.sleep(outcome.delay)
            self.send_replies(outcome.replies)
            if outcome.close:
                return False
            action = outcome.action
            if action is None:
                return True
            outcome = self.run_action(action)

    def run_action(self, action: object) -> Outcome:
        if isinstance(action, OpenPassive):
            return self.open_passive(action.extended)
        if isinstance(action, UseActive):
            self.close_data_channel()
            self.active_target = (action.host, action.port)
            return Outcome()
        if isinstance(action, CloseDataChannel):
            self.close_data_channel()
            return Outcome()
        return self.session.transfer_done(self.transfer(action))

    # -- data connection set-up --------------------------------------------------------

    def open_passive(self, extended: bool) -> Outcome:
        self.close_data_channel()
        family = self.conn.family
        host = self.conn.getsockname()[0]
        try:
            listener = bind_passive_listener(family, host, self.context.passive_ports)
        except OSError as error:
            return self.session.passive_failed(error.strerror or "no free port")
        self.passive_listener = listener
        port = listener.getsockname()[1]
        return self.session.passive_opened(host, port, extended)

    def close_data_channel(self) -> None:
        if self.passive_listener is not None:
            self.passive_listener.close()
            self.passive_listener = None
        self.active_target = None

    def open_data_connection(self) -> socket.socket:
        """Accept (passive) or connect (active) the data connection; raises TransferInterrupted."""
        deadline = time.monotonic() + self.settings.data_timeout
        try:
            if self.passive_listener is not None:
                return self._accept_passive(deadline)
            if self.active_target is not None:
                return self._connect_active(deadline)
            raise TransferInterrupted(TRANSFER_NO_CONNECTION, "no data connection set up")
        finally:
            self.close_data_channel()

    def _accept_passive(self, deadline: float) -> socket.socket:
        listener = self.passive_listener
        assert listener is not None
        poller = select.poll()
        poller.register(listener, select.POLLIN)
        poller.register(self.conn, select.POLLIN | select.POLLPRI)
        client_host = self.session.client_host
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TransferInterrupted(TRANSFER_NO_CONNECTION, "timed out waiting for it")
            events = dict(poller.poll(int(remaining * 1000) + 1))
            if self.conn.fileno() in events:
                self.check_control()
            if listener.fileno() in events:
                data_conn, peer = listener.accept()
                # Only the client may use the port it was given (no data-port theft).
                if normalize_host(peer[0]) != client_host:
                    self.stats.count_refusal(f"data connection from foreign address {peer[0]}")
                    data_conn.close()
                    continue
                return data_conn

    def _connect_active(self, deadline: float) -> socket.socket:
        assert self.active_target is not None
        host, port = self.active_target
        local_host = self.conn.getsockname()[0]
        try:
            data_conn = socket.create_connection(
                (host, port),
                timeout=max(0.1, deadline - time.monotonic()),
                source_address=(local_host, 0),
            )
        except OSError as error:
            raise TransferInterrupted(
                TRANSFER_NO_CONNECTION, f"cannot connect to {host}:{port} ({error})"
            ) from None
        data_conn.settimeout(None)
        return data_conn

    # -- ABOR watch ------------------------------------------------------------------------

    def check_control(self) -> None:
        """Read what the client sent meanwhile; raise TransferInterrupted on ABOR or a hang-up.

        Other commands wait in ``queued_lines`` until the transfer is over, as RFC 959 allows.
        """
        if not self.control_poller.poll(0):
            return
        try:
            data = self.conn.recv(CONTROL_RECV)
        except OSError:
            data = b""
        if not data:
            self.peer_gone = True
            raise TransferInterrupted(TRANSFER_BROKEN, "control connection closed")
        self.stats.add_bytes(received=len(data))
        self.buffer += data
        while (line := self._take_line()) is not None:
            if self.session.interrupts_transfer(line):
                self.stats.count_request("ABOR")
                raise TransferInterrupted(TRANSFER_ABORTED, "ABOR")
            self.queued_lines.append(line)

    # -- transfers ---------------------------------------------------------------------------

    def transfer(self, action: object) -> TransferResult:
        try:
            data_conn = self.open_data_connection()
        except TransferInterrupted as interrupted:
            return TransferResult(interrupted.status, 0, interrupted.detail)
        counter = [0]
        try:
            # Non-blocking: a client that stops reading (or sending) parks us in
            # poll() on both connections, where an ABOR is seen at once.
            data_conn.setblocking(False)
            if isinstance(action, SendFile):
                self.send_file(data_conn, action, counter)
            elif isinstance(action, SendListing):
                self.send_bytes(data_conn, action.payload, counter)
            elif isinstance(action, ReceiveFile):
                self.receive_file(data_conn, action, counter)
            else:  # pragma: no cover - the session produces no other action
                raise AssertionError(action)
        except TransferInterrupted as interrupted:
            self._hang_up(data_conn)
            return TransferResult(interrupted.status, counter[0], interrupted.detail)
        except ConnectionError as error:
            self._hang_up(data_conn)
            return TransferResult(TRANSFER_BROKEN, counter[0], error.strerror or "reset")
        except OSError as error:
            self._hang_up(data_conn)
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                return TransferResult(TRANSFER_STORAGE_FULL, counter[0], "no space left")
            return TransferResult(TRANSFER_LOCAL_ERROR, counter[0], error.strerror or str(error))
        with contextlib.suppress(OSError):
            data_conn.setblocking(True)
            data_conn.shutdown(socket.SHUT_WR)
        data_conn.close()
        return TransferResult(TRANSFER_COMPLETE, counter[0])

    @staticmethod
    def _hang_up(data_conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            data_conn.close()

    def wait_for_data(self, data_conn: socket.socket, event: int) -> None:
        """Block until the data connection is ready for ``event``, watching for ABOR meanwhile."""
        poller = select.poll()
        poller.register(data_conn, event)
        poller.register(self.conn, select.POLLIN | select.POLLPRI)
        deadline = time.monotonic() + self.settings.data_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TransferInterrupted(TRANSFER_BROKEN, "data connection stalled")
            ready = dict(poller.poll(int(remaining * 1000) + 1))
            if self.conn.fileno() in ready:
                self.check_control()
            if data_conn.fileno() in ready:
                return

    def send_bytes(self, data_conn: socket.socket, payload: bytes, counter: list[int]) -> None:
        view = memoryview(payload)
        while view:
            try:
                sent = data_conn.send(view[:SEND_CHUNK])
            except BlockingIOError:
                self.wait_for_data(data_conn, select.POLLOUT)
                continue
            view = view[sent:]
            counter[0] += sent
            self.stats.add_bytes(sent=sent)

    def send_file(self, data_conn: socket.socket, action: SendFile, counter: list[int]) -> None:
        with open(action.path, "rb") as file:
            if action.ascii:
                self._send_ascii(data_conn, file, counter)
                return
            size = os.fstat(file.fileno()).st_size
            offset = action.offset
            out_fd, in_fd = data_conn.fileno(), file.fileno()
            since_check = 0
            while offset < size:
                try:
                    # Zero-copy: the kernel moves file pages straight into the socket.
                    sent = os.sendfile(out_fd, in_fd, offset, min(SEND_CHUNK, size - offset))
                except BlockingIOError:
                    self.wait_for_data(data_conn, select.POLLOUT)
                    continue
                if sent == 0:
                    break  # the file shrank under us: send what there was
                offset += sent
                counter[0] += sent
                self.stats.add_bytes(sent=sent)
                since_check += sent
                if since_check >= CONTROL_CHECK_BYTES:
                    since_check = 0
                    self.check_control()

    def _send_ascii(self, data_conn: socket.socket, file, counter: list[int]) -> None:
        converter = LocalToNetworkText()
        while chunk := file.read(RECEIVE_BUFFER):
            self.send_bytes(data_conn, converter.convert(chunk), counter)
        self.send_bytes(data_conn, converter.finish(), counter)

    def receive_file(
        self, data_conn: socket.socket, action: ReceiveFile, counter: list[int]
    ) -> None:
        """Receive into a temporary file beside the target; rename it over the target when complete.

        An interrupted upload (ABOR, the client killed, a stall) deletes the
        temporary file, so the target keeps its old content, or stays absent.
        """
        target = action.path
        folder, name = os.path.split(target)
        fd, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
        committed = False
        try:
            mode = 0o644
            with contextlib.suppress(FileNotFoundError):
                mode = stat.S_IMODE(os.stat(target).st_mode)
            if action.keep:
                copy_prefix(target, fd, action.keep)
            self._receive_into(data_conn, fd, action.ascii, counter)
            # Stream mode ends a file with EOF, and a killed client closes its data
            # connection with the same FIN: only the control connection tells them
            # apart. The kernel closes a dead process's sockets in no fixed order, so
            # give the control connection's FIN a moment to arrive before committing.
            self.check_control()
            if self._control_hung_up(self.settings.upload_close_grace):
                raise TransferInterrupted(TRANSFER_BROKEN, "control connection closed")
            os.fchmod(fd, mode)
            os.close(fd)
            fd = -1
            os.replace(temporary, target)
            committed = True
        finally:
            if fd >= 0:
                os.close(fd)
            if not committed:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)

    def _receive_into(
        self, data_conn: socket.socket, fd: int, ascii: bool, counter: list[int]
    ) -> None:
        buffer = bytearray(RECEIVE_BUFFER)
        view = memoryview(buffer)
        converter = NetworkToLocalText() if ascii else None
        since_check = 0
        while True:
            try:
                received = data_conn.recv_into(buffer)
            except BlockingIOError:
                self.wait_for_data(data_conn, select.POLLIN)
                continue
            if not received:
                break
            counter[0] += received
            self.stats.add_bytes(received=received)
            if converter is None:
                write_all(fd, view[:received])
            else:
                write_all(fd, converter.convert(bytes(view[:received])))
            since_check += received
            if since_check >= CONTROL_CHECK_BYTES:
                since_check = 0
                self.check_control()
        if converter is not None:
            write_all(fd, converter.finish())

    def _control_hung_up(self, grace: float) -> bool:
        """True if the client closes or resets its control connection within ``grace`` seconds."""
        if self.peer_gone:
            return True
        if not self.control_poller.poll(int(grace * 1000)):
            return False
        try:
            if self.conn.recv(1, socket.MSG_PEEK) == b"":
                return True
        except OSError:
            return True
        self.check_control()  # an ABOR right after the data connection closed still aborts
        return False


# -- helpers -------------------------------------------------------------------------------


def _unwind_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)


def decode_command_line(raw: bytes) -> str:
    """A command line without CRLF and Telnet controls (IAC IP / IAC DM sent before ABOR)."""
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    if b"\xff" in raw:
        raw = raw.replace(b"\xff\xff", b"\x00IAC\x00")
        for command in (b"\xff\xf4", b"\xff\xf2", b"\xff"):
            raw = raw.replace(command, b"")
        raw = raw.replace(b"\x00IAC\x00", b"\xff")
    return raw.decode("utf-8", "surrogateescape")


def normalize(host: str) -> str:
    from servers.ftp.session import _normalize_host

    return _normalize_host(host)


def bind_passive_listener(
    family: socket.AddressFamily, host: str, port_range: tuple[int, int] | None
) -> socket.socket:
    """A listening socket for one data connection, on a port from ``port_range`` if given."""
    if port_range is None:
        candidates = [0]
    else:
        low, high = port_range
        candidates = random.sample(range(low, high + 1), min(high - low + 1, 64))
    last_error: OSError = OSError(98, "no free passive port")
    for port in candidates:
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.bind((host, port))
            listener.listen(1)
            return listener
        except OSError as error:
            listener.close()
            last_error = error
    raise last_error


def write_all(fd: int, data) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def copy_prefix(source: str, destination_fd: int, count: int) -> None:
    """Copy the first ``count`` bytes of ``source`` into ``destination_fd`` (REST, APPE)."""
    with open(source, "rb") as file:
        in_fd = file.fileno()
        offset = 0
        while offset < count:
            try:
                copied = os.copy_file_range(in_fd, destination_fd, count - offset, offset)
            except OSError:
                copied = 0
            if copied == 0:
                chunk = os.pread(in_fd, min(RECEIVE_BUFFER, count - offset), offset)
                if not chunk:
                    raise OSError(5, "file shrank while resuming")
                write_all(destination_fd, chunk)
                copied = len(chunk)
            offset += copied


class LocalToNetworkText:
    """TYPE A sending: local LF line ends become CRLF (an existing CRLF stays one)."""

    def __init__(self) -> None:
        self.pending_cr = False

    def convert(self, chunk: bytes) -> bytes:
        if self.pending_cr:
            chunk = b"\r" + chunk
            self.pending_cr = False
        if chunk.endswith(b"\r"):
            chunk = chunk[:-1]
            self.pending_cr = True
        return chunk.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")

    def finish(self) -> bytes:
        return b"\r" if self.pending_cr else b""


class NetworkToLocalText:
    """TYPE A receiving: CRLF becomes LF, even when a CR and its LF arrive in different chunks."""

    def __init__(self) -> None:
        self.pending_cr = False

    def convert(self, chunk: bytes) -> bytes:
        if self.pending_cr:
            chunk = b"\r" + chunk
            self.pending_cr = False
        if chunk.endswith(b"\r"):
            chunk = chunk[:-1]
            self.pending_cr = True
        return chunk.replace(b"\r\n", b"\n")

    def finish(self) -> bytes:
        return b"\r" if self.pending_cr else b""
