"""A chat room's scrolling log: messages, join/leave notices, admin announcements and errors styled apart."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

from rich.text import Text
from textual.theme import Theme
from textual.widgets import RichLog

LineKind = Literal["message", "own", "joined", "left", "admin", "error", "info"]

#: Lines kept (and re-rendered when the theme changes); older ones scroll away for good.
MAX_LINES = 1000


@dataclass(frozen=True, slots=True)
class ChatLine:
    """One log entry: what kind it is decides its style, so a theme change can restyle it."""

    kind: LineKind
    text: str
    name: str = ""


class ChatLog(RichLog):
    """RichLog whose colours come from the theme through component classes, never hard-coded."""

    COMPONENT_CLASSES = {
        "chat-log--name",
        "chat-log--own",
        "chat-log--joined",
        "chat-log--left",
        "chat-log--admin",
        "chat-log--error",
        "chat-log--info",
    }

    DEFAULT_CSS = """
    ChatLog {
        height: 1fr;
        background: $surface;
        scrollbar-size-vertical: 1;
    }
    ChatLog > .chat-log--name {
        color: $primary;
        text-style: bold;
    }
    ChatLog > .chat-log--own {
        color: $secondary;
        text-style: bold;
    }
    ChatLog > .chat-log--joined {
        color: $text-success;
        text-style: italic;
    }
    ChatLog > .chat-log--left {
        color: $text-warning;
        text-style: italic;
    }
    ChatLog > .chat-log--admin {
        color: $text-accent;
        text-style: bold;
    }
    ChatLog > .chat-log--error {
        color: $text-error;
        text-style: bold;
    }
    ChatLog > .chat-log--info {
        color: $text-muted;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        # min_width: wrap to the pane, however narrow, instead of scrolling sideways.
        super().__init__(
            max_lines=MAX_LINES, min_width=10, wrap=True, markup=False, id=id, classes=classes
        )
        self.history: deque[ChatLine] = deque(maxlen=MAX_LINES)

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, self._restyle)

    def add_lines(self, lines: list[ChatLine]) -> None:
        """Append a batch of lines (one drain's worth) with a single refresh."""
        for line in lines:
            self.history.append(line)
            self.write(self._chat_line_text(line))

    def _chat_line_text(self, line: ChatLine) -> Text:
        style = self.get_component_rich_style
        if line.kind in ("message", "own"):
            name_style = style("chat-log--own" if line.kind == "own" else "chat-log--name")
            text = Text(f"{line.name}: ", style=name_style)
            text.append(line.text)
            return text
        if line.kind == "admin":
            return Text(f"admin ▸ {line.text}", style=style("chat-log--admin"))
        if line.kind == "joined":
            return Text(f"→ {line.text}", style=style("chat-log--joined"))
        if line.kind == "left":
            return Text(f"← {line.text}", style=style("chat-log--left"))
        if line.kind == "error":
            return Text(f"✖ {line.text}", style=style("chat-log--error"))
        return Text(line.text, style=style("chat-log--info"))

    def _restyle(self, theme: Theme) -> None:
        # Styles are baked into rendered lines: after the new theme's CSS applies, render again.
        self.call_after_refresh(self._rewrite)

    def on_resize(self) -> None:
        # RichLog wraps a line once, at write time: when a pane is added the log narrows, so wrap again.
        if self.history:
            self.call_after_refresh(self._rewrite)

    def _rewrite(self) -> None:
        self.clear()
        for line in self.history:
            self.write(self._chat_line_text(line))
