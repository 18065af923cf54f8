"""Horizontal bar chart drawn with block characters: latency histograms and per-model comparisons."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

_PARTIAL_BLOCKS = " ▏▎▍▌▋▊▉"
#: Drawn after the value of a bar that may not win (its figures hide something).
UNRANKED_MARK = " ✗"


def bar_cells(value: float, peak: float, width: int) -> str:
    """A bar of ``value / peak`` of ``width`` cells, with eighth-cell precision."""
    if peak <= 0 or width <= 0 or value <= 0:
        return ""
    eighths = round(min(1.0, value / peak) * width * 8)
    full, rest = divmod(eighths, 8)
    return "█" * full + (_PARTIAL_BLOCKS[rest] if rest else "")


class BarChart(Widget):
    """Labelled horizontal bars, one per line; the best bar is drawn in the accent colour."""

    COMPONENT_CLASSES = {
        "bar-chart--title",
        "bar-chart--bar",
        "bar-chart--best",
        "bar-chart--unranked",
        "bar-chart--empty",
    }

    DEFAULT_CSS = """
    BarChart {
        height: auto;
        min-height: 3;
        padding: 0 1;
    }
    BarChart > .bar-chart--title { text-style: bold; color: $text; }
    BarChart > .bar-chart--bar { color: $primary; }
    BarChart > .bar-chart--best { color: $success; }
    BarChart > .bar-chart--unranked { color: $error; }
    BarChart > .bar-chart--empty { color: $text-muted; }
    """

    bars: reactive[tuple[tuple[str, float], ...]] = reactive((), layout=True)
    #: Labels of bars drawn but never highlighted as the best (marked with UNRANKED_MARK).
    unranked: reactive[frozenset[str]] = reactive(frozenset())

    def __init__(
        self,
        title: str = "",
        *,
        value_format: Callable[[float], str] = lambda value: f"{value:,.0f}",
        best: str | None = None,
        empty_text: str = "no data yet",
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.chart_title = title
        self.value_format = value_format
        #: "max", "min" or None: which bar to highlight as the winner.
        self.best = best
        self.empty_text = empty_text

    def set_bars(self, bars: Sequence[tuple[str, float]], unranked: Collection[str] = ()) -> None:
        """Show ``bars``; those labelled in ``unranked`` are drawn but can never be the best."""
        self.unranked = frozenset(unranked)
        self.bars = tuple((str(label), float(value)) for label, value in bars)

    def best_label(self) -> str | None:
        """The bar drawn as the winner: highest or lowest positive value among the ranked."""
        candidates = [
            (value, label) for label, value in self.bars if value > 0 and label not in self.unranked
        ]
        if not self.best or not candidates:
            return None
        return (max if self.best == "max" else min)(candidates)[1]

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        if self.chart_title:
            text.append(self.chart_title, self.get_component_rich_style("bar-chart--title"))
            text.append("\n")
        if not self.bars:
            text.append(self.empty_text, self.get_component_rich_style("bar-chart--empty"))
            return text
        label_width = max(len(label) for label, _ in self.bars)
        shown_values = [
            self.value_format(value) + (UNRANKED_MARK if label in self.unranked else "")
            for label, value in self.bars
        ]
        value_width = max(len(value) for value in shown_values)
        width = max(1, self.content_size.width - label_width - value_width - 3)
        peak = max(value for _, value in self.bars)
        best = self.best_label()
        bar_style = self.get_component_rich_style("bar-chart--bar")
        best_style = self.get_component_rich_style("bar-chart--best")
        unranked_style = self.get_component_rich_style("bar-chart--unranked")
        for index, ((label, value), shown) in enumerate(zip(self.bars, shown_values, strict=True)):
            if index:
                text.append("\n")
            text.append(f"{label:>{label_width}} ")
            cells = bar_cells(value, peak, width)
            if label == best:
                style = best_style
            elif label in self.unranked:
                style = unranked_style
            else:
                style = bar_style
            text.append(cells, style)
            text.append(" " * (width - len(cells) + 1))
            text.append(f"{shown:>{value_width}}")
        return text

    def get_content_height(self, container, viewport, width: int) -> int:  # type: ignore[override]
        return (1 if self.chart_title else 0) + max(1, len(self.bars))
