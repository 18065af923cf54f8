"""The Labs tab: the course's experiments (粘包, 僵尸进程, GIL, IO多路复用…) run for real in a child process, figures shown as they come."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Input, Label, ListItem, ListView, Static

from workbench.labs import Lab, all_labs
from workbench.labs.base import ParamValue
from workbench.labs.runner import LabProcess, format_value, lab_command
from workbench.widgets.lab_output import LabOutput
from workbench.widgets.lab_params import LabParamsForm

HELP = """\
The **Labs** tab runs the short experiments the course only describes — 粘包 on a real TCP
socket, a real zombie process, lost updates without a Lock, a deadlock caught in the act —
and shows what each one measured.

* The **list** on the left has every lab in course order, with the course's term. Click, or move with
  ↑/↓: the right side shows the lab's title, course term and section, what it shows and why,
  and its **parameters** (a field per number, a switch per yes/no). **Tab** moves on to the
  text (↑/↓ scroll it) and then to each field. A value out of range is marked and explained
  under the fields, and the lab does not run.
* **r** (**Ctrl+R** in a field, or **Enter**) runs the selected lab **in a child process**
  of its own. Its lines and tables appear as they happen, its **figures** in large digits,
  and last the **verdict** it computed from them (green); a lab that fails shows its error
  (red). The status line counts the seconds while it runs.
* **x** or **Esc** cancels the run: the child and every process it started are killed.
  One lab runs at a time; quitting the app kills a running one.
* Each lab's last run stays: look at another lab and come back, it is still there.
* F1 on the other tabs lists the labs that show the model of the server in use;
  Ctrl+P → *Open lab …* jumps to any lab.
"""

#: Seconds between refreshes of "running for N s" while a lab runs.
PROGRESS_INTERVAL = 0.5

#: Builds the child's command line for a lab and its parameters (tests swap in their own).
CommandBuilder = Callable[[str, Mapping[str, ParamValue]], list[str]]


def open_lab_commands(
    open_lab: Callable[[str], object], labs: Iterable[Lab] | None = None
) -> Iterator[SystemCommand]:
    """*Open lab NAME* for every lab (those the tab lists by default), each calling ``open_lab(name)``."""
    for lab in all_labs() if labs is None else labs:
        yield SystemCommand(
            f"Open lab {lab.name} ({short_term(lab.course_term)})",
            lab.title,
            partial(open_lab, lab.name),
        )


def short_term(course_term: str) -> str:
    """The head of a course term, for the list: ``粘包 (tcp粘包问题)`` -> ``粘包``,
    ``阻塞IO / 非阻塞IO / 超时检测`` -> ``阻塞IO`` (the whole term is on the right)."""
    head = re.split(r"[:：(（/,，]", course_term, maxsplit=1)[0].strip()
    return head or course_term.strip()


def list_label(lab: Lab) -> str:
    """How a lab reads in the list: the course's term, then its name (``粘包 framing``)."""
    return f"{short_term(lab.course_term)} {lab.name}".strip()


def describe_params(params: Mapping[str, ParamValue]) -> str:
    return " ".join(f"{name}={format_value(value)}" for name, value in params.items())


@dataclass
class LabRun:
    """One run of a lab: what it was given, what it emitted so far, and how it ended."""

    lab: str
    params: dict[str, ParamValue]
    started: float = field(default_factory=time.monotonic)
    events: list[dict[str, Any]] = field(default_factory=list)
    #: running, done, failed or cancelled.
    state: str = "running"
    seconds: float | None = None
    process: LabProcess | None = None

    @property
    def elapsed(self) -> float:
        return self.seconds if self.seconds is not None else time.monotonic() - self.started

    def status(self) -> str:
        """The status line of this run, e.g. ``✓ framing done in 1.2 s  (rounds=3)``."""
        given = f"  ({describe_params(self.params)})" if self.params else ""
        if self.state == "running":
            return f"▶ {self.lab} running for {int(self.elapsed)} s… — x cancels{given}"
        if self.state == "done":
            return f"✓ {self.lab} done in {self.elapsed:.2f} s{given}"
        if self.state == "cancelled":
            return f"■ {self.lab} cancelled after {self.elapsed:.1f} s{given}"
        return f"✗ {self.lab} failed after {self.elapsed:.1f} s{given}"


class LabList(ListView):
    """The list of labs: Enter runs the highlighted lab, a click only shows it (a student
    clicking to read a lab should not start it)."""

    class RunRequested(Message):
        """Enter was pressed on a lab."""

    def action_select_cursor(self) -> None:
        if self.highlighted_child is not None:
            self.post_message(self.RunRequested())


