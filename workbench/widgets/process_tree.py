"""A pstree-like view of one server's process tree, where per-connection children come and go (course 2.2 进程)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import Static

from workbench.server_records import ProcessNode


def render_process_tree(
    nodes: Sequence[ProcessNode], zombie_style: str = "bold", root_label: str = ""
) -> Text:
    """Draw the nodes (already in depth-first order) with pstree's box characters.

    ``root_label`` (the server id) prefixes the root: every server process is "python".
    """
    text = Text(no_wrap=True, overflow="ellipsis")
    if not nodes:
        text.append("(no process)", style="dim")
        return text
    for index, node in enumerate(nodes):
        if index:
            text.append("\n")
        if node.depth:
            later_siblings = any(
                other.depth == node.depth
                for other in _until_shallower(nodes[index + 1 :], node.depth)
            )
            text.append("  " * (node.depth - 1) + ("├─ " if later_siblings else "└─ "), "dim")
        if index == 0 and root_label:
            text.append(f"{root_label}: ", style="bold")
        text.append(f"{node.name}({node.pid})")
        details = f" {node.threads} thread{'s' if node.threads != 1 else ''}"
        if node.status == "zombie":
            text.append(" <defunct> zombie", style=zombie_style)
        else:
            text.append(details, style="dim")
    return text


def _until_shallower(nodes: Sequence[ProcessNode], depth: int) -> list[ProcessNode]:
    following = []
    for node in nodes:
        if node.depth < depth:
            break
        following.append(node)
    return following


class ProcessTreeView(Static):
    """Shows the process tree of the selected server and its zombie count."""

    DEFAULT_CSS = """
    ProcessTreeView {
        height: auto;
        padding: 0 1;
    }
    """

    def show(
        self, nodes: Sequence[ProcessNode], zombie_style: str = "bold", root_label: str = ""
    ) -> None:
        self.update(render_process_tree(nodes, zombie_style, root_label))
