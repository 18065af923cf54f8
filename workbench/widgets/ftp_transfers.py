"""The FTP tab's transfer line: one download or upload at a time, with progress, speed, ETA and cancel.

Each transfer opens its own FTP login in a thread worker, so the browser stays
usable while a long one runs, and its progress arrives at most ten times a
second whatever the chunk rate.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Literal

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Label, ProgressBar

from workbench.clients.ftp import FtpClient, FtpError, TransferCancelled
from workbench.widgets.ftp_file_pane import format_size, notify_file_error

Direction = Literal["download", "upload"]
Outcome = Literal["done", "cancelled", "failed"]

#: Progress messages per second during a transfer: enough to look live, few enough to stay cheap.
PROGRESS_RATE_HZ = 10

IDLE_TEXT = "No transfer running"


def format_eta(seconds: float) -> str:
    """Time left as ``m:ss`` (or ``h:mm:ss``), what a progress line shows after "ETA"."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def parse_rate_limit(text: str) -> int | None:
    """The Limit field (KiB/s per transfer) in bytes per second; None when empty (no limit).

    Raises ValueError with a sentence for the user when it is not a positive whole number.
    """
    text = text.strip()
    if not text:
        return None
    if not text.isdigit() or int(text) == 0:
        raise ValueError(
            f"Limit must be a whole number of KiB/s above 0 (empty for no limit), not {text!r}"
        )
    return int(text) * 1024


class FtpTransferBar(Horizontal):
    """A label and a progress bar for the running transfer; the tab says what to move where."""

    DEFAULT_CSS = """
    FtpTransferBar {
        dock: bottom;
        height: 1;
        padding: 0 2;
    }
    FtpTransferBar #ftp-transfer-label {
        width: 1fr;
        color: $text;
    }
    FtpTransferBar ProgressBar {
        width: auto;
    }
    """

    # Namespaced as the tab's own events: they bubble up to it, and its subclasses and tests
    # hook them as on_ftp_tab_transfer_progress / _finished.
    class Progress(Message, namespace="ftp_tab_transfer"):
        """Bytes moved so far (``total`` None while the size is unknown)."""

        def __init__(self, done: int, total: int | None, elapsed: float) -> None:
            super().__init__()
            self.done = done
            self.total = total
            self.elapsed = elapsed

    class Finished(Message, namespace="ftp_tab_transfer"):
        """A transfer ended: ``outcome`` is "done", "cancelled" or "failed"."""

        def __init__(
            self,
            direction: Direction,
            name: str,
            outcome: Outcome,
            detail: str,
            code: str | None = None,
        ) -> None:
            super().__init__()
            self.direction = direction
            self.name = name
            self.outcome = outcome
            self.detail = detail
            self.code = code

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._cancel: threading.Event | None = None
        self._direction: Direction = "download"
        self._name = ""

    def compose(self) -> ComposeResult:
        yield Label(IDLE_TEXT, id="ftp-transfer-label", markup=False)
        yield ProgressBar(total=100, show_eta=False, id="ftp-progress")

    @property
    def running(self) -> bool:
        return self._cancel is not None

    def _show(self, text: str, total: float | None = 100, progress: float = 0) -> None:
        self.query_one("#ftp-transfer-label", Label).update(text)
        self.query_one("#ftp-progress", ProgressBar).update(total=total, progress=progress)

    def start(
        self,
        login: FtpClient,
        remote_dir: str,
        direction: Direction,
        name: str,
        local_path: Path,
        max_rate: int | None = None,
    ) -> None:
        """Move ``name`` between ``remote_dir`` and ``local_path`` on a new login like ``login``'s."""
        cancel = threading.Event()
        self._cancel, self._direction, self._name = cancel, direction, name
        self.refresh_bindings()
        verb = "Downloading" if direction == "download" else "Uploading"
        self._show(f"{verb} {name}…", total=None)
        twin = FtpClient(login.host, login.port, login.user, login.password, login.timeout)
        self._transfer_worker(twin, remote_dir, direction, name, local_path, cancel, max_rate)

    def cancel(self) -> None:
        """Stop the running transfer (the worker aborts it and says so)."""
        if self._cancel is None:
            self.notify("No transfer is running", severity="information")
            return
        self._cancel.set()
        self.query_one("#ftp-transfer-label", Label).update(f"Cancelling {self._name}…")

    def on_unmount(self) -> None:
        if self._cancel is not None:
            self._cancel.set()

    @work(thread=True, group="ftp-transfer", exit_on_error=False)
    def _transfer_worker(
        self,
        client: FtpClient,
        remote_dir: str,
        direction: Direction,
        name: str,
        local_path: Path,
        cancel: threading.Event,
        max_rate: int | None,
    ) -> None:
        started = time.monotonic()
        last_post = 0.0

        def progress(done: int, total: int | None) -> None:
            nonlocal last_post
            now = time.monotonic()
            if now - last_post >= 1 / PROGRESS_RATE_HZ or (total is not None and done >= total):
                last_post = now
                self.post_message(self.Progress(done, total, now - started))

        try:
            client.connect()
            if remote_dir:
                client.cwd(remote_dir)
            if direction == "download":
                count = client.download(name, local_path, progress, cancel, max_rate)
            else:
                count = client.upload(local_path, name, progress, cancel, max_rate)
            elapsed = max(time.monotonic() - started, 1e-6)
            detail = (
                f"{format_size(count)} in {elapsed:.1f} s ({format_size(int(count / elapsed))}/s)"
            )
            self.post_message(self.Finished(direction, name, "done", detail))
        except TransferCancelled:
            self.post_message(self.Finished(direction, name, "cancelled", "cancelled"))
        except FtpError as error:
            self.post_message(self.Finished(direction, name, "failed", str(error), error.code))
        except Exception as error:
            self.post_message(
                self.Finished(direction, name, "failed", f"{direction} {name}: {error}")
            )
        finally:
            client.close()

    @on(Progress)
    def _show_progress(self, message: Progress) -> None:
        if not self.running:
            return
        total = message.total if message.total else None
        if total is not None:
            self.query_one("#ftp-progress", ProgressBar).update(total=total, progress=message.done)
        verb = "Downloading" if self._direction == "download" else "Uploading"
        of_total = f" of {format_size(total)}" if total is not None else ""
        speed = message.done / message.elapsed if message.elapsed > 0 else 0.0
        rate = f"{format_size(int(speed))}/s" if speed else ""
        # Time left at the speed so far (the limit's speed when one is set).
        eta = (
            f"  ETA {format_eta((total - message.done) / speed)}"
            if total is not None and speed and message.done < total
            else ""
        )
        self.query_one("#ftp-transfer-label", Label).update(
            f"{verb} {self._name}: {format_size(message.done)}{of_total}  {rate}{eta}"
        )

    @on(Finished)
    def _show_finished(self, message: Finished) -> None:
        self._cancel = None
        self.refresh_bindings()
        bar = self.query_one("#ftp-progress", ProgressBar)
        what = f"{message.direction.capitalize()} of {message.name}"
        if message.outcome == "done":
            verb = "Downloaded" if message.direction == "download" else "Uploaded"
            self._show(f"{verb} {message.name}: {message.detail}", bar.total or 1, bar.total or 1)
            self.notify(f"{verb} {message.name}", title="FTP")
        elif message.outcome == "cancelled":
            self._show(f"{what} cancelled")
            self.notify(f"{what} cancelled", severity="warning")
        else:
            self._show(f"{what} failed: {message.detail}")
            notify_file_error(self, message.detail, message.code)
