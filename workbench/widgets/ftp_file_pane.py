"""One side of the FTP tab's two-pane browser: a path box over a table of a file source's folder."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.coordinate import Coordinate
from textual.message import Message
from textual.reactive import reactive
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import DataTable, Input, Label

from workbench.clients.files import FileEntry, FileOpError, FileSource, run_renewing
from workbench.widgets.ftp_dialogs import FtpPromptScreen, confirm_then

PARENT_KEY = ".."
#: Type-to-find: keys typed within this many seconds of each other extend the name being found.
FIND_PAUSE_SECONDS = 1.5


def format_size(size: int | None) -> str:
    """Human-readable byte count with binary units (what ``ls -h`` prints)."""
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def format_modified(modified: datetime | None) -> str:
    """Local time to the minute; MLSD gives UTC, LIST gives server-local time."""
    if modified is None:
        return ""
    if modified.tzinfo is not None:
        modified = modified.astimezone()
    return modified.strftime("%Y-%m-%d %H:%M")


class FileTable(DataTable[str | Text]):
    """The entries table: Home/End go to the first/last row, typing a name jumps to it, and a
    click on the row already highlighted opens it (whatever column was clicked)."""

    BINDINGS = [
        Binding("home", "scroll_top", "First row", show=False),
        Binding("end", "scroll_bottom", "Last row", show=False),
    ]

    class FindChanged(Message):
        """What type-to-find is looking for now ("" when it ended)."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True)
        self.find_text = ""
        self._find_at = 0.0
        self._find_timer: Timer | None = None
        #: "/" was pressed: the next letter starts a find even if it is a command key.
        self._find_started = False
        #: Row names in order (the ../ row included), so a find needs no cell rendering.
        self.row_names: list[str] = []

    def action_scroll_top(self) -> None:
        super().action_scroll_top()
        self.scroll_x = 0  # a row jump: the names stay in view

    def action_scroll_bottom(self) -> None:
        super().action_scroll_bottom()
        self.scroll_x = 0

    async def _on_click(self, event: events.Click) -> None:
        meta = event.style.meta
        before = self.cursor_coordinate
        await super()._on_click(event)
        row, column = meta.get("row"), meta.get("column")
        # DataTable opens only on a click in the very cell that holds the cursor; in a file
        # list the whole highlighted row is the target.
        if (
            row is not None
            and column is not None
            and row >= 0
            and row == before.row
            and Coordinate(row, column) != before
        ):
            self.action_select_cursor()

    def on_key(self, event: events.Key) -> None:
        finding = bool(self.find_text) and time.monotonic() - self._find_at < FIND_PAUSE_SECONDS
        if finding and event.key in ("escape", "enter"):
            self._set_find("")
            if event.key == "escape":
                event.stop()
                event.prevent_default()
            return
        if finding and event.key == "backspace":
            self._set_find(self.find_text[:-1])
        elif event.key == "slash" and not finding:
            self._set_find("", started=True)  # "/" starts a find that may begin with any letter
        elif event.character and event.character.isprintable() and event.character != " ":
            # A letter that is a command (d, u, m...) stays a command unless a find is under way.
            if not finding and not self._find_started and event.key in self._command_keys():
                return
            self._set_find(self.find_text + event.character if finding else event.character)
        else:
            return
        event.stop()
        event.prevent_default()

    def _command_keys(self) -> set[str]:
        return {key for key, active in self.screen.active_bindings.items() if active.enabled}

    def _set_find(self, text: str, *, started: bool = False) -> None:
        self.find_text = text
        self._find_started = started
        self._find_at = time.monotonic()
        if self._find_timer is not None:
            self._find_timer.stop()
            self._find_timer = None
        if text or started:
            # A pause ends the find (and its status line), as in a file manager.
            self._find_timer = self.set_timer(FIND_PAUSE_SECONDS, self._end_find)
        if text:
            self.jump_to_prefix(text)
        self.post_message(self.FindChanged(text or ("/" if started else "")))

    def _end_find(self) -> None:
        self._find_timer = None
        self._set_find("")

    def jump_to_prefix(self, prefix: str) -> bool:
        """Put the cursor on the first name starting with ``prefix`` (case-insensitive)."""
        wanted = prefix.casefold()
        for index, name in enumerate(self.row_names):
            if name != PARENT_KEY and name.casefold().startswith(wanted):
                self.move_cursor(row=index)
                return True
        return False


