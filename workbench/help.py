"""F1 help: the current tab and the running concurrency model in plain words, with the course's Chinese term."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Markdown

from workbench.labs.concepts import related_labs_markdown

#: Threads the workbench adds to a server process, apart from the model's own: the
#: stats reporter, the control channel (announcements, stop) and the stats queue's
#: feeder thread. Each forked child adds one more, its stats flusher.
HELPERS_PER_SERVER = 3
HELPERS_PER_CHILD = 1


@dataclass(frozen=True)
class PanelFigures:
    """What the Servers table shows under a model, in a form a test can hold against a running server.

    ``threads``: ``"one"`` (the main thread does all the work) or ``"per-connection"``
    (the main thread accepts, each open connection has its own). ``children``:
    ``"none"``, ``"per-connection"`` (a forked child per open connection) or
    ``"workers"`` (a fixed set, the *workers* count). Every child's main thread
    works for the model too.
    """

    threads: str = "one"
    children: str = "none"
    one_at_a_time: bool = False
    refuses_at_fd_setsize: bool = False
    members_not_connections: bool = False
    #: How many workers there are when the form's *workers* box is empty.
    workers_default: str = ""

    def expected_children(self, connections: int, workers: int) -> int:
        if self.children == "per-connection":
            return connections
        if self.children == "workers":
            return workers
        return 0

    def expected_threads(self, connections: int, children: int) -> tuple[int, int]:
        """(model threads, helper threads) the *Thr* column shows as ``a+b``."""
        working = 1 + children + (connections if self.threads == "per-connection" else 0)
        return working, HELPERS_PER_SERVER + HELPERS_PER_CHILD * children

    def describe(self) -> str:
        """The sentences the help prints, made from the same figures the test checks."""
        helpers = "stats reporter, control channel, stats queue feeder"
        if self.children != "none":
            thr = (
                f"*Thr* shows `a+b`: a = 1 + one per child (each child's main thread does the "
                f"work), b = {HELPERS_PER_SERVER} + {HELPERS_PER_CHILD} per child, the helper "
                f"threads the workbench adds ({helpers}; a stats flusher in each child)."
            )
        elif self.threads == "per-connection":
            thr = (
                f"*Thr* shows `a+{HELPERS_PER_SERVER}`: a = 1 + one per open connection (the "
                f"main thread accepts, each connection has its own), and {HELPERS_PER_SERVER} "
                f"helper threads the workbench adds ({helpers})."
            )
        else:
            thr = (
                f"*Thr* shows `1+{HELPERS_PER_SERVER}`: one thread does all the work; the "
                f"{HELPERS_PER_SERVER} helpers are the workbench's ({helpers})."
            )
        kids = {
            "none": "*Kids* stays 0.",
            "per-connection": "*Kids* is the number of open connections.",
            "workers": f"*Kids* is the worker count ({self.workers_default} unless *workers* "
            "says otherwise), whatever the load.",
        }[self.children]
        if self.members_not_connections:
            conn = (
                "*Conn* shows active/total room members, marked `m`: UDP has no connections, "
                "and the event log says *join* and *leave*."
            )
        elif self.one_at_a_time:
            conn = "*Conn* shows active/total connections; active never goes above 1."
        else:
            conn = "*Conn* shows active/total connections."
        sentences = [thr, kids, conn]
        if self.refuses_at_fd_setsize:
            sentences.append(
                "A client whose descriptor would be 1024 or above is refused: *Refused* counts "
                "it and the event log says why."
            )
        elif self.members_not_connections:
            sentences.append("*Refused* counts LOGINs turned away because the room is full.")
        else:
            sentences.append("*Refused* stays 0 until the process runs out of descriptors.")
        return " ".join(sentences)


@dataclass(frozen=True)
class ModelGuide:
    """How to explain one concurrency model to a student watching the Servers panel."""

    title: str
    course_term: str
    course_section: str
    how_it_works: str
    what_to_watch: str
    figures: PanelFigures = PanelFigures()


MODEL_GUIDES: dict[str, ModelGuide] = {
    "iterative": ModelGuide(
        "Iterative server",
        "循环网络模型",
        "3.1 网络并发模型概述 (循环网络模型问题)",
        "One process, one thread, one client at a time: the server accepts a connection, "
        "serves it to the end, and only then accepts the next one.",
        "Connect two clients: the second waits in the listen backlog until the first leaves.",
        PanelFigures(one_at_a_time=True),
    ),
    "threads": ModelGuide(
        "Thread per connection",
        "多线程并发模型",
        "3.1.2 多线程并发模型 (printed under 3.2 多任务并发模型)",
        "The main thread only accepts; every new client gets its own thread, which ends when "
        "the client leaves. Threads share the process's memory (mind the GIL, 2.3.6).",
        "The *Thr* column climbs by one per open connection and falls back when they close; "
        "the process tree stays a single process.",
        PanelFigures(threads="per-connection"),
    ),
    "processes": ModelGuide(
        "Process per connection",
        "多进程并发模型",
        "3.1.1 多进程并发模型 (printed under 3.2 多任务并发模型)",
        "The main process accepts and forks a child for every client; the child serves it and "
        "exits. The parent reaps each child so none is left as a zombie (僵尸进程, 2.2.3).",
        "Children appear in the process tree as clients connect and vanish when they leave; "
        "the *zombies* count must stay at 0.",
        PanelFigures(children="per-connection"),
    ),
    "pool": ModelGuide(
        "Process pool",
        "进程池",
        "2.2.4 进程池",
        "A fixed number of worker processes is forked up front and each blocks in accept() on "
        "the shared listening socket: the kernel hands every new connection to one idle worker, "
        "which serves it to the end. Unlike the course's `multiprocessing.Pool`, where the "
        "parent queues functions with `apply_async` and pickles their arguments to the "
        "workers, nothing passes through the parent: the workers take the connections "
        "themselves.",
        "The process tree shows the same workers all the time (change the count with "
        "*workers*); connections beyond the pool size wait in the backlog for a free worker.",
        PanelFigures(children="workers", workers_default="4"),
    ),
    "select": ModelGuide(
        "IO multiplexing with select",
        "IO多路复用 select",
        "3.2.4 IO多路复用 (under 3.3 IO并发模型; the server loop is 3.2.5 IO并发模型)",
        "One thread watches every socket with select() and serves whichever is ready. "
        "Sockets are non-blocking (非阻塞IO, 3.2.3). select() describes sockets with a "
        "bitmap of FD_SETSIZE (1024) bits, so it cannot watch descriptors numbered 1024 "
        "and above: such clients are refused with a clear error.",
        "One process, one thread, yet many active connections. Open more than about 1020 "
        "connections (the HTTP tab's load test allows up to 2000) and *Refused* rises: that "
        "limit is the lesson. The server raises its own open-file limit first (the form's "
        "*Open files*), so it is select's wall you hit, not the process's 1024 descriptors.",
        PanelFigures(refuses_at_fd_setsize=True),
    ),
    "poll": ModelGuide(
        "IO multiplexing with poll",
        "IO多路复用 poll",
        "3.2.4 IO多路复用 (under 3.3 IO并发模型)",
        "Like select, one thread watches all sockets, but poll() takes a list of registered "
        "descriptors, so it has no 1024 limit. Each call still hands the kernel the whole "
        "list, ready or not.",
        "One process, one thread, many active connections, no refusals at 1024.",
    ),
    "epoll": ModelGuide(
        "IO multiplexing with epoll",
        "IO多路复用 epoll",
        "3.2.4 IO多路复用 (under 3.3 IO并发模型)",
        "Linux's epoll keeps the watched set inside the kernel and returns only the ready "
        "sockets. The course says epoll 效率比select poll要高 (more efficient than select "
        "and poll): that holds when most connections are idle, since select and poll pay "
        "for every watched socket on every call. With a few busy connections they cost "
        "about the same — our own bench at 50 busy clients has select ahead of poll ahead "
        "of epoll. The Labs tab's *idle-sweep* lab shows where epoll pulls ahead.",
        "A single process and thread holding thousands of connections at low CPU.",
    ),
    "asyncio": ModelGuide(
        "asyncio event loop",
        "协程 / 异步IO",
        "beyond the course (3.2.1 IO概述 only names 异步IO as a kind of IO)",
        "Python's asyncio runs one event loop (on epoll underneath); each connection is a "
        "coroutine that pauses at every await instead of blocking a thread.",
        "One process, one thread doing the work; connections grow without new threads or "
        "processes.",
    ),
    "prefork": ModelGuide(
        "Prefork: processes × epoll",
        "更高并发 (多进程 + IO多路复用)",
        "并发技术探讨(扩展) › 更高并发的实现",
        "N worker processes, each running its own epoll loop, all accepting on the same port "
        "(SO_REUSEPORT): the kernel spreads connections, and every core gets used.",
        "The process tree shows N workers, each holding many connections; CPU % can pass 100 "
        "because several cores work at once.",
        PanelFigures(children="workers", workers_default="one per CPU core"),
    ),
    "datagram": ModelGuide(
        "UDP datagram server",
        "UDP套接字编程",
        "1.2.3 UDP套接字编程",
        "UDP has no connections: one socket receives every datagram (recvfrom) and answers "
        "each sender by address (sendto). A single loop serves the whole chat room, so the "
        "stream models do not apply: to try them, select the chat row, press **m** and "
        "choose *Transport* tcp. The same form's *Drop rate* (0.1 = 10%) makes the room "
        "lose datagrams on purpose, and each Chat pane counts what it missed.",
        "Messages raise *Req/s*; members joining and leaving move *Conn*.",
        PanelFigures(members_not_connections=True),
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

**In a classroom.** The servers bind 127.0.0.1 (本地地址, course 1.2.3): only this machine
reaches them. `workbench --listen 0.0.0.0` (自动获取地址) binds every interface, so students'
laptops reach them at this machine's LAN address (内网IP, 1.1.3): the lines under the header
give the addresses and the command they type, `workbench --connect HOST`, which points every
tab of their workbench at the teacher's servers. `workbench serve` runs the app in a web browser.
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
        f"**What to watch.** {guide.what_to_watch}\n\n"
        f"**On the panel.** {guide.figures.describe()}\n"
    )


def build_help(
    tab_title: str,
    tab_help: str,
    running: list[tuple[str, str]] | None = None,
    elsewhere: str | None = None,
) -> str:
    """The whole help page: the current tab, then the model(s) of the servers it uses.

    ``elsewhere`` names the server of another machine the tab uses (``--connect``).
    """
    parts = [f"# {tab_title} tab\n\n{tab_help.strip()}\n"]
    if elsewhere:
        parts.append(
            f"## Model\n\nThis tab uses the teacher's server at `{elsewhere}`: "
            "its model is chosen on the teacher's machine.\n"
        )
    elif running:
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
