"""A SelectionList whose unticked boxes are empty, so ticked and unticked differ without colour."""

from __future__ import annotations

from rich.segment import Segment
from textual.strip import Strip
from textual.widgets import SelectionList
from textual.widgets._toggle_button import ToggleButton


class TickList(SelectionList[str]):
    """Textual draws an X in every box and tells them apart by colour only; on a
    projector, in tmux or with colour off every model then looks ticked."""

    def render_line(self, y: int) -> Strip:
        line = super().render_line(y)
        index = self.scroll_offset.y + y
        if index >= self.option_count:
            return line
        if self.get_option_at_index(index).value in self.selected:
            return line
        segments = list(line)
        # The box is BUTTON_LEFT, BUTTON_INNER, BUTTON_RIGHT: blank the inner mark.
        if len(segments) > 1 and segments[1].text == ToggleButton.BUTTON_INNER:
            inner = segments[1]
            segments[1] = Segment(" " * len(inner.text), inner.style, inner.control)
            return Strip(segments, line.cell_length)
        return line
