"""The shape of a lab: one short, real experiment of the course, its parameters, and the figures it measures."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

#: A parameter value as the command line and the Labs tab pass it.
ParamValue = int | float | bool | str


@dataclass(frozen=True, slots=True)
class Param:
    """One knob of a lab: its name, default, one-line help and (for numbers) its range."""

    name: str
    default: ParamValue
    help: str
    minimum: float | None = None
    maximum: float | None = None

    def parse(self, text: str) -> ParamValue:
        """Turn ``text`` into this parameter's type; ValueError says what is wrong."""
        text = text.strip()
        if isinstance(self.default, bool):
            lowered = text.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"{self.name} must be true or false, not {text!r}")
        if isinstance(self.default, int):
            try:
                value: ParamValue = int(text)
            except ValueError:
                raise ValueError(f"{self.name} must be a whole number, not {text!r}") from None
        elif isinstance(self.default, float):
            try:
                value = float(text)
            except ValueError:
                raise ValueError(f"{self.name} must be a number, not {text!r}") from None
        else:
            return text
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"{self.name} must be at least {self.minimum:g}, not {value}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"{self.name} must be at most {self.maximum:g}, not {value}")
        return value


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured figure: the number a lab exists to show (e.g. lost updates without a Lock)."""

    key: str
    label: str
    value: ParamValue
    unit: str = ""

    def shown(self) -> str:
        value = (
            f"{self.value:,}"
            if isinstance(self.value, int) and not isinstance(self.value, bool)
            else (f"{self.value:,.3g}" if isinstance(self.value, float) else str(self.value))
        )
        return f"{value} {self.unit}".rstrip()


@dataclass(frozen=True, slots=True)
class Table:
    """A small table a lab draws (e.g. the recv() chunks that arrived, one row each)."""

    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


#: What a running lab emits, in order: ("line", str), ("figure", Figure), ("table", Table),
#: ("verdict", str). The CLI prints them; the Labs tab draws them as they come.
LabEvent = tuple[str, Any]


@dataclass
class LabReport:
    """Everything one run emitted, kept for tests and for ``--json``."""

    lab: str
    params: dict[str, ParamValue]
    lines: list[str] = field(default_factory=list)
    figures: dict[str, Figure] = field(default_factory=dict)
    tables: list[Table] = field(default_factory=list)
    verdict: str = ""

    def value(self, key: str) -> ParamValue:
        """The value of figure ``key`` (KeyError names the figures there are)."""
        try:
            return self.figures[key].value
        except KeyError:
            raise KeyError(f"no figure {key!r}; this run has {sorted(self.figures)}") from None


class LabContext:
    """What a lab's ``run`` gets: its parameters, a way to report as it goes, and a cancel flag."""

    def __init__(
        self,
        lab: str,
        params: dict[str, ParamValue],
        emit: Callable[[LabEvent], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self.params = params
        self.report = LabReport(lab, dict(params))
        self._emit = emit or (lambda event: None)
        self.cancel = cancel or threading.Event()

    def __getitem__(self, name: str) -> ParamValue:
        return self.params[name]

    @property
    def cancelled(self) -> bool:
        return self.cancel.is_set()

    def line(self, text: str) -> None:
        """Say what just happened (a real observation, in the order it happened)."""
        self.report.lines.append(text)
        self._emit(("line", text))

    def figure(self, key: str, label: str, value: ParamValue, unit: str = "") -> None:
        """Report a measured figure; the key is what tests and ``--json`` use."""
        figure = Figure(key, label, value, unit)
        self.report.figures[key] = figure
        self._emit(("figure", figure))

    def table(self, title: str, headers: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
        table = Table(title, tuple(headers), tuple(tuple(str(c) for c in row) for row in rows))
        self.report.tables.append(table)
        self._emit(("table", table))

    def verdict(self, text: str) -> None:
        """The one-sentence conclusion, computed from the figures (never written in advance)."""
        self.report.verdict = text
        self._emit(("verdict", text))


class Lab:
    """Base class of a lab. Subclasses set the class attributes and write ``run``.

    A lab is a real experiment: it opens real sockets (on loopback only), forks real
    processes, starts real threads, and reports what it measured. ``run`` must end by
    itself within a few seconds, clean up every socket, process and thread it made,
    and stop early when ``ctx.cancelled`` becomes true.
    """

    #: Short command-line name, e.g. "framing".
    name: ClassVar[str] = ""
    #: Title in the Labs tab, e.g. "Message boundaries on TCP and UDP".
    title: ClassVar[str] = ""
    #: The course's term, e.g. "粘包".
    course_term: ClassVar[str] = ""
    #: Where the course teaches it, e.g. "1.2.2".
    course_section: ClassVar[str] = ""
    #: One paragraph: what the student sees and why it happens.
    explanation: ClassVar[str] = ""
    #: Sort key in the list (course order).
    order: ClassVar[float] = 100.0
    params: ClassVar[tuple[Param, ...]] = ()

    def defaults(self) -> dict[str, ParamValue]:
        return {param.name: param.default for param in self.params}

    def param(self, name: str) -> Param:
        for param in self.params:
            if param.name == name:
                return param
        names = ", ".join(p.name for p in self.params) or "none"
        raise KeyError(f"lab {self.name!r} has no parameter {name!r} (it has: {names})")

    def run(self, ctx: LabContext) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def execute(
        self,
        overrides: dict[str, ParamValue] | None = None,
        emit: Callable[[LabEvent], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> LabReport:
        """Run with the defaults overridden by ``overrides``; returns the full report."""
        params = self.defaults()
        for name, value in (overrides or {}).items():
            self.param(name)  # KeyError for an unknown name
            params[name] = value
        ctx = LabContext(self.name, params, emit, cancel)
        self.run(ctx)
        return ctx.report
