"""Names of the protocols and concurrency models, and where their code lives."""

from __future__ import annotations

import importlib
from types import ModuleType

#: protocol name -> module exposing NAME, TRANSPORT, add_arguments, build_application
PROTOCOLS: dict[str, str] = {
    "echo": "servers.echo",
    "http": "servers.http",
    "ftp": "servers.ftp",
    "chat": "servers.chat",
}

#: model name -> (module, course section, one-line description)
MODELS: dict[str, tuple[str, str, str]] = {
    "iterative": ("servers.models.iterative", "3.1 循环网络模型", "one client at a time"),
    "threads": ("servers.models.threads", "3.1.2 多线程并发模型", "a thread per connection"),
    "processes": (
        "servers.models.processes",
        "3.1.1 多进程并发模型",
        "a forked process per connection, reaped on exit",
    ),
    "pool": (
        "servers.models.pool",
        "2.2.4 进程池",
        "a fixed pool of worker processes, each accepting its own clients "
        "(not multiprocessing.Pool's task queue)",
    ),
    "select": ("servers.models.select", "3.2.4 IO多路复用 select", "one thread, select()"),
    "poll": ("servers.models.poll", "3.2.4 IO多路复用 poll", "one thread, poll()"),
    "epoll": ("servers.models.epoll", "3.2.4 IO多路复用 epoll", "one thread, epoll"),
    "asyncio": (
        "servers.models.asyncio",
        "beyond the course: 协程 (3.2.1 only names 异步IO)",
        "an asyncio event loop",
    ),
    "prefork": (
        "servers.models.prefork",
        "并发技术探讨(扩展) 更高并发的实现: 多进程 + IO多路复用",
        "N processes, each an epoll loop, sharing the port (SO_REUSEPORT)",
    ),
}

#: Models where each connection has its own flow of control: they can run blocking handlers.
BLOCKING_MODELS = frozenset({"iterative", "threads", "processes", "pool"})
#: Models whose connections live in several processes (no shared in-memory state).
MULTIPROCESS_MODELS = frozenset({"processes", "pool", "prefork"})


class UnknownName(ValueError):
    """A protocol or model name that does not exist."""


def load_protocol(name: str) -> ModuleType:
    """Import the protocol module called ``name``."""
    try:
        path = PROTOCOLS[name]
    except KeyError:
        raise UnknownName(
            f"unknown protocol {name!r} (choose from {', '.join(PROTOCOLS)})"
        ) from None
    return importlib.import_module(path)


def transport_of(protocol: str, options: dict | None = None) -> str:
    """``"tcp"`` or ``"udp"``: the protocol's ``transport`` option if given, else its default."""
    chosen = (options or {}).get("transport")
    if chosen:
        return str(chosen)
    try:
        return load_protocol(protocol).TRANSPORT
    except UnknownName:
        return "tcp"


def model_choices(protocol: str, transport: str | None = None) -> dict[str, str | None]:
    """Every model ``protocol`` can be asked for over ``transport``: None if it runs there, else why not.

    A datagram protocol (UDP chat) offers the one loop it really runs, ``datagram``.
    """
    transport = transport or transport_of(protocol)
    module = load_protocol(protocol)
    unsupported = getattr(module, "unsupported_models", lambda transport: {})(transport)
    choices: dict[str, str | None] = {}
    if transport == "udp":
        choices[getattr(module, "DATAGRAM_MODEL", "datagram")] = None
    for model in MODELS:
        choices[model] = unsupported.get(model)
    return choices


def load_model(name: str) -> ModuleType:
    """Import the concurrency model module called ``name``."""
    try:
        path = MODELS[name][0]
    except KeyError:
        raise UnknownName(f"unknown model {name!r} (choose from {', '.join(MODELS)})") from None
    return importlib.import_module(path)