class LabsTab(Horizontal):
    """List of labs on the left; the selected lab, its parameters and its last run on the right."""

    HELP = HELP

    #: r and x are letters a parameter field takes as text, so each has a twin that works
    #: (and shows in the footer) while a field has focus.
    _RUN_KEYS = Binding.Group("Run")
    _CANCEL_KEYS = Binding.Group("Cancel")
    BINDINGS = [
        Binding("r", "run_lab", "Run", group=_RUN_KEYS),
        Binding("ctrl+r", "run_lab", "Run", group=_RUN_KEYS),
        Binding("x", "cancel_lab", "Cancel", group=_CANCEL_KEYS),
        Binding("escape", "cancel_lab", "Cancel", group=_CANCEL_KEYS),
    ]

    class RunOutput(Message):
        """A batch of events from the running lab's child process."""

        def __init__(self, run: LabRun, events: list[dict[str, Any]]) -> None:
            super().__init__()
            self.run = run
            self.events = events

    class RunEnded(Message):
        """The child process has exited and been reaped."""

        def __init__(self, run: LabRun, returncode: int | None) -> None:
            super().__init__()
            self.run = run
            self.returncode = returncode

    def __init__(
        self,
        labs: Sequence[Lab] | None = None,
        command: CommandBuilder | None = None,
        *,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.labs: list[Lab] = list(labs) if labs is not None else all_labs()
        self.command = command if command is not None else lab_command
        #: Lab name -> parameter name -> text typed, kept while the app runs.
        self.param_texts: dict[str, dict[str, str]] = {lab.name: {} for lab in self.labs}
        #: Lab name -> its last run.
        self.runs: dict[str, LabRun] = {}
        self.running: LabRun | None = None
        self.selected: Lab | None = self.labs[0] if self.labs else None
        self._progress_timer: Timer | None = None
        self._form: LabParamsForm | None = None
        #: Keep the end of the selected lab's run in view as its output grows.
        self._following = False

    # -- layout -----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Vertical(id="lab-list-pane"):
            yield Label("Labs", id="lab-list-title")
            yield LabList(
                *(
                    ListItem(Label(list_label(lab), markup=False), name=lab.name)
                    for lab in self.labs
                ),
                id="lab-list",
            )
        with VerticalScroll(id="lab-detail"):
            yield Static("", id="lab-title", markup=False)
            yield Static("", id="lab-course", markup=False)
            yield Static("", id="lab-explanation", markup=False)
            yield Vertical(id="lab-form-slot")
            yield Static("", id="lab-status", markup=False)
            yield LabOutput(id="lab-output")

    def on_mount(self) -> None:
        if self.selected is None:
            self.query_one("#lab-title", Static).update(
                "No labs are installed in this build (python -m workbench.labs --list)."
            )
            return
        self._show_lab(self.selected)

    # -- selecting a lab --------------------------------------------------------------------

    @on(ListView.Highlighted, "#lab-list")
    def _lab_highlighted(self, event: ListView.Highlighted) -> None:
        if event.item is not None and event.item.name is not None:
            lab = self.lab_named(event.item.name)
            if lab is not self.selected:
                self._show_lab(lab)

    @on(LabList.RunRequested)
    def _lab_chosen(self) -> None:
        self.action_run_lab()

    @on(Input.Submitted)
    def _param_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_run_lab()

    def lab_named(self, name: str) -> Lab:
        for lab in self.labs:
            if lab.name == name:
                return lab
        raise KeyError(f"no lab called {name!r}")

    def select_lab(self, name: str) -> None:
        """Move the list to lab ``name`` and show it (the palette's *Open lab* and F1's links)."""
        lab = self.lab_named(name)
        lab_list = self.query_one("#lab-list", ListView)
        lab_list.index = self.labs.index(lab)
        self._show_lab(lab)
        lab_list.focus()

    def _show_lab(self, lab: Lab) -> None:
        self.selected = lab
        self.query_one("#lab-title", Static).update(lab.title)
        where = (
            f"course section {lab.course_section}" if lab.course_section else "beyond the course"
        )
        self.query_one("#lab-course", Static).update(f"{lab.course_term} · {where} · {lab.name}")
        self.query_one("#lab-explanation", Static).update(lab.explanation)
        slot = self.query_one("#lab-form-slot", Vertical)
        slot.remove_children()
        self._form = LabParamsForm(lab, self.param_texts.setdefault(lab.name, {}))
        slot.mount(self._form)
        output = self.query_one(LabOutput)
        output.clear()
        run = self.runs.get(lab.name)
        if run is not None:
            output.add_events(run.events)
        self._show_status()
        self._following = False
        detail = self.query_one("#lab-detail", VerticalScroll)
        detail.anchor(False)
        detail.scroll_home(animate=False)

    @on(LabOutput.Grew)
    def _output_grew(self) -> None:
        """Follow a running lab's output, like ``tail -f``, once it is taller than the view.

        Textual's anchor keeps the end in view through every layout (and lets go while the
        user scrolls up); set only once the content overflows, since an anchored view pins
        short content to its bottom edge.
        """
        detail = self.query_one("#lab-detail", VerticalScroll)
        if self._following and not detail.is_anchored and detail.max_scroll_y > 0:
            detail.anchor()

    @property
    def form(self) -> LabParamsForm:
        """The parameters of the selected lab (the one on show, not one being removed)."""
        assert self._form is not None, "no lab selected"
        return self._form

    def _show_status(self) -> None:
        status = self.query_one("#lab-status", Static)
        lab = self.selected
        if lab is None:
            return
        run = self.runs.get(lab.name)
        if run is None:
            status.update(f"Press r (or Enter) to run {lab.name}.")
        else:
            status.update(run.status())
        for state in ("running", "done", "failed", "cancelled"):
            status.set_class(run is not None and run.state == state, f"-{state}")

    # -- running ----------------------------------------------------------------------------

    def action_run_lab(self) -> None:
        lab = self.selected
        if lab is None:
            self.notify("No lab to run.", severity="warning")
            return
        if self.running is not None:
            self.notify(
                f"{self.running.lab} is still running: wait for it, or press x to cancel it.",
                title="One lab at a time",
                severity="warning",
            )
            return
        error = self.form.first_error()
        if error is not None:
            name, message = error
            self.notify(message, title=f"{lab.name} not run", severity="error")
            self.form.field(name).focus()
            return
        params = self.form.values()
        # Only what differs from the defaults goes on the command line: shorter, and the
        # status line shows what the student changed.
        changed = {
            name: value for name, value in params.items() if value != lab.param(name).default
        }
        run = LabRun(lab.name, changed)
        try:
            run.process = LabProcess(self.command(lab.name, changed))
        except OSError as error:
            self.notify(f"Could not start {lab.name}: {error}", severity="error")
            return
        self.running = self.runs[lab.name] = run
        self._mark_running(lab.name, True)
        if lab is self.selected:
            self.query_one(LabOutput).clear()
            self._show_status()
            self._following = True
            self.query_one("#lab-detail", VerticalScroll).anchor(False)  # until it overflows
        self._progress_timer = self.set_interval(PROGRESS_INTERVAL, self._show_status)
        self._read_run(run)

    @work(thread=True, group="lab-run", exit_on_error=False)
    def _read_run(self, run: LabRun) -> None:
        """Read the child's JSONL in batches (a thread: the reads block) until it exits."""
        process = run.process
        assert process is not None
        try:
            for batch in process.batches():
                self.post_message(self.RunOutput(run, batch))
        except Exception as error:  # a broken pipe must still end the run in the UI
            self.post_message(
                self.RunOutput(run, [{"type": "error", "text": f"reading the lab: {error}"}])
            )
        finally:
            process.close()
            self.post_message(self.RunEnded(run, process.returncode))

    def on_labs_tab_run_output(self, message: RunOutput) -> None:
        run = message.run
        run.events.extend(message.events)
        for event in message.events:
            if event.get("type") == "done" and isinstance(event.get("seconds"), int | float):
                run.seconds = float(event["seconds"])
        if (
            self.selected is not None
            and self.selected.name == run.lab
            and self.runs.get(run.lab) is run
        ):
            self.query_one(LabOutput).add_events(message.events)

    def on_labs_tab_run_ended(self, message: RunEnded) -> None:
        run = message.run
        if run.state == "running":
            failed = message.returncode != 0 or any(e.get("type") == "error" for e in run.events)
            run.state = "failed" if failed else "done"
        if run.seconds is None:
            run.seconds = time.monotonic() - run.started
        run.process = None
        if self.running is run:
            self.running = None
            if self._progress_timer is not None:
                self._progress_timer.stop()
                self._progress_timer = None
        self._mark_running(run.lab, False)
        self._show_status()
        if run.state == "failed":
            self.notify(f"{run.lab} failed: see its output.", severity="error")

    def action_cancel_lab(self) -> None:
        run = self.running
        if run is None or run.process is None:
            self.notify("No lab is running.", severity="information")
            return
        run.state = "cancelled"
        run.seconds = time.monotonic() - run.started
        run.process.cancel()  # the reader sees the pipes close and posts RunEnded
        self._show_status()

    def _mark_running(self, name: str, running: bool) -> None:
        for item in self.query_one("#lab-list", ListView).children:
            if isinstance(item, ListItem) and item.name == name:
                item.set_class(running, "-running")
                label = item.query_one(Label)
                text = list_label(self.lab_named(name))
                label.update(f"▶ {text}" if running else text)

    def on_unmount(self) -> None:
        """Quitting the app kills a running lab, so no child outlives it."""
        run = self.running
        if run is not None and run.process is not None:
            run.process.close()

    # -- palette ----------------------------------------------------------------------------

    def system_commands(self) -> Iterable[SystemCommand]:
        """*Open lab NAME* for every lab (the app adds these to its command palette)."""
        return open_lab_commands(self.open_lab, self.labs)

    def open_lab(self, name: str) -> None:
        self.app.action_show_tab("labs")  # type: ignore[attr-defined]
        self.select_lab(name)
