"""The classroom's network: which addresses students type to reach the teacher's servers, and which to connect to.

Course 1.2.3 (绑定地址) names the three choices a server has: 本地地址 127.0.0.1 (this machine
only, the workbench's default), a 网络地址 of one interface (``ifconfig``), and 自动获取地址
0.0.0.0 (every interface). Students type the teacher's 内网IP (1.1.3).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import psutil

#: Where the default servers bind unless told otherwise: this machine only.
LOCAL_HOST = "127.0.0.1"
#: Ports the default servers take when they listen for a class (``--listen``), and the ports
#: ``--connect HOST`` tries, so a student types the teacher's address and nothing else.
CLASS_PORTS: dict[str, int] = {"chat": 9000, "ftp": 2121, "http": 8080}
#: Interface addresses shown at most in the header (a laptop with Docker has many).
MAX_SHOWN_ADDRESSES = 3

LOCAL_ONLY_TEXT = "local only — start with --listen 0.0.0.0 to let a class join"


def is_wildcard(host: str) -> bool:
    """True for an address meaning "every interface" (``0.0.0.0``, ``::``, or empty)."""
    return host in ("", "0.0.0.0", "::")


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``: reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_port(host: str, port: int) -> str:
    """``host:port``, with brackets around an IPv6 host (``[fd00::2]:8080``)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def lan_addresses(bind_host: str = "0.0.0.0") -> list[str]:
    """This machine's addresses other machines can reach it on, for a server bound to ``bind_host``.

    Loopback and IPv6 link-local addresses are left out (a link-local address needs a
    scope students cannot type); a server bound to ``0.0.0.0`` only gets IPv4 ones.
    """
    families = (
        {socket.AF_INET} if bind_host in ("", "0.0.0.0") else {socket.AF_INET, socket.AF_INET6}
    )
    found: list[str] = []
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family not in families:
                continue
            text = address.address.split("%", 1)[0]
            try:
                parsed = ipaddress.ip_address(text)
            except ValueError:
                continue
            if parsed.is_loopback or parsed.is_link_local or parsed.is_unspecified:
                continue
            if text not in found:
                found.append(text)
    return found


def student_hosts(bind_host: str, interface_addresses: Iterable[str] | None = None) -> list[str]:
    """The addresses students should type, for servers bound to ``bind_host``.

    A wildcard bind is reachable on every interface address; a specific address only on
    itself (even a loopback one other than 127.0.0.1, which the tests use as a stand-in for
    a LAN address); the default 127.0.0.1 on none.
    """
    if bind_host == LOCAL_HOST or bind_host in ("::1", "localhost"):
        return []
    if is_wildcard(bind_host):
        return list(
            lan_addresses(bind_host) if interface_addresses is None else interface_addresses
        )
    return [bind_host]


def connect_command(host: str, ports: Mapping[str, int]) -> str:
    """The command a student types: ``workbench --connect HOST``, plus any port not the class default."""
    words = ["workbench", "--connect", host]
    for protocol, default in CLASS_PORTS.items():
        port = ports.get(protocol)
        if port and port != default:
            words += [f"--{protocol}-port", str(port)]
    return " ".join(words)


def classroom_lines(
    bind_host: str,
    ports: Mapping[str, int],
    interface_addresses: Iterable[str] | None = None,
) -> list[str]:
    """What the header tells the class: where each running server is, and the command to type.

    ``ports`` maps each running default server's protocol to its port.
    """
    hosts = student_hosts(bind_host, interface_addresses)
    if not hosts:
        if is_wildcard(bind_host):
            return [
                f"Listening on {bind_host or '*'}, but this machine has no network address besides loopback"
            ]
        return [LOCAL_ONLY_TEXT]
    if not ports:
        return [f"Listening for a class on {bind_host} — no server is running yet"]
    lines = []
    for host in hosts[:MAX_SHOWN_ADDRESSES]:
        shown = []
        for protocol in ("chat", "ftp", "http"):
            if protocol in ports:
                where = host_port(host, ports[protocol])
                shown.append(
                    f"{protocol} http://{where}/" if protocol == "http" else f"{protocol} {where}"
                )
        note = " (loopback: this machine only)" if is_loopback(host) else ""
        lines.append("Students: " + " · ".join(shown) + note)
    more = len(hosts) - MAX_SHOWN_ADDRESSES
    command = connect_command(hosts[0], ports)
    lines.append(f"Or run: {command}" + (f"  (+{more} more addresses)" if more > 0 else ""))
    return lines


@dataclass(frozen=True, slots=True)
class RemoteServers:
    """The teacher's servers a student's workbench points every tab at (``--connect HOST``)."""

    host: str
    ports: Mapping[str, int]

    def endpoint(self, protocol: str) -> tuple[str, int] | None:
        port = self.ports.get(protocol)
        return (self.host, port) if port else None

    def describe(self) -> str:
        """``Teacher's servers: chat 192.168.1.20:9000 · … — none run here``."""
        shown = []
        for protocol, port in self.ports.items():
            where = host_port(self.host, port)
            shown.append(
                f"{protocol} http://{where}/" if protocol == "http" else f"{protocol} {where}"
            )
        return "Teacher's servers: " + " · ".join(shown) + " — none run here"
