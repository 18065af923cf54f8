"""Benchmark: every lab run the Labs tab's way (a child process, JSONL in batches) — time to first output, total, and what it emitted.

Each lab runs with its defaults through :class:`workbench.labs.runner.LabProcess`,
exactly as the tab starts it: a fresh interpreter in its own session. *First* is
the wait before the tab shows anything (interpreter start, imports, the lab's
first line); *UI messages* is how many batches the tab received. A last row runs
a child that prints 20,000 lines at once, to show the batching.

    python bench/labs.py [--only framing,lock]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# Run as a script, this folder leads sys.path, and bench/http.py would hide the standard
# library's http package from the labs (the counter lab imports http.client).
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).parent]

from workbench.labs import all_labs  # noqa: E402
from workbench.labs.runner import LabProcess, lab_command  # noqa: E402

CHATTY_CHILD = (
    "import json\n"
    "for n in range(20000):\n"
    "    print(json.dumps({'type': 'line', 'text': f'line {n}'}))\n"
)


def measure(command: list[str]) -> tuple[float, float, int, dict[str, int], int | None]:
    """(seconds to the first batch, seconds in all, batches, events by type, exit code)."""
    started = time.monotonic()
    process = LabProcess(command)
    first = None
    batches = 0
    kinds: dict[str, int] = {}
    try:
        for batch in process.batches():
            if first is None:
                first = time.monotonic() - started
            batches += 1
            for event in batch:
                kinds[event["type"]] = kinds.get(event["type"], 0) + 1
    finally:
        process.close()
    return first or 0.0, time.monotonic() - started, batches, kinds, process.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated lab names (default: all)")
    options = parser.parse_args()
    wanted = {name for name in options.only.split(",") if name}
    rows = [
        (lab.name, lab_command(lab.name, {}))
        for lab in all_labs()
        if not wanted or lab.name in wanted
    ]
    rows.append(("(20,000 lines)", [sys.executable, "-c", CHATTY_CHILD]))
    width = max(len(name) for name, _ in rows)
    print(
        f"{'lab':<{width}} {'first s':>8} {'total s':>8} {'UI msgs':>8} {'events':>7}  exit  figures/verdict"
    )
    for name, command in rows:
        first, total, batches, kinds, code = measure(command)
        events = sum(kinds.values())
        shown = f"{kinds.get('figure', 0)} figures, {'verdict' if kinds.get('verdict') else 'no verdict'}"
        print(
            f"{name:<{width}} {first:>8.3f} {total:>8.2f} {batches:>8} {events:>7}  {code!s:>4}  {shown}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
