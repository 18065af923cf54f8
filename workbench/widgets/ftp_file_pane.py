"""One side of the FTP tab's two-pane browser: a titled table of directory entries."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Label

from workbench.clients.ftp import RemoteEntry

PARENT_KEY = ".."


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


class FtpFilePane(Vertical, can_focus=False):
    """A path title over a table of entries; Enter opens a directory, Backspace goes up."""

    DEFAULT_CSS = """
    FtpFilePane {
        width: 1fr;
        height: 1fr;
        border: round $primary 50%;
    }
    FtpFilePane:focus-within {
        border: round $primary;
    }
    FtpFilePane > .ftp-pane-title {
        width: 1fr;
        padding: 0 1;
        background: $boost;
        color: $text;
        text-style: bold;
    }
    FtpFilePane > .ftp-pane-access {
        width: 1fr;
        padding: 0 1;
        color: $text-accent;
        display: none;
    }
    FtpFilePane > .ftp-pane-access.-shown {
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

    class Opened(Message):
        """The user asked to enter a directory (``entry`` None means the parent)."""

        def __init__(self, pane: FtpFilePane, entry: RemoteEntry | None) -> None:
            super().__init__()
            self.pane = pane
            self.entry = entry

        @property
        def control(self) -> FtpFilePane:
            return self.pane

    def __init__(self, heading: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.heading = heading
        self.path = ""
        self.entries: list[RemoteEntry] = []
        self._by_key: dict[str, RemoteEntry] = {}

    def compose(self) -> ComposeResult:
        yield Label(self.heading, classes="ftp-pane-title", markup=False)
        yield Label("", classes="ftp-pane-access", markup=False)
        table: DataTable[str | Text] = DataTable(cursor_type="row", zebra_stripes=True)
        table.add_column("Name", key="name")
        table.add_column("Size", key="size")
        table.add_column("Modified", key="modified")
        yield table
        yield Label("", classes="ftp-pane-status", markup=False)

    @property
    def table(self) -> DataTable[str | Text]:
        return self.query_one(DataTable)

    def show_entries(
        self, path: str, entries: list[RemoteEntry], *, can_go_up: bool = True
    ) -> None:
        """Replace the listing, keeping the cursor on the same name when it is still there."""
        table = self.table
        previous = self.selected_entry
        previous_name = previous.name if previous else None
        moved_directory = path != self.path
        self.path = path
        self.entries = list(entries)
        self._by_key = {}
        self.query_one(".ftp-pane-title", Label).update(f"{self.heading}  {path}")
        table.clear()
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
            if not moved_directory and entry.name == previous_name:
                cursor_row = index + (1 if can_go_up else 0)
        if table.row_count:
            table.move_cursor(row=cursor_row)
        files = sum(1 for entry in self.entries if not entry.is_dir)
        folders = len(self.entries) - files
        self.set_status(
            f"{folders} folder{'' if folders == 1 else 's'}, {files} file{'' if files == 1 else 's'}"
        )

    def show_placeholder(self, message: str, *, error: bool = False) -> None:
        """Empty the table and explain why (not connected, no server...)."""
        self.entries = []
        self._by_key = {}
        self.table.clear()
        self.query_one(".ftp-pane-title", Label).update(self.heading)
        self.path = ""
        self.set_status(message, error=error)

    def set_access(self, text: str) -> None:
        """What the current login may do here (shown under the title; hidden when empty)."""
        access = self.query_one(".ftp-pane-access", Label)
        access.update(text)
        access.set_class(bool(text), "-shown")

    def set_status(self, message: str, *, error: bool = False) -> None:
        status = self.query_one(".ftp-pane-status", Label)
        status.update(message)
        status.set_class(error, "-error")

    @property
    def selected_entry(self) -> RemoteEntry | None:
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

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        key = str(event.row_key.value)
        if key == PARENT_KEY:
            self.post_message(self.Opened(self, None))
            return
        entry = self._by_key.get(key)
        if entry is not None and entry.is_dir:
            self.post_message(self.Opened(self, entry))

    def action_go_up(self) -> None:
        if self.path:
            self.post_message(self.Opened(self, None))