@dataclass(frozen=True, slots=True)
class PaneWords:
    """How a pane names its side in questions and errors, so one pane class serves both."""

    #: "Delete the {side} file x?"
    side: str
    #: The mkdir prompt: "New {folder} name:".
    folder: str
    #: Said when a rename would land on a listed name (``{name}`` is filled in).
    name_taken: str
    #: Put before every error the pane shows, so a local one is not read as the server's.
    error_prefix: str = ""


LOCAL_WORDS = PaneWords("local", "local folder", "Local: {name} already exists", "Local: ")
REMOTE_WORDS = PaneWords("remote", "server folder", "{name} already exists on the server")
NOT_CONNECTED_TEXT = "Not connected to an FTP server"


def notify_file_error(widget: Widget, text: str, code: str | None) -> None:
    """An error notice titled with the FTP reply code when there is one."""
    title = f"FTP {code}" if code else "FTP error"
    widget.notify(text, title=title, severity="error", markup=False)


class FtpFilePane(Vertical, can_focus=False):
    """One side of the browser: a path box over a table of the entries of its source's folder.

    The pane owns its :class:`FileSource` (the disk, or an FTP login once connected) and
    does everything a file manager pane does through it: list, open a folder, go up,
    go to a typed path, create, rename and delete (asking first). Each call runs in a
    thread worker and the fresh listing comes back as a message.
    """

    DEFAULT_CSS = """
    FtpFilePane {
        width: 1fr;
        height: 1fr;
        border: round $primary 50%;
    }
    FtpFilePane:focus-within {
        border: round $primary;
    }
    FtpFilePane > .ftp-pane-header {
        dock: top;
        height: auto;
    }
    FtpFilePane .ftp-pane-title {
        width: 1fr;
        height: 1;
        background: $boost;
    }
    FtpFilePane .ftp-pane-title > Label {
        width: auto;
        padding: 0 1;
        color: $text;
        text-style: bold;
    }
    FtpFilePane .ftp-pane-title > Input {
        width: 1fr;
        height: 1;
        border: none;
        padding: 0;
        background: $boost;
    }
    FtpFilePane .ftp-pane-title > Input:focus {
        background: $surface;
    }
    FtpFilePane .ftp-pane-access {
        width: 1fr;
        padding: 0 1;
        color: $text-accent;
        display: none;
    }
    FtpFilePane .ftp-pane-access.-shown {
        display: block;
    }
    FtpFilePane > .ftp-pane-status {
        width: 1fr;
        padding: 0 1;
        color: $text-muted;
    }
    FtpFilePane > .ftp-pane-status.-error {
        color: $text-error;
    }
    FtpFilePane > DataTable {
        height: 1fr;
    }
    """

    BINDINGS = [Binding("backspace", "go_up", "Up a folder", show=False)]

    #: The folder shown; the path box follows it.
    path: reactive[str] = reactive("", init=False, always_update=True)
    #: What the current login may do here (the line under the title; hidden when empty).
    access: reactive[str] = reactive("", init=False)

    class Listed(Message, bubble=False):
        """A fresh listing from ``source``; ``select`` names the row to put the cursor on."""

        def __init__(
            self, source: FileSource, path: str, entries: list[FileEntry], select: str | None
        ) -> None:
            super().__init__()
            self.source = source
            self.path = path
            self.entries = entries
            self.select = select

    class Failed(Message, bubble=False):
        """An operation on ``source`` failed; ``code`` is the server's reply code if any."""

        def __init__(self, source: FileSource, error: str, code: str | None) -> None:
            super().__init__()
            self.source = source
            self.error = error
            self.code = code

    class SourceLost(Message):
        """The source stopped answering (a dropped FTP control connection): whoever gave it, act."""

        def __init__(self, pane: FtpFilePane) -> None:
            super().__init__()
            self.pane = pane

        @property
        def control(self) -> FtpFilePane:
            return self.pane

    def __init__(
        self,
        heading: str,
        *,
        source: FileSource | None = None,
        words: PaneWords = REMOTE_WORDS,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.heading = heading
        self.source = source
        self.words = words
        self.entries: list[FileEntry] = []
        self._by_key: dict[str, FileEntry] = {}
        #: The listing's summary line, shown again when a find or an error is over.
        self._summary = ""
        #: A path typed in the path box whose folder has not opened yet (put back if refused).
        self._typed_path: str | None = None

    def compose(self) -> ComposeResult:
        table = FileTable()
        table.add_column("Name", key="name")
        table.add_column("Size", key="size")
        table.add_column("Modified", key="modified")
        yield table
        yield Label("", classes="ftp-pane-status", markup=False)
        # After the table in the DOM (docked on top), so "the pane's first focusable widget",
        # where the app puts the focus on a first visit, is the list and not the path box.
        with Vertical(classes="ftp-pane-header"):
            with Horizontal(classes="ftp-pane-title"):
                yield Label(self.heading, markup=False)
                yield Input(
                    placeholder="type a path, Enter goes there",
                    classes="ftp-pane-path",
                    select_on_focus=False,
                )
            yield Label("", classes="ftp-pane-access", markup=False)

    @property
    def table(self) -> FileTable:
        return self.query_one(FileTable)

    @property
    def path_input(self) -> Input:
        return self.query_one(".ftp-pane-path", Input)

    def watch_path(self, path: str) -> None:
        self.path_input.value = path

    def watch_access(self, text: str) -> None:
        label = self.query_one(".ftp-pane-access", Label)
        label.update(text)
        label.set_class(bool(text), "-shown")

    # -- the source ------------------------------------------------------------

    def attach(self, source: FileSource, path: str, entries: list[FileEntry]) -> None:
        """Browse ``source`` from now on, starting with a listing already fetched."""
        self.source = source
        self.show_entries(path, entries, can_go_up=_can_go_up(path))

    def detach(self, message: str, *, error: bool = False) -> None:
        """Forget the source (the caller closes it) and say why the pane is empty."""
        self.source = None
        self._typed_path = None
        self.access = ""
        self.show_placeholder(message, error=error)

    def refresh_listing(self, select: str | None = None) -> None:
        """List the current folder again (nothing to do without a source)."""
        if self.source is not None:
            self._operation_worker(self.source, None, select)

    def run_operation(
        self, operation: Callable[[FileSource], object], select: str | None = None
    ) -> None:
        """Run ``operation`` on the source in a worker, then list the folder it leaves us in."""
        if self.source is None:
            self.notify(NOT_CONNECTED_TEXT, severity="warning")
            return
        self._operation_worker(self.source, operation, select)

    @work(thread=True, group="ftp-pane", exit_on_error=False)
    def _operation_worker(
        self,
        source: FileSource,
        operation: Callable[[FileSource], object] | None,
        select: str | None,
    ) -> None:
        failure: FtpFilePane.Failed | None = None
        try:
            if operation is not None:
                run_renewing(source, operation)
        except FileOpError as error:
            failure = self.Failed(source, str(error), error.code)
        except Exception as error:  # never let a worker take the app down
            failure = self.Failed(source, f"{self.heading}: {error}", None)
        if source.connected:
            # Relist even after a failure: the error may come from a listing that is out of date.
            try:
                path, entries = run_renewing(source, lambda files: (files.pwd(), files.list_dir()))
            except FileOpError as error:
                failure = failure or self.Failed(source, str(error), error.code)
            else:
                self.post_message(self.Listed(source, path, entries, select))
        # After the listing, so the status line keeps showing the error.
        if failure is not None:
            self.post_message(failure)

    def on_ftp_file_pane_listed(self, message: FtpFilePane.Listed) -> None:
        if message.source is not self.source:
            return  # from a login since closed
        if message.path != self.path:
            self._typed_path = None  # it opened: the box shows where we are now
        self.show_entries(message.path, message.entries, can_go_up=_can_go_up(message.path))
        if message.select:
            self.select_name(message.select)

    def on_ftp_file_pane_failed(self, message: FtpFilePane.Failed) -> None:
        if message.source is not self.source:
            return
        text = f"{self.words.error_prefix}{message.error}"
        if self._typed_path is not None:
            self.path_input.value = self._typed_path
            self._typed_path = None
        notify_file_error(self, text, message.code)
        # The pane keeps the last error in view after the notification fades.
        self.set_status(text, error=True)
        if not message.source.connected:
            self.post_message(self.SourceLost(self))

    # -- navigation ------------------------------------------------------------

    @on(Input.Submitted, ".ftp-pane-path")
    def _path_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        path = event.value.strip()
        if path and path != self.path:
            self.go_to(path)
        # Back to the list to carry on with the keyboard; a refused path stays in the box.
        self.focus_table()

    def go_to(self, path: str) -> None:
        """Open a typed path (absolute, or relative to the folder shown)."""
        if self.source is None:
            self.set_status("Not connected: connect first, then type a path", error=True)
            return
        # Kept until the folder opens: a refused path goes back into the box to edit.
        self._typed_path = path
        self.run_operation(lambda files: files.cwd(path))

    def open_entry(self, entry: FileEntry | None) -> None:
        """Enter the folder ``entry``; None goes up, with the cursor on the folder we came from."""
        if entry is None:
            came_from = self.path.rstrip("/").rsplit("/", 1)[-1] or None
            self.run_operation(lambda files: files.cwd(".."), select=came_from)
        elif entry.is_dir:
            self.run_operation(lambda files: files.cwd(entry.name))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        key = str(event.row_key.value)
        if key == PARENT_KEY:
            self.open_entry(None)
            return
        entry = self._by_key.get(key)
        if entry is not None and entry.is_dir:
            self.open_entry(entry)

    def action_go_up(self) -> None:
        if self.path:
            self.open_entry(None)

    # -- changes (each asks its question first) -------------------------------

    def ask_mkdir(self) -> None:
        """Prompt for a name and create that folder here."""
        if self.source is None:
            self.notify(NOT_CONNECTED_TEXT, severity="warning")
            return

        def create(name: str | None) -> None:
            if name:
                self.run_operation(lambda files: files.mkdir(name), select=name)

        self.app.push_screen(FtpPromptScreen(f"New {self.words.folder} name:"), create)

    def ask_rename(self) -> None:
        """Prompt for a new name for the entry under the cursor."""
        entry = self._entry_to_change("rename")
        if entry is None:
            return

        def rename(new_name: str | None) -> None:
            if not new_name or new_name == entry.name:
                return
            if new_name in self.names:
                self.notify(self.words.name_taken.format(name=new_name), severity="error")
                return
            self.run_operation(lambda files: files.rename(entry.name, new_name), select=new_name)

        self.app.push_screen(FtpPromptScreen(f"Rename {entry.name} to:", entry.name), rename)

    def ask_delete(self) -> None:
        """Confirm, then delete the entry under the cursor (a folder with its contents)."""
        entry = self._entry_to_change("delete")
        if entry is None:
            return
        side = self.words.side
        what = (
            f"the {side} folder {entry.name} and everything in it"
            if entry.is_dir
            else f"the {side} file {entry.name}"
        )

        def remove(files: FileSource) -> None:
            if entry.is_dir and not entry.is_link:
                files.remove_dir(entry.name, recursive=True)
            else:
                files.delete_file(entry.name)  # a link to a folder goes, the folder stays

        confirm_then(self.app, f"Delete {what}?", "Delete", partial(self.run_operation, remove))

    def _entry_to_change(self, verb: str) -> FileEntry | None:
        if self.source is None:
            self.notify(NOT_CONNECTED_TEXT, severity="warning")
            return None
        entry = self.selected_entry
        if entry is None:
            self.notify(f"Put the cursor on the entry to {verb}", severity="warning")
        return entry

    # -- what the table shows --------------------------------------------------

    def on_file_table_find_changed(self, event: FileTable.FindChanged) -> None:
        event.stop()
        if event.text:
            found = self.table.jump_to_prefix(event.text) if event.text != "/" else True
            shown = event.text.lstrip("/") if event.text != "/" else ""
            note = "" if found else " (no such name)"
            self.set_status(f"Find: {shown}▏{note}  (Esc ends)", error=not found)
        else:
            self.set_status(self._summary)

    def show_entries(self, path: str, entries: list[FileEntry], *, can_go_up: bool = True) -> None:
        """Replace the listing, keeping the cursor on the same name when it is still there."""
        table = self.table
        previous = self.selected_entry
        previous_name = previous.name if previous else None
        moved_directory = path != self.path
        self.path = path
        self.entries = list(entries)
        self._by_key = {}
        table.clear()
        table.row_names = [PARENT_KEY] if can_go_up else []
        if can_go_up:
            table.add_row(Text("../", style="bold"), "", "", key=PARENT_KEY)
        cursor_row = 0
        for index, entry in enumerate(self.entries):
            key = f"entry-{index}"
            self._by_key[key] = entry
            name = Text(entry.name + "/", style="bold") if entry.is_dir else Text(entry.name)
            if entry.is_link:
                name.append(" @", style="italic")
            table.add_row(name, format_size(entry.size), format_modified(entry.modified), key=key)
            table.row_names.append(entry.name)
            if not moved_directory and entry.name == previous_name:
                cursor_row = index + (1 if can_go_up else 0)
        if table.row_count:
            table.move_cursor(row=cursor_row)
        files = sum(1 for entry in self.entries if not entry.is_dir)
        folders = len(self.entries) - files
        self._summary = f"{folders} folder{'' if folders == 1 else 's'}, {files} file{'' if files == 1 else 's'}"
        self.set_status(self._summary)

    def show_placeholder(self, message: str, *, error: bool = False) -> None:
        """Empty the table and explain why (not connected, no server...)."""
        self.entries = []
        self._by_key = {}
        self.table.clear()
        self.table.row_names = []
        self._summary = message
        self.path = ""
        self.set_status(message, error=error)

    def set_status(self, message: str, *, error: bool = False) -> None:
        status = self.query_one(".ftp-pane-status", Label)
        status.update(message)
        status.set_class(error, "-error")

    @property
    def selected_entry(self) -> FileEntry | None:
        """The entry under the cursor; None on the ``../`` row or an empty table."""
        table = self.table
        if not table.row_count:
            return None
        row_key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return self._by_key.get(str(row_key.value))

    @property
    def names(self) -> set[str]:
        return {entry.name for entry in self.entries}

    def select_name(self, name: str) -> bool:
        """Move the cursor to ``name``; False when it is not listed."""
        for key, entry in self._by_key.items():
            if entry.name == name:
                self.table.move_cursor(row=self.table.get_row_index(key))
                return True
        return False

    def focus_table(self) -> None:
        self.table.focus()


def _can_go_up(path: str) -> bool:
    return path not in ("", "/")
