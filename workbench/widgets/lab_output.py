"""What a lab run shows as it happens: its lines and tables in order, its figures in large digits, its verdict."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rich import box
from rich.table import Table
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Digits, Static

from workbench.labs.base import Figure

#: Characters textual's Digits draws in its 3x3 font (others would fall to the bottom row).
DIGIT_CHARACTERS = frozenset(" 0123456789+-^x:ABCDEF$£€().,")
#: Narrowest figure card: three side by side in the 86 columns a 120-column terminal leaves.
FIGURE_CARD_WIDTH = 26


def figure_from_event(event: Mapping[str, Any]) -> Figure:
    return Figure(
        str(event.get("key", "")),
        str(event.get("label", event.get("key", ""))),
        event.get("value", ""),
        str(event.get("unit", "")),
    )


def shown_value(figure: Figure) -> str:
    """The figure's value as the CLI prints it, without its unit."""
    return Figure(figure.key, figure.label, figure.value).shown()


def rich_table(event: Mapping[str, Any]) -> Table:
    table = Table(
        title=str(event.get("title", "")),
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        header_style="bold",
        expand=False,
    )
    for header in event.get("headers", ()):
        table.add_column(str(header), overflow="fold")
    for row in event.get("rows", ()):
        table.add_row(*(str(cell) for cell in row))
    return table


class FigureCard(Vertical):
    """One measured figure, large enough to read from the back of a classroom."""

    DEFAULT_CSS = """
    FigureCard {
        width: 1fr;
        height: auto;
        border: round $primary;
        padding: 0 1;
    }
    /* Two lines even for a short label, so the cards of a row line up. */
    FigureCard .figure-label { color: $text; text-style: bold; min-height: 2; }
    FigureCard .figure-row { height: auto; }
    FigureCard Digits { width: auto; color: $accent; text-style: bold; }
    FigureCard .figure-text { color: $accent; text-style: bold; width: auto; padding: 1 0 0 0; }
    FigureCard .figure-unit { color: $text-muted; width: 1fr; padding: 2 0 0 1; }
    """

    def __init__(self, figure: Figure) -> None:
        super().__init__(classes="figure-card")
        self.figure = figure

    def compose(self) -> ComposeResult:
        yield Static(self.figure.label, classes="figure-label", markup=False)
        with Horizontal(classes="figure-row"):
            value = shown_value(self.figure)
            if set(value) <= DIGIT_CHARACTERS and len(value) * 3 <= FIGURE_CARD_WIDTH - 4:
                yield Digits(value)
            else:
                yield Static(value, classes="figure-text", markup=False)
            yield Static(self.figure.unit, classes="figure-unit", markup=False)

    def update_figure(self, figure: Figure) -> None:
        if figure != self.figure:
            self.figure = figure
            self.refresh(recompose=True)

    @property
    def value_text(self) -> str:
        return shown_value(self.figure)


class FigureGrid(Widget):
    """Figure cards side by side, as many per row as the width allows."""

    DEFAULT_CSS = """
    FigureGrid {
        layout: grid;
        grid-size: 3;
        grid-gutter: 0 1;
        grid-columns: 1fr;
        grid-rows: auto;
        height: auto;
        margin: 1 0 0 0;
    }
    """

    def on_resize(self) -> None:
        columns = max(1, (self.size.width + 1) // (FIGURE_CARD_WIDTH + 1))
        if self.styles.grid_size_columns != columns:
            self.styles.grid_size_columns = columns


#: Lines one block shows at most: a runaway lab must not make the UI lay out a million lines.
MAX_SHOWN_LINES = 2000


class LinesBlock(Static):
    """Consecutive lines of a run in one widget: a chatty lab does not mount a widget per line."""

    def __init__(self) -> None:
        super().__init__("", classes="lab-lines", markup=False)
        self.lines: list[str] = []

    def show_lines(self) -> None:
        """Redraw with every line added so far (called once per batch, not per line)."""
        hidden = len(self.lines) - MAX_SHOWN_LINES
        shown = self.lines[-MAX_SHOWN_LINES:]
        if hidden > 0:
            shown = [f"… {hidden:,} earlier lines not shown", *shown]
        self.update("\n".join(shown))


class LabOutput(Vertical):
    """One run's output: call :meth:`clear`, then :meth:`add_events` with each batch of JSONL events."""

    DEFAULT_CSS = """
    LabOutput {
        height: auto;
    }
    LabOutput .lab-lines {
        color: $text;
        padding: 0 1;
    }
    LabOutput .lab-table {
        width: auto;
        padding: 0 1;
        margin: 1 0 0 0;
    }
    LabOutput .lab-verdict {
        width: 1fr;
        margin: 1 0 0 0;
        padding: 0 1;
        border: tall $success;
        background: $success 15%;
        color: $text;
        text-style: bold;
    }
    LabOutput .lab-error {
        width: 1fr;
        margin: 1 0 0 0;
        padding: 0 1;
        border: tall $error;
        background: $error 15%;
        color: $text;
        text-style: bold;
    }
    """

    class Grew(Message):
        """The output changed size (new lines, a table, figure cards laid out): a chance to follow it."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._lines_block: LinesBlock | None = None
        self._cards: dict[str, FigureCard] = {}
        self._grid: FigureGrid | None = None
        self.verdict = ""
        self.errors: list[str] = []

    def on_resize(self) -> None:
        self.post_message(self.Grew())

    def clear(self) -> None:
        self.remove_children()
        self._lines_block = None
        self._cards = {}
        self._grid = None
        self.verdict = ""
        self.errors = []

    @property
    def lines(self) -> list[str]:
        """Every line the run printed, in order."""
        return [line for block in self.query(LinesBlock) for line in block.lines]

    @property
    def figures(self) -> dict[str, str]:
        """Figure key -> its value as shown (for tests and the screenshot script)."""
        return {key: card.value_text for key, card in self._cards.items()}

    def add_events(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Append a batch of events in order; a run of lines becomes one block, not a widget each."""
        grown: set[LinesBlock] = set()
        for event in events:
            kind = event.get("type")
            if kind == "line":
                grown.add(self._add_line(str(event.get("text", ""))))
                continue
            self._lines_block = None
            if kind == "figure":
                self._add_figure(figure_from_event(event))
                continue
            self._grid = None
            if kind == "table":
                self.mount(Static(rich_table(event), classes="lab-table"))
            elif kind == "verdict":
                self.verdict = str(event.get("text", ""))
                self.mount(Static(f"→ {self.verdict}", classes="lab-verdict", markup=False))
            elif kind == "error":
                text = str(event.get("text", ""))
                self.errors.append(text)
                self.mount(Static(f"✗ {text}", classes="lab-error", markup=False))
            elif kind != "done":
                grown.add(self._add_line(f"({kind}) {dict(event)}"))
        for block in grown:
            block.show_lines()

    def _add_line(self, text: str) -> LinesBlock:
        if self._lines_block is None:
            self._lines_block = LinesBlock()
            self.mount(self._lines_block)
        self._lines_block.lines.append(text)
        return self._lines_block

    def _add_figure(self, figure: Figure) -> None:
        card = self._cards.get(figure.key)
        if card is not None:
            card.update_figure(figure)
            return
        if self._grid is None:
            self._grid = FigureGrid(classes="lab-figures")
            self.mount(self._grid)
        card = self._cards[figure.key] = FigureCard(figure)
        self._grid.mount(card)
