"""F1 help: the current tab and the running concurrency model in plain words, with the course's Chinese term."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Markdown

from workbench.labs.concepts import related_labs_markdown


@dataclass(frozen=True)
class ModelGuide:
    """How to explain one concurrency model to a student watching the Servers panel."""

    title: str
    course_term: str
    course_section: str
    how_it_works: str
    what_to_watch: str


MODEL_GUIDES: dict[str, ModelGuide] = {
    "iterative": ModelGuide(
        "Iterative server",
        "循环网络模型",
        "3.1",
        "One process, one thread, one client at a time: the server accepts a connection, "
        "serves it to the end, and only then accepts the next one.",
        "Connect two clients: the second waits until the first leaves. Threads stay at 1, "
        "no child processes, and *active connections* never goes above 1.",
    ),
    "threads": ModelGuide(
        "Thread per connection",
        "多线程并发模型",
        "3.1.2",
        "The main thread only accepts; every new client gets its own thread, which ends when "
        "the client leaves. Threads share the process's memory (mind the GIL, 2.3.6).",
        "The *threads* column climbs by one per open connection and falls back when they close; "
        "the process tree stays a single process.",
    ),
    "processes": ModelGuide(
        "Process per connection",
        "多进程并发模型",
        "3.1.1",
        "The main process accepts and forks a child for every client; the child serves it and "
        "exits. The parent reaps each child so none is left as a zombie (僵尸进程, 2.2.3).",
        "Children appear in the process tree as clients connect and vanish when they leave; "
        "the *zombies* count must stay at 0.",
    ),
    "pool": ModelGuide(
        "Process pool",
        "进程池",
        "2.2.4",
        "A fixed number of worker processes is created up front; each takes connections from "
        "the shared listening socket, so no process is created per client.",
        "The process tree shows the same workers all the time (change the count with "
        "*workers*); connections beyond the pool size wait their turn.",
    ),
    "select": ModelGuide(
        "IO multiplexing with select",
        "IO多路复用 select",
        "3.2.4",
        "One thread watches every socket with select() and serves whichever is ready. "
        "Sockets are non-blocking (非阻塞IO). select cannot watch descriptors above 1024 "
        "(FD_SETSIZE): further clients are refused with a clear error, counted as *refused*.",
        "One process, one thread, yet many active connections. Push past ~1000 connections "
        "and the refused count rises: that limit is the lesson.",
    ),
    "poll": ModelGuide(
        "IO multiplexing with poll",
        "IO多路复用 poll",
        "3.2.4",
        "Like select, one thread watches all sockets, but poll() takes a list of registered "
        "descriptors, so it has no 1024 limit.",
        "One process, one thread, many active connections, no refusals at 1024.",
    ),
    "epoll": ModelGuide(
        "IO multiplexing with epoll",
        "IO多路复用 epoll",
        "3.2.4",
        "Linux's epoll keeps the watched set inside the kernel and returns only the ready "
        "sockets, so its cost does not grow with the number of idle connections "
        "(epoll 效率比select poll要高).",
        "A single process and thread holding thousands of active connections at low CPU.",
    ),
    "asyncio": ModelGuide(
        "asyncio event loop",
        "异步IO (beyond the course)",
        "3.2.1",
        "Python's asyncio runs one event loop (on epoll underneath); each connection is a "
        "coroutine that pauses at every await instead of blocking a thread.",
        "One process and a couple of threads; connections grow without new threads or processes.",
    ),
    "prefork": ModelGuide(
        "Prefork: processes × epoll",
        "更高并发 (多进程 + IO多路复用)",
        "更高并发",
        "N worker processes, each running its own epoll loop, all accepting on the same port "
        "(SO_REUSEPORT): the kernel spreads connections, and every core gets used.",
        "The process tree shows N workers, each holding many connections; CPU % can pass 100 "
        "because several cores work at once.",
    ),
    "datagram": ModelGuide(
        "UDP datagram server",
        "UDP套接字编程",
        "1.2.3",
        "UDP has no connections: one socket receives every datagram (recvfrom) and answers "
        "each sender by address (sendto). A single loop serves the whole chat room, so the "
        "stream models do not apply (run chat with transport tcp to try them).",
        "One process, one thread; *active connections* stays 0 while requests (messages) rise.",
    ),
}

APP_HELP = """\
# Network Workbench

Three real servers — UDP group **chat**, **FTP** and **HTTP/1.1** — each runnable under every
concurrency model of the course, and the clients to poke them with.

| key | action |
|---|---|
| **F1** | this help (Esc closes it) |
| **F2 … F6** | Chat, FTP, HTTP, Servers, Labs tab |
| **Ctrl+P** | command palette: start, stop, restart servers, change the theme… |
| **Ctrl+Q** | quit — every server started here is stopped |
"""


def model_help(model: str, server_id: str | None = None) -> str:
    """Markdown explaining one concurrency model (plain words + the course term)."""
    guide = MODEL_GUIDES.get(model)
    where = f" — server `{server_id}`" if server_id else ""
    if guide is None:
        return f"## Model: {model}{where}\n\nNo description for this model yet.\n"
    return (
        f"## Model: {guide.title} · {guide.course_term}{where}\n\n"
        f"*Course section {guide.course_section}.*\n\n"
        f"**How it works.** {guide.how_it_works}\n\n"
        f"**What to watch.** {guide.what_to_watch}\n"
    )


def build_help(tab_title: str, tab_help: str, running: list[tuple[str, str]] | None = None) -> str:
    """The whole help page: the current tab, then the model(s) of the servers it uses."""
    parts = [f"# {tab_title} tab\n\n{tab_help.strip()}\n"]
    if running:
        for server_id, model in running:
            parts.append(model_help(model, server_id))
            parts.append(related_labs_markdown(model))
    elif running is not None:  # None: a tab that uses no server (Labs)
        parts.append("## Model\n\nNo server is running for this tab.\n")
    parts.append(APP_HELP)
    return "\n".join(parts)


class HelpScreen(ModalScreen[None]):
    """Modal help page; Escape, F1 or q closes it."""

    BINDINGS = [
        Binding("escape,f1,q", "dismiss", "Close help"),
    ]

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
    }
    HelpScreen > VerticalScroll {
        width: 90%;
        max-width: 110;
        height: 90%;
        border: thick $primary;
        background: $surface;
        padding: 0 1;
    }
    """

    def __init__(self, markdown: str) -> None:
        super().__init__()
        self.markdown = markdown

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Markdown(self.markdown, id="help-text")
        yield Footer()
