"""Which labs show the concept behind each concurrency model: the links from a model's F1 help to the Labs tab."""

from __future__ import annotations

from workbench.labs import all_labs
from workbench.labs.base import Lab

#: Concurrency model (as the Servers panel names it) -> the labs that show its concept, in the
#: order worth trying them. Names of labs this build lacks are skipped, not shown.
LABS_BY_MODEL: dict[str, tuple[str, ...]] = {
    # 循环网络模型: one blocking call at a time, the others wait in the listen queue.
    "iterative": ("listen-backlog", "blocking", "closing", "framing", "time-wait"),
    # 多线程并发: shared memory, so locks, deadlock and the GIL.
    "threads": (
        "lock",
        "deadlock",
        "gil",
        "counter",
        "event",
        "daemon-threads",
        "concurrent-parallel",
    ),
    # 多进程并发: fork, and what becomes of children nobody reaps (孤儿/僵尸, 2.2.3).
    "processes": (
        "fork",
        "zombie",
        "orphan",
        "daemon-threads",
        "counter",
        "queue-pipe",
        "concurrent-parallel",
    ),
    # Connections beyond the pool's workers wait in the listen queue.
    "pool": ("process-pool", "listen-backlog", "queue-pipe", "fork"),
    # IO多路复用: one thread, many sockets, only the ready ones served.
    "select": ("multiplex-trace", "idle-sweep", "blocking"),
    "poll": ("multiplex-trace", "idle-sweep", "blocking"),
    "epoll": ("multiplex-trace", "idle-sweep", "blocking"),
    "asyncio": ("multiplex-trace", "idle-sweep"),
    # prefork shares its port with SO_REUSEPORT, which also lets a restart pass TIME_WAIT.
    "prefork": ("fork", "multiplex-trace", "process-pool", "time-wait"),
    # UDP keeps message boundaries, TCP does not (粘包): the chat room's transport choice.
    "datagram": ("framing", "udp-loss"),
}


def labs_showing(model: str, labs: list[Lab] | None = None) -> list[Lab]:
    """The labs of this build that show ``model``'s concept, in the order of LABS_BY_MODEL."""
    by_name = {lab.name: lab for lab in (all_labs() if labs is None else labs)}
    return [by_name[name] for name in LABS_BY_MODEL.get(model, ()) if name in by_name]


def related_labs_markdown(model: str, labs: list[Lab] | None = None) -> str:
    """The *Try it in the Labs tab* section of a model's help; empty if no lab shows it."""
    found = labs_showing(model, labs)
    if not found:
        return ""
    rows = "\n".join(
        f"| `{lab.name}` | {lab.course_term} | {lab.course_section or '—'} | {lab.title} |"
        for lab in found
    )
    return (
        "**Try it in the Labs tab.** Press **F6**, pick the lab in the list and press **r** "
        "(or Ctrl+P → *Open lab NAME*):\n\n"
        "| lab | course term | section | what it shows |\n|---|---|---|---|\n"
        f"{rows}\n"
    )
