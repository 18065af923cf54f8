"""What a file browser pane needs from a place that holds files, local disk or FTP server alike.

:class:`FileSource` is the shape both :class:`~workbench.clients.local_files.LocalFiles`
and :class:`~workbench.clients.ftp.FtpClient` have, so a pane lists, enters,
creates, renames and deletes through one set of calls whichever side it shows.
Listings are :class:`FileEntry` lists; every failure is a :class:`FileOpError`
whose message is one sentence for a person.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

__all__ = [
    "FileEntry",
    "FileOpError",
    "FileSource",
    "is_plain_file_name",
    "run_renewing",
    "sort_entries",
]

Result = TypeVar("Result")


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One directory entry as a browser shows it (from MLSD facts, LIST, or the local disk)."""

    name: str
    is_dir: bool
    size: int | None = None
    modified: datetime | None = None
    is_link: bool = False


class FileOpError(Exception):
    """A file operation failed; ``code`` is the server's reply code (e.g. "550") when one was sent."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class FileSource(Protocol):
    """A current folder and the operations on names in it; blocking, so UIs call it from workers.

    Names are relative to the current folder; every method raises :class:`FileOpError`.
    """

    @property
    def connected(self) -> bool:
        """False once the source can no longer be used as it is (a dropped FTP control connection)."""
        ...

    def reconnect(self) -> None:
        """Make the source usable again in the same folder."""
        ...

    def pwd(self) -> str:
        """The current folder."""
        ...

    def cwd(self, path: str) -> str:
        """Enter ``path`` (absolute, relative, or ``..``) and return the new current folder."""
        ...

    def list_dir(self, path: str = "") -> list[FileEntry]:
        """Entries of ``path`` (default: the current folder), folders first."""
        ...

    def exists(self, name: str) -> bool:
        """Whether ``name`` is in the current folder."""
        ...

    def size(self, name: str) -> int | None:
        """The size of file ``name`` in bytes, or None when it cannot be told."""
        ...

    def mkdir(self, name: str) -> None:
        """Create folder ``name``."""
        ...

    def rename(self, old: str, new: str) -> None:
        """Rename ``old`` to ``new``."""
        ...

    def delete_file(self, name: str) -> None:
        """Delete file (or link) ``name``."""
        ...

    def remove_dir(self, name: str, recursive: bool = False) -> None:
        """Remove folder ``name``; with ``recursive`` its contents go first."""
        ...


def sort_entries(entries: Iterable[FileEntry]) -> list[FileEntry]:
    """Directories first, then files, each case-insensitively by name (what file browsers do)."""
    return sorted(entries, key=lambda entry: (not entry.is_dir, entry.name.lower(), entry.name))


def run_renewing(source: FileSource, operation: Callable[[FileSource], Result]) -> Result:
    """Run ``operation``; if the source had dropped (an idle FTP login), renew it and run it once more."""
    try:
        return operation(source)
    except FileOpError:
        if source.connected:
            raise
        # Servers close idle control connections (421): a browser should just carry on.
        source.reconnect()
        return operation(source)


def is_plain_file_name(name: str) -> bool:
    """True for a name that stays in the folder it is joined to (no separators, not . or ..)."""
    return (
        bool(name)
        and name not in (".", "..")
        and "/" not in name
        and "\\" not in name
        and "\0" not in name
    )
