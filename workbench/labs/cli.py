"""Command line of the labs: ``--list``, ``--run NAME|all [--set K=V]``, human text, ``--json`` or ``--jsonl``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, TextIO

from workbench.labs import all_labs, find_lab
from workbench.labs.base import Figure, Lab, LabEvent, LabReport, ParamValue, Table


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m workbench.labs",
        description="Run the course's experiments headless and print the figures each measured.",
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--list", action="store_true", help="list the labs and their parameters")
    action.add_argument("--run", metavar="NAME", help="run one lab, or 'all' of them in turn")
    parser.add_argument(
        "--set",
        metavar="PARAM=VALUE",
        action="append",
        default=[],
        help="override a parameter of the lab (repeatable); see --list",
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print one JSON report per lab")
    output.add_argument(
        "--jsonl",
        action="store_true",
        help="stream one JSON event per line (the Labs tab reads this)",
    )
    return parser


def parse_overrides(lab: Lab, pairs: Sequence[str]) -> dict[str, ParamValue]:
    """``["rounds=3"]`` -> ``{"rounds": 3}`` typed by the lab's parameters; ValueError says why not."""
    overrides: dict[str, ParamValue] = {}
    for pair in pairs:
        name, separator, text = pair.partition("=")
        if not separator:
            raise ValueError(f"expected PARAM=VALUE, got {pair!r}")
        try:
            param = lab.param(name.strip())
        except KeyError as error:
            raise ValueError(error.args[0]) from None
        overrides[param.name] = param.parse(text)
    return overrides


def event_to_json(event: LabEvent) -> dict[str, Any]:
    kind, payload = event
    if isinstance(payload, Figure | Table):
        return {"type": kind, **asdict(payload)}
    return {"type": kind, "text": payload}


def print_event(event: LabEvent, out: TextIO) -> None:
    kind, payload = event
    if kind == "line":
        print(f"  {payload}", file=out)
    elif kind == "figure":
        print(f"  = {payload.label}: {payload.shown()}", file=out)
    elif kind == "table":
        print(f"  {payload.title}", file=out)
        widths = [
            max(len(cell) for cell in column)
            for column in zip(payload.headers, *payload.rows, strict=False)
        ]
        for row in (payload.headers, *payload.rows):
            print(
                "    " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)), file=out
            )
    elif kind == "verdict":
        print(f"  -> {payload}", file=out)
    out.flush()


def list_labs(out: TextIO) -> None:
    for lab in all_labs():
        print(f"{lab.name:<14} {lab.course_section:<8} {lab.course_term}  {lab.title}", file=out)
        for param in lab.params:
            print(f"{'':14}   {param.name}={param.default!r}  {param.help}", file=out)


def report_to_json(report: LabReport, seconds: float) -> dict[str, Any]:
    return {
        "lab": report.lab,
        "params": report.params,
        "seconds": round(seconds, 3),
        "figures": {key: figure.value for key, figure in report.figures.items()},
        "verdict": report.verdict,
    }


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    options = build_parser().parse_args(argv)
    if options.list:
        list_labs(out)
        return 0
    try:
        labs = all_labs() if options.run == "all" else [find_lab(options.run)]
    except KeyError as error:
        print(f"error: {error.args[0]}", file=sys.stderr)
        return 2
    if options.set and len(labs) > 1:
        print("error: --set applies to one lab; name it with --run NAME", file=sys.stderr)
        return 2
    status = 0
    for lab in labs:
        try:
            overrides = parse_overrides(lab, options.set)
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        if options.jsonl:

            def emit(event: LabEvent) -> None:
                print(json.dumps(event_to_json(event), ensure_ascii=False), file=out, flush=True)
        elif options.json:

            def emit(event: LabEvent) -> None:
                return None
        else:
            print(f"{lab.name} — {lab.title} ({lab.course_term}, {lab.course_section})", file=out)

            def emit(event: LabEvent) -> None:
                print_event(event, out)

        started = time.monotonic()
        try:
            report = lab.execute(overrides, emit)
        except Exception as error:  # a lab that fails says so; the next one still runs
            status = 1
            message = f"{type(error).__name__}: {error}"
            if options.jsonl:
                print(json.dumps({"type": "error", "text": message}), file=out, flush=True)
            else:
                print(
                    f"  !! {lab.name} failed: {message}",
                    file=out if not options.json else sys.stderr,
                )
            continue
        seconds = time.monotonic() - started
        if options.json:
            print(json.dumps(report_to_json(report, seconds), ensure_ascii=False), file=out)
        elif options.jsonl:
            print(json.dumps({"type": "done", "seconds": round(seconds, 3)}), file=out, flush=True)
        else:
            print(f"  ({seconds:.2f} s)\n", file=out)
    return status
