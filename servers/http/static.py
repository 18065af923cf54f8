"""Static files under a root directory: safe path resolution, cached response heads, ranges, listings.

Every target is mapped to a file by decoding it and normalising its segments
*before* touching the file system, then checked again after ``realpath`` so a
symlink cannot lead out of the root either. A file that resolved once gets a
:class:`CachedFile`: its ready-made response heads (and, for small files, the
whole response) are reused for every request in the same second and
re-validated with one ``stat`` when the second changes — the trick that keeps a
pure-Python server near nginx. Large bodies go out as a :class:`FileSlice`, so
every concurrency model sends them with ``os.sendfile``.
"""

from __future__ import annotations

import html
import mimetypes
import os
import stat
import time
from urllib.parse import quote, unquote_to_bytes

from servers.contracts import FileSlice, Output
from servers.http.parser import HttpError
from servers.http.responses import (
    CLOSE,
    KEEP_ALIVE_DEFAULT,
    KEEP_ALIVE_HTTP10,
    build_head,
    http_date,
    parse_http_date,
)

#: Files up to this size are held in memory and answered with a single send.
SMALL_FILE = 64 * 1024
#: Bound on the cache, in entries and in bytes of small-file bodies.
CACHE_MAX_ENTRIES = 1024
CACHE_MAX_BYTES = 32 * 1024 * 1024

_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
    ".xml": "application/xml",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".ico": "image/x-icon",
    ".pdf": "application/pdf",
    ".wasm": "application/wasm",
    ".woff2": "font/woff2",
    ".zip": "application/zip",
    ".gz": "application/gzip",
    ".bin": "application/octet-stream",
}


def content_type_for(path: str) -> str:
    """``Content-Type`` from the file name's extension."""
    extension = os.path.splitext(path)[1].lower()
    known = _CONTENT_TYPES.get(extension)
    if known is not None:
        return known
    guessed, _ = mimetypes.guess_type(path, strict=False)
    if guessed is None:
        return "application/octet-stream"
    return f"{guessed}; charset=utf-8" if guessed.startswith("text/") else guessed


class CachedFile:
    """One servable file with its ready-made 200 responses, one per connection mode."""

    __slots__ = (
        "path",
        "size",
        "mtime_ns",
        "mtime",
        "etag",
        "last_modified",
        "content_type",
        "body",
        "checked",
        "get_outputs",
        "head_outputs",
    )

    def __init__(self, path: str, status: os.stat_result, body: bytes | None, second: int) -> None:
        self.path = path
        self.size = status.st_size if body is None else len(body)
        self.mtime_ns = status.st_mtime_ns
        self.mtime = status.st_mtime
        # nginx's shape (hex mtime and size), with nanoseconds so that two
        # same-size writes within one second still get different tags.
        self.etag = f'"{status.st_mtime_ns:x}-{self.size:x}"'
        self.last_modified = http_date(status.st_mtime)
        self.content_type = content_type_for(path)
        #: The whole file for small ones (one send per response); None: use sendfile.
        self.body = body
        #: The ``int(time.time())`` second these responses were built in.
        self.checked = second
        heads = [
            build_head(200, self.fields(), connection)
            for connection in (KEEP_ALIVE_DEFAULT, CLOSE, KEEP_ALIVE_HTTP10)
        ]
        self.head_outputs: tuple[bytes, ...] = tuple(heads)
        if body is not None:
            self.get_outputs: tuple[tuple[Output, ...], ...] = tuple(
                (head + body,) for head in heads
            )
        else:
            whole = FileSlice(path, 0, self.size)
            self.get_outputs = tuple((head, whole) for head in heads)

    def fields(self, content_length: int | None = None) -> list[tuple[str, str]]:
        """The representation's header fields (``Content-Length`` overridable for ranges)."""
        return [
            ("Content-Type", self.content_type),
            ("Content-Length", str(self.size if content_length is None else content_length)),
            ("Last-Modified", self.last_modified),
            ("ETag", self.etag),
            ("Accept-Ranges", "bytes"),
        ]

    def validators(self) -> list[tuple[str, str]]:
        return [("Last-Modified", self.last_modified), ("ETag", self.etag)]

    def body_slice(self, start: int, count: int) -> Output:
        if self.body is not None:
            return self.body[start : start + count]
        return FileSlice(self.path, start, count)


class Redirect:
    """A directory asked for without its trailing slash: 301 to the slashed form."""

    __slots__ = ("location",)

    def __init__(self, location: str) -> None:
        self.location = location


class Listing:
    """A directory without ``index.html``: answered with a generated page."""

    __slots__ = ("directory", "url_path")

    def __init__(self, directory: str, url_path: str) -> None:
        self.directory = directory
        self.url_path = url_path


Resolution = CachedFile | Redirect | Listing


