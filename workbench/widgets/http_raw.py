"""The exact request and response bytes, CR and LF drawn as ␍␊: HTTP's line structure made visible."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from workbench.clients.http import visible_wire_text

#: Bytes shown per direction; a big download would only slow the terminal down.
RAW_VIEW_LIMIT = 64 * 1024


class RawExchange(Static):
    """Request bytes, then response bytes; line-end markers in the accent colour."""

    COMPONENT_CLASSES = {"raw-exchange--crlf", "raw-exchange--heading", "raw-exchange--note"}

    DEFAULT_CSS = """
    RawExchange { height: auto; padding: 0 1; }
    RawExchange > .raw-exchange--crlf { color: $accent; text-style: bold; }
    RawExchange > .raw-exchange--heading { color: $primary; text-style: bold reverse; }
    RawExchange > .raw-exchange--note { color: $text-muted; text-style: italic; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__("Send a request to see the bytes on the wire.", id=id, classes=classes)
        self.request_bytes = b""
        self.response_bytes = b""
        self.received = 0

    def show_exchange(
        self, request_bytes: bytes, response_bytes: bytes, received: int | None = None
    ) -> None:
        """Show the exchange; ``received`` counts every response byte when only the first were kept."""
        self.request_bytes = request_bytes
        self.response_bytes = response_bytes
        self.received = len(response_bytes) if received is None else received
        self.update(self._render_exchange())

    def _render_exchange(self) -> Text:
        text = Text()
        for heading, raw, total in (
            (
                f" request: {len(self.request_bytes):,} bytes sent ",
                self.request_bytes,
                len(self.request_bytes),
            ),
            (f" response: {self.received:,} bytes received ", self.response_bytes, self.received),
        ):
            text.append(heading, self.get_component_rich_style("raw-exchange--heading"))
            text.append("\n")
            self._append_wire(text, raw[:RAW_VIEW_LIMIT])
            shown = min(len(raw), RAW_VIEW_LIMIT)
            if total > shown:
                text.append(
                    f"\n… the first {shown:,} bytes shown; {total - shown:,} more arrived",
                    self.get_component_rich_style("raw-exchange--note"),
                )
            text.append("\n\n")
        return text

    def _append_wire(self, text: Text, raw: bytes) -> None:
        marker_style = self.get_component_rich_style("raw-exchange--crlf")
        for piece in _split_keeping_markers(visible_wire_text(raw)):
            text.append(piece, marker_style if piece in ("␍", "␊") else "")


def _split_keeping_markers(shown: str) -> list[str]:
    pieces: list[str] = []
    start = 0
    for index, char in enumerate(shown):
        if char in "␍␊":
            if index > start:
                pieces.append(shown[start:index])
            pieces.append(char)
            start = index + 1
    if start < len(shown):
        pieces.append(shown[start:])
    return pieces
