"""argparse value types the protocols' options share: a clear message instead of a traceback."""

from __future__ import annotations

import argparse


def number(text: str, what: str = "a number") -> float:
    """``text`` as a float, or argparse's error naming ``what`` was expected."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None


def positive_seconds(text: str) -> float:
    """A duration in seconds, more than 0 (a timeout of 0 would close everything at once)."""
    value = number(text, "a number of seconds")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {value:g}")
    return value
