"""FTP data connections: PASV/PORT set-up and the transfers over them, interruptible by ABOR.

A :class:`DataChannel` belongs to one session. It opens the passive listener
or remembers the active target, then moves file bytes: ``os.sendfile`` out
(RETR), a ``recv_into`` loop with a large buffer into a temporary file in
(STOR, renamed over the target only when complete). Its sockets are
non-blocking: whenever one is not ready, the channel waits in ``poll`` on it
*and* on an interruption source (:class:`TransferWatch`), so an ABOR or a
vanished client is noticed at once, whatever the data connection is doing.
The blocking server watches the control socket itself; the event-loop server
watches a wake-up pipe that its loop thread signals. Only readability counts
(POLLIN): an urgent byte left out of band would keep POLLPRI raised.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import random
import re
import select
import socket
import stat
import tempfile
import threading
import time
from typing import Protocol

from servers.ftp.session import (
    TRANSFER_ABORTED,
    TRANSFER_BROKEN,
    TRANSFER_COMPLETE,
    TRANSFER_LOCAL_ERROR,
    TRANSFER_NO_CONNECTION,
    TRANSFER_STORAGE_FULL,
    FTPSettings,
    ReceiveFile,
    SendFile,
    SendListing,
    TransferResult,
    normalize_host,
)

#: Most bytes offered to one os.sendfile / send call (the socket takes what fits).
SEND_CHUNK = 4 * 1024 * 1024
#: STOR: receive buffer; big enough that a 1 GB/s upload costs few system calls.
RECEIVE_BUFFER = 1024 * 1024
#: Check for ABOR after this many bytes of a transfer that never has to wait.
INTERRUPT_CHECK_BYTES = 4 * 1024 * 1024
#: A rate-limited transfer moves about this many chunks a second: smooth, and still few calls.
PACED_CHUNKS_PER_SECOND = 20


class TransferInterrupted(Exception):
    """ABOR arrived, or the client went away, while a transfer ran."""

    def __init__(self, status: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class TransferWatch(Protocol):
    """Where a running transfer learns about ABOR and a vanished client."""

    def fileno(self) -> int:
        """A descriptor that becomes readable when ``check`` may have news."""
        ...

    def check(self) -> None:
        """Raise TransferInterrupted on ABOR or a hang-up; otherwise return."""
        ...

    def hung_up(self, grace: float) -> bool:
        """True if the client closes its control connection within ``grace`` seconds."""
        ...


class WakeupWatch:
    """A TransferWatch signalled from another thread (the event-loop server's loop).

    Its wake-up socket pair is made at the first transfer, so a session that
    only logs in and lists costs no extra descriptors (select() counts them).
    """

    def __init__(self) -> None:
        self._reader: socket.socket | None = None
        self._writer: socket.socket | None = None
        self._lock = threading.Lock()
        self.aborted = False
        self.gone = False

    def _ensure_pair(self) -> socket.socket:
        with self._lock:
            if self._reader is None:
                self._reader, self._writer = socket.socketpair()
                self._reader.setblocking(False)
                self._writer.setblocking(False)
            return self._reader

    def fileno(self) -> int:
        return self._ensure_pair().fileno()

    def abort(self) -> None:
        with self._lock:
            self.aborted = True
        self._wake()

    def hang_up(self) -> None:
        with self._lock:
            self.gone = True
        self._wake()

    def reset(self) -> None:
        """Before the next transfer: forget a previous ABOR, have the pair ready."""
        self._ensure_pair()
        with self._lock:
            self.aborted = False
        self._drain()

    def _wake(self) -> None:
        writer = self._writer
        if writer is not None:
            with contextlib.suppress(OSError):
                writer.send(b"!")

    def _drain(self) -> None:
        reader = self._reader
        if reader is not None:
            with contextlib.suppress(OSError):
                while reader.recv(4096):
                    pass

    def check(self) -> None:
        self._drain()  # flags are set before the wake-up byte: drain first, then read them
        with self._lock:
            aborted, gone = self.aborted, self.gone
        if gone:
            raise TransferInterrupted(TRANSFER_BROKEN, "control connection closed")
        if aborted:
            raise TransferInterrupted(TRANSFER_ABORTED, "ABOR")

    def hung_up(self, grace: float) -> bool:
        deadline = time.monotonic() + grace
        while True:
            with self._lock:
                if self.gone:
                    return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            poller = select.poll()  # not select(): descriptors may exceed FD_SETSIZE here
            poller.register(self._ensure_pair(), select.POLLIN)
            if poller.poll(int(remaining * 1000) + 1):
                with contextlib.suppress(TransferInterrupted):
                    self.check()
                with self._lock:
                    if self.aborted and not self.gone:
                        # An ABOR right after the data connection closed still aborts.
                        raise TransferInterrupted(TRANSFER_ABORTED, "ABOR")

    def close(self) -> None:
        with self._lock:
            for end in (self._reader, self._writer):
                if end is not None:
                    end.close()


# Temporary upload files being written in this process: a child stopped by
# SIGTERM deletes them before it exits (see unlink_uploads_in_progress).
_uploads_in_progress: set[str] = set()
_uploads_lock = threading.Lock()


def unlink_uploads_in_progress() -> None:
    """Delete every temporary upload file of this process (it is about to die)."""
    with _uploads_lock:
        paths = list(_uploads_in_progress)
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)


#: The name receive_file's mkstemp gives a temporary upload: ".NAME.XXXXXXXX.part".
_TEMPORARY_UPLOAD = re.compile(r"\..+\.[a-z0-9_]{8}\.part")


def sweep_abandoned_uploads(root: str) -> list[str]:
    """Delete the temporary upload files under ``root`` that no live process is writing.

    A server killed mid-STOR (SIGKILL, a crash) cannot clean up after itself;
    its temporary file stays beside the target. Every upload holds an flock on
    its file while writing, so a file whose lock can be taken has no writer left.
    Returns the paths removed.
    """
    removed: list[str] = []
    for folder, _folders, names in os.walk(root):
        for name in names:
            if not _TEMPORARY_UPLOAD.fullmatch(name):
                continue
            path = os.path.join(folder, name)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.unlink(path)
                removed.append(path)
            except OSError:
                pass  # being written right now, or already gone
            finally:
                os.close(fd)
    return removed


class DataChannel:
    """One session's data connection set-up and transfers."""

    def __init__(
        self,
        settings: FTPSettings,
        stats: object,
        client_host: str,
        passive_ports: tuple[int, int] | None,
        watch: TransferWatch,
    ) -> None:
        self.settings = settings
        self.stats = stats
        self.client_host = client_host
        self.passive_ports = passive_ports
        self.watch = watch
        self.passive_listener: socket.socket | None = None
        self.active_target: tuple[str, int, str] | None = None
        #: When the running transfer's first byte could move (the ``--max-rate`` clock).
        self._paced_since = 0.0

    # -- set-up ---------------------------------------------------------------------

    def open_passive(self, family: socket.AddressFamily, host: str) -> int:
        """Listen on ``host`` for the next data connection; returns the port (raises OSError)."""
        self.close()
        self.passive_listener = bind_passive_listener(family, host, self.passive_ports)
        return self.passive_listener.getsockname()[1]

    def use_active(self, host: str, port: int, local_host: str) -> None:
        """Connect to the client's ``host:port`` (from ``local_host``) at the next transfer."""
        self.close()
        self.active_target = (host, port, local_host)

    def close(self) -> None:
        if self.passive_listener is not None:
            self.passive_listener.close()
            self.passive_listener = None
        self.active_target = None

    def open_data_connection(self) -> socket.socket:
        """Accept (passive) or connect (active) the data connection; raises TransferInterrupted."""
        deadline = time.monotonic() + self.settings.data_timeout
        try:
            if self.passive_listener is not None:
                return self._accept_passive(self.passive_listener, deadline)
            if self.active_target is not None:
                return self._connect_active(self.active_target, deadline)
            raise TransferInterrupted(TRANSFER_NO_CONNECTION, "no data connection set up")
        finally:
            self.close()

    def _accept_passive(self, listener: socket.socket, deadline: float) -> socket.socket:
        poller = select.poll()
        poller.register(listener, select.POLLIN)
        poller.register(self.watch.fileno(), select.POLLIN)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TransferInterrupted(TRANSFER_NO_CONNECTION, "timed out waiting for it")
            events = dict(poller.poll(int(remaining * 1000) + 1))
            if self.watch.fileno() in events:
                self.watch.check()
            if listener.fileno() in events:
                data_conn, peer = listener.accept()
                # Only the client may use the port it was given (no data-port theft).
                if normalize_host(peer[0]) != self.client_host:
                    self.stats.count_refusal(f"data connection from foreign address {peer[0]}")
                    data_conn.close()
                    continue
                return data_conn

    @staticmethod
    def _connect_active(target: tuple[str, int, str], deadline: float) -> socket.socket:
        host, port, local_host = target
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
        return data_conn

    # -- transfers --------------------------------------------------------------------

    def transfer(self, action: object) -> TransferResult:
        """Open the data connection and run ``action`` over it; never raises."""
        try:
            data_conn = self.open_data_connection()
        except TransferInterrupted as interrupted:
            return TransferResult(interrupted.status, 0, interrupted.detail)
        except OSError as error:
            return TransferResult(TRANSFER_NO_CONNECTION, 0, error.strerror or str(error))
        counter = [0]
        self._paced_since = time.monotonic()
        try:
            # Non-blocking: a client that stops reading (or sending) parks us in
            # poll() on the data socket and the watch, where an ABOR is seen at once.
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
            _hang_up(data_conn)
            return TransferResult(interrupted.status, counter[0], interrupted.detail)
        except ConnectionError as error:
            _hang_up(data_conn)
            return TransferResult(TRANSFER_BROKEN, counter[0], error.strerror or "reset")
        except OSError as error:
            _hang_up(data_conn)
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                return TransferResult(TRANSFER_STORAGE_FULL, counter[0], "no space left")
            return TransferResult(TRANSFER_LOCAL_ERROR, counter[0], error.strerror or str(error))
        with contextlib.suppress(OSError):
            data_conn.setblocking(True)
            data_conn.shutdown(socket.SHUT_WR)
        data_conn.close()
        return TransferResult(TRANSFER_COMPLETE, counter[0])

    def wait_for_data(self, data_conn: socket.socket, event: int) -> None:
        """Block until the data connection is ready for ``event``, watching for ABOR meanwhile."""
        poller = select.poll()
        poller.register(data_conn, event)
        poller.register(self.watch.fileno(), select.POLLIN)
        deadline = time.monotonic() + self.settings.data_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TransferInterrupted(TRANSFER_BROKEN, "data connection stalled")
            ready = dict(poller.poll(int(remaining * 1000) + 1))
            if self.watch.fileno() in ready:
                self.watch.check()
            if data_conn.fileno() in ready:
                return

    def _chunk(self, largest: int) -> int:
        """Bytes to move in one call: all that fits, or a slice of a second's worth when paced."""
        rate = self.settings.max_rate
        return min(largest, max(1024, rate // PACED_CHUNKS_PER_SECOND)) if rate else largest

    def pace(self, moved: int) -> None:
        """Hold the transfer back to ``max_rate`` bytes/s, still answering ABOR while it waits."""
        rate = self.settings.max_rate
        if not rate:
            return
        poller = None
        while (ahead := moved / rate - (time.monotonic() - self._paced_since)) > 0:
            if poller is None:  # poll, not select: descriptors may exceed FD_SETSIZE here
                poller = select.poll()
                poller.register(self.watch.fileno(), select.POLLIN)
            if poller.poll(int(ahead * 1000) + 1):
                self.watch.check()  # raises TransferInterrupted on ABOR or a hang-up

    def send_bytes(self, data_conn: socket.socket, payload: bytes, counter: list[int]) -> None:
        view = memoryview(payload)
        while view:
            try:
                sent = data_conn.send(view[: self._chunk(SEND_CHUNK)])
            except BlockingIOError:
                self.wait_for_data(data_conn, select.POLLOUT)
                continue
            view = view[sent:]
            counter[0] += sent
            self.stats.add_bytes(sent=sent)
            self.pace(counter[0])

    def send_file(self, data_conn: socket.socket, action: SendFile, counter: list[int]) -> None:
        with open(action.path, "rb") as file:
            if action.ascii:
                converter = LocalToNetworkText()
                while chunk := file.read(RECEIVE_BUFFER):
                    self.send_bytes(data_conn, converter.convert(chunk), counter)
                self.send_bytes(data_conn, converter.finish(), counter)
                return
            size = os.fstat(file.fileno()).st_size
            offset = action.offset
            out_fd, in_fd = data_conn.fileno(), file.fileno()
            since_check = 0
            while offset < size:
                try:
                    # Zero-copy: the kernel moves file pages straight into the socket.
                    chunk = min(self._chunk(SEND_CHUNK), size - offset)
                    sent = os.sendfile(out_fd, in_fd, offset, chunk)
                except BlockingIOError:
                    self.wait_for_data(data_conn, select.POLLOUT)
                    continue
                if sent == 0:
                    break  # the file shrank under us: send what there was
                offset += sent
                counter[0] += sent
                self.stats.add_bytes(sent=sent)
                self.pace(counter[0])
                since_check += sent
                if since_check >= INTERRUPT_CHECK_BYTES:
                    since_check = 0
                    self.watch.check()

    def receive_file(
        self, data_conn: socket.socket, action: ReceiveFile, counter: list[int]
    ) -> None:
        """Receive into a temporary file beside the target; rename it over the target when complete.

        An interrupted upload (ABOR, the client killed, a stall, the server
        stopped) deletes the temporary file, so the target keeps its old
        content, or stays absent.
        """
        target = action.path
        folder, name = os.path.split(target)
        fd, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
        # Locked while written: sweep_abandoned_uploads leaves it alone until its
        # writer is gone (the kernel drops the lock even after SIGKILL).
        fcntl.flock(fd, fcntl.LOCK_EX)
        with _uploads_lock:
            _uploads_in_progress.add(temporary)
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
            self.watch.check()
            if self.watch.hung_up(self.settings.upload_close_grace):
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
            with _uploads_lock:
                _uploads_in_progress.discard(temporary)

    def _receive_into(
        self, data_conn: socket.socket, fd: int, ascii: bool, counter: list[int]
    ) -> None:
        buffer = bytearray(RECEIVE_BUFFER)
        view = memoryview(buffer)
        converter = NetworkToLocalText() if ascii else None
        since_check = 0
        limit = self._chunk(RECEIVE_BUFFER)
        while True:
            try:
                received = data_conn.recv_into(buffer, limit)
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
            self.pace(counter[0])
            since_check += received
            if since_check >= INTERRUPT_CHECK_BYTES:
                since_check = 0
                self.watch.check()
        if converter is not None:
            write_all(fd, converter.finish())


# -- helpers ----------------------------------------------------------------------------


def _hang_up(data_conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        data_conn.close()


def bind_passive_listener(
    family: socket.AddressFamily, host: str, port_range: tuple[int, int] | None
) -> socket.socket:
    """A listening socket for one data connection, on a port from ``port_range`` if given."""
    if port_range is None:
        candidates = [0]
    else:
        low, high = port_range
        candidates = random.sample(range(low, high + 1), min(high - low + 1, 64))
    last_error: OSError = OSError(errno.EADDRINUSE, "no free passive port")
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
                    raise OSError(errno.EIO, "file shrank while resuming")
                write_all(destination_fd, chunk)
                copied = len(chunk)
            offset += copied


class _HeldBackCarriageReturn:
    """A chunk ending in CR is held back one chunk: its LF may be the next chunk's first byte."""

    def __init__(self) -> None:
        self.pending_cr = False

    def _join_held_back(self, chunk: bytes) -> bytes:
        if self.pending_cr:
            chunk = b"\r" + chunk
            self.pending_cr = False
        if chunk.endswith(b"\r"):
            chunk = chunk[:-1]
            self.pending_cr = True
        return chunk

    def finish(self) -> bytes:
        return b"\r" if self.pending_cr else b""


class LocalToNetworkText(_HeldBackCarriageReturn):
    """TYPE A sending: local LF line ends become CRLF (an existing CRLF stays one)."""

    def convert(self, chunk: bytes) -> bytes:
        return self._join_held_back(chunk).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


class NetworkToLocalText(_HeldBackCarriageReturn):
    """TYPE A receiving: CRLF becomes LF, even when a CR and its LF arrive in different chunks."""

    def convert(self, chunk: bytes) -> bytes:
        return self._join_held_back(chunk).replace(b"\r\n", b"\n")
