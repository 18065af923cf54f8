"""The lines under the header telling a class where the teacher's servers are, or which teacher this workbench follows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from textual.widgets import Static

from workbench.network import classroom_lines


class ClassroomBar(Static):
    """``Students: chat 192.168.1.20:9000 · …`` and the command to type; hidden when local only."""

    DEFAULT_CSS = """
    ClassroomBar {
        height: auto;
        max-height: 4;
        padding: 0 1;
        background: $boost;
        color: $text;
    }
    ClassroomBar.-hidden {
        display: none;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id, markup=False, classes="-hidden")
        self.lines: list[str] = []

    def show_listening(
        self,
        bind_host: str,
        ports: Mapping[str, int],
        interface_addresses: Iterable[str] | None,
    ) -> None:
        """Where students reach the running default servers (``ports``: protocol -> port)."""
        self.show_lines(classroom_lines(bind_host, ports, interface_addresses))

    def show_lines(self, lines: list[str]) -> None:
        if lines == self.lines:
            return
        self.lines = lines
        self.update("\n".join(lines))
        self.set_class(not lines, "-hidden")
