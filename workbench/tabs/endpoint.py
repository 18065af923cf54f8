"""Where a tab's server is: the app's running instance of a protocol, or an address the tab was given."""

from __future__ import annotations

from typing import Any

from textual.widget import Widget


def endpoint_address(endpoint: Any) -> tuple[str, int] | None:
    """Normalise what a server manager hands out: (host, port), "host:port", or an object with both."""
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
    manager = getattr(tab.app, "server_manager", None)
    if manager is None:
        return None
    try:
        return endpoint_address(manager.endpoint(protocol))
    except Exception:
        # A server manager mid-restart must not break the tab; the fields stay editable.
        return None
