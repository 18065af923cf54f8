"""UI-free FTP client for the FTP tab: ftplib with listings, progress and cancel (course 3.2 ftp 文件服务器 exercise).

:class:`FtpClient` wraps one control connection (RFC 959). It lists a directory
with MLSD (RFC 3659, machine-readable facts) and falls back to parsing ``LIST``
output (``ls -l`` and DOS styles) on servers without it; downloads and uploads
run chunk by chunk so a caller can show progress and cancel mid-way (the
transfer is aborted with ABOR and the control channel resynchronised, so the
connection stays usable). Every failure surfaces as :class:`FtpError` carrying
the server's three-digit reply code when there is one.

The client is blocking and not thread-safe per call, but serialises its own
commands with a lock so a UI may call it from worker threads. Long transfers
should use their own :class:`FtpClient` (see :meth:`FtpClient.clone`) so the
browsing connection stays free while bytes flow.
"""

from __future__ import annotations

import contextlib
import ftplib
import os
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from workbench.clients.files import FileEntry, FileOpError, sort_entries

__all__ = [
    "FtpClient",
    "FtpError",
    "RemoteEntry",
    "TransferCancelled",
    "parse_list_line",
    "parse_mlsd_facts",
]

#: ``progress(bytes_done, bytes_total_or_None)`` called after every chunk.
ProgressCallback = Callable[[int, int | None], None]

#: Bytes per socket call in transfers: large enough that Python's per-call cost stays small.
CHUNK_SIZE = 256 * 1024
#: A rate-limited transfer moves about this many chunks a second: smooth progress, few calls.
PACED_CHUNKS_PER_SECOND = 20


