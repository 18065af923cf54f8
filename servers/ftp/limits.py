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

# pid (0 = free) and the client address as 16 bytes (IPv4 mapped into IPv6).
_SLOT = struct.Struct("!i16s")


class ConnectionLimiter:
    """Admit at most ``max_total`` sessions, ``max_per_address`` from one host (0 = no limit)."""

    def __init__(self, max_total: int, max_per_address: int = 0) -> None:
        if max_total < 1:
            raise ValueError("--max-connections must be at least 1")
        if max_per_address < 0:
            raise ValueError("--max-per-address cannot be negative")
        self.max_total = max_total
        self.max_per_address = max_per_address
        self._table = mmap.mmap(-1, max_total * _SLOT.size)  # MAP_SHARED | MAP_ANONYMOUS
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

    def _slots(self) -> Iterator[tuple[int, int, bytes]]:
        for index in range(self.max_total):
            pid, address = _SLOT.unpack_from(self._table, index * _SLOT.size)
            yield index, pid, address

    def acquire(self, host: str) -> tuple[int | None, str]:
        """Take a slot: ``(slot, "")``, or ``(None, reason)`` when a limit is reached."""
        packed = _pack_host(host)
        with self._locked():
            slot, reason = self._try_acquire(packed)
            if slot is None:
                self._sweep_dead()
                slot, reason = self._try_acquire(packed)
            if slot is not None:
                _SLOT.pack_into(self._table, slot * _SLOT.size, os.getpid(), packed)
            return slot, reason

    def _try_acquire(self, packed: bytes) -> tuple[int | None, str]:
        free = None
        same_host = 0
        for index, pid, address in self._slots():
            if pid == 0:
                if free is None:
                    free = index
            elif address == packed:
                same_host += 1
        if self.max_per_address and same_host >= self.max_per_address:
            return None, f"too many connections from your address (limit {self.max_per_address})"
        if free is None:
            return None, f"too many connections (limit {self.max_total})"
        return free, ""

    def _sweep_dead(self) -> None:
        for index, pid, _ in self._slots():
            if pid and not _pid_alive(pid):
                _SLOT.pack_into(self._table, index * _SLOT.size, 0, bytes(16))

    def release(self, slot: int) -> None:
        with self._locked():
            _SLOT.pack_into(self._table, slot * _SLOT.size, 0, bytes(16))

    def count(self) -> int:
        with self._locked():
            return sum(1 for _, pid, _ in self._slots() if pid)


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