class StaticSite:
    """The files under ``root`` and the response cache for them (one per process)."""

    def __init__(self, root: str) -> None:
        self.root = os.path.realpath(root)
        if not os.path.isdir(self.root):
            raise ValueError(f"site root {root!r} is not a directory")
        self._root_prefix = self.root.rstrip(os.sep) + os.sep
        self._cache: dict[str, CachedFile] = {}
        self._cached_bytes = 0

    def clear(self) -> None:
        """Forget every cached response (after a fork, or when the cache is full)."""
        self._cache = {}
        self._cached_bytes = 0

    def fresh(self, target: str, second: int) -> CachedFile | None:
        """The cached file for ``target`` if it was validated in ``second`` (the hot path)."""
        entry = self._cache.get(target)
        if entry is not None and entry.checked == second:
            return entry
        return None

    def resolve(self, target: str) -> Resolution:
        """Map a request target to what answers it; raises HttpError (400/403/404)."""
        second = int(time.time())
        previous = self._cache.get(target)
        if previous is not None and previous.checked == second:
            return previous
        url_path, query = split_target(target)
        file_path = self.file_path_for(url_path)
        try:
            status = os.stat(file_path)
        except (FileNotFoundError, NotADirectoryError):
            raise HttpError(404, f"no such file: {url_path[:200]}") from None
        except PermissionError:
            raise HttpError(403, "permission denied") from None
        except OSError as error:
            raise HttpError(404, f"cannot open {url_path[:200]}: {error.strerror}") from None
        if stat.S_ISDIR(status.st_mode):
            if not url_path.endswith("/"):
                return Redirect(url_path + "/" + (f"?{query}" if query else ""))
            index = os.path.join(file_path, "index.html")
            try:
                index_status = os.stat(index)
            except OSError:
                return Listing(file_path, url_path)
            if not stat.S_ISREG(index_status.st_mode) or not self._inside_root(
                os.path.realpath(index)
            ):
                return Listing(file_path, url_path)
            file_path, status = os.path.realpath(index), index_status
        elif not stat.S_ISREG(status.st_mode):
            raise HttpError(403, "not a regular file")
        entry = self._load(file_path, status, previous, second)
        self._remember(target, entry)
        return entry

    def file_path_for(self, url_path: str) -> str:
        """The real path a decoded, normalised URL path names; never outside the root."""
        decoded = unquote_to_bytes(url_path)
        if b"\x00" in decoded:
            raise HttpError(400, "NUL byte in path")
        if b"\\" in decoded:
            raise HttpError(400, "backslash in path")
        segments: list[str] = []
        for segment in decoded.split(b"/"):
            if segment in (b"", b"."):
                continue
            if segment == b"..":
                if not segments:
                    raise HttpError(400, "path climbs above the site root")
                segments.pop()
                continue
            segments.append(os.fsdecode(segment))
        joined = os.path.join(self.root, *segments)
        real = os.path.realpath(joined)
        if not self._inside_root(real):
            raise HttpError(403, "path leads outside the site root")
        return real

    def _inside_root(self, real_path: str) -> bool:
        return real_path == self.root or real_path.startswith(self._root_prefix)

    def _load(
        self, path: str, status: os.stat_result, previous: CachedFile | None, second: int
    ) -> CachedFile:
        body = None
        if status.st_size <= SMALL_FILE:
            if (
                previous is not None
                and previous.path == path
                and previous.body is not None
                and previous.mtime_ns == status.st_mtime_ns
                and previous.size == status.st_size
            ):
                body = previous.body
            else:
                try:
                    with open(path, "rb") as file:
                        body = file.read(SMALL_FILE + 1)
                except PermissionError:
                    raise HttpError(403, "permission denied") from None
                except OSError as error:
                    raise HttpError(404, f"cannot read file: {error.strerror}") from None
                if len(body) > SMALL_FILE:  # grew while we looked: send it from disk
                    body = None
        elif not os.access(path, os.R_OK):
            raise HttpError(403, "permission denied")
        return CachedFile(path, status, body, second)

    def _remember(self, target: str, entry: CachedFile) -> None:
        if len(self._cache) >= CACHE_MAX_ENTRIES or self._cached_bytes > CACHE_MAX_BYTES:
            self.clear()
        old = self._cache.get(target)
        if old is not None and old.body is not None:
            self._cached_bytes -= old.size
        self._cache[target] = entry
        if entry.body is not None:
            self._cached_bytes += entry.size


def split_target(target: str) -> tuple[str, str]:
    """(path, query) of an origin-form or absolute-form target; raises HttpError 400."""
    if not target.startswith("/"):
        scheme, separator, rest = target.partition("://")
        if not separator or not scheme.isalpha():
            raise HttpError(400, "request target must start with /")
        slash = rest.find("/")
        target = rest[slash:] if slash >= 0 else "/"
    path, _, query = target.partition("?")
    path = path.partition("#")[0]
    return path, query


