"""A chat room's scrolling log: messages, join/leave notices, admin announcements and errors styled apart."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from rich.text import Text
from textual.theme import Theme
from textual.widgets import RichLog

LineKind = Literal["message", "own", "joined", "left", "admin", "error", "info", "lost"]

#: Lines kept (and re-rendered when the theme changes); older ones scroll away for good.
MAX_LINES = 1000


def clock_text() -> str:
    """The wall-clock time a line is logged, HH:MM:SS (what a room's log shows before each line)."""
    return time.strftime("%H:%M:%S")


def lost_marker_text(count: int) -> str:
    """The line a log shows where ``count`` datagrams went missing (UDP does not retransmit)."""
    return f"— {count} message{'' if count == 1 else 's'} lost here —"


@dataclass(frozen=True, slots=True)
class ChatLine:
    """One log entry: what kind it is decides its style, so a theme change can restyle it."""

    kind: LineKind
    text: str
    name: str = ""
    #: When it was logged; looked up at call time so a test can pin the clock.
    at: str = field(default_factory=lambda: clock_text())


class ChatLog(RichLog, can_focus=False):
    """RichLog whose colours come from the theme through component classes, never hard-coded.

    Not a Tab stop: a pane's one stop is its name or message box, and the pane's
    Page Up / Page Down scroll the log from there.
    """

    COMPONENT_CLASSES = {
        "chat-log--name",
        "chat-log--own",
        "chat-log--joined",
        "chat-log--left",
        "chat-log--admin",
        "chat-log--error",
        "chat-log--info",
        "chat-log--lost",
        "chat-log--time",
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
    ChatLog > .chat-log--lost {
        color: $text-warning;
        text-style: bold;
    }
    ChatLog > .chat-log--time {
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
        text = Text(f"{line.at} ", style=style("chat-log--time")) if line.at else Text()
        if line.kind in ("message", "own"):
            name_style = style("chat-log--own" if line.kind == "own" else "chat-log--name")
            text.append(f"{line.name}: ", style=name_style)
            text.append(line.text)
        elif line.kind == "admin":
            text.append(f"admin ▸ {line.text}", style=style("chat-log--admin"))
        elif line.kind == "joined":
            text.append(f"→ {line.text}", style=style("chat-log--joined"))
        elif line.kind == "left":
            text.append(f"← {line.text}", style=style("chat-log--left"))
        elif line.kind == "error":
            text.append(f"✖ {line.text}", style=style("chat-log--error"))
        elif line.kind == "lost":
            text.append(line.text, style=style("chat-log--lost"))
        else:
            text.append(line.text, style=style("chat-log--info"))
        return text

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
