"""Connection limits shared by every thread and forked process of one FTP server (421 beyond them).

Under ``threads`` the sessions share memory, but under ``processes`` and
``pool`` each lives in its own forked process, so a plain counter would count
one connection per process. The table of open sessions therefore lives in an
anonymous shared ``mmap`` made before the model forks; a POSIX record lock
(``lockf``, per process) plus a ``threading.Lock`` (per thread) guard it.
A slot remembers the pid that holds it, so a child killed with SIGKILL does
not leak its slot: full tables are swept for dead pids.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import mmap
import os
import struct
import tempfile
import threading
from collections.abc import Iterator

_PID = struct.Struct("=i")
_ADDRESS_SIZE = 16  # the client address, IPv4 mapped into IPv6


class ConnectionLimiter:
    """Admit at most ``max_total`` sessions, ``max_per_address`` from one host (0 = no limit).

    The shared table is two arrays: ``max_total`` pids (0 = free slot), then as
    many 16-byte client addresses. Scans work on whole copies of those arrays,
    so admitting a client costs microseconds even with hundreds of slots.
    """

    def __init__(self, max_total: int, max_per_address: int = 0) -> None:
        if max_total < 1:
            raise ValueError("--max-connections must be at least 1")
        if max_per_address < 0:
            raise ValueError("--max-per-address cannot be negative")
        self.max_total = max_total
        self.max_per_address = max_per_address
        self._addresses_at = max_total * _PID.size
        size = self._addresses_at + max_total * _ADDRESS_SIZE
        self._table = mmap.mmap(-1, size)  # MAP_SHARED | MAP_ANONYMOUS: survives fork
        # Lives as long as the limiter: every forked child locks the same file.
        self._lock_file = tempfile.TemporaryFile(prefix="ftp-limits-")  # noqa: SIM115
        self._thread_lock = threading.Lock()

    def after_fork(self) -> None:
        """In a fresh child: the thread lock may have been held by a thread that is not here."""
        self._thread_lock = threading.Lock()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._thread_lock:
            fcntl.lockf(self._lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.lockf(self._lock_file, fcntl.LOCK_UN)

    def _pids(self) -> list[int]:
        return memoryview(self._table)[: self._addresses_at].cast("i").tolist()

    def _address(self, slot: int) -> bytes:
        start = self._addresses_at + slot * _ADDRESS_SIZE
        return self._table[start : start + _ADDRESS_SIZE]

    def _set(self, slot: int, pid: int, packed: bytes) -> None:
        _PID.pack_into(self._table, slot * _PID.size, pid)
        start = self._addresses_at + slot * _ADDRESS_SIZE
        self._table[start : start + _ADDRESS_SIZE] = packed

    def acquire(self, host: str) -> tuple[int | None, str]:
        """Take a slot: ``(slot, "")``, or ``(None, reason)`` when a limit is reached."""
        packed = _pack_host(host)
        with self._locked():
            slot, reason = self._try_acquire(packed)
            if slot is None:
                self._sweep_dead()
                slot, reason = self._try_acquire(packed)
            if slot is not None:
                self._set(slot, os.getpid(), packed)
            return slot, reason

    def _try_acquire(self, packed: bytes) -> tuple[int | None, str]:
        pids = self._pids()
        if self.max_per_address:
            same_host = sum(
                1 for slot, pid in enumerate(pids) if pid and self._address(slot) == packed
            )
            if same_host >= self.max_per_address:
                return None, (
                    f"too many connections from your address (limit {self.max_per_address})"
                )
        try:
            return pids.index(0), ""
        except ValueError:
            return None, f"too many connections (limit {self.max_total})"

    def _sweep_dead(self) -> None:
        for slot, pid in enumerate(self._pids()):
            if pid and not _pid_alive(pid):
                self._set(slot, 0, bytes(_ADDRESS_SIZE))

    def release(self, slot: int) -> None:
        with self._locked():
            self._set(slot, 0, bytes(_ADDRESS_SIZE))

    def count(self) -> int:
        with self._locked():
            return sum(1 for pid in self._pids() if pid)


def _pack_host(host: str) -> bytes:
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return bytes(16)
    if address.version == 4:
        return ipaddress.IPv6Address(f"::ffff:{address}").packed
    return address.packed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