# -- conditional requests and ranges (RFC 9110 13, 14) ---------------------------


def is_not_modified(entry: CachedFile, headers: dict[str, str]) -> bool:
    """If-None-Match (weak comparison) wins; otherwise If-Modified-Since."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        if if_none_match.strip() == "*":
            return True
        wanted = entry.etag
        return any(tag.strip().removeprefix("W/") == wanted for tag in if_none_match.split(","))
    if_modified_since = headers.get("if-modified-since")
    if if_modified_since is not None:
        if if_modified_since == entry.last_modified:
            return True
        since = parse_http_date(if_modified_since)
        return since is not None and int(entry.mtime) <= since
    return False


UNSATISFIABLE = (-1, -1)


def parse_range(value: str, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single ``bytes=`` range, UNSATISFIABLE, or None to ignore it.

    Malformed, multi-range and non-byte ranges are ignored (the full 200 is
    sent), which RFC 9110 14.2 allows; one range out of the file is a 416.
    """
    unit, separator, spec = value.partition("=")
    if not separator or unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    first, last = first.strip(), last.strip()
    if not first:
        if not (last.isascii() and last.isdigit()):
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            return UNSATISFIABLE
        return max(0, size - suffix), size - 1
    if not (first.isascii() and first.isdigit()):
        return None
    start = int(first)
    if last:
        if not (last.isascii() and last.isdigit()):
            return None
        end = int(last)
        if end < start:
            return None
        end = min(end, size - 1)
    else:
        end = size - 1
    if start >= size:
        return UNSATISFIABLE
    return start, end


def range_applies(entry: CachedFile, headers: dict[str, str]) -> bool:
    """If-Range: the range holds only while the validator still matches."""
    if_range = headers.get("if-range")
    if if_range is None:
        return True
    if_range = if_range.strip()
    if if_range.startswith('"'):
        return if_range == entry.etag
    return if_range == entry.last_modified


def file_response(
    entry: CachedFile, method: str, headers: dict[str, str], connection: int
) -> tuple[int, list[Output]]:
    """Status and outputs for a GET/HEAD of a file with conditional or Range headers."""
    if is_not_modified(entry, headers):
        return 304, [build_head(304, entry.validators(), connection)]
    head_only = method == "HEAD"
    range_value = headers.get("range")
    if range_value is not None and not head_only and range_applies(entry, headers):
        chosen = parse_range(range_value, entry.size)
        if chosen == UNSATISFIABLE:
            fields = [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", "0"),
                ("Content-Range", f"bytes */{entry.size}"),
            ]
            return 416, [build_head(416, fields, connection)]
        if chosen is not None:
            start, end = chosen
            count = end - start + 1
            fields = entry.fields(count)
            fields.append(("Content-Range", f"bytes {start}-{end}/{entry.size}"))
            return 206, [build_head(206, fields, connection), entry.body_slice(start, count)]
    if head_only:
        return 200, [entry.head_outputs[connection]]
    return 200, list(entry.get_outputs[connection])


def listing_page(listing: Listing) -> bytes:
    """A generated index of a directory (names escaped; links percent-encoded)."""
    try:
        with os.scandir(listing.directory) as scan:
            items = sorted(scan, key=lambda item: (not item.is_dir(), item.name.lower()))
    except OSError as error:
        raise HttpError(403, f"cannot list directory: {error.strerror}") from None
    title = html.escape(listing.url_path)
    rows = []
    if listing.url_path != "/":
        rows.append('<tr><td><a href="../">../</a></td><td></td><td></td></tr>')
    for item in items:
        try:
            info = item.stat()
        except OSError:
            continue
        is_dir = stat.S_ISDIR(info.st_mode)
        name = item.name + ("/" if is_dir else "")
        # File names need not be UTF-8: link the raw bytes, show a readable form.
        shown = os.fsencode(name).decode("utf-8", "replace")
        size = "-" if is_dir else f"{info.st_size:,}"
        modified = time.strftime("%Y-%m-%d %H:%M", time.gmtime(info.st_mtime))
        rows.append(
            f'<tr><td><a href="{quote(os.fsencode(name))}">{html.escape(shown)}</a></td>'
            f"<td>{size}</td><td>{modified}</td></tr>"
        )
    page = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>Index of {title}</title></head>\n<body>\n<h1>Index of {title}</h1>\n"
        "<table>\n<tr><th>Name</th><th>Size</th><th>Modified (UTC)</th></tr>\n"
        + "\n".join(rows)
        + "\n</table>\n</body></html>\n"
    )
    return page.encode("utf-8", "replace")
