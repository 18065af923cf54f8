"""Human-readable figures for the live panel: byte sizes, rates, uptimes."""

from __future__ import annotations


def format_bytes(count: float) -> str:
    """``1536`` -> ``1.5 KiB``; plain bytes below 1 KiB."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_rate(per_second: float) -> str:
    """A requests/s figure: one decimal below 100, whole numbers above."""
    return f"{per_second:.1f}" if per_second < 100 else f"{per_second:.0f}"


def format_bytes_compact(count: float) -> str:
    """Table-sized byte count: ``512B``, ``1.5K``, ``23.7M``, ``1.1G``."""
    value = float(count)
    for unit in ("B", "K", "M", "G"):
        if abs(value) < 1024 or unit == "G":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_byte_rate(per_second: float) -> str:
    return f"{format_bytes_compact(per_second)}/s"


def format_uptime(seconds: float) -> str:
    """``75`` -> ``1:15``; ``3725`` -> ``1:02:05``."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