class TransferPacer:
    """Holds one transfer to ``bytes_per_second`` (None: no limit), waking early on cancel.

    After each chunk it waits until the average since the start is back at the
    limit; chunks shrink to a twentieth of a second's worth so progress moves smoothly.
    """

    def __init__(self, bytes_per_second: int | None, cancel: threading.Event | None) -> None:
        self.rate = bytes_per_second if bytes_per_second and bytes_per_second > 0 else None
        self._cancel = cancel or threading.Event()
        self._started = time.monotonic()

    def chunk(self, largest: int) -> int:
        if self.rate is None:
            return largest
        return min(largest, max(1024, self.rate // PACED_CHUNKS_PER_SECOND))

    def pace(self, done: int) -> None:
        if self.rate is None:
            return
        ahead = done / self.rate - (time.monotonic() - self._started)
        if ahead > 0:
            self._cancel.wait(ahead)  # a cancel ends the wait at once


_REPLY_CODE = re.compile(r"^(\d{3})[ -]")


class FtpError(FileOpError):
    """An FTP operation failed; ``code`` is the server's reply code (e.g. "550") if it sent one."""

    @classmethod
    def from_exception(cls, action: str, error: BaseException) -> FtpError:
        """Turn an ftplib/socket exception into a one-line error naming the action."""
        if isinstance(error, FtpError):
            return error
        if isinstance(error, ftplib.Error):  # error_reply/temp/perm/proto carry the server's reply
            text = str(error).strip().splitlines()[0] if str(error).strip() else ""
            match = _REPLY_CODE.match(text)
            code = match.group(1) if match else None
            return cls(f"{action}: {text}" if text else f"{action} failed", code)
        if isinstance(error, socket.timeout | TimeoutError):
            return cls(f"{action}: timed out waiting for the server")
        if isinstance(error, ConnectionRefusedError):
            return cls(f"{action}: connection refused (is an FTP server listening there?)")
        if isinstance(error, EOFError):
            return cls(f"{action}: the server closed the connection")
        if isinstance(error, OSError):
            reason = error.strerror or str(error) or type(error).__name__
            return cls(f"{action}: {reason}")
        return cls(f"{action}: {error}")


class TransferCancelled(FtpError):
    """The caller cancelled a download or upload; the connection is still usable."""


#: The name listings had before the local side shared the entry type.
RemoteEntry = FileEntry


# ---------------------------------------------------------------------------
# Listing parsers (pure, tested without a server)


def _parse_mlsd_time(value: str) -> datetime | None:
    """MLSD ``modify`` fact: YYYYMMDDHHMMSS[.sss] in UTC (RFC 3659 section 2.3)."""
    try:
        return datetime.strptime(value[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def parse_mlsd_facts(name: str, facts: dict[str, str]) -> FileEntry | None:
    """Build an entry from one MLSD line's facts; None for the ``.``/``..`` pseudo-entries."""
    kind = facts.get("type", "file").lower()
    if kind in ("cdir", "pdir") or name in (".", ".."):
        return None
    is_link = kind.startswith("os.unix=slink") or kind.startswith("os.unix=symlink")
    size_text = facts.get("size") or facts.get("sizd")
    size = int(size_text) if size_text and size_text.isdigit() else None
    modified = _parse_mlsd_time(facts["modify"]) if "modify" in facts else None
    is_dir = kind == "dir"
    return FileEntry(name, is_dir, None if is_dir else size, modified, is_link)


_UNIX_LIST_LINE = re.compile(
    r"^(?P<mode>[-dlbcps][-rwxsStTlL]{9})\S*\s+\d+\s+\S+\s+(?:\S+\s+)?"
    r"(?P<size>\d+)\s+(?P<month>[A-Za-z]{3})\s+(?P<day>\d{1,2})\s+"
    r"(?P<when>\d{1,2}:\d{2}|\d{4})\s(?P<name>.+)$"
)
_DOS_LIST_LINE = re.compile(
    r"^(?P<date>\d{2}-\d{2}-\d{2,4})\s+(?P<time>\d{1,2}:\d{2}[AP]M)\s+"
    r"(?:(?P<dir><DIR>)|(?P<size>\d+))\s+(?P<name>.+)$",
    re.IGNORECASE,
)
_MONTHS = {
    m: i
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
    )
}


def _unix_list_time(month: str, day: str, when: str, now: datetime) -> datetime | None:
    month_number = _MONTHS.get(month.lower())
    if month_number is None:
        return None
    try:
        if ":" in when:
            # ls omits the year for the last six months: pick the year that is not in the future.
            hour, minute = (int(part) for part in when.split(":"))
            stamp = datetime(now.year, month_number, int(day), hour, minute)
            if stamp > now.replace(tzinfo=None):
                stamp = stamp.replace(year=now.year - 1)
            return stamp
        return datetime(int(when), month_number, int(day))
    except ValueError:
        return None


def parse_list_line(line: str, now: datetime | None = None) -> FileEntry | None:
    """Parse one ``LIST`` line (``ls -l`` or DOS style); None for totals, ``.``/``..`` and noise."""
    line = line.rstrip("\r\n")
    now = now or datetime.now()
    unix = _UNIX_LIST_LINE.match(line)
    if unix:
        mode = unix["mode"]
        name = unix["name"]
        is_link = mode[0] == "l"
        if is_link and " -> " in name:
            name = name.split(" -> ", 1)[0]
        if name in (".", ".."):
            return None
        is_dir = mode[0] == "d"
        size = None if is_dir else int(unix["size"])
        modified = _unix_list_time(unix["month"], unix["day"], unix["when"], now)
        return FileEntry(name, is_dir, size, modified, is_link)
    dos = _DOS_LIST_LINE.match(line)
    if dos:
        name = dos["name"]
        if name in (".", ".."):
            return None
        date_format = "%m-%d-%y" if len(dos["date"]) == 8 else "%m-%d-%Y"
        try:
            modified = datetime.strptime(
                f"{dos['date']} {dos['time'].upper()}", f"{date_format} %I:%M%p"
            )
        except ValueError:
            modified = None
        is_dir = dos["dir"] is not None
        return FileEntry(name, is_dir, None if is_dir else int(dos["size"]), modified)
    return None


# ---------------------------------------------------------------------------
# The client


def describe_access(user: str, login_reply: str) -> str:
    """What a login may do, for a person: from our server's ``230 User x logged in (what).``

    Other servers do not say; then the line says so, and a refused action will answer 550.
    """
    stated = re.search(r"logged in \((.+)\)", login_reply)
    if stated:
        return f"{user}: {stated[1]}"
    return f"{user}: logged in (the server does not say what this login may change)"


class FtpClient:
    """One FTP control connection with browsing and chunked, cancellable transfers."""

    def __init__(
        self,
        host: str,
        port: int = 21,
        user: str = "anonymous",
        password: str = "",
        timeout: float = 15.0,
    ) -> None:
        self.host = host
        self.port = port
        self.user = user or "anonymous"
        # Anonymous FTP conventionally takes an e-mail-like password (RFC 1635).
        self.password = password if password or self.user != "anonymous" else "anonymous@"
        self.timeout = timeout
        self.welcome = ""
        #: The server's answer to the login (230 ...): ours says there what this login may do.
        self.login_reply = ""
        self._ftp: ftplib.FTP | None = None
        self._lock = threading.RLock()
        self._mlsd_supported: bool | None = None
        #: Last directory the server reported, so :meth:`reconnect` can return there.
        self._last_directory = ""

    # -- connection ------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True between a successful :meth:`connect` and :meth:`close`."""
        return self._ftp is not None

    def connect(self) -> str:
        """Open the control connection, log in and switch to binary mode; return the welcome text."""
        with self._lock:
            self.close()
            ftp = ftplib.FTP(timeout=self.timeout, encoding="utf-8")
            try:
                self.welcome = ftp.connect(self.host, self.port)
                self.login_reply = ftp.login(self.user, self.password)
                ftp.voidcmd("TYPE I")
            except BaseException as error:
                _close_quietly(ftp)
                raise FtpError.from_exception(
                    f"connect to {self.host}:{self.port}", error
                ) from None
            self._ftp = ftp
            return self.welcome

    def clone(self) -> FtpClient:
        """A second, independent connection with the same credentials and directory (for transfers)."""
        twin = FtpClient(self.host, self.port, self.user, self.password, self.timeout)
        directory = self.pwd() if self.connected else None
        twin.connect()
        if directory:
            twin.cwd(directory)
        return twin

    def close(self) -> None:
        """Say QUIT when the server still listens, then drop the connection; safe to call twice."""
        with self._lock:
            ftp, self._ftp = self._ftp, None
            if ftp is None:
                return
            try:
                ftp.quit()
            except BaseException:
                _close_quietly(ftp)

    def __enter__(self) -> FtpClient:
        if not self.connected:
            self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _require(self) -> ftplib.FTP:
        if self._ftp is None:
            raise FtpError("not connected")
        return self._ftp

    def _run(self, action: str, call: Callable[[ftplib.FTP], object]) -> object:
        with self._lock:
            ftp = self._require()
            try:
                return call(ftp)
            except FtpError:
                raise
            except ftplib.all_errors as error:
                # A lost control connection is forgotten, so callers see ``connected`` go false.
                self._forget_if_broken(error)
                raise FtpError.from_exception(action, error) from None

    # -- browsing --------------------------------------------------------

    def pwd(self) -> str:
        """The server's current directory."""
        directory = str(self._run("PWD", lambda ftp: ftp.pwd()))
        self._last_directory = directory
        return directory

    def reconnect(self) -> None:
        """A fresh control connection in the same folder (after the server dropped an idle one)."""
        with self._lock:
            directory = self._last_directory
            self.connect()
            if directory not in ("", "/"):
                self.cwd(directory)

    def cwd(self, path: str) -> str:
        """Change directory (``..`` goes up) and return the new current directory."""
        with self._lock:
            self._run(f"change directory to {path}", lambda ftp: ftp.cwd(path))
            return self.pwd()

    def list_dir(self, path: str = "") -> list[FileEntry]:
        """Entries of ``path`` (default: the current directory), directories first."""
        with self._lock:
            if self._mlsd_supported is not False:
                try:
                    return sort_entries(self._list_mlsd(path))
                except FtpError as error:
                    # 500/502/504: command not understood or not implemented -> use LIST.
                    if self._mlsd_supported or error.code not in ("500", "501", "502", "504"):
                        raise
                    self._mlsd_supported = False
            return sort_entries(self._list_plain(path))

    def _list_mlsd(self, path: str) -> list[FileEntry]:
        def run(ftp: ftplib.FTP) -> list[FileEntry]:
            entries = []
            for name, facts in ftp.mlsd(path, facts=["type", "size", "modify"]):
                entry = parse_mlsd_facts(name, {k.lower(): v for k, v in facts.items()})
                if entry is not None:
                    entries.append(entry)
            return entries

        entries = self._run(f"list {path or 'directory'}", run)
        self._mlsd_supported = True
        return entries  # type: ignore[return-value]

    def _list_plain(self, path: str) -> list[FileEntry]:
        lines: list[str] = []
        args = ("LIST", path) if path else ("LIST",)
        self._run(
            f"list {path or 'directory'}", lambda ftp: ftp.retrlines(" ".join(args), lines.append)
        )
        now = datetime.now()
        return [entry for line in lines if (entry := parse_list_line(line, now)) is not None]

    def size(self, name: str) -> int | None:
        """Remote file size via SIZE, or None when the server cannot tell."""
        try:
            self._binary_mode()
            return self._run(f"size of {name}", lambda ftp: ftp.size(name))  # type: ignore[return-value]
        except FtpError:
            return None

    def modified(self, name: str) -> datetime | None:
        """Remote modification time via MDTM (RFC 3659, UTC), or None when the server cannot tell."""
        try:
            reply = self._run(f"time of {name}", lambda ftp: ftp.sendcmd(f"MDTM {name}"))
        except FtpError:
            return None
        code, _, value = str(reply).partition(" ")
        return _parse_mlsd_time(value.strip()) if code == "213" else None

    def _binary_mode(self) -> None:
        # ftplib's retrlines (LIST, MLSD) switches to TYPE A; transfers and SIZE need image mode.
        self._run("switch to binary mode", lambda ftp: ftp.voidcmd("TYPE I"))

    def _remote_file_exists(self, name: str) -> bool | None:
        """SIZE as an existence probe: True (213), False (550), None when the server cannot say."""
        try:
            self._run(f"size of {name}", lambda ftp: ftp.sendcmd(f"SIZE {name}"))
        except FtpError as error:
            return False if error.code == "550" else None
        return True

    def exists(self, name: str) -> bool:
        """Whether ``name`` is present in the current directory (for overwrite confirmation)."""
        return any(entry.name == name for entry in self.list_dir())

    def mkdir(self, name: str) -> None:
        """Create a directory (MKD)."""
        self._run(f"create directory {name}", lambda ftp: ftp.mkd(name))

    def rename(self, old: str, new: str) -> None:
        """Rename or move an entry (RNFR + RNTO)."""
        self._run(f"rename {old} to {new}", lambda ftp: ftp.rename(old, new))

    def delete_file(self, name: str) -> None:
        """Delete one file (DELE)."""
        self._run(f"delete {name}", lambda ftp: ftp.delete(name))

    def remove_dir(self, name: str, recursive: bool = False) -> None:
        """Remove a directory (RMD); with ``recursive`` delete its contents first, depth first."""
        with self._lock:
            if recursive:
                for entry in self.list_dir(name):
                    child = f"{name.rstrip('/')}/{entry.name}"
                    if entry.is_dir and not entry.is_link:
                        self.remove_dir(child, recursive=True)
                    else:
                        self.delete_file(child)
            self._run(f"remove directory {name}", lambda ftp: ftp.rmd(name))

    # -- transfers -------------------------------------------------------

    def download(
        self,
        remote_name: str,
        local_path: str | os.PathLike[str],
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        max_rate: int | None = None,
    ) -> int:
        """RETR ``remote_name`` into ``local_path``; return the byte count.

        ``max_rate`` (bytes per second) holds this transfer to that speed.

        Bytes go to a temporary file next to the target, renamed into place only
        when complete, so a failed or cancelled download never clobbers an
        existing local file. The file gets the server's modification time (MDTM)
        when the server tells it.
        """
        target = Path(local_path)
        partial = target.with_name(f".{target.name}.part")
        with self._lock:
            self._binary_mode()
            total = self.size(remote_name)
            # The copy keeps the server's time, as cp -p and FTP GUI clients do: "now" would
            # make every download look newer than its source.
            modified = self.modified(remote_name)
            done = 0
            try:
                with open(partial, "wb") as output:
                    # One reused buffer: recv_into avoids a new bytes object per chunk.
                    buffer = bytearray(CHUNK_SIZE)
                    view = memoryview(buffer)
                    pacer = TransferPacer(max_rate, cancel)

                    def receive(data_conn: socket.socket) -> bool:
                        nonlocal done
                        count = data_conn.recv_into(buffer, pacer.chunk(CHUNK_SIZE))
                        if not count:
                            return False
                        output.write(view[:count])
                        done += count
                        if progress is not None:
                            progress(done, total)
                        pacer.pace(done)
                        return True

                    self._transfer(
                        f"RETR {remote_name}", f"download {remote_name}", receive, cancel
                    )
                if modified is not None:
                    stamp = modified.timestamp()
                    os.utime(partial, (stamp, stamp))
                os.replace(partial, target)
            except BaseException as error:
                _unlink_quietly(partial)
                if isinstance(error, FtpError):
                    raise
                raise FtpError.from_exception(f"download {remote_name}", error) from None
            if progress is not None and total != done:
                progress(done, done)
            return done

    def upload(
        self,
        local_path: str | os.PathLike[str],
        remote_name: str,
        progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        max_rate: int | None = None,
    ) -> int:
        """STOR ``local_path`` as ``remote_name``; return the byte count.

        ``max_rate`` (bytes per second) holds this transfer to that speed.

        On cancel the data connection is reset (not closed cleanly) and ABOR sent,
        so the server sees an abort rather than a short file. If the target did not
        exist before, whatever partial file the server kept is deleted; an existing
        file is left alone (a careful server keeps the old content on abort).
        """
        source = Path(local_path)
        with self._lock:
            try:
                data_source = open(source, "rb")  # noqa: SIM115 - closed below, around the transfer
                total = os.fstat(data_source.fileno()).st_size
            except OSError as error:
                raise FtpError.from_exception(f"upload {source.name}", error) from None
            self._binary_mode()
            existed_before = self._remote_file_exists(remote_name)
            done = 0
            pacer = TransferPacer(max_rate, cancel)

            def send(data_conn: socket.socket) -> bool:
                nonlocal done
                # socket.sendfile: os.sendfile underneath, the kernel copies file to socket.
                sent = data_conn.sendfile(data_source, done, pacer.chunk(CHUNK_SIZE))
                if not sent:
                    return False
                done += sent
                if progress is not None:
                    progress(done, total)
                pacer.pace(done)
                return True

            with data_source:
                try:
                    self._transfer(f"STOR {remote_name}", f"upload {source.name}", send, cancel)
                except TransferCancelled:
                    if existed_before is False and self.connected:
                        self._delete_quietly(remote_name)
                    raise
            if progress is not None and total == 0:
                progress(0, 0)
            return done

    def _transfer(
        self,
        command: str,
        action: str,
        step: Callable[[socket.socket], bool],
        cancel: threading.Event | None,
    ) -> None:
        """Open the data connection for ``command`` and call ``step`` until it returns False.

        A cancel aborts (see :meth:`_abort_transfer`) and raises
        :class:`TransferCancelled` whose ``code`` is the server's reply to the
        transfer. A data-connection failure reads the server's reply so the error
        names its reason (e.g. 451 or 552) and the control channel stays in step.
        """
        ftp = self._require()
        try:
            data_conn = ftp.transfercmd(command)
        except BaseException as error:
            self._forget_if_broken(error)
            raise FtpError.from_exception(action, error) from None
        try:
            while True:
                if cancel is not None and cancel.is_set():
                    reply = self._abort_transfer(data_conn)
                    match = _REPLY_CODE.match(reply)
                    raise TransferCancelled(
                        f"{action} cancelled", match.group(1) if match else None
                    )
                if not step(data_conn):
                    break
        except TransferCancelled:
            raise
        except OSError as data_error:
            _reset_quietly(data_conn)
            try:
                ftp.voidresp()
            except ftplib.Error as reply_error:
                raise FtpError.from_exception(action, reply_error) from None
            except BaseException as control_error:
                self._forget_if_broken(control_error, force=True)
            raise FtpError.from_exception(action, data_error) from None
        finally:
            _close_quietly_socket(data_conn)
        try:
            ftp.voidresp()
        except BaseException as error:
            self._forget_if_broken(error)
            raise FtpError.from_exception(action, error) from None

    def _abort_transfer(self, data_conn: socket.socket) -> str:
        """ABOR the running transfer and drain replies up to a NOOP marker; return the transfer's reply.

        Servers differ in what they answer (426 then 226, or 226 then 225), so
        rather than guess how many replies are pending, send NOOP and read until
        its 200 arrives: the control channel is then in step again.
        """
        ftp = self._require()
        replies: list[str] = []
        try:
            # ABOR preceded by Telnet IP/DM, as RFC 959 section 4.1.3 describes (what ftplib.abort does).
            ftp.sock.sendall(b"\xff\xf4\xff")
            ftp.sock.sendall(b"\xf2", socket.MSG_OOB)
            ftp.sock.sendall(b"ABOR\r\n")
            # A reset, not a clean close: a blocking server must not mistake it for end of file.
            _reset_quietly(data_conn)
            ftp.sock.sendall(b"NOOP\r\n")
            while True:
                reply = ftp.getmultiline()
                replies.append(reply)
                if reply.startswith("200"):
                    break
        except BaseException as error:
            self._forget_if_broken(error, force=True)
            return ""
        if len(replies) > 2:
            return replies[0]
        # Only ABOR's and NOOP's replies: the server never ended the transfer. It may
        # still hold the command for the next data connection (pyftpdlib does when
        # the data connection was not accepted yet, and then feeds the next listing
        # into it), so go on in a fresh session rather than trust this one.
        with contextlib.suppress(FtpError):  # a failed reconnect shows as not connected
            self.reconnect()
        return replies[0] if replies else ""

    def _delete_quietly(self, name: str) -> None:
        try:
            self.delete_file(name)
        except FtpError:
            pass

    def _forget_if_broken(self, error: BaseException, force: bool = False) -> None:
        """Drop the control connection if ``error`` means it is unusable."""
        lost = isinstance(error, EOFError | ConnectionError | socket.timeout | TimeoutError)
        # 421: the server is closing the control connection (idle timeout, shutdown, too many users).
        closing = isinstance(error, ftplib.error_temp) and str(error).startswith("421")
        if force or lost or closing:
            ftp, self._ftp = self._ftp, None
            if ftp is not None:
                _close_quietly(ftp)


def _close_quietly(ftp: ftplib.FTP) -> None:
    try:
        ftp.close()
    except OSError:
        pass


def _reset_quietly(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0) so the peer sees an error, not a clean end of data."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    _close_quietly_socket(sock)


def _close_quietly_socket(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
