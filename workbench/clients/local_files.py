"""UI-free local-disk client for the FTP tab's left pane, with the FTP client's browsing calls.

:class:`LocalFiles` keeps a current folder the way an FTP session does (``cwd``,
``pwd``) and lists, creates, renames and deletes names in it, so a pane drives
the disk and a server through one :class:`~workbench.clients.files.FileSource`
shape. Every failure is a :class:`~workbench.clients.files.FileOpError` whose
message names the action and the reason in words ("it is not empty"), never a
bare errno. Calls block on the disk (a big folder, a deep tree to remove): a UI
runs them in worker threads.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from datetime import datetime
from pathlib import Path

from workbench.clients.files import FileEntry, FileOpError, sort_entries

__all__ = ["LocalFiles"]

#: Reasons in words for the errors a person can do something about; others keep the system's text.
_REASONS = {
    errno.ENOENT: "it does not exist",
    errno.EEXIST: "it already exists",
    errno.ENOTEMPTY: "it is not empty",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOTDIR: "it is not a folder",
    errno.EISDIR: "it is a folder",
    errno.EROFS: "the disk is read-only",
    errno.ENOSPC: "the disk is full",
    errno.ENAMETOOLONG: "the name is too long",
}


def _failure(action: str, path: Path, error: OSError) -> FileOpError:
    """``action: reason``, naming the entry deep inside a tree when that is the one that failed."""
    reason = _REASONS.get(error.errno or 0) or error.strerror or str(error)
    culprit = error.filename
    if culprit is not None and Path(os.fsdecode(culprit)) != path:
        reason = f"{reason} ({os.fsdecode(culprit)})"
    return FileOpError(f"{action}: {reason}")


class LocalFiles:
    """A current folder on the local disk and the operations on the names in it."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self._directory = Path(directory).resolve() if directory is not None else Path.cwd()

    # -- what an FTP session has and the disk does not need ---------------

    @property
    def connected(self) -> bool:
        """Always True: the disk does not hang up."""
        return True

    def reconnect(self) -> None:
        """Nothing to renew (there is no connection)."""

    # -- browsing ---------------------------------------------------------

    @property
    def directory(self) -> Path:
        """The current folder as a path (where a download lands)."""
        return self._directory

    def pwd(self) -> str:
        return str(self._directory)

    def _path(self, name: str) -> Path:
        # Lexical, like a shell's cd: ".." from a folder reached through a link goes back to where
        # the user came from, not to the link target's parent.
        return Path(os.path.normpath(self._directory / Path(name).expanduser()))

    def cwd(self, path: str) -> str:
        """Enter ``path`` (absolute, relative to the current folder, ``..`` or ``~``); return it."""
        target = self._path(path)
        try:
            # Opening it proves it is a folder this user may list, without reading a big one.
            with os.scandir(target):
                pass
        except OSError as error:
            raise _failure(f"cannot open {target}", target, error) from None
        self._directory = target
        return str(target)

    def list_dir(self, path: str = "") -> list[FileEntry]:
        """Entries of ``path`` (default: the current folder), folders first."""
        folder = self._path(path) if path else self._directory
        entries = []
        try:
            with os.scandir(folder) as scan:
                for item in scan:
                    try:
                        info = item.stat()
                        is_dir = item.is_dir()
                    except OSError:
                        # A dangling link: show it, so the folder's contents are not silently hidden.
                        entries.append(FileEntry(item.name, False, None, None, is_link=True))
                        continue
                    entries.append(
                        FileEntry(
                            item.name,
                            is_dir,
                            None if is_dir else info.st_size,
                            datetime.fromtimestamp(info.st_mtime),
                            item.is_symlink(),
                        )
                    )
        except OSError as error:
            raise _failure(f"cannot open {folder}", folder, error) from None
        return sort_entries(entries)

    def exists(self, name: str) -> bool:
        """Whether ``name`` is in the current folder (a dangling link counts: it has a name)."""
        return os.path.lexists(self._path(name))

    def size(self, name: str) -> int | None:
        """The size of file ``name``; None for a folder or an entry that cannot be read."""
        try:
            info = self._path(name).stat()
        except OSError:
            return None
        return None if stat.S_ISDIR(info.st_mode) else info.st_size

    # -- changes ------------------------------------------------------------

    def mkdir(self, name: str) -> None:
        target = self._path(name)
        try:
            target.mkdir()
        except OSError as error:
            raise _failure(f"cannot create folder {name}", target, error) from None

    def rename(self, old: str, new: str) -> None:
        """Rename ``old`` to ``new``; never over an existing entry (os.rename would replace a file)."""
        source, target = self._path(old), self._path(new)
        if os.path.lexists(target):
            raise FileOpError(f"cannot rename {old} to {new}: {new} already exists")
        try:
            source.rename(target)
        except OSError as error:
            raise _failure(f"cannot rename {old} to {new}", source, error) from None

    def delete_file(self, name: str) -> None:
        """Delete a file or a link (a link to a folder goes, the folder stays)."""
        target = self._path(name)
        try:
            target.unlink()
        except OSError as error:
            raise _failure(f"cannot delete {name}", target, error) from None

    def remove_dir(self, name: str, recursive: bool = False) -> None:
        """Remove folder ``name``; with ``recursive`` everything in it goes too."""
        target = self._path(name)
        try:
            if target.is_symlink():
                # rmtree refuses links, and rmdir on one fails as "not a folder": say so plainly.
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(target))
            if recursive:
                shutil.rmtree(target)
            else:
                target.rmdir()
        except OSError as error:
            raise _failure(f"cannot remove folder {name}", target, error) from None
