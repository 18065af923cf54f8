"""Where a tab's server is: the app's running instance of a protocol, or an address the tab was given."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from textual.widget import Widget

from workbench.server_directory import ServerControl, ServerDirectory


@runtime_checkable
class RunsServers(Protocol):
    """An app with a directory of servers: the workbench, or a test's app around one tab."""

    @property
    def server_manager(self) -> ServerDirectory | None: ...


def server_directory(tab: Widget) -> ServerDirectory | None:
    """The app's directory of servers; None in an app that runs none (a tab on its own)."""
    app = tab.app
    return app.server_manager if isinstance(app, RunsServers) else None


def server_control(tab: Widget) -> ServerControl | None:
    """The app's directory if its servers can also be started and restarted from a tab."""
    directory = server_directory(tab)
    return directory if isinstance(directory, ServerControl) else None


def endpoint_address(endpoint: Any) -> tuple[str, int] | None:
    """Normalise an address a tab is given: (host, port), "host:port", or an object with both."""
    if endpoint is None:
        return None
    if isinstance(endpoint, str):
        host, _, port = endpoint.rpartition(":")
        return (host or "127.0.0.1", int(port)) if port.isdigit() else None
    if isinstance(endpoint, tuple | list) and len(endpoint) >= 2:
        return str(endpoint[0]), int(endpoint[1])
    host, port = getattr(endpoint, "host", None), getattr(endpoint, "port", None)
    if host is not None and port:
        return str(host), int(port)
    return None


def server_endpoint(tab: Widget, protocol: str, override: Any = None) -> tuple[str, int] | None:
    """``override`` if the tab was given one, else where the app's ``protocol`` server listens now."""
    if override is not None:
        return endpoint_address(override)
    directory = server_directory(tab)
    if directory is None:
        return None
    try:
        return endpoint_address(directory.endpoint(protocol))
    except Exception:
        # A server manager mid-restart must not break the tab; the fields stay editable.
        return None
