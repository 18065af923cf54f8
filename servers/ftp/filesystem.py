"""The FTP server's view of its folder: virtual paths jailed under one root, ls -l and MLSx lines.

Like pyftpdlib's ``AbstractedFS``: clients see a Unix-like tree whose ``/`` is
the served root. Every path a client names is turned into a real path here and
refused if it (or a symlink on the way) leads outside the root, so ``..``,
absolute paths and symlinks pointing out all stop at this one gate.
"""

from __future__ import annotations

import os
import posixpath
import stat
import time
from collections.abc import Callable, Iterable

try:  # Unix only: owner and group names in LIST lines.
    import grp
    import pwd
except ImportError:  # pragma: no cover - Windows
    grp = pwd = None  # type: ignore[assignment]

_SIX_MONTHS = 180 * 24 * 60 * 60
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

#: Facts MLSD/MLST can show, and those shown until the client picks with OPTS MLST.
MLST_FACTS = ("type", "size", "modify", "perm", "unique", "unix.mode")
DEFAULT_MLST_FACTS = ("type", "size", "modify", "perm", "unique")


class PathOutsideRoot(Exception):
    """The client named a path that would leave the served root."""


class JailedFilesystem:
    """Map a client's virtual paths to real paths under ``root``, tracking the cwd."""

    def __init__(self, root: str) -> None:
        self.root = os.path.realpath(root)
        self.cwd = "/"

    # -- path mapping ----------------------------------------------------------

    def virtual_path(self, client_path: str) -> str:
        """Absolute, normalized virtual path for ``client_path`` (relative to cwd)."""
        joined = posixpath.join(self.cwd, client_path) if client_path else self.cwd
        normalized = posixpath.normpath(joined)
        # normpath keeps a leading "//"; ".." above "/" is dropped like a shell does.
        return "/" + normalized.lstrip("/")

    def real_path(self, client_path: str) -> str:
        """Real path for ``client_path``; raises PathOutsideRoot if it escapes.

        Symlinks are resolved (``realpath``), so a link pointing outside the
        root is refused as surely as a ``..``. A missing final component (STOR,
        MKD) is fine: realpath resolves the existing part of the path.
        """
        if "\x00" in client_path:
            raise PathOutsideRoot(client_path)
        virtual = self.virtual_path(client_path)
        candidate = os.path.join(self.root, virtual.lstrip("/"))
        resolved = os.path.realpath(candidate)
        if not self.is_inside_root(resolved):
            raise PathOutsideRoot(client_path)
        return candidate

    def is_inside_root(self, real: str) -> bool:
        return real == self.root or real.startswith(self.root.rstrip(os.sep) + os.sep)

    def to_virtual(self, real: str) -> str:
        """Virtual path of a real path under the root."""
        relative = os.path.relpath(real, self.root)
        return "/" if relative == "." else "/" + relative.replace(os.sep, "/")

    def change_directory(self, client_path: str) -> str:
        """Set the cwd; returns the new virtual cwd. Raises OSError if not a folder."""
        real = self.real_path(client_path)
        if not os.path.isdir(real):
            raise NotADirectoryError(real)
        if not os.access(real, os.X_OK):
            raise PermissionError(real)
        self.cwd = self.virtual_path(client_path)
        return self.cwd

    # -- listings ----------------------------------------------------------------

    def list_names(self, real_dir: str) -> list[str]:
        return sorted(os.listdir(real_dir))

    def format_list(self, real_dir: str, names: Iterable[str], now: float | None = None) -> bytes:
        """``ls -l`` lines (what LIST sends), CRLF-terminated."""
        now = time.time() if now is None else now
        lines = []
        for name in names:
            path = os.path.join(real_dir, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue  # vanished between listdir and lstat
            shown = name
            if stat.S_ISLNK(info.st_mode):
                try:
                    shown = f"{name} -> {os.readlink(path)}"
                except OSError:
                    pass
            lines.append(format_list_line(shown, info, now))
        return "".join(lines).encode("utf-8", "surrogateescape")

    def format_mlsx(
        self,
        real_dir: str,
        names: Iterable[str],
        permissions: str,
        facts: Iterable[str] = DEFAULT_MLST_FACTS,
        *,
        show_cdir: bool = False,
        permissions_of: Callable[[str], str] | None = None,
    ) -> list[str]:
        """RFC 3659 fact lines (``type=file;size=5;... name``), without line ends.

        ``permissions_of(virtual_path)`` gives the letters for one path when they
        differ by folder (anonymous writes in uploads/ only); else ``permissions``.
        """
        facts = tuple(facts)
        lines = []

        def letters(real: str) -> tuple[str, str]:
            if permissions_of is None:
                return permissions, permissions
            virtual = self.to_virtual(real)
            return permissions_of(virtual), permissions_of(virtual.rstrip("/") + "/-")

        if show_cdir:
            try:
                own, inside = letters(real_dir)
                lines.append(
                    format_mlsx_line(".", os.stat(real_dir), own, facts, "cdir", inside=inside)
                )
            except OSError:
                pass
        for name in names:
            path = os.path.join(real_dir, name)
            try:
                # Follow symlinks (RFC 3659 7.5.2), but never describe what lies outside.
                if not self.is_inside_root(os.path.realpath(path)):
                    continue
                info = os.stat(path)
            except OSError:
                continue
            own, inside = letters(path)
            lines.append(format_mlsx_line(name, info, own, facts, inside=inside))
        return lines


def format_list_line(name: str, info: os.stat_result, now: float) -> str:
    """One ``ls -l`` line, the form clients such as lftp and curl parse."""
    mtime = time.localtime(info.st_mtime)
    if now - info.st_mtime > _SIX_MONTHS or info.st_mtime > now + 3600:
        when = f"{_MONTHS[mtime.tm_mon - 1]} {mtime.tm_mday:2d}  {mtime.tm_year}"
    else:
        when = (
            f"{_MONTHS[mtime.tm_mon - 1]} {mtime.tm_mday:2d} {mtime.tm_hour:02d}:{mtime.tm_min:02d}"
        )
    mode = stat.filemode(info.st_mode)
    owner = _user_name(info.st_uid)
    group = _group_name(info.st_gid)
    return f"{mode} {info.st_nlink:3d} {owner:<8} {group:<8} {info.st_size:8d} {when} {name}\r\n"


def format_mlsx_line(
    name: str,
    info: os.stat_result,
    permissions: str,
    facts: tuple[str, ...],
    dir_type: str = "dir",
    *,
    inside: str | None = None,
) -> str:
    """One MLSD/MLST entry: ``fact=value;...;`` a space, then the name.

    ``inside``: a folder's letters for what it contains, when they differ from its own.
    """
    is_dir = stat.S_ISDIR(info.st_mode)
    values: dict[str, str] = {}
    if "type" in facts:
        values["type"] = dir_type if is_dir else "file"
    if "size" in facts:
        values["size"] = str(info.st_size)
    if "modify" in facts:
        values["modify"] = time.strftime("%Y%m%d%H%M%S", time.gmtime(info.st_mtime))
    if "perm" in facts:
        values["perm"] = mlsx_permissions(permissions, is_dir, inside)
    if "unique" in facts:
        values["unique"] = f"{info.st_dev:x}g{info.st_ino:x}"
    if "unix.mode" in facts:
        values["unix.mode"] = f"{stat.S_IMODE(info.st_mode):04o}"
    return "".join(f"{key}={value};" for key, value in values.items()) + " " + name


def mlsx_permissions(permissions: str, is_dir: bool, inside: str | None = None) -> str:
    """RFC 3659 ``perm`` fact from the account's pyftpdlib-style letters.

    Account letters: e=CWD l=LIST r=RETR a=APPE d=DELE/RMD f=rename m=MKD w=STOR.
    A folder's m, c and p are about its contents (``inside``), its f and d about itself.
    """
    if is_dir:
        inside = permissions if inside is None else inside
        letters = "".join(letter for letter in "elf" if letter in permissions)
        if "m" in inside:
            letters += "m"
        if "w" in inside or "a" in inside:
            letters += "c"
        if "d" in permissions:
            letters += "d"
        if "d" in inside:
            letters += "p"
        return letters
    return "".join(letter for letter in "radfw" if letter in permissions)


_user_cache: dict[int, str] = {}
_group_cache: dict[int, str] = {}


def _user_name(uid: int) -> str:
    if uid not in _user_cache:
        try:
            _user_cache[uid] = pwd.getpwuid(uid).pw_name if pwd else "owner"
        except KeyError:
            _user_cache[uid] = str(uid)
    return _user_cache[uid]


def _group_name(gid: int) -> str:
    if gid not in _group_cache:
        try:
            _group_cache[gid] = grp.getgrgid(gid).gr_name if grp else "group"
        except KeyError:
            _group_cache[gid] = str(gid)
    return _group_cache[gid]
